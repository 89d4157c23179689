"""Run every step's notebook (the registry `helpers.core.steps.STEPS`, in order) with papermill,
into a fresh run folder.

With `run.kernel: shared` (what `auto`, the default, chooses below 1 GiB of raw files, e.g. the
20k and 100k demo worlds) every notebook runs in ONE kernel, so the kernel start and the imports
are paid once; before each notebook the kernel's user namespace is reset (variables, output
history, open figures, working folder, execution count), so no notebook depends on what an earlier
one left in memory: steps still exchange only artifacts. Imported modules (and the warning filters
their imports installed) stay, as in a JupyterLab kernel. `run.kernel: per_step` (auto's choice for
larger inputs) starts a fresh kernel per notebook: all memory is returned between steps. With
`run.overlap_steps` (the default; DuckDB only) shared kernels come in a pair that take turns: a step starts in
the other kernel as soon as the previous step's `run_step` cell has written its artifacts, while
the previous step still draws its charts and tables (a step reads only earlier steps' artifacts, so
the order of results is unchanged). Each step's HTML pages are written by a background thread while
the next step runs; a step whose pages could not be written fails.

A run folder holds the frozen config, `run.json` (versions, data fingerprints, per-step
timings, status and recorded values), the executed notebooks, each step's artifacts and
two HTML renders per notebook (full, and a management version without code).
`outputs/latest` moves only when every step finished. A run checks its inputs first
(`helpers.core.preflight`), holds the outputs folder's run lock, and records how it ended in run.json
(ok, failed, interrupted; `helpers.core.runs` marks runs whose process died as stale).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import queue
import resource
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import papermill
import psutil
import yaml
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from papermill.clientwrap import PapermillNotebookClient
from papermill.engines import NBClientEngine, papermill_engines
from papermill.log import logger as papermill_logger

from helpers.core.config import load_config, resolve_path
from helpers.core.context import STEP_MANIFEST
from helpers.core.paths import NOTEBOOKS_DIR, OUTPUTS_DIR, PROJECT_ROOT
from helpers.core.preflight import MIN_FREE_BYTES, check_run
from helpers.core.render import render_reports, write_index
from helpers.core.runs import mark_stale_runs, now, write_manifest
from helpers.core.steps import STEPS, Step
from helpers.engine.base import step_engine

LOCK_FILE = ".run.lock"  # in the outputs folder: held by the active run
KERNEL_NAME = "python3"
# The kernel's own log (e.g. "running over TCP without encryption" on a local kernel) is noise for
# analysts; cell output and errors are unaffected.
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
SHARED_KERNEL_MAX_INPUT_BYTES = 2**30  # run.kernel auto: one kernel below 1 GiB of raw files
SHARED_ENGINE = "workbench-shared-kernel"  # the papermill engine that runs in an existing kernel
# The cell of a step's notebook after which its artifacts are written (the rest shows them): the
# first code cell that calls it. With overlapping steps the next step may start once it has run.
RESULTS_CALL = "run_step("
PINNED_PACKAGES = (
    "numpy", "pandas", "pyarrow", "duckdb", "splink", "scikit-learn",
    "pymc-marketing", "pandera", "matplotlib", "seaborn", "papermill", "nbconvert",
)  # fmt: skip


class StepFailedError(RuntimeError):
    """A notebook step raised; the message names the step and the cause."""


@dataclass(frozen=True)
class RunResult:
    """Where a finished run lives."""

    run_id: str
    run_dir: Path


def step_notebooks(steps: Sequence[Step] = STEPS, notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebook of each step (`<notebooks_dir>/<step name>.ipynb`), in run order.

    Raises `FileNotFoundError` naming every missing notebook, before anything runs.
    """
    notebooks = [notebooks_dir / f"{step.name}.ipynb" for step in steps]
    missing = [str(path) for path in notebooks if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"Step notebook(s) missing: {', '.join(missing)}")
    return notebooks


def run_workbench(
    config_path: str | Path | None = None,
    overrides: list[str] | None = None,
    outputs_dir: Path = OUTPUTS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    progress: bool = True,
    steps: Sequence[Step] = STEPS,
) -> RunResult:
    """Run `steps` (default: every registered step) in order; raise `StepFailedError` naming the
    failed step (latest stays untouched).

    Before anything heavy: the config is validated and `check_run` lists every problem it finds
    (`PreflightError`); a second run in the same outputs folder stops at once (`RunLockedError`).
    SIGINT/SIGTERM stop the kernel and record the run as interrupted (`RunInterruptedError`); a
    folder that cannot be written (full disk, read-only) ends the run with `OutputsWriteError`.
    """
    config = load_config(config_path, overrides)
    notebooks = step_notebooks(steps, notebooks_dir)
    check_run(config, outputs_dir)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(2).hex()
    try:
        outputs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputsWriteError(cannot_write(outputs_dir, error)) from None
    with RunLock(outputs_dir, run_id), StopOnSignal() as stop, contextlib.ExitStack() as kernels:
        mark_stale_runs(outputs_dir / "runs", every_running=True)
        # shared or auto (shared unless the inputs are large): started and importing now; with
        # overlapping steps a second one for the second step's modules, started once the first step
        # runs (started now too, it slowed the world generation and the first kernel's imports)
        early: list[SharedKernel] = []
        if config["run"]["kernel"] != "per_step":
            for first in range(2 if overlaps_steps(config, steps) else 1):
                early.append(kernels.enter_context(SharedKernel(preload=preload_modules(steps[first:]))))
            start_early(early[0])
        ensure_demo_data(config, progress=progress)
        run_dir = outputs_dir / "runs" / run_id
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "started_at": now(),
            "status": "running",
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "config_source": str(resolve_path(config_path)) if config_path else "config/demo.yml",
            "overrides": overrides or [],
            "config": config,
            "environment": environment_versions(),
            "input_fingerprints": fingerprint_inputs(config),
            "steps": {},
        }
        try:
            (run_dir / "notebooks").mkdir(parents=True)
            (run_dir / "reports").mkdir()
            frozen_config = run_dir / "config.yml"
            frozen_config.write_text(
                yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8"
            )
            write_manifest(run_dir, manifest)
            _say(progress, f"Run {run_id}: {len(notebooks)} steps -> {run_dir}")
            shared = uses_shared_kernel(config["run"]["kernel"], manifest["input_fingerprints"])
            manifest["kernel"] = "shared" if shared else "per_step"
            manifest["overlap_steps"] = shared and len(early) > 1
            if not shared:
                for kernel in early:
                    kernel.close()
            with ThreadPoolExecutor(1, thread_name_prefix="render") as renders:
                _run_steps(
                    run_dir, frozen_config, steps, notebooks, manifest, stop, progress,
                    early if shared else [None], renders,
                )  # fmt: skip
        except RunInterruptedError as interruption:
            stop_kernels()
            manifest.update(status="interrupted", signal=interruption.signal_name, finished_at=now())
            _record_end(run_dir, manifest)
            raise
        except OSError as error:
            manifest.update(status="failed", error=describe_error(error), finished_at=now())
            _record_end(run_dir, manifest)
            folder = Path(error.filename).parent if error.filename else run_dir
            raise OutputsWriteError(cannot_write(folder, error)) from None
    point_latest(outputs_dir, run_dir)
    _say(progress, f"Run {run_id} finished. Reports: {run_dir / 'reports'}")
    return RunResult(run_id=run_id, run_dir=run_dir)


@dataclass
class StepResults:
    """`ready` is set once a step's artifacts are written (`written`: its `RESULTS_CALL` cell ran)
    or its notebook ended."""

    ready: threading.Event = field(default_factory=threading.Event)
    written: bool = False


@dataclass(frozen=True)
class StepExecution:
    """A step's notebook executing in its kernel's worker thread."""

    label: str  # "[position/steps] step"
    step: str
    executed: Path
    sql_engine: str | None
    outcome: Future[StepOutcome]
    results: StepResults
    kernel: SharedKernel | None  # None: a fresh kernel of its own


@dataclass(frozen=True)
class StepOutcome:
    """How a step's notebook execution ended: its error (None: ok), wall and kernel CPU seconds,
    peak kernel memory, and the seconds until its artifacts were written (None: not reached)."""

    error: Exception | None
    seconds: float
    cpu_seconds: float
    peak_mb: float
    results_seconds: float | None


def _run_steps(
    run_dir: Path,
    frozen_config: Path,
    steps: Sequence[Step],
    notebooks: list[Path],
    manifest: dict[str, Any],
    stop: StopOnSignal,
    progress: bool,
    kernels: Sequence[SharedKernel | None],
    renders: ThreadPoolExecutor,
) -> None:
    """Execute the notebooks in order, each in the next of `kernels` in turn (None: a fresh kernel
    per notebook), recording each step in `manifest` (and run.json) in order. With two kernels a
    step starts once the previous step's artifacts are written, else once it ended, and a kernel
    that finished a step resets and imports the modules of its next step while it waits for it. A
    step's pages are rendered in `renders` while the next step runs; a render failure fails its step
    once it is known (at the latest before the run ends)."""
    overlap = len(kernels) > 1
    cell_progress = progress and not overlap  # papermill's cell bars: one step at a time only
    configured = (manifest["config"].get("engine") or {}).get("name", "duckdb")
    pending: tuple[str, Path, Future[tuple[float, str | None]]] | None = None
    running: StepExecution | None = None  # the latest step not yet recorded
    started: list[Future[Any]] = []  # the steps' executions and the kernels' warm-ups
    with ThreadPoolExecutor(1, thread_name_prefix="step") as worker:  # for steps in their own kernel
        try:
            names = [s.name for s in steps]
            for position, (step, notebook) in enumerate(zip(names, notebooks, strict=True), 1):
                if running is not None:
                    running.results.ready.wait()
                    if not (overlap and running.results.written):
                        pending = _finish_step(run_dir, manifest, stop, progress, running, pending, renders)
                        running = None
                slot = (position - 1) % len(kernels)
                sql_engine = step_engine(step, configured)
                note = ""
                if configured != "duckdb" and sql_engine is not None:
                    note = f" (SQL on {sql_engine}" + (
                        ", not yet behind the engine seam)" if sql_engine != configured else ")"
                    )
                label = f"[{position}/{len(notebooks)}] {step}"
                _say(progress, f"{label} ...{note}")
                manifest["running_step"] = step
                executed = run_dir / "notebooks" / notebook.name
                parameters = {"run_dir": str(run_dir), "config_path": str(frozen_config)}
                results = StepResults()
                kernel = kernels[slot]
                arguments = (notebook, executed, parameters, kernel, cell_progress, results)
                outcome = (kernel or worker).submit(_execute_step, *arguments)
                execution = StepExecution(label, step, executed, sql_engine, outcome, results, kernel)
                started.append(outcome)
                if position == 1:  # the other kernel starts and imports while the first step runs
                    for other in kernels[1:]:
                        if other is not None:
                            start_early(other)
                following = position - 1 + len(kernels)  # the next step this kernel runs
                if overlap and kernel is not None and following < len(steps):
                    started.append(kernel.submit(kernel.warm_up, preload_modules(steps[following:])))
                if running is not None:  # the previous step, drawing its charts meanwhile
                    pending = _finish_step(run_dir, manifest, stop, progress, running, pending, renders)
                running = execution
            if running is not None:
                pending = _finish_step(run_dir, manifest, stop, progress, running, pending, renders)
                running = None
        except BaseException:
            if not all(outcome.done() for outcome in started):
                stop_kernels()  # the run ends here: a step still running in the other kernel is stopped
            raise
    if pending is not None:
        _check_render(run_dir, manifest, *pending)
    manifest.pop("running_step", None)
    manifest.update(status="ok", finished_at=now())
    _record_end(run_dir, manifest)


def _execute_step(
    notebook: Path,
    executed: Path,
    parameters: dict[str, Any],
    kernel: SharedKernel | None,
    progress: bool,
    results: StepResults,
) -> StepOutcome:
    """Run one step's notebook into `executed` (in `kernel`, prepared first, else in a fresh kernel);
    mark `results` when its artifacts are written, and ready in any case when it ends."""
    started = time.perf_counter()
    results_seconds: float | None = None

    def results_written() -> None:
        nonlocal results_seconds
        if results_seconds is None:
            results_seconds = round(time.perf_counter() - started, 2)
            results.written = True
            results.ready.set()

    error: Exception | None = None
    processes = kernel.processes if kernel is not None else None  # None: every kernel of this process
    try:
        with PeakMemory(processes) as memory, KernelCpu(processes) as cpu:
            try:
                if kernel is not None:
                    kernel.prepare()  # started on first use, else its namespace reset
                execute_notebook(notebook, executed, parameters, kernel, progress, results_written)
            except Exception as caught:  # papermill wraps cell errors; anything else is a failure too
                error = caught
    finally:
        results.ready.set()
    return StepOutcome(
        error, round(time.perf_counter() - started, 2), cpu.seconds, memory.peak_mb, results_seconds
    )


def _finish_step(
    run_dir: Path,
    manifest: dict[str, Any],
    stop: StopOnSignal,
    progress: bool,
    execution: StepExecution,
    pending: tuple[str, Path, Future[tuple[float, str | None]]] | None,
    renders: ThreadPoolExecutor,
) -> tuple[str, Path, Future[tuple[float, str | None]]]:
    """Wait for `execution` to end and record it; check the earlier step's pages (`pending`) and
    start rendering this step's. A failed step fails the run (`StepFailedError`)."""
    outcome = execution.outcome.result()
    if stop.signal_number is not None:  # the kernel saw Ctrl-C first and papermill reported it
        raise RunInterruptedError(stop.signal_number)
    step, executed = execution.step, execution.executed
    step_record: dict[str, Any] = {
        "seconds": outcome.seconds,
        "cpu_seconds": outcome.cpu_seconds,
        "peak_kernel_rss_mb": outcome.peak_mb,
        "status": "failed" if outcome.error else "ok",
        "sql_engine": execution.sql_engine,
    }
    if outcome.results_seconds is not None:
        step_record["results_seconds"] = outcome.results_seconds
    if execution.kernel is not None and execution.kernel.start_seconds is not None:
        manifest.setdefault("kernel_start_seconds", execution.kernel.start_seconds)
    step_manifest = run_dir / step / STEP_MANIFEST
    if step_manifest.is_file():
        step_record["recorded"] = json.loads(step_manifest.read_text())
    manifest["steps"][step] = step_record
    if pending is not None:  # the previous step's pages, rendered while this step ran
        _check_render(run_dir, manifest, *pending)
    if outcome.error is not None:
        if executed.is_file():  # a failure to render is recorded in render_errors
            _rendered(manifest, step, _render_step(executed, run_dir / "reports", failed=True))
        _fail_step(run_dir, manifest, step, describe_error(outcome.error), executed, outcome.error)
    write_manifest(run_dir, manifest)
    _say(progress, f"{execution.label} done in {outcome.seconds:.1f} s")
    return step, executed, renders.submit(_render_step, executed, run_dir / "reports")


def overlaps_steps(config: dict[str, Any], steps: Sequence[Step]) -> bool:
    """Whether shared kernels come in a pair that overlaps the steps: `run.overlap_steps`, more than
    one step, and SQL on DuckDB (on Spark each kernel would start a JVM of its own)."""
    engine = (config.get("engine") or {}).get("name", "duckdb")
    return bool(config["run"]["overlap_steps"]) and len(steps) > 1 and engine == "duckdb"


def preload_modules(steps: Sequence[Step]) -> tuple[str, ...]:
    """What the first step's notebook imports first: pyplot, the workbench style and its package."""
    return ("matplotlib.pyplot", "helpers.core.plots", steps[0].module) if steps else ()


def start_early(kernel: SharedKernel) -> None:
    """Start `kernel` in its thread ahead of the first step, without waiting; if that fails, leave
    it to the first step, which records the cause as its failure."""
    kernel.submit(_start_or_close, kernel)


def _start_or_close(kernel: SharedKernel) -> None:
    try:
        kernel.start()
    except Exception:  # any start failure is met again, and reported, by the first step's prepare
        kernel.close()


def uses_shared_kernel(kernel: str, fingerprints: dict[str, dict[str, Any]]) -> bool:
    """`run.kernel`: shared, per_step, or auto: shared while the raw files total under
    `SHARED_KERNEL_MAX_INPUT_BYTES` (at a million customers a kernel per step returns each step's
    memory; its extra starts are a few per cent of the run there)."""
    if kernel != "auto":
        return kernel == "shared"
    return sum(entry.get("bytes", 0) for entry in fingerprints.values()) < SHARED_KERNEL_MAX_INPUT_BYTES


def execute_notebook(
    notebook: Path,
    executed: Path,
    parameters: dict[str, Any],
    kernel: SharedKernel | None = None,
    progress: bool = False,
    on_results: Callable[[], None] | None = None,
) -> None:
    """Execute `notebook` with papermill into `executed` (parameters injected), in `kernel` when
    given (it must be prepared), else in a fresh kernel that is stopped afterwards. `on_results` is
    called once the first cell with `RESULTS_CALL` has run without error."""
    engine: dict[str, Any] = (
        kernel.engine_arguments() if kernel is not None else {"extra_arguments": KERNEL_ARGUMENTS}
    )
    if on_results is not None:

        def cell_executed(cell: Any, cell_index: int, execute_reply: dict[str, Any] | None) -> None:
            ok = (execute_reply or {}).get("content", {}).get("status") == "ok"
            if ok and RESULTS_CALL in cell.source:
                on_results()

        engine["on_cell_executed"] = cell_executed
    execute = partial(
        papermill.execute_notebook,
        str(notebook),
        str(executed),
        parameters=parameters,
        kernel_name=KERNEL_NAME,
        cwd=str(PROJECT_ROOT),
        progress_bar=progress,
        request_save_on_cell_execute=False,
        **engine,
    )
    if kernel is not None:
        kernel.in_thread(execute)
    else:
        execute()


def _render_step(executed: Path, reports: Path, failed: bool = False) -> tuple[float, str | None]:
    """Render a step's pages; the seconds it took and, when it failed, the cause (never raises: a
    partial notebook's render must never hide the step's own error)."""
    started = time.perf_counter()
    try:
        render_reports(executed, reports, failed=failed)
    except Exception as error:  # nbconvert, templates, a full disk: all recorded, none raised
        return round(time.perf_counter() - started, 2), describe_error(error)
    return round(time.perf_counter() - started, 2), None


def _rendered(manifest: dict[str, Any], step: str, outcome: tuple[float, str | None]) -> str | None:
    """Record a render's seconds in the step's record and its failure in `render_errors`."""
    seconds, cause = outcome
    manifest["steps"][step]["render_seconds"] = seconds
    if cause is not None:
        manifest.setdefault("render_errors", []).append(f"{step}: {cause}")
    return cause


def _check_render(
    run_dir: Path,
    manifest: dict[str, Any],
    step: str,
    executed: Path,
    render: Future[tuple[float, str | None]],
) -> None:
    """Wait for `step`'s pages; a failed render fails that step (and the run)."""
    cause = _rendered(manifest, step, render.result())
    if cause is not None:
        _fail_step(run_dir, manifest, step, f"its reports were not written: {cause}", executed)


def _fail_step(
    run_dir: Path,
    manifest: dict[str, Any],
    step: str,
    cause: str,
    executed: Path,
    error: Exception | None = None,
) -> None:
    """Record `step` and the run as failed (run.json, index page) and raise `StepFailedError`."""
    manifest["steps"][step].update(status="failed", error=cause)
    manifest.update(status="failed", failed_step=step, finished_at=now())
    manifest.pop("running_step", None)
    _record_end(run_dir, manifest)
    raise StepFailedError(
        f"Step {step} failed: {cause}\n"
        f"  executed notebook with the error: {executed}\n"
        f"  outputs/latest was not changed.{disk_note(run_dir)}"
    ) from error


def _render_safely(manifest: dict[str, Any], label: str, render: Callable[[], object]) -> str | None:
    """Render, recording a failure in `manifest["render_errors"]` and returning its description
    instead of raising: a partial notebook's render must never hide the step's own error."""
    try:
        render()
    except Exception as error:  # nbconvert, templates, a full disk: all recorded, none raised
        cause = describe_error(error)
        manifest.setdefault("render_errors", []).append(f"{label}: {cause}")
        return cause
    return None


def _record_end(run_dir: Path, manifest: dict[str, Any]) -> None:
    """Write the final run.json, then the index page (it reads the status from run.json). After a
    failure this is best effort (the caller reports the cause); a finished run must be recorded."""
    if "running_step" in manifest and manifest["status"] == "interrupted":
        manifest["interrupted_step"] = manifest.pop("running_step")
    finished = manifest["status"] == "ok"
    with contextlib.suppress(*(() if finished else (OSError,))):
        write_manifest(run_dir, manifest)
        if (run_dir / "reports").is_dir() and _render_safely(
            manifest, "index", partial(write_index, run_dir)
        ):
            write_manifest(run_dir, manifest)  # with the render error


class RunLockedError(RuntimeError):
    """Another run holds the outputs folder's run lock."""


class OutputsWriteError(RuntimeError):
    """A run folder could not be written (full disk, read-only folder); one line naming the folder."""


class RunInterruptedError(BaseException):
    """SIGINT or SIGTERM reached the runner (a BaseException, like KeyboardInterrupt, so that no
    step-error handler takes it for a failure)."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        self.signal_name = signal.Signals(signal_number).name
        self.exit_code = 128 + signal_number
        super().__init__(f"run interrupted by {self.signal_name}; the kernel was stopped")


class RunLock:
    """One run at a time per outputs folder: `fcntl.flock` on `<outputs>/.run.lock`, which holds the
    active run's id and pid. Released on any exit (the kernel drops it when the process dies)."""

    def __init__(self, outputs_dir: Path, run_id: str) -> None:
        self.path = outputs_dir / LOCK_FILE
        self.run_id = run_id
        self._handle: Any = None

    def __enter__(self) -> RunLock:
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().split()
            handle.close()
            active = f"run {holder[0]} (pid {holder[1]})" if len(holder) == 2 else "another run"
            raise RunLockedError(
                f"{active} is active in {self.path.parent}; wait for it to finish or stop it"
            ) from None
        handle.truncate(0)
        handle.write(f"{self.run_id} {os.getpid()}\n")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *_: object) -> None:
        self._handle.truncate(0)
        fcntl.flock(self._handle, fcntl.LOCK_UN)
        self._handle.close()


class StopOnSignal:
    """While active (in the main thread), SIGINT and SIGTERM raise `RunInterruptedError` once;
    later signals are ignored until the previous handlers come back on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signal_number: int, _frame: object) -> None:
        if self.signal_number is None:
            self.signal_number = signal_number
            raise RunInterruptedError(signal_number)

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *_: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def kernel_processes() -> list[psutil.Process]:
    """This process's notebook kernels (ipykernel) and every process they started; not its other
    children (e.g. a Spark JVM the calling process itself runs)."""
    found: dict[int, psutil.Process] = {}
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if any("ipykernel" in part for part in child.cmdline()):
                found |= {p.pid: p for p in [child, *child.children(recursive=True)]}
    return list(found.values())


def stop_kernels(timeout_seconds: float = 5.0) -> None:
    """Terminate this process's notebook kernels and their children, killing those that do not exit."""
    children = kernel_processes()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout_seconds)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


def disk_note(run_dir: Path) -> str:
    """A line naming the run folder's disk when it is (nearly) full, else nothing."""
    free = shutil.disk_usage(run_dir).free
    if free >= MIN_FREE_BYTES:
        return ""
    return f"\n  the disk of {run_dir} is full ({free / 2**20:.0f} MB free): free space or use --outputs"


def cannot_write(folder: Path, error: OSError) -> str:
    """One line naming the folder that could not be written and why."""
    reason = error.strerror or str(error)
    return f"cannot write to {folder}: {reason}; free space or choose another folder with --outputs"


class PeakMemory:
    """Samples the resident memory of `processes()` while active (default: this process's notebook
    kernels and their children)."""

    def __init__(
        self,
        processes: Callable[[], list[psutil.Process]] | None = None,
        interval_seconds: float = 0.25,
    ) -> None:
        self.processes = processes or kernel_processes
        self.interval_seconds = interval_seconds
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def peak_mb(self) -> float:
        return round(self.peak_bytes / 2**20, 1)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            for child in self.processes():
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_seconds)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class KernelCpu:
    """CPU seconds (user + system) of this process's child processes while active: the notebook
    kernel, the processes it runs (a Spark JVM lives as long as the kernel) and every process they
    waited for. Descendants alive at the start or the end are read with psutil; children that ended
    meanwhile and were waited for, with `getrusage(RUSAGE_CHILDREN)`. A shared kernel that lives
    through many steps is thus charged per step. With `processes` (one kernel's process tree, while
    another kernel runs too) only those are counted.

    The tree is also read every `interval_seconds` while active, and the step is charged the most
    any reading found: a process its parent never waits for leaves the tree with its CPU when the
    parent ends. So does the Spark JVM of a kernel of its own (`run.kernel: per_step`): it outlives
    the stopped kernel, is reparented, and neither reading at the end saw its CPU (step 01 at 1M on
    Spark: 72 s recorded, the JVM alone had used 517 s). What it uses after the last reading before
    the kernel stops (its shutdown) is not counted."""

    def __init__(
        self, processes: Callable[[], list[psutil.Process]] | None = None, interval_seconds: float = 0.25
    ) -> None:
        self.seconds = 0.0
        self._processes = processes
        self._interval_seconds = interval_seconds
        self._ended = 0.0
        self._alive = 0.0
        self._most = 0.0  # the largest reading so far
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _ended_children(self) -> float:
        if self._processes is not None:
            return 0.0  # what the kernel waited for is in its own children's times
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    def _alive_children(self) -> float:
        total = 0.0
        # Every live descendant; each also counts the ended processes it waited for.
        processes = self._processes() if self._processes else psutil.Process().children(recursive=True)
        for child in processes:
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def _used(self) -> float:
        """CPU seconds used since the start, as far as the processes now in the tree tell."""
        return self._ended_children() - self._ended + self._alive_children() - self._alive

    def _sample(self) -> None:
        while not self._stop.wait(self._interval_seconds):
            self._most = max(self._most, self._used())

    def __enter__(self) -> KernelCpu:
        self._ended, self._alive = self._ended_children(), self._alive_children()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = round(max(self._used(), self._most, 0.0), 2)


class KernelError(RuntimeError):
    """The shared kernel could not be started or reset."""


# Run once in a new shared kernel: the working folder every reset returns to.
KERNEL_SETUP = """
import os as _os
get_ipython().workbench_folder = _os.getcwd()
del _os
"""
# Run before each notebook in the shared kernel: the notebook finds a namespace as fresh as a new
# kernel's (modules stay imported: that is the point), and the memory of the last one is returned.
# What survives the collection (modules, their caches: ~1M objects once every step's libraries are
# loaded) is frozen: later collections, IPython's in `reset` and the automatic ones during a step,
# no longer scan it (each full collection took 0.3-0.8 s).
KERNEL_RESET = """
def _workbench_reset():
    import ctypes, gc, os, sys

    shell = get_ipython()
    # user variables, Out, the _ / __ / ___ history; a new history session, so the execution count
    # starts at 1 again without IPython's "Session/line number was not unique" error in the output
    shell.reset(new_session=True)
    os.chdir(shell.workbench_folder)
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
    gc.collect()
    gc.freeze()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # give freed heap back to the OS (glibc)
    except (OSError, AttributeError):
        pass


_workbench_reset()
"""


class SharedKernel:
    """One IPython kernel for all the notebooks of a run, started on first use (`prepare`) or ahead
    of it (`start`) in the project folder, its user namespace reset before every later notebook,
    shut down on exit. `preload`: modules `start` has the kernel import while the caller goes on
    (e.g. generating the demo world); the first `prepare` waits for them.

    Everything that talks to the kernel runs in the kernel's own thread (`in_thread`, `submit`),
    whichever thread calls: a kernel client used from two threads' event loops leaves the first
    loop unable to hear a later kernel (a notebook executed there afterwards waits forever)."""

    def __init__(
        self, cwd: Path = PROJECT_ROOT, startup_timeout: float = 120.0, preload: Sequence[str] = ()
    ) -> None:
        self.cwd = cwd
        self.startup_timeout = startup_timeout
        self.preload = tuple(preload)
        self.start_seconds: float | None = None
        self._km: AsyncKernelManager | None = None
        self._kc: Any = None
        self._preloading: str | None = None  # the id of the preload's execute request
        self._used = False  # a notebook has run in it: the next one needs a reset
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="shared-kernel")
        self._thread_id = self._thread.submit(threading.get_ident).result()

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run `function(*args)` in the kernel's thread, after what was submitted before."""
        return self._thread.submit(function, *args)

    def in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        """`function(*args)`, called in the kernel's thread; its result."""
        if threading.get_ident() == self._thread_id:
            return function(*args)
        return self.submit(function, *args).result()

    def start(self) -> None:
        """Start the kernel and send it the `preload` imports without waiting for them."""
        self.in_thread(self._start)

    def _start(self) -> None:
        if self._km is not None:
            return
        started = time.perf_counter()
        self._km = AsyncKernelManager(kernel_name=KERNEL_NAME)
        run_sync(self._km.start_kernel)(extra_arguments=KERNEL_ARGUMENTS, cwd=str(self.cwd))
        self._kc = self._km.client()
        self._kc.start_channels()
        run_sync(self._kc.wait_for_ready)(timeout=self.startup_timeout)
        self.run_code(KERNEL_SETUP)
        self.start_seconds = round(time.perf_counter() - started, 2)
        if self.preload:  # a comprehension binds no name in the notebook's namespace
            code = f"[__import__('importlib').import_module(name) for name in {self.preload!r}]"
            self._preloading = self._kc.execute(code, silent=True)

    def prepare(self) -> None:
        """Start the kernel on first use (or wait for its preload); else reset its namespace for the
        next notebook (unless `warm_up` did). A failed preload is not raised here: the notebook's own
        import reports it."""
        self.in_thread(self._prepare)

    def _prepare(self) -> None:
        if self._used:
            self.run_code(KERNEL_RESET)
            return
        self._start()
        if self._preloading is not None:
            run_sync(self._reply)(self._preloading, self.startup_timeout)
            self._preloading = None
        self._used = True

    def warm_up(self, modules: Sequence[str]) -> None:
        """After a notebook, while the kernel waits for its next one: reset the namespace and import
        `modules` now, so the next `prepare` finds both done. A failed import is left to the next
        notebook's own import; a failed reset, to the next `prepare`, which tries again."""
        self.in_thread(self._warm_up, tuple(modules))

    def _warm_up(self, modules: tuple[str, ...]) -> None:
        self._prepare()
        with contextlib.suppress(KernelError):
            self.run_code(f"[__import__('importlib').import_module(name) for name in {modules!r}]")
        self._used = False

    async def _reply(self, msg_id: str, timeout: float) -> dict[str, Any]:
        """The kernel's reply to request `msg_id` (its output messages are left to nbclient, which
        skips messages of other requests); `KernelError` when the kernel dies or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = await self._kc.get_shell_msg(timeout=min(remaining, 1.0))
            except queue.Empty:
                if not await self._km.is_alive():
                    raise KernelError("the shared kernel died") from None
                continue
            if message["parent_header"].get("msg_id") == msg_id:
                return message
        raise KernelError(f"the shared kernel did not answer within {timeout:.0f} s")

    def run_code(self, code: str, timeout: float = 120.0) -> None:
        """Run `code` silently in the kernel; raise `KernelError` with the kernel's error, or when it
        dies or does not answer within `timeout` seconds."""
        self.in_thread(self._run_code, code, timeout)

    def _run_code(self, code: str, timeout: float) -> None:
        if self._kc is None:
            raise KernelError("the shared kernel is not started")
        reply = run_sync(self._reply)(self._kc.execute(code, silent=True), timeout)
        content = reply["content"]
        if content.get("status") != "ok":
            raise KernelError(f"{content.get('ename', 'error')}: {content.get('evalue', '')}")

    def processes(self) -> list[psutil.Process]:
        """The kernel's process and every process it started (none before it starts)."""
        pid = getattr(getattr(self._km, "provisioner", None), "pid", None)
        try:
            kernel = psutil.Process(pid) if pid is not None else None
            return [kernel, *kernel.children(recursive=True)] if kernel is not None else []
        except psutil.Error:
            return []

    def engine_arguments(self) -> dict[str, Any]:
        """papermill arguments that execute a notebook in this kernel."""
        return {"engine_name": SHARED_ENGINE, "km": self._km, "kc": self._kc}

    def close(self, stop_kernel: bool = True) -> None:
        """Stop the client and (unless the caller kills it) the kernel, at once: nothing is left to
        run in it."""
        self.in_thread(self._close, stop_kernel)

    def _close(self, stop_kernel: bool) -> None:
        with contextlib.suppress(Exception):
            if self._kc is not None:
                self._kc.stop_channels()
        with contextlib.suppress(Exception):
            if stop_kernel and self._km is not None and self._km.has_kernel:
                run_sync(self._km.shutdown_kernel)(now=True)
        self._km = self._kc = None

    def __enter__(self) -> SharedKernel:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        # After Ctrl-C a cell may still run in the kernel's thread: `stop_kernels` kills the kernel
        # first (the thread then sees it die), and only the client is closed.
        graceful = kind is None or issubclass(kind, Exception)
        if not graceful:
            stop_kernels()
        self.close(stop_kernel=graceful)
        self._thread.shutdown()


class SharedKernelEngine(NBClientEngine):
    """papermill's nbclient engine, executing in a running kernel (engine arguments `km`, `kc`)
    instead of starting and stopping one per notebook."""

    @classmethod
    def execute_managed_notebook(  # type: ignore[override]
        cls,
        nb_man: Any,
        kernel_name: str,
        log_output: bool = False,
        stdout_file: Any = None,
        stderr_file: Any = None,
        start_timeout: int = 60,
        execution_timeout: float | None = None,
        km: AsyncKernelManager | None = None,
        kc: Any = None,
        **kwargs: Any,
    ) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if k not in {"input_path", "timeout", "startup_timeout"}}
        client = PapermillNotebookClient(
            nb_man,
            km=km,
            timeout=execution_timeout,
            startup_timeout=start_timeout,
            kernel_name=kernel_name,
            log=papermill_logger,
            log_output=log_output,
            stdout_file=stdout_file,
            stderr_file=stderr_file,
            **kwargs,
        )
        client.kc = kc  # reuse the kernel's client: nbclient neither starts nor stops one
        return client.execute()


papermill_engines.register(SHARED_ENGINE, SharedKernelEngine)


def ensure_demo_data(config: dict[str, Any], progress: bool = True) -> None:
    """Generate the demo world into `data.raw_dir` when the config has a `demo` section and the
    folder is missing or empty (`config` is validated: every default is filled in)."""
    demo = config.get("demo")
    raw_dir = resolve_path(config["data"]["raw_dir"])
    if not demo or (raw_dir.is_dir() and any(raw_dir.iterdir())):
        return
    # Processes that need the same world at once (parallel test workers) take turns: the first
    # generates it, the others find it complete (generation stages into one shared hidden folder).
    raw_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(raw_dir.parent / f".{raw_dir.name}.demo-lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if raw_dir.is_dir() and any(raw_dir.iterdir()):
            return
        _say(progress, f"Generating the demo world ({demo['customers']} customers) into {raw_dir}")
        generate_configured_demo(config, progress=progress)


def generate_configured_demo(config: dict[str, Any], progress: bool = False) -> dict[str, int]:
    """Write the demo world the config's `demo` section describes into `data.raw_dir` and its truth
    into `demo.truth_dir` (default `data/truth/<raw dir name>`); returns rows per file."""
    from helpers.demo.world import generate_demo_world

    demo = config["demo"]
    raw_dir = resolve_path(config["data"]["raw_dir"])
    truth_dir = resolve_path(demo["truth_dir"] or Path("data/truth") / raw_dir.name)
    return generate_demo_world(
        raw_dir,
        truth_dir,
        n_customers=demo["customers"],
        seed=demo["seed"],
        style=demo["style"],
        reference_date=str(config["run"]["reference_date"]),
        progress=progress,
    )


def fingerprint_inputs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """SHA-256 and size of every configured raw file, so a run records exactly what it read."""
    raw_dir = resolve_path(config["data"]["raw_dir"])
    fingerprints: dict[str, dict[str, Any]] = {}
    for table, spec in config["data"]["tables"].items():
        path = raw_dir / spec["file"]
        if not path.is_file():
            fingerprints[table] = {"file": str(path), "missing": True}
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
        fingerprints[table] = {"file": str(path), "bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return fingerprints


def environment_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages that shape results."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for package in PINNED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def describe_error(error: Exception) -> str:
    """One line: the exception type and message from inside the notebook."""
    name = getattr(error, "ename", type(error).__name__)
    value = getattr(error, "evalue", str(error))
    return f"{name}: {value}".strip()


def point_latest(outputs_dir: Path, run_dir: Path) -> None:
    """Atomically repoint `outputs/latest` at `run_dir`."""
    latest = outputs_dir / "latest"
    temporary = outputs_dir / f".latest-{os.getpid()}"
    if temporary.is_symlink() or temporary.exists():
        temporary.unlink()
    temporary.symlink_to(run_dir.relative_to(outputs_dir))
    temporary.replace(latest)


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, flush=True)
