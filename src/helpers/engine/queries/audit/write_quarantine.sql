-- Rejected rows of one table with their original string values (read again: from the rejected rows'
-- own lines where the reader can, `reading.rejected_rows`, else the whole export, numbered in file
-- order), file row and all reasons.
COPY (
    SELECT rejected.source_row, {raw_columns}, rejected.reason
    FROM (SELECT source_row, problems AS reason FROM {rows} WHERE problems <> '') AS rejected
    JOIN (SELECT {row_number} AS source_row, {mapped_columns} FROM {numbered_source}) AS raw
      ON raw.source_row = rejected.source_row
    ORDER BY rejected.source_row
) TO '{path}' (FORMAT parquet)
