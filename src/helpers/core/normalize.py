"""Normalizers for identifiers, vectorized over pandas Series.

Phones: China numbering plan. Mobiles become `+86` + 11 digits; landlines
`+86-<area code without 0>-<local number>`; anything else becomes null.
E-mails: trimmed and lower-cased; malformed addresses become null; `canonical_email` folds
provider aliases. Names: `normalize_name` gives one order-free pinyin/Latin key. Cities: a small
city -> tier table.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

import pandas as pd
from pypinyin import lazy_pinyin

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
    without_country_code = digits.str.replace(r"^(?:0086|86)", "", regex=True)
    digits = digits.where(~has_country_code.fillna(False), without_country_code)
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


# ---------------------------------------------------------------------------------------------
# Placeholders: values people type when the real one is unknown. They identify nobody.
PLACEHOLDER_PHONES = frozenset({"+8613800000000", "+8613800138000", "+8612345678901", "+8613888888888"})
PLACEHOLDER_EMAIL_LOCALS = frozenset(
    {"test", "none", "noemail", "no", "na", "null", "xxx", "abc", "123", "a"}
)
PLACEHOLDER_EMAIL_DOMAINS = frozenset({"test.com", "example.com", "none.com", "email.com", "xxx.com"})


def is_placeholder_phone(normalized_phones: pd.Series) -> pd.Series:
    """True for known dummy numbers and numbers whose subscriber part is one repeated digit."""
    subscriber = normalized_phones.str.replace(r"^\+86-?(?:\d+-)?", "", regex=True).str[-8:]
    repeated = subscriber.str.fullmatch(r"(\d)\1{7}")
    return (normalized_phones.isin(PLACEHOLDER_PHONES) | repeated).fillna(False).astype(bool)


def is_placeholder_email(normalized_emails: pd.Series) -> pd.Series:
    """True for dummy addresses such as test@test.com or none@example.com."""
    parts = normalized_emails.str.extract(r"^([^@]+)@(.+)$")
    placeholder = parts[0].isin(PLACEHOLDER_EMAIL_LOCALS) | parts[1].isin(PLACEHOLDER_EMAIL_DOMAINS)
    return (placeholder & normalized_emails.notna()).astype(bool)


# Domains that deliver to the same mailbox as another domain.
EMAIL_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}
# Providers that ignore dots in the local part.
_DOTLESS_DOMAINS = ("gmail.com",)


def canonical_email(normalized_emails: pd.Series) -> pd.Series:
    """One key per mailbox: `+tag` sub-addresses dropped, provider aliases folded, Gmail dots removed.

    Input is the output of `normalize_email`. `J.Smith+shop@GoogleMail.com` and
    `jsmith@gmail.com` give the same key.
    """
    parts = normalized_emails.astype("string").str.extract(r"^([^@+]+)(?:\+[^@]*)?@(.+)$")
    local, domain = parts[0], parts[1].replace(EMAIL_DOMAIN_ALIASES)
    local = local.where(~domain.isin(_DOTLESS_DOMAINS), local.str.replace(".", "", regex=False))
    return (local + "@" + domain).astype("string")


# ---------------------------------------------------------------------------------------------
# Names: Chinese characters, pinyin and Latin spellings of the same person share one key.
_COMPOUND_SURNAMES = frozenset(
    {
        "欧阳",
        "司马",
        "诸葛",
        "上官",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
        "令狐",
        "端木",
    }
)
# Characters read differently as a surname than in running text.
_SURNAME_READINGS = {
    "单": "shan",
    "曾": "zeng",
    "解": "xie",
    "仇": "qiu",
    "区": "ou",
    "朴": "piao",
    "查": "zha",
    "乐": "yue",
    "盖": "ge",
    "缪": "miao",
    "尉迟": "yuchi",
    "长孙": "zhangsun",
    "翟": "zhai",
    "秘": "bi",
    "覃": "qin",
    "种": "chong",
    "燕": "yan",
    "纪": "ji",
    "褚": "chu",
    "繁": "po",
}
_HAN = re.compile(r"[\u3400-\u9fff]")


@cache
def _char_pinyin(character: str) -> str:
    return "".join(lazy_pinyin(character, errors="ignore")).replace("ü", "v")


def _pinyin(text: str) -> str:
    """Toneless pinyin, character by character (names have no word context to use)."""
    return "".join(_char_pinyin(character) for character in text)


def _han_name_tokens(name: str) -> list[str]:
    """Family and given name of a name in Chinese characters, as toneless pinyin."""
    han = "".join(_HAN.findall(name))
    family_length = 2 if han[:2] in _COMPOUND_SURNAMES and len(han) > 2 else 1
    family, given = han[:family_length], han[family_length:]
    family_pinyin = _SURNAME_READINGS.get(family) or _pinyin(family)
    return [t for t in (family_pinyin, _pinyin(given)) if t]


# Forms of address agents type instead of a given name ("王先生", "Mr Smith").
_HAN_TITLES = re.compile(r"(?:先生|女士|小姐|太太|老师|经理|总)$")
_LATIN_TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof"})
# Common pinyin surnames, longest first, to split run-together pinyin ("wangxiaoming").
_PINYIN_SURNAME_TEXT = """
wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng liang xie song
tang han feng deng cao peng zeng xiao tian dong yuan pan yu jiang cai wei du ye cheng su lv ding ren shen
yao lu fu zhong cui tan liao fan wen jin qiu jia xia fang zou xiong bai meng qin hou kong shi mao duan lei
qian hao long shao wan gu lai kang mo ouyang
"""
_PINYIN_SURNAMES = sorted(set(_PINYIN_SURNAME_TEXT.split()), key=len, reverse=True)
_PINYIN_SYLLABLE_START = re.compile(r"^(?:[bcdfghjklmnpqrstwxyz]h?|zh|ch|sh)?[aeiouv]")


def _split_run_together_pinyin(token: str) -> list[str]:
    """`wangxiaoming` -> [`wang`, `xiaoming`] when it starts with a common surname, else unchanged."""
    for surname in _PINYIN_SURNAMES:
        rest = token[len(surname) :]
        if token.startswith(surname) and len(rest) >= 2 and _PINYIN_SYLLABLE_START.match(rest):
            return [surname, rest]
    return [token]


def _name_key(name: str) -> str | None:
    text = unicodedata.normalize("NFKC", name).strip().lower()
    if _HAN.search(text):
        tokens = _han_name_tokens(_HAN_TITLES.sub("", "".join(_HAN.findall(text))) or text)
    else:
        text = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in text if not unicodedata.combining(c))
        # "Xiao-Ming", "Xiao'ming" -> one given-name token "xiaoming".
        text = re.sub(r"[-'’]", "", text)
        tokens = [t for t in re.findall(r"[a-z]+", text) if t not in _LATIN_TITLES]
        if len(tokens) == 1:
            tokens = _split_run_together_pinyin(tokens[0])
    return " ".join(sorted(tokens)) or None


def normalize_name(names: pd.Series) -> pd.Series:
    """Order-free name key: toneless pinyin or Latin tokens, lower-case, sorted.

    `王小明`, `Wang Xiaoming`, `XIAOMING WANG`, `Wang Xiao-Ming`, `wang, xiaoming` and
    `wangxiaoming` all give `wang xiaoming`; titles are dropped (`王先生` -> `wang`,
    `Mr. Smith` -> `smith`); empty or symbol-only names give null.
    """
    text = names.astype("string")
    unique = text.dropna().unique()
    keys = {value: _name_key(value) for value in unique}
    return text.map(keys, na_action="ignore").astype("string")


# ---------------------------------------------------------------------------------------------
# Cities: Chinese or pinyin spelling -> tier (1 = first-tier ... 4 = all others).
# Tier 1: first-tier cities; 2: "new first-tier"; 3: other second-tier; 4: everything else.
_CITY_TIERS: dict[str, int] = {
    **dict.fromkeys(["北京", "上海", "广州", "深圳"], 1),
    **dict.fromkeys(
        [
            "成都",
            "重庆",
            "杭州",
            "武汉",
            "西安",
            "苏州",
            "天津",
            "南京",
            "长沙",
            "郑州",
            "东莞",
            "青岛",
            "沈阳",
            "宁波",
            "合肥",
            "佛山",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "厦门",
            "福州",
            "济南",
            "昆明",
            "南宁",
            "洛阳",
            "绵阳",
            "哈尔滨",
            "长春",
            "石家庄",
            "大连",
            "无锡",
            "温州",
            "常州",
            "泉州",
            "贵阳",
            "南昌",
            "南通",
            "金华",
            "徐州",
            "太原",
            "嘉兴",
            "烟台",
            "惠州",
            "保定",
            "台州",
            "中山",
            "绍兴",
            "乌鲁木齐",
            "潍坊",
            "兰州",
            "珠海",
            "海口",
        ],
        3,
    ),
}
CITY_TIERS: dict[str, int] = {**_CITY_TIERS, **{_pinyin(city): tier for city, tier in _CITY_TIERS.items()}}


def normalize_city(cities: pd.Series) -> pd.Series:
    """City key: Chinese characters without the 市 suffix, or lower-case pinyin without spaces."""
    text = cities.astype("string").str.strip().str.replace(r"市$", "", regex=True)
    latin = text.str.lower().str.replace(r"[\s\-']|city$", "", regex=True)
    key = text.where(text.str.contains(_HAN.pattern, regex=True).fillna(False), latin)
    return key.where(key.str.len() > 0, pd.NA)


def city_tier(cities: pd.Series) -> pd.Series:
    """Tier 1-4 of each city (4 for cities not in the table); null where the city is unknown."""
    key = normalize_city(cities)
    tier = key.map(CITY_TIERS, na_action="ignore").astype("Int64")
    return tier.mask(key.notna() & tier.isna(), 4)
