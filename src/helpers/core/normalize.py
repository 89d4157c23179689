"""Normalizers for identifiers, vectorized over pandas Series (each distinct value is parsed once).

Phones (`phonenumbers`, home region and home area code from `data.home_region` / `data.home_area_code`):
Chinese mobiles become `+86` + 11 digits, landlines `+86-<area code without 0>-<local number>`,
400/800 service numbers `+86-400-<7 digits>`; numbers of other countries stay E.164 (`+61886355214`);
anything unresolved becomes null. Extensions (`转`, `ext`, `x`, `-NNNN` after a switchboard) are
split off by `split_phone`. `phone_geography` gives province, city and carrier of a number.
E-mails: trimmed and lower-cased; malformed addresses become null; `canonical_email` folds
provider aliases. Names: `normalize_name` gives one order-free pinyin/Latin key. Provinces and
cities: `normalize_province` (the 34 provincial divisions), `normalize_city`, `city_tier`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import phonenumbers
import pyarrow
import pyarrow.compute as pc
from phonenumbers import CountryCodeSource, NumberParseException, PhoneNumberType, carrier, geocoder
from pypinyin import lazy_pinyin
from pypinyin.contrib.tone_convert import to_normal
from pypinyin.pinyin_dict import pinyin_dict

Result = TypeVar("Result", pd.Series, pd.DataFrame)

_EMAIL_PATTERN = r"^[a-z0-9._%+\-]+@[a-z0-9.\-]+\.[a-z]{2,}$"


def _map_unique(values: pd.Series, function: Callable[[str], Any]) -> pd.Series:
    """`function` applied once per distinct non-null value, mapped back onto every row (object dtype,
    NaN where `values` is null): one hashing pass over the rows."""
    codes, distinct = pd.factorize(values.astype("string"))
    mapped = np.fromiter((function(value) for value in distinct), dtype=object, count=len(distinct))
    return pd.Series(np.append(mapped, np.nan)[codes], index=values.index, name=values.name)


def on_distinct(function: Callable[[pd.Series], Result], values: pd.Series) -> Result:
    """`function` (element-wise over a Series of text: a Series, or a frame of several results) of
    `values`, evaluated once per distinct value: phones, e-mails, names and cities recur across records
    and systems, and text functions run per row."""
    codes, distinct = pd.factorize(values)
    null = pd.Series([None], dtype=values.dtype)
    once = function(pd.concat([pd.Series(distinct, dtype=values.dtype), null], ignore_index=True))
    # Null rows (code -1) take what `function` gives for null: the value evaluated last.
    return once.iloc[np.where(codes < 0, len(distinct), codes)].set_axis(values.index)


# ---------------------------------------------------------------------------------------------
# Phones
# Extension markers: 转 / 分机 (Chinese "extension"), ext, x, #; and `-NNNN` (1-5 digits) after a
# landline, as switchboards are written (`021-68881234-8012`): see `_split_one`.
_EXTENSION_WORD = re.compile(r"\s*(?:转|分机|ext\.?|extn\.?|extension|x|#)\s*(\d{1,6})\s*$", re.IGNORECASE)
_DASH_EXTENSION = re.compile(r"(.*\d)\s*-\s*(\d{1,5})")
_SPREADSHEET_NUMBER = re.compile(r"\d+\.0+|\d\.\d+[eE]\+?\d+")
# China's numbering plan on the national significant number (the digits after +86 or the trunk 0).
_CN_MOBILE = re.compile(r"1[3-9]\d{9}")
_CN_SERVICE = re.compile(r"([48]00)(\d{7})")  # 400 (shared cost) and 800 (toll free) numbers
_CN_LANDLINE = re.compile(r"(10|2\d|[3-9]\d{2})([2-9]\d{6,7})")  # area code (2 or 3 digits) + local
_LOCAL_NUMBER = re.compile(r"[2-9]\d{6,7}")  # a 7-8 digit local number written without its area code
# The fast path's spellings of a Chinese number, in Arrow's RE2 with ASCII digits (other digits take
# the parse, which reads them), after Python's `\s` (Unicode white space), brackets and dashes are
# dropped: a mobile with or without country code or trunk 0 (`138-1234-5678`, `+86 138...`); trunk 0,
# area code and local number, or a 400/800 number (`(0797) 268 3075`, `0512-79150486`); the country
# code and a national number (`+86 755 42892971`). `national` is the national significant number.
_SEPARATORS = (
    r"[\t\n\v\f\r\x{1c}-\x{20}\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}"
    r"\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}()\-]"
)
_ASCII_NATIONAL = (
    r"^(?:\+86|0086|86|0)?(?P<national>1[3-9][0-9]{9})$",
    r"^0(?P<national>(?:10|2[0-9]|[3-9][0-9]{2})[2-9][0-9]{6,7}|[48]00[0-9]{7})$",
    r"^(?:\+86|0086)(?P<national>[1-9][0-9]{8,10})$",
)
# Numbers that reach an organisation, not a person (phonenumbers' types).
SERVICE_TYPES = frozenset(
    {
        PhoneNumberType.TOLL_FREE,
        PhoneNumberType.SHARED_COST,
        PhoneNumberType.PREMIUM_RATE,
        PhoneNumberType.UAN,
    }
)


def _chinese_number(national: str, domestic: bool) -> str | None:
    """Canonical form of a Chinese national number; landlines only when written with area code
    (`domestic`: a trunk 0 or a country code), so foreign 10-digit numbers are not read as landlines."""
    if _CN_MOBILE.fullmatch(national):
        return "+86" + national
    if service := _CN_SERVICE.fullmatch(national):
        return f"+86-{service[1]}-{service[2]}"
    if domestic and (landline := _CN_LANDLINE.fullmatch(national)):
        return f"+86-{landline[1]}-{landline[2]}"
    return None


def _resolve(text: str, region: str, area_code: str | None) -> str | None:
    """The canonical number of an extension-free phone text, or None."""
    digits = re.sub(r"\D", "", text)
    try:
        number = phonenumbers.parse(text, region, keep_raw_input=True)
    except NumberParseException:
        return None
    explicit = number.country_code_source != CountryCodeSource.FROM_DEFAULT_COUNTRY
    trunk = phonenumbers.ndd_prefix_for_region(region, True) or ""
    domestic = explicit or bool(trunk and digits.startswith(trunk) and not digits.startswith(trunk * 2))
    if not domestic and area_code and _LOCAL_NUMBER.fullmatch(digits):
        return _resolve(f"{trunk}{area_code}{digits}", region, None)  # a bare local number: home area code
    if number.country_code == 86:
        return _chinese_number(str(number.national_number), domestic)
    if phonenumbers.is_valid_number(number) or (explicit and phonenumbers.is_possible_number(number)):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def _split_one(raw: str, region: str, area_code: str | None) -> tuple[str | None, str | None]:
    text = unicodedata.normalize("NFKC", raw).strip()  # full-width digits and signs as ASCII
    if _SPREADSHEET_NUMBER.fullmatch(text):
        text = str(int(float(text)))  # a phone a spreadsheet stored as a number: 13812345678.0, 1.38E+10
    if not re.search(r"\d", text):
        return None, None
    if match := _EXTENSION_WORD.search(text):
        number = _resolve(text[: match.start()], region, area_code)
        return number, match[1] if number else None
    number = _resolve(text, region, area_code)
    if number is None and (match := _DASH_EXTENSION.fullmatch(text)):
        # `-NNNN` is an extension when the rest is a landline and the whole is no number.
        main = _resolve(match[1], region, area_code)
        if main is not None and not _mobile(main):
            return main, match[2]
    return number, None


def split_phone(
    phones: pd.Series, *, home_region: str = "CN", home_area_code: str | None = None
) -> pd.DataFrame:
    """Canonical number and extension of each phone: DataFrame[number, extension] (null where unresolved).

    `home_region` (ISO code) applies to numbers without a country code; `home_area_code` (e.g. "21")
    is given to bare 7-8 digit local numbers, which stay unresolved without it.
    """
    region, area_code = home_region.upper(), home_area_code.lstrip("0") if home_area_code else None
    codes, uniques = pd.factorize(phones.astype("string"))  # each distinct value once; null -> code -1
    text = pyarrow.array(np.asarray(uniques, dtype=object), pyarrow.string())
    number = np.full(len(text) + 1, None, dtype=object)  # the extra last item: code -1
    extension = np.full(len(number), None, dtype=object)
    if region == "CN":
        # Fast path: a plain ASCII spelling of a Chinese number (the bulk of a Chinese file) whose national
        # number its digits show. phonenumbers would parse the same national number, so `_chinese_number`
        # gives the same answer without the parse (~50 µs each). Where it finds none, the parse decides.
        compact = pc.replace_substring_regex(text, _SEPARATORS, "")
        mobile, *others = (pc.struct_field(pc.extract_regex(compact, p), "national") for p in _ASCII_NATIONAL)
        number[:-1] = pc.binary_join_element_wise("+86", mobile, "").to_numpy(zero_copy_only=False)
        national = pc.coalesce(*others).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero((number[:-1] == None) & (national != None)):  # noqa: E711 (element-wise)
            number[i] = _chinese_number(national[i], True)
    raw = text.to_numpy(zero_copy_only=False)
    for i in np.flatnonzero(number[:-1] == None):  # noqa: E711
        number[i], extension[i] = _split_one(raw[i], region, area_code)
    frame = pd.DataFrame({"number": number[codes], "extension": extension[codes]}, index=phones.index)
    return frame.astype("string").fillna(pd.NA)


def normalize_phone(
    phones: pd.Series, *, home_region: str = "CN", home_area_code: str | None = None
) -> pd.Series:
    """Canonical phone numbers (`+8613812345678`, `+86-10-62345678`, `+61886355214`); null if unresolved."""
    return split_phone(phones, home_region=home_region, home_area_code=home_area_code)["number"]


def _parsed(normalized: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(normalized.replace("-", ""))
    except NumberParseException:
        return None


def _number_type(normalized: str) -> int:
    number = _parsed(normalized)
    return PhoneNumberType.UNKNOWN if number is None else phonenumbers.number_type(number)


def _mobile(normalized: str) -> bool:
    if normalized.startswith("+86"):
        return _CN_MOBILE.fullmatch(normalized[3:]) is not None
    return _number_type(normalized) in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


def _service(normalized: str) -> bool:
    if normalized.startswith("+86"):
        return normalized.startswith(("+86-400-", "+86-800-"))
    return _number_type(normalized) in SERVICE_TYPES


def is_mobile(normalized_phones: pd.Series) -> pd.Series:
    """True where a normalized phone is a mobile number (Chinese, or mobile by `phonenumbers` elsewhere)."""
    return _map_unique(normalized_phones, _mobile).eq(True)  # null phones: False


def is_service_phone(normalized_phones: pd.Series) -> pd.Series:
    """True for service numbers (400/800, toll-free, shared-cost): they reach a company, not a person."""
    return _map_unique(normalized_phones, _service).eq(True)  # null phones: False


def phone_geography(normalized_phones: pd.Series) -> pd.DataFrame:
    """Province, city and carrier of each normalized phone (zh names), for customers without an address.

    Province and city come from the number's prefix (mobile number blocks, landline area codes):
    `+8613912345678` -> 江苏, 常州, 中国移动; `+86-21-68881234` -> 上海, 上海, null. Numbers of
    other countries and service numbers give null province and city.
    """
    codes, uniques = pd.factorize(normalized_phones.astype("string"))  # null -> code -1
    unique = pd.Series(uniques, dtype="string")
    # Place and carrier follow a Chinese mobile's first 7 digits and a landline's area code: one lookup each.
    key = unique.str.extract(r"^(\+861\d{6}|\+86-\d+-)", expand=False).fillna(unique)
    example = unique.groupby(key.to_numpy()).first()
    places = {prefix: _geography(number) for prefix, number in example.items()}
    rows = [*(places[prefix] for prefix in key), (None, None, None)]  # the extra last row: code -1
    table = np.array(rows, dtype=object).reshape(-1, 3)[codes]
    frame = pd.DataFrame(table, index=normalized_phones.index, columns=["province", "city", "carrier"])
    return frame.astype("string").fillna(pd.NA)


def _geography(normalized: str) -> tuple[str | None, str | None, str | None]:
    number = _parsed(normalized)
    if number is None:
        return None, None, None
    name = carrier.name_for_valid_number(number, "zh") or None
    if number.country_code != 86 or _CN_SERVICE.fullmatch(str(number.national_number)):
        return None, None, name
    # The prefix tables of phonenumbers, also for numbers its validity rules reject (short locals).
    place = geocoder.description_for_valid_number(number, "zh")
    province = _province_key(place)
    if province is None:
        return None, None, name
    full = _PROVINCE_NAMES[province]
    rest = place.removeprefix(full) if place.startswith(full) else place.removeprefix(province)
    rest = rest.split("、")[0]  # an area code shared by several cities: the first named
    city = re.sub(r"(市|地区|自治州)$", "", rest) or (province if province in _MUNICIPALITIES else None)
    return province, city, name


def normalize_email(emails: pd.Series) -> pd.Series:
    """Trimmed, lower-case e-mail addresses; null if malformed."""
    text = emails.astype("string").str.strip().str.lower()
    return text.where(text.str.match(_EMAIL_PATTERN).fillna(False), pd.NA)


# ---------------------------------------------------------------------------------------------
# Placeholders: values people type when the real one is unknown. They identify nobody.
PLACEHOLDER_PHONES = frozenset({"+8613800000000", "+8613800138000", "+8612345678901", "+8613888888888"})
PLACEHOLDER_EMAIL_LOCALS = frozenset(
    {"test", "none", "noemail", "no", "na", "null", "xxx", "abc", "123", "a"}
)
PLACEHOLDER_EMAIL_DOMAINS = frozenset({"test.com", "example.com", "none.com", "email.com", "xxx.com"})


def is_placeholder_phone(normalized_phones: pd.Series) -> pd.Series:
    """True for numbers that identify no person: known dummy numbers, numbers whose subscriber part is
    one repeated digit, and service numbers (`is_service_phone`)."""
    subscriber = normalized_phones.str.replace(r"^\+86-?(?:\d+-)?", "", regex=True).str[-8:]
    repeated = subscriber.str.fullmatch(r"(\d)\1{7}")
    dummy = (normalized_phones.isin(PLACEHOLDER_PHONES) | repeated).fillna(False).astype(bool)
    return dummy | is_service_phone(normalized_phones)


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
# Two-character surnames. pypinyin reads them right as phrases, except where _SURNAME_READINGS says.
_COMPOUND_SURNAME_TEXT = """
欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 令狐 端木 万俟 澹台 闻人 赫连
南宫 公羊 公冶 宗政 濮阳 淳于 太叔 申屠 轩辕 钟离 鲜于 闾丘 司空 亓官 司寇 乐正 拓跋 呼延 独孤
"""
_COMPOUND_SURNAMES = frozenset(_COMPOUND_SURNAME_TEXT.split())
# Surname readings pypinyin 0.55 gets wrong (it has no surname mode: mozillazg/python-pinyin#297):
# the characters of the published list of polyphonic surnames whose default reading differs.
_SURNAME_READINGS = {
    "重": "chong", "秘": "bi", "种": "chong", "繁": "po", "覃": "qin", "缪": "miao", "曾": "zeng",
    "解": "xie", "折": "she", "佴": "nai", "粘": "nian", "藏": "zang", "扎": "za", "翟": "zhai", "都": "du",
    "六": "lu", "薄": "bo", "盖": "ge", "查": "zha", "朴": "piao", "乜": "nie", "乐": "yue", "阚": "kan",
    "不": "fou", "区": "ou", "仇": "qiu", "单": "shan", "卜": "bu", "浣": "wan", "贠": "yun", "貟": "yun",
    "乐正": "yuezheng",
}  # fmt: skip
_HAN = re.compile(r"[\u3400-\u9fff]")


def _toneless(reading: str) -> str:
    return to_normal(reading).replace("ü", "v")


@cache
def _pinyin(text: str) -> str:
    """Toneless pinyin of a word, with pypinyin's phrase readings (重庆 chongqing, 长沙 changsha)."""
    return "".join(lazy_pinyin(text, errors="ignore")).replace("ü", "v")


@cache
def _char_pinyin(character: str) -> str:
    return _pinyin(character)


def _surname_pinyin(surname: str) -> str:
    return _SURNAME_READINGS.get(surname) or _pinyin(surname)


# ü is written v (pypinyin, passports before 2012), u (most Latin text) or yu (passports since):
# 吕 Lv / Lu / Lyu / Lü share the key `lu`. Only after l and n is ü not implied by the spelling.
_U_VARIANTS = {
    f"{initial}{u}{final}": f"{initial}u{final}"
    for initial in "ln"
    for u in ("v", "yu")
    for final in ("", "e")
}


@cache
def _syllables() -> dict[str, str]:
    """Every toneless pinyin syllable in pypinyin's dictionary -> its key spelling (ü folded to u)."""
    readings = {reading for readings in pinyin_dict.values() for reading in readings.split(",")}  # ~1,500
    syllables = {_toneless(reading) for reading in readings}
    # Interjections without a vowel (m, n, ng, hm) are left out: they make Latin names look like pinyin.
    syllables = {s for s in syllables if s.isalpha() and s.isascii() and re.search("[aeiouv]", s)}
    return {**{s: s for s in syllables}, **_U_VARIANTS, "lue": "lue", "nue": "nue"}


@lru_cache(maxsize=2**16)
def _segment(token: str) -> tuple[str, ...] | None:
    """A lower-case Latin token as pinyin syllables in key spelling (fewest syllables, standard spellings
    before ü variants), or None if it is not pinyin: `lvxiaoming` -> (lu, xiao, ming)."""
    syllables = _syllables()
    best: list[tuple[int, int, tuple[str, ...]] | None] = [None] * (len(token) + 1)
    best[0] = (0, 0, ())
    for end in range(1, len(token) + 1):
        for start in range(max(0, end - 6), end):
            piece, before = token[start:end], best[start]
            if before is None or piece not in syllables:
                continue
            candidate = (before[0] + 1, before[1] + (piece in _U_VARIANTS), (*before[2], syllables[piece]))
            if best[end] is None or candidate[:2] < best[end][:2]:
                best[end] = candidate
    return best[-1][2] if best[-1] else None


# Forms of address agents type instead of a given name ("王先生", "Mr Smith", "Wang Xiansheng").
_HAN_TITLES = re.compile(r"(?:先生|女士|小姐|太太|夫人|老师|经理|总)$")
_LATIN_TITLES = frozenset(
    {"mr", "mrs", "ms", "miss", "mx", "madam", "dr", "prof", "sir", "xiansheng", "nvshi", "nushi", "xiaojie"}
)
# Common pinyin surnames, most frequent first; with the compound ones they split run-together pinyin
# (`wangxiaoming`) and find the surname among three or more tokens (`Xiao Ming Wang`).
_PINYIN_SURNAME_TEXT = """
wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng liang xie song
tang han feng deng cao peng zeng xiao tian dong yuan pan yu jiang cai wei du ye cheng su lu ding ren shen
yao fu zhong cui tan liao fan wen jin qiu jia xia fang zou xiong bai meng qin hou kong shi mao duan lei
qian hao long shao wan gu lai kang mo
"""


_SURNAME_RANK_MARGIN = 10  # places in the list above


@cache
def _pinyin_surname_rank() -> dict[str, int]:
    common = _PINYIN_SURNAME_TEXT.split()
    other = sorted({*_SURNAME_READINGS.values(), *(_surname_pinyin(s) for s in _COMPOUND_SURNAMES)})
    ranked = dict.fromkeys([*common, *other])  # first place wins
    return {surname: rank for rank, surname in enumerate(ranked)}


def _split_surname(syllables: tuple[str, ...]) -> list[str]:
    """Run-together pinyin (`wangxiaoming`) as [surname, given name]: a known surname at the start, else
    at the end (`xiaomingwang`), else the first syllable (Chinese order)."""
    rank = _pinyin_surname_rank()
    if len(syllables) < 2:
        return ["".join(syllables)]
    if len(syllables) > 2 and "".join(syllables[:2]) in rank:  # compound: ouyang|nana, not ou|yangnana
        return ["".join(syllables[:2]), "".join(syllables[2:])]
    if syllables[0] not in rank and syllables[-1] in rank:
        return [syllables[-1], "".join(syllables[:-1])]
    return [syllables[0], "".join(syllables[1:])]


def _surname_position(tokens: list[str], upper: list[bool]) -> int:
    """Which of three or more pinyin tokens is the surname: the one written in capitals (`ZHANG Wei Min`);
    else the first (Chinese order), unless the last is a surname and the first is not, or is a much rarer
    one (`Xiao Ming Wang`: wang)."""
    if sum(upper) == 1:
        return upper.index(True)
    rank = _pinyin_surname_rank()
    first, last = rank.get(tokens[0], len(rank)), rank.get(tokens[-1], len(rank))
    return len(tokens) - 1 if last + _SURNAME_RANK_MARGIN < first else 0


def _latin_tokens(text: str) -> list[str]:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))  # Lü -> Lu, José -> Jose
    text = re.sub(r"[-'’]", "", text)  # "Xiao-Ming", "Xiao'ming" -> one given-name token
    words = [w for w in re.findall(r"[A-Za-z]+", text) if w.lower() not in _LATIN_TITLES]
    segments = [_segment(w.lower()) for w in words]
    if not words or any(s is None for s in segments):
        return [w.lower() for w in words]  # not (all) pinyin: the words as written
    tokens = ["".join(s) for s in segments if s is not None]
    if len(tokens) == 1:
        return _split_surname(segments[0] or ())
    if len(tokens) == 2:
        return tokens
    upper = [w.isupper() and len(w) > 1 for w in words]
    position = _surname_position(tokens, upper)
    return [tokens[position], "".join(tokens[:position] + tokens[position + 1 :])]


def _han_tokens(text: str) -> list[str]:
    """Family and given name of a name in Chinese characters (spaces ignored, title dropped), as pinyin."""
    han = "".join(_HAN.findall(text))
    han = _HAN_TITLES.sub("", han)  # a title alone (先生) names nobody
    family_length = 2 if han[:2] in _COMPOUND_SURNAMES and len(han) > 2 else 1
    family, given = han[:family_length], han[family_length:]
    tokens = [_surname_pinyin(family), "".join(_char_pinyin(c) for c in given)]
    return ["".join(_segment(t) or (t,)) for t in tokens if t]  # ü folded as in Latin spellings


def _name_key(name: str) -> str | None:
    text = unicodedata.normalize("NFKC", name).strip()
    tokens = _han_tokens(text) if _HAN.search(text) else _latin_tokens(text)
    return " ".join(sorted(tokens)) or None


# Forms of address that say whether the person is a man or a woman.
_TITLE_GENDER = {"先生": "M", "女士": "F", "小姐": "F", "太太": "F", "夫人": "F", "mr": "M", "sir": "M",
                 "xiansheng": "M", "mrs": "F", "ms": "F", "miss": "F", "madam": "F", "nvshi": "F",
                 "nushi": "F", "xiaojie": "F"}  # fmt: skip
_HAN_GENDER_TITLE = re.compile(r"(先生|女士|小姐|太太|夫人)\s*$")


def _title_gender(name: str) -> str | None:
    text = unicodedata.normalize("NFKC", name).strip()
    if match := _HAN_GENDER_TITLE.search(text):
        return _TITLE_GENDER[match[1]]
    found = {_TITLE_GENDER[w] for w in re.findall(r"[a-z]+", text.lower()) if w in _TITLE_GENDER}
    return found.pop() if len(found) == 1 else None


def title_gender(names: pd.Series) -> pd.Series:
    """`M` or `F` where a name carries a form of address that gives the gender (`王先生`, `李女士`,
    `Mrs. Smith`, `Wang Xiansheng`), else null: what an agent types for a caller whose given name
    they did not ask."""
    return _map_unique(names, _title_gender).astype("string")


def normalize_name(names: pd.Series) -> pd.Series:
    """Order-free name key: toneless pinyin or Latin tokens, lower-case, sorted.

    `王小明`, `王 小明`, `Wang Xiaoming`, `XIAOMING WANG`, `Xiao Ming Wang`, `Wang Xiao-Ming`,
    `wang, xiaoming` and `wangxiaoming` all give `wang xiaoming`; ü spelt v, u, yu or ü gives u
    (吕伟, `Lv Wei`, `Lyu Wei`, `Lü Wei` -> `lu wei`); surnames read as surnames (单 shan, 曾 zeng);
    titles are dropped (`王先生` -> `wang`, `Mr. Smith` -> `smith`); empty or symbol-only names give null.
    """
    return _map_unique(names, _name_key).astype("string")


# ---------------------------------------------------------------------------------------------
# Provinces: the 34 provincial divisions, keyed by their short Chinese name (as the demo world and
# step 01 write them). A table, not a gazetteer package: the maintained ones on PyPI (pycountry's
# ISO 3166-2 names, jionlp) would be a new pinned dependency for 34 rows and still need the common
# pinyin and English spellings added; cpca's last release is from 2021.
_PROVINCES = """
北京 北京市 beijing peking | 天津 天津市 tianjin | 上海 上海市 shanghai | 重庆 重庆市 chongqing
河北 河北省 hebei | 山西 山西省 shanxi | 辽宁 辽宁省 liaoning | 吉林 吉林省 jilin
黑龙江 黑龙江省 heilongjiang | 江苏 江苏省 jiangsu | 浙江 浙江省 zhejiang | 安徽 安徽省 anhui
福建 福建省 fujian | 江西 江西省 jiangxi | 山东 山东省 shandong | 河南 河南省 henan | 湖北 湖北省 hubei
湖南 湖南省 hunan | 广东 广东省 guangdong canton | 海南 海南省 hainan | 四川 四川省 sichuan
贵州 贵州省 guizhou | 云南 云南省 yunnan | 陕西 陕西省 shaanxi | 甘肃 甘肃省 gansu | 青海 青海省 qinghai
台湾 台湾省 taiwan | 内蒙古 内蒙古自治区 neimenggu neimongol innermongolia
广西 广西壮族自治区 guangxi | 西藏 西藏自治区 xizang tibet | 宁夏 宁夏回族自治区 ningxia
新疆 新疆维吾尔自治区 xinjiang | 香港 香港特别行政区 xianggang hongkong
澳门 澳门特别行政区 aomen macau macao
"""


def _province_tables() -> tuple[dict[str, str], dict[str, str]]:
    """(short name -> full name, lower-case Latin spelling without spaces -> short name)."""
    names, aliases = {}, {}
    for entry in _PROVINCES.replace("\n", "|").split("|"):
        if entry.strip():
            short, full, *latin = entry.split()
            names[short] = full
            aliases.update(dict.fromkeys(latin, short))
    return names, aliases


_PROVINCE_NAMES, _PROVINCE_ALIASES = _province_tables()
_MUNICIPALITIES = frozenset({"北京", "天津", "上海", "重庆"})
# Latin suffixes: administrative words and the peoples in autonomous regions' names.
_LATIN_PROVINCE_SUFFIX = re.compile(
    r"(province|sheng|municipality|city|shi|autonomousregion|zizhiqu|specialadministrativeregion|sar|"
    r"zhuangzu|zhuang|huizu|hui|uygur|uyghur|weiwuer|weiwuerzu)$"
)


def _province_key(name: str) -> str | None:
    """Short Chinese name of a province written in Chinese (any suffix) or Latin letters, else None."""
    text = unicodedata.normalize("NFKC", name).strip()
    if _HAN.match(text):
        return next((short for short in _PROVINCE_NAMES if text.startswith(short)), None)
    key = re.sub(r"[^a-z]", "", text.lower())
    while key and key not in _PROVINCE_ALIASES:
        stripped = _LATIN_PROVINCE_SUFFIX.sub("", key)
        if stripped == key:
            return None
        key = stripped
    return _PROVINCE_ALIASES.get(key)


def normalize_province(provinces: pd.Series) -> pd.Series:
    """Short Chinese province name: `广东省`, `广东`, `Guangdong Province` -> `广东`; `内蒙古自治区`,
    `Inner Mongolia` -> `内蒙古`; `北京市` -> `北京`. Names outside the 34 divisions stay as written
    (trimmed); empty values give null."""
    text = provinces.astype("string").str.strip()
    key = _map_unique(text, _province_key)
    return key.fillna(text).where(text.str.len() > 0, pd.NA).astype("string")


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
    """City key: Chinese characters without the 市 suffix, or lower-case pinyin without spaces (worked out
    once per distinct city)."""
    return on_distinct(_city_key, cities.astype("string")).rename(cities.name)


def _city_key(cities: pd.Series) -> pd.Series:
    text = cities.str.strip().str.replace(r"市$", "", regex=True)
    latin = text.str.lower().str.replace(r"[\s\-']|city$", "", regex=True)
    key = text.where(text.str.contains(_HAN.pattern, regex=True).fillna(False), latin)
    return key.where(key.str.len() > 0, pd.NA)


def city_tier(cities: pd.Series) -> pd.Series:
    """Tier 1-4 of each city (4 for cities not in the table); null where the city is unknown."""
    key = normalize_city(cities)
    tier = key.map(CITY_TIERS, na_action="ignore").astype("Int64")
    return tier.mask(key.notna() & tier.isna(), 4)
