-- Factor-group coverage per identity record: a record has a group when one of its own columns
-- in the group is filled, or when an accepted event of the group points at it.
-- {records}: one SELECT per clean identity table (system, id, one boolean per group).
-- {events}: one SELECT per clean event table (system, id, one boolean per group).
WITH records AS (
    {records}
),
events AS (
    SELECT system, id, {event_any}
    FROM ({events})
    GROUP BY system, id
)
SELECT records.system, count(*) AS records, {counts}
FROM records
LEFT JOIN events USING (system, id)
GROUP BY records.system
ORDER BY records.system
