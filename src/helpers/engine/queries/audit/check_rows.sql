-- Row-level validation of one raw export, read once in file order (insertion order is kept, so
-- the table's rowid + 1 is the data row in the file). Only what later steps need is stored:
-- the parsed columns (`v_<name>`), the value problems as '; '-joined text ('' when none), a
-- bitmask of which raw fields were filled, and a hash of the raw row for exact duplicates.
-- Trimmed text (`t_<name>`) is computed once and shared by parsing and checks.
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
SELECT {typed_names},
    concat_ws('; ', {problem_cases}) AS problems,
    problems <> '' AS value_problem,
    false AS orphan,
    false AS exact_duplicate,
    false AS duplicate_key,
    {filled_mask} AS filled,
    hash({raw_names}) AS row_hash
FROM typed
