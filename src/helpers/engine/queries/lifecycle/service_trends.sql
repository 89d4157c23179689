-- Service trend per customer as of $as_of_end (exclusive): complaints and satisfaction in the recent
-- window [$recent_start, $as_of_end) against the window before it [$before_start, $recent_start).
-- Satisfaction pools post-call ratings (1-5) and survey CSAT (1-5). Calls reach customers through the
-- crosswalk record ('cti', cti_id); surveys through (source_system, source_record_id).
WITH ratings AS (
    SELECT x.customer_id, c.call_at AS event_at, c.reason = 'complaint' AS is_complaint, c.satisfaction AS score
    FROM {calls} AS c
    JOIN {crosswalk} AS x ON x.source_system = 'cti' AND x.source_record_id = c.cti_id
    WHERE c.call_at >= $before_start AND c.call_at < $as_of_end
    UNION ALL
    SELECT x.customer_id, s.answered_at AS event_at, FALSE AS is_complaint, s.csat AS score
    FROM {surveys} AS s
    JOIN {crosswalk} AS x
        ON x.source_system = s.source_system AND x.source_record_id = s.source_customer_id
    WHERE s.answered_at >= $before_start AND s.answered_at < $as_of_end
)
SELECT
    customer_id,
    SUM(CASE WHEN is_complaint AND event_at >= $recent_start THEN 1 ELSE 0 END) AS complaints_recent,
    SUM(CASE WHEN is_complaint AND event_at < $recent_start THEN 1 ELSE 0 END) AS complaints_before,
    AVG(CASE WHEN event_at >= $recent_start THEN score END) AS satisfaction_recent,
    AVG(CASE WHEN event_at < $recent_start THEN score END) AS satisfaction_before
FROM ratings
GROUP BY customer_id
