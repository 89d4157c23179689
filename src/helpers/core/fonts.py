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
from importlib.resources import files

from fontTools import subset

CJK_FONT_FILE = files("mplfonts") / "fonts" / "NotoSansCJKsc-Regular.otf"
EMBEDDED_FONT_FAMILY = "Workbench CJK"
# Characters a Latin font lacks: CJK radicals to ideographs, compatibility ideographs, full-width forms.
CJK_CHARACTER = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef]")


def embedded_font_css(page: str) -> str:
    """A `<style>` with an @font-face of the CJK characters in `page` (a WOFF subset of Noto Sans
    CJK SC in a data URI, family `EMBEDDED_FONT_FAMILY`); '' for a page without CJK text."""
    characters = frozenset(CJK_CHARACTER.findall(page))
    if not characters:
        return ""
    return (
        '<style type="text/css">@font-face { font-family: "'
        + EMBEDDED_FONT_FAMILY
        + '"; src: url(data:font/woff;base64,'
        + font_subset(characters)
        + ') format("woff"); }</style>\n'
    )


@functools.lru_cache(maxsize=32)
def font_subset(characters: frozenset[str]) -> str:
    """Base64 WOFF of the shipped CJK font cut down to `characters` (~0.5 s, ~90 KB per 300)."""
    options = subset.Options(flavor="woff")
    font = subset.load_font(str(CJK_FONT_FILE), options, lazy=True)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=[ord(character) for character in characters])
    subsetter.subset(font)
    woff = io.BytesIO()
    subset.save_font(font, woff, options)
    return base64.b64encode(woff.getvalue()).decode("ascii")
