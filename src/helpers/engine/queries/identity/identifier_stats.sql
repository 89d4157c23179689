-- How many records and how many distinct people (by name key and birth date) share each identifier.
-- {identifiers}: record_index, identifier_type, identifier_value; {records}: record_index, name_key, birth_date
-- Only the rows of identifiers several records hold are joined to their records and counted (100k
-- customers: 333k of 547k rows); counting over every row took about a quarter longer on both engines.
WITH shared AS (
    SELECT identifier_type, identifier_value FROM {identifiers} GROUP BY ALL HAVING count(*) > 1
)
SELECT i.identifier_type,
       i.identifier_value,
       count(*) AS n_records,
       count(DISTINCT r.name_key) AS n_names,
       count(DISTINCT r.birth_date) AS n_birth_dates
FROM {identifiers} i
JOIN shared s ON s.identifier_type = i.identifier_type AND s.identifier_value = i.identifier_value
JOIN {records} r ON r.record_index = i.record_index
GROUP BY i.identifier_type, i.identifier_value
HAVING count(*) > 1
