"""Step 02 on events keyed by an identifier (phone, e-mail, member number) and the row trace.

A hand-built run folder holds step 01's artifacts as they are written for a config whose calls are
keyed by the caller number, orders by the shop account (phone or e-mail) and surveys by the member
number. Planted: a household landline, a family landline only one member's record shows, a company
switchboard, a placeholder number, a recycled mobile (two holders in different periods) and numbers
nobody holds.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from identity_tables import clean_identity_table

from helpers.core.context import StepContext, open_step
from helpers.core.steps import IDENTITY, artifact_path
from helpers.core.tables import SOURCE_SYSTEMS, TABLES
from helpers.engine.base import DuckDBEngine
from helpers.identity import run_step
from helpers.identity.events import (
    TRACE_COLUMNS,
    _CustomerLookup,
    _placeholder,
    check_row_trace,
    register_events,
)
from helpers.identity.merge import AUDIT_STEP, IdentityResult, write_plain

CONFIG = {
    "run": {"seed": 42, "reference_date": "2026-06-30"},
    "data": {
        "raw_dir": "raw",
        "tables": {
            "crm_customers": {"file": "客户主档.xlsx", "format": "excel"},
            "loyalty_members": {"file": "会员积分.csv"},
            "calls": {"file": "呼叫记录.csv", "key_by": "phone"},
            "transactions": {"file": "订单明细.csv", "key_by": "identifier"},
            "surveys": {"file": "survey_results.csv", "key_by": "member_no"},
        },
    },
    "identity": {"method": "deterministic"},
}
HOUSEHOLD, SWITCHBOARD = "021-65521234", "010-62345678"
RECYCLED, PLACEHOLDER = "13922223333", "13800000000"
COMPANY, UNKNOWN = "021-68881234", "021-61234567"
FAMILY = "021-65529999"  # only 徐明's record shows the family landline; his wife 林芳 calls from it too
STRANGERS = ("刘一", "陈二", "张三", "李四", "王五")


def crm(crm_id: str, name: str, created: str = "2024-01-01", **values: object) -> dict:
    return {"crm_id": crm_id, "full_name": name, "customer_type": "consumer", "created_at": created, **values}


CRM_ROWS = [
    # A household: three people on one landline (not suspicious: at most 4 people share it).
    crm("H1", "王建国", landline=HOUSEHOLD, birth_date="1960-02-03", mobile="13911110001", gender="M"),
    crm("H2", "王丽", landline=HOUSEHOLD, birth_date="1962-05-06", mobile="13911110002", gender="F"),
    crm("H3", "王小明", landline=HOUSEHOLD, birth_date="1990-07-08", gender="M"),
    # A company switchboard shared by six contacts (suspicious).
    *(
        crm(f"S{i}", name, landline=SWITCHBOARD, customer_type="business")
        for i, name in enumerate(["李雷", "张伟", "刘洋", "陈静", "杨帆", "黄磊"])
    ),
    # A placeholder number typed for two strangers.
    crm("P1", "赵敏", mobile=PLACEHOLDER),
    crm("P2", "周杰", mobile=PLACEHOLDER),
    # A recycled mobile: 孙强 had it first, 钱芳 got it in 2023.
    crm("R1", "孙强", created="2019-01-01", mobile=RECYCLED, birth_date="1970-01-01"),
    crm("R2", "钱芳", created="2023-06-01", mobile=RECYCLED, birth_date="1995-03-04"),
    # One customer with a mobile, an e-mail and a loyalty card.
    crm("W1", "吴刚", mobile="13933334444", email="wugang@qq.com", member_no="M100"),
    crm("B1", "蒋文", landline=COMPANY, customer_type="business"),
    crm("F1", "徐明", landline=FAMILY, birth_date="1975-09-10"),
    crm("L1", "唐霞", landline="0571-69345031"),  # her shop account lost the landline's leading 0
]
LOYALTY_ROWS = [
    {"member_no": "M100", "member_name": "吴刚", "phone": "13933334444", "joined_on": "2022-01-01"},
    {"member_no": "M200", "member_name": "冯雪", "joined_on": "2022-01-01"},
]
# (caller number as logged, name the agent typed, call time, expected record or rule)
CALLS = [
    ("13933334444", None, "2025-01-05 10:00", "crm:W1"),
    ("013933334444", None, "2025-01-06 10:00", "crm:W1"),  # trunk prefix 0
    (HOUSEHOLD, "王丽", "2025-01-07 10:00", "crm:H2"),
    (HOUSEHOLD, None, "2025-01-08 10:00", "shared identifier"),
    (HOUSEHOLD, "王丽丽", "2025-01-08 11:00", "shared identifier"),  # a landline needs the same name
    (SWITCHBOARD + "转8012", "李雷", "2025-01-09 10:00", "crm:S0"),
    (SWITCHBOARD, "韩梅梅", "2025-01-10 10:00", "shared identifier"),
    (SWITCHBOARD, None, "2025-01-10 11:00", "shared identifier"),
    (PLACEHOLDER, None, "2025-01-11 10:00", "shared identifier"),
    (PLACEHOLDER, "赵敏", "2025-01-11 11:00", "crm:P1"),
    (RECYCLED, None, "2018-05-01 10:00", "crm:R1"),  # before either record: the first holder
    (RECYCLED, None, "2020-05-01 10:00", "crm:R1"),
    (RECYCLED, None, "2024-02-01 10:00", "crm:R2"),
    (RECYCLED, "钱芳", "2020-05-01 11:00", "crm:R2"),  # the name outranks the time
    ("13712345678", "郑新", "2025-02-01 10:00", "event:mobile:+8613712345678"),
    ("+86 137 1234 5678", "郑新", "2025-02-02 10:00", "event:mobile:+8613712345678"),
    ("13712345678", None, "2025-02-03 10:00", "event:mobile:+8613712345678"),
    ("13700000000", "某人", "2025-02-04 10:00", "placeholder"),  # no holder, never a customer
    (None, None, "2025-02-05 10:00", "no identifier"),
    ("12", None, "2025-02-06 10:00", "unreadable identifier"),
    # A company line with one CRM holder, but its calls give five names: only the holder's name links.
    *((COMPANY, name, "2025-03-01 10:00", "shared identifier") for name in ("韦东", "孟飞", "邓超", "包贝")),
    (COMPANY, "蒋文", "2025-03-02 10:00", "crm:B1"),
    # A number nobody holds, called under five names: a switchboard, not a new customer.
    *((UNKNOWN, name, "2025-03-03 10:00", "shared identifier") for name in STRANGERS),
    # One holder: his own name, a bare surname with a title and no name link to him; another
    # person's name is not his call: a customer of its own for that number and name.
    (FAMILY, "徐明", "2025-04-01 10:00", "crm:F1"),
    (FAMILY, "徐先生", "2025-04-02 10:00", "crm:F1"),
    (FAMILY, None, "2025-04-03 10:00", "crm:F1"),
    (FAMILY, "林芳", "2025-04-04 10:00", "event:landline:+86-21-65529999/fang lin"),
    (FAMILY, "林芳", "2025-04-05 10:00", "event:landline:+86-21-65529999/fang lin"),
    # A surname with a form of address picks the one holder it fits: the only 刘 behind the
    # switchboard, the only woman of the household; two men named 王 stay apart; a placeholder
    # needs the whole name.
    (SWITCHBOARD, "刘先生", "2025-05-01 10:00", "crm:S2"),
    (HOUSEHOLD, "王女士", "2025-05-02 10:00", "crm:H2"),
    (HOUSEHOLD, "王先生", "2025-05-03 10:00", "shared identifier"),
    (PLACEHOLDER, "赵女士", "2025-05-04 10:00", "shared identifier"),
]
# (shop account, kind step 01 found, expected)
ORDERS = [
    ("wugang@qq.com", "email", "crm:W1"),
    (" WuGang@QQ.com", "email", "crm:W1"),
    ("13933334444", "phone", "crm:W1"),
    ("M100", "member_no", "crm:W1"),
    ("new.buyer@163.com", "email", "event:email:new.buyer@163.com"),
    # A landline stored as a number (leading 0 lost): step 01 reads it as a member number; it is the
    # landline a record holds. Digits of that form nobody holds as a landline stay a member number.
    ("57169345031", "member_no", "crm:L1"),
    ("4155552671", "member_no", "event:member_no:4155552671"),
]
SURVEYS = [("M100", "crm:W1"), ("M200", "loyalty:M200"), ("M999", "event:member_no:M999")]
QUARANTINED_CALL_ROWS = {4: "unparseable call_at", 9: "direction outside its values"}


def identity_table(name: str, rows: list[dict]) -> pd.DataFrame:
    frame = clean_identity_table(name, rows)
    return frame.assign(source_row=range(1, len(frame) + 1))


def event_table(name: str, rows: list[dict], skip: set[int] = frozenset()) -> pd.DataFrame:
    """Clean event rows keyed by an identifier; data rows in `skip` were quarantined."""
    numbers = [n for n in range(1, len(rows) + len(skip) + 1) if n not in skip]
    frame = pd.DataFrame(rows).assign(source_row=numbers)
    for column in ("cti_id", "source_system", "source_customer_id"):
        if column in TABLES[name].column_names:
            frame[column] = pd.Series(pd.NA, index=frame.index, dtype="string")
    return frame


def write_step01(run_dir: Path) -> None:
    """Step 01's artifacts for `CONFIG`, written directly."""
    audit = run_dir / AUDIT_STEP
    audit.mkdir(parents=True)
    (run_dir / "config.yml").write_text(yaml.safe_dump(CONFIG, allow_unicode=True), encoding="utf-8")
    clean = {
        "crm_customers": identity_table("crm_customers", CRM_ROWS),
        "loyalty_members": identity_table("loyalty_members", LOYALTY_ROWS),
        "cti_contacts": identity_table("cti_contacts", []),
        "shop_accounts": identity_table("shop_accounts", []),
        "marketing_contacts": pd.DataFrame({"contact_id": pd.Series(dtype="string")}),
        "calls": event_table(
            "calls",
            [
                {"call_id": f"K{i}", "customer_ref": ref, "customer_ref_kind": "phone" if ref else None,
                 "customer_name": name, "call_at": pd.Timestamp(at), "direction": "inbound"}
                for i, (ref, name, at, _) in enumerate(CALLS)
            ],
            skip=set(QUARANTINED_CALL_ROWS),
        ),
        "transactions": event_table(
            "transactions",
            [
                {"txn_id": f"T{i}", "customer_ref": ref, "customer_ref_kind": kind, "customer_name": None,
                 "txn_at": pd.Timestamp("2025-03-01"), "amount": 10.0}
                for i, (ref, kind, _) in enumerate(ORDERS)
            ],
        ),
        "surveys": event_table(
            "surveys",
            [
                {"survey_id": f"V{i}", "customer_ref": ref, "customer_ref_kind": "member_no",
                 "customer_name": None, "answered_at": pd.Timestamp("2025-04-01")}
                for i, (ref, _) in enumerate(SURVEYS)
            ],
        ),
    }  # fmt: skip
    ledger = []
    for table, frame in clean.items():
        frame.to_parquet(audit / f"clean_{table}.parquet")
        rejected = QUARANTINED_CALL_ROWS if table == "calls" else {}
        pd.DataFrame({"source_row": list(rejected), "reason": list(rejected.values())}).astype(
            {"source_row": "int64", "reason": "string"}
        ).to_parquet(audit / f"quarantine_{table}.parquet")
        read = table in CONFIG["data"]["tables"]
        ledger.append(
            {"table": table, "input_rows": (len(frame) + len(rejected)) * read,
             "accepted_rows": len(frame) * read, "quarantined_rows": len(rejected) * read}
        )  # fmt: skip
    pd.DataFrame(ledger).to_parquet(audit / "ledger.parquet")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events") / "run"
    write_step01(folder)
    return folder


@pytest.fixture(scope="module")
def result(run_dir: Path) -> IdentityResult:
    return run_step(open_step(IDENTITY.name, str(run_dir)))


def expected_customer(result: IdentityResult, expected: str) -> str | None:
    """The customer id an expectation names (`system:record`), None for an unresolved rule."""
    system, _, record = expected.partition(":")
    if system not in {*SOURCE_SYSTEMS, "event"}:
        return None
    crosswalk = result.crosswalk.set_index(["source_system", "source_record_id"])["customer_id"]
    return crosswalk[(system, record)]


def resolved(result: IdentityResult, table: str) -> pd.DataFrame:
    return result.event_customers[result.event_customers["event_table"] == table].reset_index(drop=True)


def test_every_event_gets_its_planted_customer_or_stays_unlinked(result: IdentityResult) -> None:
    for table, expectations in (
        ("calls", [expected for *_, expected in CALLS]),
        ("transactions", [expected for *_, expected in ORDERS]),
        ("surveys", [expected for _, expected in SURVEYS]),
    ):
        rows = resolved(result, table)
        assert len(rows) == len(expectations)
        for row, expected in zip(rows.itertuples(), expectations, strict=True):
            want = expected_customer(result, expected)
            got = None if pd.isna(row.customer_id) else row.customer_id
            assert got == want, (table, row.event_id, expected, row.resolved_by)
            if want is None:
                assert row.resolved_by == expected, (table, row.event_id)


def test_how_each_call_was_resolved(result: IdentityResult) -> None:
    rules = resolved(result, "calls").set_index("event_id")["resolved_by"]
    assert rules["K0"] == rules["K1"] == "identifier"
    assert rules["K2"] == rules["K5"] == rules["K9"] == rules["K13"] == "identifier+name"
    assert rules["K10"] == rules["K11"] == rules["K12"] == "identifier+time"
    assert rules["K14"] == rules["K15"] == rules["K16"] == "new customer"
    assert rules["K24"] == "identifier+name"
    assert rules["K30"] == rules["K31"] == rules["K32"] == "identifier"
    assert rules["K33"] == rules["K34"] == "identifier, other name"


def test_unmatched_identifiers_become_one_customer_each(run_dir: Path, result: IdentityResult) -> None:
    events = result.crosswalk[result.crosswalk["source_system"] == "event"]
    assert sorted(events["source_record_id"]) == [
        "email:new.buyer@163.com",
        "landline:+86-21-65529999/fang lin",
        "member_no:4155552671",
        "member_no:M999",
        "mobile:+8613712345678",
    ]
    assert (events["match_method"] == "event").all()
    golden = result.golden.set_index("customer_id")
    caller = expected_customer(result, "event:mobile:+8613712345678")
    assert golden.loc[caller, "full_name"] == "郑新" and golden.loc[caller, "mobile"] == "+8613712345678"
    wife = expected_customer(result, "event:landline:+86-21-65529999/fang lin")
    assert golden.loc[wife, "full_name"] == "林芳" and wife != expected_customer(result, "crm:F1")
    assert set(golden.index) == set(result.crosswalk["customer_id"])
    # run_step writes the identifiers without keeping them: the event customers' are in the file, in
    # customer order with everyone else's; the placeholder without a holder made nobody.
    assert result.identifiers.empty
    identifiers = pd.read_parquet(artifact_path(run_dir, "02_identity_merge/identifiers"))
    keys = ["customer_id", "identifier_type", "identifier_value"]
    assert identifiers[keys].equals(identifiers[keys].sort_values(keys, ignore_index=True))
    of_caller = identifiers[identifiers["customer_id"] == caller]
    assert of_caller[["identifier_type", "identifier_value", "suspicious"]].values.tolist() == [
        ["mobile", "+8613712345678", False]
    ]
    assert set(identifiers["customer_id"]) <= set(golden.index)
    assert not identifiers["identifier_value"].eq("+8613700000000").any()


def test_row_trace_lists_every_input_row_once_and_matches_the_ledger(
    run_dir: Path, result: IdentityResult
) -> None:
    trace = pd.read_parquet(artifact_path(run_dir, "02_identity_merge/row_trace"))
    assert list(trace.columns) == ["file", "table", "row_no", "status", "reason", "customer_id"]
    assert not trace.duplicated(["file", "row_no"]).any()
    ledger = pd.read_parquet(run_dir / AUDIT_STEP / "ledger.parquet").set_index("table")
    per_file = trace.groupby("file").size()
    for table, entry in CONFIG["data"]["tables"].items():
        assert per_file[entry["file"]] == ledger.loc[table, "input_rows"]
        rows = trace[trace["file"] == entry["file"]]
        assert rows["row_no"].tolist() == list(range(1, len(rows) + 1))
    calls = trace[trace["table"] == "calls"].set_index("row_no")
    for row_no, reason in QUARANTINED_CALL_ROWS.items():
        assert calls.loc[row_no, "status"] == "quarantined" and calls.loc[row_no, "reason"] == reason
        assert pd.isna(calls.loc[row_no, "customer_id"])
    # Row 1 of the call log is the first call (W1); row 5 is CALLS[3], the household call without a name.
    assert calls.loc[1, "customer_id"] == expected_customer(result, "crm:W1")
    assert calls.loc[5, "status"] == "accepted" and pd.isna(calls.loc[5, "customer_id"])
    crm = trace[trace["table"] == "crm_customers"]
    assert crm["customer_id"].notna().all() and (crm["reason"] == "").all()
    assert set(crm["customer_id"]) <= set(result.crosswalk["customer_id"])
    # A ledger that disagrees is caught.
    wrong = ledger.reset_index().assign(accepted_rows=lambda f: f["accepted_rows"] + (f["table"] == "calls"))
    with pytest.raises(AssertionError, match="row_trace of calls"):
        check_row_trace(trace, wrong)


def test_row_trace_in_memory_is_categorical_and_written_as_strings(
    run_dir: Path, result: IdentityResult
) -> None:
    """At a million customers the trace has 27M rows: in memory its text columns are categoricals,
    the artifact keeps plain string columns with the same values."""
    trace = result.row_trace
    text = [column for column in TRACE_COLUMNS if column != "row_no"]
    assert all(isinstance(trace[column].dtype, pd.CategoricalDtype) for column in text)
    written = pd.read_parquet(artifact_path(run_dir, "02_identity_merge/row_trace"))
    assert written.dtypes.drop("row_no").eq("string").all() and written["row_no"].dtype == "int64"
    pd.testing.assert_frame_equal(trace.astype(dict.fromkeys(text, "string")), written)
    # Categoricals answer the questions readers ask as strings do.
    accepted = trace["status"].eq("accepted")
    linked = accepted & trace["customer_id"].notna() & trace["customer_id"].ne("")
    assert int(linked.sum()) == int((written["status"].eq("accepted") & written["customer_id"].notna()).sum())
    assert (trace["table"] == "calls").sum() == (written["table"] == "calls").sum() > 0


def test_row_trace_file_holds_plain_strings_for_every_reader(
    run_dir: Path, result: IdentityResult, tmp_path: Path
) -> None:
    """The categoricals are written as Parquet dictionaries, yet pyarrow and DuckDB read plain strings
    (no Arrow dictionary schema in the file); a trace without any customer (no categories) writes too."""
    path = artifact_path(run_dir, "02_identity_merge/row_trace").with_suffix(".parquet")
    schema = pq.read_schema(path)
    assert [str(schema.field(c).type) for c in TRACE_COLUMNS] == [
        "string", "string", "int64", "string", "string", "string"
    ]  # fmt: skip
    with DuckDBEngine() as engine:
        kinds = engine.query(f"SELECT DISTINCT typeof(customer_id) AS kind FROM read_parquet('{path}')")
    assert kinds["kind"].tolist() == ["VARCHAR"]
    nobody = result.row_trace.head(3).assign(
        customer_id=pd.Categorical.from_codes([-1, -1, -1], categories=pd.Index([], dtype=object))
    )
    ctx = StepContext(run_dir=tmp_path, step=IDENTITY.name, config={})
    written = pd.read_parquet(write_plain(ctx, "row_trace", nobody))
    assert written["customer_id"].dtype == "string" and written["customer_id"].isna().all()
    assert written["file"].tolist() == nobody["file"].astype(str).tolist()


def test_check_row_trace_finds_repeated_rows_in_any_order(run_dir: Path, result: IdentityResult) -> None:
    ledger = pd.read_parquet(run_dir / AUDIT_STEP / "ledger.parquet")
    for trace in (result.row_trace, pd.read_parquet(artifact_path(run_dir, "02_identity_merge/row_trace"))):
        check_row_trace(trace, ledger)
        check_row_trace(trace.sample(frac=1.0, random_state=1), ledger)  # any row order
        calls = trace[trace["table"] == "calls"]
        repeated = pd.concat([trace, calls.iloc[[2]]]).sample(frac=1.0, random_state=2)
        with pytest.raises(AssertionError, match=r"row_trace repeats 1 rows of \['calls'\]"):
            check_row_trace(repeated, ledger)
        # A row missing: the ledger's counts disagree.
        with pytest.raises(AssertionError, match="row_trace of calls: "):
            check_row_trace(trace.drop(index=calls.index[0]), ledger)


def test_later_steps_join_identifier_keyed_events_through_the_crosswalk(
    run_dir: Path, result: IdentityResult
) -> None:
    """The views `register_events` gives steps 03/05 map each event to the customer step 02 resolved,
    with the record-key join their queries use."""
    ctx = open_step("03_features", str(run_dir))
    with DuckDBEngine() as engine:
        register_events(engine, ctx, {"calls": "calls", "transactions": "transactions", "crosswalk": "x"})
        calls = engine.query(
            "SELECT c.call_id, x.customer_id FROM calls c "
            "LEFT JOIN x ON x.source_system = 'cti' AND x.source_record_id = c.cti_id ORDER BY c.source_row"
        )
        orders = engine.query(
            "SELECT t.txn_id, x.customer_id FROM transactions t LEFT JOIN x "
            "ON x.source_system = t.source_system AND x.source_record_id = t.source_customer_id "
            "ORDER BY t.source_row"
        )
    for table, joined in (("calls", calls), ("transactions", orders)):
        want = resolved(result, table)["customer_id"]
        assert joined["customer_id"].fillna("").tolist() == want.fillna("").tolist()


def test_a_value_of_one_repeated_character_is_a_placeholder_whatever_its_kind() -> None:
    kinds = pd.Series(["member_no", "member_no", "mobile", "email"])
    values = pd.Series(["00000000000", "886016180339", "+8613812345678", "wang.wei@example.cn"])
    assert _placeholder(kinds, values).tolist() == [True, False, False, False]


def test_customer_lookup_of_a_categorical_part_codes_only_its_own_records() -> None:
    """One system's rows of an event table keep every category of the column (other systems' ids,
    unused ones): each row gets its record's customer in that system, -1 for unknown ids and nulls."""
    crosswalk = pd.DataFrame(
        {
            "source_system": ["crm", "crm", "shop"],
            "source_record_id": ["1", "2", "3"],
            "customer_id": ["A", "B", "C"],
        }
    )
    customers = pd.Index(["C", "B", "A"])
    lookup = _CustomerLookup(crosswalk, customers)
    ids = pd.Series(["2", "3", None, "1", "9", "2"], dtype=pd.CategoricalDtype(["1", "2", "3", "7", "9"]))
    assert lookup("crm", ids).tolist() == [1, -1, -1, 2, -1, 1]
    assert lookup("shop", ids).tolist() == [-1, 0, -1, -1, -1, -1]
    assert lookup("shop", ids.iloc[[1, 2]]).tolist() == [0, -1]
    assert lookup("loyalty", ids).tolist() == [-1] * 6
