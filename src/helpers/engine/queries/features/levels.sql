-- Levels of the free-text categorical columns the feature queries pivot on, with counts,
-- so the caller can keep the most frequent ones: purchase categories and survey interests.
SELECT 'category' AS kind, category AS level, COUNT(*) AS n
FROM {transactions}
WHERE NOT is_refund AND txn_at < $as_of_end
GROUP BY category
UNION ALL
SELECT 'interest' AS kind, trim(listed) AS level, COUNT(*) AS n
FROM (  -- unnest alone in its SELECT item: Spark refuses a generator nested in an expression
    SELECT unnest(string_split(interests, ';')) AS listed
    FROM {surveys}
    WHERE answered_at < $as_of_end
) AS i
WHERE trim(listed) <> ''
GROUP BY trim(listed)
