"""`link_records`: the identity step's method on any one table of person records.

So the merge can be scored on outside files (FEBRL, a held-out person file) without a
benchmark-only adapter: each record becomes a CRM-shaped record and goes through
`merge_identities` (deterministic identifier links, Splink scoring, constrained clustering).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from helpers.core.normalize import normalize_email, normalize_phone
from helpers.core.settings import DataSettings, IdentitySettings
from helpers.core.tables import TABLES
from helpers.identity.merge import IdentityResult, merge_identities

# Columns `link_records` compares; any other column is not used by the method.
LINK_COLUMNS = (
    "id", "name", "given_name", "surname", "birth_date", "gender", "phone", "phone_2", "email",
    "city", "province", "address", "postcode", "national_id_hash",
)  # fmt: skip


def link_records(
    records: pd.DataFrame,
    settings: IdentitySettings | None = None,
    *,
    data: DataSettings | None = None,
    seed: int = 42,
) -> pd.Series:
    """Deduplicate one table of person records; returns the cluster (a customer id) per record id.

    `records` has `id` (unique) and whatever it has of: `name` (or `given_name` and `surname`, any
    script and order), `birth_date` (values that do not parse are dropped, the record still links),
    `gender` (M/F), `phone` and `phone_2` (any format; `data.home_region` / `home_area_code` apply),
    `email`, `city`, `province`, `address`, `postcode`, `national_id_hash`. `settings` is the
    `identity` config section (default: the schema's), `seed` the run seed. The result is indexed
    by `id`, named `cluster`.
    """
    result = link_result(records, settings, data=data, seed=seed)
    ids = records["id"].astype("string").to_numpy()
    cluster = result.crosswalk.set_index("source_record_id")["customer_id"].reindex(ids)
    return pd.Series(np.asarray(cluster), index=pd.Index(ids, name="id"), name="cluster")


def link_result(
    records: pd.DataFrame,
    settings: IdentitySettings | None = None,
    *,
    data: DataSettings | None = None,
    seed: int = 42,
) -> IdentityResult:
    """`link_records` with the whole merge result (records with their deterministic clusters,
    crosswalk keyed by `source_record_id` = `id`, scored pairs, stats), for diagnostics."""
    return merge_identities(
        {"crm": crm_table(records, data or DataSettings())}, settings or IdentitySettings(), seed=seed
    )


def crm_table(records: pd.DataFrame, data: DataSettings) -> pd.DataFrame:
    """`records` (`link_records` columns) as a clean CRM table, phones and e-mails normalized."""
    if "id" not in records:
        raise ValueError(f"link_records needs an `id` column (has {sorted(records.columns)})")
    ids = records["id"].astype("string")
    if ids.isna().any() or ids.duplicated().any():
        bad = int(ids.isna().sum() + ids.duplicated().sum())
        raise ValueError(f"link_records: `id` must be filled and unique ({bad} rows are empty or repeated)")
    if "name" not in records and not {"given_name", "surname"} <= set(records.columns):
        raise ValueError("link_records needs `name`, or `given_name` and `surname`")

    def column(name: str) -> pd.Series:
        """A column as text; a missing column is an empty one."""
        if name in records:
            return records[name].astype("string")
        return pd.Series(pd.NA, index=records.index, dtype="string")

    name = column("name")
    if "name" not in records:
        name = (column("given_name").fillna("") + " " + column("surname").fillna("")).str.strip()
        name = name.where(name != "", pd.NA)
    crm = pd.DataFrame(
        {
            "crm_id": ids,
            "full_name": name,
            "gender": column("gender"),
            "birth_date": pd.to_datetime(column("birth_date"), errors="coerce", format="mixed"),
            "mobile": column("phone"),
            "landline": column("phone_2"),
            "email": column("email"),
            "national_id_hash": column("national_id_hash"),
            "member_no": pd.Series(pd.NA, index=records.index, dtype="string"),
            "customer_type": "consumer",
            "province": column("province"),
            "city": column("city"),
            "address": column("address"),
            "created_at": pd.NaT,
        }
    ).reindex(columns=TABLES["crm_customers"].column_names)
    crm["postcode"] = column("postcode").to_numpy()
    crm.insert(0, "source_record_id", ids)
    crm.insert(0, "source_system", "crm")
    for phone in ("mobile", "landline"):
        crm[f"{phone}_norm"] = normalize_phone(
            crm[phone], home_region=data.home_region, home_area_code=data.home_area_code
        )
    crm["email_norm"] = normalize_email(crm["email"])
    return crm.reset_index(drop=True)
