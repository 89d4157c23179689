"""Interactive use never changes a finished run: a notebook opened in JupyterLab reads the chosen run
and writes to a scratch folder `outputs/interactive/<step>-<UTC time>/`."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml
from nbclient import NotebookClient

from helpers.core.config import load_config
from helpers.core.context import INTERACTIVE_DIR, OUTPUTS_ENV, RUN_DIR_ENV, is_finished_run, open_step
from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.runner import RunResult
from helpers.core.steps import AUDIT, FEATURES, IDENTITY, artifact_path


def _tree_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under `folder` (symlinks by their target text), by relative path."""
    hashes = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            hashes[str(path.relative_to(folder))] = "link:" + str(path.readlink())
        elif path.is_file():
            hashes[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            hashes[str(path.relative_to(folder)) + "/"] = "dir"
    return hashes


def _fake_run(outputs: Path, status: str | None) -> Path:
    """`<outputs>/runs/r1` with a frozen config, an audit artifact and (unless None) run.json."""
    run_dir = outputs / "runs" / "r1"
    (run_dir / AUDIT.name).mkdir(parents=True)
    frozen = yaml.safe_dump(load_config(SMALL_WORLD_CONFIG), sort_keys=False, allow_unicode=True)
    (run_dir / "config.yml").write_text(frozen, encoding="utf-8")
    pd.DataFrame({"x": [1, 2]}).to_parquet(run_dir / AUDIT.name / "ledger.parquet")
    pd.DataFrame({"x": [9]}).to_parquet(run_dir / AUDIT.name / "quality.parquet")
    if status is not None:
        (run_dir / "run.json").write_text(json.dumps({"status": status}))
    return run_dir


@pytest.fixture()
def no_run_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No $WORKBENCH_RUN_DIR; the outputs folder is a fresh `tmp_path/outputs`."""
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setenv(OUTPUTS_ENV, str(tmp_path / "outputs"))
    return tmp_path / "outputs"


@pytest.mark.parametrize("status", ["ok", "failed"])
def test_a_finished_run_is_read_and_the_step_writes_to_scratch(
    no_run_env: Path, status: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import matplotlib.pyplot as plt

    run_dir = _fake_run(no_run_env, status)
    before = _tree_hashes(run_dir)
    ctx = open_step(AUDIT.name, str(run_dir))
    printed = capsys.readouterr().out.strip().splitlines()
    assert ctx.interactive and ctx.run_dir == run_dir.resolve()
    assert ctx.step_dir.parent == (no_run_env / INTERACTIVE_DIR).resolve()
    assert ctx.step_dir.name.startswith(f"{AUDIT.name}-") and ctx.step_dir.name.endswith("Z")
    assert printed == [
        f"Interactive {AUDIT.name}: reading run {run_dir.resolve()}; writing to {ctx.step_dir} "
        "(the run is not changed)"
    ]
    assert ctx.read(AUDIT.name, "ledger").x.tolist() == [1, 2]  # not written here yet: the run's
    ctx.write("ledger", pd.DataFrame({"x": [3]}))
    ctx.record(rows=3)
    figure, _ = plt.subplots()
    ctx.save_figure(figure, "chart")
    plt.close(figure)
    assert ctx.read(AUDIT.name, "ledger").x.tolist() == [3]  # the scratch copy wins
    assert ctx.read(AUDIT.name, "quality").x.tolist() == [9]
    assert ctx.path("ledger.parquet") == ctx.step_dir / "ledger.parquet"
    assert sorted(p.relative_to(ctx.step_dir).as_posix() for p in ctx.step_dir.rglob("*.*")) == [
        "figures/chart.png", "ledger.parquet", "step.json",
    ]  # fmt: skip
    assert _tree_hashes(run_dir) == before


def test_a_later_step_reads_earlier_steps_from_the_run(no_run_env: Path) -> None:
    run_dir = _fake_run(no_run_env, "ok")
    ctx = open_step(IDENTITY.name, str(run_dir))
    assert ctx.read(AUDIT.name, "ledger").x.tolist() == [1, 2]
    assert ctx.path("ledger.parquet", AUDIT.name) == run_dir.resolve() / AUDIT.name / "ledger.parquet"
    assert ctx.path("crosswalk.parquet") == ctx.step_dir / "crosswalk.parquet"
    assert not (run_dir / IDENTITY.name).exists()


def test_no_run_dir_means_latest_and_scratch(no_run_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_dir = _fake_run(no_run_env, "ok")
    (no_run_env / "latest").symlink_to(Path("runs") / "r1")
    before = _tree_hashes(no_run_env)
    first = open_step(AUDIT.name)
    second = open_step(AUDIT.name)  # the same second: a folder of its own
    assert first.run_dir == second.run_dir == run_dir.resolve()
    assert first.step_dir != second.step_dir and first.interactive and second.interactive
    assert {k: v for k, v in _tree_hashes(no_run_env).items() if not k.startswith(INTERACTIVE_DIR)} == before
    monkeypatch.setenv(RUN_DIR_ENV, str(run_dir))  # a finished run named by the variable: read only too
    assert open_step(AUDIT.name).interactive


@pytest.mark.parametrize("status", ["running", None])
def test_a_run_in_progress_or_a_plain_folder_is_written_in_place(
    no_run_env: Path, status: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = _fake_run(no_run_env, status)
    assert not is_finished_run(run_dir)
    ctx = open_step(IDENTITY.name, str(run_dir))
    ctx.write("crosswalk", pd.DataFrame({"x": [1]}))
    assert not ctx.interactive and ctx.step_dir == run_dir.resolve() / IDENTITY.name
    assert (run_dir / IDENTITY.name / "crosswalk.parquet").is_file()
    assert capsys.readouterr().out == "" and not (no_run_env / INTERACTIVE_DIR).exists()


def test_an_unreadable_run_json_counts_as_finished(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text("{not json")
    assert is_finished_run(tmp_path)
    (tmp_path / "run.json").write_text('["running"]')
    assert is_finished_run(tmp_path)


@pytest.mark.slow
@pytest.mark.xdist_group("small_world")
def test_notebook_03_opened_like_jupyterlab_leaves_the_finished_run_untouched(
    small_run: RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Notebook 03 executed as JupyterLab does: the stored notebook, no parameters injected, no
    $WORKBENCH_RUN_DIR, the kernel in the notebook's folder; `latest` (made by the runner) points at
    the finished small-world run. Every file of that run stays byte-identical."""
    outputs = small_run.run_dir.parent.parent
    assert (outputs / "latest").resolve() == small_run.run_dir.resolve()
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setenv(OUTPUTS_ENV, str(outputs))
    before = _tree_hashes(small_run.run_dir)
    scratch_before = set((outputs / INTERACTIVE_DIR).glob("*"))
    notebook = nbformat.read(FEATURES.notebook, as_version=4)
    NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(FEATURES.notebook.parent)}},
    ).execute()
    assert _tree_hashes(small_run.run_dir) == before
    assert (outputs / "latest").resolve() == small_run.run_dir.resolve()
    scratch = sorted(set((outputs / INTERACTIVE_DIR).glob("*")) - scratch_before)
    assert len(scratch) == 1 and scratch[0].name.startswith(f"{FEATURES.name}-")
    first_output = next(cell.outputs[0] for cell in notebook.cells if cell.get("outputs"))
    assert first_output["text"].startswith(
        f"Interactive {FEATURES.name}: reading run {small_run.run_dir.resolve()}; writing to {scratch[0]}"
    )
    for artifact in FEATURES.writes:
        written = scratch[0] / artifact_path(Path(), artifact).name
        assert written.is_file(), written
        in_run = artifact_path(small_run.run_dir, artifact)
        assert pd.read_parquet(written).shape == pd.read_parquet(in_run).shape
    assert (scratch[0] / "step.json").is_file()
    assert {p.name for p in (scratch[0] / "figures").glob("*.png")} == {
        p.name for p in (small_run.run_dir / FEATURES.name / "figures").glob("*.png")
    }


def test_a_saved_figure_is_drawn_once_and_the_page_shows_the_saved_png(tmp_path: Path) -> None:
    """In a kernel, `ctx.save_figure` displays the PNG it wrote (at the inline size) and closes the
    figure, so the `plt.show()` after it adds no second image; outside a kernel it only saves."""
    code = (
        "import base64, matplotlib.pyplot as plt\n"
        "from helpers.core.context import StepContext\n"
        f"ctx = StepContext(run_dir=__import__('pathlib').Path({str(tmp_path)!r}), step='s', config={{}})\n"
        "figure, axes = plt.subplots(figsize=(4, 2), dpi=100)\n"
        "axes.plot([1, 2, 3])\n"
        "path = ctx.save_figure(figure, 'line')\n"
        "plt.show()\n"
        "print(plt.get_fignums())"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    outputs = notebook.cells[0].outputs
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) == 1
    saved = (tmp_path / "s" / "figures" / "line.png").read_bytes()
    assert images[0]["data"]["image/png"].replace("\n", "") == base64.b64encode(saved).decode()
    pixels_wide = int.from_bytes(saved[16:20], "big")
    assert 300 < pixels_wide < 500  # 4 inches at 110 dpi, tight around the drawing
    assert images[0]["metadata"]["image/png"]["width"] == round(pixels_wide * 100 / 110)
    assert [output["text"] for output in outputs if output.get("name") == "stdout"] == ["[]\n"]
