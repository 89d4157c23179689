-- The most frequent values of one column outside its value map and vocabulary ({column}: the `u_`
-- column of the work table, NULL for other values), cut to 40 characters, with their rows.
SELECT left({column}, 40) AS value, count(*) AS rows
FROM {rows}
WHERE {column} IS NOT NULL
GROUP BY 1
ORDER BY rows DESC, value
LIMIT {top}
