"""The runner on tiny stand-in notebooks: order, run folder, manifest, renders, failure handling."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml

from helpers.core.config import ConfigError, apply_override, load_config
from helpers.core.paths import NOTEBOOKS_DIR
from helpers.core.runner import (
    KernelCpu,
    KernelError,
    RunResult,
    SharedKernel,
    StepFailedError,
    overlaps_steps,
    preload_modules,
    run_workbench,
    step_notebooks,
    uses_shared_kernel,
)
from helpers.core.steps import STEPS, Step

ROOT = Path(__file__).resolve().parents[1]
# Two stand-in steps for the tiny notebooks below (the real registry is helpers.core.steps.STEPS).
FIRST = Step("01_first", "first", "First", reads=(), writes=("01_first/numbers",))
SECOND = Step("02_second", "second", "Second", reads=("01_first/numbers",), writes=())
STAND_INS = (FIRST, SECOND)
# Ten contacts: enough for the pre-flight (files, columns, dates, k range); the stand-ins read none.
CONTACTS = "cti_id,phone,first_call_at\n" + "".join(
    f"{i},1380000000{i},2026-01-05 10:00:00\n" for i in range(10)
)


def _notebook(path: Path, body: str, tags: list[str] | None = None) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('run_dir = ""\nconfig_path = ""')
    parameters.metadata["tags"] = ["parameters"]
    cell = nbformat.v4.new_code_cell(body)
    cell.metadata["tags"] = tags or []
    notebook.cells = [nbformat.v4.new_markdown_cell("# Step"), parameters, cell]
    nbformat.write(notebook, path)


@pytest.fixture()
def workspace(tmp_path: Path) -> dict[str, Path]:
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "contacts.csv").write_text(CONTACTS)
    config = tmp_path / "config.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "run": {"seed": 1, "reference_date": "2026-06-30"},
                "data": {"raw_dir": str(raw), "tables": {"cti_contacts": {"file": "contacts.csv"}}},
            }
        )
    )
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    step_one = (
        "from helpers.core.context import open_step\n"
        "import pandas as pd\n"
        "ctx = open_step('01_first', run_dir, config_path)\n"
        "ctx.write('numbers', pd.DataFrame({'x': [1, 2, 3]}))\n"
        "ctx.record(total=6)\n"
        "print('customer secret-name-123')"
    )
    _notebook(notebooks / "01_first.ipynb", step_one, tags=["pii"])
    step_two = (
        "from helpers.core.context import open_step\n"
        "ctx = open_step('02_second', run_dir, config_path)\n"
        "print('sum', ctx.read('01_first', 'numbers').x.sum())"
    )
    _notebook(notebooks / "02_second.ipynb", step_two, tags=["analyst"])
    (notebooks / "scratch.ipynb").write_text("{}")  # not a registered step: never run
    (notebooks / "03_extra.ipynb").write_text("{}")  # numbered, not registered: never run
    return {"config": config, "notebooks": notebooks, "outputs": tmp_path / "outputs", "raw": raw}


def run_stand_ins(workspace: dict[str, Path], overrides: list[str] | None = None) -> RunResult:
    """Run the two stand-in steps' notebooks of `workspace` quietly."""
    return run_workbench(
        workspace["config"],
        overrides=overrides,
        outputs_dir=workspace["outputs"],
        notebooks_dir=workspace["notebooks"],
        progress=False,
        steps=STAND_INS,
    )


def test_the_runner_runs_the_registered_steps_in_order(workspace: dict[str, Path]) -> None:
    assert step_notebooks() == [step.notebook for step in STEPS]
    assert [path.parent for path in step_notebooks()] == [NOTEBOOKS_DIR] * len(STEPS)
    assert [p.name for p in step_notebooks(STAND_INS, workspace["notebooks"])] == [
        "01_first.ipynb",
        "02_second.ipynb",
    ]


def test_a_missing_step_notebook_stops_the_run_before_anything_runs(workspace: dict[str, Path]) -> None:
    (workspace["notebooks"] / "02_second.ipynb").unlink()
    with pytest.raises(FileNotFoundError, match=r"02_second\.ipynb"):
        run_stand_ins(workspace)
    assert not workspace["outputs"].exists()


def test_a_complete_run_writes_manifest_artifacts_reports_and_moves_latest(
    workspace: dict[str, Path],
) -> None:
    result = run_stand_ins(workspace)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    assert manifest["status"] == "ok"
    assert list(manifest["steps"]) == ["01_first", "02_second"]
    assert manifest["steps"]["01_first"]["recorded"] == {"total": 6}
    assert manifest["steps"]["01_first"]["peak_kernel_rss_mb"] > 20
    assert manifest["input_fingerprints"]["cti_contacts"]["bytes"] == len(CONTACTS)
    assert len(manifest["input_fingerprints"]["cti_contacts"]["sha256"]) == 64
    assert manifest["pid"] == os.getpid() and manifest["host"] and "running_step" not in manifest
    assert manifest["environment"]["pandas"] == __import__("pandas").__version__
    assert (result.run_dir / "01_first" / "numbers.parquet").is_file()
    executed = nbformat.read(result.run_dir / "notebooks" / "02_second.ipynb", as_version=4)
    assert "sum 6" in executed.cells[-1].outputs[0]["text"]
    full = (result.run_dir / "reports" / "01_first.html").read_text()
    management = (result.run_dir / "reports" / "01_first.management.html").read_text()
    assert "secret-name-123" in full
    assert "secret-name-123" not in management  # the pii cell is gone
    for html in (full, management):  # no scripts or styles from the internet
        assert not re.search(r'<(script|link)[^>]*(src|href)="https?://', html)
        assert not re.search(r"<script\b(?:(?!</script>).)*https?://", html, re.DOTALL)
    second_management = (result.run_dir / "reports" / "02_second.management.html").read_text()
    assert "ctx.write" not in second_management
    assert "sum 6" in (result.run_dir / "reports" / "02_second.html").read_text()
    assert "sum 6" not in second_management  # the analyst cell is gone
    assert (workspace["outputs"] / "latest").resolve() == result.run_dir.resolve()


def test_a_failing_step_names_step_and_cause_and_leaves_latest_alone(workspace: dict[str, Path]) -> None:
    good = run_stand_ins(workspace)
    _notebook(
        workspace["notebooks"] / "02_second.ipynb", "raise ValueError('column amount in sales.csv is bad')"
    )
    with pytest.raises(
        StepFailedError, match=r"Step 02_second failed: ValueError: column amount in sales\.csv"
    ):
        run_stand_ins(workspace)
    assert (workspace["outputs"] / "latest").resolve() == good.run_dir.resolve()
    failed_runs = [p for p in (workspace["outputs"] / "runs").iterdir() if p != good.run_dir]
    manifest = json.loads((failed_runs[0] / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_step"] == "02_second"
    assert "column amount" in (failed_runs[0] / "reports" / "02_second.html").read_text()
    assert "出错" in (failed_runs[0] / "reports" / "index.html").read_text()  # the index says it failed


def test_cli_exits_non_zero_with_a_short_message(workspace: dict[str, Path]) -> None:
    bad_config = workspace["config"].with_name("missing.yml")
    completed = subprocess.run(
        [sys.executable, "-m", "helpers", "run", "--config", str(bad_config), "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
        check=False,
    )
    assert completed.returncode == 2
    assert "Config file not found" in completed.stderr and "missing.yml" in completed.stderr


def test_config_overrides_and_extends(tmp_path: Path) -> None:
    base = tmp_path / "base.yml"
    base.write_text("run: {seed: 1, reference_date: '2026-01-01'}\nidentity: {match_threshold: 0.9}\n")
    child = tmp_path / "child.yml"
    child.write_text("extends: base.yml\nrun: {seed: 5}\n")
    config = load_config(child, ["identity.match_threshold=0.95", "clustering.choose=kmeans:6"])
    assert config["run"] == {
        "seed": 5,
        "reference_date": "2026-01-01",
        "kernel": "auto",
        "overlap_steps": True,
    }
    assert config["identity"]["match_threshold"] == 0.95
    assert config["clustering"]["choose"] == "kmeans:6"
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        apply_override(config, "no-equals-sign")


@pytest.mark.parametrize(("kernel", "overlap"), [("shared", True), ("shared", False), ("per_step", True)])
def test_no_notebook_sees_what_an_earlier_one_left_in_memory(
    workspace: dict[str, Path], kernel: str, overlap: bool
) -> None:
    """Two shared kernels taking turns (the default), one for the whole run, or one per step: either
    way a notebook starts from a fresh namespace, the project folder and execution count 1 (imported
    modules stay)."""
    probe = (
        "import os, warnings\n"
        "from helpers.core.context import open_step\n"
        "ctx = open_step({step!r}, run_dir, config_path)\n"
        "ctx.record(pid=os.getpid(), cwd=os.getcwd(),\n"
        "           names=sorted(n for n in globals() if not n.startswith('_')))\n"
    )
    leave_behind = (
        "import pandas as pd\n"
        "ctx.write('numbers', pd.DataFrame({'x': [1, 2, 3]}))\n"
        "leftover = 'step one'\n"
        "os.chdir('/')"
    )
    _notebook(workspace["notebooks"] / "01_first.ipynb", probe.format(step="01_first") + leave_behind)
    _notebook(workspace["notebooks"] / "02_second.ipynb", probe.format(step="02_second"))
    result = run_stand_ins(workspace, [f"run.kernel={kernel}", f"run.overlap_steps={overlap}"])
    manifest = json.loads((result.run_dir / "run.json").read_text())
    first, second = (manifest["steps"][step]["recorded"] for step in ("01_first", "02_second"))
    one_kernel = kernel == "shared" and not overlap
    assert (first["pid"] == second["pid"]) is one_kernel and manifest["kernel"] == kernel
    assert manifest["overlap_steps"] is (kernel == "shared" and overlap)
    assert ("kernel_start_seconds" in manifest) is (kernel == "shared")
    assert "leftover" not in second["names"] and second["names"] == first["names"]
    assert {"ctx", "open_step", "os", "warnings", "run_dir", "config_path"} <= set(second["names"])
    assert second["cwd"] == first["cwd"] == str(ROOT)
    executed = nbformat.read(result.run_dir / "notebooks" / "02_second.ipynb", as_version=4)
    counts = [cell.execution_count for cell in executed.cells if cell.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    for step in ("01_first", "02_second"):
        record = manifest["steps"][step]
        assert record["status"] == "ok" and record["cpu_seconds"] > 0 and record["render_seconds"] > 0


def test_steps_overlap_on_duckdb_with_more_than_one_step_unless_switched_off() -> None:
    config = {"run": {"overlap_steps": True}, "engine": {"name": "duckdb"}}
    assert overlaps_steps(config, STAND_INS)
    assert not overlaps_steps(config, STAND_INS[:1])
    assert not overlaps_steps({**config, "run": {"overlap_steps": False}}, STAND_INS)
    assert not overlaps_steps({**config, "engine": {"name": "spark"}}, STAND_INS)  # a JVM per kernel


def test_auto_shares_one_kernel_below_a_gibibyte_of_raw_files() -> None:
    files = {"calls": {"bytes": 600 * 2**20}, "crm_customers": {"bytes": 300 * 2**20}}
    assert uses_shared_kernel("auto", files) and uses_shared_kernel("auto", {"calls": {"missing": True}})
    assert not uses_shared_kernel("auto", {**files, "surveys": {"bytes": 200 * 2**20}})
    assert uses_shared_kernel("shared", {"calls": {"bytes": 2**40}})
    assert not uses_shared_kernel("per_step", {})


def test_a_kernel_started_early_has_the_first_steps_modules_loaded_and_nothing_bound() -> None:
    """`start` sends the preload imports and returns; the first `prepare` waits for them. The modules
    are loaded, no name is left in the namespace, and a module that cannot be imported leaves the
    kernel usable (the notebook's own import reports it)."""
    assert preload_modules(STEPS) == ("matplotlib.pyplot", "helpers.core.plots", "helpers.audit")
    with SharedKernel(preload=("json", "helpers.no_such_step", "tabnanny")) as kernel:
        kernel.start()
        kernel.prepare()
        kernel.run_code("import sys\nassert 'json' in sys.modules and 'tabnanny' not in sys.modules")
        kernel.run_code("assert 'json' not in dir() and 'name' not in dir()")
    with SharedKernel(preload=("json", "csv")) as kernel:
        kernel.start()
        kernel.prepare()
        kernel.run_code("import sys\nassert {'json', 'csv'} <= set(sys.modules)")


def _cells_notebook(path: Path, *bodies: str) -> None:
    """A stand-in notebook with the parameters cell and one code cell per body."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('run_dir = ""\nconfig_path = ""')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, *(nbformat.v4.new_code_cell(body) for body in bodies)]
    nbformat.write(notebook, path)


# Step one writes its artifact in its run_step cell, then "draws charts" for `{seconds}` seconds.
RESULTS_THEN_CHARTS = (
    "import time\n"
    "import pandas as pd\n"
    "from helpers.core.context import open_step\n"
    "ctx = open_step('01_first', run_dir, config_path)\n"
    "def run_step(ctx):\n"
    "    ctx.write('numbers', pd.DataFrame({'x': [1, 2, 3]}))\n"
    "run_step(ctx)",
)
SECOND_STARTS = (
    "import time\n"
    "from helpers.core.context import open_step\n"
    "ctx = open_step('02_second', run_dir, config_path)\n"
    "ctx.record(started=time.time(), total=int(ctx.read('01_first', 'numbers').x.sum()))"
)


def test_overlapping_steps_start_the_next_step_once_the_results_are_written(
    workspace: dict[str, Path],
) -> None:
    """With two kernels (the default) step two starts while step one still draws its charts; each
    step is recorded in order, with the seconds until its results were written."""
    charts = "time.sleep(6)\nctx.record(charts_done=time.time())"
    _cells_notebook(workspace["notebooks"] / "01_first.ipynb", *RESULTS_THEN_CHARTS, charts)
    _cells_notebook(workspace["notebooks"] / "02_second.ipynb", SECOND_STARTS)
    result = run_stand_ins(workspace)
    manifest = json.loads((result.run_dir / "run.json").read_text())
    first, second = (manifest["steps"][step] for step in ("01_first", "02_second"))
    assert manifest["status"] == "ok" and manifest["overlap_steps"] is True
    assert list(manifest["steps"]) == ["01_first", "02_second"]
    assert second["recorded"]["total"] == 6
    assert second["recorded"]["started"] < first["recorded"]["charts_done"] - 1
    assert first["results_seconds"] < first["seconds"] - 5  # the charts took 6 s after the results
    assert "results_seconds" not in second  # no run_step cell: the next step would wait for its end


def test_a_step_failing_after_its_results_fails_the_run_and_stops_the_next_step(
    workspace: dict[str, Path],
) -> None:
    """A chart that fails after the next step started still fails its own step, first; the next
    step, still running in the other kernel, is stopped and no kernel is left."""
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    started = time.monotonic()
    broken_chart = (  # fails once step two is running (it recorded its start)
        "for _ in range(600):\n"
        "    if (ctx.run_dir / '02_second' / 'step.json').is_file():\n"
        "        break\n"
        "    time.sleep(0.1)\n"
        "raise ValueError('chart of calls.csv failed')"
    )
    _cells_notebook(workspace["notebooks"] / "01_first.ipynb", *RESULTS_THEN_CHARTS, broken_chart)
    _cells_notebook(workspace["notebooks"] / "02_second.ipynb", SECOND_STARTS + "\ntime.sleep(120)")
    with pytest.raises(StepFailedError, match=r"Step 01_first failed: ValueError: chart of calls\.csv"):
        run_stand_ins(workspace)
    assert time.monotonic() - started < 60  # step two's 120 s sleep was cut short
    run_dir = next((workspace["outputs"] / "runs").iterdir())
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "failed" and manifest["failed_step"] == "01_first"
    assert list(manifest["steps"]) == ["01_first"]
    assert json.loads((run_dir / "02_second" / "step.json").read_text())["total"] == 6  # it had started
    assert not {child.pid for child in psutil.Process().children(recursive=True)} - before
    assert not (workspace["outputs"] / "latest").exists()


def test_a_kernel_warmed_up_between_notebooks_is_reset_and_has_the_next_modules() -> None:
    """`warm_up` resets the namespace and imports the next step's modules while the kernel waits;
    the next `prepare` then has nothing left to do. A module that cannot be imported is left to the
    notebook, and a kernel that died is reported at once instead of waiting for the timeout."""
    with SharedKernel() as kernel:
        kernel.prepare()
        kernel.run_code("leftover = 1")
        kernel.warm_up(("tabnanny", "helpers.no_such_step"))
        kernel.run_code("import sys\nassert 'tabnanny' in sys.modules and 'leftover' not in dir()")
        kernel.run_code("leftover = 2")
        kernel.prepare()  # the warm-up's reset counts: this one does not reset again
        kernel.run_code("assert leftover == 2")
        for process in kernel.processes():
            process.kill()
        started = time.monotonic()
        with pytest.raises(KernelError, match="died"):
            kernel.run_code("1 + 1", timeout=60)
        assert time.monotonic() - started < 10


# A process that burns CPU, then outlives its parent, which never waits for it: a kernel's Spark JVM.
# The parent leaves a second after the worker says it is done burning (however busy the machine).
ORPHANED_WORKER = """
import subprocess, sys, time
burn = (
    "import time\\nt = time.process_time()\\nwhile time.process_time() - t < 1.2: pass\\n"
    "print('burnt', flush=True)\\ntime.sleep(1.5)"
)
worker = subprocess.Popen([sys.executable, "-c", burn], stdout=subprocess.PIPE, text=True)
worker.stdout.readline()
time.sleep(1.0)
"""


def test_kernel_cpu_counts_a_descendant_that_outlives_its_parent() -> None:
    # Neither getrusage (the parent never waited for it) nor the tree at the end (reparented) sees
    # the worker's 1.2 s: per-step Spark runs recorded 72 CPU s for a step whose JVM had used 517 s.
    with KernelCpu(interval_seconds=0.1) as cpu:
        subprocess.run([sys.executable, "-c", ORPHANED_WORKER], check=True)
    assert 1.2 <= cpu.seconds <= 2.5
