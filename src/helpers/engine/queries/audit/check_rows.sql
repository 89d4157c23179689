-- Row-level validation of one raw export, read once. Only what later steps need is stored:
-- `source_row`, the data row in the file (from the numbered scan; or 0, the rows of a
-- strict CSV's parallel scan then numbered by position, `reading.Workspace.create_by_position`), the
-- parsed columns (`v_<name>`), the raw text of values outside a value map or vocabulary
-- (`u_<name>`, NULL otherwise), `customer_ref_kind` and `notes` ({extra_columns}), the problems as
-- '; '-joined text ('' when none; a row that could not be read whole has only its read problem),
-- a bitmask of which raw fields were filled, and a hash of the raw row for exact duplicates.
-- Trimmed text (`t_<name>`, full-width forms as ASCII) is computed once and shared by parsing and checks.
-- Orphans and duplicates are flagged afterwards (flag_orphans.sql, flag_duplicates.sql).
CREATE OR REPLACE TABLE {rows} AS
WITH raw AS (
    SELECT {row_number} AS source_row, {mapped_columns}, {read_problem} AS read_problem FROM {source}
),
flagged AS (  -- rows with a full-width character anywhere: only these are translated
    SELECT raw.*, {wide} AS wide FROM raw
),
trimmed AS (
    SELECT flagged.*, {trimmed_columns} FROM flagged
),
typed AS (
    SELECT trimmed.*, {typed_columns} FROM trimmed
)
SELECT source_row, {typed_names}{extra_columns},
    coalesce(read_problem, concat_ws('; ', {problem_cases})) AS problems,
    problems <> '' AS value_problem,
    false AS orphan,
    false AS exact_duplicate,
    false AS duplicate_key,
    {filled_mask} AS filled,
    hash({raw_names}) AS row_hash
FROM typed
