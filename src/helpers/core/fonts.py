"""The CJK font the workbench ships, for charts and for the HTML pages.

Noto Sans CJK SC comes with the pinned `mplfonts` package (SIL Open Font License; its SimHei.ttf is
not used: licence). Charts register the whole font (`helpers.core.plots.setup`); a management page
embeds only the glyphs it shows (`embedded_font_css`), so its Chinese renders on a machine without
any CJK font (a fresh Linux desktop, a headless browser) and the page stays one offline file.
"""

from __future__ import annotations

import base64
import functools
import io
import re
from importlib.util import find_spec
from pathlib import Path

# Located without importing mplfonts (its package imports matplotlib, which the runner process
# rendering pages never needs).
CJK_FONT_FILE = Path(find_spec("mplfonts").origin).parent / "fonts" / "NotoSansCJKsc-Regular.otf"
EMBEDDED_FONT_FAMILY = "Workbench CJK"
# Characters a Latin font lacks: CJK radicals to ideographs, compatibility ideographs, full-width forms.
CJK_CHARACTER = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")
CJK_RANGES = "U+2E80-9FFF, U+F900-FAFF, U+FE30-FE4F, U+FF00-FFEF"  # the same ranges, for CSS
# Installed CJK fonts the pages prefer to the embedded subset (full and PostScript names, as
# `local()` matches them): Mac, Windows, Linux.
SYSTEM_CJK_FONTS = (
    "PingFang SC", "PingFangSC-Regular", "Microsoft YaHei", "MicrosoftYaHei",
    "Noto Sans CJK SC", "NotoSansCJKsc-Regular", "Source Han Sans SC", "SourceHanSansSC-Regular",
)  # fmt: skip


def embedded_font_css(page: str) -> str:
    """A `<style>` with the @font-face `EMBEDDED_FONT_FAMILY` for the CJK characters in `page`: the
    machine's own CJK font where it has one (`local()`), else a WOFF subset of Noto Sans CJK SC in a
    data URI; '' for a page without CJK text. The family leads the page's font stack, limited to
    CJK code points (`unicode-range`): a browser waits for the first family of a stack, whereas a
    web font further down is not awaited and text laid out before it decodes shows as boxes."""
    characters = frozenset(CJK_CHARACTER.findall(page))
    if not characters:
        return ""
    system_fonts = ", ".join(f'local("{name}")' for name in SYSTEM_CJK_FONTS)
    return (
        f'<style type="text/css">@font-face {{ font-family: "{EMBEDDED_FONT_FAMILY}"; src: {system_fonts}, '
        f'url(data:font/woff;base64,{font_subset(characters)}) format("woff"); '
        f"unicode-range: {CJK_RANGES}; }}</style>\n"
    )


@functools.lru_cache(maxsize=32)
def font_subset(characters: frozenset[str]) -> str:
    """Base64 WOFF of the shipped CJK font cut down to `characters` (~0.5 s, ~90 KB per 300)."""
    from fontTools import subset  # imported on first use: a run's pages need it, its start does not

    options = subset.Options(flavor="woff")
    font = subset.load_font(str(CJK_FONT_FILE), options, lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(character) for character in characters])
    subsetter.subset(font)
    woff = io.BytesIO()
    subset.save_font(font, woff, options)
    return base64.b64encode(woff.getvalue()).decode("ascii")
