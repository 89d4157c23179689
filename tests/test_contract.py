"""The data contract of step 01: loading per config, structural errors, quarantine reasons, ledger."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from helpers.audit.contract import DataContractError, run_contract
from helpers.core.context import StepContext
from helpers.core.tables import TABLES
from helpers.engine.reading import Workspace

REFERENCE_DATE = "2026-06-30"
CONFIG: dict[str, Any] = {
    "run": {"seed": 1, "reference_date": REFERENCE_DATE},
    "data": {
        "raw_dir": "",
        "tables": {
            "crm_customers": {
                "file": "crm_customers.csv",
                "format": "csv",
                "encoding": "utf-8",
                "columns": {"crm_id": "CustomerNo", "full_name": "Name"},
            },
            "cti_contacts": {
                "file": "cti_contacts.csv",
                "format": "csv",
                "encoding": "gbk",
                "datetime_format": "%Y/%m/%d %H:%M:%S",
            },
            "shop_accounts": {"file": "shop_accounts.parquet", "format": "parquet"},
            "loyalty_members": {"file": "loyalty_members.xlsx", "format": "excel", "sheet": "members"},
            "transactions": {"file": "transactions.csv", "format": "csv", "encoding": "utf-8"},
            "calls": {
                "file": "calls.csv",
                "format": "csv",
                "encoding": "utf-8",
                "datetime_format": "%d/%m/%Y %H:%M",
            },
            "surveys": {"file": "surveys.csv", "format": "csv", "encoding": "utf-8"},
            "marketing_contacts": {"file": "marketing_contacts.csv", "format": "csv", "encoding": "utf-8"},
        },
    },
    "audit": {
        "min_age": 14,
        "max_age": 100,
        "max_unparseable_share": 0.5,
        # A zoo of planted defects: most of its tiny tables is quarantined on purpose.
        "warn_quarantine_share": 1.0,
        "max_quarantine_share": 1.0,
        "memory_limit": "1GB",
        "threads": 1,
    },
}

# Each row: the table's canonical columns in order. Comments name the planted defect.
CRM = [
    [
        "CRM001",
        "王伟",
        "M",
        "1980-05-01",
        "138 1234 5678",
        "010-62345678",
        "Wang.Wei@Example.com ",
        "h1",
        "L001",
        "consumer",
        "",
        "",
        "",
        "",
        "北京",
        "北京",
        "朝阳路1号",
        "2023-01-05 10:00:00",
    ],
    [
        "CRM002",
        "Li Na",
        "f",
        "1990-02-30",
        "0086 139-0000-1111",
        "",
        "li.na@example",
        "",
        "",
        "business",
        "Acme",
        "retail",
        "120",
        "5000000.5",
        "上海",
        "上海",
        "",
        "2023-02-01 09:30:00",
    ],  # bad birth date (dropped, record kept); bad email
    [
        "CRM003",
        "张三",
        "X",
        "1900-01-01",
        "12345",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2023-03-01 00:00:00",
    ],  # impossible age (birth date dropped); bad phone; bad gender (kept)
    [
        "CRM004",
        "",
        "M",
        "",
        "",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2023-03-02 00:00:00",
    ],  # no name
    [
        "CRM005",
        "赵六",
        "F",
        "2015-01-01",
        "",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2023-03-03 00:00:00",
    ],  # younger than min_age: birth date dropped, record kept
    [
        "CRM006",
        "钱七",
        "F",
        "1985-07-07",
        "13800000007",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2023-03-04 00:00:00",
    ],
    [
        "CRM006",
        "钱七七",
        "F",
        "1985-07-07",
        "",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2023-03-05 00:00:00",
    ],  # duplicate key
    [
        "CRM007",
        "孙八",
        "M",
        "1970-01-01",
        "",
        "",
        "",
        "",
        "",
        "consumer",
        "",
        "",
        "",
        "",
        "",
        "",
        "",
        "2027-01-01 00:00:00",
    ],  # created after reference date
]
CTI = [
    ["CTI01", "王先生", "13812345678", "CRM001", "北京", "2023/01/06 08:00:00"],
    ["CTI02", "李女士", "+86 139 0000 1111", "", "上海", "2023/02/30 08:00:00"],  # bad datetime
    ["CTI03", "", "", "", "", "2023/03/01 08:00:00"],  # missing phone
]
SHOP = [
    [
        "S1",
        "wangwei",
        "WANG.WEI@example.com",
        "13812345678",
        "M",
        "1980-05-01",
        "北京",
        "北京",
        "2023-01-10 12:00:00",
        "iOS",
        "true",
        "12.5",
        "300",
    ],
    ["S2", "lina", "", "", "", "", "", "", "2023-02-10 12:00:00", "blackberry", "maybe", "", "-3"],  # kept
]
LOYALTY = [
    ["L001", "王伟", "13812345678", "", "1980-05-01", "2023-01-15", "Gold"],
    ["L002", "李娜", "", "", "", "not a date", "basic"],  # unparseable joined_on
]
TRANSACTIONS = [
    ["T1", "crm", "CRM001", "2024-01-01 10:00:00", "100.5", "2", "food", "store", "false"],
    ["T2", "shop", "S1", "2024-02-01 10:00:00", "-20", "1", "food", "online", "true"],  # refund: fine
    ["T3", "crm", "CRM001", "2024-03-01 10:00:00", "-5", "-1", "food", "store", "false"],  # neg qty + amount
    ["T4", "crm", "CRM999", "2024-03-02 10:00:00", "10", "1", "food", "store", "false"],  # orphan
    ["T5", "crm", "CRM001", "2026-07-02 10:00:00", "10", "1", "food", "app", "false"],  # after reference
    ["T1", "crm", "CRM001", "2024-01-01 10:00:00", "100.5", "2", "food", "store", "false"],  # exact duplicate
    ["T6", "crm", "CRM004", "2024-03-03 10:00:00", "10", "1", "food", "store", "0"],  # CRM004 quarantined
    ["T7", "loyalty", "L001", "2024-03-04", "abc", "1", "toys", "phone", "1"],  # unparseable amount
    ["T8", "crm", "CRM006", "2024-03-05 10:00:00", "10", "1", "food", "fax", "no"],  # invalid channel
]
CALLS = [
    ["K1", "CTI01", "06/01/2024 09:15", "inbound", "complaint", "300", "true", "4"],
    ["K2", "CTI09", "07/01/2024 09:15", "inbound", "inquiry", "60", "", ""],  # orphan
    ["K3", "CTI01", "08/01/2024 09:15", "outbound", "sales", "-5", "false", "9"],  # neg duration, bad rating
]
SURVEYS = [
    ["V1", "crm", "CRM001", "2024-05-01 10:00:00", "5", "9", "travel;tech", "urban", "fast delivery"],
    ["V2", "shop", "S1", "2024-05-02 10:00:00", "", "11", "", "", ""],  # nps out of range
]
MARKETING = [
    ["M1", "crm", "CRM001", "2024-04-01 10:00:00", "spring", "sms", "true", "false"],
    ["M2", "loyalty", "L001", "2024-04-02 10:00:00", "spring", "email", "yes", "no"],
    ["M3", "crm", "CRM001", "2024-04-03 10:00:00", "spring", "sms", "", "false"],  # missing responded
]
ROWS = {
    "crm_customers": CRM,
    "cti_contacts": CTI,
    "shop_accounts": SHOP,
    "loyalty_members": LOYALTY,
    "transactions": TRANSACTIONS,
    "calls": CALLS,
    "surveys": SURVEYS,
    "marketing_contacts": MARKETING,
}
# (table, source_row) -> every reason the row must carry.
EXPECTED_QUARANTINE = {
    ("crm_customers", 4): {"missing full_name"},
    ("crm_customers", 7): {"duplicate crm_id"},
    ("crm_customers", 8): {"created_at after reference date"},
    ("cti_contacts", 2): {"unparseable first_call_at"},
    ("cti_contacts", 3): {"missing phone"},
    ("loyalty_members", 2): {"unparseable joined_on"},
    ("transactions", 3): {"negative quantity", "negative amount on non-refund"},
    ("transactions", 4): {"orphan reference"},
    ("transactions", 5): {"txn_at after reference date"},
    ("transactions", 6): {"exact duplicate row"},
    ("transactions", 7): {"reference to a quarantined record"},
    ("transactions", 8): {"unparseable amount"},
    ("transactions", 9): {"invalid channel"},
    ("calls", 2): {"orphan reference"},
    ("calls", 3): {"negative duration_sec", "out-of-range satisfaction"},
    ("surveys", 2): {"out-of-range nps"},
    ("marketing_contacts", 3): {"missing responded"},
}


def file_columns(table: str, config: dict[str, Any]) -> list[str]:
    mapping = config["data"]["tables"][table].get("columns", {})
    return [mapping.get(name, name) for name in TABLES[table].column_names]


def write_world(
    raw_dir: Path, config: dict[str, Any], rows: dict[str, list[list[str]]] | None = None
) -> None:
    """Write the fixture exports in the formats `config` names."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for table, table_rows in (rows or ROWS).items():
        entry = config["data"]["tables"][table]
        frame = pd.DataFrame(table_rows, columns=file_columns(table, config), dtype=str)
        path = raw_dir / entry["file"]
        if entry["format"] == "excel":
            frame.to_excel(path, sheet_name=entry["sheet"], index=False)
        elif entry["format"] == "parquet":
            frame.replace("", None).to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, encoding=entry.get("encoding", "utf-8"))


def make_context(tmp_path: Path, config: dict[str, Any]) -> StepContext:
    run_dir = tmp_path / "run"
    ctx = StepContext(run_dir=run_dir, step="01_data_audit", config=config)
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    return ctx


def fixture_config(raw_dir: Path) -> dict[str, Any]:
    config = copy.deepcopy(CONFIG)
    config["data"]["raw_dir"] = str(raw_dir)
    return config


def run_on(tmp_path: Path, config: dict[str, Any]) -> StepContext:
    ctx = make_context(tmp_path, config)
    with Workspace(ctx.step_dir, memory_limit="1GB", threads=1) as workspace:
        run_contract(ctx, workspace)
    return ctx


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory: pytest.TempPathFactory) -> StepContext:
    """One contract pass over the hand-written fixture world (shared by the tests below)."""
    base = tmp_path_factory.mktemp("contract")
    config = fixture_config(base / "raw")
    write_world(base / "raw", config)
    return run_on(base, config)


def test_every_planted_defect_is_quarantined_with_its_reasons(fixture_run: StepContext) -> None:
    found = {}
    for table in TABLES:
        quarantine = fixture_run.read("01_data_audit", f"quarantine_{table}")
        for row in quarantine.itertuples():
            found[(table, row.source_row)] = set(row.reason.split("; "))
    assert found == EXPECTED_QUARANTINE


def test_ledger_balances_and_counts_the_fixture(fixture_run: StepContext) -> None:
    ledger = fixture_run.read("01_data_audit", "ledger").set_index("table")
    assert list(ledger.columns) == ["input_rows", "accepted_rows", "quarantined_rows"]
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    for table, rows in ROWS.items():
        quarantined = sum(1 for key in EXPECTED_QUARANTINE if key[0] == table)
        assert ledger.loc[table].tolist() == [len(rows), len(rows) - quarantined, quarantined]


def test_quarantine_keeps_original_strings(fixture_run: StepContext) -> None:
    quarantine = fixture_run.read("01_data_audit", "quarantine_crm_customers").set_index("source_row")
    assert (
        quarantine.loc[8, "created_at"] == "2027-01-01 00:00:00" and quarantine.loc[8, "crm_id"] == "CRM007"
    )
    assert quarantine.loc[4, "gender"] == "M" and pd.isna(quarantine.loc[4, "full_name"])
    assert set(quarantine.columns) == set(TABLES["crm_customers"].column_names) | {"reason"}
    calls = fixture_run.read("01_data_audit", "quarantine_calls").set_index("source_row")
    assert calls.loc[2, "reason_raw"] == "inquiry" and calls.loc[2, "reason"] == "orphan reference"


def test_clean_tables_are_typed_mapped_and_normalized(fixture_run: StepContext) -> None:
    crm = fixture_run.read("01_data_audit", "clean_crm_customers")
    # mapped from CustomerNo; the first of the duplicates; records with bad optional attributes kept
    assert crm["crm_id"].tolist() == ["CRM001", "CRM002", "CRM003", "CRM005", "CRM006"]
    first = crm.iloc[0]
    assert first.full_name == "王伟" and first.source_system == "crm" and first.source_record_id == "CRM001"
    assert first.mobile_norm == "+8613812345678" and first.landline_norm == "+86-10-62345678"
    assert first.email_norm == "wang.wei@example.com"
    assert first.birth_date == pd.Timestamp("1980-05-01") and first.created_at == pd.Timestamp(
        "2023-01-05 10:00"
    )
    assert crm["employee_count"].dtype == "Int64" and crm["created_at"].dtype.kind == "M"

    cti = fixture_run.read("01_data_audit", "clean_cti_contacts")  # GBK with its own datetime format
    assert cti.loc[0, "caller_name"] == "王先生" and cti.loc[0, "first_call_at"] == pd.Timestamp(
        "2023-01-06 08:00"
    )
    assert cti.loc[0, "phone_norm"] == "+8613812345678"

    shop = fixture_run.read("01_data_audit", "clean_shop_accounts")  # Parquet
    assert shop.loc[0, "primary_device"] == "ios" and shop.loc[0, "email_norm"] == "wang.wei@example.com"
    assert shop["app_installed"].dtype == "boolean" and bool(shop.loc[0, "app_installed"])

    loyalty = fixture_run.read("01_data_audit", "clean_loyalty_members")  # Excel sheet
    assert loyalty.loc[0, "joined_on"] == pd.Timestamp("2023-01-15") and loyalty.loc[0, "tier"] == "gold"

    calls = fixture_run.read("01_data_audit", "clean_calls")  # day-first datetime format
    assert calls.loc[0, "call_at"] == pd.Timestamp("2024-01-06 09:15")
    assert calls["duration_sec"].dtype == "Int64" and calls["resolved"].dtype == "boolean"

    transactions = fixture_run.read("01_data_audit", "clean_transactions")
    assert transactions["txn_id"].tolist() == ["T1", "T2"]
    assert transactions["is_refund"].dtype == bool and transactions["is_refund"].tolist() == [False, True]
    assert transactions["amount"].tolist() == [100.5, -20.0]
    marketing = fixture_run.read("01_data_audit", "clean_marketing_contacts")
    assert marketing["responded"].tolist() == [True, True] and marketing["converted"].tolist() == [
        False,
        False,
    ]


def test_optional_values_stay_null_and_invalid_contacts_keep_the_row(fixture_run: StepContext) -> None:
    crm = fixture_run.read("01_data_audit", "clean_crm_customers").set_index("crm_id")
    assert pd.isna(crm.loc["CRM006", "email"]) and pd.isna(crm.loc["CRM006", "employee_count"])
    shop = fixture_run.read("01_data_audit", "clean_shop_accounts").set_index("shop_user_id")
    assert shop.index.tolist() == ["S1", "S2"]  # neither the unknown device nor the bad bool rejects S2
    assert pd.isna(shop.loc["S2", "primary_device"]) and pd.isna(shop.loc["S2", "app_installed"])


def test_bad_optional_attributes_of_identity_records_are_dropped_and_flagged(
    fixture_run: StepContext,
) -> None:
    """A birth date that cannot be read or gives an impossible age, a negative optional number or a bad
    optional bool of an identity record: the value is set to null, the record kept and named."""
    crm = fixture_run.read("01_data_audit", "clean_crm_customers").set_index("crm_id")
    assert crm.loc[["CRM002", "CRM003", "CRM005"], "birth_date"].isna().all()
    assert crm.loc["CRM001", "birth_date"] == pd.Timestamp("1980-05-01")
    assert crm.loc["CRM002", "notes"] == "birth_date unparseable, set to null"
    assert crm.loc["CRM003", "notes"] == (
        "gender outside its values, set to null; birth_date gives an impossible age, set to null"
    )
    assert crm.loc["CRM002", "source_row"] == 2 and pd.isna(crm.loc["CRM001", "notes"])
    shop = fixture_run.read("01_data_audit", "clean_shop_accounts").set_index("shop_user_id")
    assert pd.isna(shop.loc["S2", "online_minutes_per_month"])
    assert shop.loc["S2", "notes"] == (
        "primary_device outside its values, set to null; app_installed outside its values, set to null; "
        "online_minutes_per_month negative, set to null"
    )
    dropped = fixture_run.read("01_data_audit", "dropped_values")
    assert {(r.table, r.column, r.reason): r.rows for r in dropped.itertuples()} == {
        ("crm_customers", "birth_date", "unparseable"): 1,
        ("crm_customers", "birth_date", "gives an impossible age"): 2,
        ("shop_accounts", "online_minutes_per_month", "negative"): 1,
    }
    unmapped = fixture_run.read("01_data_audit", "unmapped_values").set_index(["table", "column"])
    assert unmapped.loc[("shop_accounts", "app_installed"), "action"] == "kept, value set to null"
    # Event rows keep their quarantine rules: an out-of-range rating still rejects the call.
    calls = fixture_run.read("01_data_audit", "quarantine_calls").set_index("source_row")
    assert "out-of-range satisfaction" in calls.loc[3, "reason"]


def test_invalid_optional_category_becomes_null(tmp_path: Path) -> None:
    config = fixture_config(tmp_path / "raw")
    rows = {**ROWS, "shop_accounts": [SHOP[0], [*SHOP[1][:10], "", "", ""]]}
    write_world(tmp_path / "raw", config, rows)
    ctx = run_on(tmp_path, config)
    shop = ctx.read("01_data_audit", "clean_shop_accounts")
    assert shop["shop_user_id"].tolist() == ["S1", "S2"] and pd.isna(shop.loc[1, "primary_device"])


def test_values_lose_surrounding_space_separators_of_any_kind(tmp_path: Path) -> None:
    """Surrounding ASCII and other space separators (no-break, em, narrow no-break space) are trimmed
    whether the file holds such separators, only ASCII spaces, or only the other separators (no field
    with an edge ASCII space); text inside a value is kept."""
    for categories in (
        ["\u00a0toys\u2003", " food ", "中 文", "x\u202f"],
        [" toys", "food ", "中 文", "x"],
        ["\u00a0toys", "food\u2003", "中 文", "x\u00a0\u00a0"],
    ):
        config = fixture_config(tmp_path / categories[-1] / "raw")
        transactions = [row.copy() for row in TRANSACTIONS[:2]] + [row.copy() for row in TRANSACTIONS[:2]]
        for number, (row, category) in enumerate(zip(transactions, categories, strict=True)):
            row[0], row[6] = f"T{number + 10}", category
        write_world(tmp_path / categories[-1] / "raw", config, {**ROWS, "transactions": transactions})
        ctx = run_on(tmp_path / categories[-1], config)
        clean = ctx.read("01_data_audit", "clean_transactions")
        assert clean["category"].tolist() == ["toys", "food", "中 文", "x"], categories


# ---------------------------------------------------------------- structural errors


def broken_world(tmp_path: Path, table: str, frame_edit=None, config_edit=None) -> dict[str, Any]:
    config = fixture_config(tmp_path / "raw")
    if config_edit:
        config_edit(config)
    rows = copy.deepcopy(ROWS)
    write_world(tmp_path / "raw", config, rows)
    if frame_edit:
        frame_edit(tmp_path / "raw" / config["data"]["tables"][table]["file"])
    return config


def expect_error(tmp_path: Path, config: dict[str, Any], *fragments: str) -> str:
    with pytest.raises(DataContractError) as error:
        run_on(tmp_path, config)
    message = str(error.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    config = broken_world(tmp_path, "surveys", frame_edit=lambda path: path.unlink())
    expect_error(tmp_path, config, "surveys.csv", "not found", "data.tables.surveys.file")


def test_missing_required_column_names_column_existing_columns_and_mapping(tmp_path: Path) -> None:
    def drop_amount(path: Path) -> None:
        pd.read_csv(path, dtype=str).drop(columns=["amount"]).to_csv(path, index=False)

    config = broken_world(tmp_path, "transactions", frame_edit=drop_amount)
    message = expect_error(
        tmp_path, config, "transactions.csv", "amount", "'txn_id'", "data.tables.transactions.columns"
    )
    # Column names only, never row contents (the message ends up in the report of the failed run).
    assert "First rows" not in message and "T1" not in message and "\n" not in message


def test_unmapped_renamed_column_is_reported_with_the_name_looked_for(tmp_path: Path) -> None:
    def unmap(config: dict[str, Any]) -> None:
        del config["data"]["tables"]["crm_customers"]["columns"]["full_name"]

    config = fixture_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config)
    unmap(config)
    expect_error(tmp_path, config, "crm_customers.csv", "full_name (looked for 'full_name')", "'Name'")


def test_unreadable_encoding_names_offset_and_line(tmp_path: Path) -> None:
    def corrupt(path: Path) -> None:
        data = path.read_bytes().splitlines(keepends=True)
        data[2] = data[2][:5] + b"\xff\xfe" + data[2][5:]
        path.write_bytes(b"".join(data))

    config = broken_world(tmp_path, "surveys", frame_edit=corrupt)
    prefix = (tmp_path / "raw" / "surveys.csv").read_bytes().splitlines(keepends=True)
    offset = len(prefix[0]) + len(prefix[1]) + 5
    expect_error(tmp_path, config, "surveys.csv", "utf-8", f"byte offset {offset}", "line 3")


def test_gbk_file_declared_as_utf8_is_an_encoding_error(tmp_path: Path) -> None:
    def utf8(config: dict[str, Any]) -> None:
        config["data"]["tables"]["cti_contacts"]["encoding"] = "utf-8"

    config = fixture_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config)
    utf8(config)
    expect_error(tmp_path, config, "cti_contacts.csv", "cannot decode", "line 2")


def test_header_only_table_is_absent_and_written_empty(tmp_path: Path) -> None:
    def header_only(path: Path) -> None:
        path.write_text(path.read_text().splitlines()[0] + "\n")

    config = broken_world(tmp_path, "calls", frame_edit=header_only)
    ctx = run_on(tmp_path, config)
    calls = ctx.read("01_data_audit", "clean_calls")
    assert calls.empty and list(calls.columns) == [
        *TABLES["calls"].column_names,
        "customer_ref",
        "customer_name",
        "customer_ref_kind",
        "notes",
        "source_row",
    ]
    assert calls["call_at"].dtype.kind == "M" and calls["duration_sec"].dtype == "Int64"
    assert ctx.read("01_data_audit", "quarantine_calls").empty
    status = ctx.read("01_data_audit", "table_status").set_index("table")
    assert status.loc["calls", "status"] == "header only" and status.loc["calls", "input_rows"] == 0
    assert (status.drop(index="calls")["status"] == "loaded").all()


def test_clean_tables_carry_the_source_row(fixture_run: StepContext) -> None:
    for table in TABLES:
        clean = fixture_run.read("01_data_audit", f"clean_{table}")
        quarantine = fixture_run.read("01_data_audit", f"quarantine_{table}")
        rows = sorted([*clean["source_row"], *quarantine["source_row"]])
        assert rows == list(range(1, len(ROWS[table]) + 1)), table  # every input row exactly once


def test_mostly_unparseable_dates_stop_the_run_with_examples(tmp_path: Path) -> None:
    def wrong_format(config: dict[str, Any]) -> None:
        config["data"]["tables"]["calls"]["datetime_format"] = "%Y-%m-%d %H:%M"

    config = fixture_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config)
    wrong_format(config)
    message = expect_error(
        tmp_path, config, "calls.csv", "call_at", "row 1 looks like '99/99/9999 99:99'", "datetime_format"
    )
    assert "06/01/2024" not in message  # the shape of the value, not the value


def test_missing_excel_sheet_lists_the_sheets(tmp_path: Path) -> None:
    config = fixture_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config)
    config["data"]["tables"]["loyalty_members"]["sheet"] = "Members2024"
    expect_error(tmp_path, config, "loyalty_members.xlsx", "Members2024", "['members']")
