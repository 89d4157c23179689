"""The heavy steps against hand-written DuckDB references (issue 15), and step 01's export style against
its default style (issue 11), per size: wall seconds, CPU seconds and their ratios.

Step 01 vs "read and cast": the whole of step 01 (`helpers.audit.run_step`: read, check, quarantine,
clean, profile, write) on the default demo world `data/raw/bench_<N>` against a reference that reads
the same raw files as the run config lists them and casts them, with no checks: a non-UTF-8 CSV (the
GBK caller file) stream-transcoded to UTF-8 with Python's codec, the Excel sheet read with
python-calamine, then per table one DuckDB statement `COPY (SELECT <cast columns> FROM read_csv(...,
all text)) TO '<table>.parquet'` where every canonical column is cast to its type (`TRY_CAST`, or
`TRY_STRPTIME` with the configured date/datetime format). Same DuckDB settings as step 01 (threads,
memory limit). Each side runs in its own child process; CPU is that process's user + system time
(every DuckDB thread).

Step 01 vs "the job by hand": the core of step 01's job written by hand in DuckDB the plain way
(`job_reference`: the raw text and each row's problems in a work table, duplicate keys and orphan
references flagged, accepted rows cast to Parquet, rejected rows to Parquet, one profile statement per
table), which is what any step 01 must at least do; it has no value maps, vocabularies, full-width or
space handling, identifier normalization, coverage or reports. Printed beside the two others, with its
ratio to the read-and-cast reference: how much of the gap to that reference the checks themselves cost.

Step 03 transactions query vs "the same columns by hand": step 03's transactions aggregate
(`helpers.features.build.aggregate_table`: the query, the frame, aligned to the golden customers)
against one hand-written statement computing the same per-customer columns (counts, gross and refund
amounts, 12-month net, items, first/last purchase day, 90-day windows, weekday/hour/season/channel
shares, spend per category level, other-category breadth, purchase-day gaps: repeat days, mean and
standard deviation of the gaps, mean spend on repeat days), over the same registered views of a
finished run (`outputs/bench/runs/*` whose raw folder is `data/raw/bench_<N>`, or --run). Both run
twice on one engine (`--engines duckdb spark`: on each in turn; Spark's session start printed apart,
its JVM's CPU counted); the faster run of each is printed, and the largest difference between their
columns (they must agree). The reference on Spark against the reference on DuckDB is local Spark's
price for one well-formed statement, the floor of any Spark run of the workbench (issue 14).

Step 01 export vs default style (--export N): step 01 on the export-style world of N people with the
config `init-config` proposes and on the default world of the same seed and size (worlds under
--export-root, generated when missing, as `benchmarks/bench_export.py` does).

    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_references.py 20000 100000
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_references.py 100000 --export 100000
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_references.py --skip-step01 100000
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_references.py --skip-step01 100000 --engines spark
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_references.py --skip-step03 --root /tmp/w 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import pyarrow
import yaml

from helpers.core.config import load_config, resolve_path
from helpers.core.settings import WorkbenchConfig
from helpers.core.tables import SOURCE_SYSTEMS, TABLES

ROOT = Path(__file__).resolve().parents[1]
BENCH_RUNS = ROOT / "outputs" / "bench" / "runs"
DUCKDB_TYPES = {
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "date": "DATE",
    "datetime": "TIMESTAMP",
}

# Step 03's transactions columns computed by hand in one statement. Purchase days first (one row per
# customer and day with purchases, the gap to the previous such day); every other column is one FILTER
# aggregate of the joined rows. {categories} and {breadth} are generated from the run's levels.
TRANSACTIONS_REFERENCE = """
WITH t AS (
    SELECT x.customer_id, t.txn_at, date_trunc('day', t.txn_at) AS day, t.amount, t.quantity,
        t.category, t.channel, t.is_refund
    FROM transactions AS t
    LEFT JOIN crosswalk AS x
        ON x.source_system = t.source_system AND x.source_record_id = t.source_customer_id
    WHERE t.txn_at < $as_of_end
),
days AS (
    SELECT customer_id, day, count(*) AS n, sum(amount) AS amount,
        date_diff('day', lag(day) OVER (PARTITION BY customer_id ORDER BY day), day) AS gap
    FROM t WHERE NOT is_refund GROUP BY customer_id, day
),
gaps AS (
    SELECT customer_id, count(gap) AS frequency_repeat, avg(gap) AS mean_interpurchase_days,
        stddev_samp(gap) AS sd_interpurchase_days,
        sum(amount) FILTER (WHERE gap IS NOT NULL) / nullif(count(gap), 0) AS clv_monetary_repeat
    FROM days GROUP BY customer_id
)
SELECT a.*, g.frequency_repeat, g.mean_interpurchase_days, g.sd_interpurchase_days, g.clv_monetary_repeat
FROM (
    SELECT customer_id,
        count(*) AS n_transactions,
        count(*) FILTER (WHERE NOT is_refund) AS n_purchases,
        count(*) FILTER (WHERE is_refund) AS n_refunds,
        coalesce(sum(amount) FILTER (WHERE NOT is_refund), 0) AS gross_amount,
        coalesce(sum(amount) FILTER (WHERE is_refund), 0) AS refund_amount,
        coalesce(sum(CASE WHEN is_refund THEN -amount ELSE amount END) FILTER (WHERE day >= $start_12m), 0)
            AS monetary_12m,
        coalesce(sum(quantity) FILTER (WHERE NOT is_refund), 0) AS items_total,
        min(day) FILTER (WHERE NOT is_refund) AS first_purchase_at,
        max(day) FILTER (WHERE NOT is_refund) AS last_purchase_at,
        {breadth} AS other_category_breadth,
        count(*) FILTER (WHERE NOT is_refund AND day >= $start_90d) AS purchases_last_90d,
        count(*) FILTER (WHERE NOT is_refund AND day >= $start_180d AND day < $start_90d)
            AS purchases_prev_90d,
        coalesce(sum(amount) FILTER (WHERE NOT is_refund AND day >= $start_90d), 0) AS spend_last_90d,
        coalesce(sum(amount) FILTER (WHERE NOT is_refund AND day >= $start_180d AND day < $start_90d), 0)
            AS spend_prev_90d,
        avg((EXTRACT(ISODOW FROM txn_at) >= 6)::DOUBLE) FILTER (WHERE NOT is_refund) AS weekend_share,
        avg(hour(txn_at)) FILTER (WHERE NOT is_refund) AS mean_purchase_hour,
        avg((hour(txn_at) < 12)::DOUBLE) FILTER (WHERE NOT is_refund) AS morning_share,
        avg((hour(txn_at) >= 18)::DOUBLE) FILTER (WHERE NOT is_refund) AS evening_share,
        avg((month(txn_at) IN (3, 4, 5))::DOUBLE) FILTER (WHERE NOT is_refund) AS season_share_spring,
        avg((month(txn_at) IN (6, 7, 8))::DOUBLE) FILTER (WHERE NOT is_refund) AS season_share_summer,
        avg((month(txn_at) IN (9, 10, 11))::DOUBLE) FILTER (WHERE NOT is_refund) AS season_share_autumn,
        avg((month(txn_at) IN (12, 1, 2))::DOUBLE) FILTER (WHERE NOT is_refund) AS season_share_winter,
        avg((channel = 'store')::DOUBLE) FILTER (WHERE NOT is_refund) AS channel_share_store,
        avg((channel = 'online')::DOUBLE) FILTER (WHERE NOT is_refund) AS channel_share_online,
        avg((channel = 'app')::DOUBLE) FILTER (WHERE NOT is_refund) AS channel_share_app,
        avg((channel = 'phone')::DOUBLE) FILTER (WHERE NOT is_refund) AS channel_share_phone
        {categories}
    FROM t GROUP BY customer_id
) AS a
LEFT JOIN gaps AS g ON g.customer_id IS NOT DISTINCT FROM a.customer_id
"""


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) and of its child processes, alive
    or ended (Spark's JVM)."""
    own, ended = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    alive = 0.0
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            alive += times.user + times.system
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime + alive


def show(label: str, wall: float, cpu: float, unit: str = " s", peak: float | None = None) -> None:
    """One printed line: a label, wall and CPU figures (seconds, or a ratio with unit "x") and the
    process's peak RSS (GB) when given."""
    memory = f" {peak:6.2f} GB peak RSS" if peak is not None else ""
    print(f"  {label + ':':<52}{wall:8.2f}{unit} wall {cpu:8.2f}{unit} CPU{memory}")


def timed(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall and CPU seconds of `work()` and what it returned."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = work()
    return time.perf_counter() - wall, cpu_seconds() - cpu, result


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cast(column_type: str, text: str, formats: list[str]) -> str:
    """SQL casting one text column to its canonical type (the configured formats tried in order).

    `nullif(x, '')` keeps DuckDB 2.0 from pushing the cast into the CSV reader, where it is no
    longer a TRY_CAST (one `#VALUE!` then fails the whole file).
    """
    if column_type == "str":
        return text
    text = f"nullif({text}, '')"
    if column_type in ("date", "datetime") and formats:
        parsed = ", ".join(f"TRY_STRPTIME({text}, {_literal(fmt)})" for fmt in formats)
        parsed = f"coalesce({parsed})"
        return f"CAST({parsed} AS DATE)" if column_type == "date" else parsed
    return f"TRY_CAST({text} AS {DUCKDB_TYPES[column_type]})"


def _excel_table(path: Path, sheet: str | int) -> pyarrow.Table:
    """One worksheet as text columns (python-calamine), header in the first row."""
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_path(str(path))
    name = workbook.sheet_names[sheet] if isinstance(sheet, int) else sheet
    rows = workbook.get_sheet_by_name(name).to_python()
    header, data = [str(v) for v in rows[0]], rows[1:]
    text = [[None if v == "" else str(v) for v in column] for column in zip(*data, strict=True)]
    return pyarrow.table(
        {name: pyarrow.array(values, pyarrow.string()) for name, values in zip(header, text, strict=True)}
    )


def _formats(entry: Any) -> dict[str, list[str]]:
    """The configured date and datetime formats of one `data.tables` entry, as lists."""
    return {
        kind: [value] if isinstance(value, str) else list(value or [])
        for kind, value in (("date", entry.date_format), ("datetime", entry.datetime_format))
    }


def _reference_connection(settings: WorkbenchConfig) -> Any:
    """A DuckDB connection with step 01's settings (threads, memory limit)."""
    import duckdb

    connection = duckdb.connect()
    connection.execute(f"SET threads = {int(settings.audit.threads or 2)}").fetchall()
    if settings.audit.memory_limit:
        connection.execute(f"SET memory_limit = '{settings.audit.memory_limit}'").fetchall()
    return connection


def _reference_source(connection: Any, name: str, entry: Any, raw_dir: Path, target: Path) -> str:
    """The raw file of table `name` as a relation of text columns: a CSV read by DuckDB (a non-UTF-8
    file stream-transcoded into `target` first), an Excel sheet registered as `sheet_<name>`."""
    path = raw_dir / entry.file
    if entry.format == "excel":
        connection.register(f"sheet_{name}", _excel_table(path, entry.sheet))
        return f"sheet_{name}"
    if entry.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        utf8 = target / f"{name}.utf8.csv"
        with (
            path.open(encoding=entry.encoding, newline="") as reader,
            utf8.open("w", encoding="utf-8", newline="") as writer,
        ):
            shutil.copyfileobj(reader, writer, 1 << 24)
        path = utf8
    return f"read_csv({_literal(str(path))}, header = true, all_varchar = true)"


def reference_read(config: dict, target: Path) -> dict[str, int]:
    """Read and cast every raw file of the config into `target/<table>.parquet` (no checks)."""
    settings = WorkbenchConfig.model_validate(config)
    raw_dir = resolve_path(settings.data.raw_dir)
    connection = _reference_connection(settings)
    rows = {}
    for name, entry in settings.data.tables.items():
        formats = _formats(entry)
        columns = ", ".join(
            f"{_cast(c.type, _quote(c.name), formats.get(c.type, []))} AS {_quote(c.name)}"
            for c in TABLES[name].columns
        )
        source = _reference_source(connection, name, entry, raw_dir, target)
        out = target / f"{name}.parquet"
        connection.execute(
            f"COPY (SELECT {columns} FROM {source}) TO {_literal(str(out))} (FORMAT parquet)"
        ).fetchall()
        rows[name] = connection.execute(f"SELECT count(*) FROM {_literal(str(out))}").fetchall()[0][0]
        if entry.format == "excel":
            connection.unregister(source)
    connection.close()
    return rows


def job_reference(config: dict, target: Path) -> dict[str, int]:
    """The core of step 01's job by hand, per table (identity tables first): the raw text and each row's
    problems in one work table (a required field blank, a typed field that does not cast), later rows
    of a key flagged as duplicates, event rows whose customer reference has no accepted identity record
    flagged as orphans, the accepted rows cast to Parquet, the rejected rows with their file row and
    problems to Parquet, and one profile statement (per column: missing, distinct values, exact for
    identity tables and HyperLogLog for events, and min/max of the accepted rows). Not done: value
    maps and vocabularies, full-width and space handling, identifier normalization, coverage, monthly
    counts, numeric ranges and the reports."""
    settings = WorkbenchConfig.model_validate(config)
    raw_dir = resolve_path(settings.data.raw_dir)
    connection = _reference_connection(settings)
    connection.execute("SET preserve_insertion_order = true").fetchall()
    connection.execute("CREATE TABLE keys (system VARCHAR, key VARCHAR)").fetchall()
    systems = {table: system for system, table in SOURCE_SYSTEMS.items()}
    ordered = sorted(settings.data.tables.items(), key=lambda item: TABLES[item[0]].kind != "identity")
    run = connection.execute
    rows = {}
    for name, entry in ordered:
        table, formats = TABLES[name], _formats(entry)
        cast = {c.name: _cast(c.type, _quote(c.name), formats.get(c.type, [])) for c in table.columns}
        checks = [
            f"CASE WHEN nullif(trim({_quote(c.name)}), '') IS NULL THEN 'missing {c.name}' END"
            for c in table.columns
            if c.required
        ] + [
            f"CASE WHEN {cast[c.name]} IS NULL AND nullif({_quote(c.name)}, '') IS NOT NULL "
            f"THEN 'unparseable {c.name}' END"
            for c in table.columns
            if c.type != "str"
        ]
        source = _reference_source(connection, name, entry, raw_dir, target)
        problems = f"concat_ws('; ', {', '.join(checks)})"
        run(f"CREATE OR REPLACE TABLE work AS SELECT *, {problems} AS problems FROM {source}").fetchall()
        if entry.format == "excel":
            connection.unregister(source)
        flag = "UPDATE work SET problems = concat_ws('; ', nullif(problems, ''), '{0}') WHERE rowid IN ({1})"
        key = _quote(table.key)
        later_copies = (
            f"SELECT rowid FROM (SELECT rowid, row_number() OVER (PARTITION BY {key} ORDER BY rowid) AS n "
            f"FROM work WHERE {key} IS NOT NULL) WHERE n > 1"
        )
        run(flag.format("duplicate key", later_copies)).fetchall()
        for column, parent, _ in table.references:
            system = "w.source_system" if parent == "source_system" else _literal(systems[parent])
            reference = f"w.{_quote(column)}"
            unknown = (
                f"SELECT w.rowid FROM work AS w ANTI JOIN keys AS k ON k.system = {system} "
                f"AND k.key = {reference} WHERE {reference} IS NOT NULL"
            )
            run(flag.format("orphan reference", unknown)).fetchall()
        if table.kind == "identity":
            accepted = f"SELECT DISTINCT {_literal(systems[name])}, {key} FROM work WHERE problems = ''"
            run(f"INSERT INTO keys {accepted}").fetchall()
        typed = ", ".join(f"{sql} AS {_quote(column)}" for column, sql in cast.items())
        clean, quarantine = (
            _literal(str(target / f"{name}.{kind}.parquet")) for kind in ("clean", "quarantine")
        )
        run(f"COPY (SELECT {typed} FROM work WHERE problems = '') TO {clean} (FORMAT parquet)").fetchall()
        rejected = "SELECT rowid + 1 AS source_row, * FROM work WHERE problems <> ''"
        run(f"COPY ({rejected}) TO {quarantine} (FORMAT parquet)").fetchall()
        distinct = "count(DISTINCT {0})" if table.kind == "identity" else "approx_count_distinct({0})"
        profile = []
        for column in table.columns:
            quoted = _quote(column.name)
            profile += [f"count(*) FILTER (WHERE nullif({quoted}, '') IS NULL)", distinct.format(quoted)]
            if column.type in ("int", "float", "date", "datetime"):
                profile += [
                    f"{stat}({cast[column.name]}) FILTER (WHERE problems = '')" for stat in ("min", "max")
                ]
        run(f"SELECT {', '.join(profile)} FROM work").fetchall()
        rows[name] = run(f"SELECT count(*) FROM {clean}").fetchall()[0][0]
    connection.close()
    return rows


def step01(config: dict, run_dir: Path) -> dict[str, int]:
    """The whole of step 01 into `run_dir`; the accepted rows per table."""
    from helpers.audit import run_step
    from helpers.core.context import StepContext

    context = StepContext(run_dir=run_dir, step="01_data_audit", config=config)
    context.step_dir.mkdir(parents=True, exist_ok=True)
    report = run_step(context)
    return {row.table: int(row.accepted_rows) for row in report.ledger.itertuples()}


def child(phase: str, config_file: Path, folder: Path) -> dict:
    """Run one phase in a child process; its wall and CPU seconds and result."""
    completed = subprocess.run(
        [
            sys.executable,
            __file__,
            "--phase",
            phase,
            "--config-file",
            str(config_file),
            "--folder",
            str(folder),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_phase(phase: str, config_file: Path, folder: Path) -> None:
    config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    work = {"step01": step01, "reference": reference_read, "job": job_reference}[phase]
    wall, cpu, rows = timed(lambda: work(config, folder))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_gb": peak, "rows": rows}))


def compare_step01(config: dict, label: str, scratch: Path) -> tuple[dict, dict]:
    """Step 01 and the reference on one config, each in its own process; prints both and the ratio."""
    config_file = scratch / f"{label}.config.yml"
    config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    results = {}
    for phase in ("reference", "job", "step01"):
        folder = scratch / f"{label}_{phase}"
        folder.mkdir(parents=True, exist_ok=True)
        results[phase] = child(phase, config_file, folder)
        shutil.rmtree(folder, ignore_errors=True)
    step, reference, job = results["step01"], results["reference"], results["job"]
    show("step 01 (read, check, quarantine, clean, profile)", step["wall"], step["cpu"], peak=step["peak_gb"])
    show("reference (read + cast to Parquet)", reference["wall"], reference["cpu"], peak=reference["peak_gb"])
    show(
        "job by hand (checks, flags, clean, quarantine, profile)",
        job["wall"],
        job["cpu"],
        peak=job["peak_gb"],
    )
    show("ratio step 01 / reference", step["wall"] / reference["wall"], step["cpu"] / reference["cpu"], "x")
    show("ratio job by hand / reference", job["wall"] / reference["wall"], job["cpu"] / reference["cpu"], "x")
    show("ratio step 01 / job by hand", step["wall"] / job["wall"], step["cpu"] / job["cpu"], "x")
    return step, reference


def finished_run(customers: int) -> Path | None:
    """The newest finished bench run (steps 01-03 ok) on `data/raw/bench_<customers>`."""
    for run_dir in sorted(BENCH_RUNS.glob("*"), reverse=True):
        manifest = run_dir / "run.json"
        if not manifest.is_file():
            continue
        record = json.loads(manifest.read_text())
        raw = str(record.get("config", {}).get("data", {}).get("raw_dir", ""))
        steps = record.get("steps", {})
        if (
            raw.rstrip("/").endswith(f"bench_{customers}")
            and steps.get("02_identity_merge", {}).get("status") == "ok"
        ):
            return run_dir
    return None


def transactions_reference_sql(levels: list[str], other_categories: bool) -> str:
    from helpers.features.catalog import slug

    categories = "".join(
        f",\n        coalesce(sum(amount) FILTER (WHERE NOT is_refund AND category = {_literal(level)}), 0) "
        f'AS "category_spend_{slug(level)}"'
        for level in levels
    )
    if not other_categories:
        breadth = "0"
    elif levels:
        outside = ", ".join(map(_literal, levels))
        breadth = f"count(DISTINCT category) FILTER (WHERE NOT is_refund AND category NOT IN ({outside}))"
    else:
        breadth = "count(DISTINCT category) FILTER (WHERE NOT is_refund)"
    return TRANSACTIONS_REFERENCE.format(categories=categories, breadth=breadth)


def compare_transactions(run_dir: Path, repeats: int = 2, engine_name: str = "duckdb") -> None:
    """Step 03's transactions aggregate and the hand-written reference on a finished run, on the engine
    `engine_name` (Spark: local[*], its session start timed apart)."""
    from helpers.core.context import StepContext
    from helpers.engine.base import connect
    from helpers.features.build import (
        EVENT_TABLES,
        FeatureSettings,
        aggregate_table,
        find_levels,
        query_params,
    )
    from helpers.identity.events import register_events

    ctx = StepContext(run_dir=run_dir, step="03_features", config=load_config(run_dir / "config.yml"))
    settings = FeatureSettings.from_config(ctx.settings.features, ctx.reference_date, ctx.seed)
    index = pd.Index(ctx.read("02_identity_merge", "golden", columns=["customer_id"])["customer_id"])
    tables = {**{name: name for name in EVENT_TABLES}, "crosswalk": "crosswalk"}
    start_wall, start_cpu, engine = timed(
        lambda: connect(
            engine_name, memory_limit=settings.duckdb_memory_limit, threads=settings.duckdb_threads
        )
    )
    show(f"{engine_name} start", start_wall, start_cpu)
    try:
        register_events(engine, ctx, tables)
        levels, other = find_levels(engine, tables, settings)
        params = query_params(settings.reference_date)
        sql = transactions_reference_sql(levels["category"], other)

        def step() -> pd.DataFrame:
            return aggregate_table(engine, "transactions", tables, settings, levels, index, other)[0]

        def reference() -> pd.DataFrame:
            frame = engine.query(sql, **params).set_index("customer_id")
            return frame[frame.index.notna()].reindex(index)

        runs: dict[str, list[tuple[float, float, pd.DataFrame]]] = {"step": [], "reference": []}
        for _ in range(repeats):
            runs["step"].append(timed(step))
            runs["reference"].append(timed(reference))
    finally:
        engine.close()
    best = {label: min(found, key=lambda r: r[1]) for label, found in runs.items()}
    (s_wall, s_cpu, s_frame), (r_wall, r_cpu, r_frame) = best["step"], best["reference"]
    differences = []
    for column in s_frame.columns:
        a, b = s_frame[column], r_frame[column]
        if pd.api.types.is_datetime64_any_dtype(a):
            a, b = a.astype("int64", errors="ignore"), pd.to_datetime(b).astype("int64", errors="ignore")
        a, b = (
            pd.to_numeric(a, errors="coerce").to_numpy(float),
            pd.to_numeric(b, errors="coerce").to_numpy(float),
        )
        same_null = np.array_equal(np.isnan(a), np.isnan(b))
        diff = float(np.nanmax(np.abs(a - b))) if np.isfinite(a - b).any() else 0.0
        differences.append((column, same_null, diff))
    worst = max(differences, key=lambda d: d[2])
    nulls_differ = [c for c, same, _ in differences if not same]
    print(f"  run {run_dir.name}: {len(index):,} customers, {s_frame.shape[1]} columns "
          f"(best of {repeats} runs each)")  # fmt: skip
    show("step 03 transactions aggregate", s_wall, s_cpu)
    show("reference, the same columns by hand", r_wall, r_cpu)
    show("ratio step 03 / reference", s_wall / r_wall, s_cpu / r_cpu, "x")
    print(f"  agreement: largest difference {worst[2]:.3g} ({worst[0]}); "
          f"null patterns differ in {nulls_differ or 'no column'}")  # fmt: skip


def default_world_config(customers: int, seed: int, root: Path | None) -> dict:
    """The run config of the default demo world of `customers` people (generated when missing): under
    `root` as `bench_export` names it (seed `seed`), else `data/raw/bench_<customers>` (the demo seed)."""
    if root is not None:
        raw, truth, _ = load_bench_export().world(root.resolve(), "default", customers, seed)
        return load_config(None, [f"data.raw_dir={raw}", f"demo.truth_dir={truth}"])
    from helpers.core.runner import ensure_demo_data

    config = load_config(None, [f"demo.customers={customers}", f"data.raw_dir=data/raw/bench_{customers}"])
    ensure_demo_data(config, progress=False)
    return config


def load_bench_export() -> Any:
    spec = importlib.util.spec_from_file_location("bench_export", Path(__file__).with_name("bench_export.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compare_export(customers: int, seed: int, root: Path, scratch: Path, measured: dict[str, dict]) -> None:
    """Step 01 on the export-style world (proposed config) and the default world, each in a child
    (the default world's figures reused from `measured`, by raw folder, when step 01 already ran on it)."""
    bench_export = load_bench_export()
    seconds = {}
    for style in ("export", "default"):
        raw, truth, reference_date = bench_export.world(root, style, customers, seed)
        if str(raw) in measured:
            seconds[style] = found = measured[str(raw)]
            show(
                f"step 01, {style} style (measured above)", found["wall"], found["cpu"], peak=found["peak_gb"]
            )
            continue
        if style == "export":
            proposed = root / f"proposed_{customers}_{seed}.yml"
            if not proposed.is_file():
                bench_export.propose(raw, reference_date, proposed)
            config = load_config(proposed, [f"demo.truth_dir={truth}"])
        else:
            config = load_config(None, [f"data.raw_dir={raw}", f"demo.truth_dir={truth}"])
        config_file = scratch / f"{style}_{customers}.config.yml"
        config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        folder = scratch / f"{style}_{customers}_step01"
        folder.mkdir(parents=True, exist_ok=True)
        seconds[style] = child("step01", config_file, folder)
        shutil.rmtree(folder, ignore_errors=True)
        found = seconds[style]
        show(f"step 01, {style} style", found["wall"], found["cpu"], peak=found["peak_gb"])
    export, default = seconds["export"], seconds["default"]
    show("export / default", export["wall"] / default["wall"], export["cpu"] / default["cpu"], "x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[20_000, 100_000])
    parser.add_argument("--skip-step01", action="store_true", help="only the step 03 comparison")
    parser.add_argument("--skip-step03", action="store_true", help="only the step 01 comparison")
    parser.add_argument("--run", type=Path, help="finished run for the step 03 comparison (one size)")
    parser.add_argument("--export", type=int, metavar="N", help="also step 01 export vs default style at N")
    parser.add_argument("--export-root", type=Path, default=Path("/tmp/bench_export"))
    parser.add_argument(
        "--root",
        type=Path,
        help="default-style worlds as ROOT/raw_default_<N>_<seed> (as --export names them) instead of "
        "data/raw/bench_<N>",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--engines",
        nargs="+",
        choices=["duckdb", "spark"],
        default=["duckdb"],
        help="engines of the step 03 comparison, one after another (spark: the spark extra)",
    )
    parser.add_argument("--phase", choices=["step01", "reference", "job"], help=argparse.SUPPRESS)
    parser.add_argument("--config-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args.phase, args.config_file, args.folder)
        return
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    measured: dict[str, dict] = {}  # raw folder -> step 01's figures on it
    with tempfile.TemporaryDirectory(prefix="bench_references_") as scratch:
        for size in args.sizes:
            print(f"== {size:,} customers")
            if not args.skip_step01:
                config = default_world_config(size, args.seed, args.root)
                print(f" step 01 vs read+cast reference on {config['data']['raw_dir']}")
                measured[str(config["data"]["raw_dir"])] = compare_step01(
                    config, f"default_{size}", Path(scratch)
                )[0]
            if not args.skip_step03:
                run_dir = args.run or finished_run(size)
                if run_dir is None:
                    print(f" step 03: no finished run on data/raw/bench_{size}: run "
                          f"benchmarks/bench_workbench.py {size} first, or pass --run")  # fmt: skip
                else:
                    print(" step 03 transactions aggregate vs the same columns by hand")
                    for engine in args.engines:
                        compare_transactions(run_dir, engine_name=engine)
        if args.export:
            print(f"== step 01 export vs default style at {args.export:,} customers")
            compare_export(args.export, args.seed, args.export_root.resolve(), Path(scratch), measured)
    print(f"load after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
