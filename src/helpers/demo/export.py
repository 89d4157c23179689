"""The export-style demo world: the default world's records and events written as a Chinese call
center's own exports (`demo.style: export`, matching `config/demo_export.yml`).

The default world is generated first (same people, events and truth for the same seed) and then
rewritten file by file: Chinese headers and values, a CRM workbook with a title row, mixed birth-date
and amount forms, a GBK CRLF call log keyed only by the caller number, an order file keyed by the
shop account, a pinyin-only member file, an English survey keyed by phone, a marketing platform's
campaign-response export keyed by the contact's phone (短信/外呼/微信/邮件, 是/否). There is no caller
table and no shop-account master. Ragged rows, a truncated last row and values outside every
vocabulary are planted on top of the default world's defects.

Recycled numbers: for `RECYCLED_SHARE` of the people a mobile passes from its previous holder to a
new one at a date. The previous holder has a CRM and a member record with that mobile; the CRM
record now shows a new number (the member record was never updated), and the previous holder's
events after the date carry the new number. Every record of the new holder shows the recycled
number; the new holder's records and events all date from after the switch.

Truth written next to the default truth: `export_rows` (file, row_no, source record, person of every
data row), `export_defects` (file, row_no, defect of every planted bad row, a row may have several;
`quarantine` false for a value outside an optional column's vocabulary, which is counted but keeps
its row) and `export_recycled` (person_id, role `previous holder` | `new holder`, number, the
previous holder's new number, switched_at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from helpers.demo import reference as ref
from helpers.demo.files import ISO_DATETIME, RAW_FILES, format_stamps
from helpers.demo.xlsx import XlsxStreamWriter

HOME_AREA_CODE = "021"  # the center's own city (Shanghai): its landlines appear as bare local numbers
EVENT_CHUNK_ROWS = 500_000  # rows converted at a time
EXPORT_FILES = {
    "crm_customers": "客户主档.xlsx",
    "calls": "呼叫记录.csv",
    "transactions": "订单明细.csv",
    "loyalty_members": "会员积分.csv",
    "surveys": "survey_results.csv",
    "marketing_contacts": "营销触达记录.csv",
}
CRM_SHEET = "客户主档"
GENDER = {"M": "男", "F": "女"}
CUSTOMER_TYPE = {"consumer": "个人", "business": "企业"}
INDUSTRY = {
    "manufacturing": "制造业",
    "finance": "金融",
    "healthcare": "医疗健康",
    "education": "教育",
    "construction": "建筑",
    "retail": "零售",
    "hospitality": "酒店餐饮",
    "it_services": "IT服务",
    "professional_services": "专业服务",
    "logistics": "物流",
}
DIRECTION = {"inbound": "呼入", "outbound": "呼出"}
REASON = {"inquiry": "咨询", "complaint": "投诉", "after_sales": "售后", "sales": "回访"}
YES_NO = {"true": "是", "false": "否"}
TIER = {"basic": "普卡", "silver": "银卡", "gold": "金卡", "platinum": "钻石"}
CATEGORY = {
    "jewelry": "珠宝首饰",
    "home": "家居",
    "beauty": "美妆",
    "gifts": "礼品",
    "electronics": "数码电器",
    "office_supplies": "办公用品",
    "snacks": "零食",
    "baby": "母婴",
    "sports": "运动户外",
    "fashion": "服饰",
    "books": "图书",
    "luxury": "奢侈品",
    "office_equipment": "办公设备",
    "groceries": "生鲜食品",
}
# app orders come from the app or the mini program; "online" is the PC shop.
CHANNEL = {"store": ["门店"], "online": ["PC"], "app": ["APP", "小程序"], "phone": ["电话下单"]}
MUNICIPALITIES = {"北京", "上海", "天津", "重庆"}
AUTONOMOUS = {"广西": "广西壮族自治区"}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
PLANT_SHARE = 0.001  # share of rows per planted export defect kind
MARKETING_CHANNEL = {"sms": "短信", "phone": "外呼", "social": "微信", "email": "邮件"}
CAMPAIGN = {
    "app_push": "APP推送",
    "family_weekend": "家庭周末",
    "618_sale": "618大促",
    "social_livestream": "直播带货",
    "discount_coupon": "优惠券",
    "back_to_school": "开学季",
    "valentine": "情人节",
    "spring_festival": "春节",
    "vip_preview": "VIP新品预览",
    "double11": "双十一",
    "b2b_bulk": "企业采购",
    "vip_gala": "VIP答谢会",
}
RECYCLED_SHARE = 0.01  # share of people who get a recycled mobile (as many previous holders)
RECYCLE_GAP_DAYS = 30  # the previous holder's member record is at least this much older than the switch
# Values outside the vocabulary of an optional column, and impossible birth dates of identity records, are
# counted and set to null; the row stays (step 01 drops a bad optional attribute, not the record).
KEPT_DEFECTS = ("gender_outside_vocabulary", "tier_outside_vocabulary", "impossible_birth_date")


@dataclass
class _Rows:
    """Row truth of one export file, collected chunk by chunk."""

    file: str
    systems: list[np.ndarray] = field(default_factory=list)
    records: list[np.ndarray] = field(default_factory=list)
    defects: list[tuple[np.ndarray, str]] = field(default_factory=list)
    rows: int = 0

    def add(self, system: np.ndarray, record: np.ndarray) -> np.ndarray:
        """Append a chunk's owners; return the chunk's 1-based row numbers."""
        self.systems.append(np.asarray(system, dtype=object))
        self.records.append(np.asarray(record, dtype=object))
        numbers = np.arange(self.rows + 1, self.rows + len(system) + 1)
        self.rows += len(system)
        return numbers

    def plant(self, row_numbers: np.ndarray, defect: str) -> None:
        self.defects.append((np.asarray(row_numbers, dtype=np.int64), defect))


def write_export_world(
    default_raw: Path, raw_dir: Path, truth_dir: Path, seed: int, reference_date: str
) -> dict[str, int]:
    """Rewrite the default world in `default_raw` as export files in `raw_dir`; return rows per file.

    `truth_dir` already holds the default truth; `export_rows` and `export_defects` are added.
    """
    rng = np.random.default_rng([seed, 11])
    records = _Records.read(default_raw)
    defects = pd.read_parquet(truth_dir / "planted_defects.parquet")
    owners = pd.read_parquet(truth_dir / "source_records.parquet")
    persons = pd.read_parquet(
        truth_dir / "persons.parquet", columns=["person_id", "full_name", "is_business"]
    )
    # Its own stream: the rest of the export draws the same numbers with or without recycling.
    recycled = _Recycled.plant(np.random.default_rng([seed, 11, 1]), records, owners, persons, default_raw)
    truths = [
        _crm(rng, records.crm, defects, raw_dir, reference_date),
        _members(rng, records.loyalty, owners, persons, defects, raw_dir),
        _calls(rng, default_raw, records, owners, persons, defects, raw_dir, recycled),
        _orders(rng, default_raw, records, defects, raw_dir, recycled),
        _surveys(rng, default_raw, records, defects, raw_dir, recycled),
        _marketing(rng, default_raw, records, defects, raw_dir, recycled),
    ]
    _write_truth(truths, owners, truth_dir)
    pq.write_table(
        pa.Table.from_pandas(recycled.truth, preserve_index=False), truth_dir / "export_recycled.parquet"
    )
    return {truth.file: truth.rows for truth in truths}


@dataclass
class _Records:
    """The default world's identity records, read as text."""

    crm: pd.DataFrame
    cti: pd.DataFrame
    shop: pd.DataFrame
    loyalty: pd.DataFrame

    @classmethod
    def read(cls, raw: Path) -> _Records:
        def csv(table: str) -> pd.DataFrame:
            spec = RAW_FILES[table]
            return pd.read_csv(raw / spec.file, dtype=str, keep_default_na=False, encoding=spec.encoding)

        loyalty = pd.read_excel(raw / RAW_FILES["loyalty_members"].file, dtype=str, engine="calamine")
        return cls(csv("crm_customers"), csv("cti_contacts"), csv("shop_accounts"), loyalty.fillna(""))

    def account(self, rng: np.random.Generator) -> pd.Series:
        """(system, record id) -> the account an order carries: the record's login (phone or e-mail),
        a member number where the member has neither."""
        crm = _first_filled(_first_filled(_phone_login(self.crm.mobile), self.crm.email), self.crm.member_no)
        shop_mail = rng.random(len(self.shop)) < 0.6
        shop = np.where(
            (shop_mail & (self.shop.email != "")) | (self.shop.mobile == ""),
            self.shop.email,
            _phone_login(self.shop.mobile),
        )
        loyalty = _first_filled(
            _first_filled(_phone_login(self.loyalty.phone), self.loyalty.email), self.loyalty.member_no
        )
        return _by_record(
            [
                ("crm", self.crm.crm_id, crm),
                ("shop", self.shop.shop_user_id, shop),
                ("loyalty", self.loyalty.member_no, loyalty),
            ]
        )

    def email(self) -> pd.Series:
        """(system, record id) -> the record's e-mail ('' without one; caller records have none)."""
        return _by_record(
            [
                ("crm", self.crm.crm_id, self.crm.email.to_numpy()),
                ("cti", self.cti.cti_id, np.full(len(self.cti), "")),
                ("shop", self.shop.shop_user_id, self.shop.email.to_numpy()),
                ("loyalty", self.loyalty.member_no, self.loyalty.email.to_numpy()),
            ]
        )

    def phone(self) -> pd.Series:
        """(system, record id) -> what a survey is keyed by: the record's phone, its e-mail without one."""
        return _by_record(
            [
                (
                    "crm",
                    self.crm.crm_id,
                    _first_filled(_first_filled(self.crm.mobile, self.crm.landline), self.crm.email),
                ),
                ("cti", self.cti.cti_id, self.cti.phone.to_numpy()),
                ("shop", self.shop.shop_user_id, _first_filled(self.shop.mobile, self.shop.email)),
                ("loyalty", self.loyalty.member_no, _first_filled(self.loyalty.phone, self.loyalty.email)),
            ]
        )


def _national_digits(values: pd.Series) -> pd.Series:
    """A phone's digits in any format, a mobile's country code (86, 0086) dropped."""
    digits = values.astype(str).str.replace(r"\D", "", regex=True)
    return digits.str.replace(r"^(0086|86)(?=1\d{10}$)", "", regex=True)


def _mobile_digits(values: pd.Series) -> pd.Series:
    """The 11 digits of a mobile in any format ('' for a landline, an e-mail, a placeholder or nothing)."""
    digits = _national_digits(values)
    mobile = digits.str.fullmatch(r"1\d{10}") & ~digits.isin(ref.PLACEHOLDER_PHONES)
    return digits.where(mobile & ~values.astype(str).str.contains("@"), "")


def _swap_digits(text: str, digits: str) -> str:
    """`text` with its last len(digits) digits replaced by `digits`, its format kept."""
    chars, todo = list(text), list(digits)
    for i in range(len(chars) - 1, -1, -1):
        if not todo:
            break
        if chars[i].isdigit():
            chars[i] = todo.pop()
    return "".join(chars)


def _first_events(default_raw: Path, person: pd.Series) -> pd.Series:
    """Each person's first event (call, order, survey, marketing touch) of the default world."""
    calls = pd.read_csv(default_raw / RAW_FILES["calls"].file, dtype=str, usecols=["cti_id", "call_at"])
    firsts = [
        pd.DataFrame(
            {
                "system": "cti",
                "record": calls["cti_id"],
                "at": pd.to_datetime(
                    calls["call_at"], format=RAW_FILES["calls"].datetime_format, errors="coerce"
                ),
            }
        )
    ]
    for table, column in (
        ("transactions", "txn_at"),
        ("surveys", "answered_at"),
        ("marketing_contacts", "sent_at"),
    ):
        frame = pd.read_csv(
            default_raw / RAW_FILES[table].file,
            dtype=str,
            usecols=["source_system", "source_customer_id", column],
        )
        firsts.append(
            pd.DataFrame(
                {
                    "system": frame["source_system"],
                    "record": frame["source_customer_id"],
                    "at": pd.to_datetime(frame[column], format="ISO8601", errors="coerce"),
                }
            )
        )
    first = pd.concat(firsts, ignore_index=True).groupby(["system", "record"])["at"].min()
    owner = person.reindex(first.index).to_numpy()
    return first.groupby(owner).min()


@dataclass
class _Recycled:
    """Recycled mobiles: the truth (one row per holder) and the previous holders, by person: the
    number, their new number and the switch date."""

    truth: pd.DataFrame
    previous: pd.DataFrame
    person: pd.Series  # (source_system, source_record_id) -> person_id

    @classmethod
    def plant(
        cls,
        rng: np.random.Generator,
        records: _Records,
        owners: pd.DataFrame,
        persons: pd.DataFrame,
        default_raw: Path,
    ) -> _Recycled:
        """Pick previous and new holders, rewrite their records' phones in `records` (in place)."""
        person = owners.set_index(["source_system", "source_record_id"])["person_id"]
        phones = {  # system -> (records, id column, phone column, date column, date format)
            "crm": (records.crm, "crm_id", "mobile", "created_at", "ISO8601"),
            "cti": (
                records.cti,
                "cti_id",
                "phone",
                "first_call_at",
                RAW_FILES["cti_contacts"].datetime_format,
            ),
            "shop": (records.shop, "shop_user_id", "mobile", "registered_at", "ISO8601"),
            "loyalty": (records.loyalty, "member_no", "phone", "joined_on", "ISO8601"),
        }
        parts = []
        for system, (frame, key, phone, date, fmt) in phones.items():
            ids = pd.MultiIndex.from_arrays([np.full(len(frame), system), frame[key]])
            parts.append(
                pd.DataFrame(
                    {
                        "system": system,
                        "row": np.arange(len(frame)),
                        "person_id": person.reindex(ids).to_numpy(),
                        "mobile": _mobile_digits(frame[phone]).to_numpy(),
                        "since": pd.to_datetime(frame[date], format=fmt, errors="coerce").to_numpy(),
                    }
                )
            )
        held = pd.concat(parts, ignore_index=True).dropna(subset=["person_id"])
        business = held["person_id"].map(persons.set_index("person_id")["is_business"]).fillna(True)
        held = held[~business.astype(bool).to_numpy()]
        mobiles = held[held["mobile"] != ""]
        holders = mobiles.groupby("mobile")["person_id"].nunique()
        own = mobiles[mobiles["mobile"].map(holders) == 1]  # nobody else holds it
        per_person = own.groupby("person_id")["mobile"].nunique()
        own = own[own["person_id"].map(per_person) == 1]
        # Previous holders: a CRM record and a member record with the same mobile.
        crm, loyalty = own[own["system"] == "crm"], own[own["system"] == "loyalty"]
        previous = loyalty.merge(crm[["person_id", "mobile"]].drop_duplicates(), on=["person_id", "mobile"])
        previous = previous.dropna(subset=["since"]).sort_values("since").drop_duplicates("person_id")
        # New holders: all their records and events date from after the switch.
        first_event = _first_events(default_raw, person)
        since = held.groupby("person_id")["since"].min()
        new = own.drop_duplicates("person_id")[["person_id", "mobile"]].assign(
            since=lambda f: f["person_id"].map(since).to_numpy(),
            first_event=lambda f: f["person_id"].map(first_event).to_numpy(),
        )
        new = new[new["since"].notna() & ~(new["first_event"] < new["since"]).fillna(False)]
        new = new[~new["person_id"].isin(previous["person_id"])]
        wanted = round(RECYCLED_SHARE * len(persons))
        order = rng.permutation(len(new))
        earliest = previous["since"].to_numpy()
        used = np.zeros(len(previous), dtype=bool)
        pairs: list[tuple[int, int, np.datetime64]] = []
        for position in order:
            if len(pairs) == wanted:
                break
            switched = new["since"].iloc[position] - pd.Timedelta(days=int(rng.integers(0, 31)))
            limit = np.searchsorted(earliest, np.datetime64(switched - pd.Timedelta(days=RECYCLE_GAP_DAYS)))
            for _ in range(5):
                pick = int(rng.integers(0, limit)) if limit else -1
                if (
                    pick >= 0
                    and not used[pick]
                    and previous["person_id"].iloc[pick] != new["person_id"].iloc[position]
                ):
                    used[pick] = True
                    pairs.append((pick, position, switched.floor("D")))
                    break
        taken = set(mobiles["mobile"])
        fresh = []
        while len(fresh) < len(pairs):
            number = f"19{int(rng.integers(0, 10**9)):09d}"
            if number not in taken:
                taken.add(number)
                fresh.append(number)
        old = previous.iloc[[pick for pick, _, _ in pairs]]
        got = new.iloc[[position for _, position, _ in pairs]]
        switched_at = pd.to_datetime([when for _, _, when in pairs])
        previous_map = pd.DataFrame(
            {"number": old["mobile"].to_numpy(), "new_number": fresh, "switched_at": switched_at},
            index=pd.Index(old["person_id"].to_numpy(), name="person_id"),
        )
        # The new holder's records show the recycled number; the previous holder's CRM record the new one.
        recycled_for = dict(zip(got["person_id"], old["mobile"], strict=True))
        renumbered = dict(zip(old["person_id"], fresh, strict=True))
        for system, (frame, _, phone, _, _) in phones.items():
            rows = own[own["system"] == system]
            pairs_of = list(zip(rows["row"], rows["person_id"], strict=True))
            swaps = [(row, recycled_for[p]) for row, p in pairs_of if p in recycled_for]
            if system == "crm":
                swaps += [(row, renumbered[p]) for row, p in pairs_of if p in renumbered]
            if swaps:
                column = frame.columns.get_loc(phone)
                for row, digits in swaps:
                    frame.iat[row, column] = _swap_digits(str(frame.iat[row, column]), digits)
        truth = pd.concat(
            [
                pd.DataFrame(
                    {
                        "person_id": old["person_id"].to_numpy(),
                        "role": "previous holder",
                        "number": old["mobile"].to_numpy(),
                        "new_number": fresh,
                        "switched_at": switched_at,
                    }
                ),
                pd.DataFrame(
                    {
                        "person_id": got["person_id"].to_numpy(),
                        "role": "new holder",
                        "number": old["mobile"].to_numpy(),
                        "new_number": "",
                        "switched_at": switched_at,
                    }
                ),
            ],
            ignore_index=True,
        )
        return cls(truth, previous_map, person)

    def owners(self, systems, ids) -> pd.Series:
        """The person behind each (system, record id)."""
        keys = pd.MultiIndex.from_arrays([np.asarray(systems, dtype=object), np.asarray(ids, dtype=object)])
        return pd.Series(self.person.reindex(keys).to_numpy())

    def rekey(self, values: pd.Series, person: pd.Series, when: pd.Series) -> pd.Series:
        """Event references of previous holders: their recycled number becomes their new number on and
        after the switch (`person` and `when` per event)."""
        hit = person.isin(self.previous.index).to_numpy()
        if not hit.any():
            return values
        rows = np.flatnonzero(hit)
        info = self.previous.reindex(person.to_numpy()[rows])
        late = pd.to_datetime(when).to_numpy()[rows] >= info["switched_at"].to_numpy()
        digits = _mobile_digits(values.iloc[rows].fillna("")).to_numpy()
        swap = late & (digits == info["number"].to_numpy())
        out = values.copy()
        targets = rows[swap]
        out.iloc[targets] = [
            _swap_digits(str(value), number)
            for value, number in zip(values.iloc[targets], info["new_number"].to_numpy()[swap], strict=True)
        ]
        return out


def _by_record(parts: list[tuple[str, pd.Series, np.ndarray]]) -> pd.Series:
    return pd.concat(
        pd.Series(values, index=pd.MultiIndex.from_arrays([np.full(len(ids), system), ids]))
        for system, ids, values in parts
    )


def _first_filled(first: pd.Series | np.ndarray, second: pd.Series | np.ndarray) -> np.ndarray:
    first = np.asarray(first, dtype=object)
    return np.where(first != "", first, np.asarray(second, dtype=object))


def _phone_login(values: pd.Series) -> np.ndarray:
    """A phone as a shop login: a mobile's (or a placeholder's) 11 digits without the country code; ''
    for a landline, which no shop takes as a login (the account is then the e-mail or member number)."""
    digits = _national_digits(values)
    login = digits.str.fullmatch(r"1\d{10}") | digits.isin(ref.PLACEHOLDER_PHONES)
    return np.where(login, digits, "")


def _pick(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    return np.flatnonzero(rng.random(n) < share)


def _defect_rows(
    defects: pd.DataFrame, table: str, keys: pd.Series, numbers: np.ndarray, truth: _Rows
) -> None:
    """Carry the default world's planted defects of `table` over to export row numbers.

    An exact duplicate's second occurrence is the bad row; orphans of identity tables that the export
    leaves out become unknown identifiers, not defects.
    """
    planted = defects[(defects.table == table) & (defects.defect != "orphan")]
    for kind, group in planted.groupby("defect"):
        hit = keys.isin(set(group.key)).to_numpy()
        if kind == "exact_duplicate":
            hit &= keys.duplicated(keep="first").to_numpy()
        truth.plant(numbers[hit], str(kind))


def _dates(values: pd.Series, fmt: str) -> pd.Series:
    return pd.to_datetime(values.where(values != ""), format=fmt, errors="coerce")


def _chinese_datetime(values: pd.Series, parsed: pd.Series) -> pd.Series:
    """`2026年3月5日 14:03`; text that is not a date is kept as it was."""
    stamps = pa.array(parsed, type=pa.timestamp("s"), from_pandas=True)
    day = [pc.cast(part(stamps), pa.string()) for part in (pc.year, pc.month, pc.day)]
    text = pc.binary_join_element_wise(
        day[0], "年", day[1], "月", day[2], "日 ", format_stamps(stamps, "%H:%M"), ""
    )
    return _or_original(text, values)


def _formatted(values: pd.Series, parsed: pd.Series, fmt: str) -> pd.Series:
    """Dates as text in `fmt` (Arrow, ~20x faster than strftime); text that is not a date is kept."""
    return _or_original(
        format_stamps(pa.array(parsed, type=pa.timestamp("s"), from_pandas=True), fmt), values
    )


def _or_original(text: pa.Array, values: pd.Series) -> pd.Series:
    return pd.Series(text.to_numpy(zero_copy_only=False), index=values.index).where(
        text.is_valid().to_numpy(zero_copy_only=False), values
    )


def _province(rng: np.random.Generator, province: pd.Series) -> np.ndarray:
    """Province names with and without their suffix (广东 / 广东省, 北京 / 北京市, 广西 / 广西壮族自治区)."""
    full = province.map(
        lambda name: (
            AUTONOMOUS.get(name, f"{name}市" if name in MUNICIPALITIES else f"{name}省") if name else ""
        )
    )
    return np.where(rng.random(len(province)) < 0.5, full, province)


def _crm(rng, crm: pd.DataFrame, defects: pd.DataFrame, raw_dir: Path, reference_date: str) -> _Rows:
    """The CRM workbook: title row, blank row, Chinese header; mixed birth dates, numeric member numbers."""
    n = len(crm)
    truth = _Rows(EXPORT_FILES["crm_customers"])
    numbers = truth.add(np.full(n, "crm"), crm.crm_id)
    birth = _dates(crm.birth_date, "%Y-%m-%d")
    form = rng.integers(0, 5, n)  # 1985/3/7, 1985-03-07, 19850307 number, 1985年3月7日, date cell
    year, month, day = (
        birth.dt.year.astype("Int64"),
        birth.dt.month.astype("Int64"),
        birth.dt.day.astype("Int64"),
    )
    slash = year.astype(str) + "/" + month.astype(str) + "/" + day.astype(str)
    chinese = year.astype(str) + "年" + month.astype(str) + "月" + day.astype(str) + "日"
    text = np.where(form == 0, slash, np.where(form == 1, crm.birth_date, np.where(form == 3, chinese, None)))
    has = birth.notna().to_numpy()
    birth_cell = pa.StructArray.from_arrays(
        [
            pa.array(np.where(has, text, None), type=pa.string()),
            pa.array(np.where(has & (form == 2), _formatted(crm.birth_date, birth, "%Y%m%d"), None)).cast(
                pa.int64()
            ),
            pa.array(birth.where(has & (form == 4)), type=pa.timestamp("s")),
        ],
        names=["text", "number", "date"],
    )
    gender = crm.gender.map(GENDER).fillna("").to_numpy(dtype=object)
    bad_gender = _pick(rng, n, PLANT_SHARE)
    gender[bad_gender] = "X"
    truth.plant(numbers[bad_gender], "gender_outside_vocabulary")
    _defect_rows(defects, "crm_customers", crm.crm_id, numbers, truth)
    columns = {
        "客户编号": crm.crm_id,
        "姓名": crm.full_name,
        "性别": gender,
        "出生日期": birth_cell,
        "手机": crm.mobile,
        "固定电话": crm.landline,
        "电子邮箱": crm.email,
        "证件号哈希": crm.national_id_hash,
        "会员卡号": pd.to_numeric(crm.member_no.where(crm.member_no != "")).astype("Int64"),
        "客户类型": crm.customer_type.map(CUSTOMER_TYPE),
        "公司名称": crm.company_name,
        "所属行业": crm.industry.map(INDUSTRY),
        "员工人数": pd.to_numeric(crm.employee_count.where(crm.employee_count != "")).astype("Int64"),
        "年营业额(元)": pd.to_numeric(crm.annual_revenue_cny.where(crm.annual_revenue_cny != "")),
        "省份": _province(rng, crm.province),
        "城市": np.where(rng.random(n) < 0.3, crm.city + "市", crm.city),
        "地址": crm.address,
        "创建时间": crm.created_at,
    }
    arrays = [_arrow(values) for values in columns.values()]
    writer = XlsxStreamWriter(
        raw_dir / truth.file, CRM_SHEET, list(columns), title=f"客户主档导出 截至{reference_date}"
    )
    table = pa.Table.from_arrays(arrays, names=list(columns))
    for start in range(0, len(table), EVENT_CHUNK_ROWS):  # the sheet's XML is built a slice at a time
        writer.write(table.slice(start, EVENT_CHUNK_ROWS))
    writer.close()
    return truth


def _arrow(values) -> pa.Array:
    """A column for the workbook: struct and numbers as they are, text with empty strings left out."""
    if isinstance(values, pa.Array):
        return values
    series = pd.Series(values)
    if pd.api.types.is_numeric_dtype(series):
        return pa.array(series, from_pandas=True)
    text = series.fillna("").astype(str)
    return pa.array(text.where(text != ""), type=pa.string(), from_pandas=True)


def _pinyin_names(rng, names: pd.Series, true_names: pd.Series) -> np.ndarray:
    """Pinyin only: `ZHANG Wei`, `zhangwei`, `Wei Zhang`, `Zhang Wei`; Latin names as the record had them."""
    readings = dict(ref.SURNAMES) | dict(ref.GIVEN)
    out = names.to_numpy(dtype=object).copy()
    forms = rng.integers(0, 4, len(names))
    for row, (true_name, form) in enumerate(zip(true_names, forms, strict=True)):
        if not isinstance(true_name, str) or not true_name or true_name[0] not in readings:
            continue
        surname, given = readings[true_name[0]], "".join(readings.get(char, "") for char in true_name[1:])
        out[row] = (
            f"{surname.upper()} {given.capitalize()}",
            f"{surname}{given}",
            f"{given.capitalize()} {surname.capitalize()}",
            f"{surname.capitalize()} {given.capitalize()}",
        )[form]
    return out


def _members(
    rng,
    loyalty: pd.DataFrame,
    owners: pd.DataFrame,
    persons: pd.DataFrame,
    defects: pd.DataFrame,
    raw_dir: Path,
) -> _Rows:
    """The member-points file: pinyin names only, Chinese tiers, a points column no table has."""
    n = len(loyalty)
    truth = _Rows(EXPORT_FILES["loyalty_members"])
    numbers = truth.add(np.full(n, "loyalty"), loyalty.member_no)
    person = owners[owners.source_system == "loyalty"].set_index("source_record_id").person_id
    true_names = loyalty.member_no.map(person).map(persons.set_index("person_id").full_name)
    tier = loyalty.tier.map(TIER).fillna("").to_numpy(dtype=object)
    bad_tier = _pick(rng, n, PLANT_SHARE)
    tier[bad_tier] = "黑卡"
    truth.plant(numbers[bad_tier], "tier_outside_vocabulary")
    _defect_rows(defects, "loyalty_members", loyalty.member_no, numbers, truth)
    frame = pd.DataFrame(
        {
            "会员号": loyalty.member_no,
            "会员姓名": _pinyin_names(rng, loyalty.member_name, true_names),
            "手机号": loyalty.phone,
            "邮箱": loyalty.email,
            "生日": loyalty.birth_date.str[:10],
            "入会日期": loyalty.joined_on.str[:10],
            "会员等级": tier,
            "当前积分": rng.integers(0, 50_000, n),
        }
    )
    frame.to_csv(raw_dir / truth.file, index=False, encoding="utf-8")
    return truth


def _caller_numbers(rng, phones: pd.Series, business: np.ndarray) -> np.ndarray:
    """How the PBX logs a caller: trunk prefix 0, full-width digits, bare local numbers, extensions."""
    digits = phones.str.replace(r"\D", "", regex=True).str.replace(r"^(0086|86)(?=1\d{10}$)", "", regex=True)
    mobile = digits.str.fullmatch(r"1\d{10}").to_numpy()
    local = digits.str.startswith(HOME_AREA_CODE).to_numpy() & ~mobile
    u = rng.random(len(phones))
    out = phones.to_numpy(dtype=object).copy()
    out = np.where(mobile & (u < 0.28), "0" + digits, out)
    out = np.where(mobile & (u >= 0.28) & (u < 0.33), digits.str.translate(FULL_WIDTH), out)
    out = np.where(local & (u < 0.6), digits.str[len(HOME_AREA_CODE) :], out)
    extension = ~mobile & business & (u > 0.5) & (phones != "").to_numpy()
    marks = np.where(rng.random(len(phones)) < 0.5, "转", "-")
    numbers = rng.integers(8000, 9000, len(phones)).astype(str)
    return np.where(extension, out.astype(str) + marks + numbers, out)


def _calls(
    rng, default_raw: Path, records: _Records, owners, persons, defects, raw_dir: Path, recycled: _Recycled
) -> _Rows:
    """The GBK CRLF call log, keyed only by the caller number (and the name the agent typed)."""
    truth = _Rows(EXPORT_FILES["calls"])
    cti = records.cti.set_index("cti_id")
    person = owners[owners.source_system == "cti"].set_index("source_record_id").person_id
    business = person.map(persons.set_index("person_id").is_business).fillna(False)
    fmt = RAW_FILES["calls"].datetime_format
    path = raw_dir / truth.file
    with path.open("w", encoding="gbk", newline="") as handle:
        for chunk in pd.read_csv(
            default_raw / RAW_FILES["calls"].file,
            dtype=str,
            keep_default_na=False,
            chunksize=EVENT_CHUNK_ROWS,
        ):
            known = chunk.cti_id.isin(cti.index).to_numpy()
            numbers = truth.add(np.where(known, "cti", ""), np.where(known, chunk.cti_id, ""))
            phone = chunk.cti_id.map(cti.phone).fillna("")
            unknown = np.flatnonzero(~known)  # orphans: numbers nobody in the world holds
            phone.iloc[unknown] = [f"17{n:09d}" for n in rng.integers(0, 10**9, len(unknown))]
            called_at = _dates(chunk.call_at, fmt)
            phone = recycled.rekey(
                phone, recycled.owners(np.full(len(chunk), "cti"), chunk.cti_id), called_at
            )
            direction = chunk.direction.map(DIRECTION).to_numpy(dtype=object)
            bad = _pick(rng, len(chunk), PLANT_SHARE)
            direction[bad] = "转接"
            truth.plant(numbers[bad], "direction_outside_vocabulary")
            _defect_rows(defects, "calls", chunk.call_id, numbers, truth)
            frame = pd.DataFrame(
                {
                    "通话编号": chunk.call_id,
                    "来电号码": _caller_numbers(rng, phone, chunk.cti_id.map(business).eq(True).to_numpy()),
                    "客户姓名": chunk.cti_id.map(cti.caller_name).fillna(""),
                    "开始时间": _chinese_datetime(chunk.call_at, called_at),
                    "呼叫方向": direction,
                    "业务类型": chunk.reason.map(REASON),
                    "通话时长(秒)": chunk.duration_sec,
                    "是否解决": chunk.resolved.map(YES_NO).fillna(""),
                    "满意度": chunk.satisfaction,
                }
            )
            header = handle.tell() == 0
            lines = frame.to_csv(index=False, header=header, lineterminator="\r\n").split("\r\n")
            handle.write("\r\n".join(_ragged(rng, lines, numbers, truth, header=header)))
    return truth


def _ragged(rng, lines: list[str], numbers: np.ndarray, truth: _Rows, header: bool) -> list[str]:
    """Drop the last field of some data lines and add one to others (rows too short / too long)."""
    first = 1 if header else 0
    rows = _pick(rng, len(numbers), PLANT_SHARE)
    short = rows[rng.random(len(rows)) < 0.5]
    for row in rows:
        line = lines[first + row]
        lines[first + row] = line.rsplit(",", 1)[0] if row in short else f"{line},备注"
    truth.plant(numbers[short], "too_few_fields")
    truth.plant(numbers[np.setdiff1d(rows, short)], "too_many_fields")
    return lines


def _amounts(rng, amounts: pd.Series) -> np.ndarray:
    """`¥1,234.50`, `￥1,234.50`, `1234.50`, `1,234.50元` (negative amounts as `-1234.50`)."""
    values = pd.to_numeric(amounts)
    grouped = values.map("{:,.2f}".format)
    plain = values.map("{:.2f}".format)
    form = rng.integers(0, 4, len(values))
    out = np.select(
        [form == 0, form == 1, form == 2], ["¥" + grouped, "￥" + grouped, plain], default=grouped + "元"
    )
    return np.where(values < 0, plain, out)


def _orders(rng, default_raw: Path, records: _Records, defects, raw_dir: Path, recycled: _Recycled) -> _Rows:
    """The UTF-8-BOM order file keyed by the shop account (a phone or an e-mail); last row cut off."""
    truth = _Rows(EXPORT_FILES["transactions"])
    account = records.account(rng)
    path = raw_dir / truth.file
    fmt = RAW_FILES["transactions"].datetime_format
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        for chunk in pd.read_csv(
            default_raw / RAW_FILES["transactions"].file,
            dtype=str,
            keep_default_na=False,
            chunksize=EVENT_CHUNK_ROWS,
        ):
            keys = pd.MultiIndex.from_arrays([chunk.source_system, chunk.source_customer_id])
            login = pd.Series(account.reindex(keys).to_numpy(), index=chunk.index)
            known = login.notna().to_numpy()
            numbers = truth.add(
                np.where(known, chunk.source_system, ""), np.where(known, chunk.source_customer_id, "")
            )
            unknown = np.flatnonzero(~known)  # orphans: accounts no system knows
            login.iloc[unknown] = [f"guest{n}@163.com" for n in rng.integers(10**6, 10**7, len(unknown))]
            truth.plant(numbers[(login == "").to_numpy()], "missing_account")
            parsed = _dates(chunk.txn_at, fmt)
            login = recycled.rekey(
                login, recycled.owners(chunk.source_system, chunk.source_customer_id), parsed
            )
            channel = chunk.channel.map(lambda value: CHANNEL[value][0]).to_numpy(dtype=object)
            app = (chunk.channel == "app").to_numpy() & (rng.random(len(chunk)) < 0.4)
            channel[app] = CHANNEL["app"][1]
            amount = _amounts(rng, chunk.amount)
            bad = _pick(rng, len(chunk), PLANT_SHARE)
            amount[bad] = "待定"
            truth.plant(numbers[bad], "amount_not_a_number")
            _defect_rows(defects, "transactions", chunk.txn_id, numbers, truth)
            frame = pd.DataFrame(
                {
                    "订单号": chunk.txn_id,
                    "下单账号": login,
                    "下单时间": _formatted(chunk.txn_at, parsed, "%Y/%m/%d %H:%M:%S"),
                    "订单金额": amount,
                    "数量": chunk.quantity,
                    "商品类目": chunk.category.map(CATEGORY),
                    "渠道": channel,
                    "订单状态": np.where(chunk.is_refund == "true", "已退款", "已完成"),
                }
            )
            header = handle.tell() == 0
            lines = frame.to_csv(index=False, header=header, lineterminator="\r\n").split("\r\n")
            handle.write("\r\n".join(_ragged(rng, lines, numbers, truth, header=header)))
    _truncate_last_row(path, truth)
    return truth


def _truncate_last_row(path: Path, truth: _Rows) -> None:
    """Cut the file in the middle of its last row, inside the account field (an export that stopped)."""
    data = path.read_bytes()
    end = data.rstrip(b"\r\n")
    start = end.rfind(b"\n") + 1
    cut = start + end[start:].index(b",") + 4
    path.write_bytes(data[:start] + b'"' + data[start:cut])
    truth.plant(np.array([truth.rows]), "truncated_row")


def _surveys(rng, default_raw: Path, records: _Records, defects, raw_dir: Path, recycled: _Recycled) -> _Rows:
    """The survey tool's export: English headers, keyed by phone (e-mail without one), dates MM/DD/YYYY."""
    truth = _Rows(EXPORT_FILES["surveys"])
    phone = records.phone()
    survey = pd.read_csv(default_raw / RAW_FILES["surveys"].file, dtype=str, keep_default_na=False)
    keys = pd.MultiIndex.from_arrays([survey.source_system, survey.source_customer_id])
    number = pd.Series(phone.reindex(keys).to_numpy(), index=survey.index).fillna("")
    numbers = truth.add(survey.source_system, survey.source_customer_id)
    truth.plant(numbers[(number == "").to_numpy()], "missing_reference")
    _defect_rows(defects, "surveys", survey.survey_id, numbers, truth)
    parsed = _dates(survey.answered_at, ISO_DATETIME)
    number = recycled.rekey(number, recycled.owners(survey.source_system, survey.source_customer_id), parsed)
    frame = pd.DataFrame(
        {
            "Response ID": survey.survey_id,
            "Phone No.": number,
            "Submitted": _formatted(survey.answered_at, parsed, "%m/%d/%Y"),
            "CSAT": survey.csat,
            "NPS": survey.nps,
            "Interests": survey.interests,
            "Lifestyle": survey.lifestyle,
            "Need": survey.stated_need,
        }
    )
    frame.to_csv(raw_dir / truth.file, index=False, encoding="utf-8")
    return truth


def _campaign(names: pd.Series) -> pd.Series:
    """`discount_coupon_2026q2` -> `2026Q2优惠券`; a name of an unknown kind stays as it is."""
    parts = names.str.extract(r"^(?P<kind>.+)_(?P<year>\d{4})(?P<part>[qh]\d)?$")
    label = parts["kind"].map(CAMPAIGN)
    text = parts["year"] + parts["part"].fillna("").str.upper() + label
    return text.where(label.notna(), names)


def _marketing(
    rng, default_raw: Path, records: _Records, defects, raw_dir: Path, recycled: _Recycled
) -> _Rows:
    """The marketing platform's campaign-response export: keyed by the contact's phone (the e-mail for
    邮件 touches and for records without a phone), channels 短信/外呼/微信/邮件, responses 是/否."""
    truth = _Rows(EXPORT_FILES["marketing_contacts"])
    touches = pd.read_csv(
        default_raw / RAW_FILES["marketing_contacts"].file, dtype=str, keep_default_na=False
    )
    keys = pd.MultiIndex.from_arrays([touches.source_system, touches.source_customer_id])
    phone = pd.Series(records.phone().reindex(keys).to_numpy(), index=touches.index)
    email = pd.Series(records.email().reindex(keys).to_numpy(), index=touches.index).fillna("")
    known = phone.notna().to_numpy()
    numbers = truth.add(
        np.where(known, touches.source_system, ""), np.where(known, touches.source_customer_id, "")
    )
    unknown = np.flatnonzero(~known)  # orphans: contacts no system knows
    phone.iloc[unknown] = [f"15{n:09d}" for n in rng.integers(0, 10**9, len(unknown))]
    contact = phone.where(~((touches.channel == "email") & (email != "")), email).fillna("")
    truth.plant(numbers[(contact == "").to_numpy()], "missing_reference")
    _defect_rows(defects, "marketing_contacts", touches.contact_id, numbers, truth)
    parsed = _dates(touches.sent_at, ISO_DATETIME)
    contact = recycled.rekey(
        contact, recycled.owners(touches.source_system, touches.source_customer_id), parsed
    )
    frame = pd.DataFrame(
        {
            "发送编号": touches.contact_id,
            "联系方式": contact,
            "发送时间": _formatted(touches.sent_at, parsed, "%Y-%m-%d %H:%M"),
            "活动名称": _campaign(touches.campaign),
            "触达渠道": touches.channel.map(MARKETING_CHANNEL).fillna(touches.channel),
            "是否响应": touches.responded.map(YES_NO).fillna(touches.responded),
            "是否转化": touches.converted.map(YES_NO).fillna(touches.converted),
        }
    )
    frame.to_csv(raw_dir / truth.file, index=False, encoding="utf-8-sig")
    return truth


def _write_truth(truths: list[_Rows], owners: pd.DataFrame, truth_dir: Path) -> None:
    person = owners.set_index(["source_system", "source_record_id"]).person_id
    rows, defects = [], []
    for truth in truths:
        system, record = np.concatenate(truth.systems), np.concatenate(truth.records)
        frame = pd.DataFrame(
            {
                "file": truth.file,
                "row_no": np.arange(1, truth.rows + 1),
                "source_system": system.astype(str),
                "source_record_id": record.astype(str),
            }
        )
        frame["person_id"] = person.reindex(pd.MultiIndex.from_arrays([system, record])).fillna("").to_numpy()
        rows.append(frame)
        for numbers, kind in truth.defects:
            defects.append(
                pd.DataFrame(
                    {
                        "file": truth.file,
                        "row_no": numbers,
                        "defect": kind,
                        "quarantine": kind not in KEPT_DEFECTS,
                    }
                )
            )
    pq.write_table(
        pa.Table.from_pandas(pd.concat(rows), preserve_index=False), truth_dir / "export_rows.parquet"
    )
    table = pd.concat(defects).sort_values(["file", "row_no"], kind="stable")  # a row may have several
    pq.write_table(pa.Table.from_pandas(table, preserve_index=False), truth_dir / "export_defects.parquet")
