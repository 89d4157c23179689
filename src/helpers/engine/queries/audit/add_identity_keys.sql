-- Add the keys of one checked identity table ({system}: its source system as a literal) to identity_keys,
-- one row per key: accepted when any record with the key was accepted. The systems differ between
-- identity tables, so identity_keys holds each (ref_system, ref_key) once and every event table is
-- checked against it as it is (flag_orphans.sql), without grouping the keys again.
INSERT INTO identity_keys
SELECT {system}, {key}, bool_or(problems = '') FROM {rows} WHERE {key} IS NOT NULL GROUP BY {key}
