-- Purchase history per customer in one scan, as of the reference date and as of the backtest cut.
-- A purchase occasion is a calendar day with positive total non-refund amount. Transactions reach
-- customers through the crosswalk record (source_system, source_record_id); rows no record claims are
-- left out (step 03 reports them).
-- Parameters: $as_of_end (the day after the reference date, exclusive), $horizon_days.
-- The backtest cut is min($horizon_days, half the history) days before the reference date.
WITH days AS (
    SELECT
        x.customer_id,
        date_trunc('day', t.txn_at) AS day,
        SUM(t.amount) AS amount
    FROM {transactions} AS t
    JOIN {crosswalk} AS x
        ON x.source_system = t.source_system AND x.source_record_id = t.source_customer_id
    WHERE t.txn_at < $as_of_end AND NOT t.is_refund
    GROUP BY 1, 2
    HAVING SUM(t.amount) > 0
),

bounds AS (
    SELECT
        LEAST(
            CAST($horizon_days AS BIGINT),
            date_diff('day', MIN(day), CAST($as_of_end AS TIMESTAMP) - INTERVAL 1 DAY) // 2
        ) AS backtest_days
    FROM days
)

SELECT
    d.customer_id,
    MIN(d.day) AS first_purchase_at,
    MAX(d.day) AS last_purchase_at,
    COUNT(*) AS n_purchases,
    SUM(d.amount) AS monetary_total,
    MIN(d.day) FILTER (WHERE d.day < $as_of_end - to_days(w.backtest_days)) AS cut_first_purchase_at,
    MAX(d.day) FILTER (WHERE d.day < $as_of_end - to_days(w.backtest_days)) AS cut_last_purchase_at,
    COUNT(*) FILTER (WHERE d.day < $as_of_end - to_days(w.backtest_days)) AS cut_n_purchases,
    COUNT(*) FILTER (WHERE d.day >= $as_of_end - to_days(w.backtest_days)) AS n_purchases_after_cut,
    ANY_VALUE(w.backtest_days) AS backtest_days
FROM days AS d
CROSS JOIN bounds AS w
GROUP BY d.customer_id
-- Sorted: the churn model's fits sample customers by position (above 50,000 buyers), and engines
-- return GROUP BY rows in their own order (DuckDB's differs between runs with several threads).
ORDER BY d.customer_id
