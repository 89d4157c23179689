"""Customer lifetime value: BG/NBD or MBG/NBD purchase models and the Gamma-Gamma spend model,
fitted by maximum likelihood with scipy and predicted in closed form with numpy.

The transaction model is the MBG/NBD by default: unlike the BG/NBD it lets one-time buyers drop out,
so a customer who bought once long ago gets a low probability of being alive and a high probability
of no purchase in the next period. Gamma-Gamma models spend per repeat purchase. Inputs follow the
lifetimes/pymc-marketing RFM convention: `frequency` (repeat purchase days), `recency` and `T` in
weeks (days / 7), `monetary_value` (mean spend of repeat purchase days).

The log-likelihoods and predictions are pymc-marketing's (0.19: `BetaGeoNBD`, `ModifiedBetaGeoNBD`,
the Gamma-Gamma potential; `expected_purchases`, `expected_probability_alive`,
`expected_probability_no_purchase`, `expected_customer_spend`, `customer_lifetime_value`) written in
numpy; `tests/test_clv.py` checks them against pymc-marketing. Its MAP fit with flat priors is this
maximum likelihood, found here as pymc's `find_MAP` finds it (`maximize_likelihood`) but with
analytic gradients: no model is compiled (pymc-marketing spent 6-8 s per process compiling for a
fit of 0.1 s) and pymc is not imported (4-5 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, special

TransactionModelName = Literal["mbgnbd", "bgnbd"]
DAYS_PER_WEEK = 7.0
WEEKS_PER_MONTH = 4.345  # pymc-marketing's weeks-per-month factor for time_unit="W"
SUMMARY_COLUMNS = ["customer_id", "frequency", "recency", "T", "monetary_value"]
TRANSACTION_PARAMS = ("r", "alpha", "a", "b")
SPEND_PARAMS = ("p", "q", "v")
FIT_COUNT = {"transaction": 0, "spend": 0}  # fits made in this process (tests check reuse with it)


@dataclass(frozen=True)
class TransactionModel:
    """A BG/NBD or MBG/NBD with point parameters `r, alpha, a, b` (fitted, or an earlier fit's)."""

    model: TransactionModelName
    params: dict[str, float]

    def _inputs(self, summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))

    def expected_purchases(self, summary: pd.DataFrame, t: float) -> np.ndarray:
        """Expected purchases in (T, T + t] (weeks) per summary row."""
        r, alpha, a, b = (self.params[name] for name in TRANSACTION_PARAMS)
        x, t_x, big_t = self._inputs(summary)
        if self.model == "mbgnbd":  # Batislam et al. (2007), eq. 6
            hyp_term = special.hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + big_t + t))
            numerator = (
                (a + b + x) / (a - 1) * (1 - hyp_term * ((alpha + big_t) / (alpha + t + big_t)) ** (r + x))
            )
            denominator = 1 + (a / (b + x)) * ((alpha + big_t) / (alpha + t_x)) ** (r + x)
            return numerator / denominator
        # Fader, Hardie & Lee (2005), eq. 10
        numerator = 1 - ((alpha + big_t) / (alpha + big_t + t)) ** (r + x) * special.hyp2f1(
            r + x, b + x, a + b + x - 1, t / (alpha + big_t + t)
        )
        numerator *= (a + b + x - 1) / (a - 1)
        denominator = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + big_t) / (alpha + t_x)) ** (r + x)
        return numerator / denominator

    def probability_alive(self, summary: pd.DataFrame) -> np.ndarray:
        """P(alive at T) per summary row."""
        r, alpha, a, b = (self.params[name] for name in TRANSACTION_PARAMS)
        x, t_x, big_t = self._inputs(summary)
        if self.model == "mbgnbd":
            return 1.0 / (1 + (a / (b + x)) * ((alpha + big_t) / (alpha + t_x)) ** (r + x))
        log_div = (r + x) * np.log((alpha + big_t) / (alpha + t_x)) + np.log(a / (b + np.maximum(x, 1) - 1))
        return np.where(x == 0, 1.0, special.expit(-log_div))

    def probability_no_purchase(
        self, summary: pd.DataFrame, t: float, p_alive: np.ndarray | None = None
    ) -> np.ndarray:
        """P(no purchase in (T, T + t]) per summary row (`p_alive`: `probability_alive`, when known)."""
        if self.model == "mbgnbd":
            alive = self.probability_alive(summary) if p_alive is None else p_alive
            return probability_no_purchase(alive, self.params, summary, t)
        # BG/NBD: Hardie's note 039, eq. 34
        r, alpha, a, b = (self.params[name] for name in TRANSACTION_PARAMS)
        x, t_x, big_t = self._inputs(summary)
        beta_rep = special.betaln(a, b + x)
        k_e = special.betaln(a + 1, b + x - 1) - (r + x) * np.log(alpha + t_x)
        k_f = beta_rep - (r + x) * np.log(alpha + big_t + t)
        k_m = beta_rep - (r + x) * np.log(alpha + big_t)
        k1, k2 = np.maximum(k_e, k_f), np.maximum(k_e, k_m)
        numerator = np.exp(k_e - k1) + np.exp(k_f - k1)
        denominator = np.exp(k_e - k2) + np.exp(k_m - k2)
        return np.exp(k1 - k2) * numerator / denominator


@dataclass(frozen=True)
class SpendModel:
    """A Gamma-Gamma spend model with point parameters `p, q, v`."""

    params: dict[str, float]

    def expected_spend(self, summary: pd.DataFrame) -> np.ndarray:
        """Expected spend per purchase day: the customer's repeat mean shrunk to the population's."""
        p, q, v = (self.params[name] for name in SPEND_PARAMS)
        frequency = summary["frequency"].to_numpy(float)
        individual_weight = p * frequency / (p * frequency + q - 1)
        population_mean = v * p / (q - 1)
        return (1 - individual_weight) * population_mean + individual_weight * summary[
            "monetary_value"
        ].to_numpy(float)


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


LogLikelihood = Callable[[dict[str, float]], tuple[np.ndarray, dict[str, np.ndarray]]]


def mbgnbd_log_likelihood(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> LogLikelihood:
    """The MBG/NBD log-likelihood per customer and its gradient (pymc-marketing's `ModifiedBetaGeoNBD`)."""

    def evaluate(params: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r, alpha, a, b = (params[name] for name in TRANSACTION_PARAMS)
        log_ratio = np.log(alpha + big_t) - np.log(alpha + t_x)
        a4 = np.log(a) - np.log(b + x) + (r + x) * log_ratio
        value = (
            special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
            + special.gammaln(a + b) + special.gammaln(b + x + 1) - special.gammaln(b)
            - special.gammaln(a + b + x + 1)
            - (r + x) * np.log(alpha + big_t)
            + np.logaddexp(a4, 0)
        )  # fmt: skip
        weight = special.expit(a4)  # d logaddexp(a4, 0) / d a4
        digamma_ab, digamma_abx = special.digamma(a + b), special.digamma(a + b + x + 1)
        gradient = {
            "r": special.digamma(r + x) - special.digamma(r) + np.log(alpha) - np.log(alpha + big_t)
            + weight * log_ratio,
            "alpha": r / alpha - (r + x) / (alpha + big_t)
            + weight * (r + x) * (1 / (alpha + big_t) - 1 / (alpha + t_x)),
            "a": digamma_ab - digamma_abx + weight / a,
            "b": digamma_ab + special.digamma(b + x + 1) - special.digamma(b) - digamma_abx
            - weight / (b + x),
        }  # fmt: skip
        return value, gradient

    return evaluate


def bgnbd_log_likelihood(x: np.ndarray, t_x: np.ndarray, big_t: np.ndarray) -> LogLikelihood:
    """The BG/NBD log-likelihood per customer and its gradient (pymc-marketing's `BetaGeoNBD`)."""
    repeat = x > 0

    def evaluate(params: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        r, alpha, a, b = (params[name] for name in TRANSACTION_PARAMS)
        log_ratio = np.log(alpha + t_x) - np.log(alpha + big_t)
        log_c3 = (r + x) * log_ratio
        log_c4 = np.where(repeat, np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)), -np.inf)
        mixture = np.logaddexp(log_c3, log_c4)
        value = (
            special.gammaln(r + x) - special.gammaln(r) + special.gammaln(a + b) + special.gammaln(b + x)
            - special.gammaln(b) - special.gammaln(a + b + x)
            + r * np.log(alpha) - (r + x) * np.log(alpha + t_x)
            + mixture
        )  # fmt: skip
        w3 = np.exp(log_c3 - mixture)  # the shares of c3 and c4 in log(c3 + c4)
        w4 = 1.0 - w3
        digamma_ab, digamma_abx = special.digamma(a + b), special.digamma(a + b + x)
        gradient = {
            "r": special.digamma(r + x) - special.digamma(r) + np.log(alpha) - np.log(alpha + t_x)
            + w3 * log_ratio,
            "alpha": r / alpha - (r + x) / (alpha + t_x)
            + w3 * (r + x) * (1 / (alpha + t_x) - 1 / (alpha + big_t)),
            "a": digamma_ab - digamma_abx + w4 / a,
            "b": digamma_ab + special.digamma(b + x) - special.digamma(b) - digamma_abx
            - np.where(repeat, w4 / np.where(repeat, b + x - 1, 1.0), 0.0),
        }  # fmt: skip
        return value, gradient

    return evaluate


def gamma_gamma_log_likelihood(x: np.ndarray, mean_spend: np.ndarray) -> LogLikelihood:
    """The Gamma-Gamma log-likelihood of repeat buyers' mean spend and its gradient (pymc-marketing's
    `GammaGammaModel` potential)."""
    log_spend, log_x = np.log(mean_spend), np.log(x)

    def evaluate(params: dict[str, float]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        p, q, v = (params[name] for name in SPEND_PARAMS)
        log_total = np.log(x * mean_spend + v)
        value = (
            special.gammaln(p * x + q) - special.gammaln(p * x) - special.gammaln(q) + q * np.log(v)
            + (p * x - 1) * log_spend + (p * x) * log_x - (p * x + q) * log_total
        )  # fmt: skip
        digamma_pxq = special.digamma(p * x + q)
        gradient = {
            "p": x * (digamma_pxq - special.digamma(p * x) + log_spend + log_x - log_total),
            "q": digamma_pxq - special.digamma(q) + np.log(v) - log_total,
            "v": q / v - (p * x + q) / (x * mean_spend + v),
        }
        return value, gradient

    return evaluate


def maximize_likelihood(log_likelihood: LogLikelihood, names: tuple[str, ...], what: str) -> dict[str, float]:
    """The parameters (all positive) maximizing the summed `log_likelihood`, found as pymc's
    `find_MAP` finds a MAP with flat priors: L-BFGS-B (scipy's default tolerances) on the negative
    sum over the log parameters, from log 1 = 0. The same path gives the same stopping point: the
    parameters agree with pymc-marketing's to ~1e-9. Raises ValueError naming `what` when the
    likelihood is not finite there."""

    def cost(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = dict(zip(names, np.exp(log_params), strict=True))
        with np.errstate(all="ignore"):  # a line search's far trial points may overflow: it steps back
            value, gradient = log_likelihood(params)
            return -float(np.sum(value)), -np.array([np.sum(gradient[name]) * params[name] for name in names])

    found = optimize.minimize(cost, np.zeros(len(names)), method="L-BFGS-B", jac=True)
    if not (np.isfinite(found.fun) and np.isfinite(found.x).all()):
        raise ValueError(
            f"{what}: the likelihood is not finite ({found.message}); the data may not fit the model"
        )
    return {name: float(value) for name, value in zip(names, np.exp(found.x), strict=True)}


def fit_transaction_model(summary: pd.DataFrame, model: TransactionModelName = "mbgnbd") -> TransactionModel:
    """Fit BG/NBD or MBG/NBD by maximum likelihood (= pymc-marketing's MAP with HalfFlat priors)."""
    inputs = tuple(summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    log_likelihood = {"bgnbd": bgnbd_log_likelihood, "mbgnbd": mbgnbd_log_likelihood}[model](*inputs)
    params = maximize_likelihood(log_likelihood, TRANSACTION_PARAMS, f"{model} on {len(summary)} customers")
    FIT_COUNT["transaction"] += 1
    return TransactionModel(model, params)


def sample_rows(summary: pd.DataFrame, sample_size: int | None, seed: int = 0) -> pd.DataFrame:
    """A random sample of `sample_size` rows, or all rows when there are not more than that."""
    if sample_size and len(summary) > sample_size:
        return summary.sample(n=sample_size, random_state=seed)
    return summary


def fit_no_purchase_model(
    summary: pd.DataFrame, sample_size: int | None = None, seed: int = 0
) -> TransactionModel:
    """MBG/NBD fitted on `summary` (a random sample of `sample_size` rows when it has more), for
    `no_purchase_probabilities`."""
    return fit_transaction_model(sample_rows(summary, sample_size, seed), "mbgnbd")


def no_purchase_probabilities(
    fitted: TransactionModel, summary: pd.DataFrame, horizons_weeks: list[float]
) -> list[np.ndarray]:
    """P(no purchase in (T, T+t]) per row of `summary` for each horizon t (weeks)."""
    p_alive = fitted.probability_alive(summary)
    return [fitted.probability_no_purchase(summary, horizon, p_alive) for horizon in horizons_weeks]


def fit_spend_model(summary: pd.DataFrame) -> SpendModel:
    """Fit Gamma-Gamma by maximum likelihood on customers with repeat purchases of positive mean
    value (net refunds can make it zero or negative; the model needs it positive)."""
    usable = (
        (summary["frequency"] > 0) & (summary["monetary_value"] > 0) & np.isfinite(summary["monetary_value"])
    )
    repeaters = summary.loc[usable]
    if repeaters.empty:
        raise ValueError("Gamma-Gamma needs customers with repeat purchases; the transactions have none.")
    log_likelihood = gamma_gamma_log_likelihood(
        repeaters["frequency"].to_numpy(float), repeaters["monetary_value"].to_numpy(float)
    )
    params = maximize_likelihood(
        log_likelihood, SPEND_PARAMS, f"Gamma-Gamma on {len(repeaters)} repeat buyers"
    )
    FIT_COUNT["spend"] += 1
    return SpendModel(params)


def purchase_outlook(
    fitted: TransactionModel, summary: pd.DataFrame, horizons_weeks: list[float]
) -> dict[str, object]:
    """A fitted MBG/NBD's outlook per row of `summary`: `p_alive` (array), and per horizon t (weeks)
    `p_no_purchase` and `expected_purchases` in (T, T+t] (lists of arrays, in the horizons' order)."""
    p_alive = fitted.probability_alive(summary)
    return {
        "p_alive": p_alive,
        "p_no_purchase": [fitted.probability_no_purchase(summary, t, p_alive) for t in horizons_weeks],
        "expected_purchases": [fitted.expected_purchases(summary, t) for t in horizons_weeks],
    }


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
    transaction_model: TransactionModel,
    spend_model: SpendModel,
    summary: pd.DataFrame,
    period_days: float,
    horizon_months: int,
) -> pd.DataFrame:
    """Per-customer predictions: expected purchases and P(no purchase) in the next period,
    P(alive), expected spend per purchase and CLV over `horizon_months` (undiscounted: expected
    purchases over the horizon times expected spend, as pymc-marketing's `customer_lifetime_value`
    with discount rate 0)."""
    period_weeks = period_days / DAYS_PER_WEEK
    data = summary[SUMMARY_COLUMNS].reset_index(drop=True)
    p_alive = transaction_model.probability_alive(data)
    spend = spend_model.expected_spend(data)
    horizon_weeks = horizon_months * WEEKS_PER_MONTH
    expected_horizon = transaction_model.expected_purchases(data, horizon_weeks)
    return pd.DataFrame(
        {
            "customer_id": data["customer_id"].to_numpy(),
            "expected_purchases_next_period": transaction_model.expected_purchases(data, period_weeks),
            "p_no_purchase_next_period": transaction_model.probability_no_purchase(
                data, period_weeks, p_alive
            ),
            "p_alive": p_alive,
            "expected_purchases_horizon": expected_horizon,
            "expected_spend_per_purchase": spend,
            "clv_12m": 0.0 + (spend * expected_horizon) / 1.0**horizon_months,
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
        transaction_params=dict(transaction_model.params),
        spend_params=dict(spend_model.params),
        n_fit_customers=len(fit_data),
        n_fit_repeat_customers=int((fit_data["frequency"] > 0).sum()),
        fit_seconds=fit_seconds,
        predictions=predict(transaction_model, spend_model, summary, period_days, horizon_months),
    )


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
