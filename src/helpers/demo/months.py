"""The demo world a month later: the next month's exports of the same call center, with truth.

`next_month` reads a default-style demo world (raw files and truth, e.g. `generate_demo_world`'s
or an earlier `next_month`'s) and writes the next month's: every record it had (same source ids)
plus a month of changes, the way monthly full exports grow:

- `new_person`: new people with records and events (the demo generator's own chunk, its ids
  continuing the world's counters);
- `new_phone`: a person's CRM record gets a new mobile number;
- `moved`: a person's CRM (and shop) record moves to another city and address;
- `new_system_record`: a known person opens a shop account (true name, mobile and e-mail);
- `merge_bridge`: a person whose records share no phone or e-mail gets a loyalty card holding the
  phone of one record and the e-mail of another (new evidence that merges two customers);
- `number_recycled`: a caller record's number now belongs to a new person (a new caller name and
  city; truth moves the record to that person; the previous owner is logged `number_lost`): the
  record leaves its customer (a split).

Events of existing people are left as they were. Truth files are updated (source records,
persons, future transactions, planted defects) and `month_changes.parquet` lists every change
(`month, change, person_id, source_system, source_record_id`).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from python_calamine import CalamineWorkbook

from helpers.core.tables import TABLES
from helpers.demo import reference as ref
from helpers.demo.files import RAW_FILES
from helpers.demo.identity import SYSTEMS, record_ids
from helpers.demo.people import draw_addresses, draw_people, scrambled, zpad
from helpers.demo.world import SYSTEM_TABLE, TRUTH_SCHEMAS, _World

CHANGES_FILE = "month_changes.parquet"
CHANGE_COLUMNS = ["month", "change", "person_id", "source_system", "source_record_id"]
EVENT_TABLES = ("transactions", "calls", "surveys", "marketing_contacts")
EVENT_PREFIX = {"transactions": "T", "calls": "CL", "surveys": "SV", "marketing_contacts": "MK"}


@dataclass(frozen=True)
class MonthPlan:
    """How much changes in a month: shares of the existing people, and counts."""

    new_people: float = 0.05  # at least MIN_NEW_PEOPLE
    new_phones: float = 0.02
    moves: float = 0.02
    new_system_records: float = 0.02
    merges: int = 6
    splits: int = 3


MIN_NEW_PEOPLE = 300  # the generator's chunk needs enough events to plant its defects


def next_month(
    raw_dir: Path,
    truth_dir: Path,
    out_raw_dir: Path,
    out_truth_dir: Path,
    reference_date: str,
    seed: int = 7,
    month: int = 1,
    plan: MonthPlan | None = None,
) -> pd.DataFrame:
    """Write the world of `raw_dir`/`truth_dir` one month later (new reference date
    `reference_date`) into `out_raw_dir`/`out_truth_dir`; returns the month's changes."""
    plan = plan or MonthPlan()
    raw_dir, truth_dir, out_raw_dir, out_truth_dir = map(
        Path, (raw_dir, truth_dir, out_raw_dir, out_truth_dir)
    )
    if out_raw_dir.resolve() == raw_dir.resolve() or out_truth_dir.resolve() == truth_dir.resolve():
        raise ValueError("next_month writes into new folders, not over the month it reads")
    rng = np.random.default_rng([seed, 1000 + month])
    reference = np.datetime64(reference_date, "D")
    tables = {name: _read_identity(raw_dir, name) for name in SYSTEM_TABLE.values()}
    sources = pd.read_parquet(truth_dir / "source_records.parquet")
    persons = pd.read_parquet(truth_dir / "persons.parquet")
    month_ = _Month(rng, month, reference, tables, sources, persons)
    taken: set[str] = set()
    month_.new_phones(plan.new_phones, taken)
    month_.moves(plan.moves, taken)
    month_.new_system_records(plan.new_system_records, taken)
    month_.merge_bridges(plan.merges, taken)
    month_.recycled_numbers(plan.splits, taken)
    size = max(MIN_NEW_PEOPLE, round(plan.new_people * len(persons)))
    raw, truth = month_.new_people(raw_dir, seed, size)

    out_raw_dir.mkdir(parents=True, exist_ok=True)
    out_truth_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in month_.tables.items():
        _write_identity(out_raw_dir, name, frame, raw[name])
    for name in EVENT_TABLES:
        _append_events(raw_dir / RAW_FILES[name].file, out_raw_dir / RAW_FILES[name].file, raw[name], name)
    changes = pd.concat(month_.changes, ignore_index=True)
    new_sources = truth["source_records"].to_pandas()
    changes = pd.concat(
        [
            changes,
            new_sources.assign(month=month, change="new_person"),
        ],
        ignore_index=True,
    )[CHANGE_COLUMNS]
    _write_truth(truth_dir, out_truth_dir, month_, truth)
    previous = truth_dir / CHANGES_FILE
    history = pd.read_parquet(previous) if previous.is_file() else None
    pd.concat([history, changes] if history is not None else [changes], ignore_index=True).to_parquet(
        out_truth_dir / CHANGES_FILE, index=False
    )
    return changes


class _Month:
    """The month's edits on the identity tables (text frames) and on the truth."""

    def __init__(
        self,
        rng: np.random.Generator,
        month: int,
        reference: np.datetime64,
        tables: dict[str, pd.DataFrame],
        sources: pd.DataFrame,
        persons: pd.DataFrame,
    ) -> None:
        self.rng, self.month, self.reference = rng, month, reference
        self.tables, self.sources, self.persons = tables, sources, persons.set_index("person_id", drop=False)
        self.changes: list[pd.DataFrame] = [pd.DataFrame(columns=CHANGE_COLUMNS)]
        self.counters = {system: len(tables[SYSTEM_TABLE[system]]) for system in SYSTEMS}
        self.owner = sources.set_index(["source_system", "source_record_id"])["person_id"]
        self.extra_persons: list[pd.DataFrame] = []

    # helpers -----------------------------------------------------------------------------------
    def _log(
        self, change: str, person: pd.Series | np.ndarray, system: str, ids: pd.Series | np.ndarray
    ) -> None:
        self.changes.append(
            pd.DataFrame(
                {
                    "month": self.month,
                    "change": change,
                    "person_id": np.asarray(person, dtype=object),
                    "source_system": system,
                    "source_record_id": np.asarray(ids, dtype=object),
                }
            )
        )

    def _pick(self, candidates: np.ndarray, share_or_count: float, taken: set[str]) -> np.ndarray:
        free = np.array(sorted({c for c in candidates if isinstance(c, str)} - taken), dtype=object)
        count = share_or_count if share_or_count >= 1 else round(share_or_count * len(self.persons))
        chosen = free[self.rng.permutation(len(free))[: int(min(count, len(free)))]]
        taken.update(chosen)
        return np.sort(chosen)

    def _records_of(self, system: str, people: np.ndarray) -> pd.DataFrame:
        """First record of `system` of each person in `people` (id and person)."""
        mine = self.sources[
            (self.sources["source_system"] == system) & self.sources["person_id"].isin(people)
        ]
        return mine.drop_duplicates("person_id").reset_index(drop=True)

    def _new_ids(self, system: str, count: int) -> np.ndarray:
        ids = record_ids(system, self.counters[system] + np.arange(count))
        self.counters[system] += count
        existing = set(self.tables[SYSTEM_TABLE[system]][TABLES[SYSTEM_TABLE[system]].key])
        if existing & set(ids):
            raise ValueError(f"{system} record ids do not continue the world's counter")
        return ids

    def _day(self, count: int, fmt: str) -> np.ndarray:
        """Times within the month before the reference date, as text in `fmt`."""
        seconds = self.rng.integers(0, 30 * 86_400, count)
        stamps = self.reference.astype("datetime64[s]") + np.timedelta64(86_399, "s") - seconds
        return pd.to_datetime(stamps).strftime(fmt).to_numpy()

    # changes -------------------------------------------------------------------------------------
    def new_phones(self, share: float, taken: set[str]) -> None:
        crm = self.tables["crm_customers"]
        has_mobile = crm["mobile"].notna()
        owners = self.owner.reindex(pd.MultiIndex.from_arrays([["crm"] * len(crm), crm["crm_id"]])).to_numpy()
        people = self._pick(owners[has_mobile.to_numpy()], share, taken)
        records = self._records_of("crm", people)
        pid = records["person_id"].str[1:].astype(np.int64).to_numpy()
        digits = np.strings.add(f"16{self.month % 10}", zpad(scrambled(pid, 8, 48271, 3_141_592), 8))
        rows = crm["crm_id"].isin(records["source_record_id"])
        crm.loc[rows, "mobile"] = (
            pd.Series(digits, index=records["source_record_id"]).reindex(crm.loc[rows, "crm_id"]).to_numpy()
        )
        self.persons.loc[records["person_id"], "mobile"] = digits
        self._log("new_phone", records["person_id"], "crm", records["source_record_id"])

    def moves(self, share: float, taken: set[str]) -> None:
        crm = self.tables["crm_customers"]
        owners = self.owner.reindex(pd.MultiIndex.from_arrays([["crm"] * len(crm), crm["crm_id"]])).to_numpy()
        people = self._pick(owners[crm["city"].notna().to_numpy()], share, taken)
        cities = ref.CITIES
        target = self.rng.integers(0, len(cities), len(people))
        for person, city in zip(people, target, strict=True):
            old = self.persons.loc[person, "city"]
            city = int(city) if cities["city"].iloc[int(city)] != old else (int(city) + 1) % len(cities)
            province, name = str(cities["province"].iloc[city]), str(cities["city"].iloc[city])
            address = str(draw_addresses(self.rng, 1)[0])
            mine = self.sources[self.sources["person_id"] == person]
            for system, table, column in (
                ("crm", "crm_customers", "crm_id"),
                ("shop", "shop_accounts", "shop_user_id"),
            ):
                ids = mine.loc[mine["source_system"] == system, "source_record_id"]
                rows = self.tables[table][column].isin(ids)
                self.tables[table].loc[rows, ["province", "city"]] = [province, name]
                if system == "crm":
                    self.tables[table].loc[rows, "address"] = address
                if rows.any():
                    self._log(
                        "moved", [person] * int(rows.sum()), system, self.tables[table].loc[rows, column]
                    )
            self.persons.loc[person, ["moved_from_city", "province", "city"]] = [old, province, name]
            self.persons.loc[person, "city_tier"] = int(cities["tier"].iloc[city])

    def new_system_records(self, share: float, taken: set[str]) -> None:
        with_shop = set(self.sources.loc[self.sources["source_system"] == "shop", "person_id"])
        candidates = self.persons.index[(self.persons["mobile"] != "") & ~self.persons.index.isin(with_shop)]
        people = self._pick(candidates.to_numpy(), share, taken)
        if not len(people):
            return
        who = self.persons.loc[people]
        ids = self._new_ids("shop", len(people))
        n = len(people)
        rows = pd.DataFrame(
            {
                "shop_user_id": ids,
                "display_name": who["full_name"].to_numpy(),
                "email": who["email"].where(who["email"] != "", None).to_numpy(),
                "mobile": who["mobile"].to_numpy(),
                "gender": who["gender"].to_numpy(),
                "birth_date": pd.to_datetime(who["birth_date"]).dt.strftime("%Y-%m-%d").to_numpy(),
                "province": who["province"].to_numpy(),
                "city": who["city"].to_numpy(),
                "registered_at": self._day(n, "%Y-%m-%d %H:%M:%S"),
                "primary_device": self.rng.choice(["ios", "android", "pc", "mac"], n),
                "app_installed": np.where(self.rng.random(n) < 0.6, "true", "false"),
                "sessions_per_month": np.round(self.rng.gamma(2.0, 6.0, n), 1).astype(str),
                "online_minutes_per_month": np.round(self.rng.gamma(2.0, 90.0, n), 1).astype(str),
            }
        )
        self._add("shop", rows, who.index.to_numpy(), "new_system_record")

    def _add(self, system: str, rows: pd.DataFrame, people: np.ndarray, change: str) -> None:
        table = SYSTEM_TABLE[system]
        key = TABLES[table].key
        self.tables[table] = pd.concat(
            [self.tables[table], rows.reindex(columns=self.tables[table].columns)], ignore_index=True
        )
        added = pd.DataFrame(
            {"source_system": system, "source_record_id": rows[key].to_numpy(), "person_id": people}
        )
        self.sources = pd.concat([self.sources, added], ignore_index=True)
        self._log(change, people, system, rows[key])

    def _identifiers(self) -> pd.DataFrame:
        """`person_id, record, kind, value, raw`: every phone (digits) and e-mail of every record."""
        parts = []
        for system in SYSTEMS:
            table = SYSTEM_TABLE[system]
            frame = self.tables[table]
            key = TABLES[table].key
            for column, kind in (
                ("mobile", "phone"),
                ("phone", "phone"),
                ("landline", "phone"),
                ("email", "email"),
            ):
                if column not in frame:
                    continue
                raw = frame[column].astype("string")
                value = raw.str.strip().str.lower()
                if kind == "phone":
                    value = value.str.replace(r"\D", "", regex=True).str.replace(
                        r"^(0086|86)", "", regex=True
                    )
                parts.append(
                    pd.DataFrame(
                        {
                            "source_system": system,
                            "source_record_id": frame[key].to_numpy(),
                            "column": column,
                            "kind": kind,
                            "value": value.to_numpy(),
                            "raw": raw.to_numpy(),
                        }
                    ).dropna(subset=["value"])
                )
        found = pd.concat(parts, ignore_index=True)
        found = found[found["value"].str.len() > 3]
        found = found.merge(self.sources, on=["source_system", "source_record_id"])
        found["record"] = found["source_system"] + ":" + found["source_record_id"]
        return found

    def merge_bridges(self, count: int, taken: set[str]) -> None:
        """Loyalty cards holding one record's phone and another's e-mail, for people whose records
        share no phone or e-mail."""
        found = self._identifiers()
        records = found.groupby("person_id")["record"].nunique()
        shared = found.groupby(["person_id", "value"])["record"].nunique()
        shared = set(shared[shared > 1].index.get_level_values("person_id"))
        eligible = found[
            found["person_id"].isin(records.index[records > 1]) & ~found["person_id"].isin(shared)
        ]
        phones = eligible[(eligible["kind"] == "phone") & eligible["value"].str.match(r"^1\d{10}$")]
        emails = eligible[eligible["kind"] == "email"]
        pairs = phones.merge(emails, on="person_id", suffixes=("_phone", "_email"))
        pairs = pairs[pairs["record_phone"] != pairs["record_email"]]
        pairs = pairs.sort_values(["person_id", "record_phone", "record_email"]).drop_duplicates("person_id")
        people = pairs["person_id"].to_numpy()
        chosen = self._pick(np.array(people, dtype=object), count, taken)
        if not len(chosen):
            return
        pairs = pairs.set_index("person_id").loc[chosen]
        who = self.persons.loc[chosen]
        rows = pd.DataFrame(
            {
                "member_no": self._new_ids("loyalty", len(chosen)),
                "member_name": who["full_name"].to_numpy(),
                "phone": pairs["raw_phone"].to_numpy(),
                "email": pairs["raw_email"].to_numpy(),
                "birth_date": pd.to_datetime(who["birth_date"]).to_numpy(),
                "joined_on": pd.to_datetime(self._day(len(chosen), "%Y-%m-%d")).to_numpy(),
                "tier": "basic",
            }
        )
        self._add("loyalty", rows, chosen, "merge_bridge")

    def recycled_numbers(self, count: int, taken: set[str]) -> None:
        """Caller records whose number (shared with another record of the same person) now belongs
        to a new person: new caller name and city, truth moved to a new person."""
        found = self._identifiers()
        cti = found[(found["source_system"] == "cti") & (found["kind"] == "phone")]
        others = found[(found["source_system"] != "cti") & (found["kind"] == "phone")]
        linked = cti.merge(others[["person_id", "value"]], on=["person_id", "value"]).drop_duplicates(
            "record"
        )
        candidates = linked.drop_duplicates("person_id")
        chosen = self._pick(candidates["person_id"].to_numpy(), count, taken)
        if not len(chosen):
            return
        records = candidates.set_index("person_id").loc[chosen]
        first_pid = int(self.persons.index.str[1:].astype(np.int64).max()) + 1
        newcomers = draw_people(self.rng, first_pid, max(len(chosen), 1), self.reference)
        rows = np.arange(len(chosen))
        names = newcomers.chinese_name(rows)
        cities = ref.CITIES["city"].to_numpy().astype(str)[newcomers.city[rows]]
        cti_table = self.tables["cti_contacts"]
        for record_id, name, city in zip(records["source_record_id"], names, cities, strict=True):
            cti_table.loc[cti_table["cti_id"] == record_id, ["caller_name", "city"]] = [str(name), str(city)]
        new_ids = np.array([f"P{pid:08d}" for pid in newcomers.pid[rows]], dtype=object)
        template = self.persons.loc[chosen].reset_index(drop=True)
        template["person_id"] = new_ids
        template["full_name"] = names
        template["gender"] = newcomers.gender[rows]
        template["birth_date"] = pd.to_datetime(newcomers.birth[rows]).astype(template["birth_date"].dtype)
        template["city"] = cities
        template[
            ["email", "previous_email", "moved_from_city", "household_id", "company_id", "company_name"]
        ] = ""
        self.extra_persons.append(template)
        moved = self.sources["source_system"].eq("cti") & self.sources["source_record_id"].isin(
            records["source_record_id"]
        )
        self.sources.loc[moved, "person_id"] = self.sources.loc[moved, "source_record_id"].map(
            dict(zip(records["source_record_id"], new_ids, strict=True))
        )
        self._log("number_recycled", new_ids, "cti", records["source_record_id"].to_numpy())
        self._log("number_lost", chosen, "cti", records["source_record_id"].to_numpy())

    def new_people(
        self, raw_dir: Path, seed: int, size: int
    ) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
        """A chunk of new people drawn by the demo generator, ids after every existing one."""
        first = int(self.persons.index.str[1:].astype(np.int64).max()) + 1
        first += sum(len(extra) for extra in self.extra_persons)
        world = _World(self.reference, ref.campaigns(self.reference))
        world.record_counters = dict(self.counters)
        world.event_counters = {name: _next_event_number(raw_dir, name) for name in EVENT_TABLES}
        raw, truth = world.chunk(
            np.random.default_rng([seed, 2000 + self.month]), 50 + self.month, first, size
        )
        self.counters = dict(world.record_counters)
        return raw, truth


def _next_event_number(raw_dir: Path, name: str) -> int:
    key = TABLES[name].key
    spec = RAW_FILES[name]
    column = pcsv.read_csv(
        raw_dir / spec.file,
        read_options=pcsv.ReadOptions(encoding=spec.encoding),
        convert_options=pcsv.ConvertOptions(include_columns=[key], column_types={key: pa.string()}),
    ).column(key)
    numbers = pc.cast(pc.utf8_slice_codeunits(column, len(EVENT_PREFIX[name])), pa.int64())
    return int(pc.max(numbers).as_py()) + 1 if len(numbers) else 0


def _read_identity(raw_dir: Path, name: str) -> pd.DataFrame:
    """An identity table as text (dates of the Excel sheet as timestamps), one row per record."""
    spec, columns = RAW_FILES[name], TABLES[name].column_names
    path = raw_dir / spec.file
    if spec.sheet:
        rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_name(spec.sheet).to_python()
        frame = pd.DataFrame(rows[1:], columns=rows[0]).astype(object)
        frame = frame.where(frame != "", None)
        for column in TABLES[name].columns:
            if column.type in ("date", "datetime"):
                frame[column.name] = pd.to_datetime(frame[column.name])
            else:
                frame[column.name] = frame[column.name].map(_cell_text).astype(object)
        return frame[columns]
    table = pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(encoding=spec.encoding),
        convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string())),
    )
    return table.to_pandas()[columns].astype(object).where(lambda f: f.notna(), None)


def _cell_text(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_text(table: pa.Table) -> pd.DataFrame:
    """A generated chunk's table as the text its CSV file would hold."""
    arrays = {}
    for field_ in table.schema:
        column = table.column(field_.name)
        arrays[field_.name] = column if pa.types.is_string(field_.type) else pc.cast(column, pa.string())
    return pa.table(arrays).to_pandas().astype(object).where(lambda f: f.notna(), None)


def _write_identity(out_raw_dir: Path, name: str, frame: pd.DataFrame, chunk: pa.Table) -> None:
    spec, columns = RAW_FILES[name], TABLES[name].column_names
    if spec.sheet:
        from helpers.demo.xlsx import XlsxStreamWriter

        added = chunk.to_pandas()
        whole = pd.concat([frame, added[columns]], ignore_index=True)
        arrays = {}
        for column in TABLES[name].columns:
            values = whole[column.name]
            if column.type in ("date", "datetime"):
                arrays[column.name] = pa.array(
                    pd.to_datetime(values).to_numpy().astype("datetime64[s]"),
                    pa.timestamp("s"),
                    from_pandas=True,
                )
            else:
                arrays[column.name] = pa.array(values.map(_cell_text).tolist(), pa.string())
        writer = XlsxStreamWriter(out_raw_dir / spec.file, spec.sheet, columns)
        writer.write(pa.table(arrays))
        writer.close()
        return
    whole = pd.concat([frame, _as_text(chunk)[columns]], ignore_index=True)
    whole = whole.astype(object).where(whole.notna(), None)
    table = pa.table(
        {c: pa.array([None if v is None else str(v) for v in whole[c]], pa.string()) for c in columns}
    )
    _write_csv(table, out_raw_dir / spec.file, spec.encoding, header=True, append=False)


def _write_csv(table: pa.Table, path: Path, encoding: str, header: bool, append: bool) -> None:
    buffer = pa.BufferOutputStream()
    pcsv.write_csv(table, buffer, pcsv.WriteOptions(include_header=header))
    data = buffer.getvalue().to_pybytes()
    if encoding.lower().replace("-", "") not in ("utf8", "ascii"):
        data = data.decode("utf-8").encode(encoding)
    with path.open("ab" if append else "wb") as handle:
        handle.write(data)


def _append_events(source: Path, target: Path, chunk: pa.Table, name: str) -> None:
    shutil.copyfile(source, target)
    _write_csv(chunk, target, RAW_FILES[name].encoding, header=False, append=True)


def _write_truth(truth_dir: Path, out_truth_dir: Path, month: _Month, truth: dict[str, pa.Table]) -> None:
    persons = pd.concat([month.persons.reset_index(drop=True), *month.extra_persons], ignore_index=True)
    frames = {
        "source_records": month.sources,
        "persons": persons,
        "future_transactions": pd.read_parquet(truth_dir / "future_transactions.parquet"),
        "planted_defects": pd.read_parquet(truth_dir / "planted_defects.parquet"),
    }
    for name, schema in TRUTH_SCHEMAS.items():
        old = pa.Table.from_pandas(frames[name], preserve_index=False).select(schema.names).cast(schema)
        pq.write_table(pa.concat_tables([old, truth[name].cast(schema)]), out_truth_dir / f"{name}.parquet")


def demo_months(
    raw_dir: Path,
    truth_dir: Path,
    out_dir: Path,
    reference_dates: list[str],
    seed: int = 7,
    plan: MonthPlan | None = None,
) -> list[tuple[Path, Path]]:
    """Months 1..n after the world in `raw_dir`/`truth_dir`, one per reference date, into
    `out_dir/month_<i>/raw` and `out_dir/month_<i>/truth`; returns those folder pairs."""
    folders = []
    for month, reference in enumerate(reference_dates, start=1):
        raw, truth = Path(out_dir) / f"month_{month}" / "raw", Path(out_dir) / f"month_{month}" / "truth"
        next_month(raw_dir, truth_dir, raw, truth, reference, seed=seed, month=month, plan=plan)
        folders.append((raw, truth))
        raw_dir, truth_dir = raw, truth
    return folders


def stable_id_report(
    before: pd.DataFrame, after: pd.DataFrame, history: pd.DataFrame, truth_dir: Path, month: int
) -> dict[str, float | int]:
    """How month `month`'s run kept the ids of the run before it (evaluation against planted truth).

    `before`/`after` are the two runs' crosswalks, `history` the later run's `id_history`,
    `truth_dir` the later month's truth. Figures: `unchanged_people` (people of the earlier month
    no change touched) and the share of them whose id moved (`unchanged_moved_share`, goal 0);
    `joined_known` / `new_records_of_known_people` (a new record of a known person took an id
    the person's earlier records carry); `merges_planted`, `merges_needed` (the person's records
    were in several customers), `merges_done`, `merges_retired_to_survivor` (the survivor is one
    of the earlier ids and `id_history` retires the others to it); `splits_planted`, `splits_done`
    (the record left for an id no earlier run used).
    """
    changes = pd.read_parquet(truth_dir / CHANGES_FILE)
    changes = changes[changes["month"] == month]
    sources = pd.read_parquet(truth_dir / "source_records.parquet")
    key = ["source_system", "source_record_id"]
    old = before.set_index(key)["customer_id"]
    new = after.set_index(key)["customer_id"]
    earlier = sources.merge(old.rename("old_id").reset_index(), on=key)
    earlier = earlier.assign(new_id=new.reindex(pd.MultiIndex.from_frame(earlier[key])).to_numpy())
    touched = set(changes["person_id"])
    unchanged = earlier[~earlier["person_id"].isin(touched)]
    moved = unchanged.groupby("person_id").apply(lambda g: bool((g["old_id"] != g["new_id"]).any()))
    report: dict[str, float | int] = {
        "unchanged_people": len(moved),
        "unchanged_moved": int(moved.sum()),
        "unchanged_moved_share": round(float(moved.mean()), 6) if len(moved) else 0.0,
    }
    # A new record of a known person: one of the ids the person's earlier records now carry.
    known = changes[changes["change"].isin(["new_system_record", "merge_bridge"])]
    held = set(zip(earlier["person_id"], earlier["new_id"], strict=True))
    ids = new.reindex(pd.MultiIndex.from_frame(known[key])).to_numpy()
    joined = np.array([(p, i) in held for p, i in zip(known["person_id"], ids, strict=True)], dtype=bool)
    report.update(new_records_of_known_people=len(known), joined_known=int(joined.sum()))
    merged = history[history["reason"] == "merged"]
    bridges = changes[changes["change"] == "merge_bridge"]
    needed = done = oldest = 0
    for person in bridges["person_id"]:
        ids = set(earlier.loc[earlier["person_id"] == person, "old_id"])
        if len(ids) < 2:
            continue
        needed += 1
        now = set(earlier.loc[earlier["person_id"] == person, "new_id"])
        if len(now) == 1:
            done += 1
            survivor = next(iter(now))
            retired = ids - {survivor}
            moved_to = merged.set_index("old_id")["new_id"].reindex(list(retired))
            oldest += int(survivor in ids and bool((moved_to == survivor).all()))
    report.update(
        merges_planted=len(bridges), merges_needed=needed, merges_done=done, merges_retired_to_survivor=oldest
    )
    recycled = changes[changes["change"] == "number_recycled"]
    left = new.reindex(pd.MultiIndex.from_frame(recycled[key])).to_numpy()
    previous = old.reindex(pd.MultiIndex.from_frame(recycled[key])).to_numpy()
    earlier_ids = set(old) | set(history["old_id"].dropna())
    split = np.array([value not in earlier_ids for value in left], dtype=bool) & (left != previous)
    report.update(splits_planted=len(recycled), splits_done=int(split.sum()))
    return report
