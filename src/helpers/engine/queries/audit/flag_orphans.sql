-- Flag rows whose customer reference has no accepted identity record (identity_keys).
-- A reference to a record that exists but was quarantined is named as such, not as an orphan:
-- the fix belongs to the identity table, and integrity counts true orphans only.
-- One outer join of the rows with the keys (one row per key, `add_identity_keys.sql`: known, and
-- whether any record with the key is accepted) finds the rows concerned; only those are updated
-- ({system}: `r.<column>` or a literal).
UPDATE {rows} AS target
SET orphan = NOT f.known,
    problems = concat_ws(
        '; ',
        nullif(target.problems, ''),
        CASE WHEN f.known THEN 'reference to a quarantined record' ELSE 'orphan reference' END
    )
FROM (
    SELECT r.source_row, k.accepted IS NOT NULL AS known
    FROM {rows} AS r
    LEFT JOIN identity_keys AS k ON k.ref_system = {system} AND k.ref_key = r.{reference}
    WHERE r.{reference} IS NOT NULL AND NOT coalesce(k.accepted, false)
) AS f
WHERE target.source_row = f.source_row
