-- Value and behaviour features per customer from one scan of {transactions}, as of $as_of_end
-- (exclusive: the day after the reference date). Timestamps are truncated to days, never rounded.
-- Events join the crosswalk on (source_system, source_record_id); rows no crosswalk record claims
-- come out under customer_id NULL so the caller can report them.
-- The category_columns placeholder takes generated per-category spend sums, one per level;
-- other_category_breadth counts distinct categories outside those levels (0 when there are none).
-- Weekdays are ISO (1 = Monday ... 7 = Sunday); Spark spells EXTRACT(ISODOW ...) as EXTRACT(DOW_ISO ...).
WITH txn AS (
    SELECT
        x.customer_id,
        t.txn_at,
        date_trunc('day', t.txn_at) AS txn_day,
        EXTRACT(HOUR FROM t.txn_at) AS txn_hour,
        EXTRACT(MONTH FROM t.txn_at) AS txn_month,
        EXTRACT(ISODOW FROM t.txn_at) AS txn_isodow,
        t.amount,
        t.quantity,
        t.category,
        t.channel,
        t.is_refund
    FROM {transactions} AS t
    LEFT JOIN {crosswalk} AS x
        ON x.source_system = t.source_system AND x.source_record_id = t.source_customer_id
    WHERE t.txn_at < $as_of_end
),

purchase_gaps AS (
    SELECT
        customer_id,
        txn_day,
        amount,
        date_diff('day', LAG(txn_day) OVER by_day, txn_day) AS gap_days,
        FIRST_VALUE(txn_day) OVER by_day AS first_day
    FROM txn
    WHERE NOT is_refund
    WINDOW by_day AS (PARTITION BY customer_id ORDER BY txn_day)
),

-- Purchases on one day are one purchase day: a gap > 0 starts a new day (the gaps between days).
per_day AS (
    SELECT
        customer_id,
        SUM(CASE WHEN gap_days > 0 THEN 1 ELSE 0 END) AS frequency_repeat,
        AVG(CASE WHEN gap_days > 0 THEN gap_days END) AS mean_interpurchase_days,
        STDDEV_SAMP(CASE WHEN gap_days > 0 THEN gap_days END) AS sd_interpurchase_days,
        SUM(CASE WHEN txn_day > first_day THEN amount END)
            / NULLIF(SUM(CASE WHEN gap_days > 0 THEN 1 ELSE 0 END), 0) AS clv_monetary_repeat
    FROM purchase_gaps
    GROUP BY customer_id
),

per_txn AS (
    SELECT
        customer_id,
        COUNT(*) AS n_transactions,
        SUM(CASE WHEN NOT is_refund THEN 1 ELSE 0 END) AS n_purchases,
        SUM(CASE WHEN is_refund THEN 1 ELSE 0 END) AS n_refunds,
        COALESCE(SUM(CASE WHEN NOT is_refund THEN amount END), 0) AS gross_amount,
        COALESCE(SUM(CASE WHEN is_refund THEN amount END), 0) AS refund_amount,
        COALESCE(SUM(CASE WHEN txn_day >= $start_12m THEN (CASE WHEN is_refund THEN -amount ELSE amount END) END), 0)
            AS monetary_12m,
        COALESCE(SUM(CASE WHEN NOT is_refund THEN quantity END), 0) AS items_total,
        MIN(CASE WHEN NOT is_refund THEN txn_day END) AS first_purchase_at,
        MAX(CASE WHEN NOT is_refund THEN txn_day END) AS last_purchase_at,
        {other_category_breadth} AS other_category_breadth,
        SUM(CASE WHEN NOT is_refund AND txn_day >= $start_90d THEN 1 ELSE 0 END) AS purchases_last_90d,
        SUM(CASE WHEN NOT is_refund AND txn_day >= $start_180d AND txn_day < $start_90d THEN 1 ELSE 0 END)
            AS purchases_prev_90d,
        COALESCE(SUM(CASE WHEN NOT is_refund AND txn_day >= $start_90d THEN amount END), 0) AS spend_last_90d,
        COALESCE(SUM(CASE WHEN NOT is_refund AND txn_day >= $start_180d AND txn_day < $start_90d THEN amount END), 0)
            AS spend_prev_90d,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_isodow IN (6, 7) THEN 1.0 ELSE 0.0 END) END)
            AS weekend_share,
        AVG(CASE WHEN NOT is_refund THEN txn_hour END) AS mean_purchase_hour,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_hour < 12 THEN 1.0 ELSE 0.0 END) END) AS morning_share,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_hour >= 18 THEN 1.0 ELSE 0.0 END) END) AS evening_share,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_month IN (3, 4, 5) THEN 1.0 ELSE 0.0 END) END)
            AS season_share_spring,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_month IN (6, 7, 8) THEN 1.0 ELSE 0.0 END) END)
            AS season_share_summer,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_month IN (9, 10, 11) THEN 1.0 ELSE 0.0 END) END)
            AS season_share_autumn,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN txn_month IN (12, 1, 2) THEN 1.0 ELSE 0.0 END) END)
            AS season_share_winter,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN channel = 'store' THEN 1.0 ELSE 0.0 END) END) AS channel_share_store,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN channel = 'online' THEN 1.0 ELSE 0.0 END) END)
            AS channel_share_online,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN channel = 'app' THEN 1.0 ELSE 0.0 END) END) AS channel_share_app,
        AVG(CASE WHEN NOT is_refund THEN (CASE WHEN channel = 'phone' THEN 1.0 ELSE 0.0 END) END) AS channel_share_phone,
        {category_columns}
    FROM txn
    GROUP BY customer_id
)

SELECT
    per_txn.*,
    per_day.frequency_repeat,
    per_day.mean_interpurchase_days,
    per_day.sd_interpurchase_days,
    per_day.clv_monetary_repeat
FROM per_txn
LEFT JOIN per_day ON per_day.customer_id IS NOT DISTINCT FROM per_txn.customer_id
