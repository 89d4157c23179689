"""Category shares: the 'other' remainder is exact zero when the named categories cover the spend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.features.build import CHANNELS, SHARE_NOISE, derive_value_behaviour

LEVELS = ["fashion", "home", "beauty"]


def transactions(spend: list[list[float]]) -> pd.DataFrame:
    """A transactions aggregate of one customer per row of `spend` (per level), all else plain."""
    rows = len(spend)
    frame = pd.DataFrame(
        {
            **{c: 1 for c in ("n_purchases", "n_refunds", "items_total", "frequency_repeat")},
            **{c: 0 for c in ("purchases_last_90d", "purchases_prev_90d", "other_category_breadth")},
            **{c: 0.0 for c in ("refund_amount", "monetary_12m", "spend_last_90d", "spend_prev_90d")},
            **{c: 0.0 for c in ("clv_monetary_repeat", "mean_interpurchase_days", "sd_interpurchase_days")},
            **{c: 0.5 for c in ("weekend_share", "mean_purchase_hour", "morning_share", "evening_share")},
            **{f"season_share_{s}": 0.25 for s in ("spring", "summer", "autumn", "winter")},
            **{f"channel_share_{c}": 1 / len(CHANNELS) for c in CHANNELS},
            "first_purchase_at": pd.Timestamp("2026-01-01"),
            "last_purchase_at": pd.Timestamp("2026-03-01"),
        },
        index=pd.RangeIndex(rows, name="customer_id"),
    )
    for level, values in zip(LEVELS, np.array(spend).T, strict=True):
        frame[f"category_spend_{level}"] = values
    frame["gross_amount"] = np.array(spend).sum(axis=1)
    return frame


def test_other_share_is_zero_when_named_categories_cover_the_spend() -> None:
    # 0.1 + 0.2 + 0.7 (and 1/3 each) leave ~1e-16 of float noise in 1 - sum(shares)
    spend = [[0.1, 0.2, 0.7], [1 / 3, 1 / 3, 1 / 3], [10.0, 20.0, 30.0], [60.0, 30.0, 0.0]]
    frame = transactions(spend)
    frame.loc[3, "gross_amount"] = 100.0  # 10 of 100 spent outside the named categories
    out = derive_value_behaviour(frame, pd.Timestamp("2026-06-30"), LEVELS)
    other = out["category_share_other"].to_numpy()
    assert (other[:3] == 0.0).all()
    assert other[3] == np.float64(0.1) or abs(other[3] - 0.1) < SHARE_NOISE
    shares = out[[f"category_share_{level}" for level in LEVELS]].sum(axis=1) + out["category_share_other"]
    np.testing.assert_allclose(shares, 1.0, atol=1e-12)
