"""Identity records of the demo world: who is in which source system, and how noisily.

Each true person gets records in 1-4 systems (sometimes two in one), rendered with the noise
real exports have: phone formats, name spellings and typos, changed or missing e-mails, moved
cities, shared household and company phones, agent placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from helpers.demo import reference as ref
from helpers.demo.people import (
    AREA_CODES,
    GIV_CN,
    GIV_PY,
    LAT_FIRST,
    LAT_LAST,
    SUR_CN,
    SUR_PY,
    People,
    cat,
    draw_addresses,
    pick,
    scrambled,
    zpad,
)

SYSTEMS = ("crm", "cti", "shop", "loyalty")
# Record id: prefix, digits, multiplier of the scrambling bijection.
ID_FORMATS = {
    "crm": ("C", 8, 61_803_399, 11_235_813),
    "cti": ("CTI", 8, 41_421_357, 27_182_818),
    "shop": ("U", 9, 732_050_807, 314_159_265),
    "loyalty": ("8860", 8, 23_606_797, 16_180_339),
}
# Mobile formats: plain, "+86 138 1234 5678", "0086-...", "138-1234-5678", "+86...", "138 1234 5678".
MOBILE_STYLE_WEIGHTS = {
    "crm": [0.45, 0.08, 0.05, 0.30, 0.04, 0.08],
    "cti": [0.35, 0.25, 0.15, 0.05, 0.20, 0.00],
    "shop": [0.85, 0.05, 0.00, 0.05, 0.05, 0.00],
    "loyalty": [0.40, 0.15, 0.10, 0.15, 0.05, 0.15],
}
# Landline formats: "010-62345678", "(010) 6234 5678", "+86 10 62345678", "01062345678".
LANDLINE_STYLE_WEIGHTS = {
    "crm": [0.60, 0.25, 0.05, 0.10],
    "cti": [0.20, 0.05, 0.35, 0.40],
    "loyalty": [0.40, 0.30, 0.10, 0.20],
}
LATIN_VARIANTS = {
    "Jonathan": "Jonathon",
    "Catherine": "Katherine",
    "Michael": "Micheal",
    "Sarah": "Sara",
    "Elizabeth": "Elisabeth",
    "Sophie": "Sophia",
    "Carlos": "Karlos",
    "Luis": "Louis",
    "Isabel": "Isabelle",
    "Matthew": "Mathew",
    "Jessica": "Jesica",
    "Thomas": "Tomas",
}


@dataclass
class Records:
    """One system's identity records for a chunk: owner rows, duplicate flag, ids and columns."""

    system: str
    person: np.ndarray
    dup: np.ndarray
    ids: np.ndarray
    columns: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.person)

    def positions(self, n_people: int, duplicate: bool = False) -> np.ndarray:
        """Per person: the row of their first (or duplicate) record in this system, or -1."""
        out = np.full(n_people, -1, dtype=np.int64)
        chosen = self.dup if duplicate else ~self.dup
        out[self.person[chosen]] = np.flatnonzero(chosen)
        return out

    def primary_id(self, n_people: int) -> np.ndarray:
        """Per person: the id of their first record in this system, or ""."""
        positions = self.positions(n_people)
        padded = np.append(self.ids, "")
        return padded[positions]


@dataclass(frozen=True)
class IdBook:
    """All record ids of a chunk (systems in SYSTEMS order), so events can refer to them by position."""

    ids: np.ndarray
    system: np.ndarray
    offsets: dict[str, int]
    person: np.ndarray

    @classmethod
    def of(cls, records: dict[str, Records]) -> IdBook:
        sizes = [len(records[s]) for s in SYSTEMS]
        starts = np.cumsum(sizes) - sizes
        return cls(
            ids=np.concatenate([records[s].ids for s in SYSTEMS]),
            system=np.repeat(np.arange(len(SYSTEMS)), sizes),
            offsets={s: int(start) for s, start in zip(SYSTEMS, starts, strict=True)},
            person=np.concatenate([records[s].person for s in SYSTEMS]),
        )


def record_ids(system: str, index: np.ndarray) -> np.ndarray:
    """Record ids of `system` for global record indexes (orphans use indexes near 10**digits)."""
    prefix, digits, multiplier, offset = ID_FORMATS[system]
    return cat(prefix, zpad(scrambled(index, digits, multiplier, offset), digits))


def orphan_ids(system: str, chunk: int, count: int) -> np.ndarray:
    """Ids in the system's format that belong to no record, distinct per chunk.

    They come from the top of the id space (chunk c uses the c-th block of a million indexes
    counted down from 10**digits), far above any real record index.
    """
    digits = ID_FORMATS[system][1]
    return record_ids(system, 10**digits - 1 - (chunk * 1_000_000 + np.arange(count)))


def membership(rng: np.random.Generator, people: People) -> dict[str, np.ndarray]:
    """Per system, a boolean per person: has at least one record there."""
    n = len(people)
    seg, stage = people.segment, people.stage
    buyer = stage >= ref.CONVERSION
    crm = buyer & (rng.random(n) < ref.CRM_SHARE[seg])
    shop = buyer & (rng.random(n) < ref.SHOP_SHARE[seg])
    loyalty_share = ref.LOYALTY_SHARE[seg] + np.where(stage == ref.LOYALTY, 0.25, 0.0)
    loyalty = buyer & (rng.random(n) < loyalty_share)
    cti = buyer & (rng.random(n) < ref.CTI_SHARE[seg])
    nowhere = buyer & ~(crm | shop | loyalty)
    shop |= nowhere & (seg == ref.YOUNG)
    crm |= nowhere & (seg != ref.YOUNG)
    cold, warm = stage == ref.CONTACT, stage == ref.ACQUISITION
    crm |= cold & (rng.random(n) < 0.75)
    cti |= cold & (~crm | (rng.random(n) < 0.3))
    cti |= warm
    crm |= warm & (rng.random(n) < 0.5)
    return {"crm": crm, "cti": cti, "shop": shop, "loyalty": loyalty}


def build_records(
    rng: np.random.Generator, people: People, counters: dict[str, int], reference: np.datetime64
) -> dict[str, Records]:
    """All identity records of a chunk, with ids continuing the global per-system counters."""
    member = membership(rng, people)
    n = len(people)
    # ~4% of people have a second record in one of their systems.
    held = np.stack([member[s] for s in SYSTEMS], axis=1)
    n_held = held.sum(axis=1)
    nth = (rng.random(n) * n_held).astype(np.int64)
    column = np.argmax(held & (np.cumsum(held, axis=1) - 1 == nth[:, None]), axis=1)
    wants_dup = (rng.random(n) < 0.04) & (n_held > 0)
    # A contact-stage person gets at most one (outbound) call, so no second caller record.
    wants_dup &= ~((np.array(SYSTEMS)[column] == "cti") & (people.stage == ref.CONTACT))
    dup_system = np.where(wants_dup, np.array(SYSTEMS)[column], "")
    records = {}
    for system in SYSTEMS:
        owners = np.concatenate([np.flatnonzero(member[system]), np.flatnonzero(dup_system == system)])
        dup = np.zeros(len(owners), dtype=bool)
        dup[member[system].sum() :] = True
        order = rng.permutation(len(owners))
        owners, dup = owners[order], dup[order]
        ids = record_ids(system, counters[system] + np.arange(len(owners)))
        counters[system] += len(owners)
        records[system] = Records(system, owners, dup, ids)
    _fill_crm(rng, people, records, reference)
    _fill_cti(rng, people, records)
    _fill_shop(rng, people, records["shop"], reference)
    _fill_loyalty(rng, people, records["loyalty"], reference)
    return records


def _chance(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    return rng.random(n) < p


def _blank(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.where(mask, "", values)


def format_mobile(people: People, rows: np.ndarray, style: np.ndarray) -> np.ndarray:
    prefix = people.mobile_prefix[rows]
    middle = zpad(people.mobile_suffix[rows] // 10_000, 4)
    tail = zpad(people.mobile_suffix[rows] % 10_000, 4)
    options = np.stack(
        [
            cat(prefix, middle, tail),
            cat("+86 ", prefix, " ", middle, " ", tail),
            cat("0086-", prefix, middle, tail),
            cat(prefix, "-", middle, "-", tail),
            cat("+86", prefix, middle, tail),
            cat(prefix, " ", middle, " ", tail),
        ]
    )
    return options[style, np.arange(len(rows))]


def format_landline(people: People, rows: np.ndarray, style: np.ndarray) -> np.ndarray:
    city = people.landline_city[rows]
    local_value = people.landline_local[rows]
    area = AREA_CODES[city]
    local = zpad(local_value, 1)
    head = zpad(local_value // 10_000, 1)
    tail = zpad(local_value % 10_000, 4)
    options = np.stack(
        [
            cat(area, "-", local),
            cat("(", area, ") ", head, " ", tail),
            cat("+86 ", np.strings.slice(area, 1, None), " ", local),
            cat(area, local),
        ]
    )
    out = options[style, np.arange(len(rows))]
    return np.where(local_value >= 0, out, "")


def _styles(rng: np.random.Generator, n: int, weights: list[float]) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=np.asarray(weights) / sum(weights))


def _phone(rng, people: People, rows: np.ndarray, system: str, prefer_landline: np.ndarray) -> np.ndarray:
    """One phone per record: the mobile, or the landline where preferred or no mobile exists."""
    mobile = format_mobile(people, rows, _styles(rng, len(rows), MOBILE_STYLE_WEIGHTS[system]))
    landline = format_landline(people, rows, _styles(rng, len(rows), LANDLINE_STYLE_WEIGHTS[system]))
    use_landline = (prefer_landline | ~people.has_mobile[rows]) & people.has_landline[rows]
    return np.where(use_landline, landline, np.where(people.has_mobile[rows], mobile, ""))


def _placeholders(rng, values: np.ndarray, pool: np.ndarray, p: float = 0.01) -> np.ndarray:
    """Agent-typed placeholders on about `p` of the records."""
    mask = _chance(rng, len(values), p)
    return np.where(mask, pool[rng.integers(0, len(pool), len(values))], values)


def _noisy_email(rng, values: np.ndarray, missing: float) -> np.ndarray:
    n = len(values)
    u = rng.random(n)
    out = np.where(u < 0.04, np.strings.upper(values), values)
    out = np.where((u >= 0.04) & (u < 0.07), np.strings.capitalize(values), out)
    out = np.where((u >= 0.07) & (u < 0.10), cat(" ", values, " "), out)
    out = np.where((u >= 0.10) & (u < 0.12), cat(values, " "), out)
    return np.where(_chance(rng, n, missing) | (values == ""), "", out)


def _name_parts(rng, people: People, rows: np.ndarray, typo_p: float):
    """Surname and given-name indexes with typos: a character swapped for another or dropped."""
    s, g1, g2 = people.surname[rows].copy(), people.given1[rows].copy(), people.given2[rows].copy()
    n = len(rows)
    typo = _chance(rng, n, typo_p)
    drop = typo & (g2 >= 0) & _chance(rng, n, 0.5)
    swap = typo & ~drop
    g2[drop] = -1
    block = np.where(people.male[rows], 0, ref.N_GIVEN_MALE)
    g1[swap] = block[swap] + rng.integers(0, ref.N_GIVEN_MALE, int(swap.sum()))
    return s, g1, g2


def _latin_typo(name: str, rng: np.random.Generator) -> str:
    first, last = name.split(" ", 1)
    if first in LATIN_VARIANTS:
        return f"{LATIN_VARIANTS[first]} {last}"
    i = int(rng.integers(1, len(last) - 1))
    return f"{first} {last[:i]}{last[i + 1]}{last[i]}{last[i + 2 :]}"


def _latin_names(rng, people: People, rows: np.ndarray, typo_p: float) -> np.ndarray:
    names = people.latin_name(rows)
    typo = np.flatnonzero(people.is_latin[rows] & _chance(rng, len(rows), typo_p))
    if len(typo):
        names = names.astype(object)
        names[typo] = [_latin_typo(str(v), rng) for v in names[typo]]
        names = names.astype(str)
    return names


def render_names(rng, people: People, rows: np.ndarray, system: str) -> np.ndarray:
    """How the system spells each record's name (Chinese characters, pinyin variants, Latin)."""
    n = len(rows)
    s, g1, g2 = _name_parts(rng, people, rows, 0.04)
    hanzi = cat(SUR_CN[s], GIV_CN[g1], GIV_CN[g2])
    surname_py, given_py = SUR_PY[s], np.strings.capitalize(cat(GIV_PY[g1], GIV_PY[g2]))
    latin = _latin_names(rng, people, rows, 0.12)
    first = LAT_FIRST[people.latin_first[rows]]
    last = LAT_LAST[people.latin_last[rows]]
    u = rng.random(n)
    if system == "crm":
        chinese, western = hanzi, latin
    elif system == "cti":
        title = np.where(people.male[rows], "先生", "女士")
        chinese = np.where(u < 0.7, hanzi, np.where(u < 0.85, cat(SUR_CN[s], title), ""))
        western = np.where(u < 0.6, latin, np.where(u < 0.85, first, ""))
    elif system == "shop":
        pinyin = np.stack(
            [
                cat(surname_py, " ", given_py),
                cat(np.strings.upper(surname_py), " ", given_py),
                cat(given_py, " ", surname_py),
                np.strings.lower(cat(surname_py, given_py)),
            ]
        )[rng.integers(0, 4, n), np.arange(n)]
        chinese = np.where(u < 0.35, hanzi, np.where(u < 0.87, pinyin, ""))
        western = np.stack(
            [
                latin,
                cat(np.strings.slice(first, 0, 1), ". ", last),
                np.strings.lower(latin),
            ]
        )[rng.integers(0, 3, n), np.arange(n)]
    else:
        upper = np.strings.upper(cat(surname_py, " ", given_py))
        chinese = np.where(u < 0.55, hanzi, np.where(u < 0.85, upper, cat(surname_py, " ", given_py)))
        western = np.strings.upper(latin)
    return np.where(people.is_latin[rows], western, chinese)


def _dates(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype="datetime64[D]")


def _birth(rng, people: People, rows: np.ndarray, missing: float) -> np.ndarray:
    """Birth dates (datetime64[D], NaT = missing), 2% mistyped by a day or a year."""
    birth = _dates(people.birth[rows]).copy()
    n = len(rows)
    shift = np.where(_chance(rng, n, 0.5), 1, 365) * rng.choice([-1, 1], n)
    birth = np.where(_chance(rng, n, 0.02), birth + shift.astype("timedelta64[D]"), birth)
    return np.where(_chance(rng, n, missing), np.datetime64("NaT", "D"), birth)


def _seconds(rng, days: np.ndarray, low_hour: int = 8, high_hour: int = 20) -> np.ndarray:
    seconds = rng.integers(low_hour * 3600, high_hour * 3600, len(days)).astype("timedelta64[s]")
    return days.astype("datetime64[s]") + seconds


def _fill_crm(rng, people: People, records: dict[str, Records], reference: np.datetime64) -> None:
    crm = records["crm"]
    rows, dup, n = crm.person, crm.dup, len(crm)
    city = np.where((people.old_city[rows] >= 0) & ~dup, people.old_city[rows], people.city[rows])
    business = people.is_business[rows]
    email = np.where(
        (people.email_old[rows] != "") & _chance(rng, n, 0.8), people.email_old[rows], people.email[rows]
    )
    has_id = (scrambled(people.pid[rows], 2, 37, 11) < 60) & ~(dup & _chance(rng, n, 0.15))
    loyalty_no = records["loyalty"].primary_id(len(people))[rows]
    created = people.known_since[rows] + np.where(dup, rng.integers(30, 400, n), 0).astype("timedelta64[D]")
    mobile = format_mobile(people, rows, _styles(rng, n, MOBILE_STYLE_WEIGHTS["crm"]))
    crm.columns = {
        "crm_id": crm.ids,
        "full_name": render_names(rng, people, rows, "crm"),
        "gender": _blank(people.gender[rows], _chance(rng, n, 0.08)),
        "birth_date": _birth(rng, people, rows, 0.15),
        "mobile": _placeholders(rng, np.where(people.has_mobile[rows], mobile, ""), ref.PLACEHOLDER_PHONES),
        "landline": format_landline(people, rows, _styles(rng, n, LANDLINE_STYLE_WEIGHTS["crm"])),
        "email": _placeholders(rng, _noisy_email(rng, email, 0.2), ref.PLACEHOLDER_EMAILS),
        "national_id_hash": np.where(has_id, people.national_id_hash[rows], "").astype(str),
        "member_no": _blank(loyalty_no, ~_chance(rng, n, 0.35)),
        "customer_type": np.where(business, "business", "consumer"),
        "company_name": people.company_name[rows],
        "industry": people.industry[rows],
        "employee_count": np.where(business, people.employees[rows], np.nan),
        "annual_revenue_cny": np.where(business, people.revenue[rows], np.nan),
        "province": ref.CITIES["province"].to_numpy().astype(str)[city],
        "city": ref.CITIES["city"].to_numpy().astype(str)[city],
        # People who moved still have their old city and street in the CRM.
        "address": np.where(city == people.city[rows], people.address[rows], draw_addresses(rng, n)),
        "created_at": _seconds(rng, np.minimum(created, reference - np.timedelta64(1, "D"))),
    }


def _fill_cti(rng, people: People, records: dict[str, Records]) -> None:
    cti = records["cti"]
    rows, dup, n = cti.person, cti.dup, len(cti)
    # The primary record is the mobile (or the landline for a quarter of people);
    # a duplicate record is the other phone, or the same phone in another format.
    prefers_landline = scrambled(people.pid[rows], 2, 13, 7) < 25
    prefer = np.where(dup, ~prefers_landline, prefers_landline)
    phone = _placeholders(rng, _phone(rng, people, rows, "cti", prefer), ref.PLACEHOLDER_PHONES)
    crm_ids = records["crm"].primary_id(len(people))[rows]
    linked = (crm_ids != "") & _chance(rng, n, 0.55)
    wrong = linked & _chance(rng, n, 0.01)
    all_crm = records["crm"].ids
    if len(all_crm):
        crm_ids = np.where(wrong, all_crm[rng.integers(0, len(all_crm), n)], crm_ids)
    cti.columns = {
        "cti_id": cti.ids,
        "caller_name": render_names(rng, people, rows, "cti"),
        "phone": phone,
        "crm_id": np.where(linked, crm_ids, ""),
        "city": _blank(ref.CITIES["city"].to_numpy().astype(str)[people.city[rows]], _chance(rng, n, 0.3)),
        # first_call_at is filled from the calls.
    }


def _fill_shop(rng, people: People, shop: Records, reference: np.datetime64) -> None:
    rows, dup, n = shop.person, shop.dup, len(shop)
    seg = people.segment[rows]
    device = ref.DEVICES[pick(rng, ref.DEVICE_WEIGHTS, seg)]
    sessions = np.round(rng.gamma(4.0, ref.SESSIONS_MEAN[seg] / 4.0), 1)
    minutes = np.round(sessions * ref.MINUTES_PER_SESSION[seg] * rng.lognormal(0, 0.3, n), 1)
    registered = people.known_since[rows] - rng.integers(0, 30, n).astype("timedelta64[D]")
    registered = np.where(dup, registered + rng.integers(20, 300, n).astype("timedelta64[D]"), registered)
    mobile = format_mobile(people, rows, _styles(rng, n, MOBILE_STYLE_WEIGHTS["shop"]))
    mobile = np.where(people.has_mobile[rows] & _chance(rng, n, 0.75), mobile, "")
    city = people.city[rows]
    # Shop logins are unique: a second account uses the person's other address.
    email = np.where(dup, people.email_alt[rows], people.email[rows])
    located = _chance(rng, n, 0.8)
    shop.columns = {
        "shop_user_id": shop.ids,
        "display_name": render_names(rng, people, rows, "shop"),
        "email": _placeholders(rng, _noisy_email(rng, email, 0.02), ref.PLACEHOLDER_EMAILS),
        "mobile": _placeholders(rng, mobile, ref.PLACEHOLDER_PHONES),
        "gender": _blank(people.gender[rows], _chance(rng, n, 0.3)),
        "birth_date": _birth(rng, people, rows, 0.5),
        "province": _blank(ref.CITIES["province"].to_numpy().astype(str)[city], ~located),
        "city": _blank(ref.CITIES["city"].to_numpy().astype(str)[city], ~located),
        "registered_at": _seconds(
            rng, np.clip(registered, ref.DATA_START, reference - np.timedelta64(1, "D")), 0, 24
        ),
        "primary_device": _blank(device, _chance(rng, n, 0.05)),
        "app_installed": np.where(
            _chance(rng, n, 0.05), np.nan, (rng.random(n) < ref.APP_P[seg]).astype(float)
        ),
        "sessions_per_month": np.where(_chance(rng, n, 0.05), np.nan, sessions),
        "online_minutes_per_month": np.where(_chance(rng, n, 0.05), np.nan, minutes),
    }


def _fill_loyalty(rng, people: People, loyalty: Records, reference: np.datetime64) -> None:
    rows, dup, n = loyalty.person, loyalty.dup, len(loyalty)
    seg, stage = people.segment[rows], people.stage[rows]
    level = rng.random(n) + np.where(seg == ref.VIP, 1.6, 0.0) + np.where(stage == ref.LOYALTY, 0.6, 0.0)
    tier = np.array(["basic", "silver", "gold", "platinum"])[np.clip((level * 1.5).astype(int), 0, 3)]
    tier = np.where(seg == ref.VIP, np.where(level > 2.2, "platinum", "gold"), tier)
    joined = people.known_since[rows] + rng.integers(0, 60, n).astype("timedelta64[D]")
    joined = np.where(dup, joined + rng.integers(60, 500, n).astype("timedelta64[D]"), joined)
    email = np.where(people.email_old[rows] != "", people.email_old[rows], people.email[rows])
    phone = _phone(rng, people, rows, "loyalty", _chance(rng, n, 0.1))
    loyalty.columns = {
        "member_no": loyalty.ids,
        "member_name": render_names(rng, people, rows, "loyalty"),
        "phone": _placeholders(rng, _blank(phone, _chance(rng, n, 0.1)), ref.PLACEHOLDER_PHONES),
        "email": _placeholders(rng, _noisy_email(rng, email, 0.35), ref.PLACEHOLDER_EMAILS),
        "birth_date": _birth(rng, people, rows, 0.2),
        "joined_on": np.minimum(joined, reference - np.timedelta64(1, "D")),
        "tier": _blank(tier, _chance(rng, n, 0.03)),
    }


def arrow_strings(values: np.ndarray) -> pa.Array:
    """A string column with "" as null."""
    values = np.asarray(values)
    return pa.array(values.astype(object), type=pa.string(), mask=values == "")
