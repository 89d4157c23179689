-- Service features per customer from one scan of {calls}, as of $as_of_end (exclusive).
-- Calls reach customers through the crosswalk record (source_system 'cti', cti_id); calls whose
-- caller no crosswalk record claims come out under customer_id NULL.
-- A repeat contact is a call within $repeat_days days (by calendar day) of the customer's previous call.
WITH c AS (
    SELECT
        x.customer_id,
        c.call_at,
        date_trunc('day', c.call_at) AS call_day,
        c.direction,
        c.reason,
        c.duration_sec,
        c.resolved,
        c.satisfaction
    FROM {calls} AS c
    LEFT JOIN {crosswalk} AS x
        ON x.source_system = 'cti' AND x.source_record_id = c.cti_id
    WHERE c.call_at < $as_of_end
),

ordered AS (
    SELECT
        *,
        date_diff('day', LAG(call_day) OVER (PARTITION BY customer_id ORDER BY call_at), call_day) AS days_since_prev
    FROM c
)

SELECT
    customer_id,
    COUNT(*) AS n_calls,
    SUM(CASE WHEN call_day >= $start_12m THEN 1 ELSE 0 END) AS n_calls_12m,
    SUM(CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END) AS n_inbound,
    SUM(CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END) AS n_outbound,
    SUM(CASE WHEN reason = 'complaint' THEN 1 ELSE 0 END) AS n_complaints,
    SUM(CASE WHEN reason = 'inquiry' THEN 1 ELSE 0 END) AS n_inquiries,
    SUM(CASE WHEN reason = 'after_sales' THEN 1 ELSE 0 END) AS n_after_sales,
    SUM(CASE WHEN reason = 'sales' THEN 1 ELSE 0 END) AS n_sales_calls,
    AVG(CASE WHEN resolved THEN 1.0 WHEN NOT resolved THEN 0.0 END) AS first_contact_resolution,
    AVG(duration_sec) AS avg_handle_sec,
    AVG(satisfaction) AS call_satisfaction_mean,
    SUM(CASE WHEN days_since_prev <= $repeat_days THEN 1 ELSE 0 END) AS n_repeat_contacts,
    MIN(call_day) AS first_call_at,
    MAX(call_day) AS last_call_at
FROM ordered
GROUP BY customer_id
