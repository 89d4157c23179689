-- A clean event table as later steps read it: rows step 02 resolved from an identifier carry a record
-- key that the crosswalk view maps to their customer ({keys} replaces the record-key columns).
-- {events}: the clean table; {resolution}: event_table, source_row, customer_id; {table}: its name.
CREATE OR REPLACE VIEW {name} AS
SELECT e.* REPLACE ({keys})
FROM {events} AS e
LEFT JOIN (
    SELECT source_row, customer_id FROM {resolution} WHERE event_table = '{table}' AND customer_id IS NOT NULL
) AS r ON r.source_row = e.source_row
