"""`helpers.identity.keys.on_distinct`: a text function evaluated once per distinct value gives what it
gives row by row, nulls included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.core.normalize import canonical_email, is_placeholder_email, is_placeholder_phone, on_distinct
from helpers.identity.keys import address_key

EMAILS = ["J.Smith+shop@GoogleMail.com", None, "test@test.com", "j.smith+shop@googlemail.com", np.nan,
          "ww@qq.com", "J.Smith+shop@GoogleMail.com", "ww@qq.com"]  # fmt: skip
PHONES = ["+8613800000000", "+8613812345678", None, "+86-10-62345678", "+8613812345678", "+864008001234"]


@pytest.mark.parametrize("dtype", [object, "string"])
@pytest.mark.parametrize(
    ("function", "values"),
    [
        (canonical_email, EMAILS),
        (is_placeholder_email, EMAILS),
        (is_placeholder_phone, PHONES),
        (address_key, ["北京市 朝阳区 1号", None, "", "Room 5, Nanjing Rd."]),
        (lambda text: text.isna() | text.str.startswith("+86").fillna(False), PHONES),  # null -> True
    ],
)
def test_once_per_distinct_value_is_row_by_row(function: object, values: list, dtype: object) -> None:
    series = pd.Series(values, dtype=dtype, index=np.arange(10, 10 + len(values)))
    if dtype == "string" or function is address_key:
        series = series.astype("string")
    expected = function(series)
    got = on_distinct(function, series)
    pd.testing.assert_series_equal(got, expected, check_names=False)
    calls: list[int] = []
    on_distinct(lambda text: calls.append(len(text)) or function(text), series)
    assert calls == [series.nunique() + 1]  # each distinct value once, and null once


def test_a_function_of_several_results_is_evaluated_once_per_distinct_value() -> None:
    phones = pd.Series(PHONES, dtype="string", index=np.arange(5, 5 + len(PHONES)))

    def kinds(text: pd.Series) -> pd.DataFrame:
        calls.append(len(text))
        return pd.DataFrame({"placeholder": is_placeholder_phone(text), "tail": text.str[-4:]})

    calls: list[int] = []
    got = on_distinct(kinds, phones)
    pd.testing.assert_frame_equal(got, kinds(phones))
    assert calls[0] == phones.nunique() + 1
    assert got["placeholder"].tolist() == [True, False, False, False, False, False]
    assert got["tail"].tolist() == ["0000", "5678", pd.NA, "5678", "5678", "1234"]


# (name, name, similarity): a single Western given name that `normalize_name` reads as run-together
# pinyin (`Maria` -> `ma ria`) is still part of the full name; an unrelated name is not.
NAME_PAIRS = [
    ("Maria", "Maria Anderson", 0.95),
    ("Elena", "MARTINEZ Elena", 0.95),
    ("Lucia", "Lucia Schmidt", 0.95),
    ("王小明", "Wang Xiaoming", 1.0),
    ("王先生", "王小明", 0.95),
    ("Maria", "Mario Rossi", None),  # below 0.95: Jaro-Winkler only
]


def test_name_similarity_of_a_one_word_name_read_as_pinyin_agrees_with_the_pairs_query() -> None:
    from helpers.core.normalize import normalize_name
    from helpers.engine.base import DuckDBEngine
    from helpers.identity.keys import name_similarity

    keys = normalize_name(pd.Series([n for pair in NAME_PAIRS for n in pair[:2]], dtype="string")).tolist()
    assert keys[:2] == ["ma ria", "anderson maria"]  # the key itself splits the word
    python = [name_similarity(keys[2 * i], keys[2 * i + 1]) for i in range(len(NAME_PAIRS))]
    records = pd.DataFrame(
        {"record_index": range(len(keys)), "name_key": keys, "birth_date": pd.NaT, "gender": None,
         "national_id_hash": None}
    )  # fmt: skip
    identifiers = pd.DataFrame(
        {"record_index": range(len(keys)), "identifier_type": "mobile",
         "identifier_value": [f"+86139000000{i // 2:02d}" for i in range(len(keys))]}
    )  # fmt: skip
    with DuckDBEngine() as engine:
        engine.register("identifiers", identifiers)
        engine.register("records", records)
        pairs = engine.run(
            "identity", "identifier_pairs", tables={"identifiers": "identifiers", "records": "records"}
        )
    sql = pairs.sort_values("left_index")["name_similarity"].tolist()
    assert python == pytest.approx(sql)
    for (*_, expected), got in zip(NAME_PAIRS, python, strict=True):
        assert got < 0.95 if expected is None else got == expected
