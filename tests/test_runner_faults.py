"""Faults and bad input around a run: pre-flight problems, the run lock, signals, stale runs, failed and
unwritable renders, the run listing. Most call the pieces directly; the end-to-end ones run the tiny
stand-in notebooks of test_runner.py (a kernel start each)."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import psutil
import pytest
import yaml
from test_runner import STAND_INS, _notebook

from helpers.clustering.candidates import MIN_ROWS_PER_SEGMENT
from helpers.core import preflight, runner, runs
from helpers.core.config import load_config
from helpers.core.preflight import PreflightError, check_run
from helpers.core.render import render_reports, write_atomic
from helpers.core.runner import (
    OutputsWriteError,
    RunInterruptedError,
    RunLock,
    RunLockedError,
    StepFailedError,
    StopOnSignal,
    run_workbench,
)
from helpers.core.runs import format_runs, list_runs, mark_stale_runs, read_manifest

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2026, 7, 1)
CONTACTS = "cti_id,phone,first_call_at\n" + "".join(
    f"{i},1380000{i:04d},2026-01-05 10:00:00\n" for i in range(20)
)
CALLS = "call_id,cti_id,call_at,direction,reason,duration_sec\n" + "".join(
    f"{i},{i},2026-03-{1 + i % 28:02d} 09:00:00,inbound,inquiry,60\n" for i in range(20)
)


def _config(raw: Path, tables: dict[str, Any], **sections: Any) -> dict[str, Any]:
    """A validated config (every default filled) over `raw` with `tables`."""
    path = raw.parent / "config.yml"
    document = {
        "run": {"seed": 1, "reference_date": "2026-06-30"},
        "data": {"raw_dir": str(raw), "tables": tables},
    }
    path.write_text(yaml.safe_dump({**document, **sections}, allow_unicode=True), encoding="utf-8")
    return load_config(path)


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "contacts.csv").write_text(CONTACTS)
    (folder / "calls.csv").write_text(CALLS)
    return folder


GOOD_TABLES = {"cti_contacts": {"file": "contacts.csv"}, "calls": {"file": "calls.csv"}}


def _problems(config: dict[str, Any], outputs: Path) -> list[str]:
    with pytest.raises(PreflightError) as caught:
        check_run(config, outputs, today=TODAY)
    return caught.value.problems


# ----------------------------------------------------------------------------- pre-flight


def test_a_good_config_passes_and_the_check_writes_nothing(raw: Path, tmp_path: Path) -> None:
    check_run(_config(raw, GOOD_TABLES), tmp_path / "outputs", today=TODAY)
    assert not (tmp_path / "outputs").exists()
    assert preflight.ROWS_PER_SEGMENT == MIN_ROWS_PER_SEGMENT  # the copy core keeps of step 04's rule


def test_every_problem_is_listed_together_one_line_each(raw: Path, tmp_path: Path) -> None:
    tables = {
        "cti_contacts": {"file": "missing.csv"},
        "calls": {"file": "calls.csv", "columns": {"call_at": "呼叫时间"}},
        "crm_customer": {"file": "crm.csv"},
    }
    problems = _problems(_config(raw, tables, run={"reference_date": "1980-01-01"}), tmp_path / "out")
    assert problems == [  # tables in config order (the written YAML sorts them)
        "run.reference_date 1980-01-01 is before 1990-01-01: set the data's as-of date",
        "data.tables.calls.columns.call_at: file column(s) ['呼叫时间'] not in the header of calls.csv",
        "data.tables.crm_customer: unknown table; canonical tables are crm_customers, cti_contacts, "
        "shop_accounts, loyalty_members, transactions, calls, surveys, marketing_contacts",
        f"data.tables.cti_contacts.file missing.csv: not found in {raw}",
    ]
    assert all("\n" not in problem for problem in problems)


def test_a_missing_required_column_names_file_table_and_columns_but_no_rows(
    raw: Path, tmp_path: Path
) -> None:
    (raw / "calls.csv").write_text(CALLS.replace("duration_sec", "seconds"))
    problems = _problems(_config(raw, GOOD_TABLES), tmp_path / "out")
    assert len(problems) == 1
    assert problems[0].startswith("calls.csv: table calls lacks required column(s) ['duration_sec']")
    assert "13800000" not in problems[0]  # header names only, never row contents


def test_column_sources_are_checked_by_the_file_columns_they_name(raw: Path, tmp_path: Path) -> None:
    (raw / "calls.csv").write_text(CALLS.replace("call_at", "日期"))
    tables = {
        **GOOD_TABLES,
        "calls": {
            "file": "calls.csv",
            "columns": {
                "call_at": {"concat": ["日期", "时间"], "separator": " "},
                "direction": {"constant": "inbound"},
                "reason": {"column": "reason", "equals": ["inquiry"]},
            },
        },
    }
    problems = _problems(_config(raw, tables), tmp_path / "out")
    assert problems == [
        "data.tables.calls.columns.call_at: file column(s) ['时间'] not in the header of calls.csv"
    ]


def test_encoding_title_rows_and_delimiter_are_honoured(raw: Path, tmp_path: Path) -> None:
    header = "呼叫编号;坐席号;开始时间;方向;原因;时长\n"
    rows = "".join(f"{i};{i};2026-03-01 09:00:00;inbound;inquiry;60\n" for i in range(20))
    (raw / "calls.csv").write_bytes(("通话记录导出\n\n" + header + rows).encode("gbk"))
    columns = dict(
        zip(
            ["call_id", "cti_id", "call_at", "direction", "reason", "duration_sec"],
            header.strip().split(";"),
            strict=True,
        )
    )
    calls = {"file": "calls.csv", "encoding": "gbk", "skip_rows": 1, "columns": columns}
    check_run(_config(raw, {**GOOD_TABLES, "calls": calls}), tmp_path / "out", today=TODAY)
    problems = _problems(
        _config(raw, {**GOOD_TABLES, "calls": {**calls, "encoding": "utf-8"}}), tmp_path / "out"
    )
    assert problems == [
        "data.tables.calls.file calls.csv: header is not utf-8; set data.tables.calls.encoding"
    ]
    problems = _problems(
        _config(raw, {**GOOD_TABLES, "calls": {**calls, "encoding": "klingon"}}), tmp_path / "o"
    )
    assert problems == ["data.tables.calls.encoding 'klingon' is not a known encoding"]


def test_excel_sheets_and_parquet_schemas_are_read_without_the_data(raw: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(raw / "calls.csv", dtype=str)
    with pd.ExcelWriter(raw / "calls.xlsx") as writer:
        frame.to_excel(writer, sheet_name="通话", index=False, startrow=2)
    frame.drop(columns="reason").to_parquet(raw / "calls.parquet")
    excel = {"file": "calls.xlsx", "format": "excel", "sheet": "通话", "skip_rows": 2}
    check_run(_config(raw, {**GOOD_TABLES, "calls": excel}), tmp_path / "out", today=TODAY)
    problems = _problems(
        _config(raw, {**GOOD_TABLES, "calls": {**excel, "sheet": "Sheet9"}}), tmp_path / "out"
    )
    assert problems == ["data.tables.calls.sheet 'Sheet9': not in calls.xlsx (sheets: 通话)"]
    parquet = {"file": "calls.parquet", "format": "parquet"}
    problems = _problems(_config(raw, {**GOOD_TABLES, "calls": parquet}), tmp_path / "out")
    assert problems[0].startswith("calls.parquet: table calls lacks required column(s) ['reason']")


def test_reference_date_is_checked_against_the_calendar_and_a_sample_of_the_data(
    raw: Path, tmp_path: Path
) -> None:
    def problems_for(reference: str) -> list[str]:
        try:
            check_run(
                _config(raw, GOOD_TABLES, run={"reference_date": reference}), tmp_path / "o", today=TODAY
            )
        except PreflightError as error:
            return error.problems
        return []

    assert problems_for("2026-03-15") == []  # inside the calls' dates
    assert problems_for("2026-02-28") == [
        "run.reference_date 2026-02-28 is before every event date sampled from calls (earliest 2026-03-01): "
        "set the data's as-of date"
    ]
    assert problems_for("2027-07-03") == [
        "run.reference_date 2027-07-03 is more than a year after today (2026-07-01): "
        "set the data's as-of date"
    ]


def test_too_few_customers_for_the_k_range_names_the_setting(raw: Path, tmp_path: Path) -> None:
    (raw / "contacts.csv").write_text("\n".join(CONTACTS.splitlines()[:4]) + "\n")  # 3 contacts
    problems = _problems(_config(raw, GOOD_TABLES, clustering={"k_min": 2}), tmp_path / "out")
    assert problems == [
        "clustering.k_min is 2: 10 customers needed (5 per segment), but the identity tables hold 3; "
        "add data or lower clustering.k_min"
    ]
    config = _config(tmp_path / "empty", {}, demo={"customers": 150})
    assert _problems(config, tmp_path / "out") == ["demo.customers is 150; the demo world needs at least 200"]


def test_unwritable_or_full_outputs_give_one_line(
    raw: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(raw, GOOD_TABLES)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert _problems(config, blocker / "outputs") == [
        f"outputs folder {blocker / 'outputs'}: {blocker} is not a folder; choose another with --outputs"
    ]

    def read_only(**_: Any) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    with monkeypatch.context() as patch:
        patch.setattr(preflight.tempfile, "TemporaryFile", read_only)
        assert _problems(config, tmp_path / "outputs") == [
            f"outputs folder {tmp_path} is not writable (Read-only file system): fix its permissions or "
            "choose another with --outputs"
        ]
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda _: pd.Series({"free": 10 * 2**20}))
    assert _problems(config, tmp_path / "outputs")[0].startswith(f"outputs folder {tmp_path} has 10 MB free")


def test_the_cli_lists_preflight_problems_with_exit_code_2_before_importing_the_runner(
    raw: Path, tmp_path: Path
) -> None:
    _config(raw, {"cti_contacts": {"file": "gone.csv"}})
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "helpers", "run", "--config", str(tmp_path / "config.yml"),
         "--outputs", str(tmp_path / "outputs"), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert completed.returncode == 2
    lines = [line for line in completed.stderr.splitlines() if not line.startswith("import time:")]
    assert lines == [
        "error: pre-flight found 1 problem(s); nothing was run:",
        f"  - data.tables.cti_contacts.file gone.csv: not found in {raw}",
    ]
    assert "papermill" not in completed.stderr  # no kernel machinery was even imported
    assert not (tmp_path / "outputs").exists()


# ----------------------------------------------------------------------------- lock, signals, stale runs


def test_a_second_run_in_one_outputs_folder_stops_at_once(tmp_path: Path) -> None:
    with RunLock(tmp_path, "20260101T000000Z-aaaa"):
        with pytest.raises(RunLockedError) as caught, RunLock(tmp_path, "20260101T000001Z-bbbb"):
            pass
        assert str(caught.value) == (
            f"run 20260101T000000Z-aaaa (pid {os.getpid()}) is active in {tmp_path}; "
            "wait for it to finish or stop it"
        )
    with RunLock(tmp_path, "20260101T000002Z-cccc"):  # released on exit
        pass


def test_the_lock_is_released_when_its_process_dies(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time\nfrom pathlib import Path\n"
         "from helpers.core.runner import RunLock\n"
         f"with RunLock(Path({str(tmp_path)!r}), 'held'):\n    print('locked', flush=True)\n"
         "    time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunLockedError, match=rf"run held \(pid {holder.pid}\)"), RunLock(tmp_path, "second"):
        pass
    holder.kill()  # SIGKILL: no clean-up code runs, the kernel drops the lock
    holder.wait()
    with RunLock(tmp_path, "third"):
        pass


def test_sigterm_and_sigint_raise_once_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    for number, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        with pytest.raises(RunInterruptedError) as caught, StopOnSignal():
            os.kill(os.getpid(), number)
            time.sleep(5)  # the handler interrupts the sleep
        assert caught.value.exit_code == code and caught.value.signal_number == number
    assert signal.getsignal(signal.SIGTERM) is before


def _write_run(runs: Path, run_id: str, **fields: Any) -> Path:
    folder = runs / run_id
    folder.mkdir(parents=True)
    manifest = {"run_id": run_id, "started_at": "2026-07-01T10:00:00+00:00", "status": "running", **fields}
    (folder / "run.json").write_text(json.dumps(manifest))
    return folder


def test_runs_killed_with_sigkill_are_marked_stale_and_listed(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    runs = tmp_path / "runs"
    _write_run(runs, "20260701T100000Z-dead", pid=gone.pid, host=host)
    _write_run(
        runs, "20260701T110000Z-live", pid=os.getpid(), host=host, started_at="2026-07-01T11:00:00+00:00"
    )
    _write_run(
        runs,
        "20260701T090000Z-away",
        pid=gone.pid,
        host="another-machine",
        started_at="2026-07-01T09:00:00+00:00",
    )
    _write_run(
        runs, "20260701T080000Z-fail", status="failed", failed_step="04_clustering",
        started_at="2026-07-01T08:00:00+00:00", finished_at="2026-07-01T08:03:00+00:00",
    )  # fmt: skip
    listed = list_runs(runs)
    assert [(s.run_id[-4:], s.status) for s in listed] == [
        ("live", "running"),
        ("dead", "stale"),
        ("away", "running"),
        ("fail", "failed"),
    ]
    assert listed[-1].seconds == 180 and listed[-1].failed_step == "04_clustering"
    assert (read_manifest(runs / "20260701T100000Z-dead") or {})["status"] == "stale"
    assert format_runs(listed).splitlines()[-1].split() == [
        "20260701T080000Z-fail",
        "failed",
        "2026-07-01T08:00:00",
        "3.0",
        "min",
        "04_clustering",
    ]
    # The next run holds the lock, so every run still "running" in its outputs folder is stale.
    assert mark_stale_runs(runs, every_running=True) == ["20260701T090000Z-away", "20260701T110000Z-live"]
    completed = subprocess.run(
        [sys.executable, "-m", "helpers", "runs", "--outputs", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, check=True,
    )  # fmt: skip
    assert completed.stdout.splitlines()[1].split()[:2] == ["20260701T110000Z-live", "stale"]


# ----------------------------------------------------------------------------- renders and writes


def _failed_notebook(path: Path) -> Path:
    """An executed-looking notebook whose cell failed with row contents in the error."""
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("run_step(ctx)")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="First rows: 张伟 13800001234\n"),
        nbformat.v4.new_output(
            "error", ename="ValueError", evalue="row 3: 张伟 13800001234", traceback=["Traceback"]
        ),
    ]
    notebook.cells = [nbformat.v4.new_markdown_cell("# 数据审计"), cell]
    nbformat.write(notebook, path)
    return path


def test_the_management_page_of_a_failed_step_is_only_a_notice(tmp_path: Path) -> None:
    reports = tmp_path / "run" / "reports"
    reports.mkdir(parents=True)
    executed = _failed_notebook(tmp_path / "01_data_audit.ipynb")
    render_reports(executed, reports, failed=True)
    management = (reports / "01_data_audit.management.html").read_text(encoding="utf-8")
    assert "13800001234" not in management and "张伟" not in management and "Traceback" not in management
    assert "出错" in management  # the notice, in the run's language
    assert "13800001234" in (reports / "01_data_audit.html").read_text(encoding="utf-8")  # analysts see it
    assert sorted(p.name for p in reports.iterdir()) == [
        "01_data_audit.html",
        "01_data_audit.management.html",
    ]


def test_a_report_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    page = tmp_path / "index.html"
    write_atomic(page, "<html>old</html>")
    (tmp_path / ".index.html.partial").mkdir()  # the temporary file cannot be written
    with pytest.raises(OSError):
        write_atomic(page, "<html>new</html>")
    assert page.read_text(encoding="utf-8") == "<html>old</html>"


@pytest.fixture()
def stand_ins(tmp_path: Path, raw: Path) -> dict[str, Path]:
    """The two stand-in steps of test_runner.py over a config the pre-flight accepts."""
    _config(raw, GOOD_TABLES)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(
        notebooks / "01_first.ipynb",
        "from helpers.core.context import open_step\nctx = open_step('01_first', run_dir, config_path)",
    )
    _notebook(notebooks / "02_second.ipynb", "print('second')")
    return {"config": tmp_path / "config.yml", "notebooks": notebooks, "outputs": tmp_path / "outputs"}


def _run(paths: dict[str, Path]) -> runner.RunResult:
    return run_workbench(
        paths["config"],
        outputs_dir=paths["outputs"],
        notebooks_dir=paths["notebooks"],
        progress=False,
        steps=STAND_INS,
    )


def test_a_render_failure_is_recorded_and_the_steps_own_error_kept(
    stand_ins: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _notebook(stand_ins["notebooks"] / "01_first.ipynb", "print('row 3: 张伟')\nraise KeyError('crm')")

    def broken_render(executed: Path, reports: Path, failed: bool = False) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(reports / f"{executed.stem}.html"))

    monkeypatch.setattr(runner, "render_reports", broken_render)
    with pytest.raises(StepFailedError, match=r"^Step 01_first failed: KeyError: 'crm'\n"):
        _run(stand_ins)
    run_dir = next((stand_ins["outputs"] / "runs").iterdir())
    manifest = read_manifest(run_dir) or {}
    assert manifest["status"] == "failed" and manifest["failed_step"] == "01_first"
    assert manifest["steps"]["01_first"]["error"] == "KeyError: 'crm'"
    assert manifest["render_errors"][0].startswith("01_first: OSError: [Errno 28] No space left on device")
    # A step that ran but whose pages could not be written fails, too: its reports are missing.
    _notebook(stand_ins["notebooks"] / "01_first.ipynb", "print('fine')")
    with pytest.raises(
        StepFailedError, match=r"^Step 01_first failed: its reports were not written: OSError"
    ):
        _run(stand_ins)
    assert not (stand_ins["outputs"] / "latest").exists()


def test_an_unwritable_run_folder_ends_with_one_line(
    stand_ins: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def full_disk(run_dir: Path, manifest: dict[str, Any]) -> None:
        calls.append(manifest["status"])
        raise OSError(errno.ENOSPC, "No space left on device", str(run_dir / "run.json.partial"))

    monkeypatch.setattr(runner, "write_manifest", full_disk)
    with pytest.raises(OutputsWriteError) as caught:
        _run(stand_ins)
    run_dir = next((stand_ins["outputs"] / "runs").iterdir())
    assert str(caught.value) == (
        f"cannot write to {run_dir}: No space left on device; "
        "free space or choose another folder with --outputs"
    )
    assert calls == ["running", "failed"]  # the end was tried, too
    assert not (stand_ins["outputs"] / "latest").exists()


@pytest.mark.slow
def test_sigint_stops_the_kernel_and_records_the_run_as_interrupted(stand_ins: dict[str, Path]) -> None:
    good = _run(stand_ins)
    _notebook(
        stand_ins["notebooks"] / "01_first.ipynb",
        "import time\nprint('sleeping', flush=True)\ntime.sleep(120)",
    )
    before = {child.pid for child in psutil.Process().children(recursive=True)}

    def interrupt_when_the_kernel_runs() -> None:
        for _ in range(600):
            if {c.pid for c in psutil.Process().children(recursive=True)} - before:
                threading.Event().wait(3)  # the kernel is up and inside the cell
                os.kill(os.getpid(), signal.SIGINT)
                return
            threading.Event().wait(0.1)

    threading.Thread(target=interrupt_when_the_kernel_runs, daemon=True).start()
    with pytest.raises(RunInterruptedError) as caught:
        _run(stand_ins)
    assert caught.value.exit_code == 130
    assert not {c.pid for c in psutil.Process().children(recursive=True)} - before  # the kernel is gone
    interrupted = max((stand_ins["outputs"] / "runs").iterdir())
    manifest = read_manifest(interrupted) or {}
    assert manifest["status"] == "interrupted" and manifest["signal"] == "SIGINT"
    assert manifest["interrupted_step"] == "01_first" and manifest["finished_at"]
    assert (stand_ins["outputs"] / "latest").resolve() == good.run_dir.resolve()
    assert [s.status for s in list_runs(stand_ins["outputs"] / "runs")] == ["interrupted", "ok"]


def test_a_full_disk_is_named_and_leaves_no_half_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runner.disk_note(tmp_path) == ""  # room enough: no note

    def no_space(*_: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(Path, "replace", no_space)
        with pytest.raises(OSError, match="No space left"):
            runs.write_manifest(tmp_path, {"status": "failed"})
    assert list(tmp_path.iterdir()) == []  # neither run.json nor its temporary file
    monkeypatch.setattr(runner.shutil, "disk_usage", lambda _: pd.Series({"free": 0}))
    assert runner.disk_note(tmp_path) == (
        f"\n  the disk of {tmp_path} is full (0 MB free): free space or use --outputs"
    )


def test_stopping_kernels_spares_the_callers_other_children() -> None:
    """Only notebook kernels and what they started are stopped: a process the caller runs itself
    (a Spark JVM of a test session) survives."""
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    other = subprocess.Popen(sleep)
    kernel = subprocess.Popen([*sleep, "ipykernel_launcher"])  # named like a kernel
    try:
        assert wait_until(lambda: {other.pid, kernel.pid} <= {p.pid for p in psutil.Process().children()})
        # Until its exec the forked child still carries pytest's command line: wait for the kernel's.
        assert wait_until(lambda: {p.pid for p in runner.kernel_processes()} >= {kernel.pid})
        assert other.pid not in {p.pid for p in runner.kernel_processes()}
        runner.stop_kernels(timeout_seconds=5)
        assert kernel.wait(timeout=10) is not None
        assert other.poll() is None
    finally:
        for process in (other, kernel):
            process.kill()
            process.wait()


def wait_until(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
