-- Survey features per customer from one scan of {surveys}, as of $as_of_end (exclusive).
-- Lifestyle and stated need are the latest non-empty answers. The interest_columns placeholder takes generated
-- 0/1 flags, one per interest level, 1 when any answer lists that interest.
WITH s AS (
    SELECT
        x.customer_id,
        s.answered_at,
        s.csat,
        s.nps,
        list_transform(string_split(COALESCE(s.interests, ''), ';'), lambda i: trim(i)) AS interest_list,
        s.lifestyle,
        s.stated_need
    FROM {surveys} AS s
    LEFT JOIN {crosswalk} AS x
        ON x.source_system = s.source_system AND x.source_record_id = s.source_customer_id
    WHERE s.answered_at < $as_of_end
)

SELECT
    customer_id,
    COUNT(*) AS n_surveys,
    AVG(csat) AS csat_mean,
    AVG(nps) AS nps_mean,
    max_by(lifestyle, CASE WHEN lifestyle IS NOT NULL THEN answered_at END) AS lifestyle,
    max_by(stated_need, CASE WHEN stated_need IS NOT NULL THEN answered_at END) AS stated_need,
    {interest_columns}
FROM s
GROUP BY customer_id
