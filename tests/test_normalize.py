"""Normalizers with real-world spellings: phones, e-mails, names, provinces, cities, placeholders."""

from __future__ import annotations

import pandas as pd
import pytest
from pydantic import ValidationError

from helpers.core.normalize import (
    _PROVINCE_NAMES,
    _surname_pinyin,
    canonical_email,
    city_tier,
    is_mobile,
    is_placeholder_email,
    is_placeholder_phone,
    is_service_phone,
    normalize_city,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_province,
    phone_geography,
    split_phone,
    title_gender,
)
from helpers.core.settings import DataSettings


def _s(*values: object) -> pd.Series:
    return pd.Series(list(values), dtype="string")


# raw, home area code, expected number, expected extension
PHONES = [
    ("13812345678", None, "+8613812345678", None),
    ("+86 138 1234 5678", None, "+8613812345678", None),
    ("0086-13812345678", None, "+8613812345678", None),
    ("86-13812345678", None, "+8613812345678", None),
    ("8613812345678", None, "+8613812345678", None),
    ("138-1234-5678", None, "+8613812345678", None),
    ("013800138001", None, "+8613800138001", None),  # PBX trunk prefix 0 on a mobile
    ("１３８００１３８００１", None, "+8613800138001", None),  # full-width digits
    ("＋８６　１３８ １２３４ ５６７８", None, "+8613812345678", None),
    ("010-62345678", None, "+86-10-62345678", None),
    ("(010) 6234 5678", None, "+86-10-62345678", None),
    ("+86 10 62345678", None, "+86-10-62345678", None),
    ("010-6234-5678", None, "+86-10-62345678", None),
    ("0771-81472485", None, "+86-771-81472485", None),
    ("0755-8765432 转 123", None, "+86-755-8765432", "123"),
    ("021-68881234转8012", None, "+86-21-68881234", "8012"),
    ("021-68881234-8012", None, "+86-21-68881234", "8012"),  # switchboard extension after a dash
    ("021-68881234 分机 66", None, "+86-21-68881234", "66"),
    ("(022) 8259 4845-8610", None, "+86-22-82594845", "8610"),
    ("+86 797 6626559-8649", None, "+86-797-6626559", "8649"),
    ("138-1234-5678-12", None, None, None),  # a mobile has no switchboard extension
    ("(021) 6888 1234 ext. 12", None, "+86-21-68881234", "12"),
    ("13812345678 x12", None, "+8613812345678", "12"),
    ("13812345678.0", None, "+8613812345678", None),  # a spreadsheet number cell
    ("1.3812345678E+10", None, "+8613812345678", None),
    ("65521234", "21", "+86-21-65521234", None),  # bare local number: home area code
    ("6552123", "021", "+86-21-6552123", None),
    ("65521234", None, None, None),  # no home area code: unresolved, not invented
    ("65521234转12", "21", "+86-21-65521234", "12"),
    ("400-820-8820", None, "+86-400-8208820", None),  # service numbers
    ("800 820 8820", None, "+86-800-8208820", None),
    ("+61 8 8635 5214", None, "+61886355214", None),  # other countries stay E.164
    ("0061 8 8635 5214", None, "+61886355214", None),
    ("+1 415 555 2671", None, "+14155552671", None),
    ("+44 20 7946 0958", None, "+442079460958", None),
    ("4155552671", None, None, None),  # foreign without country code: not a fake Chinese landline
    ("12345", None, None, None),
    ("无", None, None, None),
    ("", None, None, None),
]


@pytest.mark.parametrize(("raw", "area", "number", "extension"), PHONES)
def test_split_phone_real_formats(
    raw: str, area: str | None, number: str | None, extension: str | None
) -> None:
    result = split_phone(_s(raw), home_area_code=area).iloc[0]
    assert (result["number"] if pd.notna(result["number"]) else None) == number
    assert (result["extension"] if pd.notna(result["extension"]) else None) == extension


def test_phones_of_another_home_region() -> None:
    """With home region AU, national Australian numbers resolve; Chinese ones need their +86."""
    phones = normalize_phone(
        _s("08 8635 5214", "0412 345 678", "+86 138 1234 5678", "0755-8765432"), home_region="AU"
    )
    assert phones.iloc[:3].tolist() == ["+61886355214", "+61412345678", "+8613812345678"]
    assert pd.isna(phones.iloc[3])


def test_normalized_phones_are_fixed_points_without_garbage() -> None:
    raws = _s(*(raw for raw, *_ in PHONES), None)
    once = normalize_phone(raws, home_area_code="21")
    twice = normalize_phone(once, home_area_code="21")
    assert once.fillna("null").tolist() == twice.fillna("null").tolist()  # idempotent
    assert once.dropna().str.fullmatch(r"\+\d+(?:-\d+-\d+)?").all()  # digits, + and dashes only
    assert len(once) == len(raws) and once.index.equals(raws.index)


def test_fast_paths_agree_with_phonenumbers() -> None:
    """Mobiles, and landlines and 400/800 numbers written with the trunk 0 or the country code, skip
    phonenumbers' parse; the answer is the one the parse gives (each text checked against the
    per-value path), with or without area code, also for white space Python's `\\s` knows beyond ASCII,
    full-width digits and extensions."""
    from helpers.core.normalize import _split_one

    raws = ["010 12345678", "010-2345678", "(010)62345678", "0797-2683075", "(0797) 268 3075",
            "04001234567", "0400-123-4567", "08001234567", "0 21 6888 1234", "021234567890",
            "0311 1234567", "03111234567", "0(21)68881234", "(0) 21 68881234", "01012345678",
            "0123456789", "0999 9999999", "0852 21234567", "0755 0888 8888", "075588888888",
            "0201234567", "02123456789", "+86 755 42892971", "+86 21 6888123", "0086 10 62345678",
            "+86 400 123 4567", "+86-21-6888123-45", "+86 0755 42892971", "+86 12 3456789",
            "+86 1795 1234567", "+8613812345678", "86 138 1234 5678", "0138-1234-5678",
            "+86\u3000755\xa042892971", "+86 ７５５ 42892971", "+86 755 42892971 转 12",
            "+86 (0) 755 42892971", "+86 99999999999", "12345678901", "+86 12345678901"]  # fmt: skip
    for area in (None, "21"):
        fast = split_phone(_s(*raws), home_area_code=area)
        for raw, number, extension in zip(raws, fast["number"], fast["extension"], strict=True):
            expected = _split_one(raw, "CN", area)
            assert (
                None if pd.isna(number) else number,
                None if pd.isna(extension) else extension,
            ) == expected, raw
    assert split_phone(_s("(0797) 268 3075", "0400-123-4567"))["number"].tolist() == [
        "+86-797-2683075",
        "+86-400-1234567",
    ]


def test_phone_kinds() -> None:
    phones = normalize_phone(
        _s("13812345678", "010-62345678", "400-820-8820", "+1 415 555 2671", "+61 8 8635 5214", None)
    )
    assert is_mobile(phones).tolist() == [True, False, False, True, False, False]
    assert is_service_phone(phones).tolist() == [False, False, True, False, False, False]
    # service numbers reach a company: not a personal identifier
    assert is_placeholder_phone(phones).tolist() == [False, False, True, False, False, False]


def test_phone_geography_from_number_prefixes() -> None:
    phones = normalize_phone(
        _s(
            "13912345678",
            "021-68881234",
            "0755-87654321",
            "0771-81472485",
            "400-820-8820",
            "+1 415 555 2671",
            None,
        )
    )
    geography = phone_geography(phones)
    assert list(geography.columns) == ["province", "city", "carrier"]
    assert geography.iloc[0].tolist() == ["江苏", "常州", "中国移动"]
    assert geography.iloc[1, :2].tolist() == ["上海", "上海"] and pd.isna(geography.iloc[1, 2])
    assert geography.iloc[2, :2].tolist() == ["广东", "深圳"]
    assert geography.iloc[3, :2].tolist() == ["广西", "南宁"]
    assert geography.iloc[4:, :2].isna().all().all()
    # provinces come out in the same short form as normalize_province gives
    assert (
        normalize_province(geography["province"].dropna()).tolist() == geography["province"].dropna().tolist()
    )


def test_emails_are_trimmed_lowered_and_aliases_folded() -> None:
    emails = normalize_email(_s(" Wang.Wei@QQ.com ", "not-an-email", "J.Smith+shop@GoogleMail.com", None))
    assert emails.iloc[0] == "wang.wei@qq.com" and pd.isna(emails.iloc[1]) and pd.isna(emails.iloc[3])
    keys = canonical_email(emails)
    assert keys.iloc[2] == canonical_email(_s("jsmith@gmail.com")).iloc[0] == "jsmith@gmail.com"
    # Dots matter outside Gmail; the +tag is dropped everywhere.
    assert canonical_email(_s("wang.wei+vip@163.com")).iloc[0] == "wang.wei@163.com"


NAME_SPELLINGS = {
    "wang xiaoming": [
        "王小明", "王 小明", "Wang Xiaoming", "WANG Xiaoming", "Xiaoming Wang", "wang, xiaoming",
        "Wang Xiao-Ming", "wangxiaoming", "Ｗａｎｇ　Ｘｉａｏｍｉｎｇ", "Xiao Ming Wang", "Wang Xiao Ming",
        "王小明先生", "Mr Wang Xiaoming",
    ],
    "wei zhang": ["张伟", "ZHANG Wei", "zhangwei", "Wei Zhang", "张 伟", "张伟女士"],
    "lu wei": ["吕伟", "Lv Wei", "Lu Wei", "Lyu Wei", "Lü Wei", "LYU Wei", "lvwei"],
    "lue nan": ["略南", "Lve Nan", "Lüe Nan", "Lue Nan"],
    "nana ouyang": ["欧阳娜娜", "Ouyang Nana", "ouyangnana", "NANA OUYANG"],
    "weimin zhang": ["ZHANG Wei Min", "Zhang Weimin", "张维民"],
    "gang shan": ["单刚", "shangang", "Shan Gang", "SHAN Gang"],  # rare surname: Chinese order assumed
    "huatao shu": ["殳华涛", "Shu Hua Tao", "shuhuatao"],
    "meili yang": ["杨梅莉", "Yang Mei Li", "YANG Mei Li"],  # both ends surnames: Chinese order
}  # fmt: skip


@pytest.mark.parametrize(
    ("key", "spelling"), [(k, s) for k, spellings in NAME_SPELLINGS.items() for s in spellings]
)
def test_name_spellings_of_one_person_share_a_key(key: str, spelling: str) -> None:
    assert normalize_name(_s(spelling)).iloc[0] == key


def test_name_keys_keep_different_people_apart_and_handle_titles() -> None:
    keys = normalize_name(
        _s(
            "王芳",
            "王伟",
            "王先生",
            "李女士",
            "Mr. John Smith",
            "单田芳",
            "",
            None,
            "José",
            "先生",
            "David Victor",
            "张老师",
        )
    )
    assert keys.iloc[0] == "fang wang" and keys.iloc[1] == "wang wei"
    assert keys.iloc[2] == "wang" and keys.iloc[3] == "li"
    assert keys.iloc[4] == "john smith"
    assert keys.iloc[5] == "shan tianfang"  # surname reading, not "dan"
    assert keys.iloc[6:8].isna().all()
    assert keys.iloc[8] == "jose"
    assert pd.isna(keys.iloc[9])  # a title alone names nobody
    assert keys.iloc[10] == "david victor"  # v in Latin names is not ü
    assert keys.iloc[11] == "zhang"


def test_name_keys_are_idempotent_and_clean() -> None:
    spellings = _s(*(s for group in NAME_SPELLINGS.values() for s in group), "Mr. John Smith", "曾乐")
    keys = normalize_name(spellings)
    assert keys.tolist() == normalize_name(keys).tolist()
    assert keys.str.fullmatch(r"[a-z]+(?: [a-z]+)*").all()


# The published list of polyphonic surnames and their surname readings (83; overtrue/pinyin, quoted in
# mozillazg/python-pinyin#297). pypinyin alone reads 31 of them wrong.
PUBLISHED_SURNAMES = """
万俟:moqi 尉迟:yuchi 单于:chanyu 重:chong 秘:bi 冼:xian 华:hua 过:guo 纪:ji 燕:yan
种:chong 繁:po 幺:yao 覃:qin 冯:feng 石:shi 缪:miao 瞿:qu 曾:zeng 解:xie
折:she 那:na 佴:nai 难:nan 粘:nian 藏:zang 扎:za 翟:zhai 都:du 六:lu
薄:bo 贾:jia 的:de 哈:ha 居:ju 盖:ge 查:zha 盛:sheng 塔:ta 和:he
柏:bai 朴:piao 蓝:lan 牟:mou 殷:yin 陆:lu 乜:nie 乐:yue 阚:kan 叶:ye
强:qiang 不:fou 丁:ding 阿:a 汤:tang 万:wan 车:che 称:cheng 沈:shen 区:ou
仇:qiu 宿:su 南:nan 单:shan 卜:bu 鸟:niao 思:si 殳:shu 寻:xun 於:yu
烟:yan 余:yu 浅:qian 艾:ai 浣:wan 无:wu 信:xin 许:xu 齐:qi 俞:yu
若:ruo 贠:yun 貟:yun
"""


def test_published_polyphonic_surnames_read_as_surnames() -> None:
    published = dict(entry.split(":") for entry in PUBLISHED_SURNAMES.split())
    assert len(published) == 83
    wrong = {s: _surname_pinyin(s) for s, reading in published.items() if _surname_pinyin(s) != reading}
    assert wrong == {}
    # in a full name: the surname reading for the family name only (曾乐: zeng le, not zeng yue)
    keys = normalize_name(
        _s("卜小明", "薄熙", "阚明", "都明", "藏明", "仇明", "区明", "尉迟恭", "曾乐", "查明", "覃明")
    )
    assert keys.tolist() == [
        "bu xiaoming", "bo xi", "kan ming", "du ming", "ming zang", "ming qiu", "ming ou", "gong yuchi",
        "le zeng", "ming zha", "ming qin",
    ]  # fmt: skip


PROVINCES = [
    ("广东", "广东"), ("广东省", "广东"), ("Guangdong", "广东"), ("guangdong province", "广东"),
    ("北京", "北京"), ("北京市", "北京"), ("Beijing Shi", "北京"), ("内蒙古", "内蒙古"),
    ("内蒙古自治区", "内蒙古"), ("Inner Mongolia", "内蒙古"), ("Nei Mongol Zizhiqu", "内蒙古"),
    ("广西壮族自治区", "广西"), ("Guangxi Zhuang Autonomous Region", "广西"), ("宁夏回族自治区", "宁夏"),
    ("Ningxia Hui Autonomous Region", "宁夏"), ("新疆维吾尔自治区", "新疆"), ("Xinjiang Uygur", "新疆"),
    ("Anhui", "安徽"), ("Shaanxi", "陕西"), ("Shanxi", "山西"), ("香港特别行政区", "香港"),
    ("Hong Kong SAR", "香港"),
    ("Macau", "澳门"), ("Tibet", "西藏"), ("广东省深圳市", "广东"), ("Bavaria", "Bavaria"), (" ", None),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "expected"), PROVINCES)
def test_normalize_province(raw: str, expected: str | None) -> None:
    result = normalize_province(_s(raw)).iloc[0]
    assert (None if pd.isna(result) else result) == expected


def test_provinces_are_idempotent_and_cover_34_divisions() -> None:
    keys = normalize_province(_s(*(raw for raw, _ in PROVINCES), None))
    assert keys.fillna("null").tolist() == normalize_province(keys).fillna("null").tolist()
    assert len(_PROVINCE_NAMES) == 34


def test_placeholders_are_recognised() -> None:
    phones = normalize_phone(_s("13800000000", "13800138000", "13912345678", "010-88888888"))
    assert is_placeholder_phone(phones).tolist() == [True, True, False, True]
    emails = normalize_email(_s("test@test.com", "none@none.com", "noemail@qq.com", "wang.wei@qq.com"))
    assert is_placeholder_email(emails).tolist() == [True, True, True, False]


def test_city_tiers_for_chinese_and_pinyin_spellings() -> None:
    tiers = city_tier(
        _s("北京市", "Beijing", "shanghai", "成都", "厦门", "赣州", "Changsha", "Chongqing", None)
    )
    assert tiers.iloc[:8].tolist() == [1, 1, 1, 2, 3, 4, 2, 2]
    assert pd.isna(tiers.iloc[8])


def test_city_keys_once_per_distinct_city_keep_the_rows_index_and_name() -> None:
    cities = pd.Series(
        [" 上海市 ", "Beijing City", None, "", "上海", "Beijing City", "xi'an"],
        dtype=object,
        index=range(10, 17),
        name="city",
    )
    keys = normalize_city(cities)
    assert keys.dtype == "string" and keys.name == "city" and keys.index.tolist() == list(range(10, 17))
    assert keys.tolist() == ["上海", "beijing", pd.NA, pd.NA, "上海", "beijing", "xian"]


def test_phone_kinds_keep_rows_index_and_read_null_as_false() -> None:
    phones = pd.Series(["+8613912345678", None, "+86-400-8001234", "+8613912345678"], index=[7, 3, 5, 1])
    assert is_mobile(phones).to_dict() == {7: True, 3: False, 5: False, 1: True}
    assert is_service_phone(phones).to_dict() == {7: False, 3: False, 5: True, 1: False}
    assert is_mobile(phones).dtype == bool


def test_home_phone_settings_are_checked() -> None:
    assert DataSettings(home_region="au", home_area_code=" 0755 ").model_dump()["home_region"] == "AU"
    assert DataSettings(home_area_code="0755").home_area_code == "0755"
    with pytest.raises(ValidationError, match="unknown phone region"):
        DataSettings(home_region="XX")
    with pytest.raises(ValidationError, match="in quotes"):
        DataSettings(home_area_code=21)  # YAML `021` arrives as the number 17
    with pytest.raises(ValidationError, match="no area code"):
        DataSettings(home_area_code="021-6888")


def test_phone_geography_looked_up_per_prefix_equals_per_number() -> None:
    phones = normalize_phone(
        _s("13912345678", "13912349999", "13800138001", "021-68881234", "021-5521234", "0755-87654321", None),
        home_area_code="21",
    )
    together = phone_geography(phones)
    one_by_one = pd.concat([phone_geography(phones.iloc[[i]]) for i in range(len(phones))])
    assert together.fillna("-").equals(one_by_one.fillna("-"))
    assert together["province"].notna().sum() == 6
    assert phone_geography(_s()).shape == (0, 3)


def test_title_gender_reads_the_form_of_address_only() -> None:
    names = _s(
        "王先生",
        "李女士",
        "张 小姐 ",
        "Mrs. Smith",
        "Wang Xiansheng",
        "王小明",
        "先生",
        "Mr and Mrs Li",
        None,
    )
    assert title_gender(names).fillna("-").tolist() == ["M", "F", "F", "F", "M", "-", "M", "-", "-"]
