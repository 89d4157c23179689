"""Normalizers for identifiers, vectorized over pandas Series.

Phones: China numbering plan. Mobiles become `+86` + 11 digits; landlines
`+86-<area code without 0>-<local number>`; anything else becomes null.
E-mails: trimmed and lower-cased; malformed addresses become null.
"""

from __future__ import annotations

import pandas as pd

# Two-digit area codes (Beijing 10, 20-29); all other area codes have three digits.
_TWO_DIGIT_AREA = r"(?:10|2\d)"
_EMAIL_PATTERN = r"^[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}$"


def normalize_phone(phones: pd.Series) -> pd.Series:
    """Canonical phone numbers: `+8613812345678` or `+86-10-62345678`; null if not a valid number."""
    text = phones.astype("string").str.strip()
    # Drop extensions ("转123", "ext 12", "x12") before looking at digits.
    text = text.str.replace(r"(?:转|ext\.?|x)\s*\d+$", "", regex=True, case=False)
    digits = text.str.replace(r"\D", "", regex=True)
    has_country_code = text.str.match(r"^\s*(?:\+|00)\s*86") | (
        digits.str.match(r"^86(?:1[3-9]\d{9}|[1-9]\d{8,10})$") & ~digits.str.match(r"^1[3-9]\d{9}$")
    )
    digits = digits.where(~has_country_code.fillna(False), digits.str.replace(r"^(?:0086|86)", "", regex=True))
    mobile = digits.str.fullmatch(r"1[3-9]\d{9}")
    # Landline: optional trunk 0, area code, 7-8 digit local number.
    landline_parts = digits.str.extract(rf"^0?({_TWO_DIGIT_AREA}|[3-9]\d{{2}})([2-9]\d{{6,7}})$")
    landline = landline_parts[0].notna() & ~mobile.fillna(False)
    result = pd.Series(pd.NA, index=phones.index, dtype="string")
    result = result.mask(mobile.fillna(False), "+86" + digits)
    result = result.mask(landline, "+86-" + landline_parts[0] + "-" + landline_parts[1])
    return result


def normalize_email(emails: pd.Series) -> pd.Series:
    """Trimmed, lower-case e-mail addresses; null if malformed."""
    text = emails.astype("string").str.strip().str.lower()
    return text.where(text.str.match(_EMAIL_PATTERN).fillna(False), pd.NA)


def is_mobile(normalized_phones: pd.Series) -> pd.Series:
    """True where a normalized phone is a mobile number."""
    return normalized_phones.str.match(r"^\+861\d{10}$").fillna(False)
