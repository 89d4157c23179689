-- Every identifier of every customer, once, with whether it is suspicious (never links by itself).
-- {identifiers}: record_index, identifier_type, identifier_value; {customers}: record_index, customer_id
-- {suspicious}: identifier_type, identifier_value (unique)
SELECT DISTINCT c.customer_id,
       i.identifier_type,
       i.identifier_value,
       s.identifier_value IS NOT NULL AS suspicious
FROM {identifiers} i
JOIN {customers} c USING (record_index)
LEFT JOIN {suspicious} s USING (identifier_type, identifier_value)
ORDER BY c.customer_id, i.identifier_type, i.identifier_value
