-- Among rows sharing a key: later identical copies (same raw-row hash) are exact duplicates; of
-- the rest, every row but the first without problems (else the first) is a duplicate key. Only
-- keys seen more than once are ranked, so the window runs on a handful of rows; they are found by
-- their hash (grouping 64-bit numbers instead of the key text; a collision only adds a candidate,
-- the window partitions by the key itself). Rows are matched by
-- `source_row` (unique per file row), not DuckDB's rowid, so the text also runs on Spark.
UPDATE {rows} AS r
SET exact_duplicate = d.copy_no > 1,
    duplicate_key = d.copy_no = 1 AND d.key_no > 1,
    problems = concat_ws('; ', nullif(r.problems, ''),
                         CASE WHEN d.copy_no > 1 THEN 'exact duplicate row' ELSE 'duplicate {key}' END)
FROM (
    SELECT source_row, copy_no,
        row_number() OVER (PARTITION BY v_{key} ORDER BY copy_no > 1, problems <> '', source_row) AS key_no
    FROM (
        SELECT source_row, v_{key}, problems,
            row_number() OVER (PARTITION BY v_{key}, row_hash ORDER BY source_row) AS copy_no
        FROM {rows}
        WHERE hash(v_{key}) IN (
            SELECT hash(v_{key}) FROM {rows} WHERE v_{key} IS NOT NULL GROUP BY 1 HAVING count(*) > 1
        )
    )
) AS d
WHERE r.source_row = d.source_row AND (d.copy_no > 1 OR d.key_no > 1)
