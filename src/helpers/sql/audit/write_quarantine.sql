-- Rejected rows of one table with their original string values, file row and all reasons.
COPY (
    SELECT rowid + 1 AS source_row, {raw_columns}, problems AS reason
    FROM {rows}
    WHERE problems <> ''
    ORDER BY rowid
) TO '{path}' (FORMAT parquet)
