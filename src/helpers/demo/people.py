"""True people of the demo world: demographics, contact details, households, companies, timelines.

Everything is drawn for one chunk of people at a time with numpy; `pid` is the global person
index, so contact details derived from it (mobiles, e-mails) are unique across chunks.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from helpers.demo import reference as ref

SUR_CN = np.array([cn for cn, _ in ref.SURNAMES])
SUR_PY = np.array([py.capitalize() for _, py in ref.SURNAMES])
# A trailing "" lets index -1 mean "no second given-name character".
GIV_CN = np.array([cn for cn, _ in ref.GIVEN] + [""])
GIV_PY = np.array([py for _, py in ref.GIVEN] + [""])
LAT_FIRST = np.array(ref.LATIN_FIRST_MALE + ref.LATIN_FIRST_FEMALE)
LAT_LAST = np.array(ref.LATIN_LAST)
MOBILE_PREFIXES = np.array(
    [
        "130",
        "131",
        "132",
        "135",
        "136",
        "137",
        "138",
        "139",
        "150",
        "151",
        "152",
        "158",
        "159",
        "177",
        "180",
        "181",
        "186",
        "187",
        "188",
        "189",
        "199",
    ]
)
AREA_CODES = ref.CITIES["area_code"].to_numpy().astype(str)
LOCAL_DIGITS = np.where(ref.CITIES["tier"].to_numpy() == 4, 7, 8)
SECONDS_PER_DAY = 86_400


def cat(*parts: np.ndarray | str) -> np.ndarray:
    """Element-wise string concatenation of arrays and scalars."""
    result = np.asarray(parts[0])
    for part in parts[1:]:
        result = np.strings.add(result, part)
    return result


def zpad(values: np.ndarray, width: int) -> np.ndarray:
    """Integers as zero-padded strings."""
    digits = np.asarray(values, dtype=np.int64).astype(str)
    return np.strings.zfill(digits, width) if digits.size else digits.astype(f"<U{width}")


def scrambled(index: np.ndarray, width: int, multiplier: int, offset: int) -> np.ndarray:
    """A bijection of [0, 10**width) so consecutive indexes give unrelated-looking numbers."""
    return (np.asarray(index, dtype=np.int64) * multiplier + offset) % (10**width)


def pick(rng: np.random.Generator, weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """One categorical draw per row from the weight row `weights[rows]` (rows: group codes)."""
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    draws = rng.random(len(rows))
    chosen = np.empty(len(rows), dtype=np.int64)
    for group, bounds in enumerate(cumulative):
        members = rows == group
        chosen[members] = np.searchsorted(bounds, draws[members])
    return np.minimum(chosen, weights.shape[1] - 1)


@dataclass
class People:
    """One chunk of true people; every array has one entry per person."""

    pid: np.ndarray
    segment: np.ndarray
    stage: np.ndarray
    is_business: np.ndarray
    is_latin: np.ndarray
    male: np.ndarray
    birth: np.ndarray
    surname: np.ndarray
    given1: np.ndarray
    given2: np.ndarray
    latin_first: np.ndarray
    latin_last: np.ndarray
    city: np.ndarray
    old_city: np.ndarray
    address: np.ndarray
    has_mobile: np.ndarray
    mobile_prefix: np.ndarray
    mobile_suffix: np.ndarray
    landline_city: np.ndarray
    landline_local: np.ndarray
    household: np.ndarray
    company: np.ndarray
    company_name: np.ndarray
    industry: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    email: np.ndarray
    email_old: np.ndarray
    email_alt: np.ndarray
    national_id_hash: np.ndarray
    known_since: np.ndarray
    first_purchase: np.ndarray
    last_purchase: np.ndarray
    n_purchases: np.ndarray
    interpurchase: np.ndarray

    def __len__(self) -> int:
        return len(self.pid)

    @property
    def has_landline(self) -> np.ndarray:
        return self.landline_local >= 0

    @property
    def gender(self) -> np.ndarray:
        return np.where(self.male, "M", "F")

    def chinese_name(self, rows: np.ndarray) -> np.ndarray:
        return cat(SUR_CN[self.surname[rows]], GIV_CN[self.given1[rows]], GIV_CN[self.given2[rows]])

    def latin_name(self, rows: np.ndarray) -> np.ndarray:
        return cat(LAT_FIRST[self.latin_first[rows]], " ", LAT_LAST[self.latin_last[rows]])

    def true_name(self, rows: np.ndarray) -> np.ndarray:
        return np.where(self.is_latin[rows], self.latin_name(rows), self.chinese_name(rows))

    def mobile_digits(self, rows: np.ndarray) -> np.ndarray:
        return cat(self.mobile_prefix[rows], zpad(self.mobile_suffix[rows], 8))


def draw_people(rng: np.random.Generator, first_pid: int, n: int, reference: np.datetime64) -> People:
    """Draw `n` true people with global indexes first_pid .. first_pid + n - 1."""
    pid = np.arange(first_pid, first_pid + n, dtype=np.int64)
    segment = rng.choice(len(ref.SEGMENTS), size=n, p=ref.SEGMENT_SHARES)
    stage = rng.choice(len(ref.STAGES), size=n, p=ref.STAGE_SHARES)
    is_business = segment == ref.BUSINESS
    is_latin = rng.random(n) < ref.LATIN_SHARE[segment]
    male = rng.random(n) < ref.MALE_SHARE[segment]

    ages = ref.AGE_RANGE[segment]
    age_days = (rng.uniform(ages[:, 0], ages[:, 1] + 1) * 365.25).astype(np.int64)
    birth = reference - age_days.astype("timedelta64[D]")

    surname, given1, given2 = _chinese_names(rng, male)
    n_first = len(ref.LATIN_FIRST_MALE)
    latin_first = rng.integers(0, n_first, n) + np.where(male, 0, n_first)
    latin_last = rng.integers(0, len(ref.LATIN_LAST), n)

    city = np.empty(n, dtype=np.int64)
    city_p = ref.city_probabilities()
    for code in range(len(ref.SEGMENTS)):
        rows = np.flatnonzero(segment == code)
        city[rows] = rng.choice(len(ref.CITIES), size=len(rows), p=city_p[code] / city_p[code].sum())
    moved = rng.random(n) < 0.10
    old_city = np.where(moved, (city + rng.integers(1, len(ref.CITIES), n)) % len(ref.CITIES), -1)
    address = draw_addresses(rng, n)

    has_mobile = rng.random(n) > 0.04
    mobile_prefix = MOBILE_PREFIXES[rng.integers(0, len(MOBILE_PREFIXES), n)]
    mobile_suffix = scrambled(pid, 8, 48271, 3_141_592)
    landline_city = city.copy()
    landline_local = np.where((rng.random(n) < 0.15) | ~has_mobile, _local_numbers(rng, city), -1)

    household = np.full(n, -1, dtype=np.int64)
    _households(rng, is_business, city, address, household, landline_city, landline_local)
    # People without a mobile keep at least their own landline.
    missing = ~has_mobile & (landline_local < 0)
    landline_local[missing] = _local_numbers(rng, city[missing])

    company = np.full(n, -1, dtype=np.int64)
    company_name = np.full(n, "", dtype=object)
    industry = np.full(n, "", dtype=object)
    employees = np.full(n, -1, dtype=np.int64)
    revenue = np.full(n, np.nan)
    _companies(
        rng,
        first_pid,
        is_business,
        city,
        address,
        company,
        company_name,
        industry,
        employees,
        revenue,
        landline_city,
        landline_local,
    )

    email, email_old, email_alt = _emails(
        rng, pid, is_latin, is_business, surname, given1, given2, latin_first, latin_last, company
    )
    national_id_hash = np.array(
        [hashlib.sha256(f"ID{p:012d}".encode()).hexdigest() for p in pid.tolist()], dtype=object
    )
    known_since, first_purchase, last_purchase, n_purchases, interpurchase = _timelines(
        rng, segment, stage, reference
    )
    return People(
        pid=pid,
        segment=segment,
        stage=stage,
        is_business=is_business,
        is_latin=is_latin,
        male=male,
        birth=birth,
        surname=surname,
        given1=given1,
        given2=given2,
        latin_first=latin_first,
        latin_last=latin_last,
        city=city,
        old_city=old_city,
        address=address,
        has_mobile=has_mobile,
        mobile_prefix=mobile_prefix,
        mobile_suffix=mobile_suffix,
        landline_city=landline_city,
        landline_local=landline_local,
        household=household,
        company=company,
        company_name=company_name.astype(str),
        industry=industry.astype(str),
        employees=employees,
        revenue=revenue,
        email=email,
        email_old=email_old,
        email_alt=email_alt,
        national_id_hash=national_id_hash,
        known_since=known_since,
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        n_purchases=n_purchases,
        interpurchase=interpurchase,
    )


def draw_addresses(rng: np.random.Generator, n: int) -> np.ndarray:
    """Street addresses such as 人民路12号3栋1502室."""
    return cat(
        ref.ROADS[rng.integers(0, len(ref.ROADS), n)],
        rng.integers(1, 400, n).astype(str),
        "号",
        rng.integers(1, 30, n).astype(str),
        "栋",
        rng.integers(101, 2600, n).astype(str),
        "室",
    )


def _chinese_names(rng: np.random.Generator, male: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(male)
    surname = rng.choice(len(ref.SURNAMES), size=n, p=ref.SURNAME_WEIGHTS / ref.SURNAME_WEIGHTS.sum())
    block = np.where(male, 0, ref.N_GIVEN_MALE)
    given1 = block + rng.integers(0, ref.N_GIVEN_MALE, n)
    given2 = np.where(rng.random(n) < 0.35, -1, block + rng.integers(0, ref.N_GIVEN_MALE, n))
    # A share of people carry one of the very common full names.
    namesake = np.flatnonzero(rng.random(n) < 0.05)
    chosen = rng.integers(0, len(ref.NAMESAKES), len(namesake))
    pool = np.array([(s, g) for s, g, _ in ref.NAMESAKES])
    pool_male = np.array([gender == "M" for _, _, gender in ref.NAMESAKES])
    fits = pool_male[chosen] == male[namesake]
    namesake, chosen = namesake[fits], chosen[fits]
    surname[namesake] = pool[chosen, 0]
    given1[namesake] = pool[chosen, 1]
    given2[namesake] = -1
    return surname, given1, given2


def _local_numbers(rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
    digits = LOCAL_DIGITS[city]
    return rng.integers(2, 9, len(city)) * 10 ** (digits - 1) + rng.integers(0, 10 ** (digits - 1))


def _groups(rng: np.random.Generator, members: np.ndarray, low: int, high: int) -> list[np.ndarray]:
    """Split shuffled `members` into consecutive groups of random size in [low, high]."""
    members = rng.permutation(members)
    sizes = rng.integers(low, high + 1, len(members) // low + 1)
    bounds = np.cumsum(sizes)
    bounds = bounds[bounds < len(members)]
    return np.split(members, bounds)


def _households(rng, is_business, city, address, household, landline_city, landline_local) -> None:
    """Families of 2-4 people sharing one landline, city and address."""
    candidates = np.flatnonzero(~is_business & (rng.random(len(city)) < 0.18))
    groups = [g for g in _groups(rng, candidates, 2, 4) if len(g) >= 2]
    if not groups:
        return
    sizes = np.array([len(g) for g in groups])
    members = np.concatenate(groups)
    heads = np.repeat(np.array([g[0] for g in groups]), sizes)
    household[members] = np.repeat(np.arange(len(groups)), sizes)
    city[members] = city[heads]
    address[members] = address[heads]
    shared = _local_numbers(rng, city[np.array([g[0] for g in groups])])
    landline_city[members] = city[heads]
    landline_local[members] = np.repeat(shared, sizes)


def _companies(
    rng,
    first_pid,
    is_business,
    city,
    address,
    company,
    company_name,
    industry,
    employees,
    revenue,
    landline_city,
    landline_local,
) -> None:
    """Business customers grouped into companies; all contacts share the company switchboard."""
    groups = _groups(rng, np.flatnonzero(is_business), 1, 5)
    groups = [g for g in groups if len(g)]
    if not groups:
        return
    k = len(groups)
    sizes = np.array([len(g) for g in groups])
    members = np.concatenate(groups)
    heads = np.array([g[0] for g in groups])
    comp_city = city[heads]
    comp_industry = ref.INDUSTRIES[rng.integers(0, len(ref.INDUSTRIES), k)]
    suffix = np.array([ref.COMPANY_SUFFIX[i] for i in comp_industry])
    words = ref.COMPANY_WORDS
    names = cat(
        ref.CITIES["city"].to_numpy().astype(str)[comp_city],
        words[rng.integers(0, len(words), k)],
        words[rng.integers(0, len(words), k)],
        suffix,
        "有限公司",
    )
    comp_employees = np.maximum(3, rng.lognormal(np.log(60), 1.2, k)).astype(np.int64)
    comp_revenue = np.round(comp_employees * rng.lognormal(np.log(600_000), 0.6, k), -3)
    company[members] = first_pid + np.repeat(heads, sizes)
    company_name[members] = np.repeat(names, sizes)
    industry[members] = np.repeat(comp_industry, sizes)
    employees[members] = np.repeat(comp_employees, sizes)
    revenue[members] = np.repeat(comp_revenue, sizes)
    city[members] = np.repeat(comp_city, sizes)
    address[members] = np.repeat(address[heads], sizes)
    landline_city[members] = np.repeat(comp_city, sizes)
    landline_local[members] = np.repeat(_local_numbers(rng, comp_city), sizes)


def _emails(rng, pid, is_latin, is_business, surname, given1, given2, latin_first, latin_last, company):
    """Current e-mail and an alternative one (another unique address of the same person).

    Returns (current, previous, alternative): `previous` is the alternative for the ~15% who
    changed their address and "" otherwise. Current and alternative addresses use disjoint
    patterns (qq numbers 1xxxxxxx vs 2xxxxxxx, name+number vs name_number), so no two
    people ever share one.
    """
    n = len(pid)
    pinyin = np.strings.lower(cat(SUR_PY[surname], GIV_PY[given1], GIV_PY[given2]))
    latin = np.strings.lower(cat(LAT_FIRST[latin_first], ".", LAT_LAST[latin_last]))
    local = np.where(is_latin, latin, pinyin)
    number = scrambled(pid, 7, 7919, 1_234_567)
    domains = ref.EMAIL_DOMAINS

    def personal(style: np.ndarray, domain: np.ndarray, alternative: bool) -> np.ndarray:
        qq = cat(zpad((20_000_000 if alternative else 10_000_000) + number, 8), "@qq.com")
        named = cat(local, "_" if alternative else "", number.astype(str), "@", domain)
        return np.where(style == 0, qq, named)

    current = personal(rng.integers(0, 3, n), domains[rng.integers(1, len(domains), n)], False)
    work = cat(
        np.strings.lower(GIV_PY[given1]),
        ".",
        np.strings.lower(SUR_PY[surname]),
        (pid % 100).astype(str),
        "@corp",
        zpad(company % 1_000_000, 6),
        ".cn",
    )
    current = np.where(is_business & ~is_latin, work, current)
    changed = rng.random(n) < 0.15
    alternative = personal(rng.integers(0, 3, n), domains[rng.integers(1, len(domains), n)], True)
    return current, np.where(changed, alternative, ""), alternative


def _timelines(rng: np.random.Generator, segment: np.ndarray, stage: np.ndarray, reference: np.datetime64):
    """First/last purchase day, purchase count and rhythm per person, by lifecycle stage."""
    n = len(segment)
    horizon = float((reference - ref.DATA_START).astype(np.int64))
    ipt = ref.INTERPURCHASE_DAYS[segment] * rng.lognormal(0.0, 0.2, n)
    ipt = np.where(stage == ref.LOYALTY, ipt * 0.8, ipt)
    u = rng.random(n)
    end_ago = np.zeros(n)
    tenure = np.zeros(n)
    count = np.zeros(n, dtype=np.int64)

    conv = stage == ref.CONVERSION
    conv_n = 1 + rng.binomial(2, 0.35, n)
    conv_step = rng.uniform(7, 20, n)
    end_ago[conv] = rng.uniform(0, 8, n)[conv]
    tenure[conv] = ((conv_n - 1) * conv_step)[conv]
    ipt = np.where(conv & (conv_n > 1), conv_step, ipt)

    active = (stage == ref.RETENTION) | (stage == ref.LOYALTY)
    end_ago[active] = (u * ipt * 0.9)[active]
    tenure_ret = rng.uniform(90, 730, n)
    tenure_loy = rng.uniform(760, horizon - 5, n)
    tenure[stage == ref.RETENTION] = tenure_ret[stage == ref.RETENTION]
    tenure[stage == ref.LOYALTY] = tenure_loy[stage == ref.LOYALTY]

    risk = stage == ref.AT_RISK
    end_ago[risk] = np.minimum(rng.uniform(1.6, 3.0, n) * ipt, 250)[risk]
    tenure[risk] = np.maximum(rng.uniform(180, 900, n), 3 * ipt)[risk]

    churned = stage == ref.CHURNED
    end_ago[churned] = rng.uniform(270, 730, n)[churned]
    tenure[churned] = rng.uniform(30, 540, n)[churned]

    buyers = stage >= ref.CONVERSION
    tenure = np.minimum(tenure, horizon - end_ago - 1)
    count = np.where(buyers, np.floor(tenure / ipt).astype(np.int64) + 1, 0)
    count = np.where(conv, conv_n, np.minimum(count, 300))
    count = np.where(risk, np.maximum(count, 3), count)
    last = reference - np.round(end_ago).astype("timedelta64[D]")
    first = last - np.round((count - 1) * ipt).astype("timedelta64[D]")
    first = np.maximum(first, ref.DATA_START)

    lead = rng.uniform(0, 60, n).astype("timedelta64[D]")
    known = np.maximum(first - lead, ref.DATA_START)
    cold = stage == ref.CONTACT
    warm = stage == ref.ACQUISITION
    known[cold] = ref.DATA_START + (u[cold] * (horizon - 30)).astype("timedelta64[D]")
    known[warm] = reference - rng.uniform(10, 365, n)[warm].astype("timedelta64[D]")
    nat = np.datetime64("NaT", "D")
    first = np.where(buyers, first, nat)
    last = np.where(buyers, last, nat)
    return known, first, last, count, ipt
