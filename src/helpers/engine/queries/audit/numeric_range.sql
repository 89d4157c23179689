-- Range and outliers of one numeric column over the accepted rows of one checked table.
-- Outliers lie more than 3 interquartile ranges outside the quartiles.
-- Exact and order-independent, so two runs on the same data agree to the last digit: the quantiles
-- come from one exact sort (quantile_cont, not the T-digest of approx_quantile, whose result depends
-- on how threads split the rows) and the mean from an exact decimal sum.
WITH accepted AS (
    SELECT CAST({column} AS DOUBLE) AS x FROM {rows} WHERE problems = '' AND {column} IS NOT NULL
),
quantiles AS (
    SELECT quantile_cont(x, [0.01, 0.25, 0.5, 0.75, 0.99]) AS q FROM accepted
),
parts AS (
    SELECT q[1] AS p01, q[2] AS q1, q[3] AS median, q[4] AS q3, q[5] AS p99 FROM quantiles
)
SELECT
    count(*) AS n,
    min(x) AS min,
    any_value(p01) AS p01,
    any_value(median) AS median,
    CAST(avg(CAST(x AS DECIMAL(38, 6))) AS DOUBLE) AS mean,
    any_value(p99) AS p99,
    max(x) AS max,
    count(*) FILTER (WHERE x < q1 - 3 * (q3 - q1) OR x > q3 + 3 * (q3 - q1)) AS outliers
FROM accepted, parts
