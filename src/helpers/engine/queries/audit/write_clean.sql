-- Accepted rows of one table as typed canonical columns, in file order, to Parquet (the order clause
-- is `ORDER BY source_row`, or nothing when the work table holds its rows in file order already).
-- The pandas metadata makes pandas read nullable ints as Int64 and optional bools as boolean.
COPY (
    SELECT {columns}
    FROM {rows}
    WHERE problems = ''
    {order_by}
) TO '{path}' (FORMAT parquet, KV_METADATA {{pandas: '{pandas_metadata}'}})
