"""The CJK font embedded in the pages: exactly the glyphs a page shows, offline, in the font stack."""

from __future__ import annotations

import base64
import io
import re

from fontTools.ttLib import TTFont

from helpers.core.fonts import EMBEDDED_FONT_FAMILY, embedded_font_css
from helpers.core.render import FONT_STACK, write_index


def embedded_characters(css: str) -> set[str]:
    """The characters the WOFF in a `<style>` from `embedded_font_css` maps to glyphs."""
    data = re.search(r"base64,([A-Za-z0-9+/=]+)\)", css)
    assert data, css[:200]
    font = TTFont(io.BytesIO(base64.b64decode(data.group(1))))
    assert font.flavor == "woff"
    return {chr(code) for code in font.getBestCmap()}


def test_subset_holds_the_page_characters_and_no_others() -> None:
    css = embedded_font_css("<p>客户分群：高价值（ＶＩＰ）</p><p>Segment 3</p>")
    assert f'font-family: "{EMBEDDED_FONT_FAMILY}"' in css and "http" not in css
    assert embedded_characters(css) >= set("客户分群：高价值（ＶＩＰ）")
    assert not embedded_characters(css) & set("龙凤")
    assert len(css) < 60_000  # a dozen glyphs, not the 16 MB font


def test_page_without_chinese_embeds_nothing() -> None:
    assert embedded_font_css("<p>Segment 3: 1,234 customers, ¥5,678</p>") == ""


def test_index_page_leads_its_font_stack_with_the_embedded_characters(tmp_path) -> None:
    (tmp_path / "reports").mkdir()
    page = write_index(tmp_path).read_text(encoding="utf-8")
    assert "@font-face" in page
    title = re.search(r"<h1>(.+?)</h1>", page).group(1)
    assert re.search(r"[\u4e00-\u9fff]", title), title  # the default language is Chinese
    assert embedded_characters(page) >= set(re.sub(r"[\x00-\u2e7f]", "", title))
    families = [family.strip().strip('"') for family in FONT_STACK.split(",")]
    assert families[0] == EMBEDDED_FONT_FAMILY and families[-1] == "sans-serif"  # a browser awaits the first
    face = re.search(r"@font-face \{(.+?)\}", page).group(1)
    assert 'local("Microsoft YaHei")' in face.split("url(")[0]  # an installed CJK font before the subset
    assert "unicode-range: U+2E80-9FFF" in face  # Latin text keeps its own fonts
