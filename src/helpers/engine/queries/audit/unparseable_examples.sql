-- The first five rows (file row, raw text read again from the export) where one column is filled but
-- did not parse ({unparsed}: the condition over the work table), for the error that stops step 01.
SELECT source_row, {column} AS value
FROM (SELECT {row_number} AS source_row, {mapped_columns} FROM {numbered_source})
WHERE source_row IN (
    SELECT source_row FROM {rows} WHERE {unparsed} ORDER BY source_row LIMIT 5
)
ORDER BY source_row
