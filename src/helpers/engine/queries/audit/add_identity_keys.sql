-- Add the keys of one checked identity table ({system}: its source system as a literal) to identity_keys.
INSERT INTO identity_keys
SELECT {system}, {key}, problems = '' FROM {rows} WHERE {key} IS NOT NULL
