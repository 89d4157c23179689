"""Customer ids that survive new data: today's customers take over the ids of an earlier run.

Step 02 clusters records afresh every run; `stable_ids` then carries the previous run's ids over,
matching records between the runs by their stable source keys (`source_system`,
`source_record_id`):

- each previous customer goes *home* to the current customer holding most of its records (ties:
  the smaller fresh id), so a customer whose records did not change keeps its id and a new record
  of a known person joins that id;
- a current customer that is home to several previous customers (new evidence merged them)
  keeps the *oldest* id (earliest `first_seen_at` of the previous golden record, then more
  previous records, then the smaller id); the others are retired (`merged`);
- a current customer that is home to none but holds records of previous customers is the part
  that left a split: it gets a new id (`split`);
- a previous customer none of whose records is left is retired (`removed`);
- a customer made only of new records gets today's deterministic id (`C` + hash of its smallest
  record key), re-hashed in the rare case that id was ever used before, so an id never comes back.

Records are *unchanged* when their clean row (all columns step 01 wrote) hashes as in the previous
run (`unchanged_records`); a previous customer prefers the current customer holding most of its
unchanged records, so a changed record is the one that leaves. When the previous run used the same
identity method (`method_fingerprint`: the identity code, settings and seed) and
`identity.keep_previous_links` is on, the merge also keeps the unchanged records of each previous
customer together and links unchanged records of different previous customers only through new or
changed records, so retraining on more data does not move anyone whose records did not change.

Without a previous run every id is the deterministic one, so identical reruns give identical ids.
The cumulative `id_history` (`old_id, new_id, reason, retired, n_records, run_id, previous_run_id`)
holds every retirement and split of the chain of runs; `current_ids` follows it from any old id
to today's.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

import helpers
from helpers.core import runs
from helpers.core.tables import SOURCE_SYSTEMS

IDENTITY_STEP = "02_identity_merge"
AUDIT_STEP = "01_data_audit"
# Settings that do not change which records end up together.
NOT_METHOD = {"previous_run", "keep_previous_links", "review_sample"}
KEY = ["source_system", "source_record_id"]
HISTORY_COLUMNS = ["old_id", "new_id", "reason", "retired", "n_records", "run_id", "previous_run_id"]
HISTORY_DTYPES = {
    "old_id": "string",
    "new_id": "string",
    "reason": "string",
    "retired": "bool",
    "n_records": "int64",
    "run_id": "string",
    "previous_run_id": "string",
}


@dataclass
class PreviousIdentity:
    """What step 02 keeps of an earlier run: its crosswalk, when its customers were first seen and
    its id history."""

    run_id: str
    crosswalk: pd.DataFrame  # source_system, source_record_id, customer_id (match_method, match_probability)
    first_seen: pd.Series = field(default_factory=lambda: pd.Series(dtype="datetime64[ns]"))
    history: pd.DataFrame = field(default_factory=lambda: empty_history())
    method: str | None = None  # `method_fingerprint` of the run, when it recorded one
    folder: Path | None = None


@dataclass
class StableIds:
    """The outcome of `stable_ids`: fresh id -> stable id, this run's history rows and counts."""

    mapping: pd.Series  # index: fresh customer_id, value: stable customer_id
    history: pd.DataFrame  # the whole chain: previous rows and this run's
    stats: dict[str, int | str | None]


def empty_history() -> pd.DataFrame:
    """An `id_history` without rows."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in HISTORY_DTYPES.items()})


def find_previous_identity(run_dir: Path, choice: str | None) -> Path | None:
    """The earlier run whose ids step 02 carries over, by `identity.previous_run`.

    `none` (or empty): none. `auto`: `helpers.core.runs.find_previous_run`'s choice (the newest
    earlier finished run on the same raw data folder, as step 06's migration takes) when it has a
    crosswalk. Otherwise a run id (a folder beside `run_dir`) or a path to a run folder, which must
    hold `02_identity_merge/crosswalk.parquet`.
    """
    if choice in (None, "", "none"):
        return None
    if choice == "auto":
        previous = runs.find_previous_run(Path(run_dir), "auto")
        if previous is None or not (previous / IDENTITY_STEP / "crosswalk.parquet").is_file():
            return None
        return previous
    sibling = Path(run_dir).resolve().parent / choice
    path = sibling if sibling.is_dir() else Path(choice).expanduser().resolve()
    if not (path / IDENTITY_STEP / "crosswalk.parquet").is_file():
        raise FileNotFoundError(
            f"identity.previous_run {choice!r}: {path} has no {IDENTITY_STEP}/crosswalk.parquet "
            "(name a finished run's id or folder, or use auto / none)"
        )
    if path == Path(run_dir).resolve():
        raise ValueError(f"identity.previous_run {choice!r} is this run itself")
    return path


def read_previous_identity(path: Path) -> PreviousIdentity:
    """The crosswalk, first-seen times and id history a run's step 02 wrote."""
    folder = Path(path) / IDENTITY_STEP
    source = folder / "crosswalk.parquet"
    columns = [*KEY, "customer_id", "match_method", "match_probability"]
    crosswalk = pd.read_parquet(source, columns=[c for c in columns if c in pq.read_schema(source).names])
    first_seen = pd.Series(dtype="datetime64[ns]")
    golden = folder / "golden.parquet"
    if golden.is_file():
        frame = pd.read_parquet(golden, columns=["customer_id", "first_seen_at"])
        first_seen = frame.set_index("customer_id")["first_seen_at"]
    history = folder / "id_history.parquet"
    method = None
    manifest = folder / "step.json"
    if manifest.is_file():
        try:
            method = json.loads(manifest.read_text(encoding="utf-8")).get("method_fingerprint")
        except json.JSONDecodeError:
            method = None
    return PreviousIdentity(
        run_id=Path(path).name,
        crosswalk=crosswalk,
        first_seen=first_seen,
        history=pd.read_parquet(history) if history.is_file() else empty_history(),
        method=method,
        folder=Path(path),
    )


@functools.cache
def _code_digest() -> str:
    """SHA-1 of the code that decides the clusters, read once per process (the code it runs)."""
    package = Path(helpers.__file__).parent
    identity = package / "identity"
    files = [
        *(identity / name for name in ("merge.py", "splink_scoring.py", "keys.py", "events.py")),
        package / "core" / "normalize.py",
        *sorted((package / "engine" / "queries" / "identity").glob("*.sql")),
    ]
    digest = hashlib.sha1()
    for path in files:
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def method_fingerprint(settings: object, seed: int) -> str:
    """SHA-1 of what decides the clusters: the merge code (merge, Splink scoring, keys, events,
    normalize, the identity SQL), the `identity` settings that matter and the run seed."""
    values = {k: v for k, v in settings.model_dump(mode="json").items() if k not in NOT_METHOD}  # type: ignore[attr-defined]
    text = json.dumps({"code": _code_digest(), "settings": values, "seed": seed}, sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()


def unchanged_records(tables: Mapping[str, pd.DataFrame], previous_run: Path) -> pd.DataFrame:
    """`source_system, source_record_id` of the clean identity records (`tables` by source system)
    whose every column (those both runs have, but `source_row`) equals the previous run's."""
    parts = [pd.DataFrame({key: pd.Series(dtype=str) for key in KEY})]
    for system, frame in tables.items():
        path = Path(previous_run) / AUDIT_STEP / f"clean_{SOURCE_SYSTEMS[system]}.parquet"
        if not path.is_file() or frame.empty:
            continue
        columns = sorted((set(frame.columns) & set(pq.read_schema(path).names)) - {"source_row"})
        if "source_record_id" not in columns:
            continue
        before = pd.read_parquet(path, columns=columns)
        if any(before[c].dtype != frame[c].dtype for c in columns):
            continue  # another step 01 version: nothing counts as unchanged
        hashes = [
            pd.DataFrame(
                {
                    "source_record_id": part["source_record_id"].astype(str).to_numpy(),
                    "hash": pd.util.hash_pandas_object(part[columns], index=False).to_numpy(),
                }
            )
            for part in (frame, before)
        ]
        same = hashes[0].merge(hashes[1], on=["source_record_id", "hash"])
        parts.append(same[["source_record_id"]].assign(source_system=system)[KEY])
    return pd.concat(parts, ignore_index=True).drop_duplicates(KEY)


def _hashed(key: str, attempt: int) -> str:
    text = key if attempt == 0 else f"{key}#{attempt}"
    return "C" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def stable_ids(
    crosswalk: pd.DataFrame,
    previous: PreviousIdentity | None,
    run_id: str,
    unchanged: pd.DataFrame | None = None,
) -> StableIds:
    """Stable id of each customer of `crosswalk` (`source_system, source_record_id, customer_id` with
    today's fresh ids) given the previous run's identity (None: the fresh ids stay); `unchanged`
    (`source_system, source_record_id`) names the records whose content did not change."""
    fresh = crosswalk["customer_id"].astype(str)
    customers = pd.Index(fresh.unique())
    if previous is None:
        stats = {"previous_run": None, "ids_kept": 0, "ids_new": len(customers), "ids_new_from_split": 0,
                 "ids_retired_merged": 0, "ids_retired_removed": 0}  # fmt: skip
        return StableIds(pd.Series(customers, index=customers), empty_history(), stats)

    now = pd.DataFrame(
        {
            "key": crosswalk["source_system"].astype(str) + ":" + crosswalk["source_record_id"].astype(str),
            "fresh": fresh.to_numpy(),
        }
    )
    before = previous.crosswalk
    before = pd.DataFrame(
        {
            "key": before["source_system"].astype(str) + ":" + before["source_record_id"].astype(str),
            "old": before["customer_id"].astype(str).to_numpy(),
        }
    )
    matched = now.merge(before, on="key", how="inner")
    same = set()
    if unchanged is not None and len(unchanged):
        same = set(unchanged["source_system"].astype(str) + ":" + unchanged["source_record_id"].astype(str))
    matched["unchanged"] = matched["key"].isin(same)
    overlap = (
        matched.groupby(["old", "fresh"], sort=False)
        .agg(n=("key", "size"), n_unchanged=("unchanged", "sum"))
        .reset_index()
    )
    # Home of each previous customer: the current customer with most of its unchanged records,
    # then most of its records.
    home = (
        overlap.sort_values(
            ["old", "n_unchanged", "n", "fresh"], ascending=[True, False, False, True], kind="stable"
        )
        .drop_duplicates("old")
        .set_index("old")["fresh"]
    )
    old_sizes = before.groupby("old").size()
    claims = pd.DataFrame({"old": home.index, "fresh": home.to_numpy()})
    claims["first_seen"] = pd.to_datetime(claims["old"].map(previous.first_seen))
    claims["records"] = claims["old"].map(old_sizes).to_numpy()
    claims = claims.sort_values(
        ["fresh", "first_seen", "records", "old"],
        ascending=[True, True, False, True],
        na_position="last",
        kind="stable",
    )
    survivors = claims.drop_duplicates("fresh")
    mapping = pd.Series(pd.NA, index=customers, dtype="object")
    mapping[survivors["fresh"].to_numpy()] = survivors["old"].to_numpy()

    merged = claims[~claims.index.isin(survivors.index)]
    merged = merged.assign(new_id=merged["fresh"].map(survivors.set_index("fresh")["old"]))
    merged_rows = pd.DataFrame(
        {
            "old_id": merged["old"].to_numpy(),
            "new_id": merged["new_id"].to_numpy(),
            "reason": "merged",
            "retired": True,
            "n_records": merged["records"].to_numpy(),
        }
    )

    # New ids: split parts and customers of new records only, never an id used before.
    used = (
        set(before["old"])
        | set(previous.history["old_id"].dropna())
        | set(previous.history["new_id"].dropna())
    )
    needs = mapping.index[mapping.isna()]
    smallest = now[now["fresh"].isin(needs)].groupby("fresh")["key"].min().sort_values()
    new_ids: dict[str, str] = {}
    for fresh_id, key in smallest.items():
        attempt, candidate = 0, str(fresh_id)
        while candidate in used:
            attempt += 1
            candidate = _hashed(key, attempt)
        used.add(candidate)
        new_ids[str(fresh_id)] = candidate
    mapping[list(new_ids)] = list(new_ids.values())

    split = overlap[overlap["fresh"].isin(list(new_ids))]
    split_rows = pd.DataFrame(
        {
            "old_id": split["old"].to_numpy(),
            "new_id": split["fresh"].map(new_ids).to_numpy(),
            "reason": "split",
            "retired": False,
            "n_records": split["n"].to_numpy(),
        }
    )
    gone = old_sizes.index.difference(home.index)
    removed_rows = pd.DataFrame(
        {
            "old_id": gone.to_numpy(),
            "new_id": pd.NA,
            "reason": "removed",
            "retired": True,
            "n_records": old_sizes.reindex(gone).to_numpy(),
        }
    )
    rows = pd.concat([merged_rows, split_rows, removed_rows], ignore_index=True)
    rows = rows.assign(run_id=run_id, previous_run_id=previous.run_id)
    rows = rows.sort_values(["reason", "old_id", "new_id"], kind="stable")[HISTORY_COLUMNS]
    history = pd.concat(
        [previous.history[HISTORY_COLUMNS].astype(HISTORY_DTYPES), rows.astype(HISTORY_DTYPES)],
        ignore_index=True,
    )
    stats = {
        "previous_run": previous.run_id,
        "ids_kept": len(survivors),
        "ids_new": len(new_ids) - int(split["fresh"].nunique()),
        "ids_new_from_split": int(split["fresh"].nunique()),
        "ids_retired_merged": len(merged_rows),
        "ids_retired_removed": len(removed_rows),
    }
    return StableIds(mapping.astype(str), history.reset_index(drop=True), stats)


def current_ids(ids: pd.Series, history: pd.DataFrame) -> pd.Series:
    """Today's id of each id in `ids` (ids of any earlier run): merged ids followed to their
    survivor, through several runs; removed ids become NA; other ids stay."""
    merged = history[history["reason"] == "merged"]
    successor = dict(zip(merged["old_id"], merged["new_id"], strict=True))
    removed = set(history.loc[history["reason"] == "removed", "old_id"])

    def follow(value: object) -> object:
        seen = set()
        while value in successor and value not in seen:
            seen.add(value)
            value = successor[value]
        return pd.NA if value in removed else value

    return ids.map(follow)
