-- Accepted rows per calendar month of one date column of one checked table.
SELECT date_trunc('month', {column}) AS month, count(*) AS rows
FROM {rows}
WHERE problems = '' AND {column} IS NOT NULL
GROUP BY ALL
ORDER BY month
