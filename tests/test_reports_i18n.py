"""Chinese-first reports: catalogs complete in every language, chart glyphs, colours, and the
management pages of a finished small run (titles, no warnings or paths, mostly Chinese, index)."""

from __future__ import annotations

import html
import io
import json
import re
import string
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import nbformat
import pandas as pd
import pytest

from helpers.core import page, plots
from helpers.core.i18n import LANGUAGES, LOCALES_DIR, catalog, load_messages
from helpers.core.render import is_technical, render_reports, run_language, write_index
from helpers.core.runner import RunResult
from helpers.core.steps import AUDIT, STEPS, STRATEGY

ROOT = Path(__file__).resolve().parents[1]


# --- catalogs -----------------------------------------------------------------------------------
def _placeholders(text: object) -> set[str]:
    if not isinstance(text, str):
        return set()
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def _leaves(value: object) -> list[object]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_every_language_holds_the_same_keys_and_placeholders() -> None:
    catalogs = {language: load_messages(language) for language in LANGUAGES}
    reference = catalogs["zh"]
    assert {"common.pages.strategy.title", "common.run_id"} <= set(reference)
    for language, messages in catalogs.items():
        assert set(messages) == set(reference), f"{language}: {set(messages) ^ set(reference)}"
        for key, value in messages.items():
            leaves = _leaves(value)
            assert leaves and all(leaf is not None and str(leaf).strip() for leaf in leaves), (language, key)
            ours = set().union(*(_placeholders(leaf) for leaf in leaves))
            theirs = set().union(*(_placeholders(leaf) for leaf in _leaves(reference[key])))
            assert ours == theirs, (language, key, ours, theirs)


# A catalog key written literally in code: ctx.text("x.y"), text("x.y"), say(ctx, "x.y"), raw("x.y"),
# header(ctx, "page") (-> common.pages.<page>.title) and columns={...: "x.y"} of page.table/styled.
_KEY = r"[\"']([a-z_0-9]+(?:\.[A-Za-z_0-9]+)+)[\"']"
KEY_CALLS = re.compile(rf"(?:\btext|\.raw|\bsay\(\s*ctx\s*,)\s*\(?\s*{_KEY}")
HEADER_CALLS = re.compile(r"\bheader\(\s*ctx\s*,\s*[\"']([a-z_]+)[\"']")
DOMAINS = sorted(path.stem for path in (LOCALES_DIR / "zh").glob("*.yml"))
# ...and a dict value naming a catalog domain: the `columns={"col": "audit.headers.table"}` of a table.
MAPPED_KEYS = re.compile(rf":\s*[\"']((?:{'|'.join(DOMAINS)})(?:\.[A-Za-z_0-9]+)+)[\"']")


def _code_files() -> list[Path]:
    return sorted((ROOT / "src" / "helpers").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb"))


def used_catalog_keys(source: str) -> set[str]:
    """Catalog keys written literally in `source` (a notebook's JSON escapes quotes as \\")."""
    source = source.replace('\\"', '"')
    keys = set(KEY_CALLS.findall(source)) | set(MAPPED_KEYS.findall(source))
    keys |= {f"common.pages.{page}.title" for page in HEADER_CALLS.findall(source)}
    return keys


def test_key_finder_sees_the_usual_calls() -> None:
    source = 'say(ctx, "audit.summary", n=3)\nctx.text("common.yes")\ntext.raw("strategy.kpis")\n'
    source += '"header(ctx, \\"lifecycle\\")"\ntable(ctx, frame, columns={"n": "audit.headers.rows"})\n'
    source += 'overrides={"clustering.choose": choose}; ctx.read("03_features", "features.parquet")\n'
    assert used_catalog_keys(source) == {
        "audit.summary", "common.yes", "strategy.kpis", "common.pages.lifecycle.title", "audit.headers.rows",
    }  # fmt: skip


def test_every_catalog_key_used_in_code_exists() -> None:
    messages = {language: load_messages(language) for language in LANGUAGES}
    missing = []
    for path in _code_files():
        for key in used_catalog_keys(path.read_text(encoding="utf-8")):
            for language, known in messages.items():
                # A key may name a whole subtree (cat.raw of a mapping).
                if key not in known and not any(name.startswith(key + ".") for name in known):
                    missing.append(f"{path.relative_to(ROOT)}: {key} ({language})")
    assert not missing, "\n".join(missing)


# --- charts -------------------------------------------------------------------------------------
def test_chinese_chart_renders_without_missing_glyphs(caplog: pytest.LogCaptureFixture) -> None:
    plots.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" is a UserWarning
        figure, axis = plt.subplots()
        for stage, colour in plots.stage_colors().items():
            axis.bar(stage, 3, color=colour, label={"retention": "留存", "churned": "流失"}.get(stage, stage))
        axis.set_title("客户生命周期：各阶段人数（截至2026年6月30日）")
        axis.set_xlabel("阶段")
        axis.set_ylabel("客户数（万）")
        axis.legend(title="图例")
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        plt.close(figure)
    assert buffer.getvalue().startswith(b"\x89PNG")
    assert not [record.getMessage() for record in caplog.records if record.name.startswith("matplotlib")]
    assert "Noto Sans CJK SC" in {entry.name for entry in matplotlib.font_manager.fontManager.ttflist}


def test_missing_glyph_check_can_fail() -> None:
    """Without a CJK font in the list the same chart warns (so the test above is live)."""
    plots.setup()
    with warnings.catch_warnings(), matplotlib.rc_context({"font.sans-serif": ["DejaVu Sans"]}):
        warnings.simplefilter("error")
        figure, axis = plt.subplots()
        axis.set_title("客户")
        with pytest.raises(UserWarning, match="missing from font"):
            figure.savefig(io.BytesIO(), format="png")
        plt.close(figure)


def test_stage_colours_cover_the_lifecycle_stages() -> None:
    from helpers.lifecycle.stages import STAGES

    colours = plots.stage_colors()
    assert list(colours) == list(STAGES)
    assert len(set(colours.values())) == len(colours)
    red, green, _ = matplotlib.colors.to_rgb(colours["retention"])
    assert green > red  # retention is a healthy stage: not red
    assert colours["churned"] == "#cb181d"


def test_segment_colours_are_stable_and_prospects_grey() -> None:
    first = plots.segment_colors([0, 1, 2, 3])
    assert first[0] == plots.PROSPECTS_COLOR
    assert plots.segment_colors([3, 1]) == {3: first[3], 1: first[1]}  # independent of the other ids
    assert len(set(first.values())) == 4
    assert plots.PROSPECTS_COLOR not in plots.segment_colors(range(1, 30)).values()


def test_arviz_daily_import_warning_is_silenced() -> None:
    code = (
        "import warnings, helpers\n"
        "warnings.warn('\\nArviZ is undergoing a major refactor to improve flexibility', FutureWarning)\n"
        "warnings.warn('still shown', FutureWarning)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, check=True
    )
    assert "ArviZ" not in completed.stderr and "still shown" in completed.stderr


# --- rendering ----------------------------------------------------------------------------------
def _notebook_with_outputs() -> nbformat.NotebookNode:
    def markdown(text: str) -> dict:
        return nbformat.v4.new_output("display_data", data={"text/markdown": text, "text/plain": text})

    cell = nbformat.v4.new_code_cell("run_step(ctx)")
    cell.outputs = [
        markdown("## 关键数字\n\n共 1,234 位客户"),
        nbformat.v4.new_output("stream", name="stderr", text="some log line\n"),
        nbformat.v4.new_output("stream", name="stdout", text="FutureWarning: ArviZ is undergoing\n"),
        markdown("Reads /work/main/outputs/runs/x/03_features/features.parquet"),
        markdown("installed in site-packages"),
        nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=["Traceback ..."]),
        markdown("渠道 / 产品: 电话 / 短信, 万/亿, https://example.org/a/b"),
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
    ]
    analyst = nbformat.v4.new_code_cell("ctx.path('x')", metadata={"tags": ["analyst"]})
    analyst.outputs = [markdown("列表 analyst-only")]
    return nbformat.v4.new_notebook(
        cells=[cell, analyst], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}}
    )


@pytest.mark.parametrize(
    ("language", "title", "alt"),
    [("zh", "06 分群策略与外呼计划", "图表"), ("en", "06 Strategy and call plan", "Chart")],
)
def test_management_render_is_titled_and_drops_technical_output(
    tmp_path: Path, language: str, title: str, alt: str, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "config.yml").write_text(f"report:\n  language: {language}\n", encoding="utf-8")
    (tmp_path / "reports").mkdir()
    executed = tmp_path / f"{STRATEGY.name}.ipynb"
    nbformat.write(_notebook_with_outputs(), executed)
    render_reports(executed, tmp_path / "reports")
    management = (tmp_path / "reports" / f"{STRATEGY.name}.management.html").read_text(encoding="utf-8")
    full = (tmp_path / "reports" / f"{STRATEGY.name}.html").read_text(encoding="utf-8")
    assert f"<title>{title}</title>" in management and f"<title>{title}</title>" in full
    assert f'<html lang="{language}"' in management
    assert "共 1,234 位客户" in management and "电话 / 短信, 万/亿" in management
    for hidden in ("some log line", "Warning", "/work/", "site-packages", "Traceback", "analyst-only"):
        assert hidden not in management, hidden
        assert hidden in full or hidden == "Traceback", hidden  # the analyst page keeps everything
    assert 'href="index.html"' in management and "max-width" in management
    assert f'alt="{alt}"' in management and f'alt="{alt}"' in full and "No description" not in management
    assert not caplog.records  # nbconvert's per-page alt-text warning stays off the run's console


def test_technical_output_pattern() -> None:
    def shows(text: str) -> bool:
        return is_technical({"output_type": "stream", "name": "stdout", "text": text})

    assert shows("C:\\Users\\li\\data.csv") and shows("/tmp/x/y.csv") and shows("~/.venv/bin")
    assert shows("UserWarning: glyph") and shows(["Trace", "back (most recent call last)"])
    assert not shows("- **Warning: 6% of the call records were quarantined**")  # the page's own words
    assert not shows("1/2 的客户; 万/亿; 渠道 / 产品; a/b testing; https://example.org/x/y")
    assert is_technical({"output_type": "stream", "name": "stderr", "text": "ok"})
    assert not is_technical({"output_type": "display_data", "data": {"image/png": "iVBOR/a/b/c"}})


def _fake_run(run_dir: Path, status: str, steps: list[str]) -> None:
    (run_dir / "reports").mkdir(parents=True)
    (run_dir / "config.yml").write_text("run:\n  reference_date: 2026-06-30\n", encoding="utf-8")
    manifest = {"run_id": "20260701T000000Z-abcd", "status": status}
    if status == "failed":
        manifest["failed_step"] = STRATEGY.name
    (run_dir / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    for stem in steps:
        for suffix in (".html", ".management.html"):
            (run_dir / "reports" / f"{stem}{suffix}").write_text("<html></html>", encoding="utf-8")
    audit = run_dir / AUDIT.name
    audit.mkdir()
    pd.DataFrame(
        {
            "first": pd.to_datetime(["2023-01-05", "2024-02-01"]),
            "last": pd.to_datetime(["2026-06-29", "2026-05-01"]),
        }
    ).to_parquet(audit / "date_coverage.parquet")


def test_index_lists_pages_in_reading_order_with_run_facts(tmp_path: Path) -> None:
    _fake_run(tmp_path, "ok", [step.name for step in STEPS])
    index = write_index(tmp_path).read_text(encoding="utf-8")
    assert "<title>客户分群报告</title>" in index
    assert "20260701T000000Z-abcd" in index and "2026年6月30日" in index
    assert "2023年1月5日 – 2026年6月29日" in index
    management = re.findall(r'href="([^"]+)\.management\.html"', index)
    assert management == [step.name for step in reversed(STEPS)]
    assert "先看这里" in index.split("06_strategy.html")[0]  # what each management page answers
    analyst = re.findall(r'href="(\d\d_[a-z_]+)\.html"', index)
    assert analyst == management
    assert index.index(".management.html") < index.index(f'"{STRATEGY.name}.html"')  # analyst list second


def test_index_after_a_failed_run_lists_what_exists(tmp_path: Path) -> None:
    _fake_run(tmp_path, "failed", [step.name for step in STEPS[:-1]])
    (tmp_path / "config.yml").write_text(
        "run:\n  reference_date: 2026-06-30\nreport:\n  language: en\n", encoding="utf-8"
    )
    index = write_index(tmp_path).read_text(encoding="utf-8")
    assert "did not finish: 06 Strategy and call plan failed" in index
    assert "30 Jun 2026" in index
    assert re.findall(r'href="([^"]+)\.management\.html"', index) == [s.name for s in reversed(STEPS[:-1])]


# --- a finished small run -----------------------------------------------------------------------
DATA_URI = re.compile(r"data:[\w/+.\-]+;base64,[A-Za-z0-9+/=\s]+")
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef\u3000-\u303f]")
LATIN = re.compile(r"[A-Za-z]")
# A count or amount of 4+ digits without thousands separators (years, decimals and ids aside).
UNSEPARATED = re.compile(r"(?<![\w.,\-])(?!(?:19|20)\d\d(?!\d))\d{4,}(?![\w,]|\.\d)")
ROW_NUMBER = re.compile(r"<tr>\s*<th[^>]*>\s*\d+\s*</th>|<th[^>]*row_heading[^>]*>\s*\d+\s*</th>")
BOOLEAN_CELL = re.compile(r"<td[^>]*>\s*(?:True|False)\s*</td>")


def visible_text(page: str) -> str:
    """What a reader sees: the body without styles, scripts, tags and images."""
    body = page.split("<body", 1)[-1].split(">", 1)[-1]
    body = re.sub(r"<(style|script)\b.*?</\1>", " ", body, flags=re.DOTALL)
    return html.unescape(re.sub(r"<[^>]+>", " ", DATA_URI.sub("", body)))


def test_visible_text_counts_what_a_reader_sees() -> None:
    page = (
        '<head><title>x</title></head><body class="jp-Notebook" data-x="Light"><style>p {a: b}</style>'
        '<p>客户 &amp; <b>Li</b></p><img src="data:image/png;base64,QUJD"/></body>'
    )
    text = visible_text(page)
    assert "客户 &" in text and "Li" in text and "QUJD" not in text and "a: b" not in text
    assert len(CJK.findall(text)) == 2 and len(LATIN.findall(text)) == 2


def test_table_and_number_checks() -> None:
    assert UNSEPARATED.findall("共 12345 位客户，1008 通电话") == ["12345", "1008"]
    assert not UNSEPARATED.findall(
        "共 12,345 位；2026年6月30日；0.13812；20261203T133735Z-9a79；¥1.2万；1-2026"
    )
    assert ROW_NUMBER.search("<tbody><tr><th>0</th><td>a</td></tr>")
    assert ROW_NUMBER.search('<tr><th id="T_1_level0_row0" class="row_heading level0 row0" >12</th>')
    assert not ROW_NUMBER.search('<tr><th class="row_heading level0 row0">流失</th><td>3</td></tr>')
    assert BOOLEAN_CELL.search('<td class="data">True</td>') and not BOOLEAN_CELL.search("<td>是</td>")


@pytest.mark.slow
@pytest.mark.xdist_group("small_world")
def test_management_pages_of_a_run_are_titled_clean_and_in_the_run_language(small_run: RunResult) -> None:
    reports = small_run.run_dir / "reports"
    language = run_language(small_run.run_dir)
    text = catalog(language)
    english = {value for key, value in load_messages("en").items() if isinstance(value, str)}
    english -= {value for value in load_messages("zh").values() if isinstance(value, str)}
    problems = []
    for step in STEPS:
        page = (reports / f"{step.name}.management.html").read_text(encoding="utf-8")
        title = re.search(r"<title>(.*?)</title>", page)
        if not title or title.group(1) != text(f"common.pages.{step.package}.title"):
            problems.append(f"{step.name}: title {title and title.group(1)!r}")
        shown = DATA_URI.sub("", page)
        problems += [
            f"{step.name}: shows {word!r}"
            for word in ("Warning", "Traceback", "ERROR", "/work", "/home", "site-packages", ".venv")
            if word in shown
        ]
        seen = visible_text(page)
        problems += [
            f"{step.name}: no thousands separator in {number}" for number in UNSEPARATED.findall(seen)
        ]
        problems += [f"{step.name}: a table with row numbers" for _ in ROW_NUMBER.findall(page)[:1]]
        problems += [f"{step.name}: True/False in a table" for _ in BOOLEAN_CELL.findall(page)[:1]]
        if language == "zh":
            cjk, latin = len(CJK.findall(seen)), len(LATIN.findall(seen))
            if cjk <= latin:
                problems.append(f"{step.name}: {cjk} Chinese characters, {latin} Latin letters")
            problems += [
                f"{step.name}: untranslated {value[:40]!r}"
                for value in english
                if len(value) >= 12 and "{" not in value and value in seen
            ]
    assert not problems, "\n".join(problems)
    index = (reports / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'href="([^"]+)\.management\.html"', index) == [step.name for step in reversed(STEPS)]
    assert small_run.run_id in index and text("common.pages.index.title") in index


def test_page_header_names_page_run_and_as_of_in_the_language(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(page, "display", lambda markdown: shown.append(markdown.data))
    for language in LANGUAGES:
        ctx = SimpleNamespace(
            text=catalog(language),
            run_dir=Path("/x/20260701T000000Z-abcd"),
            reference_date=pd.Timestamp("2026-06-30"),
        )
        page.header(ctx, "lifecycle")
    assert shown == [
        "# 05 客户生命周期\n\n运行编号：20260701T000000Z-abcd · 截至日期：2026年6月30日",
        "# 05 Customer lifecycle\n\nRun id: 20260701T000000Z-abcd · As of: 30 Jun 2026",
    ]
