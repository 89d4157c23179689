-- Row-level validation of one raw table (canonical VARCHAR columns, insertion order = file order).
-- Adds the parsed columns (`v_<name>`), the problems of each row and the duplicate / orphan flags.
-- Placeholders are filled from helpers.schema by helpers.contract; $params are the run's limits.
CREATE OR REPLACE TABLE {checked} AS
WITH typed AS (
    SELECT raw.rowid + 1 AS source_row, raw.*, {typed_columns}
    FROM {raw} AS raw
),
flagged AS (
    SELECT typed.*,
        list_filter([{problem_cases}], lambda p: p IS NOT NULL) AS value_problems,
        {orphan_case} AS orphan,
        hash({raw_columns}) AS row_hash
    FROM typed
    {reference_join}
),
copies AS (
    SELECT *, row_number() OVER (PARTITION BY v_{key}, row_hash ORDER BY source_row) AS copy_no
    FROM flagged
),
keyed AS (
    SELECT *,
        row_number() OVER (
            PARTITION BY v_{key}
            ORDER BY copy_no > 1, len(value_problems) > 0 OR orphan, source_row
        ) AS key_no
    FROM copies
)
SELECT * EXCLUDE (row_hash, copy_no, key_no, value_problems),
    copy_no > 1 AS exact_duplicate,
    copy_no = 1 AND key_no > 1 AND v_{key} IS NOT NULL AS duplicate_key,
    len(value_problems) > 0 AS value_problem,
    value_problems
        || CASE WHEN orphan THEN ['orphan reference'] ELSE []::VARCHAR[] END
        || CASE WHEN copy_no > 1 THEN ['exact duplicate row'] ELSE []::VARCHAR[] END
        || CASE WHEN copy_no = 1 AND key_no > 1 AND v_{key} IS NOT NULL
                THEN ['duplicate {key}'] ELSE []::VARCHAR[] END AS problems
FROM keyed
