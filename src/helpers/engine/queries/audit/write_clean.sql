-- Accepted rows of one table as typed canonical columns, in file order, to Parquet.
-- The pandas metadata makes pandas read nullable ints as Int64 and optional bools as boolean.
COPY (
    SELECT {columns}
    FROM {rows}
    WHERE problems = ''
    ORDER BY source_row
) TO '{path}' (FORMAT parquet, KV_METADATA {{pandas: '{pandas_metadata}'}})
