"""Shared by the merge, Splink scoring and the event resolution: how alike two name keys are, stable customer
ids, and text functions evaluated once per distinct value."""

from __future__ import annotations

import hashlib

import jellyfish
import numpy as np
import pandas as pd


def _joined(tokens: list[str]) -> set[str]:
    """A name key of two parts written as one word, in either order: a single Latin word that
    `normalize_name` read as run-together pinyin (`Maria` -> `ma ria`, `Elena` -> `e lena`) is that
    word again (`maria`, as in `Maria Anderson`)."""
    return {"".join(tokens), "".join(reversed(tokens))} if len(tokens) == 2 else set()


def name_similarity(left: str, right: str) -> float:
    """Similarity of two name keys, as in `identifier_pairs.sql`.

    1 if equal, 0.95 if one name's parts are all in the other (a two-part name counts as one part
    written as one word too: `ma ria` is in `anderson maria`), at least 0.8 if they share a part (a
    typo elsewhere), else Jaro-Winkler.
    """
    if left == right:
        return 1.0
    left_list, right_list = left.split(), right.split()
    left_tokens, right_tokens = set(left_list), set(right_list)
    if left_tokens <= right_tokens or right_tokens <= left_tokens:
        return 0.95
    if _joined(left_list) & right_tokens or _joined(right_list) & left_tokens:
        return 0.95
    similarity = jellyfish.jaro_winkler_similarity(left, right)
    return max(0.8, similarity) if left_tokens & right_tokens else similarity


def customer_ids(record_keys: pd.Series, labels: np.ndarray) -> pd.Series:
    """Stable customer id per record: `C` + 16 hex digits of SHA-1 of the cluster's smallest record key."""
    frame = pd.DataFrame({"label": labels, "key": record_keys.to_numpy()})
    smallest = frame.sort_values("key").drop_duplicates("label").set_index("label")["key"]
    ids = pd.Series(
        ["C" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16] for key in smallest.to_numpy()],
        index=smallest.index,
    )
    return pd.Series(ids.reindex(labels).to_numpy(), index=record_keys.index)


def address_key(addresses: pd.Series) -> pd.Series:
    """Addresses lower-case, letters and digits only (empty: null)."""
    return addresses.str.lower().str.replace(r"[\W_]+", "", regex=True).replace("", pd.NA)


def postcode_digits(postcodes: pd.Series) -> pd.Series:
    """Postcodes' digits (none: null)."""
    return postcodes.str.replace(r"\D", "", regex=True).replace("", pd.NA)
