-- Rows of one work table.
SELECT count(*) AS rows FROM {rows}
