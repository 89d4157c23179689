"""Customer lifetime value with pymc-marketing's clv models, fitted by MAP with flat priors (= MLE).

The transaction model is the MBG/NBD by default: unlike the BG/NBD it lets one-time buyers drop out,
so a customer who bought once long ago gets a low probability of being alive and a high probability
of no purchase in the next period. Gamma-Gamma models spend per repeat purchase. Inputs follow the
lifetimes/pymc-marketing RFM convention: `frequency` (repeat purchase days), `recency` and `T` in
weeks (days / 7), `monetary_value` (mean spend of repeat purchase days).

pytensor compiles each model's C code once per environment: its compile directory is
`.cache/pytensor` in the project (set before pytensor is first imported, unless PYTENSOR_FLAGS
already names one), so later processes load the compiled modules (cold ~22 s, warm ~3 s at 20k);
`make setup` fills it (`python -m helpers warm-cache`, `warm_compile_cache`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np
import pandas as pd

TransactionModelName = Literal["mbgnbd", "bgnbd"]
DAYS_PER_WEEK = 7.0
WEEKS_PER_MONTH = 4.345  # pymc-marketing's weeks-per-month factor for time_unit="W"
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]
TRANSACTION_PARAMS = ("r", "alpha", "a", "b")
FIT_COUNT = {"transaction": 0, "spend": 0}  # fits made in this process (tests check reuse with it)


def use_project_compile_cache() -> None:
    """Point pytensor's compile directory at `<project>/.cache/pytensor` (before pytensor is imported)."""
    if "pytensor" in sys.modules or "compiledir" in os.environ.get("PYTENSOR_FLAGS", ""):
        return
    from helpers.core.paths import PROJECT_ROOT

    directory = PROJECT_ROOT / ".cache" / "pytensor"
    directory.mkdir(parents=True, exist_ok=True)
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, f"compiledir={directory}"]))


use_project_compile_cache()  # on import: pymc_marketing (imported inside the fit functions) loads pytensor


@dataclass
class ClvResult:
    """Fitted parameters, fit facts and per-customer predictions."""

    model: str
    transaction_params: dict[str, float]
    spend_params: dict[str, float]
    n_fit_customers: int
    n_fit_repeat_customers: int
    fit_seconds: float
    predictions: pd.DataFrame = field(repr=False)


def _flat(names: str | tuple[str, ...]) -> dict:
    from pymc_extras.prior import Prior

    return {name: Prior("HalfFlat") for name in names}


def _quiet() -> None:
    """Silence PyMC's sampling chatter and pytensor's deprecation noise during a run."""
    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="pymc")


def fit_transaction_model(summary: pd.DataFrame, model: TransactionModelName = "mbgnbd"):
    """Fit BG/NBD or MBG/NBD by MAP with HalfFlat priors on r, alpha, a, b (the MLE)."""
    from pymc_marketing.clv import BetaGeoModel, ModifiedBetaGeoModel

    _quiet()
    model_class = {"bgnbd": BetaGeoModel, "mbgnbd": ModifiedBetaGeoModel}[model]
    fitted = model_class(model_config=_flat(("r", "alpha", "a", "b")))
    fitted.fit(data=summary[["customer_id", "frequency", "recency", "T"]], method="map", progressbar=False)
    FIT_COUNT["transaction"] += 1
    return fitted


def transaction_model_from_params(
    summary: pd.DataFrame, params: dict[str, float], model: TransactionModelName = "mbgnbd"
):
    """A BG/NBD or MBG/NBD with given point parameters (an earlier fit's), without fitting: its
    predictions are those of the fitted model the parameters came from."""
    import arviz as az
    from pymc_marketing.clv import BetaGeoModel, ModifiedBetaGeoModel

    _quiet()
    model_class = {"bgnbd": BetaGeoModel, "mbgnbd": ModifiedBetaGeoModel}[model]
    built = model_class(model_config=_flat(TRANSACTION_PARAMS))
    built.build_model(summary[["customer_id", "frequency", "recency", "T"]])
    posterior = {name: np.array([[float(params[name])]]) for name in TRANSACTION_PARAMS}
    built.idata = az.from_dict(posterior=posterior)
    return built


def sample_rows(summary: pd.DataFrame, sample_size: int | None, seed: int = 0) -> pd.DataFrame:
    """A random sample of `sample_size` rows, or all rows when there are not more than that."""
    if sample_size and len(summary) > sample_size:
        return summary.sample(n=sample_size, random_state=seed)
    return summary


def fit_no_purchase_model(summary: pd.DataFrame, sample_size: int | None = None, seed: int = 0):
    """MBG/NBD fitted on `summary` (a random sample of `sample_size` rows when it has more), for
    `no_purchase_probabilities`."""
    return fit_transaction_model(sample_rows(summary, sample_size, seed), "mbgnbd")


def no_purchase_probabilities(fitted, summary: pd.DataFrame, horizons_weeks: list[float]) -> list[np.ndarray]:
    """P(no purchase in (T, T+t]) per row of `summary` for each horizon t (weeks), from a fitted
    MBG/NBD: pymc-marketing's P(alive), combined by `probability_no_purchase`."""
    data = summary[["customer_id", "frequency", "recency", "T"]].reset_index(drop=True)
    p_alive = _squeeze(fitted.expected_probability_alive(data=data))
    params = point_params(fitted, ("r", "alpha", "a", "b"))
    return [probability_no_purchase(p_alive, params, data, horizon) for horizon in horizons_weeks]


def fit_spend_model(summary: pd.DataFrame):
    """Fit Gamma-Gamma by MAP with HalfFlat priors on p, q, v, on customers with repeat purchases
    of positive mean value (net refunds can make it zero or negative; the model needs it positive)."""
    from pymc_marketing.clv import GammaGammaModel

    _quiet()
    usable = (
        (summary["frequency"] > 0) & (summary["monetary_value"] > 0) & np.isfinite(summary["monetary_value"])
    )
    repeaters = summary.loc[usable, ["customer_id", "frequency", "monetary_value"]]
    if repeaters.empty:
        raise ValueError("Gamma-Gamma needs customers with repeat purchases; the transactions have none.")
    fitted = GammaGammaModel(model_config=_flat(("p", "q", "v")))
    fitted.fit(data=repeaters, method="map", progressbar=False)
    FIT_COUNT["spend"] += 1
    return fitted


def point_params(fitted, names: tuple[str, ...]) -> dict[str, float]:
    """The MAP point estimates of a fitted pymc-marketing model."""
    posterior = fitted.idata.posterior
    return {name: float(np.asarray(posterior[name]).squeeze()) for name in names}


def purchase_outlook(fitted, summary: pd.DataFrame, horizons_weeks: list[float]) -> dict[str, object]:
    """A fitted MBG/NBD's outlook per row of `summary`: `p_alive` (array), and per horizon t (weeks)
    `p_no_purchase` and `expected_purchases` in (T, T+t] (lists of arrays, in the horizons' order)."""
    data = summary[["customer_id", "frequency", "recency", "T"]].reset_index(drop=True)
    p_alive = _squeeze(fitted.expected_probability_alive(data=data))
    params = point_params(fitted, TRANSACTION_PARAMS)
    return {
        "p_alive": p_alive,
        "p_no_purchase": [probability_no_purchase(p_alive, params, data, t) for t in horizons_weeks],
        "expected_purchases": [
            _squeeze(fitted.expected_purchases(data=data, future_t=t)) for t in horizons_weeks
        ],
    }


def _squeeze(values) -> np.ndarray:
    return np.asarray(values).reshape(-1)


def probability_no_purchase(
    p_alive: np.ndarray, params: dict[str, float], summary: pd.DataFrame, horizon_weeks: float
) -> np.ndarray:
    """P(no purchase in (T, T+t]) under the MBG/NBD (pymc-marketing raises NotImplementedError for it).

    Dropout happens only at purchases, so a customer alive at T with rate lambda makes no purchase
    in the next t weeks with probability exp(-lambda t); integrating lambda over its gamma posterior
    (shape r + x, rate alpha + T) gives ((alpha + T) / (alpha + T + t)) ** (r + x). Hence
    P0 = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x).
    """
    r, alpha = params["r"], params["alpha"]
    x = summary["frequency"].to_numpy(float)
    big_t = summary["T"].to_numpy(float)
    survive = ((alpha + big_t) / (alpha + big_t + horizon_weeks)) ** (r + x)
    return 1.0 - p_alive * (1.0 - survive)


def predict(
    transaction_model,
    spend_model,
    summary: pd.DataFrame,
    model: TransactionModelName,
    period_days: float,
    horizon_months: int,
) -> pd.DataFrame:
    """Per-customer predictions: expected purchases and P(no purchase) in the next period,
    P(alive), expected spend per purchase and CLV over `horizon_months` (undiscounted)."""
    from pymc_marketing.clv import customer_lifetime_value

    period_weeks = period_days / DAYS_PER_WEEK
    data = summary[SUMMARY_COLUMNS].reset_index(drop=True)
    expected_next = _squeeze(transaction_model.expected_purchases(data=data, future_t=period_weeks))
    p_alive = _squeeze(transaction_model.expected_probability_alive(data=data))
    if model == "bgnbd":
        p_none = _squeeze(transaction_model.expected_probability_no_purchase(t=period_weeks, data=data))
    else:
        params = point_params(transaction_model, ("r", "alpha", "a", "b"))
        p_none = probability_no_purchase(p_alive, params, data, period_weeks)
    spend = _squeeze(spend_model.expected_customer_spend(data=data))
    clv = _squeeze(
        customer_lifetime_value(
            transaction_model, data.assign(future_spend=spend), future_t=horizon_months, time_unit="W"
        )
    )
    horizon_weeks = horizon_months * WEEKS_PER_MONTH
    expected_horizon = _squeeze(transaction_model.expected_purchases(data=data, future_t=horizon_weeks))
    return pd.DataFrame(
        {
            "customer_id": data["customer_id"].to_numpy(),
            "expected_purchases_next_period": expected_next,
            "p_no_purchase_next_period": p_none,
            "p_alive": p_alive,
            "expected_purchases_horizon": expected_horizon,
            "expected_spend_per_purchase": spend,
            "clv_12m": clv,
        }
    )


def fit_and_predict(
    summary: pd.DataFrame,
    model: TransactionModelName,
    period_days: float,
    horizon_months: int,
    sample_size: int | None = None,
    seed: int = 0,
) -> ClvResult:
    """Fit the transaction and spend models (on a random sample of customers when `sample_size`
    is smaller than the data) and predict for every customer of `summary`."""
    missing = set(SUMMARY_COLUMNS) - set(summary.columns)
    if missing:
        raise ValueError(f"CLV summary lacks columns {sorted(missing)}")
    bad = summary[(summary["T"] < summary["recency"]) | (summary["frequency"] < 0) | summary["T"].isna()]
    if not bad.empty:
        raise ValueError(f"CLV summary rows violate 0 <= recency <= T, frequency >= 0, e.g.:\n{bad.head()}")
    fit_data = sample_rows(summary, sample_size, seed)
    start = time.perf_counter()
    transaction_model = fit_transaction_model(fit_data, model)
    spend_model = fit_spend_model(fit_data)
    fit_seconds = time.perf_counter() - start
    return ClvResult(
        model=model,
        transaction_params=point_params(transaction_model, ("r", "alpha", "a", "b")),
        spend_params=point_params(spend_model, ("p", "q", "v")),
        n_fit_customers=len(fit_data),
        n_fit_repeat_customers=int((fit_data["frequency"] > 0).sum()),
        fit_seconds=fit_seconds,
        predictions=predict(transaction_model, spend_model, summary, model, period_days, horizon_months),
    )


def warm_compile_cache(n_customers: int = 400, seed: int = 0) -> tuple[Path, int, float]:
    """Fit and predict every CLV model the steps use (MBG/NBD, BG/NBD, Gamma-Gamma; step 03's
    predictions, step 05's outlook) on a small synthetic summary, so pytensor compiles their C code
    into the compile cache during `make setup` rather than in the first run. Most of that code
    depends only on the model graphs; the few modules whose rewritten graph folds a data-dependent
    constant (e.g. a count of customers) are still compiled by the first run on new data.
    Returns the compile directory, the number of modules compiled now and the seconds taken."""
    from pytensor import config as pytensor_config

    started = time.perf_counter()
    compile_dir = Path(pytensor_config.compiledir)
    before = len(list(compile_dir.rglob("*.so")))
    rng = np.random.default_rng(seed)
    big_t = rng.uniform(10.0, 100.0, n_customers)
    frequency = rng.poisson(2.0, n_customers).astype(float)
    summary = pd.DataFrame(
        {
            "customer_id": [f"w{number}" for number in range(n_customers)],
            "frequency": frequency,
            "recency": np.where(frequency > 0, big_t * rng.uniform(0.2, 1.0, n_customers), 0.0),
            "T": big_t,
            "monetary_value": np.where(frequency > 0, rng.gamma(2.0, 50.0, n_customers), 0.0),
        }
    )
    for model in get_args(TransactionModelName):
        fit_and_predict(summary, model, period_days=30, horizon_months=12)
    purchase_outlook(fit_no_purchase_model(summary), summary, [4.0, 39.0])
    compiled = len(list(compile_dir.rglob("*.so"))) - before
    return compile_dir, compiled, time.perf_counter() - started


def summary_from_transactions(
    log: pd.DataFrame,
    reference_date,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str | None = "amount",
) -> pd.DataFrame:
    """The RFM summary (`SUMMARY_COLUMNS`) of a transaction log as of `reference_date` (inclusive).

    Purchase days as step 03 and lifetimes count them: every calendar day with a transaction of
    non-negative amount (zero-amount rows included, as in Fader-Hardie-Lee's CDNOW data; negative
    amounts, refunds, left out); `monetary_value` is the mean total of the repeat purchase days
    (0 without repeats). Whole-number dates like 19970101 are read as YYYYMMDD. Raises ValueError
    naming missing columns or unreadable values.
    """
    needed = [customer_col, time_col] + ([amount_col] if amount_col else [])
    missing = [c for c in needed if c not in log.columns]
    if missing:
        raise ValueError(
            f"transaction log: missing column(s) {missing}; it has {list(log.columns)}. "
            "Pass customer_col/time_col/amount_col to name yours."
        )
    raw_times = log[time_col]
    if pd.api.types.is_integer_dtype(raw_times):
        times = pd.to_datetime(raw_times.astype(str), format="%Y%m%d", errors="coerce")
    elif pd.api.types.is_object_dtype(raw_times) or pd.api.types.is_string_dtype(raw_times):
        times = pd.to_datetime(raw_times, errors="coerce", format="mixed")
    else:
        times = pd.to_datetime(raw_times, errors="coerce")
    amounts = (
        pd.to_numeric(log[amount_col], errors="coerce") if amount_col else pd.Series(0.0, index=log.index)
    )
    bad = times.isna() | amounts.isna() | log[customer_col].isna()
    if bad.any():
        raise ValueError(
            f"transaction log: {int(bad.sum())} row(s) with an empty id or an unreadable {time_col!r}"
            + (f" or {amount_col!r}" if amount_col else "")
            + ", e.g.\n"
            + log.loc[bad, needed].head(3).to_string()
        )
    reference = pd.Timestamp(reference_date).normalize()
    keep = ((times < reference + pd.Timedelta(days=1)) & (amounts >= 0)).to_numpy()
    days = (
        pd.DataFrame(
            {
                "customer_id": log[customer_col].to_numpy()[keep],
                "day": times.dt.normalize().to_numpy()[keep],
                "amount": amounts.to_numpy(float)[keep],
            }
        )
        .groupby(["customer_id", "day"], sort=True)["amount"]
        .sum()
        .reset_index()
    )
    if days.empty:
        raise ValueError(f"transaction log: no purchase on or before {reference.date()}")
    grouped = days.groupby("customer_id", sort=True)
    first, last = grouped["day"].min(), grouped["day"].max()
    count = grouped.size()
    repeat_total = grouped["amount"].sum() - grouped["amount"].first()
    frequency = (count - 1).astype(float)
    return pd.DataFrame(
        {
            "customer_id": first.index.to_numpy(),
            "frequency": frequency.to_numpy(),
            "recency": ((last - first).dt.days / DAYS_PER_WEEK).to_numpy(float),
            "T": ((reference - first).dt.days / DAYS_PER_WEEK).to_numpy(float),
            "monetary_value": (repeat_total / frequency.where(frequency > 0)).fillna(0.0).to_numpy(float),
        }
    )


def fit_from_transactions(
    log: pd.DataFrame,
    reference_date,
    customer_col: str = "customer_id",
    time_col: str = "txn_at",
    amount_col: str = "amount",
    model: TransactionModelName = "mbgnbd",
    period_days: float = 90,
    horizon_months: int = 12,
    sample_size: int | None = None,
    seed: int = 0,
) -> ClvResult:
    """Fit the CLV models straight from a transaction log (one row per transaction) as of
    `reference_date`: `summary_from_transactions`, then `fit_and_predict` (BG/NBD or MBG/NBD and
    Gamma-Gamma by maximum likelihood; predictions per customer for the next `period_days` and
    `horizon_months`).

        from helpers.features.clv import fit_from_transactions
        result = fit_from_transactions(log, "1997-09-30", customer_col="id", time_col="date", model="bgnbd")
        result.transaction_params, result.predictions.head()
    """
    summary = summary_from_transactions(log, reference_date, customer_col, time_col, amount_col)
    return fit_and_predict(summary, model, period_days, horizon_months, sample_size, seed)
