"""Rendering executed notebooks to self-contained HTML: a full analyst page and a management page,
and the run's start page `reports/index.html` (首页).

The management page drops code, every cell tagged `pii` or `analyst`, and every output a manager
should not see (stderr, warnings, tracebacks, file-system paths); it has a real `<title>` in the
run's language (`report.language`), a reading width and a Chinese-friendly font stack led by the
shipped CJK font, embedded as the subset of glyphs the page shows, where the machine has no CJK
font of its own. No page loads anything from the internet (figures are embedded PNGs).
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import yaml
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

from helpers.core.fonts import EMBEDDED_FONT_FAMILY, embedded_font_css
from helpers.core.i18n import Catalog, Language, catalog
from helpers.core.settings import ReportSettings
from helpers.core.steps import STEP_BY_NAME, STEPS

PII_TAG = "pii"  # cells showing personal data: analysts only
ANALYST_TAG = "analyst"  # checks, file lists, run mechanics: analysts only
INDEX_PAGE = "index.html"
DATE_COVERAGE = Path("01_data_audit") / "date_coverage.parquet"  # step 01: first/last date per table
# nbconvert's template loads require.js and MathJax from a CDN; static reports need neither.
# A script tag that loads from the internet, or an inline script that imports from it (nbconvert's
# Mermaid loader): the reports must open offline and call no third party.
EXTERNAL_SCRIPT = re.compile(
    r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>\n?'
    r"|<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>\n?",
    re.DOTALL,
)
# Output a manager must not see: Python warnings (FutureWarning, UserWarning...; a page's own
# "Warning:" wording is content and stays) and tracebacks, and file-system paths (install folders,
# the run folder) - a Unix path of two or more parts, a Windows drive path, a venv.
TECHNICAL_OUTPUT = re.compile(
    r"[A-Z][A-Za-z]*Warning\b|Traceback|site-packages|\.venv\b"
    r"|(?<![\w.:/~-])/(?:[\w.\-]+/)+[\w.\-]*|\b[A-Za-z]:\\\w"
)
# nbconvert gives every figure this English alt text and logs a warning per page about it; the pages
# get a short alt text in their language instead, and the run's console stays quiet.
NBCONVERT_ALT = 'alt="No description has been provided for this image"'
EXPORTER_LOG = logging.getLogger("helpers.render.nbconvert")
EXPORTER_LOG.setLevel(logging.ERROR)
EXPORTER_LOCK = threading.Lock()  # one conversion at a time per process (the runner renders in a thread)
# The embedded family first (CJK code points only: a system CJK font where installed, else the
# page's own glyphs; helpers.core.fonts), then Latin text's fonts and the system CJK fonts.
FONT_STACK = (
    f'"{EMBEDDED_FONT_FAMILY}", "Helvetica Neue", Arial, "PingFang SC", "Microsoft YaHei", '
    '"Noto Sans CJK SC", "WenQuanYi Micro Hei", sans-serif'
)
MANAGEMENT_CSS = f"""<style type="text/css">
:root {{ --jp-content-font-family: {FONT_STACK}; --jp-ui-font-family: {FONT_STACK}; }}
body {{ font-family: {FONT_STACK}; line-height: 1.7; color: #222; }}
main, .jp-Notebook {{ max-width: 1000px; margin: 0 auto; padding: 1.5rem 1rem 3rem; }}
.jp-InputPrompt, .jp-OutputPrompt {{ display: none; }}
.jp-Cell {{ padding: 0; }}
.jp-RenderedHTMLCommon {{ font-size: 15px; }}
.jp-RenderedHTMLCommon table {{ border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 14px; }}
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td {{ padding: 4px 10px; text-align: right; }}
.jp-RenderedHTMLCommon tr > :first-child {{ text-align: left; }}
.jp-RenderedHTMLCommon tbody tr:nth-child(odd) {{ background: #f6f8fa; }}
.jp-RenderedImage img, .jp-OutputArea-output img {{ max-width: 100%; height: auto; }}
.wb-nav {{ max-width: 1000px; margin: 0.5rem auto 0; padding: 0 1rem; font-size: 14px; }}
.wb-nav a {{ color: #1a5fb4; text-decoration: none; }} .wb-nav a::before {{ content: "← "; }}
</style>
"""
INDEX_CSS = f"""<style type="text/css">
body {{ font-family: {FONT_STACK}; line-height: 1.8; color: #222; max-width: 760px; margin: 2rem auto;
  padding: 0 1rem; }}
dl {{ display: grid; grid-template-columns: max-content 1fr; gap: 0.2rem 1rem; }}
dt {{ color: #555; }} dd {{ margin: 0; }}
ol.pages {{ font-size: 1.15rem; }} ol.pages span {{ display: block; font-size: 0.9rem; color: #555; }}
ul.analyst {{ font-size: 0.9rem; color: #555; }}
p.failed {{ color: #a33; }}
</style>
"""


def frozen_config(run_dir: Path) -> dict[str, Any]:
    """The run's frozen `config.yml` (empty for a folder without one)."""
    path = run_dir / "config.yml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def run_language(run_dir: Path) -> Language:
    """`report.language` of the run's frozen config (the schema default without one)."""
    return (frozen_config(run_dir).get("report") or {}).get("language") or ReportSettings().language


def page_title(stem: str, text: Catalog) -> str:
    """The page title of a step's notebook stem (`common.pages.<package>.title`); else the stem."""
    step = STEP_BY_NAME.get(stem)
    return text(f"common.pages.{step.package}.title") if step else stem


def render_reports(executed: Path, reports_dir: Path, failed: bool = False) -> None:
    """Write `<name>.html` (full) and `<name>.management.html` (no code, no `pii` or `analyst` cells,
    no technical output), both titled in the run's language. For a `failed` step the management
    page is only a notice: a partial notebook's outputs may quote the rows the error is about."""
    language = run_language(reports_dir.parent)
    text = catalog(language)
    notebook = nbformat.read(executed, as_version=4)
    notebook.metadata["title"] = page_title(executed.stem, text)
    figure_alt = f'alt="{html.escape(text("common.figure"))}"'
    full, management = exporters(language)
    if failed:
        notice = nbformat.v4.new_markdown_cell(text("common.failed_page", step=notebook.metadata["title"]))
        shown = nbformat.v4.new_notebook(cells=[notice], metadata=notebook.metadata)
    with EXPORTER_LOCK:
        full_html, _ = full.from_notebook_node(notebook)
    full_html = full_html.replace(NBCONVERT_ALT, figure_alt)
    write_atomic(reports_dir / f"{executed.stem}.html", self_contained(full_html))
    with EXPORTER_LOCK:
        management_html, _ = management.from_notebook_node(shown if failed else for_management(notebook))
    nav = f'<nav class="wb-nav"><a href="{INDEX_PAGE}">{html.escape(text("common.home"))}</a></nav>'
    management_html = management_html.replace("</head>", MANAGEMENT_CSS + "</head>", 1).replace(
        NBCONVERT_ALT, figure_alt
    )
    management_html = re.sub(r"(<body[^>]*>)", lambda match: match.group(1) + nav, management_html, count=1)
    management_html = management_html.replace("</head>", embedded_font_css(management_html) + "</head>", 1)
    write_atomic(reports_dir / f"{executed.stem}.management.html", self_contained(management_html))


@functools.cache
def exporters(language: Language) -> tuple[HTMLExporter, HTMLExporter]:
    """The full-page and the management-page exporters of `language`, made once per process (an
    exporter compiles its templates on first use; a run renders twelve pages)."""
    full = HTMLExporter(language_code=language, log=EXPORTER_LOG)
    management = HTMLExporter(
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        language_code=language,
        log=EXPORTER_LOG,
    )
    management.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={PII_TAG, ANALYST_TAG}), enabled=True
    )
    return full, management


def for_management(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy without the outputs a manager should not see: stderr, errors, and any output with a
    warning, a traceback or a file-system path (these stay in the full page)."""
    shown = nbformat.from_dict(notebook)
    for cell in shown.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.outputs if not is_technical(output)]
    return shown


def is_technical(output: dict[str, Any]) -> bool:
    """True for stderr, errors and outputs whose text shows a warning, traceback or path."""
    if output.get("output_type") == "error" or output.get("name") == "stderr":
        return True
    texts = [output.get("text", "")]
    texts += [value for mime, value in output.get("data", {}).items() if not mime.startswith("image/")]
    return any(
        TECHNICAL_OUTPUT.search(value if isinstance(value, str) else "".join(value)) for value in texts
    )


def self_contained(html_text: str) -> str:
    """The HTML without scripts that load or import code from the internet (figures are embedded PNGs)."""
    return EXTERNAL_SCRIPT.sub("", html_text)


def data_period(run_dir: Path, text: Catalog) -> str:
    """First to last event date over step 01's tables (`date_coverage`), or "–" before step 01."""
    path = run_dir / DATE_COVERAGE
    if not path.is_file():
        return "–"
    coverage = pd.read_parquet(path, columns=["first", "last"])
    first, last = pd.to_datetime(coverage["first"]).min(), pd.to_datetime(coverage["last"]).max()
    if pd.isna(first) or pd.isna(last):
        return "–"
    return f"{text.day(first)} – {text.day(last)}"


def write_index(run_dir: Path) -> Path:
    """Write `reports/index.html`: run id, as-of date, data period, the management pages in reading
    order (strategy first) and the full analyst pages; after a failed run, the pages that exist."""
    language = run_language(run_dir)
    text = catalog(language)
    reports = run_dir / "reports"
    manifest_path = run_dir / "run.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    as_of = (frozen_config(run_dir).get("run") or {}).get("reference_date")
    stems = [step.name for step in reversed(STEPS)]
    stems += sorted(
        {path.name.removesuffix(".management.html") for path in reports.glob("*.management.html")}
        - set(stems),
        reverse=True,
    )
    pages = [stem for stem in stems if (reports / f"{stem}.management.html").is_file()]
    analyst = [stem for stem in stems if (reports / f"{stem}.html").is_file()]
    facts = [
        (text("common.run_id"), manifest.get("run_id", run_dir.name)),
        (text("common.as_of"), text.day(as_of) if as_of else "–"),
        (text("common.data_period"), data_period(run_dir, text)),
    ]
    status = ""
    if manifest.get("status") == "failed":
        failed = manifest.get("failed_step", "")
        status = (
            f'<p class="failed">{html.escape(text("common.index.failed", step=page_title(failed, text)))}</p>'
        )

    def link(stem: str, suffix: str, about: bool) -> str:
        step = STEP_BY_NAME.get(stem)
        note = (
            f" <span>{html.escape(text(f'common.pages.{step.package}.about'))}</span>"
            if about and step
            else ""
        )
        return f'<li><a href="{stem}{suffix}">{html.escape(page_title(stem, text))}</a>{note}</li>'

    title = html.escape(text("common.pages.index.title"))
    body = "\n".join(
        [
            f"<h1>{title}</h1>",
            "<dl>"
            + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(str(v))}</dd>" for k, v in facts)
            + "</dl>",
            status,
            f"<h2>{html.escape(text('common.index.read'))}</h2>",
            '<ol class="pages">'
            + "".join(link(stem, ".management.html", about=True) for stem in pages)
            + "</ol>",
            f"<h3>{html.escape(text('common.index.analyst'))}</h3>",
            '<ul class="analyst">' + "".join(link(stem, ".html", about=False) for stem in analyst) + "</ul>",
        ]
    )
    page = (
        f'<!DOCTYPE html>\n<html lang="{language}">\n<head>\n<meta charset="utf-8" />\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1.0">\n<title>{title}</title>\n'
        f"{INDEX_CSS}{embedded_font_css(body)}</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
    index = reports / INDEX_PAGE
    write_atomic(index, page)
    return index


def write_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text through a temporary file in the same folder: a reader never sees half a page."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)  # a full disk leaves no half file behind
        raise
