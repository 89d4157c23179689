-- The crosswalk as later steps read it: every record of step 02's crosswalk, plus the keys of the events
-- step 02 resolved from an identifier: ('{system}', customer_id) and, for calls, ('cti', '~' || customer_id).
CREATE OR REPLACE VIEW {name} AS
WITH resolved AS (SELECT DISTINCT customer_id FROM {resolution} WHERE customer_id IS NOT NULL)
SELECT source_system, source_record_id, customer_id FROM {crosswalk}
UNION ALL
SELECT '{system}', customer_id, customer_id FROM resolved
UNION ALL
SELECT 'cti', '~' || customer_id, customer_id FROM resolved
