"""The raw-data contract: which tables a run reads, their columns, types and meaning.

This is the single source for the demo generator, the loader/validator (step 01)
and `data/README.md`. An analyst's own exports map onto these canonical names via
the `data.tables` section of the run config (file, format, encoding, date formats,
column sources, value maps, how events point at their customer).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

ColumnType = Literal["str", "int", "float", "bool", "date", "datetime"]
FileFormat = Literal["csv", "excel", "parquet"]


@dataclass(frozen=True)
class Column:
    """One canonical column of a raw table."""

    name: str
    type: ColumnType
    required: bool
    meaning: str


@dataclass(frozen=True)
class Table:
    """One canonical raw table (one export file)."""

    name: str
    meaning: str
    key: str
    columns: tuple[Column, ...]
    # (column, parent table, parent key): rows whose reference is missing are orphans.
    references: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)
    # Identity tables hold people; event tables hold what they did.
    kind: Literal["identity", "event"] = "identity"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def record_key_columns(self) -> tuple[str, ...]:
        """The columns an event uses to point at an identity record (`cti_id`, or `source_system` and
        `source_customer_id`); none for identity tables."""
        names: list[str] = []
        for column, parent, _ in self.references:
            names += ["source_system", column] if parent == "source_system" else [column]
        return tuple(names)

    def keyed_by(self, key_by: str) -> Table:
        """The table as step 01 reads it for `data.tables.<table>.key_by`.

        Keyed by record the table is as defined. Keyed by an identifier (`key_by` other than `record`),
        an event table gains the identifier columns (`EVENT_REFERENCE_COLUMNS`) with `customer_ref`
        required instead of the record-key columns, and there is no record reference to check.
        """
        if self.kind != "event" or key_by == "record":
            return self
        record_keys = self.record_key_columns
        columns = tuple(replace(c, required=False) if c.name in record_keys else c for c in self.columns)
        reference = (replace(EVENT_REFERENCE_COLUMNS[0], required=True), *EVENT_REFERENCE_COLUMNS[1:])
        return replace(self, columns=(*columns, *reference), references=())


def _c(name: str, type_: ColumnType, required: bool, meaning: str) -> Column:
    return Column(name, type_, required, meaning)


# Optional on every event table; `customer_ref` is required where the table is keyed by an identifier
# (`data.tables.<table>.key_by`: phone, email, member_no or identifier).
EVENT_REFERENCE_COLUMNS: tuple[Column, ...] = (
    _c("customer_ref", "str", False, "The customer's phone, e-mail or member number, as in the file"),
    _c("customer_name", "str", False, "Name the event carries (identity evidence)"),
)

# Source systems that own customer records; events point at (source_system, source_customer_id).
SOURCE_SYSTEMS: dict[str, str] = {
    "crm": "crm_customers",
    "cti": "cti_contacts",
    "shop": "shop_accounts",
    "loyalty": "loyalty_members",
}

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "crm_customers",
            "CRM master: one row per customer record the sales/CRM system holds.",
            key="crm_id",
            columns=(
                _c("crm_id", "str", True, "CRM customer number"),
                _c("full_name", "str", True, "Name as typed (Chinese characters or Latin)"),
                _c("gender", "str", False, "M, F or empty"),
                _c("birth_date", "date", False, "Date of birth"),
                _c("mobile", "str", False, "Mobile phone, any format"),
                _c("landline", "str", False, "Landline or company switchboard, any format"),
                _c("email", "str", False, "E-mail address"),
                _c("national_id_hash", "str", False, "SHA-256 of the national ID number"),
                _c("member_no", "str", False, "Loyalty card number the CRM recorded"),
                _c("customer_type", "str", True, "consumer or business"),
                _c("company_name", "str", False, "Company (business customers)"),
                _c("industry", "str", False, "Industry (business customers)"),
                _c("employee_count", "int", False, "Company size in employees"),
                _c("annual_revenue_cny", "float", False, "Company annual revenue, CNY"),
                _c("province", "str", False, "Province"),
                _c("city", "str", False, "City"),
                _c("address", "str", False, "Street address"),
                _c("created_at", "datetime", True, "When the record was created"),
            ),
        ),
        Table(
            "cti_contacts",
            "Call-center (CTI) caller records: one per caller identity the phone system knows.",
            key="cti_id",
            columns=(
                _c("cti_id", "str", True, "CTI caller id"),
                _c("caller_name", "str", False, "Name the agent typed"),
                _c("phone", "str", True, "Calling number, any format"),
                _c("crm_id", "str", False, "CRM number the agent linked, if any"),
                _c("city", "str", False, "City the caller gave"),
                _c("first_call_at", "datetime", True, "First call from this caller"),
            ),
        ),
        Table(
            "shop_accounts",
            "Online shop accounts, with device and online-use data.",
            key="shop_user_id",
            columns=(
                _c("shop_user_id", "str", True, "Shop account id"),
                _c("display_name", "str", False, "Name on the account"),
                _c("email", "str", False, "Login e-mail"),
                _c("mobile", "str", False, "Mobile phone"),
                _c("gender", "str", False, "M, F or empty"),
                _c("birth_date", "date", False, "Date of birth"),
                _c("province", "str", False, "Province"),
                _c("city", "str", False, "City"),
                _c("registered_at", "datetime", True, "Account creation"),
                _c("primary_device", "str", False, "ios, android, pc or mac"),
                _c("app_installed", "bool", False, "Uses the mobile app"),
                _c("sessions_per_month", "float", False, "Average online sessions per month"),
                _c("online_minutes_per_month", "float", False, "Average minutes online per month"),
            ),
        ),
        Table(
            "loyalty_members",
            "Loyalty program members.",
            key="member_no",
            columns=(
                _c("member_no", "str", True, "Member card number"),
                _c("member_name", "str", True, "Name on the card"),
                _c("phone", "str", False, "Phone"),
                _c("email", "str", False, "E-mail"),
                _c("birth_date", "date", False, "Date of birth"),
                _c("joined_on", "date", True, "Join date"),
                _c("tier", "str", False, "basic, silver, gold or platinum"),
            ),
        ),
        Table(
            "transactions",
            "Purchases and refunds from every sales system.",
            key="txn_id",
            kind="event",
            columns=(
                _c("txn_id", "str", True, "Transaction id"),
                _c("source_system", "str", True, "crm, shop or loyalty"),
                _c("source_customer_id", "str", True, "Customer id in that system"),
                _c("txn_at", "datetime", True, "Timestamp"),
                _c("amount", "float", True, "Amount in CNY, positive; refunds flagged"),
                _c("quantity", "int", True, "Items, positive"),
                _c("category", "str", True, "Product category"),
                _c("channel", "str", True, "store, online, app or phone"),
                _c("is_refund", "bool", True, "True for a refund of an earlier purchase"),
            ),
            references=(("source_customer_id", "source_system", "source_customer_id"),),
        ),
        Table(
            "calls",
            "Call-center interactions.",
            key="call_id",
            kind="event",
            columns=(
                _c("call_id", "str", True, "Call id"),
                _c("cti_id", "str", True, "Caller (cti_contacts.cti_id)"),
                _c("call_at", "datetime", True, "Call start"),
                _c("direction", "str", True, "inbound or outbound"),
                _c("reason", "str", True, "inquiry, complaint, after_sales or sales"),
                _c("duration_sec", "int", True, "Handle time in seconds"),
                _c("resolved", "bool", False, "Resolved on this call"),
                _c("satisfaction", "int", False, "Post-call rating 1-5"),
            ),
            references=(("cti_id", "cti_contacts", "cti_id"),),
        ),
        Table(
            "surveys",
            "Survey answers: CSAT, NPS, stated needs, interests and lifestyle.",
            key="survey_id",
            kind="event",
            columns=(
                _c("survey_id", "str", True, "Response id"),
                _c("source_system", "str", True, "System whose customer answered"),
                _c("source_customer_id", "str", True, "Customer id in that system"),
                _c("answered_at", "datetime", True, "When answered"),
                _c("csat", "int", False, "Satisfaction 1-5"),
                _c("nps", "int", False, "Likelihood to recommend 0-10"),
                _c("interests", "str", False, "Semicolon-separated interests"),
                _c("lifestyle", "str", False, "Stated lifestyle"),
                _c("stated_need", "str", False, "What the customer says they need"),
            ),
            references=(("source_customer_id", "source_system", "source_customer_id"),),
        ),
        Table(
            "marketing_contacts",
            "Marketing touches and responses.",
            key="contact_id",
            kind="event",
            columns=(
                _c("contact_id", "str", True, "Touch id"),
                _c("source_system", "str", True, "System whose customer was contacted"),
                _c("source_customer_id", "str", True, "Customer id in that system"),
                _c("sent_at", "datetime", True, "When sent or called"),
                _c("campaign", "str", True, "Campaign name"),
                _c("channel", "str", True, "email, sms, phone or social"),
                _c("responded", "bool", True, "Opened, replied or picked up"),
                _c("converted", "bool", True, "Bought because of it"),
            ),
            references=(("source_customer_id", "source_system", "source_customer_id"),),
        ),
    )
}

IDENTITY_TABLES = [t for t in TABLES.values() if t.kind == "identity"]
EVENT_TABLES = [t for t in TABLES.values() if t.kind == "event"]
