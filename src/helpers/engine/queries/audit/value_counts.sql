-- The distinct filled values of one column of the accepted rows of one checked table, with their rows.
SELECT {column} AS value, count(*) AS rows
FROM {rows}
WHERE problems = '' AND {column} IS NOT NULL
GROUP BY {column}
