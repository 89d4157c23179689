"""The factor groups of customer information, defined once: names, order, what each describes and
which canonical columns ("table.column") feed it.

Step 01 measures how many customer records have data for each group (from the `feeds`); step 03
builds the features of each group and weights them in the model matrix (`features.groups`, whose
keys are these groups plus the pseudo-group `lifecycle`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FactorGroup:
    """One factor group. `feeds` are the canonical columns whose values give the group its data;
    a group computed from another group's data (`derived_from`) has no feeds of its own."""

    name: str
    description: str
    feeds: tuple[str, ...] = ()
    derived_from: str | None = None


FACTOR_GROUPS: tuple[FactorGroup, ...] = (
    FactorGroup(
        "value", "Purchases and spend: recency, frequency, net spend, order value, refunds, RFM, value tier",
        ("transactions.amount", "transactions.is_refund"),
    ),
    FactorGroup(
        "lifetime_value", "Expected future purchases and 12-month CLV, modelled from the purchase history",
        derived_from="value",
    ),
    FactorGroup(
        "behaviour", "How customers buy: timing, regularity, category and channel mix, recent trend",
        ("transactions.txn_at", "transactions.category", "transactions.channel"),
    ),
    FactorGroup(
        "service", "Calls and surveys: contact rate, reasons, complaints, resolution, satisfaction, NPS",
        ("calls.reason", "calls.duration_sec", "calls.resolved", "calls.satisfaction", "surveys.csat",
         "surveys.nps"),
    ),
    FactorGroup(
        "marketing", "Response to marketing touches: contacts, campaigns, response and conversion rates",
        ("marketing_contacts.responded", "marketing_contacts.converted"),
    ),
    FactorGroup(
        "demographic", "Age and gender",
        ("crm_customers.gender", "crm_customers.birth_date", "shop_accounts.gender",
         "shop_accounts.birth_date", "loyalty_members.birth_date"),
    ),
    FactorGroup(
        "geographic", "Where customers live: province and city tier",
        ("crm_customers.province", "crm_customers.city", "cti_contacts.city", "shop_accounts.province",
         "shop_accounts.city"),
    ),
    FactorGroup(
        "technographic", "Devices, app use and time online",
        ("shop_accounts.primary_device", "shop_accounts.app_installed", "shop_accounts.sessions_per_month",
         "shop_accounts.online_minutes_per_month"),
    ),
    FactorGroup(
        "psychographic", "Stated interests, lifestyle and needs (surveys)",
        ("surveys.interests", "surveys.lifestyle", "surveys.stated_need"),
    ),
    FactorGroup(
        "firmographic", "Business customers: industry, company size and revenue",
        ("crm_customers.company_name", "crm_customers.industry", "crm_customers.employee_count",
         "crm_customers.annual_revenue_cny"),
    ),
)  # fmt: skip
GROUP_NAMES: tuple[str, ...] = tuple(group.name for group in FACTOR_GROUPS)
FACTOR_GROUP_BY_NAME: dict[str, FactorGroup] = {group.name: group for group in FACTOR_GROUPS}
# Groups with source columns of their own: the ones step 01 can measure in the raw data.
SOURCE_GROUPS: tuple[FactorGroup, ...] = tuple(group for group in FACTOR_GROUPS if group.feeds)

LIFECYCLE = "lifecycle"  # model-matrix pseudo-group of the lifecycle-dependent features (step 03)
LIFECYCLE_DESCRIPTION = (
    "Lifecycle-dependent features (tenure, recency, counts that grow with time, CLV outputs): "
    "in the model matrix only with a weight above 0"
)
