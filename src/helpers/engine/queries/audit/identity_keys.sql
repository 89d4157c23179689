-- The keys of every identity record read so far, one row per key, and whether a record with the key
-- was accepted: what events keyed by record are checked against (flag_orphans.sql). Filled by
-- add_identity_keys.sql.
CREATE OR REPLACE TABLE identity_keys (ref_system VARCHAR, ref_key VARCHAR, accepted BOOLEAN)
