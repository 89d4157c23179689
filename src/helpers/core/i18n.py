"""What managers and agents read, in their language: message catalogs and number/date formats.

Texts live in editable YAML catalogs, one file per domain and language:
`src/helpers/locales/<language>/<domain>.yml` (nested keys). `catalog("zh")("audit.title", n=3)`
looks up `title` in `zh/audit.yml` and fills `{n}` with `str.format`. Every language holds the
same keys (a test checks); a missing key is an error naming the key and the catalog file, never
a silent fallback to another language.

Formats: `number` (thousands separators; 万/亿 in Chinese for large values), `money` (¥),
`share` (percent), `day` (2026年6月30日 / 30 Jun 2026).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml

Language = Literal["zh", "en"]
LANGUAGES: tuple[Language, ...] = ("zh", "en")
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


class MissingMessageError(KeyError):
    """A catalog key that the language's catalog does not hold."""


def _flatten(tree: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, dotted))
        else:
            flat[dotted] = value
    return flat


def load_messages(language: Language, locales_dir: Path = LOCALES_DIR) -> dict[str, Any]:
    """Every message of one language, keyed `<domain>.<nested.key>` (domain = catalog file name)."""
    messages: dict[str, Any] = {}
    for path in sorted((locales_dir / language).glob("*.yml")):
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        messages.update(_flatten(tree, path.stem))
    return messages


class Catalog:
    """Messages of one language: `cat(key, **values)`; `cat.raw(key)` for lists and mappings."""

    def __init__(self, language: Language, locales_dir: Path = LOCALES_DIR) -> None:
        self.language = language
        self._messages = load_messages(language, locales_dir)
        self._locales_dir = locales_dir

    def raw(self, key: str) -> Any:
        try:
            return self._messages[key]
        except KeyError:
            domain = key.split(".", 1)[0]
            raise MissingMessageError(
                f"message {key!r} is missing from {self._locales_dir / self.language / domain}.yml"
            ) from None

    def __call__(self, key: str, /, **values: Any) -> str:
        text = self.raw(key)
        return str(text).format(**values) if values else str(text)

    def __contains__(self, key: str) -> bool:
        return key in self._messages

    def label(self, key: str, fallback: str) -> str:
        """The message at `key`, or `fallback` where the catalog has none (data values, codes)."""
        return str(self._messages[key]) if key in self._messages else fallback

    def keys(self) -> list[str]:
        return list(self._messages)

    # --- formats -------------------------------------------------------------------------
    def number(self, value: float | None, decimals: int = 0) -> str:
        """Thousands separators; in Chinese, values from 100,000 up in 万 and from 10^8 in 亿."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if self.language == "zh" and abs(value) >= 1e8:
            return f"{value / 1e8:,.2f}亿"
        if self.language == "zh" and abs(value) >= 1e5:
            return f"{value / 1e4:,.1f}万"
        return f"{value:,.{decimals}f}"

    def money(self, value: float | None, decimals: int = 0) -> str:
        """An amount in CNY: ¥12,345 / ¥12.3万."""
        text = self.number(value, decimals)
        return text if text == "–" else ("-¥" + text[1:] if text.startswith("-") else "¥" + text)

    def share(self, value: float | None, decimals: int = 1) -> str:
        """A share 0-1 as a percentage."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{100 * value:.{decimals}f}%"

    def day(self, value: date | datetime | str | pd.Timestamp) -> str:
        """A calendar day: 2026年6月30日 / 30 Jun 2026."""
        stamp = pd.Timestamp(value)
        if self.language == "zh":
            return f"{stamp.year}年{stamp.month}月{stamp.day}日"
        return f"{stamp.day} {stamp.strftime('%b')} {stamp.year}"


@cache
def catalog(language: Language) -> Catalog:
    """The (cached) catalog of one language."""
    if language not in LANGUAGES:
        raise ValueError(f"report.language must be one of {', '.join(LANGUAGES)} (got {language!r})")
    return Catalog(language)
