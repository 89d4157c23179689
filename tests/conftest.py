"""Shared fixtures: the small test world and one end-to-end run over it, and how `make test` spreads
the suite over its two xdist workers (`-n 2 --dist loadgroup --no-loadscope-reorder`).

- The small world's raw data is generated once (`ensure_demo_data` takes a file lock), and
  `small_run`, the complete run over it, happens once per test session however many workers need
  it: the first builds it under a file lock in the session's shared temp folder, the others wait
  and read where it is (or fail at once with the builder's error when the build failed).
- Heavy independent fixtures (determinism's second run, the months of test_stable_ids, the identity
  world) sit in xdist groups of their own and start first (`HEAVY_GROUPS_FIRST`), on the other
  worker while one builds `small_run`.
- Tests that share a module-scoped fixture go to one worker together (a group per module), so the
  fixture is built once, not once per worker.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from helpers.core.config import load_config, resolve_path, setting
from helpers.core.notebook_checks import SMALL_WORLD_CONFIG
from helpers.core.runner import RunResult, ensure_demo_data, run_workbench

# xdist groups handed out before anything else, longest first: `small_run` and its readers, then
# fixtures that make whole runs or months of runs and need nothing from `small_run` to start.
HEAVY_GROUPS_FIRST = ("small_world", "determinism", "stable_ids_months", "identity_world")


def _group(item: pytest.Item) -> str | None:
    mark = item.get_closest_marker("xdist_group")
    return str(mark.args[0] if mark.args else mark.kwargs["name"]) if mark else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give tests that share a module-scoped fixture their module as xdist group, and put the heavy
    groups first (xdist hands out groups in this order with `--no-loadscope-reorder`)."""
    for item in items:
        fixtures = item._fixtureinfo.name2fixturedefs.values()  # the fixtures the test uses
        if _group(item) is None and any(defs[-1].scope == "module" for defs in fixtures):
            item.add_marker(pytest.mark.xdist_group(f"module:{item.path.name}"))
    rank = {group: position for position, group in enumerate(HEAVY_GROUPS_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item) or "", len(rank)))  # stable: else as collected


@pytest.fixture(scope="session")
def small_world_config() -> dict:
    """The small test world's config, with its raw data generated if missing."""
    config = load_config(SMALL_WORLD_CONFIG)
    ensure_demo_data(config, progress=False)
    return config


@pytest.fixture(scope="session")
def small_world_raw_dir(small_world_config: dict) -> Path:
    return resolve_path(setting(small_world_config, "data.raw_dir"))


@pytest.fixture(scope="session")
def small_world_truth_dir(small_world_raw_dir: Path) -> Path:
    return resolve_path(Path("data/truth") / small_world_raw_dir.name)


@pytest.fixture(scope="session")
def session_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test session that all its xdist workers share and no other session uses:
    the controller's numbered temp folder (`pytest-N`, or `--basetemp`), which holds each worker's
    own `popen-gwX`; without xdist, the session's temp folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if _worker(request.config) != "master" else base


def _worker(config: pytest.Config) -> str:
    """This process's xdist worker id ("gw0", ...), or "master" outside xdist workers (also with
    `-p no:xdist`, and in a nested pytest that inherited a worker's environment)."""
    workerinput = getattr(config, "workerinput", None)  # set by xdist on its workers only
    return workerinput["workerid"] if workerinput else "master"


@pytest.fixture(scope="session")
def small_run(request: pytest.FixtureRequest, small_world_config: dict, session_dir: Path) -> RunResult:
    """One complete papermill run of every notebook on the small world, made once per test session
    by whichever worker asks first; the others wait for it. A failed build is recorded, so the
    other workers fail at once naming it instead of running it again."""
    record = session_dir / "small_run.json"
    with open(session_dir / "small_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if record.is_file():
            stored = json.loads(record.read_text())
            if "error" in stored:
                message = f"small_run failed in worker {stored['worker']}: {stored['error']}"
                pytest.fail(message, pytrace=False)
            return RunResult(run_id=stored["run_id"], run_dir=Path(stored["run_dir"]))
        worker = _worker(request.config)
        try:
            result = run_workbench(SMALL_WORLD_CONFIG, outputs_dir=session_dir / "small_run", progress=False)
        except Exception as error:
            _write_atomically(record, {"worker": worker, "error": f"{type(error).__name__}: {error}"})
            raise
        _write_atomically(record, {"run_id": result.run_id, "run_dir": str(result.run_dir)})
        return result


def _write_atomically(path: Path, content: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(content))
    temporary.replace(path)
