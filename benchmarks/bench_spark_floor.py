"""Local Spark vs DuckDB on the same hand-written, well-formed statements: the floor any implementation
of the workbench pays on each engine (issue 14), per demo world size.

Two parts, each engine in its own child process (CPU: that process's and its children's user + system
time, Spark's JVM included: `bench_references.cpu_seconds`):
- read and cast: every raw file of the demo world's config (`data/raw/bench_<N>`, generated when
  missing) read as text, cast to its canonical types and written to one Parquet file, one statement
  per table. DuckDB: `bench_references.reference_read`, one table at a time. Spark: Spark's own CSV
  reader (all columns text; the GBK file transcoded first and the Excel sheet read with
  python-calamine, both by `bench_references._reference_source`, the sheet's Arrow table handed to
  Spark), and the same cast expressions (`bench_references._cast`, DuckDB's spelling translated by
  `helpers.engine.dialect`: TRY_STRPTIME as TRY_TO_TIMESTAMP with the format in Java's letters) written
  through `SparkEngine.write_parquet`.
- step 03: the hand-written transactions aggregate (`bench_references.transactions_reference_sql`)
  over a finished run's Parquet files (`bench_references.finished_run`, or --run), through the
  workbench's seam (`helpers.engine.base.connect`; Spark translates the DuckDB text), collected to
  pandas.
Each child runs the statements `--repeats` times in one session (Spark's session start timed apart) and
reports every pass: printed are the first pass (each statement once on a fresh session, as a run pays
it) and the best pass (warm), per statement and in total, Spark/DuckDB ratios with and without the
session start, and whether the engines agree (rows and nulls per table; largest difference of the
aggregate's columns). Needs the spark extra (`make setup-spark`).

    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_spark_floor.py 100000
    flock /tmp/heavy.lock .venv/bin/python benchmarks/bench_spark_floor.py 1000000 --parts read
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import yaml
from bench_references import (
    _cast,
    _formats,
    _quote,
    _reference_source,
    default_world_config,
    finished_run,
    reference_read,
    show,
    timed,
    transactions_reference_sql,
)

from helpers.core.config import load_config, resolve_path
from helpers.core.settings import WorkbenchConfig
from helpers.core.tables import TABLES

ENGINES = ("duckdb", "spark")
Passes = list[dict[str, tuple[float, float]]]  # per pass: statement -> (wall, CPU)


class _SparkSheets:
    """What `_reference_source` asks of a connection, on Spark: an Arrow table registered as a view."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def register(self, name: str, table: Any) -> None:
        self.spark.createDataFrame(table).createOrReplaceTempView(name)


def _spark_read(engine: Any, config: dict, target: Path) -> dict[str, tuple[float, float]]:
    """Every raw file read by Spark, cast and written to `target/<table>.parquet`; per table its wall
    and CPU seconds."""
    settings = WorkbenchConfig.model_validate(config)
    raw_dir = resolve_path(settings.data.raw_dir)
    seconds = {}
    for name, entry in settings.data.tables.items():

        def statement(name: str = name, entry: Any = entry) -> None:
            source = _reference_source(_SparkSheets(engine.spark), name, entry, raw_dir, target)
            if entry.format != "excel":  # read_csv(...) on DuckDB: Spark's reader of the same file
                utf8 = target / f"{name}.utf8.csv"
                path = utf8 if utf8.exists() else raw_dir / entry.file
                reader = engine.spark.read.options(header=True, escape='"', inferSchema=False)
                source = f"csv_{name}"
                reader.csv(str(path)).createOrReplaceTempView(source)
            formats = _formats(entry)
            columns = ", ".join(
                f"{_cast(c.type, _quote(c.name), formats.get(c.type, []))} AS {_quote(c.name)}"
                for c in TABLES[name].columns
            )
            engine.write_parquet(f"SELECT {columns} FROM {source}", target / f"{name}.parquet")

        wall, cpu, _ = timed(statement)
        seconds[name] = (wall, cpu)
    return seconds


def _duckdb_read(config: dict, target: Path) -> dict[str, tuple[float, float]]:
    """`reference_read` one table at a time; per table its wall and CPU seconds."""
    seconds = {}
    for name, entry in config["data"]["tables"].items():
        one = {**config, "data": {**config["data"], "tables": {name: entry}}}
        wall, cpu, _ = timed(lambda one=one: reference_read(one, target))
        seconds[name] = (wall, cpu)
    return seconds


def _table_summary(folder: Path) -> dict[str, list[int]]:
    """Per written table: its rows and its null values (Parquet statistics)."""
    summary = {}
    for path in sorted(folder.glob("*.parquet")):
        if path.stem == "step03":
            continue
        metadata = pq.ParquetFile(path).metadata
        statistics = [
            metadata.row_group(g).column(c).statistics
            for g in range(metadata.num_row_groups)
            for c in range(metadata.num_columns)
        ]
        nulls = sum(s.null_count for s in statistics if s is not None and s.has_null_count)
        summary[path.stem] = [metadata.num_rows, nulls]
    return summary


def run_child(
    engine_name: str, part: str, config_file: Path, run: Path | None, folder: Path, repeats: int
) -> None:
    """One engine's part in this process: prints JSON with the session start, every pass's seconds
    per statement, and what agreement is checked on."""
    from helpers.engine.base import connect

    start_wall, start_cpu, engine = timed(lambda: connect(engine_name, threads=2, memory_limit="2GB"))
    passes: Passes = []
    try:
        if part == "read":
            config = yaml.safe_load(config_file.read_text(encoding="utf-8"))
            for _ in range(repeats):
                if engine_name == "spark":
                    passes.append(_spark_read(engine, config, folder))
                else:
                    passes.append(_duckdb_read(config, folder))
        else:
            passes = _step03(engine, run, folder, repeats)
    finally:
        engine.close()
    print(json.dumps({"start": (start_wall, start_cpu), "passes": passes, "tables": _table_summary(folder)}))


def _step03(engine: Any, run_dir: Path | None, folder: Path, repeats: int) -> Passes:
    """The hand-written transactions aggregate on a finished run's views; its result kept in
    `folder/step03.parquet`."""
    from helpers.core.context import StepContext
    from helpers.features.build import EVENT_TABLES, FeatureSettings, find_levels, query_params
    from helpers.identity.events import register_events

    assert run_dir is not None
    ctx = StepContext(run_dir=run_dir, step="03_features", config=load_config(run_dir / "config.yml"))
    settings = FeatureSettings.from_config(ctx.settings.features, ctx.reference_date, ctx.seed)
    tables = {**{name: name for name in EVENT_TABLES}, "crosswalk": "crosswalk"}
    register_events(engine, ctx, tables)
    levels, other = find_levels(engine, tables, settings)
    sql, params = transactions_reference_sql(levels["category"], other), query_params(settings.reference_date)
    passes: Passes = []
    for _ in range(repeats):
        wall, cpu, frame = timed(lambda: engine.query(sql, **params))
        passes.append({"transactions aggregate": (wall, cpu)})
    frame.to_parquet(folder / "step03.parquet")
    return passes


def child(engine: str, part: str, config_file: Path, run: Path | None, folder: Path, repeats: int) -> dict:
    command = [sys.executable, __file__, "--child", engine, "--part", part, "--config-file", str(config_file)]
    command += ["--folder", str(folder), "--repeats", str(repeats), *(["--run", str(run)] if run else [])]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _numbers(column: pd.Series) -> np.ndarray:
    """A result column as floats (timestamps as nanoseconds), NULL as NaN."""
    if pd.api.types.is_datetime64_any_dtype(column):
        column = column.astype("datetime64[ns]").astype("int64").where(column.notna())
    return pd.to_numeric(column, errors="coerce").to_numpy(float)


def largest_difference(folder: dict[str, Path]) -> str:
    """The largest difference between the engines' aggregate columns, customers matched by id."""
    duck, spark = (
        pd.read_parquet(folder[e] / "step03.parquet").dropna(subset=["customer_id"]).set_index("customer_id")
        for e in ENGINES
    )
    spark = spark.reindex(duck.index)
    worst, where = 0.0, "no column"
    for column in duck.columns:
        a, b = _numbers(duck[column]), _numbers(spark[column])
        if not np.array_equal(np.isnan(a), np.isnan(b)):
            return f"null patterns differ in {column}"
        diff = float(np.nanmax(np.abs(a - b), initial=0.0))
        if diff > worst:
            worst, where = diff, column
    return f"{len(duck):,} customers, largest difference {worst:.3g} ({where})"


def report(part: str, results: dict[str, dict]) -> None:
    """Per statement and in total: each engine's wall and CPU, first pass and best pass, and ratios."""
    starts = {e: results[e]["start"] for e in ENGINES}
    show("spark session start", *starts["spark"])
    for label, pick in (("first pass", lambda ps: ps[0]), ("best pass", lambda ps: min(ps, key=_total))):
        chosen = {e: pick(results[e]["passes"]) for e in ENGINES}
        print(f" {part}, {label}:  duckdb | spark | spark/duckdb")
        for statement in chosen["duckdb"]:
            for engine in ENGINES:
                show(f"{statement} {engine}", *chosen[engine][statement])
            (dw, dc), (sw, sc) = chosen["duckdb"][statement], chosen["spark"][statement]
            show(f"{statement} ratio", sw / dw, sc / dc, "x")
        totals = {e: tuple(map(sum, zip(*chosen[e].values(), strict=True))) for e in ENGINES}
        for engine in ENGINES:
            show(f"total {engine}", *totals[engine])
        (dw, dc), (sw, sc) = totals["duckdb"], totals["spark"]
        show("total ratio, without session start", sw / dw, sc / dc, "x")
        if label == "first pass":
            (dsw, dsc), (ssw, ssc) = starts["duckdb"], starts["spark"]
            show("total ratio, with session start", (sw + ssw) / (dw + dsw), (sc + ssc) / (dc + dsc), "x")


def _total(statements: dict[str, tuple[float, float]]) -> float:
    return sum(wall for wall, _ in statements.values())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("sizes", nargs="*", type=int, default=[100_000])
    parser.add_argument("--parts", nargs="+", choices=["read", "step03"], default=["read", "step03"])
    parser.add_argument("--run", type=Path, help="finished run for step 03 (one size)")
    parser.add_argument("--repeats", type=int, default=2, help="passes per child (default 2)")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--part", choices=["read", "step03"], help=argparse.SUPPRESS)
    parser.add_argument("--config-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.part, args.config_file, args.run, args.folder, args.repeats)
        return
    print(f"load before: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench_spark_floor_") as scratch:
        for size in args.sizes:
            print(f"== {size:,} customers")
            config = default_world_config(size, 7, None)
            config_file = Path(scratch) / f"{size}.config.yml"
            config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
            for part in args.parts:
                run = (args.run or finished_run(size)) if part == "step03" else None
                if part == "step03" and run is None:
                    print(f" step03: no finished run on data/raw/bench_{size} (pass --run)")
                    continue
                folders = {e: Path(scratch) / f"{size}_{part}_{e}" for e in ENGINES}
                results = {}
                for engine, folder in folders.items():
                    folder.mkdir()
                    results[engine] = child(engine, part, config_file, run, folder, args.repeats)
                print(f" {part}{f' on run {run.name}' if run else ''} ({args.repeats} passes per engine)")
                report(part, results)
                if part == "read":
                    same = results["duckdb"]["tables"] == results["spark"]["tables"]
                    print(f"  agreement (rows, nulls per table): {'equal' if same else results}")
                else:
                    print(f"  agreement: {largest_difference(folders)}")
                print(f"  load now: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
