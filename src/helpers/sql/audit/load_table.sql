-- Copy one raw export into the work database as canonical VARCHAR columns, in file order.
CREATE OR REPLACE TABLE {target} AS
SELECT {columns}
FROM {source}
