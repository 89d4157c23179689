-- Purchase occasions per customer as of $as_of_end (exclusive): one row per customer and calendar day
-- with positive total non-refund amount. Transactions reach customers through the crosswalk record
-- (source_system, source_record_id); rows no record claims are left out (step 03 reports them).
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
