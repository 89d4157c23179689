-- Rejected rows of one table with their original string values, file row and all reasons.
COPY (
    SELECT source_row, {raw_columns}, array_to_string(problems, '; ') AS reason
    FROM {checked}
    WHERE len(problems) > 0
    ORDER BY source_row
) TO '{path}' (FORMAT parquet)
