"""Events of the demo world: purchases and refunds, calls, surveys, marketing touches, future purchases.

All events of a chunk are drawn at once: per-person counts are expanded with `np.repeat`, and
every per-event attribute is a vectorized draw conditioned on the owner's segment and stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from helpers.demo import reference as ref
from helpers.demo.identity import SYSTEMS, IdBook, Records
from helpers.demo.people import People, cat, pick, zpad

DAY = np.timedelta64(1, "D")
FESTIVALS = ref.festival_dates()
CRM, CTI, SHOP, LOYALTY = range(len(SYSTEMS))
SYSTEM_NAMES = np.array(SYSTEMS)


@dataclass(frozen=True)
class Coded:
    """A categorical column as integer codes into a vocabulary ("" in the vocabulary = missing)."""

    vocab: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.codes)

    def take(self, order: np.ndarray) -> Coded:
        return Coded(self.vocab, self.codes[order])


def expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner row and 0-based rank within owner for `counts[i]` events of owner i."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - np.repeat(starts, counts)


def event_ids(prefix: str, start: int, count: int, width: int) -> pa.Array:
    """Sequential event ids such as T0000000042, built in Arrow (fast for tens of millions)."""
    numbers = pc.cast(pa.array(np.arange(start, start + count, dtype=np.int64)), pa.string())
    return pc.binary_join_element_wise(prefix, pc.utf8_lpad(numbers, width, "0"), "")


def _clock(rng: np.random.Generator, days: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """Timestamps (datetime64[s]) on `days` at a random second within [hours[:, 0], hours[:, 1])."""
    seconds = rng.uniform(hours[:, 0] * 3600, hours[:, 1] * 3600).astype(np.int64)
    return days.astype("datetime64[s]") + np.minimum(seconds, 86_399).astype("timedelta64[s]")


def _weekday(days: np.ndarray) -> np.ndarray:
    """Monday = 0 ... Sunday = 6."""
    return (days.astype(np.int64) + 3) % 7


def _apply_day_habits(rng, days: np.ndarray, habit: np.ndarray) -> np.ndarray:
    """Business buyers move weekend days to Friday; weekend people mostly buy on weekends."""
    dow = _weekday(days)
    to_friday = (habit == 1) & (dow >= 5)
    days = np.where(to_friday, days - (dow - 4).astype("timedelta64[D]"), days)
    to_weekend = (habit == 2) & (dow < 5) & (rng.random(len(days)) < 0.75)
    back = ((dow + 2) % 7).astype("timedelta64[D]")
    sunday = rng.integers(0, 2, len(days)).astype("timedelta64[D]")
    return np.where(to_weekend, days - back + sunday, days)


def _snap_to_festivals(rng, days: np.ndarray, latest: np.ndarray) -> np.ndarray:
    """Move each day to shortly before the nearest festival, never past `latest`."""
    right = np.clip(np.searchsorted(FESTIVALS, days), 1, len(FESTIVALS) - 1)
    before, after = FESTIVALS[right - 1], FESTIVALS[right]
    lead = rng.integers(0, 10, len(days)).astype("timedelta64[D]")
    nearest = np.where(days - before <= after - days, before, after) - lead
    return np.where(nearest > latest, before - lead, nearest)


def transactions(
    rng, people: People, records: dict[str, Records], book: IdBook, reference: np.datetime64
) -> dict:
    """Purchases (with refunds of some of them) of a chunk, referencing source records."""
    owner, rank = expand(people.n_purchases)
    n = len(owner)
    seg, stage = people.segment[owner], people.stage[owner]
    ipt = people.interpurchase[owner]
    jitter = np.where(rank == 0, 0.0, rng.uniform(-0.3, 0.3, n))
    days = people.last_purchase[owner] - np.round((rank + jitter) * ipt).astype("timedelta64[D]")
    festive = (seg == ref.GIFTER) & (stage != ref.CONVERSION) & (rank > 0)
    days = np.where(festive, _snap_to_festivals(rng, days, people.last_purchase[owner]), days)
    days = _apply_day_habits(rng, days, ref.DAY_HABIT[seg])
    days = np.clip(days, ref.DATA_START, reference - DAY)
    at = _clock(rng, days, ref.HOUR_RANGE[seg])

    channel = pick(rng, ref.CHANNEL_WEIGHTS, seg)
    system, customer = _sales_source(rng, people, records, book, owner, channel)
    channel = np.where((system == SHOP) & (channel != 1) & (channel != 2), 1, channel)
    channel = np.where((system != SHOP) & (channel >= 1) & (channel <= 2), 0, channel)
    amount = np.round(rng.lognormal(np.log(ref.ORDER_MEDIAN[seg]), ref.ORDER_SIGMA[seg]), 2)
    bulk = seg == ref.BUSINESS
    quantity = np.where(
        bulk,
        np.exp(rng.uniform(np.log(ref.QUANTITY_LOW[seg]), np.log(ref.QUANTITY_HIGH[seg]))).astype(np.int64),
        rng.integers(ref.QUANTITY_LOW[seg], ref.QUANTITY_HIGH[seg] + 1),
    )
    category = pick(rng, ref.CATEGORY_WEIGHTS, seg)

    refunded = np.flatnonzero(rng.random(n) < ref.REFUND_RATE[seg])
    refund_at = at[refunded] + (rng.uniform(1, 20, len(refunded)) * 86_400).astype("timedelta64[s]")
    keep = refund_at < reference.astype("datetime64[s]")
    refunded, refund_at = refunded[keep], refund_at[keep]
    partial = np.where(rng.random(len(refunded)) < 0.3, rng.uniform(0.2, 0.9, len(refunded)), 1.0)
    rows = np.concatenate([np.arange(n), refunded])
    return {
        "owner": owner[rows],
        "source_system": Coded(SYSTEM_NAMES, system[rows]),
        "source_customer_id": Coded(book.ids, customer[rows]),
        "txn_at": np.concatenate([at, refund_at]),
        "amount": np.concatenate([amount, np.round(amount[refunded] * partial, 2)]),
        "quantity": quantity[rows],
        "category": Coded(ref.CATEGORIES, category[rows]),
        "channel": Coded(ref.CHANNELS, channel[rows]),
        "is_refund": np.concatenate([np.zeros(n, bool), np.ones(len(refunded), bool)]),
    }


def _sales_source(rng, people: People, records: dict[str, Records], book: IdBook, owner, channel):
    """Which record a purchase is booked on: shop account online, CRM or loyalty card in store.

    Returns the system code and the record's position in `book` per purchase.
    """
    n_people, n = len(people), len(owner)
    position = {}
    for code in (CRM, SHOP, LOYALTY):
        system = SYSTEMS[code]
        primary = records[system].positions(n_people)[owner]
        duplicate = records[system].positions(n_people, duplicate=True)[owner]
        chosen = np.where((duplicate >= 0) & (rng.random(n) < 0.3), duplicate, primary)
        position[code] = np.where(chosen >= 0, chosen + book.offsets[system], -1)
    has = {code: position[code] >= 0 for code in position}
    online = (channel == 1) | (channel == 2)
    card_shown = has[LOYALTY] & ((rng.random(n) < 0.6) | ~has[CRM])
    fallback = np.where(has[CRM], CRM, np.where(has[SHOP], SHOP, LOYALTY))
    system = np.where(online & has[SHOP], SHOP, np.where(card_shown, LOYALTY, fallback))
    chosen = np.select([system == CRM, system == SHOP], [position[CRM], position[SHOP]], position[LOYALTY])
    return system, chosen


def _window(people: People, owner: np.ndarray, reference: np.datetime64) -> tuple[np.ndarray, np.ndarray]:
    """Days each person is in touch: around their purchases, or since first known for non-buyers."""
    buyer = people.stage[owner] >= ref.CONVERSION
    start = np.where(buyer, people.first_purchase[owner] - 30 * DAY, people.known_since[owner])
    end = np.where(buyer, people.last_purchase[owner] + 45 * DAY, reference - DAY)
    cold = people.stage[owner] == ref.CONTACT
    end = np.where(cold, people.known_since[owner] + 30 * DAY, end)
    start = np.maximum(start, ref.DATA_START)
    end = np.clip(end, start + DAY, reference - DAY)
    return start, end


def _uniform_days(rng, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    span = (end - start).astype(np.int64)
    return start + (rng.random(len(start)) * span).astype("timedelta64[D]")


def calls(rng, people: People, cti: Records, reference: np.datetime64) -> tuple[dict, np.ndarray]:
    """Calls per CTI record, and each record's first call time."""
    person = cti.person
    seg, stage = people.segment[person], people.stage[person]
    start, end = _window(people, person, reference)
    years = np.maximum((end - start).astype(np.int64) / 365.0, 0.3)
    rate = ref.CALL_RATE[seg] * years * np.where(cti.dup, 0.3, 1.0)
    rate = np.where(stage == ref.ACQUISITION, 1.5, np.where(stage == ref.CONTACT, 0.0, rate))
    counts = 1 + rng.poisson(rate)
    record, _ = expand(counts)
    n = len(record)
    owner = person[record]
    seg, stage = people.segment[owner], people.stage[owner]
    days = _uniform_days(rng, start[record], end[record])
    # At-risk customers call more, and more angrily, around and after their last purchase.
    risk = stage == ref.AT_RISK
    late_start = people.last_purchase[owner] - np.round(people.interpurchase[owner]).astype("timedelta64[D]")
    late = risk & (rng.random(n) < 0.7)
    days = np.where(
        late, _uniform_days(rng, np.maximum(late_start, ref.DATA_START), np.full(n, reference - DAY)), days
    )
    weekend = _weekday(days) >= 5
    days = np.where(weekend & (rng.random(n) < 0.6), days - 2 * DAY, days)
    at = _clock(rng, np.maximum(days, ref.DATA_START), np.tile([8, 21], (n, 1)))

    reason = pick(rng, ref.CALL_REASON_WEIGHTS, seg)
    reason = np.where(late & (rng.random(n) < 0.55), ref.COMPLAINT_REASON, reason)
    reason = np.where(stage == ref.ACQUISITION, np.where(rng.random(n) < 0.6, 0, 3), reason)
    reason = np.where(stage == ref.CONTACT, 3, reason)
    outbound = np.where(reason == 3, rng.random(n) < 0.85, rng.random(n) < 0.05) | (stage == ref.CONTACT)
    duration = (20 + rng.lognormal(np.log(ref.CALL_DURATION_MEDIAN[reason]), 0.5)).astype(np.int64)
    resolved_p = ref.RESOLVED_P[seg] * np.where(reason == ref.COMPLAINT_REASON, 0.8, 1.0)
    resolved = rng.random(n) < resolved_p
    mood = ref.SATISFACTION_MEAN[seg] - np.where(resolved, 0.0, 1.0) - np.where(late, 1.2, 0.0)
    satisfaction = np.clip(np.round(rng.normal(mood, 0.7)), 1, 5)
    first = np.minimum.reduceat(at, np.cumsum(counts) - counts) if n else np.array([], "datetime64[s]")
    columns = {
        "owner": owner,
        "cti_id": Coded(cti.ids, record),
        "call_at": at,
        "direction": Coded(np.array(["inbound", "outbound"]), outbound.astype(np.int64)),
        "reason": Coded(ref.CALL_REASONS, reason),
        "duration_sec": duration,
        "resolved": np.where(rng.random(n) < 0.03, np.nan, resolved.astype(float)),
        "satisfaction": np.where(rng.random(n) < 0.4, np.nan, satisfaction),
    }
    return columns, first


def _any_record(rng, book: IdBook, owner_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each event of each owner, one of the owner's records in any system: (owner, position)."""
    by_person = np.argsort(book.person, kind="stable")
    per_person = np.bincount(book.person, minlength=len(owner_counts))
    starts = np.cumsum(per_person) - per_person
    owner, _ = expand(np.where(per_person > 0, owner_counts, 0))
    chosen = starts[owner] + (rng.random(len(owner)) * per_person[owner]).astype(np.int64)
    return owner, by_person[chosen]


def _pool_draw(rng, pools: list[list[str]], seg: np.ndarray, missing: float) -> Coded:
    """One item per row from the row's segment pool, missing on about `missing` of the rows."""
    flat = np.array([item for pool in pools for item in pool] + [""])
    sizes = np.array([len(pool) for pool in pools])
    offsets = np.cumsum(sizes) - sizes
    codes = offsets[seg] + (rng.random(len(seg)) * sizes[seg]).astype(np.int64)
    return Coded(flat, np.where(rng.random(len(seg)) < missing, len(flat) - 1, codes))


def surveys(rng, people: People, book: IdBook, reference: np.datetime64) -> dict:
    """Survey answers: satisfaction follows segment and stage; interests and needs follow segment."""
    start, end = _window(people, np.arange(len(people)), reference)
    years = np.maximum((end - start).astype(np.int64) / 365.0, 0.3)
    rate = np.where(people.stage >= ref.CONVERSION, ref.SURVEY_RATE[people.segment] * years, 0.3)
    rate = np.where(people.stage == ref.CONTACT, 0.0, rate)
    owner, position = _any_record(rng, book, rng.poisson(rate))
    n = len(owner)
    seg, stage = people.segment[owner], people.stage[owner]
    days = _uniform_days(rng, start[owner], end[owner])
    late = (stage == ref.AT_RISK) & (days > people.last_purchase[owner] - 30 * DAY)
    mood = ref.CSAT_MEAN[seg] + np.select(
        [stage == ref.LOYALTY, late, stage == ref.CHURNED], [0.4, -1.3, -0.5], 0.0
    )
    csat = np.clip(np.round(rng.normal(mood, 0.6)), 1, 5)
    nps = np.clip(np.round(csat * 2.2 - 1.5 + rng.normal(0, 1.2, n)), 0, 10)
    nps = np.where(stage == ref.LOYALTY, rng.integers(9, 11, n), nps)
    # The second interest comes from any segment's pool for a third of the answers.
    other = np.where(rng.random(n) < 0.33, rng.integers(0, len(ref.SEGMENTS), n), seg)
    first, second = _pool_draw(rng, ref.INTERESTS, seg, 0.0), _pool_draw(rng, ref.INTERESTS, other, 0.0)
    first, second = first.vocab[first.codes], second.vocab[second.codes]
    two = (rng.random(n) < 0.6) & (first != second)
    interests = np.where(two, cat(first, ";", second), first)
    return {
        "owner": owner,
        "source_system": Coded(SYSTEM_NAMES, book.system[position]),
        "source_customer_id": Coded(book.ids, position),
        "answered_at": _clock(rng, days, np.tile([9, 22], (n, 1))),
        "csat": np.where(rng.random(n) < 0.1, np.nan, csat),
        "nps": np.where(rng.random(n) < 0.15, np.nan, nps),
        "interests": np.where(rng.random(n) < 0.2, "", interests),
        "lifestyle": _pool_draw(rng, ref.LIFESTYLES, seg, 0.25),
        "stated_need": _pool_draw(rng, ref.NEEDS, seg, 0.2),
    }


def marketing(rng, people: People, book: IdBook, campaigns: pd.DataFrame, reference: np.datetime64) -> dict:
    """Campaign touches: segments are targeted by, and answer, the campaigns that suit them."""
    years = np.maximum((reference - people.known_since).astype(np.int64) / 365.0, 0.1)
    owner, position = _any_record(rng, book, rng.poisson(ref.MARKETING_RATE[people.segment] * years))
    n = len(owner)
    seg = people.segment[owner]
    starts = campaigns["start"].to_numpy()
    kinds = campaigns["kind_code"].to_numpy()
    low = np.minimum(np.searchsorted(starts, people.known_since[owner]), len(starts) - 1)
    candidates = [low + (rng.random(n) * (len(starts) - low)).astype(np.int64) for _ in range(3)]
    chosen = candidates[0]
    for candidate in reversed(candidates):
        chosen = np.where(kinds[candidate] == seg, candidate, chosen)
    days = np.minimum(starts[chosen] + rng.integers(0, 15, n).astype("timedelta64[D]"), reference - DAY)
    channel = pick(rng, ref.MARKETING_CHANNEL_WEIGHTS, seg)
    fit = np.where(kinds[chosen] == seg, 1.0, 0.35)
    dormant = np.isin(people.stage[owner], [ref.CHURNED, ref.CONTACT])
    responded = rng.random(n) < ref.RESPONSE_P[seg, channel] * fit * np.where(dormant, 0.4, 1.0)
    converted = responded & (rng.random(n) < ref.CONVERSION_P[seg])
    return {
        "owner": owner,
        "source_system": Coded(SYSTEM_NAMES, book.system[position]),
        "source_customer_id": Coded(book.ids, position),
        "sent_at": _clock(rng, days, np.tile([9, 20], (n, 1))),
        "campaign": Coded(campaigns["campaign"].to_numpy().astype(str), chosen),
        "channel": Coded(ref.MARKETING_CHANNELS, channel),
        "responded": responded,
        "converted": converted,
    }


def future_transactions(rng, people: People, reference: np.datetime64, days: int = 90) -> pd.DataFrame:
    """Purchases in the `days` after the reference date: the truth churn predictions are scored on."""
    n = len(people)
    buys = rng.random(n) < ref.FUTURE_PURCHASE_P[people.stage]
    expected = days / people.interpurchase * 0.8
    counts = np.where(buys, 1 + rng.poisson(np.minimum(expected, 30)), 0)
    owner, _ = expand(counts)
    offsets = (rng.uniform(0, days, len(owner)) * 86_400).astype("timedelta64[s]")
    seg = people.segment[owner]
    return pd.DataFrame(
        {
            "person_id": person_ids(people.pid[owner]),
            "txn_at": reference.astype("datetime64[s]") + offsets,
            "amount": np.round(rng.lognormal(np.log(ref.ORDER_MEDIAN[seg]), ref.ORDER_SIGMA[seg]), 2),
        }
    )


def person_ids(pid: np.ndarray) -> np.ndarray:
    return cat("P", zpad(pid, 8))
