"""A held-out, namesake-heavy person file for the identity benchmark (issue 16), not the demo world's
generator: `link_records` columns (id, name, birth_date, gender, phone, email, city, address, postcode)
and the true person of every record.

People: family names and given names drawn with Zipf-like frequencies (a few names shared by very many
people), birth dates from 1940-2006, one of 40 cities with a street address and postcode, a mobile
(one in six of another country, 10 digits, with or without its country code), an e-mail for most.
Each person has 1-5 records (mean ~2). Per record, independently: the name written in pinyin (any
order and case) instead of characters, a typo in the name (a letter, or a character by a homophone), the birth
date missing, unreadable, with one digit wrong or day and month swapped, the gender missing, the
phone missing or a newer number (the person changed phones), the e-mail missing or a newer one, the
address a newer one in another city (the person moved), the address written in another form
or missing, the postcode missing.

    from namesakes import namesake_records
    records, person = namesake_records(100_000, seed=1)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pypinyin import lazy_pinyin
from pypinyin.contrib.tone_convert import to_normal
from pypinyin.pinyin_dict import pinyin_dict

SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚"
    "卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红鹏辉建飞波宁晶欣雪琳斌宇浩凯健俊帆帅旭阳鑫"
    "婷颖倩琴云莉兰凤洁梅琳慧巧美娇燕丹蕾薇晨佳嘉子文博志远海峰磊鸿翔宏亮成龙林佳怡梓涵雨轩思源一诺"
)
CITIES = [
    ("北京", "100"), ("上海", "200"), ("广州", "510"), ("深圳", "518"), ("杭州", "310"), ("南京", "210"),
    ("成都", "610"), ("重庆", "400"), ("武汉", "430"), ("西安", "710"), ("天津", "300"), ("苏州", "215"),
    ("长沙", "410"), ("郑州", "450"), ("沈阳", "110"), ("青岛", "266"), ("宁波", "315"), ("东莞", "523"),
    ("无锡", "214"), ("佛山", "528"), ("合肥", "230"), ("大连", "116"), ("福州", "350"), ("厦门", "361"),
    ("哈尔滨", "150"), ("济南", "250"), ("温州", "325"), ("南宁", "530"), ("长春", "130"), ("泉州", "362"),
    ("石家庄", "050"), ("贵阳", "550"), ("南昌", "330"), ("金华", "321"), ("常州", "213"), ("南通", "226"),
    ("嘉兴", "314"), ("太原", "030"), ("徐州", "221"), ("惠州", "516"),
]  # fmt: skip
STREETS = ["中山", "人民", "解放", "建设", "和平", "新华", "文化", "胜利", "光明", "长江", "黄河", "东风",
           "朝阳", "青年", "团结", "幸福", "育才", "延安"]  # fmt: skip
STREET_KINDS = ["路", "街", "大道", "巷"]
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "158",
                   "159", "176", "177", "180", "181", "186", "187", "188", "189", "199"]  # fmt: skip
FOREIGN = ["1", "1", "61", "44", "65", "60"]  # country codes of numbers from abroad (US/CA twice)
MAILS = ["qq.com", "163.com", "126.com", "gmail.com", "hotmail.com", "sina.com", "outlook.com"]
# Surnames whose everyday reading differs from the character's first reading in pypinyin.
SURNAME_READINGS = {"曾": "zeng", "覃": "qin", "单": "shan"}
# Per-record corruption rates.
RATES = {
    "pinyin": 0.25,
    "name_typo": 0.08,
    "birth_missing": 0.06,
    "birth_unreadable": 0.01,
    "birth_digit": 0.04,
    "birth_swap": 0.02,
    "gender_missing": 0.05,
    "phone_missing": 0.2,
    "phone_changed": 0.2,
    "email_missing": 0.4,
    "email_changed": 0.1,
    "moved": 0.08,
    "address_missing": 0.3,
    "postcode_missing": 0.5,
}


def _zipf(rng: np.random.Generator, n: int, size: int, exponent: float) -> np.ndarray:
    """`size` draws from 0..n-1 with P(rank k) ~ 1 / (k + 1) ** exponent."""
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.choice(n, size=size, p=weights / weights.sum())


def _syllables(name: str) -> list[str]:
    """The pinyin of a Chinese name, the family name read as a family name."""
    return [SURNAME_READINGS.get(name[0], lazy_pinyin(name[0])[0]), *lazy_pinyin(name[1:])]


def _homophones() -> dict[str, list[str]]:
    """Common characters (U+4E00-U+9FA5) by toneless reading."""
    readings: dict[str, list[str]] = {}
    for code, reading in pinyin_dict.items():
        if 0x4E00 <= code <= 0x9FA5:
            readings.setdefault(to_normal(reading.split(",")[0]), []).append(chr(code))
    return readings


HOMOPHONES = _homophones()


def _pinyin(name: str, rng: np.random.Generator) -> str:
    """A Chinese name in pinyin as people type it: `Wang Weiming`, `WEIMING WANG`, `wangweiming`."""
    syllables = _syllables(name)
    family, given = syllables[0], "".join(syllables[1:])
    form = rng.integers(4)
    if form == 0:
        return f"{family.title()} {given.title()}"
    if form == 1:
        return f"{given.upper()} {family.upper()}"
    if form == 2:
        return f"{given.title()} {family.title()}"
    return family + given


def _typo(name: str, rng: np.random.Generator) -> str:
    """One character of the name replaced: a letter of a pinyin name, or a given-name character by
    a homophone (one time in five by any character)."""
    if name.isascii():
        letters = [i for i, c in enumerate(name) if c.isalpha()]
        i = letters[rng.integers(len(letters))]
        return name[:i] + "abcdefghijklmnopqrstuvwxyz"[rng.integers(26)] + name[i + 1 :]
    i = 1 + rng.integers(len(name) - 1)
    same = [c for c in HOMOPHONES.get(lazy_pinyin(name[i])[0], []) if c != name[i]]
    pool = same if same and rng.random() < 0.8 else GIVEN
    return name[:i] + pool[rng.integers(len(pool))] + name[i + 1 :]


def _mobile(rng: np.random.Generator, foreign: bool) -> str:
    if not foreign:
        return MOBILE_PREFIXES[rng.integers(len(MOBILE_PREFIXES))] + f"{rng.integers(10**8):08d}"
    country = FOREIGN[rng.integers(len(FOREIGN))]
    if country == "1":  # North America: area code and exchange start 2-9
        area, exchange = rng.integers(200, 1000), rng.integers(200, 1000)
        digits = f"{area}{exchange}{rng.integers(10**4):04d}"
    else:
        digits = f"{rng.integers(2, 10)}{rng.integers(10**8):08d}"
    return f"+{country} {digits}" if rng.random() < 0.5 else f"00{country}{digits}"


def _written_phone(number: str, rng: np.random.Generator) -> str:
    """A Chinese mobile as people write it: `138 1234 5678`, `+86 13812345678`, `138-1234-5678`."""
    if not number.startswith("1"):
        return number
    form = rng.integers(4)
    if form == 0:
        return f"{number[:3]} {number[3:7]} {number[7:]}"
    if form == 1:
        return "+86 " + number
    if form == 2:
        return f"{number[:3]}-{number[3:7]}-{number[7:]}"
    return number


def _birth_typo(date: pd.Timestamp, rng: np.random.Generator) -> pd.Timestamp:
    """The date with one digit of YYYYMMDD changed (retried until the result is a valid date)."""
    text = date.strftime("%Y%m%d")
    for _ in range(20):
        i = 2 + rng.integers(6)  # century digits are not mistyped
        candidate = text[:i] + str(rng.integers(10)) + text[i + 1 :]
        try:
            changed = pd.Timestamp(f"{candidate[:4]}-{candidate[4:6]}-{candidate[6:]}")
        except ValueError:
            continue
        if changed != date and changed.year <= 2008:
            return changed
    return date


def namesake_records(n_records: int, seed: int = 1) -> tuple[pd.DataFrame, pd.Series]:
    """About `n_records` person records (see the module docstring) and the true person per record id."""
    rng = np.random.default_rng(seed)
    n_people = max(1, round(n_records / 2.1))
    family = np.array(SURNAMES)[_zipf(rng, len(SURNAMES), n_people, 1.0)]
    two_part = rng.random(n_people) < 0.45
    first = np.array(GIVEN)[_zipf(rng, len(GIVEN), n_people, 1.1)]
    second = np.array(GIVEN)[_zipf(rng, len(GIVEN), n_people, 1.1)]
    names = np.where(two_part, np.char.add(np.char.add(family, first), second), np.char.add(family, first))
    birth = pd.Timestamp("1940-01-01") + pd.to_timedelta(rng.integers(0, 66 * 365, n_people), unit="D")
    gender = np.where(rng.random(n_people) < 0.5, "M", "F")
    city = rng.integers(len(CITIES), size=n_people)
    new_city = (city + 1 + rng.integers(len(CITIES) - 1, size=n_people)) % len(CITIES)
    foreign = rng.random(n_people) < 1 / 6
    has_email = rng.random(n_people) < 0.75
    records_per_person = np.minimum(rng.geometric(0.55, n_people) + (rng.random(n_people) < 0.3), 5)
    person = np.repeat(np.arange(n_people), records_per_person)
    first_row = np.cumsum(records_per_person) - records_per_person
    order = np.arange(len(person)) - np.repeat(first_row, records_per_person)
    n = len(person)
    draw = {key: rng.random(n) < rate for key, rate in RATES.items()}
    # Changes happen to a person once: a record after the first may carry the newer phone, e-mail, city.
    later = order > 0
    rows = []
    phones = {}
    for i in range(n):
        p = person[i]
        name = str(names[p])
        written = _pinyin(name, rng) if draw["pinyin"][i] else name
        if draw["name_typo"][i]:
            written = _typo(written, rng)
        date = birth[p]
        if draw["birth_digit"][i]:
            date = _birth_typo(date, rng)
        elif draw["birth_swap"][i] and date.day <= 12 and date.day != date.month:
            date = pd.Timestamp(year=date.year, month=date.day, day=date.month)
        birth_text = None if draw["birth_missing"][i] else date.strftime("%Y-%m-%d")
        if draw["birth_unreadable"][i]:
            birth_text = ["不详", "0000-00-00", f"{date.year}-13-{date.day:02d}"][rng.integers(3)]
        newer = later[i] and draw["phone_changed"][i]
        key = (p, newer)
        if key not in phones:
            phones[key] = _mobile(rng, bool(foreign[p]) and not newer)
        phone = None if draw["phone_missing"][i] else _written_phone(phones[key], rng)
        local = "".join(_syllables(name)) + (str(p % 89 + 10) if p % 3 else "")
        email = None
        if has_email[p] and not draw["email_missing"][i]:
            version = "2" if later[i] and draw["email_changed"][i] else ""
            email = f"{local}{version}{p % 997}@{MAILS[(p + len(version)) % len(MAILS)]}"
        moved = later[i] and draw["moved"][i]
        c = new_city[p] if moved else city[p]
        street = STREETS[(p * 7 + moved) % len(STREETS)] + STREET_KINDS[(p + moved) % len(STREET_KINDS)]
        number = (p * 13 + 31 * moved) % 300 + 1
        address = [
            f"{CITIES[c][0]}市{street}{number}号",
            f"{street}{number}号",
            f"{street}{number}号{p % 20 + 1}室",
        ][i % 3]
        rows.append(
            {
                "id": f"r{i:07d}",
                "name": written,
                "birth_date": birth_text,
                "gender": None if draw["gender_missing"][i] else str(gender[p]),
                "phone": phone,
                "email": email,
                "city": CITIES[c][0],
                "address": None if draw["address_missing"][i] else address,
                "postcode": None
                if draw["postcode_missing"][i]
                else f"{CITIES[c][1]}{(p + moved) % 1000:03d}",
            }
        )
    records = pd.DataFrame(rows)
    return records, pd.Series(person, index=records["id"].to_numpy(), name="person")
