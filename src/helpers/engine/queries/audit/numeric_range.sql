-- Range and outliers of one numeric column over the accepted rows of one checked table.
-- Outliers lie more than 3 interquartile ranges outside the quartiles.
WITH accepted AS (
    SELECT CAST({column} AS DOUBLE) AS x FROM {rows} WHERE problems = '' AND {column} IS NOT NULL
),
quartiles AS (
    SELECT approx_quantile(x, 0.25) AS q1, approx_quantile(x, 0.75) AS q3 FROM accepted
)
SELECT
    count(*) AS n,
    min(x) AS min,
    approx_quantile(x, 0.01) AS p01,
    approx_quantile(x, 0.5) AS median,
    avg(x) AS mean,
    approx_quantile(x, 0.99) AS p99,
    max(x) AS max,
    count(*) FILTER (WHERE x < q1 - 3 * (q3 - q1) OR x > q3 + 3 * (q3 - q1)) AS outliers
FROM accepted, quartiles
