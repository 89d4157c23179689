"""init-config: the config it proposes for the export-style demo world and for hand-made exports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers.__main__ import main as cli
from helpers.audit import init_config
from helpers.core.config import load_config
from helpers.core.paths import PROJECT_ROOT
from helpers.demo.world import generate_demo_world


@pytest.fixture(scope="module")
def export_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("init_config")
    generate_demo_world(base / "raw", base / "truth", n_customers=300, progress=False, style="export")
    return base / "raw"


@pytest.fixture(scope="module")
def proposed(export_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    output = tmp_path_factory.mktemp("proposed") / "my.yml"
    assert cli(["init-config", str(export_raw), "-o", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def test_export_world_proposal_places_every_file_like_the_hand_written_config(proposed) -> None:
    text, config = proposed
    hand = yaml.safe_load((PROJECT_ROOT / "config" / "demo_export.yml").read_text(encoding="utf-8"))
    tables, expected = config["data"]["tables"], hand["data"]["tables"]
    assert set(tables) == set(expected)  # no caller table or shop master
    for name, spec in expected.items():
        assert tables[name]["file"] == spec["file"], name
        assert tables[name]["columns"] == spec["columns"], name
        assert tables[name].get("key_by", "record") == spec.get("key_by", "record"), name
        for column, mapping in tables[name].get("values", {}).items():
            assert mapping == spec["values"][column], (name, column)
    assert config["data"]["home_area_code"] == "21"
    assert "# not placed: 当前积分" in text
    assert "no file found for: cti_contacts, shop_accounts (left out" in text


def test_export_world_proposal_reads_formats_layouts_and_vocabularies(proposed) -> None:
    _, config = proposed
    tables = config["data"]["tables"]
    crm = tables["crm_customers"]
    assert (crm["format"], crm["sheet"], crm["skip_rows"]) == ("excel", "客户主档", 2)
    assert {"yyyymmdd", "%Y年%m月%d日", "%Y/%m/%d", "%Y-%m-%d"} == set(crm["date_format"])
    assert crm["values"] == {
        "gender": {"男": "M", "女": "F"},
        "customer_type": {"个人": "consumer", "企业": "business"},
    }
    calls = tables["calls"]
    assert (calls["encoding"], calls["datetime_format"]) == ("gb18030", ["%Y年%m月%d日 %H:%M"])
    assert calls["values"]["resolved"] == {"是": "true", "否": "false"}
    assert calls["values"]["reason"] == {
        "咨询": "inquiry",
        "投诉": "complaint",
        "售后": "after_sales",
        "回访": "sales",
    }
    orders = tables["transactions"]
    assert (orders["encoding"], orders["datetime_format"]) == ("utf-8-sig", ["%Y/%m/%d %H:%M:%S"])
    assert orders["columns"]["is_refund"] == {"column": "订单状态", "equals": ["已退款"]}
    assert orders["values"]["channel"]["小程序"] == "app"
    assert tables["loyalty_members"]["values"]["tier"] == {
        "普卡": "basic",
        "银卡": "silver",
        "金卡": "gold",
        "钻石": "platinum",
    }
    assert tables["surveys"]["datetime_format"] == ["%m/%d/%Y"]
    marketing = tables["marketing_contacts"]  # a campaign export keyed by phone (e-mail for 邮件)
    assert (marketing["encoding"], marketing["key_by"]) == ("utf-8-sig", "identifier")
    assert marketing["datetime_format"] == ["%Y-%m-%d %H:%M"]
    assert marketing["values"]["channel"] == {
        "短信": "sms",
        "外呼": "phone",
        "微信": "social",
        "邮件": "email",
    }
    assert (
        marketing["values"]["responded"] == marketing["values"]["converted"] == {"是": "true", "否": "false"}
    )
    # the last busy event day, not a stray planted future date
    assert str(config["run"]["reference_date"]) in {"2026-06-28", "2026-06-29", "2026-06-30"}


def test_proposal_validates_as_a_run_config(proposed, tmp_path: Path) -> None:
    text, _ = proposed
    path = tmp_path / "my.yml"
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config["data"]["tables"]["calls"]["key_by"] == "phone"
    assert config["data"]["tables"]["transactions"]["key_by"] == "identifier"


def _write_gbk(path: Path, text: str) -> None:
    path.write_bytes(text.replace("\n", "\r\n").encode("gbk"))


def test_hand_made_exports_with_other_headers_are_placed_by_synonyms_and_content(tmp_path: Path) -> None:
    raw = tmp_path / "exports"
    raw.mkdir()
    customers = pd.DataFrame(
        {
            "客户ID": ["K001", "K002", "K003", "K004"],
            "客户姓名": ["王伟", "李娜", "张敏", "刘洋"],
            "性别": ["男", "女", "女", "男"],
            "联系电话": ["13800001111", "139-0000-2222", "+86 137 0000 3333", "010-65521234"],
            "备用字段": ["a@qq.com", "b@163.com", "c@126.com", "d@qq.com"],  # e-mails under no e-mail header
            "建档日期": ["2024/1/5 10:00", "2024/2/6 11:30", "2024/3/7 09:15", "2024/4/8 16:45"],
            "客户类型": ["个人", "个人", "企业", "个人"],
        }
    )
    with (raw / "客户名单.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        handle.write("客户名单导出;;;;;;\n;;;;;;\n")  # title row and a blank row
        customers.to_csv(handle, sep=";", index=False)
    orders = pd.DataFrame(
        {
            "Order No.": ["A1", "A2", "A3", "A4", "A5"],
            "Phone No.": ["13800001111", "13900002222", "13700003333", "13800001111", "13900002222"],
            "Order Date": ["03/05/2026", "03/17/2026", "04/01/2026", "04/02/2026", "04/03/2026"],
            "Order Amount": ["¥1,234.50", "88.00", "1,200.00元", "￥15.00", "99.90"],
            "Qty": ["1", "2", "1", "3", "1"],
            "Product Category": ["books", "gifts", "books", "home", "home"],
            "Sales Channel": ["门店", "APP", "PC", "电话", "小程序"],
            "Status": ["completed", "refunded", "completed", "completed", "completed"],
        }
    )
    orders.to_excel(raw / "orders.xlsx", sheet_name="Orders", index=False)
    _write_gbk(
        raw / "话单.csv",
        "话单号,主叫号码,通话时间,呼入呼出,来电原因,时长\n"
        "H1,013800001111,2026-03-05 14:03,呼入,投诉,120\n"
        "H2,65521234,2026-03-06 09:10,呼出,咨询,60\n"
        "H3,１３９００００２２２２,2026-03-07 10:00,呼入,售后,300\n",
    )
    output = tmp_path / "my.yml"
    assert init_config.main([str(raw), "-o", str(output)]) == 0
    config = load_config(output)
    tables = config["data"]["tables"]
    crm = tables["crm_customers"]
    assert (crm["file"], crm["skip_rows"], crm["delimiter"], crm["encoding"]) == (
        "客户名单.csv",
        2,
        ";",
        "utf-8-sig",
    )
    assert crm["columns"] == {
        "crm_id": "客户ID",
        "full_name": "客户姓名",
        "gender": "性别",
        "mobile": "联系电话",
        "email": "备用字段",
        "customer_type": "客户类型",
        "created_at": "建档日期",
    }
    assert crm["datetime_format"] == ["%Y/%m/%d %H:%M"]
    orders_spec = tables["transactions"]
    assert (orders_spec["format"], orders_spec["sheet"], orders_spec["key_by"]) == (
        "excel",
        "Orders",
        "phone",
    )
    columns = orders_spec["columns"]
    assert {k: columns[k] for k in ("txn_id", "customer_ref", "txn_at", "amount", "quantity", "channel")} == {
        "txn_id": "Order No.",
        "customer_ref": "Phone No.",
        "txn_at": "Order Date",
        "amount": "Order Amount",
        "quantity": "Qty",
        "channel": "Sales Channel",
    }
    assert (columns["is_refund"]["column"], columns["is_refund"]["equals"]) == ("Status", ["refunded"])
    assert orders_spec["datetime_format"] == ["%m/%d/%Y"]
    assert orders_spec["values"]["channel"] == {
        "门店": "store",
        "APP": "app",
        "PC": "online",
        "电话": "phone",
        "小程序": "app",
    }
    calls = tables["calls"]
    assert (calls["encoding"], calls["key_by"]) == ("gb18030", "phone")
    assert calls["columns"] == {
        "call_id": "话单号",
        "customer_ref": "主叫号码",
        "call_at": "通话时间",
        "direction": "呼入呼出",
        "reason": "来电原因",
        "duration_sec": "时长",
    }
    assert config["data"]["home_area_code"] == "10"  # 65521234 is 010-65521234 in the customer file
    assert "REQUIRED column category" not in output.read_text(encoding="utf-8")


def test_date_formats_keep_only_the_forms_that_parse() -> None:
    values = ["1985/3/7", "1985-03-07", "19850307", "1985年3月7日", "", "1990/12/31"]
    assert init_config.date_formats([v for v in values if v]) == [
        "yyyymmdd",
        "%Y年%m月%d日",
        "%Y-%m-%d",
        "%Y/%m/%d",
    ]
    assert init_config.date_formats(["04/29/2023", "05/01/2023"]) == ["%m/%d/%Y"]
    assert init_config.date_formats(["29/04/2023", "01/05/2023"]) == ["%d/%m/%Y"]
    assert init_config.date_formats(["abc", "def", "2023-01-01"]) == []  # mostly not dates


def test_headers_are_compared_without_width_case_units_or_punctuation() -> None:
    assert init_config.normalize_header("通话时长（秒）") == "通话时长"
    assert init_config.normalize_header(" Phone No. ") == "phoneno"
    assert init_config.header_score("手机号码", ["手机号码"]) == 3.0
    assert 1.0 < init_config.header_score("客户手机号码", ["手机号码"]) < 3.0
    assert init_config.header_score("出生日期", ["出"]) == 0.0  # one-character synonyms only match whole


def test_an_empty_folder_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    assert init_config.main([str(tmp_path), "-o", str(tmp_path / "x.yml")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
