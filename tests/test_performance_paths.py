"""The fixed-cost cuts of issue 15: step 05 reuses step 03's CLV fit on the same data, the map of
step 04 fits its projection on at most the configured sample, and the runner records each step's CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import decomposition

from helpers.clustering import embedding
from helpers.core.runner import run_workbench
from helpers.core.steps import Step
from helpers.features import clv
from helpers.lifecycle import stages

REFERENCE = pd.Timestamp("2024-06-30")


@pytest.fixture(scope="module")
def history() -> tuple[pd.DataFrame, pd.DataFrame, stages.Backtest]:
    """A purchase log of 600 customers over three years: step 05's summary and backtest, and the
    step-03 feature columns of the same purchases."""
    rng = np.random.default_rng(3)
    rows = []
    for customer in range(600):
        start = rng.integers(0, 900)
        rate = rng.gamma(1.5, 1 / 40)
        end = start + rng.exponential(500)
        day = float(start)
        while day <= min(end, 1095):
            rows.append((f"c{customer:04d}", pd.Timestamp("2021-07-01") + pd.Timedelta(days=int(day)), 50.0))
            day += rng.exponential(1 / rate) + 1
    log = pd.DataFrame(rows, columns=["customer_id", "txn_at", "amount"])
    days = stages.purchase_days(log, REFERENCE)
    summary = stages.summarize_purchase_days(days, REFERENCE)
    backtest = stages.backtest_from_days(days, REFERENCE, 273)
    tenure = summary["tenure_days"]
    features = pd.DataFrame(  # as step 03 computes them (helpers.features.build)
        {
            "customer_id": summary["customer_id"],
            "n_purchases": summary["n_purchases"].astype("int64"),
            "first_purchase_at": summary["first_purchase_at"],
            "last_purchase_at": summary["last_purchase_at"],
            "frequency_repeat": summary["n_purchases"] - 1.0,
            "clv_recency_weeks": (summary["last_purchase_at"] - summary["first_purchase_at"]).dt.days / 7,
            "clv_T_weeks": tenure / 7,
        }
    )
    prospects = pd.DataFrame({"customer_id": ["p1", "p2"], "n_purchases": [0, 0]})
    return pd.concat([features, prospects], ignore_index=True), summary, backtest


def _step03_record(features: pd.DataFrame, model: str = "mbgnbd") -> dict:
    buyers = features[features["n_purchases"] > 0]
    summary = pd.DataFrame(
        {
            "customer_id": buyers["customer_id"],
            "frequency": buyers["frequency_repeat"],
            "recency": buyers["clv_recency_weeks"],
            "T": buyers["clv_T_weeks"],
        }
    )
    fitted = clv.fit_transaction_model(summary, "mbgnbd")
    return {
        "model": model,
        "transaction_params": fitted.params,
        "n_fit_customers": len(summary),
    }


def test_step05_reuses_step03_fit_on_the_same_data(history):
    features, summary, backtest = history
    record = _step03_record(features)
    params = stages.reusable_clv_params(record, features, summary)
    assert params == record["transaction_params"]

    before = clv.FIT_COUNT["transaction"]
    reused = stages.label_customers(features, REFERENCE, purchases=(summary, backtest), mbgnbd_params=params)
    assert clv.FIT_COUNT["transaction"] - before == 1  # only the backtest (an earlier date) is fitted
    refit = stages.label_customers(features, REFERENCE, purchases=(summary, backtest))
    assert clv.FIT_COUNT["transaction"] - before == 3  # without reuse: current and backtest fits

    info, fresh = reused.attrs["lifecycle"], refit.attrs["lifecycle"]
    assert info["mbgnbd_reused"] and not fresh["mbgnbd_reused"]
    for name, value in fresh["mbgnbd"].items():
        assert info["mbgnbd"][name] == pytest.approx(value, rel=1e-6), name
    np.testing.assert_allclose(reused["churn_risk"], refit["churn_risk"], rtol=1e-5, atol=1e-7)
    assert (reused["stage"] == refit["stage"]).all()


def test_step03_fit_is_not_reused_when_the_data_or_model_differ(history):
    features, summary, _ = history
    record = _step03_record(features)
    assert stages.reusable_clv_params({**record, "model": "bgnbd"}, features, summary) is None
    assert stages.reusable_clv_params(None, features, summary) is None
    shifted = features.copy()
    shifted.loc[0, "clv_T_weeks"] += 1 / 7  # one customer's age differs by a day: other data
    assert stages.reusable_clv_params(record, shifted, summary) is None
    fewer = summary.iloc[1:]
    assert stages.reusable_clv_params(record, features, fewer) is None
    sampled = {**record, "n_fit_customers": record["n_fit_customers"] - 100}  # step 03 fitted a sample
    assert stages.reusable_clv_params(sampled, features, summary) is None


def test_map_fits_on_at_most_the_configured_sample(monkeypatch):
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=12.0, size=(4, 30))
    labels = rng.integers(0, 4, size=2500)
    x = centres[labels] + rng.normal(size=(2500, 30))
    fitted_sizes: list[int] = []
    original = decomposition.PCA.fit

    def spy(self, data, *args, **kwargs):
        fitted_sizes.append(len(data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(decomposition.PCA, "fit", spy)
    shown, coordinates, seconds = embedding.map_embedding(x, fit_size=300, max_points=900, seed=1)
    assert fitted_sizes == [300]
    assert len(shown) == len(np.unique(shown)) == len(coordinates) == 900
    assert np.isfinite(coordinates).all() and set(seconds) == {"import", "fit", "transform"}
    # well separated groups stay apart on the plane: nearest group centre is the customer's own
    plane_centres = np.array([coordinates[labels[shown] == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((coordinates[:, None, :] - plane_centres[None]) ** 2).sum(axis=2), axis=1)
    assert (nearest == labels[shown]).mean() > 0.95
    small, _, _ = embedding.map_embedding(x[:50], fit_size=300, max_points=900, seed=1)
    assert len(small) == 50 and fitted_sizes[-1] == 50


def test_the_runner_records_the_kernels_cpu_seconds_per_step(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    rows = "".join(f"{i},1380000000{i},2026-01-05 10:00:00\n" for i in range(10))
    (raw / "contacts.csv").write_text("cti_id,phone,first_call_at\n" + rows)
    config = tmp_path / "config.yml"
    tables = {"cti_contacts": {"file": "contacts.csv"}}
    run = {"seed": 1, "reference_date": "2026-06-30"}
    config.write_text(yaml.safe_dump({"run": run, "data": {"raw_dir": str(raw), "tables": tables}}))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters = nbformat.v4.new_code_cell('run_dir = ""\nconfig_path = ""')
    parameters.metadata["tags"] = ["parameters"]
    busy = "import time\nstart = time.process_time()\nwhile time.process_time() - start < 1.5:\n    pass\n"
    notebook.cells = [parameters, nbformat.v4.new_code_cell(busy + "time.sleep(2)")]
    nbformat.write(notebook, notebooks / "01_busy.ipynb")

    result = run_workbench(
        config,
        outputs_dir=tmp_path / "outputs",
        notebooks_dir=notebooks,
        progress=False,
        steps=(Step("01_busy", "busy", "Busy", reads=(), writes=()),),
    )
    record = json.loads((result.run_dir / "run.json").read_text())["steps"]["01_busy"]
    # the kernel's busy loop (1.5 s) and its start are counted; its 2 s of sleep are not
    assert 1.5 <= record["cpu_seconds"] <= record["seconds"] - 1.5


def test_steps_after_the_merge_do_not_import_what_only_earlier_steps_or_fits_use() -> None:
    """Steps 04-06 (and step 03's module) load without step 02's libraries or pymc."""
    imports = "import helpers.clustering, helpers.features.build, helpers.lifecycle, helpers.strategy"
    assert modules_loaded(imports, ("phonenumbers", "pypinyin", "splink", "pymc", "pytensor")) == []


def modules_loaded(imports: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `imports`."""
    code = f"import sys\n{imports}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return loaded.stdout.split()


def test_clv_fits_load_neither_pymc_nor_pytensor() -> None:
    """Steps 03 and 05 fit their CLV models with scipy: fitting and predicting loads no model
    compiler (pymc's import took 4-5 s and its compile 6-8 s per process)."""
    fit = (
        "import numpy as np, pandas as pd\n"
        "from helpers.features import clv\n"
        "rng = np.random.default_rng(0)\n"
        "t = rng.uniform(10, 100, 300); x = rng.poisson(2.0, 300).astype(float)\n"
        "spend = np.where(x > 0, rng.gamma(2.0, 50.0, 300), 0.0)\n"
        "summary = pd.DataFrame({'customer_id': np.arange(300), 'frequency': x,\n"
        "                        'recency': t * (x > 0) * 0.5, 'T': t, 'monetary_value': spend})\n"
        "assert clv.fit_and_predict(summary, 'mbgnbd', 30, 12).predictions['clv_12m'].notna().all()"
    )
    assert modules_loaded(fit, ("pymc", "pymc_marketing", "pytensor", "arviz")) == []


def test_the_runner_process_starts_without_plotting_or_font_subsetting_libraries() -> None:
    """`make run`'s own process renders pages but draws no chart: importing the runner loads neither
    matplotlib (mplfonts' package imports it) nor fontTools' subsetter (loaded for the first page)."""
    imports = (
        "import helpers.core.runner\n"
        "from helpers.core.fonts import CJK_FONT_FILE\n"
        "assert CJK_FONT_FILE.is_file(), CJK_FONT_FILE"
    )
    assert modules_loaded(imports, ("matplotlib", "mplfonts", "fontTools.subset")) == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_to_the_os() -> None:
    """Many small freed objects stay in the resident set until `release_freed_memory` trims the heap."""
    script = (
        "import psutil; from helpers.core.measure import release_freed_memory\n"
        "rows = [[float(i)] * 100 for i in range(200_000)]\n"
        "del rows\n"
        "before = psutil.Process().memory_info().rss\n"
        "release_freed_memory()\n"
        "print((before - psutil.Process().memory_info().rss) / 2**20)\n"
    )
    released_mb = float(subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                                       text=True).stdout)  # fmt: skip
    assert released_mb > 50
