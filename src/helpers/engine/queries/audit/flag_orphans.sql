-- Flag rows whose customer reference has no accepted identity record (identity_keys).
-- A reference to a record that exists but was quarantined is named as such, not as an orphan:
-- the fix belongs to the identity table, and integrity counts true orphans only.
UPDATE {rows} AS r
SET orphan = NOT EXISTS (
        SELECT 1 FROM identity_keys AS k
        WHERE k.ref_system = {system} AND k.ref_key = r.{reference}
    ),
    problems = concat_ws(
        '; ',
        nullif(r.problems, ''),
        CASE
            WHEN EXISTS (
                SELECT 1 FROM identity_keys AS k
                WHERE k.ref_system = {system} AND k.ref_key = r.{reference}
            ) THEN 'reference to a quarantined record'
            ELSE 'orphan reference'
        END
    )
WHERE r.{reference} IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM identity_keys AS k
      WHERE k.ref_system = {system} AND k.ref_key = r.{reference} AND k.accepted
  )
