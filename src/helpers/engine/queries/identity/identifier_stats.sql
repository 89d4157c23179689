-- How many records and how many distinct people (by name key and birth date) share each identifier.
-- {identifiers}: record_index, identifier_type, identifier_value; {records}: record_index, name_key, birth_date
SELECT i.identifier_type,
       i.identifier_value,
       count(*) AS n_records,
       count(DISTINCT r.name_key) AS n_names,
       count(DISTINCT r.birth_date) AS n_birth_dates
FROM {identifiers} i
JOIN {records} r USING (record_index)
GROUP BY ALL
HAVING count(*) > 1
