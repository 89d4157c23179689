-- What the customer reference of each row of a table keyed by `identifier` is (phone, email,
-- member_no), from {kinds}: one row per distinct reference (`ref`, `kind`), decided in Python.
UPDATE {rows} AS r
SET customer_ref_kind = k.kind
FROM {kinds} AS k
WHERE r.v_customer_ref = k.ref
