"""PII scan of rendered reports: planted names, phones (any format), e-mails and ids are caught."""

from __future__ import annotations

import base64
from pathlib import Path

import pandas as pd
import pytest

from helpers.core.privacy import (
    PiiValues,
    collect_pii_values,
    pii_values_from_frames,
    scan_reports,
    scan_text,
)
from helpers.core.steps import AUDIT, IDENTITY


@pytest.fixture(scope="module")
def values() -> PiiValues:
    return pii_values_from_frames(
        names=["王伟", "李秀英", "Sarah  Johnson", "Bo", "Catherine"],
        phones=["138-1234-5678", "+86 (10) 6234 5678", "02087654321", "12345", "13800000000"],
        emails=["Li.Na@Corp.CN", "test@test.com"],
        ids=["C9f3a01bc2d", "CRM00012345", "12345"],
    )


CLEAN_REPORT = """<html><body><h1>Strategy report</h1>
<p>20,000 customers; 1,234 on the call list; revenue ¥13,812,345; 62% at risk in 北京 and 上海.</p>
<table><tr><td>High-value loyal</td><td>4.5</td><td>2026-06-30 12:00</td>
<td>0.13812345678912</td></tr></table>
<p>Contact the Bo team. Call center teams: account managers.</p>
<img src="data:image/png;base64,{image}"/></body></html>"""


def test_clean_report_has_no_hits(values: PiiValues) -> None:
    image = base64.b64encode(b"13812345678 Sarah Johnson li.na@corp.cn" * 50).decode()
    assert scan_text(CLEAN_REPORT.format(image=image), values) == []


CLEAN_REPORT_ZH = """<html lang="zh"><body><h1>06 分群策略与外呼计划</h1>
<p>运行编号 20261203T133703Z-8d72 · 截至日期 2026年6月30日 · 数据期间 2023年1月1日 – 2026年6月29日</p>
<p>共 21,034 位客户，7 个分群；外呼名单 7,652 人、11,165 通电话（占可用 16,128 通的 69.0%）。</p>
<p>流失风险价值 ¥962.9万，增长潜力 ¥1,381.2万；合计 ¥1.38亿。王牌团队 1,008 / 1,008 通。</p>
<table><tr><td>高价值忠诚客户</td><td>是</td><td>4.5</td><td>13,812,345</td></tr></table></body></html>"""


def test_clean_chinese_report_has_no_hits(values: PiiValues) -> None:
    """Chinese number, money and date formats (万, 亿, ¥, 年月日) are not mistaken for phones or ids."""
    assert scan_text(CLEAN_REPORT_ZH, values) == []
    hits = scan_text(CLEAN_REPORT_ZH.replace("高价值忠诚客户", "高价值客户王伟"), values)
    assert [(hit.kind, hit.value) for hit in hits] == [("name", "王伟")]


@pytest.mark.parametrize(
    ("planted", "kind"),
    [
        ("<td>王伟</td>", "name"),
        ("客户李秀英已回访", "name"),
        ("<td>sarah johnson</td>", "name"),
        ("SARAH\n  JOHNSON called", "name"),
        ("<td>Catherine</td>", "name"),
        ("write to LI.NA@corp.cn today", "email"),
        ("li.na&#64;corp.cn", "email"),
        ("13812345678", "phone"),
        ("+86 138 1234 5678", "phone"),
        ("0086-138-1234-5678", "phone"),
        ("(138) 1234.5678", "phone"),
        ("010-62345678", "phone"),
        ("+86 10 6234 5678", "phone"),
        ("(020) 8765 4321", "phone"),
        ("tel:+8613812345678;", "phone"),
        ("<td>C9f3a01bc2d</td>", "id"),
        ("id=CRM00012345&", "id"),
    ],
)
def test_planted_value_is_caught(values: PiiValues, planted: str, kind: str) -> None:
    hits = scan_text(CLEAN_REPORT.format(image="") + planted, values, report="r.html")
    assert [h.kind for h in hits] == [kind]
    assert hits[0].report == "r.html"


def test_names_are_matched_in_text_not_in_html_markup() -> None:
    """A pinyin name such as "Li Li" must not match the markup of a bulleted list (seen on the demo
    world's audit report), but is caught where the report shows it."""
    values = pii_values_from_frames(names=["Li Li", "Ma Li"])
    bullets = "<ul><li>Every row is accepted.</li>\n<li>Lowest quality score: crm.</li></ul>"
    assert scan_text(bullets, values) == []
    hits = scan_text(bullets + '<p class="x">Call <b>Li</b> Li today</p>', values)
    assert [(h.kind, h.value) for h in hits] == [("name", "Li  Li")]


def test_short_or_ambiguous_values_are_not_looked_for(values: PiiValues) -> None:
    # Two-letter Latin names and short digit ids/phones would match ordinary words and numbers.
    assert "bo" not in values.latin_names
    assert "12345" not in values.ids and "12345" not in values.phones
    assert values.phones == {"13812345678", "1062345678", "2087654321"}
    # Placeholders are nobody's data; reports may mention them (e.g. explaining the identity merge).
    assert values.emails == {"li.na@corp.cn"}
    assert scan_text("placeholders like 13800000000 or test@test.com", values) == []


def test_collect_from_run_folder_and_scan_reports(tmp_path: Path) -> None:
    audit = tmp_path / AUDIT.name
    audit.mkdir()
    pd.DataFrame(
        {
            "crm_id": ["CRM00000001"],
            "full_name": ["张强"],
            "mobile": ["139 0000 1111"],
            "mobile_norm": ["+8613900001111"],
            "email": ["zq@corp.cn"],
            "email_norm": ["zq@corp.cn"],
            "source_record_id": ["CRM00000001"],
        }
    ).to_parquet(audit / "clean_crm_customers.parquet")
    pd.DataFrame({"cti_id": ["CTI0000009"], "caller_name": ["Maria Lopez"], "phone": ["0755-8888 1234"],
                  "reason": ["bad date"]}).to_parquet(audit / "quarantine_cti_contacts.parquet")  # fmt: skip
    (tmp_path / IDENTITY.name).mkdir()
    golden = {
        "customer_id": ["Cabcdef123"],
        "full_name": ["张强"],
        "mobile": ["+8613900001111"],
        "email": ["zq@corp.cn"],
    }
    pd.DataFrame(golden).to_parquet(tmp_path / IDENTITY.name / "golden.parquet")
    values = collect_pii_values(tmp_path)
    assert values.cjk_names == {"张强"} and values.latin_names == {"maria lopez"}
    assert {"13900001111", "75588881234"} <= values.phones
    assert values.ids == {"CRM00000001", "CTI0000009", "Cabcdef123"}
    clean, leaky = tmp_path / "a.management.html", tmp_path / "b.management.html"
    clean.write_text("<p>All good: 3 segments</p>", encoding="utf-8")
    leaky.write_text("<td>Maria Lopez</td><td>+86 755 8888 1234</td><td>Cabcdef123</td>", encoding="utf-8")
    hits = scan_reports([clean, leaky], values)
    assert sorted(h.kind for h in hits) == ["id", "name", "phone"]
    assert {h.report for h in hits} == {str(leaky)}


def test_collect_without_identity_artifacts_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no identity artifacts"):
        collect_pii_values(tmp_path)
