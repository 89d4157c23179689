"""`helpers.identity.keys.on_distinct`: a text function evaluated once per distinct value gives what it
gives row by row, nulls included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers.core.normalize import canonical_email, is_placeholder_email, is_placeholder_phone
from helpers.identity.keys import address_key, on_distinct

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
