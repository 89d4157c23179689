"""Chinese-first reports: catalogs complete in every language, chart glyphs, colours, and the
management pages of a finished small run (titles, no warnings or paths, mostly Chinese, index)."""

from __future__ import annotations

import io
import re
import string
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

from helpers.core import plots
from helpers.core.i18n import LANGUAGES, load_messages

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


def _code_files() -> list[Path]:
    return sorted((ROOT / "src" / "helpers").rglob("*.py")) + sorted((ROOT / "notebooks").glob("*.ipynb"))


def used_catalog_keys(source: str) -> set[str]:
    """Catalog keys written literally in `source` (a notebook's JSON escapes quotes as \\")."""
    source = source.replace('\\"', '"')
    keys = set(KEY_CALLS.findall(source))
    keys |= {f"common.pages.{page}.title" for page in HEADER_CALLS.findall(source)}
    return keys


def test_key_finder_sees_the_usual_calls() -> None:
    source = 'say(ctx, "audit.summary", n=3)\nctx.text("common.yes")\ntext.raw("strategy.kpis")\n'
    source += '"header(ctx, \\"lifecycle\\")"'
    assert used_catalog_keys(source) == {
        "audit.summary", "common.yes", "strategy.kpis", "common.pages.lifecycle.title",
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
def test_chinese_chart_renders_without_missing_glyphs() -> None:
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
