"""Rendering executed notebooks to self-contained HTML: a full analyst page and a management page.

The management page drops code and every cell tagged `pii` or `analyst`; neither page loads
anything from the internet (figures are embedded PNGs).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor

PII_TAG = "pii"  # cells showing personal data: analysts only
ANALYST_TAG = "analyst"  # checks, file lists, run mechanics: analysts only
# nbconvert's template loads require.js and MathJax from a CDN; static reports need neither.
# A script tag that loads from the internet, or an inline script that imports from it (nbconvert's
# Mermaid loader): the reports must open offline and call no third party.
EXTERNAL_SCRIPT = re.compile(
    r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>\n?'
    r"|<script\b[^>]*>(?:(?!</script>).)*?https?://(?:(?!</script>).)*?</script>\n?",
    re.DOTALL,
)


def render_reports(executed: Path, reports_dir: Path) -> None:
    """Write `<name>.html` (full) and `<name>.management.html` (no code, no `pii` or `analyst` cells)."""
    notebook = nbformat.read(executed, as_version=4)
    full_html, _ = HTMLExporter().from_notebook_node(notebook)
    (reports_dir / f"{executed.stem}.html").write_text(self_contained(full_html), encoding="utf-8")
    management = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    management.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={PII_TAG, ANALYST_TAG}), enabled=True
    )
    management_html, _ = management.from_notebook_node(notebook)
    (reports_dir / f"{executed.stem}.management.html").write_text(
        self_contained(management_html), encoding="utf-8"
    )


def self_contained(html: str) -> str:
    """The HTML without scripts that load or import code from the internet (figures are embedded PNGs)."""
    return EXTERNAL_SCRIPT.sub("", html)
