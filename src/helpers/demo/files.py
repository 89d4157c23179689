"""The default demo world's raw files: names, encodings and date formats (mirrors config/demo.yml)."""

from __future__ import annotations

from dataclasses import dataclass

ISO_DATE, ISO_DATETIME = "%Y-%m-%d", "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class RawFile:
    """How the demo writes one canonical table (mirrors `data.tables` in config/demo.yml)."""

    file: str
    encoding: str = "utf-8"
    date_format: str = ISO_DATE
    datetime_format: str = ISO_DATETIME
    sheet: str | None = None


RAW_FILES: dict[str, RawFile] = {
    "crm_customers": RawFile("crm_customers.csv"),
    "cti_contacts": RawFile("cti_contacts.csv", encoding="gbk", datetime_format="%Y/%m/%d %H:%M:%S"),
    "shop_accounts": RawFile("shop_accounts.csv"),
    "loyalty_members": RawFile("loyalty_members.xlsx", sheet="members"),
    "transactions": RawFile("transactions.csv"),
    "calls": RawFile("calls.csv", datetime_format="%d/%m/%Y %H:%M"),
    "surveys": RawFile("surveys.csv"),
    "marketing_contacts": RawFile("marketing_contacts.csv"),
}
