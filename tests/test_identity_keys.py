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
