"""Step 01 on a Chinese call center's own messy exports, read with a config only: title rows, GBK with
CRLF, BOM, ragged and truncated rows, mixed date forms, currency amounts, full-width digits, numeric
ids, value maps, constants, concatenations, conditions, identifier-keyed events and absent tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from helpers.audit.contract import (
    ContractResult,
    DataContractError,
    TableSource,
    add_identity_columns,
    check_rows,
    reference_kinds,
    run_contract,
    table_sources,
    unify_region,
)
from helpers.core.context import StepContext
from helpers.core.factors import GROUP_NAMES
from helpers.core.settings import DataSettings, WorkbenchConfig
from helpers.core.tables import TABLES
from helpers.engine.base import DuckDBEngine
from helpers.engine.reading import (
    Workspace,
    csv_layout,
    data_lines,
    rejected_rows,
    scan_bytes,
    source_relation,
    tolerant_csv,
)

STEP = "01_data_audit"
CONFIG: dict[str, Any] = {
    "run": {"seed": 1, "reference_date": "2026-10-31"},
    "data": {
        "raw_dir": "",
        "tables": {
            "crm_customers": {
                "file": "客户主档.xlsx",
                "format": "excel",
                "sheet": "客户",
                "skip_rows": 2,
                "date_format": ["%Y/%m/%d", "%Y年%m月%d日", "yyyymmdd", "excel"],
                "columns": {
                    "crm_id": "客户编号",
                    "full_name": {"concat": ["姓", "名"]},
                    "gender": "性别",
                    "birth_date": "出生日期",
                    "member_no": "会员卡号",
                    "province": "省份",
                    "customer_type": {"constant": "consumer"},
                    "created_at": {"column": "建档日期", "formats": ["excel"]},
                },
                "values": {"gender": {"男": "M", "女": "F"}},
            },
            "calls": {
                "file": "通话记录.csv",
                "encoding": "gbk",
                "key_by": "phone",
                "datetime_format": ["%Y年%m月%d日 %H:%M", "%Y-%m-%d %H:%M:%S"],
                "columns": {
                    "call_id": "通话编号",
                    "customer_ref": "来电号码",
                    "call_at": "通话时间",
                    "direction": "方向",
                    "reason": "类型",
                    "duration_sec": "时长",
                    "resolved": "是否解决",
                },
                "values": {
                    "direction": {"呼入": "inbound", "呼出": "outbound"},
                    "reason": {"咨询": "inquiry", "投诉": "complaint", "售后": "after_sales"},
                },
            },
            "transactions": {
                "file": "订单.csv",
                "encoding": "utf-8",
                "key_by": "identifier",
                "datetime_format": "%m/%d/%Y %H:%M",
                "columns": {
                    "txn_id": "订单号",
                    "customer_ref": "下单账号",
                    "customer_name": "收货人",
                    "txn_at": "下单时间",
                    "amount": "金额",
                    "quantity": "数量",
                    "category": "品类",
                    "channel": "渠道",
                    "is_refund": {"column": "订单状态", "equals": ["已退款"]},
                },
                "values": {"channel": {"APP": "app", "小程序": "app", "PC": "online", "电话下单": "phone"}},
            },
        },
    },
    "audit": {"warn_quarantine_share": 1.0, "max_quarantine_share": 1.0, "threads": 1, "memory_limit": "1GB"},
}
CRM_HEADER = ["客户编号", "姓", "名", "性别", "出生日期", "会员卡号", "省份", "建档日期"]
CRM_ROWS = [
    ["K1", "王", "伟", "男", "1985/3/7", 886016180339, "广东省", datetime(2024, 1, 5)],
    ["K2", "李", "娜", "女", "1985年3月7日", 886016180340, "广东", 45300],
    ["K3", "张", "三", "男", 19850307, None, "北京市", datetime(2024, 1, 7)],
    ["K4", "赵", "六", "女", datetime(1985, 3, 7), None, "广西壮族自治区", datetime(2024, 1, 8)],
    ["K5", "钱", "七", "未知", None, None, None, datetime(2024, 1, 9)],
    ["K6", "孙", "八", "男", "1985-03-07", None, None, datetime(2024, 1, 10)],
]
CALL_LINES = [
    "通话编号,来电号码,通话时间,方向,类型,时长,是否解决",
    "C1,013800138000,2026年3月5日 14:03,呼入,咨询,120,是",
    "C2,13900139000,2026年3月6日 09:30,呼出,投诉,６０,否",
    "C3,13900139000,2026年3月7日 10:00,呼入,售后",  # ragged: too few fields
    "C4,13900139000,2026-03-08 11:00:00,呼入,回访,30,是",  # 回访 is outside the map: required reason
    "C5,13900139000,2026-03-09 11:00:00,呼入,咨询,30,是,多余",  # ragged: too many fields
    "C6,13900139000,2026年3月10日 08:00,来电,咨询,30,是",  # unknown direction
    'C7,13900139000,2026年3月11日 08:00,呼入,咨询,30,"未',  # cut inside a quoted field
]
ORDER_LINES = [
    "订单号,下单账号,收货人,下单时间,金额,数量,品类,渠道,订单状态",
    'T1,13800138000,王伟,03/05/2026 14:03,"¥1,234.50",1,家电,APP,已完成',
    'T2,li.na@example.com,李娜,03/06/2026 09:00,"￥1,234.50",2,服饰,小程序,已退款',
    "T3,M886016180339,,03/07/2026 10:00,１２３元,1,家电,PC,",
    'T4,13800138000,王伟,03/08/2026 10:00,"1,234.50元",1,家电,直播,已完成',  # channel outside the map
    "T5,13800138000,王伟,03/09/2026 10:00,1234.50,3,家电,电话下单,已完成",
    "T6,886016180339.0,,03/10/2026 10:00,5,1,家电,APP,已完成",  # a member number Excel saved as 123.0
    "T7,8.86016E+11,,03/11/2026 10:00,5,1,家电,APP,已完成",  # digits lost to scientific notation
    "",
    "",
]


def write_world(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "客户"
    sheet.append(["客户主档导出 截至2026-10-31"])
    sheet.append([])
    sheet.append(CRM_HEADER)
    for row in CRM_ROWS:
        sheet.append(row)
    sheet.append([])  # trailing blank row
    book.save(raw / "客户主档.xlsx")
    (raw / "通话记录.csv").write_bytes("\r\n".join(CALL_LINES).encode("gbk"))
    (raw / "订单.csv").write_bytes("\ufeff".encode() + "\n".join(ORDER_LINES).encode("utf-8"))


def run_world(tmp_path: Path, config: dict[str, Any]) -> tuple[StepContext, ContractResult]:
    config = {**config, "data": {**config["data"], "raw_dir": str(tmp_path / "raw")}}
    ctx = StepContext(run_dir=tmp_path / "run", step=STEP, config=config)
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    with Workspace(ctx.step_dir, memory_limit="1GB", threads=1) as workspace:
        return ctx, run_contract(ctx, workspace)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[StepContext, ContractResult]:
    base = tmp_path_factory.mktemp("messy")
    write_world(base / "raw")
    return run_world(base, CONFIG)


@pytest.fixture(scope="module")
def messy(world: tuple[StepContext, ContractResult]) -> StepContext:
    return world[0]


def quarantined(ctx: StepContext, table: str) -> dict[int, str]:
    frame = ctx.read(STEP, f"quarantine_{table}")
    return dict(zip(frame["source_row"], frame["reason"], strict=True))


def test_ragged_and_truncated_rows_are_quarantined_not_the_file(messy: StepContext) -> None:
    assert quarantined(messy, "calls") == {
        3: "ragged row: 5 fields, the header has 7",
        4: "invalid reason",
        5: "ragged row: 8 fields, the header has 7",
        6: "invalid direction",
        7: "truncated last row: the file ends inside a quoted field",
    }
    calls = messy.read(STEP, "clean_calls")
    assert calls["call_id"].tolist() == ["C1", "C2"] and calls["source_row"].tolist() == [1, 2]
    assert calls["call_at"].tolist() == [pd.Timestamp("2026-03-05 14:03"), pd.Timestamp("2026-03-06 09:30")]
    assert calls["direction"].tolist() == ["inbound", "outbound"]
    assert calls["reason"].tolist() == ["inquiry", "complaint"]
    assert calls["duration_sec"].tolist() == [120, 60]  # full-width digits
    assert calls["resolved"].tolist() == [True, False]


def test_events_keyed_by_identifier_carry_the_reference_and_its_kind(messy: StepContext) -> None:
    calls = messy.read(STEP, "clean_calls")
    assert calls["customer_ref"].tolist() == ["013800138000", "13900139000"]
    assert calls["customer_ref_kind"].tolist() == ["phone", "phone"]
    assert calls["cti_id"].isna().all() and calls["customer_name"].isna().all()
    orders = messy.read(STEP, "clean_transactions")
    assert orders["customer_ref_kind"].tolist() == ["phone", "email", "member_no", "phone", "member_no"]
    assert orders["customer_ref"].tolist()[2:] == ["M886016180339", "13800138000", "886016180339"]
    assert orders["customer_name"].tolist()[:2] == ["王伟", "李娜"]
    assert orders["source_system"].isna().all() and orders["source_customer_id"].isna().all()
    assert reference_kinds(pd.Series(["a@b.cn", "021-68881234", "886016180339"])).tolist() == [
        "email",
        "phone",
        "member_no",
    ]
    # A bare local number is a phone only where the center's own area code is configured.
    local = pd.Series(["65521234"])
    assert reference_kinds(local).tolist() == ["member_no"]
    assert reference_kinds(local, DataSettings(home_area_code="21")).tolist() == ["phone"]


def test_identity_phones_use_the_home_area_code() -> None:
    frame = pd.DataFrame({"cti_id": ["X1", "X2"], "phone": ["65521234", "021-6552 1234"]})
    home = add_identity_columns(frame.copy(), TABLES["cti_contacts"], DataSettings(home_area_code="21"))
    assert home["phone_norm"].tolist() == ["+86-21-65521234", "+86-21-65521234"]
    anywhere = add_identity_columns(frame.copy(), TABLES["cti_contacts"])
    assert anywhere["phone_norm"].tolist() == [None, "+86-21-65521234"]


def test_amounts_conditions_and_value_maps(messy: StepContext) -> None:
    orders = messy.read(STEP, "clean_transactions")
    assert orders["txn_id"].tolist() == ["T1", "T2", "T3", "T5", "T6"]  # trailing blank lines ignored
    assert orders["amount"].tolist() == [1234.5, 1234.5, 123.0, 1234.5, 5.0]
    assert orders["is_refund"].tolist() == [
        False,
        True,
        False,
        False,
        False,
    ]  # 订单状态 == 已退款; empty: false
    assert orders["channel"].tolist() == ["app", "app", "online", "phone", "app"]
    assert orders["source_row"].tolist() == [1, 2, 3, 5, 6]
    assert quarantined(messy, "transactions") == {
        4: "invalid channel",
        7: "customer_ref in scientific notation",
    }


def test_excel_title_rows_mixed_birth_dates_numeric_ids_and_regions(messy: StepContext) -> None:
    crm = messy.read(STEP, "clean_crm_customers").set_index("crm_id")
    assert crm.index.tolist() == ["K1", "K2", "K3", "K4", "K5", "K6"]
    assert crm["source_row"].tolist() == [1, 2, 3, 4, 5, 6]
    born = pd.Timestamp("1985-03-07")
    assert crm["birth_date"].tolist()[:4] == [born] * 4 and pd.isna(crm.loc["K5", "birth_date"])
    assert crm.loc["K6", "birth_date"] == born  # ISO text always parses
    assert crm.loc["K2", "created_at"] == pd.Timestamp("2024-01-09")  # Excel serial 45300
    assert crm["member_no"].tolist()[:2] == ["886016180339", "886016180340"]
    assert crm["full_name"].tolist()[:2] == ["王伟", "李娜"] and set(crm["customer_type"]) == {"consumer"}
    assert crm["gender"].tolist()[:4] == ["M", "F", "M", "F"] and pd.isna(crm.loc["K5", "gender"])
    assert crm.loc["K5", "notes"] == "gender outside its values, set to null"
    assert crm["notes"].drop(index="K5").isna().all()
    assert crm["province"].tolist()[:4] == ["广东", "广东", "北京", "广西"]


def test_values_outside_their_map_are_counted_with_what_happened(messy: StepContext) -> None:
    unmapped = messy.read(STEP, "unmapped_values")
    found = {(r.table, r.column, r.value): (r.rows, r.action) for r in unmapped.itertuples()}
    assert found == {
        ("crm_customers", "gender", "未知"): (1, "kept, value set to null"),
        ("calls", "reason", "回访"): (1, "quarantined"),
        ("calls", "direction", "来电"): (1, "quarantined"),
        ("transactions", "channel", "直播"): (1, "quarantined"),
    }


def test_ledger_balances_and_absent_tables_are_written_empty(
    messy: StepContext, world: tuple[StepContext, ContractResult]
) -> None:
    ledger = messy.read(STEP, "ledger").set_index("table")
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    assert ledger.loc["calls"].tolist() == [7, 2, 5] and ledger.loc["crm_customers"].tolist() == [6, 6, 0]
    status = messy.read(STEP, "table_status").set_index("table")["status"].to_dict()
    assert status == {
        "crm_customers": "loaded",
        "cti_contacts": "not configured",
        "shop_accounts": "not configured",
        "loyalty_members": "not configured",
        "transactions": "loaded",
        "calls": "loaded",
        "surveys": "not configured",
        "marketing_contacts": "not configured",
    }
    for name in ("cti_contacts", "surveys", "marketing_contacts"):
        clean = messy.read(STEP, f"clean_{name}")
        assert clean.empty and set(TABLES[name].column_names) <= set(clean.columns)
        assert messy.read(STEP, f"quarantine_{name}").empty
    assert ledger.loc["surveys"].tolist() == [0, 0, 0]
    without = world[1].groups_without_data
    assert without == ["marketing", "technographic", "psychographic", "firmographic"]
    assert set(without) < set(GROUP_NAMES)


def test_header_only_file_is_an_absent_table(tmp_path: Path) -> None:
    write_world(tmp_path / "raw")
    (tmp_path / "raw" / "订单.csv").write_text(ORDER_LINES[0] + "\n", encoding="utf-8")
    ctx, result = run_world(tmp_path, CONFIG)
    assert ctx.read(STEP, "table_status").set_index("table").loc["transactions", "status"] == "header only"
    clean = ctx.read(STEP, "clean_transactions")
    assert clean.empty and {"customer_ref", "customer_ref_kind", "source_row"} <= set(clean.columns)
    assert "value" in result.groups_without_data


def test_a_real_decoding_error_names_offset_and_line(tmp_path: Path) -> None:
    write_world(tmp_path / "raw")
    path = tmp_path / "raw" / "订单.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2][:3] + b"\xff" + lines[2][3:]
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(DataContractError, match="cannot decode") as error:
        run_world(tmp_path, CONFIG)
    offset = len(lines[0]) + len(lines[1]) + 2 + 3
    assert f"byte offset {offset} (line 3" in str(error.value)


def test_tolerant_reader_pads_cuts_and_numbers_rows(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("title\n\na;b;c\n1;2;3\n\n4;5\n6;7;8;9\n", encoding="utf-8")
    layout = csv_layout(path, 1, None)
    assert layout.names == ["a", "b", "c"] and layout.delimiter == ";" and layout.skip_lines == 3
    rows = tolerant_csv(path, layout, tmp_path / "x.parquet", block_bytes=8)
    frame = pd.read_parquet(tmp_path / "x.parquet")
    assert rows == 3 and frame["__source_row"].tolist() == [1, 2, 3]
    assert frame["c"].tolist() == ["3", None, "8"]
    assert frame["__read_problem"].tolist()[1:] == [
        "ragged row: 2 fields, the header has 3",
        "ragged row: 4 fields, the header has 3",
    ]


def test_tolerant_reader_numbers_rows_across_read_blocks(tmp_path: Path) -> None:
    """Ragged rows, blank lines and a quoted field with a line break, read in blocks of several sizes:
    every data row once, numbered as in the file, ragged ones padded or cut and named."""
    lines, expected = ["a,b,c"], {}
    for number in range(1, 201):
        if number % 7 == 0:
            lines.append(f"r{number},x")  # too few fields
            expected[number] = (f"r{number}", "x", None, "ragged row: 2 fields, the header has 3")
        elif number % 11 == 0:
            lines.append(f'r{number},"two\nlines",z,extra')  # too many fields, a line break inside quotes
            expected[number] = (f"r{number}", "two\nlines", "z", "ragged row: 4 fields, the header has 3")
        else:
            lines.append(f"r{number},{number},")
            expected[number] = (f"r{number}", str(number), None, None)
        if number % 50 == 0:
            lines.append("")
    path = tmp_path / "x.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    layout = csv_layout(path, 0, None)
    for block in (64, 256, 1 << 20):
        assert tolerant_csv(path, layout, tmp_path / "x.parquet", block_bytes=block) == 200
        frame = pd.read_parquet(tmp_path / "x.parquet").sort_values("__source_row")
        found = {
            row[3]: (row[0], row[1], None if pd.isna(row[2]) else row[2], row[4])
            for row in frame.itertuples(index=False)
        }
        assert found == expected, block


def test_unify_region() -> None:
    names = ["广东省", "广东", "北京市", "内蒙古自治区", "新疆维吾尔自治区", "香港特别行政区", "沙市"]
    assert [unify_region(name) for name in names] == [
        "广东",
        "广东",
        "北京",
        "内蒙古",
        "新疆",
        "香港",
        "沙市",
    ]


def test_the_worked_example_of_data_readme_is_a_valid_config() -> None:
    readme = (Path(__file__).parents[1] / "data" / "README.md").read_text(encoding="utf-8")
    example = readme.split("### Worked example")[1].split("```yaml")[1].split("```")[0]
    config = WorkbenchConfig.model_validate(
        {"run": {"reference_date": "2026-10-31"}, **yaml.safe_load(example)}
    )
    sources = table_sources(config.data)
    assert sources["calls"].key_by == "phone" and sources["surveys"].path is None
    assert sources["crm_customers"].columns["customer_type"].constant == "consumer"
    assert sources["calls"].contract.column("customer_ref").required


def test_byte_scan_finds_full_width_forms_and_space_separators_across_chunks(tmp_path: Path) -> None:
    """The file-level tests that let step 01 skip per-row work: never False when a full-width form or
    the ideographic space (`wide`), or a space separator other than the ASCII space (`spaced`), is
    there, also split across read chunks; the curly quote shares its first two bytes with the
    separators U+2000-U+200A but is none."""
    path = tmp_path / "x.csv"
    for text, wide, spaced in [
        ("a,b\n1,广东省\n", False, False),
        ("a,b\n1,１３８\n", True, False),
        ("a,b\n1,x\u3000y\n", True, True),
        ("a,b\n1,ｚ\n", True, False),
        ("a,b\n1,¥12\n", False, False),
        ("a,b\n 1 ,x \n", False, False),
        ("a,b\n1,\u00a0x\n", False, True),
        ("a,b\n1,x\u2003\n", False, True),
        ("a,b\n1,x\u202f\n", False, True),
        ("a,b\n1,\u201cx\u201d\n", False, False),
    ]:
        path.write_text(text, encoding="utf-8")
        for chunk in (1, 2, 3, 1 << 20):
            marks = scan_bytes(path, chunk)
            assert (marks.wide, marks.spaced) == (wide, spaced), (text, chunk)


def test_byte_scan_finds_fields_with_an_edge_space_across_chunks(tmp_path: Path) -> None:
    """`edged` (a field may start or end with an ASCII space, so step 01 tests each value) is never
    False when one does: beside the delimiter, a quote, a line break or the file's ends, also split
    across read chunks; spaces inside values, or beside another delimiter's character, are not edges."""
    path = tmp_path / "x.csv"
    for text, delimiter, edged in [
        ("a,b\n1,x y\n2,2024-01-01 10:00\n", ",", False),
        ('"a","b"\n"1","x y"\n', ",", False),
        ("a;b\n1;x, y\n", ";", False),
        ("a,b\n1, x\n", ",", True),
        ("a,b\n1,x \n", ",", True),
        ("a,b\n1,x \r\n", ",", True),
        ("a,b\n x,1\n", ",", True),
        ('a,b\n1," x"\n', ",", True),
        ('a,b\n1,"x "\n', ",", True),
        ("a,b\n1,x ", ",", True),
        ("a\tb\n1\tx \n", "\t", True),
        ("a,b\n1,x y\n", None, True),
    ]:
        path.write_text(text, encoding="utf-8")
        for chunk in (1, 2, 3, 1 << 20):
            assert scan_bytes(path, chunk, delimiter).edged == edged, (text, chunk)


def test_work_table_in_file_order_only_when_stored_so_on_the_reader(tmp_path: Path) -> None:
    """A clean table is written unsorted only when its work table holds rows 1, 2, ... in that order
    on the DuckDB reader; a table out of order, or with a gap, is sorted."""
    with Workspace(tmp_path, memory_limit="1GB", threads=2) as workspace:
        engine = workspace.engine
        engine.query("CREATE TABLE rows_a AS SELECT range + 1 AS source_row FROM range(5000)")
        engine.query("CREATE TABLE rows_b AS SELECT 5000 - range AS source_row FROM range(5000)")
        engine.query("CREATE TABLE rows_c AS SELECT range + 2 AS source_row FROM range(5000)")
        engine.query("UPDATE rows_a SET source_row = source_row WHERE source_row % 7 = 0")
        assert workspace.in_file_order("rows_a")
        assert not workspace.in_file_order("rows_b") and not workspace.in_file_order("rows_c")


def test_rows_of_a_big_csv_read_in_parallel_are_numbered_by_their_place_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 37 MB CSV (parallel scan on two threads; a boolean column, whose six words DuckDB would
    otherwise check with a hash join that loses file order) whose rows carry their own number in the
    key: the work table is created from the parallel scan, numbered by position, and every row's
    `source_row` is its number in the file; a few rows quarantined get their own lines."""
    raw = tmp_path / "raw"
    raw.mkdir()
    path = raw / "transactions.csv"
    bad = {7, 123_457, 456_789}  # negative quantities
    with DuckDBEngine() as duckdb_engine:
        duckdb_engine.query(
            "COPY (SELECT 'T' || i AS txn_id, 'crm' AS source_system, "
            "'C' || (i % 977) AS source_customer_id, "
            "TIMESTAMP '2024-01-01' + INTERVAL (i % 86400) SECOND AS txn_at, "
            "round(i % 1000 * 1.25, 2) AS amount, "
            f"CASE WHEN i IN ({', '.join(map(str, bad))}) THEN -1 ELSE 1 + i % 5 END AS quantity, "
            "'home' AS category, 'store' AS channel, "
            "CASE WHEN i % 3 = 0 THEN 'yes' ELSE 'false' END AS is_refund "
            f"FROM range(1, 600001) AS t(i)) TO '{path}' (HEADER)"
        )
    assert path.stat().st_size > 35e6
    tables = {"transactions": {"file": "transactions.csv"}}
    config = {
        "run": {"seed": 1, "reference_date": "2026-10-31"},
        "data": {"raw_dir": str(raw), "tables": tables},
    }
    settings = WorkbenchConfig.model_validate(config)
    sources = table_sources(settings.data)
    numbered: list[bool] = []
    create = Workspace.create_by_position
    monkeypatch.setattr(
        Workspace,
        "create_by_position",
        lambda self, *args, **kwargs: numbered.append(create(self, *args, **kwargs)) or numbered[-1],
    )
    with Workspace(tmp_path, memory_limit="1GB", threads=2) as workspace:
        workspace.engine.run("audit", "identity_keys")
        checked = check_rows(workspace, sources["transactions"], settings)
        misplaced = workspace.reader.query(
            "SELECT count(*) AS n, count(*) FILTER (WHERE v_txn_id <> 'T' || source_row) AS misplaced, "
            "count(*) FILTER (WHERE source_row <> rowid + 1) AS out_of_order FROM rows_transactions"
        ).iloc[0]
        rows = "(SELECT * FROM rows_transactions WHERE v_quantity < 0)"
        canonical = sources["transactions"].contract.column_names
        subset = rejected_rows(workspace, checked.source, rows, checked.mapped_columns, canonical)
        lines = workspace.reader.query(f"SELECT {subset.row_number} AS n, txn_id FROM {subset.numbered}")
    assert numbered == [True]
    assert misplaced.to_dict() == {"n": 600_000, "misplaced": 0, "out_of_order": 0}
    assert sorted(lines["n"]) == sorted(bad) and (lines["txn_id"] == "T" + lines["n"].astype(str)).all()


def test_each_work_table_is_inspected_whole_then_released(tmp_path: Path) -> None:
    """`run_contract` hands every finished work table to `inspect` (with all of its input rows) and
    drops it afterwards: no earlier table is still held when the next one is inspected."""
    write_world(tmp_path / "raw")
    config = {**CONFIG, "data": {**CONFIG["data"], "raw_dir": str(tmp_path / "raw")}}
    ctx = StepContext(run_dir=tmp_path / "run", step=STEP, config=config)
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    seen: dict[str, tuple[int, list[str]]] = {}
    with Workspace(ctx.step_dir, memory_limit="1GB", threads=1) as workspace:
        engine = workspace.engine

        def work_tables() -> list[str]:
            names = engine.query("SELECT table_name FROM duckdb_tables()")["table_name"]
            return sorted(name for name in names if name.startswith("rows_"))

        def inspect(table: str) -> None:
            rows = int(engine.query(f"SELECT count(*) AS n FROM rows_{table}")["n"].iloc[0])
            seen[table] = (rows, work_tables())

        result = run_contract(ctx, workspace, inspect)
        assert work_tables() == []
    assert list(seen) == [*(t for t in TABLES if TABLES[t].kind == "identity"),
                          *(t for t in TABLES if TABLES[t].kind == "event")]  # fmt: skip
    inputs = result.ledger.set_index("table")["input_rows"]
    assert {table: rows for table, (rows, _) in seen.items()} == inputs.to_dict()
    assert all(held == [f"rows_{table}"] for table, (_, held) in seen.items())


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_data_lines_number_rows_as_duckdb_does_across_chunks(tmp_path: Path, newline: str) -> None:
    """A title and blank lines, a quoted comma and no newline at the end (LF and CRLF files): the lines
    found for the wanted data rows are those rows as DuckDB's strict reader numbers them, for any
    chunk size."""
    path = tmp_path / "x.csv"
    path.write_bytes(
        newline.join(["title", "", "a,b", "1,x", "", '2,"y,z"', "", "3,w", "4,v", "", "5,u"]).encode()
    )
    layout = csv_layout(path, 1, None)
    with Workspace(tmp_path, memory_limit="1GB", threads=1) as workspace:
        relation = source_relation(workspace.reader, source(path, 1), workspace.directory)
        read = workspace.reader.query(f"SELECT ordinality AS n, a FROM {relation.numbered}")
    assert read["n"].tolist() == [1, 2, 3, 4, 5] and read["a"].tolist() == ["1", "2", "3", "4", "5"]
    cr = newline[:-1].encode()
    for chunk in (1, 2, 5, 1 << 20):
        found = data_lines(path, layout.skip_lines, np.array([1, 2, 4, 5]), chunk)
        assert found == [(1, b"1,x" + cr), (2, b'2,"y,z"' + cr), (4, b"4,v" + cr), (5, b"5,u")], chunk
        assert data_lines(path, layout.skip_lines, np.array([3, 9]), chunk) == [(3, b"3,w" + cr)]


def source(path: Path, skip_rows: int = 0) -> TableSource:
    """`path` as a table source (for the reader only: the columns are the file's)."""
    return TableSource(table="crm_customers", path=path, skip_rows=skip_rows)


@pytest.mark.parametrize(("spanning", "rejected"), [(False, "'3', '4'"), (True, "'3', '4'"), (True, "'4'")])
def test_rejected_rows_read_only_their_own_lines_unless_a_field_spans_lines(
    tmp_path: Path, spanning: bool, rejected: str
) -> None:
    """The quarantine's original text comes from the rejected rows' own lines, checked against the work
    table's row hashes; with a quoted field spanning lines the row numbers of the lines are not the
    file's rows (a line that does not parse, or one that is another row) and the whole file is read
    again (the relation comes back unchanged)."""
    path = tmp_path / "x.csv"
    second = '"two\nlines"' if spanning else "two"
    path.write_text(f"a,b\n1,one\n2,{second}\n3, three \n4,four\n", encoding="utf-8")
    mapped = 'CAST("a" AS VARCHAR) AS "a", CAST("b" AS VARCHAR) AS "b"'
    with Workspace(tmp_path, memory_limit="1GB", threads=1) as workspace:
        relation = source_relation(workspace.reader, source(path), workspace.directory)
        workspace.reader.query(
            f"CREATE TABLE rows_x AS SELECT ordinality AS source_row, hash(a, b) AS row_hash, "
            f"CASE WHEN a IN ({rejected}) THEN 'bad' ELSE '' END AS problems FROM {relation.numbered}"
        )
        subset = rejected_rows(workspace, relation, "rows_x", mapped, ["a", "b"])
        got = workspace.reader.query(
            f"SELECT {subset.row_number} AS n, {mapped} FROM {subset.numbered} ORDER BY n"
        )
    if spanning:
        assert subset is relation and got["n"].tolist() == [1, 2, 3, 4]
    else:
        assert subset.numbered != relation.numbered
        assert got.to_dict("list") == {"n": [3, 4], "a": ["3", "4"], "b": [" three ", "four"]}


def test_checks_on_another_engine_get_the_exports_handed_over_and_give_the_same_artifacts(
    tmp_path: Path, messy: StepContext
) -> None:
    """The checks on an engine other than the reader (here a second DuckDB, as Spark would be): every
    export, ragged and truncated CSVs, GBK and the Excel sheet included, goes over as Parquet
    (`Workspace.hand_over`) and every artifact equals the one-engine run's."""
    config = {**CONFIG, "data": {**CONFIG["data"], "raw_dir": str(messy.run_dir.parent / "raw")}}
    ctx = StepContext(run_dir=tmp_path / "run", step=STEP, config=config)
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    with Workspace(ctx.step_dir, memory_limit="1GB", threads=1) as workspace:
        workspace.engine = DuckDBEngine(threads=1)
        run_contract(ctx, workspace)
        handed = sorted(path.name for path in workspace.directory.glob("*.source.parquet"))
    assert handed == sorted(f"{table}.source.parquet" for table in TABLES)
    written = sorted(path.name for path in messy.step_dir.glob("*.parquet"))
    assert written == sorted(path.name for path in ctx.step_dir.glob("*.parquet"))
    for name in written:
        pd.testing.assert_frame_equal(
            pd.read_parquet(ctx.step_dir / name), pd.read_parquet(messy.step_dir / name), obj=name
        )


def test_excel_cells_as_the_text_a_csv_export_would_hold(tmp_path: Path) -> None:
    """Text columns are converted by Arrow at once and mixed columns cell by cell, with the same text:
    whole numbers without `.0`, ISO dates, lower-case booleans, empty cells and blank rows skipped;
    a sheet with only its header has no rows."""
    book = openpyxl.Workbook()
    sheet = book.active
    rows = [["导出 2026"], ["id", "name", "mixed"], [1001, "张三", datetime(1985, 3, 7)], [None, None, None],
            [1002.0, "", 2.5], [1003, "李四", True], [None, "王五", "1985/3/7"],
            [1004, "赵六", datetime(2026, 1, 2, 9, 30)]]  # fmt: skip
    for row in rows:
        sheet.append(row)
    book.create_sheet("empty").append(["id", "name"])
    book.save(tmp_path / "book.xlsx")
    source = TableSource(table="loyalty_members", path=tmp_path / "book.xlsx", format="excel", skip_rows=1)
    with DuckDBEngine() as engine:
        relation = source_relation(engine, source, tmp_path)
        read = engine.query(f"SELECT * FROM {relation.relation} ORDER BY {relation.row_number}")
        header_only = source_relation(engine, replace(source, sheet="empty", skip_rows=0), tmp_path)
        empty = engine.query(f"SELECT * FROM {header_only.relation}")
    assert relation.names == ["id", "name", "mixed"]
    assert read.drop(columns=relation.row_number).to_dict("list") == {
        "id": ["1001", "1002", "1003", None, "1004"],
        "name": ["张三", None, "李四", "王五", "赵六"],
        "mixed": ["1985-03-07", "2.5", "true", "1985/3/7", "2026-01-02 09:30:00"],
    }
    assert read[relation.row_number].tolist() == [1, 2, 3, 4, 5]
    assert empty.empty and header_only.names == ["id", "name"]
