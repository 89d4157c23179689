"""Faults and degenerate data on the step side: every case stops or warns with one line naming the
table, file, column or setting and what to do, never with row contents; nothing is half-written and
the ledger balances."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_contract import CALLS, EXPECTED_QUARANTINE, ROWS, fixture_config, make_context, write_world

from helpers.audit import report as audit
from helpers.audit.contract import DataContractError, safe_engine_message, value_shape
from helpers.audit.display import key_findings
from helpers.core.context import STEP_MANIFEST
from helpers.core.i18n import catalog
from helpers.core.tables import TABLES

# The hand-built fixture without its planted defects: nothing is quarantined.
CLEAN_ROWS = {
    table: [row for number, row in enumerate(rows, start=1) if (table, number) not in EXPECTED_QUARANTINE]
    for table, rows in ROWS.items()
}
# Personal values of the fixture that must never appear in a message.
PERSONAL = ("王伟", "13812345678", "wang.wei@example.com", "CRM001")


def strict_config(raw_dir: Path, **audit_settings: Any) -> dict[str, Any]:
    """The fixture config with the schema's quarantine thresholds (not the fixture's 1.0)."""
    config = fixture_config(raw_dir)
    config["audit"].pop("warn_quarantine_share")
    config["audit"].pop("max_quarantine_share")
    config["audit"].update(audit_settings)
    return config


def assert_one_line_without_personal_data(message: str) -> None:
    assert "\n" not in message, message
    for value in PERSONAL:
        assert value not in message, message


def assert_nothing_half_written(step_dir: Path) -> None:
    assert not list(step_dir.rglob("*.partial")), list(step_dir.rglob("*.partial"))
    assert not list(step_dir.glob(".work-*")), "the DuckDB work folder was left behind"


def assert_ledger_balances(step_dir: Path) -> pd.DataFrame:
    ledger = pd.read_parquet(step_dir / "ledger.parquet").set_index("table")
    assert (ledger.input_rows == ledger.accepted_rows + ledger.quarantined_rows).all()
    for table in ledger.index:
        accepted = len(pd.read_parquet(step_dir / f"clean_{table}.parquet"))
        quarantined = len(pd.read_parquet(step_dir / f"quarantine_{table}.parquet"))
        assert (accepted, quarantined) == (
            ledger.loc[table, "accepted_rows"],
            ledger.loc[table, "quarantined_rows"],
        )
    return ledger


# ---------------------------------------------------------------- 1. no row contents in messages


def test_missing_required_column_message_names_columns_not_rows(tmp_path: Path) -> None:
    config = strict_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config, CLEAN_ROWS)
    path = tmp_path / "raw" / "crm_customers.csv"
    pd.read_csv(path, dtype=str).drop(columns=["created_at"]).to_csv(path, index=False)
    ctx = make_context(tmp_path, config)
    with pytest.raises(DataContractError) as error:
        audit.run_step(ctx)
    message = str(error.value)
    assert (
        "crm_customers" in message
        and "created_at" in message
        and "data.tables.crm_customers.columns" in message
    )
    assert "First rows" not in message
    assert_one_line_without_personal_data(message)
    assert_nothing_half_written(ctx.step_dir)


def test_unparseable_birth_dates_show_row_numbers_and_shapes_only(tmp_path: Path) -> None:
    config = strict_config(tmp_path / "raw", max_quarantine_share=1.0)
    rows = copy.deepcopy(CLEAN_ROWS)
    birth = TABLES["crm_customers"].column_names.index("birth_date")
    for row in rows["crm_customers"]:
        row[birth] = "born 1980/05/01"
    write_world(tmp_path / "raw", config, rows)
    ctx = make_context(tmp_path, config)
    with pytest.raises(DataContractError) as error:
        audit.run_step(ctx)
    message = str(error.value)
    assert "birth_date" in message and "row 1 looks like 'aaaa 9999/99/99'" in message
    assert "1980" not in message and "date_format" in message
    assert_one_line_without_personal_data(message)


def test_engine_and_value_messages_drop_row_contents() -> None:
    raw = (
        "Invalid Input Error: CSV Error on Line: 3 value 'Wang Wei'\n"
        'Original Line: 1,"Wang Wei",13812345678\nPossible fixes: ...'
    )
    assert safe_engine_message(raw) == "Invalid Input Error: CSV Error on Line: 3 value <value>"
    assert value_shape("王伟 138-1234") == "aa 999-9999"
    assert value_shape(None) == ""


# ---------------------------------------------------------------- 2./3. loud quarantine


def test_reference_date_before_all_data_stops_step_01_naming_table_share_and_reason(tmp_path: Path) -> None:
    config = strict_config(tmp_path / "raw")
    config["run"]["reference_date"] = "2015-01-01"
    write_world(tmp_path / "raw", config, CLEAN_ROWS)
    ctx = make_context(tmp_path, config)
    with pytest.raises(DataContractError) as error:
        audit.run_step(ctx)
    message = str(error.value)
    assert message.startswith("table crm_customers: 100% of rows quarantined (5 of 5)"), message
    assert "main reason: created_at after reference date" in message
    assert "run.reference_date is 2015-01-01" in message and "audit.max_quarantine_share (50%)" in message
    assert_one_line_without_personal_data(message)
    # Stopped before anything of the table (or the ledger) was written.
    assert not (ctx.step_dir / "clean_crm_customers.parquet").exists()
    assert not (ctx.step_dir / "ledger.parquet").exists()
    assert_nothing_half_written(ctx.step_dir)


def calls_with_unparseable_dates(bad: int, total: int) -> list[list[str]]:
    """`total` valid calls of the fixture's first call, `bad` of them with a date that does not parse."""
    rows = []
    for number in range(total):
        row = [f"K{number:03d}", *CALLS[0][1:]]
        if number < bad:
            row[2] = "45/45/2024 99:99"
        rows.append(row)
    return rows


def test_thirty_percent_unparseable_dates_warn_on_stderr_and_head_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = strict_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config, {**CLEAN_ROWS, "calls": calls_with_unparseable_dates(3, 10)})
    ctx = make_context(tmp_path, config)
    report = audit.run_step(ctx)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("WARNING")]
    assert lines == [
        "WARNING table calls: 30% of rows quarantined (3 of 10); main reason: unparseable call_at (3 rows), "
        "above audit.warn_quarantine_share (5%): set data.tables.calls.datetime_format to the format the "
        "export uses."
    ]
    findings = key_findings(catalog("en"), report).splitlines()
    assert findings[0] == "## Key findings" and findings[1].startswith(
        "- **Warning: table calls: 30% of rows"
    )
    assert key_findings(catalog("zh"), report).splitlines()[1].startswith("- **注意:table calls: 30%")
    assert json.loads(ctx.path(STEP_MANIFEST).read_text())["quarantine_warnings"] == [
        lines[0].removeprefix("WARNING ")
    ]
    ledger = assert_ledger_balances(ctx.step_dir)
    assert ledger.loc["calls"].tolist() == [10, 7, 3]
    assert_nothing_half_written(ctx.step_dir)


def test_clean_data_is_quiet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = strict_config(tmp_path / "raw")
    write_world(tmp_path / "raw", config, CLEAN_ROWS)
    report = audit.run_step(make_context(tmp_path, config))
    assert "WARNING" not in capsys.readouterr().err
    assert report.contract.quarantine_warnings == []
    assert "Warning" not in key_findings(catalog("en"), report)


# ---------------------------------------------------------------- 7. determinism


def test_numeric_ranges_are_exact_and_independent_of_row_order(tmp_path: Path) -> None:
    from helpers.engine.base import DuckDBEngine

    rng = np.random.default_rng(3)
    amounts = np.round(rng.lognormal(5, 1.2, 200_000), 2)
    frames = []
    for order in (np.arange(len(amounts)), rng.permutation(len(amounts))):
        with DuckDBEngine(threads=2) as engine:
            engine.register("rows_transactions", pd.DataFrame({"v_amount": amounts[order], "problems": ""}))
            frames.append(audit.numeric_ranges(engine, "transactions", ["amount"]))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)
    row = frames[0].iloc[0]
    assert row["median"] == pytest.approx(np.quantile(amounts, 0.5), abs=1e-9)
    assert row["p01"] == pytest.approx(np.quantile(amounts, 0.01), abs=1e-9)
    assert row["p99"] == pytest.approx(np.quantile(amounts, 0.99), abs=1e-9)


# ---------------------------------------------------------------- 4. empty identity tables


def identity_run(tmp_path: Path, rows: dict[str, list[list[str]]], **audit_settings: Any) -> Path:
    """Step 01 of the fixture world with `rows` into a run folder; returns the run folder."""
    config = strict_config(tmp_path / "raw", **audit_settings)
    write_world(tmp_path / "raw", config, rows)
    audit.run_step(make_context(tmp_path, config))
    return tmp_path / "run"


def test_all_loyalty_rows_quarantined_step_02_merges_the_other_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers.core.context import StepContext
    from helpers.identity.merge import run_step

    rows = copy.deepcopy(CLEAN_ROWS)
    joined = TABLES["loyalty_members"].column_names.index("joined_on")
    for row in rows["loyalty_members"]:
        row[joined] = "2030-01-01"  # after the reference date: every loyalty row is quarantined
    run_dir = identity_run(tmp_path, rows, max_quarantine_share=1.0)
    assert_ledger_balances(run_dir / "01_data_audit")
    assert "WARNING table loyalty_members: 100% of rows quarantined" in capsys.readouterr().err
    ctx = StepContext(run_dir=run_dir, step="02_identity_merge", config=strict_config(tmp_path / "raw"))
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    result = run_step(ctx)
    err = capsys.readouterr().err
    assert (
        "WARNING identity merge: clean_loyalty_members has no rows; merging the other identity tables" in err
    )
    assert set(result.crosswalk["source_system"]) == {"crm", "cti", "shop"}
    assert json.loads(ctx.path(STEP_MANIFEST).read_text())["empty_tables"] == ["loyalty_members"]


def test_all_identity_tables_empty_stops_step_02_naming_them(tmp_path: Path) -> None:
    from helpers.identity.merge import SYSTEM_TABLES, IdentityInputError, run_step

    class EmptyContext:
        def path(self, name: str, step: str) -> Path:
            return tmp_path / step / name  # no file: every column is read

        def read(self, step: str, name: str, columns: list[str] | None = None) -> pd.DataFrame:
            return pd.DataFrame(columns=["source_system", "source_record_id"])

    with pytest.raises(IdentityInputError) as error:
        run_step(EmptyContext())  # type: ignore[arg-type]
    message = str(error.value)
    assert message.startswith("every clean identity table of step 01 is empty")
    assert all(f"clean_{table}" in message for table in SYSTEM_TABLES.values())
    assert_one_line_without_personal_data(message)


def test_review_sample_does_not_depend_on_the_order_pairs_arrive_in() -> None:
    from helpers.identity.merge import _review_pairs

    n = 40
    records = pd.DataFrame(
        {
            "record_key": [f"crm:{i}" for i in range(n)],
            "name": [f"name {i}" for i in range(n)],
            "birth_date": pd.NaT,
            "gender": "F",
            "city": "x",
            "mobile": None,
            "email": None,
            "customer_id": [f"C{i}" for i in range(n)],
        }
    )
    rng = np.random.default_rng(0)
    scored = pd.DataFrame(
        {
            "left_index": np.arange(0, 30),
            "right_index": np.arange(1, 31),
            "match_weight": 1.0,
            "match_probability": rng.uniform(0.85, 0.95, 30),
        }
    )
    edges = pd.DataFrame(
        {"left_index": np.arange(10), "right_index": np.arange(20, 30), "accepted": False,
         "reason": "names differ", "shared_types": "mobile"}
    )  # fmt: skip
    refused = edges.iloc[:0]
    first = _review_pairs(records, edges, refused, scored, 0.9, 8, seed=5)
    shuffled = _review_pairs(
        records,
        edges.sample(frac=1, random_state=1),
        refused,
        scored.sample(frac=1, random_state=2),
        0.9,
        8,
        seed=5,
    )
    assert len(first) == 8
    pd.testing.assert_frame_equal(first, shuffled)


# ---------------------------------------------------------------- 5. too few customers for the k range


def blobs(n: int, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(centre, 0.3, (n // 3 + 1, 3)) for centre in (0, 3, 6)])[:n].astype(np.float32)
    business = pd.DataFrame({"value": x[:, 0], "churn_risk": x[:, 1], "service_load": x[:, 2]})
    return x, business


def test_too_few_customers_lower_k_max_and_say_so(capsys: pytest.CaptureFixture[str]) -> None:
    from helpers.clustering import candidates as cl

    x, business = blobs(24)
    settings = cl.ClusteringSettings(seed=1, k_min=2, k_max=12, algorithms=["kmeans", "gmm_diag", "ward"])
    comparison = cl.compare(x, business, settings)
    note = (
        "clustering.k_max lowered from 12 to 4: 24 customers to cluster (24 fitted) support at most "
        "4 segments of 5 customers"
    )
    assert comparison.k_max == 4 and comparison.k_note == note
    assert f"WARNING {note}" in capsys.readouterr().err.splitlines()
    assert comparison.table["k"].max() == 4 and set(comparison.table["algorithm"]) == {
        "kmeans",
        "gmm_diag",
        "ward",
    }


def test_k_range_impossible_for_the_data_stops_naming_the_settings_and_count() -> None:
    from helpers.clustering import candidates as cl

    x, business = blobs(8)
    with pytest.raises(cl.ClusteringInputError) as error:
        cl.compare(x, business, cl.ClusteringSettings(seed=1, k_min=2, k_max=12))
    message = str(error.value)
    assert message.startswith("clustering: 8 customers to cluster support at most 1 segments")
    assert "clustering.k_min = 2" in message and "clustering.k_max" in message and "\n" not in message


def test_stability_sample_is_capped_at_the_population() -> None:
    from helpers.clustering import candidates as cl

    x, _ = blobs(12)
    settings = cl.ClusteringSettings(seed=1, k_min=2, k_max=12, stability_refits=2)
    assert 0.0 <= cl.stability("kmeans", 6, x, settings) <= 1.0  # 2k = 12 rows of 12: no ValueError


# ---------------------------------------------------------------- 8. demo world too small


def test_too_small_demo_world_states_the_minimum_before_writing(tmp_path: Path) -> None:
    from helpers.demo.world import MIN_CUSTOMERS, DemoSizeError, generate_demo_world

    with pytest.raises(DemoSizeError) as error:
        generate_demo_world(tmp_path / "raw", tmp_path / "truth", n_customers=10, progress=False)
    assert str(error.value) == (
        f"demo.customers (n_customers) is 10; the demo world needs at least {MIN_CUSTOMERS} customers: "
        f"set demo.customers to {MIN_CUSTOMERS} or more."
    )
    assert isinstance(error.value, ValueError) and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 6. no marketing response at all


@pytest.mark.parametrize("empty", [0.0, None])
def test_step_06_runs_when_no_customer_has_a_marketing_response(
    tmp_path: Path, empty: float | None, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers.core.context import open_step
    from helpers.strategy import run_step
    from helpers.strategy.synthetic import write_synthetic_run

    run_dir = write_synthetic_run(tmp_path / "run", 600, seed=4)
    path = run_dir / "03_features" / "features.parquet"
    features = pd.read_parquet(path)
    for column in ("response_rate", "conversion_rate"):
        features[column] = empty
    features["n_marketing_contacts"] = 0  # rates are null (or 0) when nobody was contacted or answered
    features.to_parquet(path, index=False)
    result = run_step(open_step("06_strategy", str(run_dir)))
    assert len(result.plan) == 600 and result.plan["priority"].notna().all()
    assert np.isfinite(result.plan["priority"].astype(float)).all()
    assert 0 < len(result.calls) == int(result.plan["on_call_list"].sum())
    assert "WARNING strategy: no customer has a marketing response" in capsys.readouterr().err
