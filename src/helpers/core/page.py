"""Building blocks of a report page, in the run's language (`report.language`).

Notebooks call these instead of writing narrative in Markdown cells, so one notebook renders in
Chinese or English from the message catalogs (`helpers.core.i18n`):
`header(ctx, "strategy")` opens a page (title, run id, as-of date), `say(ctx, key, **values)`
shows a catalog paragraph, `table(ctx, frame, columns=...)` shows a frame with translated
headers, thousands separators, 是/否 for booleans and no row numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from IPython.display import Markdown, display
from pandas.io.formats.style import Styler

from helpers.core.context import StepContext


def header(ctx: StepContext, page: str) -> None:
    """The page title (`pages.<page>.title` in common.yml) and the run id / as-of line."""
    text = ctx.text
    run_id = ctx.run_dir.name if ctx.run_dir else "–"
    title = text(f"common.pages.{page}.title")
    display(
        Markdown(f"# {title}\n\n{text('common.run_line', run_id=run_id, as_of=text.day(ctx.reference_date))}")
    )


def say(ctx: StepContext, key: str, /, **values: Any) -> None:
    """One catalog message shown as Markdown."""
    display(Markdown(ctx.text(key, **values)))


def styled(ctx: StepContext, frame: pd.DataFrame, columns: Mapping[str, str] | None = None) -> Styler:
    """`frame` for reading: `columns` maps column -> catalog key (header text), numbers with separators,
    booleans as yes/no in the page language, no row numbers."""
    text = ctx.text
    shown = frame.copy()
    for name in shown.columns:
        if pd.api.types.is_bool_dtype(shown[name]):
            shown[name] = shown[name].map({True: text("common.yes"), False: text("common.no")})
    if columns is not None:
        shown = shown[list(columns)].rename(columns={name: text(key) for name, key in columns.items()})
    numeric = shown.select_dtypes("number").columns
    formats = {
        name: (lambda value: text.number(value))
        if pd.api.types.is_integer_dtype(shown[name])
        else (lambda value: text.number(value, decimals=2) if abs(value) < 100 else text.number(value))
        for name in numeric
    }
    return shown.style.hide(axis="index").format(formats, na_rep="–")


def table(ctx: StepContext, frame: pd.DataFrame, columns: Mapping[str, str] | None = None) -> None:
    """Display `styled(ctx, frame, columns)`."""
    display(styled(ctx, frame, columns))
