-- Flag rows whose customer reference has no accepted identity record (identity_keys).
UPDATE {rows} AS r
SET orphan = true, problems = concat_ws('; ', nullif(r.problems, ''), 'orphan reference')
WHERE r.{reference} IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM identity_keys AS k
      WHERE k.ref_system = {system} AND k.ref_key = r.{reference}
  )
