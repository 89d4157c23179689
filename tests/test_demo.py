"""The demo world generator: determinism, the raw-file contract, truth consistency, planted structure."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from helpers.core.paths import PROJECT_ROOT
from helpers.core.tables import SOURCE_SYSTEMS, TABLES
from helpers.demo import events as demo_events
from helpers.demo import export as demo_export
from helpers.demo import files as demo_files
from helpers.demo import world as demo
from helpers.demo import xlsx as demo_xlsx
from helpers.demo.world import RAW_FILES, TRUTH_SCHEMAS, format_stamps, generate_demo_world

N_PEOPLE = 2000
REFERENCE = pd.Timestamp("2026-06-30")


def _generate(base: Path, seed: int = 7) -> tuple[Path, Path, dict[str, int]]:
    raw, truth = base / "raw", base / "truth"
    counts = generate_demo_world(raw, truth, n_customers=N_PEOPLE, seed=seed, progress=False)
    return raw, truth, counts


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    return _generate(tmp_path_factory.mktemp("demo_world"))


@pytest.fixture(scope="module")
def raw_tables(world) -> dict[str, pd.DataFrame]:
    """Every raw table read as text, the way its file is declared."""
    raw, _, _ = world
    tables = {}
    for name, spec in RAW_FILES.items():
        path = raw / spec.file
        if spec.sheet:
            tables[name] = pd.read_excel(path, sheet_name=spec.sheet, dtype=str, engine="calamine")
        else:
            tables[name] = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=spec.encoding)
    return tables


@pytest.fixture(scope="module")
def truth(world) -> dict[str, pd.DataFrame]:
    _, truth_dir, _ = world
    return {name: pd.read_parquet(truth_dir / f"{name}.parquet") for name in TRUTH_SCHEMAS}


@pytest.fixture(scope="module")
def owners(truth) -> pd.DataFrame:
    """source_system, source_customer_id -> person_id, segment, stage."""
    persons = truth["persons"][["person_id", "segment", "stage"]]
    records = truth["source_records"].rename(columns={"source_record_id": "source_customer_id"})
    return records.merge(persons, on="person_id")


@pytest.fixture(scope="module")
def purchases(raw_tables, owners, truth) -> pd.DataFrame:
    """Clean purchases (no planted defects, no refunds) with their true owner."""
    defects = truth["planted_defects"]
    bad = set(defects.loc[defects.table == "transactions", "key"])
    frame = raw_tables["transactions"]
    frame = frame[~frame.txn_id.isin(bad) & (frame.is_refund == "false")].copy()
    frame["amount"] = frame.amount.astype(float)
    frame["quantity"] = frame.quantity.astype(int)
    frame["txn_at"] = pd.to_datetime(frame.txn_at, format=RAW_FILES["transactions"].datetime_format)
    return frame.merge(owners, on=["source_system", "source_customer_id"], validate="many_to_one")


@pytest.fixture(scope="module")
def calls(raw_tables, owners, truth) -> pd.DataFrame:
    defects = truth["planted_defects"]
    bad = set(defects.loc[defects.table == "calls", "key"])
    frame = raw_tables["calls"]
    frame = frame[~frame.call_id.isin(bad)]
    cti = owners[owners.source_system == "cti"].rename(columns={"source_customer_id": "cti_id"})
    return frame.merge(cti, on="cti_id", validate="many_to_one")


def test_same_seed_gives_identical_files_and_another_seed_does_not(world, tmp_path: Path) -> None:
    raw, truth, counts = world
    again_raw, again_truth, again_counts = _generate(tmp_path / "again")
    assert again_counts == counts
    for spec in RAW_FILES.values():
        assert (again_raw / spec.file).read_bytes() == (raw / spec.file).read_bytes(), spec.file
    for name in TRUTH_SCHEMAS:
        assert pd.read_parquet(again_truth / f"{name}.parquet").equals(
            pd.read_parquet(truth / f"{name}.parquet")
        )
    other_raw, _, _ = _generate(tmp_path / "other", seed=8)
    assert (other_raw / "transactions.csv").read_bytes() != (raw / "transactions.csv").read_bytes()


def test_counts_report_every_file_and_sizes_are_realistic(world, raw_tables, truth) -> None:
    raw, _, counts = world
    for name, spec in RAW_FILES.items():
        assert counts[spec.file] == len(raw_tables[name]) > 0
        assert (raw / spec.file).is_file()
    assert counts["truth/persons.parquet"] == N_PEOPLE
    assert sorted(p.name for p in raw.iterdir()) == sorted(spec.file for spec in RAW_FILES.values())
    assert not list(raw.parent.glob(".*"))
    identity_records = sum(counts[RAW_FILES[t].file] for t in SOURCE_SYSTEMS.values())
    assert 1.5 * N_PEOPLE < identity_records < 3 * N_PEOPLE
    assert 8 * N_PEOPLE < counts["transactions.csv"] < 30 * N_PEOPLE
    assert 2 * N_PEOPLE < counts["calls.csv"] < 10 * N_PEOPLE


def test_files_follow_the_canonical_schema_and_declared_formats(world, raw_tables) -> None:
    raw, _, _ = world
    for name, table in TABLES.items():
        assert list(raw_tables[name].columns) == table.column_names, name
        spec = RAW_FILES[name]
        for column in table.columns:
            if column.type not in ("date", "datetime") or spec.sheet:
                continue
            fmt = spec.date_format if column.type == "date" else spec.datetime_format
            values = raw_tables[name][column.name]
            values = values[values != ""]
            parsed = pd.to_datetime(values, format=fmt, errors="coerce")
            assert parsed.notna().mean() > 0.98, (name, column.name)
            if table.kind == "identity" and column.name != "birth_date":
                assert (parsed.dropna() < REFERENCE).all(), (name, column.name)
    # The CTI file is GBK, not UTF-8, and carries Chinese text.
    cti_bytes = (raw / "cti_contacts.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        cti_bytes.decode("utf-8")
    assert "先生" in cti_bytes.decode("gbk") or "女士" in cti_bytes.decode("gbk")
    # The Excel workbook has the declared sheet with real date cells.
    loyalty = pd.read_excel(raw / "loyalty_members.xlsx", sheet_name="members", engine="openpyxl")
    assert pd.api.types.is_datetime64_any_dtype(loyalty["joined_on"])
    assert loyalty["member_no"].notna().all()
    assert raw_tables["calls"]["call_at"].str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d").mean() > 0.98


def test_raw_file_specs_match_the_demo_config() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "config" / "demo.yml").read_text(encoding="utf-8"))
    for name, spec in RAW_FILES.items():
        declared = config["data"]["tables"][name]
        assert declared["file"] == spec.file
        assert declared.get("encoding", "utf-8") == spec.encoding
        assert declared.get("datetime_format", demo_files.ISO_DATETIME) == spec.datetime_format
        assert declared.get("date_format", demo_files.ISO_DATE) == spec.date_format
        assert declared.get("sheet") == spec.sheet
        assert declared["format"] == ("excel" if spec.sheet else "csv")


def test_impossible_birth_dates_are_planted_and_only_there(raw_tables, truth) -> None:
    defects = truth["planted_defects"]
    for name in ("crm_customers", "shop_accounts"):
        frame = raw_tables[name]
        birth = pd.to_datetime(frame.birth_date.replace("", None), format="%Y-%m-%d")
        age = (REFERENCE - birth).dt.days / 365.25
        impossible = frame.loc[(age > 110) | (age < 0), TABLES[name].key]
        planted = defects.loc[(defects.table == name) & (defects.defect == "impossible_birth_date"), "key"]
        assert len(planted) > 0 and set(impossible) == set(planted), name
        assert age[(age <= 110) & (age >= 0)].between(17, 67).all()


def test_impossible_birth_dates_are_too_old_or_in_the_future() -> None:
    reference = np.datetime64("2026-06-30", "D")
    columns = {"birth_date": np.full(20_000, np.datetime64("1990-01-01", "D"))}
    ids = np.arange(20_000).astype(str)
    [(table, keys, kind)] = demo._impossible_birth_dates(
        np.random.default_rng(1), "t", columns, ids, reference
    )
    changed = columns["birth_date"] != np.datetime64("1990-01-01", "D")
    assert table == "t" and kind == "impossible_birth_date"
    assert set(keys) == set(ids[changed]) and 10 < len(keys) < 100
    age = (reference - columns["birth_date"][changed]).astype(int) / 365.25
    assert ((age > 110) | (age < 0)).all() and (age > 110).any() and (age < 0).any()
    assert (columns["birth_date"][changed] > np.datetime64("1900-01-01", "D")).all()  # valid Excel dates


def test_data_readme_documents_every_table_and_column() -> None:
    readme = (PROJECT_ROOT / "data" / "README.md").read_text(encoding="utf-8")
    sections = re.split(r"\n### ", readme)
    for name, table in TABLES.items():
        [section] = [s for s in sections if s.startswith(f"`{name}`")]
        for column in table.columns:
            required = "yes" if column.required else "no"
            assert f"| `{column.name}` | {column.type} | {required} |" in section, (name, column.name)


def test_every_identity_record_is_in_the_truth_exactly_once(raw_tables, truth) -> None:
    records = truth["source_records"]
    assert not records.duplicated(["source_system", "source_record_id"]).any()
    for system, table in SOURCE_SYSTEMS.items():
        keys = raw_tables[table][TABLES[table].key]
        assert keys.is_unique
        assert set(keys) == set(records.loc[records.source_system == system, "source_record_id"])
    assert set(records.person_id) <= set(truth["persons"].person_id)
    assert records.groupby("person_id").size().max() <= 5


def test_event_references_exist_except_planted_orphans(raw_tables, truth) -> None:
    defects = truth["planted_defects"]
    records = truth["source_records"]
    known = set(zip(records.source_system, records.source_record_id, strict=True))
    for table in ("transactions", "surveys", "marketing_contacts"):
        frame = raw_tables[table]
        exists = pd.Series(
            [(s, c) in known for s, c in zip(frame.source_system, frame.source_customer_id, strict=True)]
        )
        orphans = set(defects.loc[(defects.table == table) & (defects.defect == "orphan"), "key"])
        assert set(frame.loc[~exists.to_numpy(), TABLES[table].key]) == orphans, table
    cti = set(records.loc[records.source_system == "cti", "source_record_id"])
    calls = raw_tables["calls"]
    orphan_calls = set(defects.loc[(defects.table == "calls") & (defects.defect == "orphan"), "key"])
    assert orphan_calls and set(calls.loc[~calls.cti_id.isin(cti), "call_id"]) == orphan_calls


def test_row_level_defects_are_planted_and_visible(raw_tables, truth) -> None:
    defects = truth["planted_defects"]
    kinds = set(zip(defects.table, defects.defect, strict=True))
    for expected in [
        ("transactions", "unparseable_date"),
        ("transactions", "negative_quantity"),
        ("transactions", "negative_amount"),
        ("transactions", "future_date"),
        ("transactions", "exact_duplicate"),
        ("calls", "exact_duplicate"),
        ("crm_customers", "impossible_birth_date"),
    ]:
        assert expected in kinds, expected
    txn = raw_tables["transactions"]
    negative = set(txn.loc[txn.quantity.astype(int) < 0, "txn_id"])
    assert negative == set(
        defects.loc[defects.defect.eq("negative_quantity") & defects.table.eq("transactions"), "key"]
    )
    bad_amount = txn.loc[(txn.amount.astype(float) < 0) & (txn.is_refund == "false"), "txn_id"]
    assert set(bad_amount) == set(defects.loc[defects.defect == "negative_amount", "key"])
    assert (
        txn.duplicated().sum()
        == (defects.table.eq("transactions") & defects.defect.eq("exact_duplicate")).sum()
    )
    stamps = pd.to_datetime(txn.txn_at, format=RAW_FILES["transactions"].datetime_format, errors="coerce")
    assert (stamps > REFERENCE + pd.Timedelta(days=1)).sum() > 0
    assert (
        stamps.isna().sum()
        == (defects.table.eq("transactions") & defects.defect.eq("unparseable_date")).sum()
    )
    rate = len(defects[defects.table == "transactions"]) / len(txn)
    assert 0.005 < rate < 0.02  # six kinds at ~0.1-0.3% each


def test_planted_segments_behave_differently(purchases, calls, raw_tables, owners) -> None:
    order_value = purchases.groupby("segment").amount.mean()
    assert order_value["vip_loyal"] > 3 * order_value["young_digital"]
    assert purchases.groupby("segment").quantity.mean().idxmax() == "business_bulk"
    app_share = purchases.assign(app=purchases.channel.eq("app")).groupby("segment").app.mean()
    assert app_share.idxmax() == "young_digital"
    complaint_share = calls.assign(c=calls.reason.eq("complaint")).groupby("segment").c.mean()
    assert complaint_share.idxmax() == "complaint_prone_price_seekers"
    months = purchases.txn_at.dt.strftime("%m-%d")
    festive = (
        months.between("02-01", "02-14") | months.between("11-01", "12-24") | months.between("05-10", "05-20")
    )
    festive_share = purchases.assign(f=festive).groupby("segment").f.mean()
    assert festive_share.idxmax() == "occasional_gifters" and festive_share["occasional_gifters"] > 0.6
    weekday = purchases.txn_at.dt.dayofweek < 5
    assert weekday[purchases.segment == "business_bulk"].mean() > 0.95
    shop = raw_tables["shop_accounts"].merge(
        owners[owners.source_system == "shop"], left_on="shop_user_id", right_on="source_customer_id"
    )
    sessions = pd.to_numeric(shop.sessions_per_month, errors="coerce").groupby(shop.segment).mean()
    assert sessions.idxmax() == "young_digital"


def test_contact_stage_people_get_at_most_one_outbound_call(calls) -> None:
    contact = calls[calls.stage == "contact"]
    assert len(contact) > 0
    assert contact.groupby("person_id").size().max() == 1
    assert (contact.direction == "outbound").all()
    acquisition = calls[calls.stage == "acquisition"]
    assert set(acquisition.reason) <= {"inquiry", "sales"}


def test_at_risk_customers_complain_more_and_rate_lower_lately(calls) -> None:
    stamps = pd.to_datetime(calls.call_at, format=RAW_FILES["calls"].datetime_format)
    recent = calls[stamps > REFERENCE - pd.Timedelta(days=120)]
    complaints = recent.assign(c=recent.reason.eq("complaint")).groupby("stage").c.mean()
    assert complaints["at_risk"] > complaints["retention"] + 0.15
    earlier = calls[(stamps <= REFERENCE - pd.Timedelta(days=120)) & calls.stage.eq("at_risk")]
    satisfaction = pd.to_numeric(recent[recent.stage == "at_risk"].satisfaction, errors="coerce")
    assert satisfaction.mean() < pd.to_numeric(earlier.satisfaction, errors="coerce").mean()


def test_planted_stages_shape_the_purchase_timeline(purchases, truth) -> None:
    last = purchases.groupby("stage").txn_at.max()
    per_person = purchases.groupby(["person_id", "stage"]).txn_at.agg(["min", "max"]).reset_index()
    days_ago = (REFERENCE - per_person["max"]).dt.days
    first_ago = (REFERENCE - per_person["min"]).dt.days
    assert (first_ago[per_person.stage == "conversion"] <= 60).all()
    churned = days_ago[per_person.stage == "churned"]
    assert churned.min() >= 240 and churned.max() <= 760
    assert (
        days_ago[per_person.stage == "retention"].median() < days_ago[per_person.stage == "at_risk"].median()
    )
    assert {"contact", "acquisition"}.isdisjoint(set(purchases.stage))
    assert last["loyalty"] <= REFERENCE
    persons = truth["persons"]
    future_buyers = set(truth["future_transactions"].person_id)
    buy_rate = persons.assign(b=persons.person_id.isin(future_buyers)).groupby("stage").b.mean()
    assert buy_rate["loyalty"] > buy_rate["at_risk"] > buy_rate["churned"]
    assert (truth["future_transactions"].txn_at > REFERENCE).all()


def test_hard_identity_cases_are_present(raw_tables, truth, owners) -> None:
    persons = truth["persons"]
    namesakes = persons.groupby("full_name").person_id.nunique()
    assert namesakes.max() >= 5
    crm = raw_tables["crm_customers"].merge(
        owners[owners.source_system == "crm"], left_on="crm_id", right_on="source_customer_id"
    )
    digits = crm.landline.str.replace(r"\D", "", regex=True).str.replace(r"^86", "0", regex=True)
    sharing = crm[digits != ""].groupby(digits[digits != ""]).person_id.nunique()
    assert (sharing >= 2).sum() >= 10
    phones = pd.concat([crm.mobile, raw_tables["cti_contacts"].phone])
    assert phones.isin(["13800000000", "00000000000", "13800138000"]).sum() >= 5
    assert raw_tables["shop_accounts"].email.isin(["test@test.com", "none@none.com", "noemail@qq.com"]).any()
    assert (
        truth["source_records"].groupby(["person_id", "source_system"]).size() > 1
    ).sum() >= 0.02 * N_PEOPLE
    mobile_formats = crm.mobile.str.replace(r"\d", "9", regex=True).value_counts()
    assert {"99999999999", "+99 999 9999 9999", "9999-99999999999", "999-9999-9999"} <= set(
        mobile_formats.index
    )
    hashes = crm[crm.national_id_hash != ""]
    assert 0.4 < len(hashes) / len(crm) < 0.75
    assert hashes.groupby("national_id_hash").person_id.nunique().max() == 1
    assert (hashes.groupby("national_id_hash").size() > 1).any()
    logins = raw_tables["shop_accounts"].email.str.strip().str.lower()
    logins = logins[(logins != "") & ~logins.isin(["test@test.com", "none@none.com", "noemail@qq.com"])]
    assert logins.is_unique
    assert truth["persons"].email.is_unique
    shop_names = raw_tables["shop_accounts"].display_name
    assert (
        shop_names.str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").any()
        and shop_names.str.contains(r"[\u4e00-\u9fff]").any()
    )
    linked = raw_tables["cti_contacts"].crm_id
    assert 0.2 < (linked != "").mean() < 0.6
    business = persons[persons.is_business]
    assert 0.04 < len(business) / N_PEOPLE < 0.1 and (business.company_name != "").all()


def test_chunks_continue_ids_and_stay_consistent(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo, "CHUNK_PEOPLE", 400)
    counts = generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=1000, progress=False)
    persons = pd.read_parquet(tmp_path / "truth" / "persons.parquet")
    assert persons.person_id.is_unique and len(persons) == 1000
    records = pd.read_parquet(tmp_path / "truth" / "source_records.parquet")
    assert not records.duplicated(["source_system", "source_record_id"]).any()
    crm = pd.read_csv(tmp_path / "raw" / "crm_customers.csv", dtype=str)
    assert crm.crm_id.is_unique and len(crm) == counts["crm_customers.csv"]
    assert set(crm.crm_id) == set(records.loc[records.source_system == "crm", "source_record_id"])
    txn = pd.read_csv(tmp_path / "raw" / "transactions.csv", dtype=str)
    assert txn.columns.tolist() == TABLES["transactions"].column_names  # one header only
    assert txn.drop_duplicates().txn_id.is_unique
    cti = pd.read_csv(tmp_path / "raw" / "cti_contacts.csv", dtype=str, encoding="gbk")
    assert cti.cti_id.is_unique and len(cti) == counts["cti_contacts.csv"]
    loyalty = pd.read_excel(tmp_path / "raw" / "loyalty_members.xlsx", sheet_name="members", dtype=str)
    assert len(loyalty) == counts["loyalty_members.xlsx"] and loyalty.member_no.is_unique


def test_format_stamps_matches_strftime() -> None:
    stamps = pa.array(np.array(["2024-03-05T07:08:09", "NaT", "1999-12-31T23:59:00"], dtype="datetime64[s]"))
    for fmt in ("%Y-%m-%d %H:%M:%S", "%d/%m/%Y %H:%M", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d"):
        assert format_stamps(stamps, fmt).equals(pc.strftime(stamps, format=fmt))
    with pytest.raises(ValueError, match="%b"):
        format_stamps(stamps, "%d %b %Y")


def test_xlsx_writer_refuses_more_rows_than_excel_allows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(demo_xlsx, "MAX_ROWS", 3)
    writer = demo_xlsx.XlsxStreamWriter(tmp_path / "x.xlsx", "s", ["a"])
    writer.write(pa.table({"a": ["1", "2"]}))
    with pytest.raises(ValueError, match="exceed"):
        writer.write(pa.table({"a": ["3"]}))


def test_xlsx_writer_escapes_text_and_keeps_spaces(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    writer = demo_xlsx.XlsxStreamWriter(path, "sheet", ["text", "day"])
    days = pa.array(np.array(["2024-02-29", "2023-01-01", "NaT"], dtype="datetime64[s]"))
    writer.write(pa.table({"text": [" a&b <c> ", None, "x"], "day": days}))
    writer.close()
    frame = pd.read_excel(path, sheet_name="sheet", engine="openpyxl")
    assert frame["text"].tolist()[0] == " a&b <c> " and pd.isna(frame.loc[1, "text"])
    assert frame.loc[0, "day"] == pd.Timestamp("2024-02-29") and pd.isna(frame.loc[2, "day"])
    assert zipfile.is_zipfile(path)


def test_xlsx_rows_are_read_from_the_arrow_buffer_including_slices() -> None:
    values = pa.array(["ab", "c", "de", "f"])
    assert demo_xlsx._text_bytes(values) == b"abcdef"
    assert demo_xlsx._text_bytes(values.slice(1, 2)) == b"cde"
    assert demo_xlsx._text_bytes(values.slice(4)) == b""


def test_a_crash_leaves_no_half_written_files(tmp_path: Path, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(demo, "surveys", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=200, progress=False)
    assert list(tmp_path.iterdir()) == []  # no raw or truth folder, no staging left behind


def test_bad_arguments_are_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reference_date"):
        generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=10, reference_date="2024-01-01")
    with pytest.raises(ValueError, match="n_customers"):
        generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=0)
    assert list(tmp_path.iterdir()) == []


def test_event_ids_are_sequential_and_padded() -> None:
    ids = demo_events.event_ids("T", 98, 3, 5).to_pylist()
    assert ids == ["T00098", "T00099", "T00100"]
    assert all(re.fullmatch(r"T\d{5}", i) for i in ids)


# --- the export-style world (demo.style: export) ---

EXPORT_PEOPLE = 2000


@pytest.fixture(scope="module")
def export_world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, int]]:
    base = tmp_path_factory.mktemp("export_world")
    counts = generate_demo_world(
        base / "raw", base / "truth", n_customers=EXPORT_PEOPLE, progress=False, style="export"
    )
    return base / "raw", base / "truth", counts


def test_export_style_writes_the_same_world_and_truth_as_the_default(export_world, tmp_path: Path) -> None:
    raw, truth, counts = export_world
    generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=EXPORT_PEOPLE, progress=False)
    for name in TRUTH_SCHEMAS:
        assert pd.read_parquet(truth / f"{name}.parquet").equals(
            pd.read_parquet(tmp_path / "truth" / f"{name}.parquet")
        ), name
    assert sorted(p.name for p in raw.iterdir()) == sorted(demo_export.EXPORT_FILES.values())
    assert not list(raw.parent.glob(".*"))  # no staging or default folder left behind
    default_calls = pd.read_csv(tmp_path / "raw" / "calls.csv", dtype=str)
    assert counts["呼叫记录.csv"] == len(default_calls)  # every call, no caller table
    rows = pd.read_parquet(truth / "export_rows.parquet")
    assert rows.groupby("file").size().to_dict() == {
        name: count for name, count in counts.items() if not name.startswith("truth/")
    }
    persons = set(pd.read_parquet(truth / "persons.parquet").person_id)
    assert set(rows.person_id) - {""} <= persons
    assert (rows.person_id == "").mean() < 0.01  # only orphan events belong to nobody


def test_export_crm_workbook_has_a_title_row_and_mixed_birth_dates(export_world) -> None:
    raw, _, _ = export_world
    sheet = pd.read_excel(raw / "客户主档.xlsx", sheet_name="客户主档", header=None, engine="openpyxl")
    assert str(sheet.iloc[0, 0]).startswith("客户主档导出") and sheet.iloc[1].isna().all()
    frame = sheet.iloc[3:].set_axis(sheet.iloc[2].tolist(), axis=1)
    assert {"客户编号", "姓名", "性别", "出生日期", "手机", "会员卡号"} <= set(frame.columns)
    birth = frame["出生日期"].dropna()
    kinds = birth.map(lambda v: type(v).__name__ if not isinstance(v, str) else _shape(v))
    assert {"datetime", "int", "9/9/9", "9-9-9", "9年9月9日"} <= set(
        kinds.str.replace(r"9+", "9", regex=True)
    )
    members = frame["会员卡号"].dropna()
    assert len(members) and all(isinstance(v, int) and len(str(v)) == 12 for v in members)
    assert set(frame["性别"].dropna()) <= {"男", "女", "X"}
    assert (
        frame["省份"].str.endswith(("省", "市", "自治区")).any()
        and frame["省份"].isin(["广东", "北京"]).any()
    )


def _shape(text: str) -> str:
    return re.sub(r"\d", "9", text)


def test_export_call_log_is_gbk_crlf_keyed_by_messy_caller_numbers(export_world) -> None:
    raw, truth, _ = export_world
    data = (raw / "呼叫记录.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    text = data.decode("gbk")
    lines = text.split("\r\n")
    assert lines[0].startswith("通话编号,来电号码") and "\n" not in text.replace("\r\n", "")
    numbers = pd.Series([line.split(",")[1] for line in lines[1:] if line])
    assert numbers.str.fullmatch(r"01\d{10}").any()  # trunk prefix 0
    assert numbers.str.contains("[０-９]").any()  # full-width digits
    assert numbers.str.fullmatch(r"\d{8}").any()  # local numbers without the area code
    assert numbers.str.contains(r"转\d{4}$|\d-\d{4}$").any()  # switchboard extensions
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日 \d\d:\d\d", text) and "呼入" in text and "是" in text
    defects = pd.read_parquet(truth / "export_defects.parquet")
    fields = [len(line.split(",")) for line in lines[1:] if line]
    ragged = defects.defect.isin(["too_few_fields", "too_many_fields"])
    planted = defects[(defects.file == "呼叫记录.csv") & ragged].set_index("row_no").defect
    for row, count in enumerate(fields, start=1):
        expected = {"too_few_fields": 8, "too_many_fields": 10}.get(planted.get(row), 9)
        assert count == expected, row


def test_export_orders_have_a_bom_currency_amounts_and_a_cut_off_last_row(export_world) -> None:
    raw, truth, counts = export_world
    data = (raw / "订单明细.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf") and not data.endswith(b"\n")
    last = data.decode("utf-8-sig").split("\r\n")[-1]
    assert last.startswith('"') and last.count('"') == 1  # cut inside a quoted field
    text = data.decode("utf-8-sig")
    assert all(form in text for form in ('"¥', '"￥', '元"', "已退款", "小程序", "电话下单"))
    defects = pd.read_parquet(truth / "export_defects.parquet")
    orders = defects[defects.file == "订单明细.csv"]
    assert orders.loc[orders.defect == "truncated_row", "row_no"].tolist() == [counts["订单明细.csv"]]
    assert {"too_few_fields", "too_many_fields", "amount_not_a_number", "exact_duplicate"} <= set(
        orders.defect
    )


def test_export_order_accounts_are_mobiles_e_mails_or_member_numbers(export_world) -> None:
    raw, _, _ = export_world
    text = (raw / "订单明细.csv").read_text("utf-8-sig")
    whole = text[: text.rstrip("\r\n").rfind("\n")]  # the last row is cut off on purpose
    orders = pd.read_csv(io.StringIO(whole), dtype=str, on_bad_lines="skip", engine="python")
    accounts = orders["下单账号"].dropna()
    digits = accounts[accounts.str.fullmatch(r"\d+")]
    assert len(digits) and len(digits) < len(accounts)  # e-mails too
    # a mobile, the placeholder 00000000000, or a member number (8860 + 8 digits); never a landline's tail
    assert digits.str.fullmatch(r"1\d{10}|00000000000|8860\d{8}").all()


def test_export_members_have_pinyin_names_only_and_chinese_tiers(export_world) -> None:
    raw, _, _ = export_world
    members = pd.read_csv(raw / "会员积分.csv", dtype=str, keep_default_na=False)
    assert not members["会员姓名"].str.contains(r"[\u4e00-\u9fff]").any()
    names = members["会员姓名"]
    assert names.str.fullmatch(r"[A-Z]+ [A-Z][a-z]+").any() and names.str.fullmatch(r"[a-z]+").any()
    assert set(members["会员等级"]) - {""} <= {"普卡", "银卡", "金卡", "钻石", "黑卡"}
    survey = pd.read_csv(raw / "survey_results.csv", dtype=str, keep_default_na=False)
    assert survey.columns[:3].tolist() == ["Response ID", "Phone No.", "Submitted"]
    assert survey["Submitted"].str.fullmatch(r"\d\d/\d\d/\d{4}").mean() > 0.98


def test_export_config_names_the_export_files() -> None:
    config = yaml.safe_load((PROJECT_ROOT / "config" / "demo_export.yml").read_text(encoding="utf-8"))
    assert config["demo"]["style"] == "export"
    tables = config["data"]["tables"]
    assert {name: spec["file"] for name, spec in tables.items()} == demo_export.EXPORT_FILES
    assert tables["crm_customers"]["sheet"] == demo_export.CRM_SHEET


def test_export_truth_carries_the_default_defects_to_export_rows(export_world) -> None:
    _, truth, _ = export_world
    planted = pd.read_parquet(truth / "planted_defects.parquet")
    defects = pd.read_parquet(truth / "export_defects.parquet")
    rows = pd.read_parquet(truth / "export_rows.parquet")
    members = planted[(planted.table == "loyalty_members") & (planted.defect == "impossible_birth_date")]
    carried = defects[(defects.file == "会员积分.csv") & (defects.defect == "impossible_birth_date")]
    on_rows = rows[rows.file == "会员积分.csv"].set_index("row_no").source_record_id
    assert len(members) and sorted(on_rows[carried.row_no]) == sorted(members.key)
    kept = defects.defect.isin(demo_export.KEPT_DEFECTS)
    assert not defects.quarantine[kept].any() and defects.quarantine[~kept].all()
    crm = planted[(planted.table == "crm_customers") & ~planted.defect.isin(demo_export.KEPT_DEFECTS)]
    assert (
        defects[(defects.file == "客户主档.xlsx") & defects.quarantine].row_no.nunique() == crm.key.nunique()
    )


def test_xlsx_writer_title_row_numbers_and_mixed_cells_across_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.xlsx"
    mixed = pa.StructArray.from_arrays(
        [
            pa.array(["1985/3/7", None, None, None]),
            pa.array([None, 19850307, None, None], type=pa.int64()),
            pa.array(np.array(["NaT", "NaT", "1985-03-07", "NaT"], dtype="datetime64[s]")),
        ],
        names=["text", "number", "date"],
    )
    table = pa.table({"id": pa.array([886016180339, 2, 3, None], type=pa.int64()), "birth": mixed})
    writer = demo_xlsx.XlsxStreamWriter(path, "s", ["id", "birth"], title="导出 <2026>")
    writer.write(table.slice(0, 3))
    writer.write(table.slice(3))
    writer.close()
    sheet = openpyxl_rows(path)
    assert sheet[0][0] == "导出 <2026>" and sheet[1] == (None, None) and sheet[2] == ("id", "birth")
    assert sheet[3] == (886016180339, "1985/3/7") and sheet[4] == (2, 19850307)
    assert sheet[5] == (3, pd.Timestamp("1985-03-07"))


def openpyxl_rows(path: Path) -> list[tuple]:
    """Every row of the first sheet as openpyxl reads it."""
    import openpyxl

    return list(openpyxl.load_workbook(path).active.iter_rows(values_only=True))


def test_export_marketing_file_is_a_chinese_campaign_export_keyed_by_the_contact(export_world) -> None:
    raw, truth, counts = export_world
    data = (raw / "营销触达记录.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    touches = pd.read_csv(raw / "营销触达记录.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert list(touches.columns) == [
        "发送编号",
        "联系方式",
        "发送时间",
        "活动名称",
        "触达渠道",
        "是否响应",
        "是否转化",
    ]
    assert set(touches["触达渠道"]) == {"短信", "外呼", "微信", "邮件"}
    assert set(touches["是否响应"]) == set(touches["是否转化"]) == {"是", "否"}
    assert (
        touches["活动名称"].str.contains("优惠券").any() and not touches["活动名称"].str.contains("_").any()
    )
    contact = touches["联系方式"]
    phone, email = contact.str.contains(r"\d{7}") & ~contact.str.contains("@"), contact.str.contains("@")
    assert phone.mean() > 0.5 and (touches.loc[email, "触达渠道"] == "邮件").mean() > 0.5
    assert counts["营销触达记录.csv"] == len(touches)
    rows = pd.read_parquet(truth / "export_rows.parquet")
    assert (rows.loc[rows.file == "营销触达记录.csv", "person_id"] != "").mean() > 0.98


def _references(raw: Path, truth: Path) -> pd.DataFrame:
    """Every event row's reference digits, time and person (calls, orders, surveys, marketing)."""
    files = {
        "呼叫记录.csv": ("gbk", "来电号码", "开始时间", "%Y年%m月%d日 %H:%M"),
        "订单明细.csv": ("utf-8-sig", "下单账号", "下单时间", "%Y/%m/%d %H:%M:%S"),
        "survey_results.csv": ("utf-8", "Phone No.", "Submitted", "%m/%d/%Y"),
        "营销触达记录.csv": ("utf-8-sig", "联系方式", "发送时间", "%Y-%m-%d %H:%M"),
    }
    rows = pd.read_parquet(truth / "export_rows.parquet")
    parts = []
    for file, (encoding, reference, time, fmt) in files.items():
        with (raw / file).open(encoding=encoding, newline="") as handle:
            lines = list(csv.reader(handle))
        at, ref = lines[0].index(time), lines[0].index(reference)
        frame = pd.DataFrame(
            {
                "file": file,
                "row_no": np.arange(1, len(lines)),
                "digits": [line[ref] if len(line) > ref else "" for line in lines[1:]],
                "when": pd.to_datetime(
                    [line[at] if len(line) > at else "" for line in lines[1:]], format=fmt, errors="coerce"
                ),
            }
        )
        parts.append(frame.merge(rows[["file", "row_no", "person_id"]], on=["file", "row_no"]))
    frame = pd.concat(parts, ignore_index=True)
    frame["digits"] = frame["digits"].str.normalize("NFKC").str.replace(r"\D", "", regex=True).str[-11:]
    return frame


def test_export_recycled_mobiles_change_hands_at_their_date(export_world) -> None:
    raw, truth, _ = export_world
    recycled = pd.read_parquet(truth / "export_recycled.parquet")
    roles = recycled.role.value_counts()
    assert (
        roles["previous holder"] == roles["new holder"] == round(demo_export.RECYCLED_SHARE * EXPORT_PEOPLE)
    )
    assert recycled.groupby("number").role.nunique().eq(2).all() and recycled.person_id.is_unique
    events = _references(raw, truth).merge(recycled, on="person_id")
    previous, new = events[events.role == "previous holder"], events[events.role == "new holder"]
    # the previous holder: the number before the switch, the new number from then on
    assert (previous.digits == previous.number).any() and (previous.digits == previous.new_number).any()
    assert not ((previous.digits == previous.number) & (previous.when >= previous.switched_at)).any()
    # (the caller's number; files keyed by what the CRM record shows now may carry it earlier)
    early = (previous.digits == previous.new_number) & (previous.when < previous.switched_at)
    assert not (early & (previous.file == "呼叫记录.csv")).any()
    # the new holder: events with the recycled number, none before the switch
    assert (new.digits == new.number).mean() > 0.3
    assert not ((new.digits == new.number) & (new.when < new.switched_at)).any()
    # identity files: the new holder's records show the number, the previous holder's member record too
    members = pd.read_csv(raw / "会员积分.csv", dtype=str, keep_default_na=False)
    digits = members["手机号"].str.replace(r"\D", "", regex=True).str[-11:]
    assert recycled.loc[recycled.role == "previous holder", "number"].isin(digits).all()
