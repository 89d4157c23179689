"""PII scan of rendered reports: find the identity tables' names, phones, e-mails and ids in HTML.

`collect_pii_values(run_dir)` gathers the personal values a run knows (the identity tables of
step 01, clean and quarantined, and the golden records of step 02); `scan_reports(paths, values)`
lists every place a report shows one of them. Phones match in any common format (`+86 138-1234-5678`,
`(010) 6234 5678`, `0086 13812345678`...) because both sides are reduced to the national number.
Placeholders (13800000000, test@test.com: `helpers.core.normalize`) are not personal and not looked for.
Not caught: local landline numbers written without area code (7-8 digits collide with ordinary
numbers), one-word Latin names shorter than 6 letters, and anything inside images.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from helpers.core.normalize import (
    is_placeholder_email,
    is_placeholder_phone,
    normalize_email,
    normalize_phone,
)

NAME_COLUMNS = ("full_name", "caller_name", "display_name", "member_name")
PHONE_COLUMNS = ("mobile", "landline", "phone", "mobile_norm", "landline_norm", "phone_norm")
EMAIL_COLUMNS = ("email", "email_norm")
ID_COLUMNS = (
    "customer_id", "source_record_id", "crm_id", "cti_id", "shop_user_id", "member_no", "national_id_hash",
)  # fmt: skip
IDENTITY_TABLES = ("crm_customers", "cti_contacts", "shop_accounts", "loyalty_members")
MIN_LATIN_SINGLE_WORD = 6
MIN_PURE_DIGIT_ID = 8
# A phone-shaped run of digits and separators has 9 (area 10/2x + 7 digits) to 15 (0086 + mobile) digits;
# longer runs (floats, timestamps) are not phones and are not searched inside.
PHONE_DIGITS = (9, 15)

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff"
_DATA_URI = re.compile(r"data:[\w/+.\-]+;base64,[A-Za-z0-9+/=\s]+")
_CJK_RUN = re.compile(f"[{_CJK}]+")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]*")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")
_PHONE_RUN = re.compile(r"\+?\d[\d \t\-().]*\d")
_ID_TOKEN = re.compile(r"[A-Za-z0-9_\-]{5,}")
_TAG = re.compile(r"<[^<>]*>")


@dataclass(frozen=True)
class PiiHit:
    """One personal value found in one report."""

    report: str
    kind: str  # name | phone | email | id
    value: str
    context: str


@dataclass
class PiiValues:
    """The personal values to look for, pre-normalized for matching."""

    cjk_names: set[str] = field(default_factory=set)
    latin_names: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return sum(len(s) for s in (self.cjk_names, self.latin_names, self.phones, self.emails, self.ids))


def phone_key(digits: str) -> str:
    """National number: digits without the 0086/86 country code and the trunk 0."""
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) >= 11:
        digits = digits[2:]
    return digits[1:] if digits.startswith("0") else digits


def pii_values_from_frames(
    names: Iterable[object] = (),
    phones: Iterable[object] = (),
    emails: Iterable[object] = (),
    ids: Iterable[object] = (),
) -> PiiValues:
    """Build the lookup sets from raw name, phone, e-mail and id values (nulls ignored)."""
    values = PiiValues()
    for raw in _clean(names):
        name = " ".join(raw.split()).casefold()
        if re.search(f"[{_CJK}]", name):
            if len(name.replace(" ", "")) >= 2:
                values.cjk_names.add(name.replace(" ", ""))
        elif len(name.split()) >= 2 or len(name) >= MIN_LATIN_SINGLE_WORD:
            values.latin_names.add(name)
    # Placeholders (13800000000, test@test.com, ...) are nobody's personal data: not looked for.
    phone_texts = pd.Series(list(_clean(phones)), dtype="string")
    normalized = normalize_phone(phone_texts)
    placeholder = is_placeholder_phone(normalized)
    for text in [*phone_texts[~placeholder], *normalized[~placeholder].dropna()]:
        key = phone_key(re.sub(r"\D", "", text))
        if len(key) >= PHONE_DIGITS[0]:
            values.phones.add(key)
    email_texts = pd.Series([e.strip() for e in _clean(emails) if "@" in e], dtype="string")
    placeholder = is_placeholder_email(normalize_email(email_texts))
    values.emails = {e.casefold() for e in email_texts[~placeholder]}
    values.ids = {
        i.strip()
        for i in _clean(ids)
        if len(i.strip()) >= 5 and not (i.isdigit() and len(i) < MIN_PURE_DIGIT_ID)
    }
    return values


def _clean(values: Iterable[object]) -> Iterable[str]:
    for value in values:
        if value is not None and not (isinstance(value, float) and value != value) and value is not pd.NA:
            text = str(value).strip()
            if text:
                yield text


def collect_pii_values(run_dir: str | Path) -> PiiValues:
    """Names, phones, e-mails and ids from a run's identity artifacts (steps 01 and 02)."""
    run_dir = Path(run_dir)
    paths = [
        run_dir / "01_data_audit" / f"{kind}_{table}.parquet"
        for table in IDENTITY_TABLES
        for kind in ("clean", "quarantine")
    ]
    paths += [run_dir / "02_identity_merge" / name for name in ("golden.parquet", "crosswalk.parquet")]
    found = [p for p in paths if p.is_file()]
    if not found:
        raise FileNotFoundError(
            f"{run_dir} has no identity artifacts "
            "(01_data_audit/clean_*.parquet, 02_identity_merge/golden.parquet)"
        )
    columns: dict[str, list[object]] = {"names": [], "phones": [], "emails": [], "ids": []}
    wanted = {"names": NAME_COLUMNS, "phones": PHONE_COLUMNS, "emails": EMAIL_COLUMNS, "ids": ID_COLUMNS}
    for path in found:
        available = set(pq.read_schema(path).names)
        read = [c for group in wanted.values() for c in group if c in available]
        if not read:
            continue
        frame = pd.read_parquet(path, columns=read)
        for kind, group in wanted.items():
            for column in group:
                if column in frame.columns:
                    columns[kind].extend(frame[column].dropna().astype(str).unique())
    return pii_values_from_frames(**columns)


def _context(text: str, start: int, end: int) -> str:
    return text[max(0, start - 40) : end + 40].replace("\n", " ")


def scan_text(text: str, values: PiiValues, report: str = "") -> list[PiiHit]:
    """Every personal value in an HTML (or plain) text, with some context around it.

    Names are looked for in the text outside HTML tags (markup words such as `</li> <li>` would
    otherwise read as the name "Li Li"); phones, e-mails and ids everywhere, attributes included.
    """
    text = _DATA_URI.sub(" ", text)
    visible = html.unescape(_TAG.sub(" ", text))
    text = html.unescape(text)
    hits: list[PiiHit] = []
    max_cjk = max((len(n) for n in values.cjk_names), default=0)
    for run in _CJK_RUN.finditer(visible):
        chunk = run.group()
        for length in range(2, min(max_cjk, len(chunk)) + 1):
            for i in range(len(chunk) - length + 1):
                if chunk[i : i + length] in values.cjk_names:
                    start = run.start() + i
                    hits.append(
                        PiiHit(
                            report, "name", chunk[i : i + length], _context(visible, start, start + length)
                        )
                    )
    max_words = max((len(n.split()) for n in values.latin_names), default=0)
    words = list(_LATIN_WORD.finditer(visible))
    for i in range(len(words)):
        for n in range(1, max_words + 1):
            if i + n > len(words):
                break
            candidate = " ".join(w.group().casefold() for w in words[i : i + n])
            if candidate in values.latin_names:
                start, end = words[i].start(), words[i + n - 1].end()
                hits.append(PiiHit(report, "name", visible[start:end], _context(visible, start, end)))
    for match in _EMAIL.finditer(text):
        if match.group().casefold() in values.emails:
            hits.append(PiiHit(report, "email", match.group(), _context(text, match.start(), match.end())))
    for match in _PHONE_RUN.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1] and phone_key(digits) in values.phones:
            hits.append(PiiHit(report, "phone", match.group(), _context(text, match.start(), match.end())))
    for match in _ID_TOKEN.finditer(text):
        if match.group() in values.ids:
            hits.append(PiiHit(report, "id", match.group(), _context(text, match.start(), match.end())))
    return hits


def scan_reports(report_paths: Iterable[str | Path], pii_values: PiiValues) -> list[PiiHit]:
    """Scan HTML reports (e.g. every `*.management.html` of a run) for personal values."""
    hits: list[PiiHit] = []
    for path in report_paths:
        hits.extend(
            scan_text(Path(path).read_text(encoding="utf-8", errors="replace"), pii_values, str(path))
        )
    return hits
