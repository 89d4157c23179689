-- Marketing-response features per customer from one scan of {marketing_contacts}, as of $as_of_end.
WITH m AS (
    SELECT x.customer_id, m.sent_at, m.campaign, m.responded, m.converted
    FROM {marketing_contacts} AS m
    LEFT JOIN {crosswalk} AS x
        ON x.source_system = m.source_system AND x.source_record_id = m.source_customer_id
    WHERE m.sent_at < $as_of_end
)

SELECT
    customer_id,
    COUNT(*) AS n_marketing_contacts,
    COUNT(DISTINCT campaign) AS n_campaigns,
    SUM(CASE WHEN responded THEN 1 ELSE 0 END) AS n_responses,
    SUM(CASE WHEN converted THEN 1 ELSE 0 END) AS n_conversions,
    MAX(date_trunc('day', sent_at)) AS last_marketing_at
FROM m
GROUP BY customer_id
