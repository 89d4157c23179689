-- Row-level validation of one raw export, read once in file order (insertion order is kept, so
-- the table's rowid + 1 is the data row in the file): the raw text columns, the parsed columns
-- (`v_<name>`) and the value problems of each row as '; '-joined text ('' when none).
-- Trimmed text (`t_<name>`) is computed once and shared by parsing and checks, then dropped.
-- Orphans and duplicates are flagged afterwards (flag_orphans.sql, flag_duplicates.sql).
CREATE OR REPLACE TABLE {rows} AS
WITH raw AS (
    SELECT {mapped_columns} FROM {source}
),
trimmed AS (
    SELECT raw.*, {trimmed_columns} FROM raw
),
typed AS (
    SELECT trimmed.*, {typed_columns} FROM trimmed
)
SELECT * EXCLUDE ({trimmed_names}),
    concat_ws('; ', {problem_cases}) AS problems,
    problems <> '' AS value_problem,
    false AS orphan,
    false AS exact_duplicate,
    false AS duplicate_key
FROM typed
