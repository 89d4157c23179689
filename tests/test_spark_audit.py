"""Step 01 on Spark: its checks read messy text as DuckDB does.

Two levels: every parse expression step 01 generates (`helpers.audit.contract`: dates in each
configured format and Excel serials, integers, amounts with currency noise, identifiers Excel saved
as `123.0`, region suffixes, the trim guard, the full-width test) over a corpus of messy texts gives
the same values on both engines; and a Chinese call center's messy exports (`tests/test_reading.py`:
GBK, ragged and truncated rows, mixed date forms, value maps) give every step-01 artifact equal. The
small world's step-01 artifacts are compared in the end-to-end run (`tests/test_spark_e2e.py`).

Text the engines still read differently, on purpose left so (none is a date or number a real export
holds): `1_000` (DuckDB reads 1000), `inf`/`Infinity` as a date, a year of 1-3 digits (`1-1-1`),
`24:00:00`, time-zone offsets and more than 6 fraction digits in the ISO fallback, and a trailing
newline after a `%Y-%m-%d` date. Skipped without pyspark or Java (`spark_support`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from spark_support import assert_same_column_profile
from test_reading import CONFIG, write_world

from helpers.audit import contract, run_step
from helpers.core.context import StepContext
from helpers.engine.base import DuckDBEngine, SqlEngine

pytest_plugins = ["spark_support"]
STEP = "01_data_audit"

CORPUS = [
    *("2024-01-05", "2024-1-5", "2024/01/05", "2024/1/5", "2024 01 05", "2024年1月5日", "2024年01月05日"),
    *("20240105", "20240105.0", "20241305", "2024-02-30", "2024-13-05", "2024", "2024-01", "1985/3/7"),
    *("45300", "45300.5", "45300.75", "0", "999999", "1234567", "2024-01-05 10:03:07", "2024-01-05 10:03"),
    *("2024-01-05T10:03", "2024-01-05 10:3", "2024-1-5 1:3:7", "2024-01-05 10:03:07.123", "10:03"),
    *("2024/01/05 10:03:07", "2024/01/05T10:03:07", "05/01/2024 14:03", "5/1/2024 14:03", "1/5/2024"),
    *("2024年3月5日 14:03", "2024年3月5日 4:03", "abc", "", "12\n", "abc\n", "13800138000\n"),
    *("12", "-5", "3.0", "3.5", "1e3", "1E+3", "NaN", "1e400", "+5", ".5", "5.", "1.2.3", "0x10"),
    *("9223372036854775807", "9223372036854775808", "-9223372036854775809"),
    *("1,234.50", "¥1,234.50", "￥1,234.50", "１２３元", "RMB 12", "CNY12", "12 元"),
    *("8.86016E+11", "886016180339.0", "886016180339.0\n", "886016180339.00", "12.50", "$1"),
    *("广东省", "北京市", "广西壮族自治区", "省", "广东省\n", " 王 ", "王\u3000", "\u3000王"),
    *("\u00a0x\u00a0", "x \n", "a b", "ａｂｃ", "\u2003y", None),
]
DATE_FORMATS = ("%Y/%m/%d", "%Y年%m月%d日", "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%m/%d/%Y %H:%M")
DATE_FORMATS += ("%Y年%m月%d日 %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y", "yyyymmdd", "excel")
NUMBER = (
    f"coalesce(TRY_CAST(t AS DOUBLE), "
    f"TRY_CAST(regexp_replace(t, {contract._literal(contract.AMOUNT_NOISE)}, '', 'g') AS DOUBLE))"
)
EXPRESSIONS = {  # step 01's own SQL over a text column `t`
    **{f"date {fmt}": contract._date_expression("t", (fmt,)) for fmt in DATE_FORMATS},
    "ISO date only": contract._date_expression("t", ()),
    "integer": f"CASE WHEN {NUMBER} = trunc({NUMBER}) THEN TRY_CAST({NUMBER} AS BIGINT) END",
    "amount": f"CASE WHEN isfinite({NUMBER}) THEN {NUMBER} END",
    "identifier": "CASE WHEN t LIKE '%.0%' THEN regexp_replace(t, '^(\\d+)\\.0+$', '\\1') ELSE t END",
    "region": f"regexp_replace(t, {contract._literal(contract.REGION_SUFFIX)}, '\\1')",
    "trimmed": contract._trimmed("t"),
    "trimmed, no edge ASCII space": contract._trimmed("t", edged=False),
    "scientific id": "regexp_full_match(t, '\\d(\\.\\d+)?[eE]\\+?\\d+')",
    "full width": contract._has_fullwidth("t"),
    "full width as ASCII": contract._fullwidth_to_ascii("t"),
}
DIFFERENT_ON_PURPOSE = {"1_000", "inf", "Infinity", "1-1-1", "2024-01-05 24:00:00", "2024-01-05\n"}


@pytest.fixture(scope="module")
def corpus_engines(spark_engine: Any) -> dict[str, SqlEngine]:
    frame = pd.DataFrame({"i": range(len(CORPUS)), "t": pd.Series(CORPUS, dtype=object)})
    duck = DuckDBEngine(threads=1)
    for engine in (duck, spark_engine):
        engine.register("corpus", frame)
    return {"duckdb": duck, "spark": spark_engine}


def plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Values as Python objects, every missing one None (DuckDB gives <NA> in nullable columns)."""
    return frame.astype(object).where(frame.notna(), None)


@pytest.mark.parametrize("expression", list(EXPRESSIONS))
def test_step01_expression_reads_messy_text_as_duckdb_does(
    expression: str, corpus_engines: dict[str, SqlEngine]
) -> None:
    value = EXPRESSIONS[expression]
    if expression.startswith(("date", "ISO")):  # as text: Spark's toPandas refuses years beyond 2262
        value = f"CAST({value} AS VARCHAR)"
    sql = f"SELECT i, t, {value} AS v FROM corpus ORDER BY i"
    duck, spark = (plain(engine.query(sql)) for engine in corpus_engines.values())
    assert duck["v"].notna().any(), f"{expression}: nothing parses, the comparison would prove nothing"
    pd.testing.assert_frame_equal(duck, spark, obj=expression)


def test_the_corpus_reaches_what_spark_read_differently_before_the_overrides(
    corpus_engines: dict[str, SqlEngine],
) -> None:
    """Each value here came out differently on Spark until a dialect override fixed it."""
    sql = (
        f"SELECT t, {EXPRESSIONS['identifier']} AS id, {EXPRESSIONS['region']} AS region, "
        f"{EXPRESSIONS['integer']} AS n, CAST({EXPRESSIONS['ISO date only']} AS VARCHAR) AS at, "
        f"{EXPRESSIONS['scientific id']} AS sci, {EXPRESSIONS['trimmed']} AS trimmed FROM corpus"
    )
    rows = corpus_engines["spark"].query(sql).set_index("t")
    assert rows.loc["886016180339.0", "id"] == "886016180339"  # `\1` is a group on DuckDB, `$1` on Spark
    assert rows.loc["886016180339.0\n", "id"] == "886016180339.0\n"  # Java's `$` matched before the newline
    assert rows.loc["广西壮族自治区", "region"] == "广西"
    assert pd.isna(rows.loc["9223372036854775808", "n"])  # Spark's TRY_CAST saturates to the largest BIGINT
    assert rows.loc["2024/1/5", "at"] == "2024-01-05 00:00:00"  # DuckDB reads slashes, Spark did not
    assert pd.isna(rows.loc["45300", "at"]) and pd.isna(rows.loc["2024", "at"])  # Spark read years
    assert not rows.loc["12\n", "sci"] and rows.loc["8.86016E+11", "sci"]
    assert rows.loc["\u00a0x\u00a0", "trimmed"] == "x"  # Spark's trim strips the ASCII space only


def test_the_engines_still_differ_only_on_what_no_export_holds(corpus_engines: dict[str, SqlEngine]) -> None:
    frame = pd.DataFrame({"i": range(len(DIFFERENT_ON_PURPOSE)), "t": sorted(DIFFERENT_ON_PURPOSE)})
    for engine in corpus_engines.values():
        engine.register("odd", frame)
    sql = (
        f"SELECT t, CAST({EXPRESSIONS['integer']} AS VARCHAR) AS n, "
        f"CAST({contract._date_expression('t', ('%Y-%m-%d',))} AS VARCHAR) AS at FROM odd ORDER BY t"
    )
    duck, spark = (engine.query(sql).set_index("t") for engine in corpus_engines.values())
    differing = {text for text in duck.index if not duck.loc[text].equals(spark.loc[text])}
    assert differing == DIFFERENT_ON_PURPOSE  # an engine upgrade that closes a gap shows here


def audit_messy_world(base: Path, engine: str) -> Path:
    """Step 01 over `tests/test_reading.py`'s messy exports with `engine.name=engine`; its step folder."""
    write_world(base / "raw")
    config = {**CONFIG, "data": {**CONFIG["data"], "raw_dir": str(base / "raw")}, "engine": {"name": engine}}
    ctx = StepContext(run_dir=base / "run", step=STEP, config=config)
    ctx.step_dir.mkdir(parents=True, exist_ok=True)
    run_step(ctx)
    return ctx.step_dir


def test_messy_exports_give_every_step01_artifact_on_spark_as_on_duckdb(
    spark_engine: Any, tmp_path: Path
) -> None:
    duck, spark = (audit_messy_world(tmp_path / engine, engine) for engine in ("duckdb", "spark"))
    names = sorted(path.name for path in duck.glob("*.parquet"))
    assert sorted(path.name for path in spark.glob("*.parquet")) == names
    assert len(pd.read_parquet(duck / "quarantine_calls.parquet")) > 0
    for name in names:
        expected, result = pd.read_parquet(duck / name), pd.read_parquet(spark / name)
        if name == "column_profile.parquet":
            assert_same_column_profile(expected, result)
        else:
            pd.testing.assert_frame_equal(result, expected, obj=name)
