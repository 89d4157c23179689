"""Normalizers with real-world spellings: phones, e-mails, names, cities, placeholders."""

from __future__ import annotations

import pandas as pd
import pytest

from helpers.core.normalize import (
    canonical_email,
    city_tier,
    is_mobile,
    is_placeholder_email,
    is_placeholder_phone,
    normalize_email,
    normalize_name,
    normalize_phone,
)


def _s(*values: object) -> pd.Series:
    return pd.Series(list(values), dtype="string")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13812345678", "+8613812345678"),
        ("+86 138 1234 5678", "+8613812345678"),
        ("0086-13812345678", "+8613812345678"),
        ("138-1234-5678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("010-62345678", "+86-10-62345678"),
        ("(010) 6234 5678", "+86-10-62345678"),
        ("+86 10 62345678", "+86-10-62345678"),
        ("0755-8765432 转 123", "+86-755-8765432"),
        ("12345", None),
        ("", None),
    ],
)
def test_normalize_phone_real_formats(raw: str, expected: str | None) -> None:
    result = normalize_phone(_s(raw)).iloc[0]
    assert (pd.isna(result) and expected is None) or result == expected


def test_is_mobile_separates_mobiles_from_landlines() -> None:
    phones = normalize_phone(_s("13812345678", "010-62345678", None))
    assert is_mobile(phones).tolist() == [True, False, False]


def test_emails_are_trimmed_lowered_and_aliases_folded() -> None:
    emails = normalize_email(_s(" Wang.Wei@QQ.com ", "not-an-email", "J.Smith+shop@GoogleMail.com", None))
    assert emails.iloc[0] == "wang.wei@qq.com" and pd.isna(emails.iloc[1]) and pd.isna(emails.iloc[3])
    keys = canonical_email(emails)
    assert keys.iloc[2] == canonical_email(_s("jsmith@gmail.com")).iloc[0] == "jsmith@gmail.com"
    # Dots matter outside Gmail; the +tag is dropped everywhere.
    assert canonical_email(_s("wang.wei+vip@163.com")).iloc[0] == "wang.wei@163.com"


@pytest.mark.parametrize(
    "spelling",
    [
        "王小明",
        "Wang Xiaoming",
        "WANG Xiaoming",
        "Xiaoming Wang",
        "wang, xiaoming",
        "Wang Xiao-Ming",
        "wangxiaoming",
        "Ｗａｎｇ　Ｘｉａｏｍｉｎｇ",
    ],
)
def test_name_spellings_of_one_person_share_a_key(spelling: str) -> None:
    assert normalize_name(_s(spelling)).iloc[0] == "wang xiaoming"


def test_name_keys_keep_different_people_apart_and_handle_titles() -> None:
    keys = normalize_name(
        _s("王芳", "王伟", "王先生", "李女士", "Mr. John Smith", "欧阳娜娜", "单田芳", "", None, "José")
    )
    assert keys.iloc[0] == "fang wang" and keys.iloc[1] == "wang wei"
    assert keys.iloc[2] == "wang" and keys.iloc[3] == "li"
    assert keys.iloc[4] == "john smith"
    assert keys.iloc[5] == "nana ouyang"  # compound surname
    assert keys.iloc[6] == "shan tianfang"  # surname reading, not "dan"
    assert keys.iloc[7:9].isna().all()
    assert keys.iloc[9] == "jose"


def test_placeholders_are_recognised() -> None:
    phones = normalize_phone(_s("13800000000", "13800138000", "13912345678", "010-88888888"))
    assert is_placeholder_phone(phones).tolist() == [True, True, False, True]
    emails = normalize_email(_s("test@test.com", "none@none.com", "noemail@qq.com", "wang.wei@qq.com"))
    assert is_placeholder_email(emails).tolist() == [True, True, True, False]


def test_city_tiers_for_chinese_and_pinyin_spellings() -> None:
    tiers = city_tier(_s("北京市", "Beijing", "shanghai", "成都", "厦门", "赣州", None))
    assert tiers.iloc[:6].tolist() == [1, 1, 1, 2, 3, 4]
    assert pd.isna(tiers.iloc[6])
