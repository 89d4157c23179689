-- Input, accepted and quarantined rows of one checked table, with the problem classes.
SELECT
    '{table}' AS "table",
    count(*) AS input_rows,
    count(*) FILTER (WHERE problems = '') AS accepted_rows,
    count(*) FILTER (WHERE problems <> '') AS quarantined_rows,
    count(*) FILTER (WHERE value_problem) AS value_problem_rows,
    count(*) FILTER (WHERE exact_duplicate) AS exact_duplicate_rows,
    count(*) FILTER (WHERE duplicate_key) AS duplicate_key_rows,
    count(*) FILTER (WHERE orphan) AS orphan_rows
FROM {rows}
