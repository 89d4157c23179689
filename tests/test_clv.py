"""Lifetime value: the CDNOW reproduction of Fader, Hardie & Lee (2005) through the production
feature SQL, the MBG/NBD no-purchase probability against numerical integration, and the numpy
models against pymc-marketing's (likelihoods, gradients, MAP fits and predictions)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from helpers.core.settings import FeaturesSettings
from helpers.core.tables import TABLES
from helpers.engine.base import connect
from helpers.features import build as features
from helpers.features import clv

lifetimes = pytest.importorskip("lifetimes")  # dev/test-only dependency: the reference implementation
from lifetimes.utils import summary_data_from_transaction_data  # noqa: E402

CDNOW_END = "1997-09-30"
PANDAS_DTYPES = {
    "str": "string",
    "int": "Int64",
    "float": "float64",
    "bool": "boolean",
    "date": "datetime64[ns]",
    "datetime": "datetime64[ns]",
}
PROFILE_COLUMNS = [
    "gender",
    "birth_date",
    "province",
    "city",
    "city_tier",
    "customer_type",
    "industry",
    "employee_count",
    "annual_revenue_cny",
    "primary_device",
    "app_installed",
    "sessions_per_month",
    "online_minutes_per_month",
    "loyalty_tier",
]


def empty_table(name: str) -> pd.DataFrame:
    return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.type]) for c in TABLES[name].columns})


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_sample.txt"
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        names=["id", "index", "date", "quantity", "spend"],
        dtype={"id": str, "date": str},
    )
    raw["date"] = pd.to_datetime(raw["date"], format="%Y%m%d")
    return raw


@pytest.fixture(scope="module")
def cdnow_build(cdnow: pd.DataFrame) -> features.FeatureBuild:
    """The full feature build on CDNOW as a 'transactions' export, with the paper's BG/NBD."""
    transactions = pd.DataFrame(
        {
            "txn_id": np.arange(len(cdnow)).astype(str),
            "source_system": "crm",
            "source_customer_id": cdnow["id"],
            "txn_at": cdnow["date"],
            "amount": cdnow["spend"],
            "quantity": cdnow["quantity"],
            "category": "music",
            "channel": "phone",
            "is_refund": False,
        }
    )
    ids = cdnow["id"].unique()
    crosswalk = pd.DataFrame(
        {
            "source_system": "crm",
            "source_record_id": ids,
            "customer_id": ids,
            "match_method": "deterministic",
            "match_probability": 1.0,
        }
    )
    golden = pd.DataFrame({"customer_id": ids, **{column: None for column in PROFILE_COLUMNS}})
    engine = connect()
    engine.register("transactions", transactions)
    engine.register("crosswalk", crosswalk)
    for name in ("calls", "surveys", "marketing_contacts"):
        engine.register(name, empty_table(name))
    settings = features.FeatureSettings.from_config(FeaturesSettings(clv_model="bgnbd"), CDNOW_END, seed=1)
    return features.build_features(engine, golden, crosswalk, settings)


def test_rfm_summary_matches_lifetimes_customer_for_customer(cdnow, cdnow_build):
    reference = summary_data_from_transaction_data(
        cdnow,
        "id",
        "date",
        monetary_value_col="spend",
        observation_period_end=CDNOW_END,
        freq="D",
        freq_multiplier=7,
    )
    assert len(reference) == 2357
    ours = cdnow_build.features.set_index("customer_id")
    assert len(ours) == 2357
    ours = ours.loc[reference.index]
    pairs = {
        "frequency": "frequency_repeat",
        "recency": "clv_recency_weeks",
        "T": "clv_T_weeks",
        "monetary_value": "clv_monetary_repeat",
    }
    for theirs, mine in pairs.items():
        np.testing.assert_allclose(
            ours[mine].to_numpy(float), reference[theirs].to_numpy(float), rtol=1e-12, atol=1e-9, err_msg=mine
        )


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow_build):
    fitted = cdnow_build.clv.transaction_params
    for name, paper in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert fitted[name] == pytest.approx(paper, rel=0.01), name


def test_gamma_gamma_reproduces_fader_hardie_lee_2005(cdnow_build):
    fitted = cdnow_build.clv.spend_params
    for name, paper in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert fitted[name] == pytest.approx(paper, rel=0.01), name
    assert cdnow_build.clv.n_fit_repeat_customers == 946  # CDNOW sample customers with repeat purchases


def test_cdnow_predictions_are_consistent(cdnow_build):
    table = cdnow_build.features
    assert table["p_no_purchase_next_period"].between(0, 1).all()
    assert (table["expected_purchases_12m"] >= table["expected_purchases_next_period"]).all()
    assert (table["clv_12m"] > 0).all()
    # BG/NBD: one-time buyers are alive with certainty, the flaw the MBG/NBD default fixes.
    one_timers = table["frequency_repeat"] == 0
    assert (table.loc[one_timers, "p_alive"] == 1.0).all()


def _mbg_no_purchase_by_integration(
    params: dict[str, float], x: float, t_x: float, big_t: float, t: float
) -> float:
    """P(no purchase in (T, T+t]) under MBG/NBD: the dropout probability integrated out with beta
    functions, the purchase rate by numerical quadrature of the individual likelihood."""
    r, alpha, a, b = params["r"], params["alpha"], params["a"], params["b"]
    dead_weight = special.beta(a + 1, b + x)  # dropped out right after the last purchase
    alive_weight = special.beta(a, b + x + 1)  # survived all x + 1 purchase opportunities

    def likelihood(lam: float, horizon: float) -> float:
        density = stats.gamma.pdf(lam, r, scale=1 / alpha) * lam**x
        return density * (dead_weight * np.exp(-lam * t_x) + alive_weight * np.exp(-lam * (big_t + horizon)))

    def total(horizon: float) -> float:
        return integrate.quad(likelihood, 0, np.inf, args=(horizon,), epsabs=0, epsrel=1e-10, limit=200)[0]

    return total(t) / total(0.0)


def test_mbg_no_purchase_probability_matches_integration():
    params = {"r": 0.8, "alpha": 5.0, "a": 1.5, "b": 3.0}
    summary = pd.DataFrame(
        {"frequency": [0.0, 0.0, 3.0], "recency": [0.0, 0.0, 20.0], "T": [2.0, 60.0, 30.0]}
    )
    x, t_x, big_t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
    p_alive = 1.0 / (
        1
        + (params["a"] / (params["b"] + x))
        * ((params["alpha"] + big_t) / (params["alpha"] + t_x)) ** (params["r"] + x)
    )
    ours = clv.probability_no_purchase(p_alive, params, summary, horizon_weeks=4.0)
    for row, value in enumerate(ours):
        expected = _mbg_no_purchase_by_integration(params, x[row], t_x[row], big_t[row], 4.0)
        assert value == pytest.approx(expected, rel=1e-4)
    # A one-time buyer seen long ago is less likely to buy than a recent one.
    assert ours[1] > ours[0]


def test_mbg_gives_one_time_buyers_a_dropout_probability(cdnow_build):
    summary = features.clv_summary(cdnow_build.features.set_index("customer_id"))
    result = clv.fit_and_predict(summary, model="mbgnbd", period_days=30, horizon_months=12)
    predictions = result.predictions.merge(summary, on="customer_id")
    one_timers = predictions[predictions["frequency"] == 0]
    assert (one_timers["p_alive"] < 1).all()
    # Among one-time buyers, the longer ago the purchase, the likelier no purchase next period.
    rho = stats.spearmanr(one_timers["T"], one_timers["p_no_purchase_next_period"]).statistic
    assert rho > 0.99
    assert predictions["p_no_purchase_next_period"].between(1 - predictions["p_alive"], 1).all()


def test_summary_with_recency_beyond_t_is_rejected():
    bad = pd.DataFrame(
        {"customer_id": ["a"], "frequency": [1.0], "recency": [5.0], "T": [3.0], "monetary_value": [10.0]}
    )
    with pytest.raises(ValueError, match="recency"):
        clv.fit_and_predict(bad, model="mbgnbd", period_days=30, horizon_months=12)


def test_no_purchase_model_for_lifecycle_matches_fit_and_predict(cdnow_build):
    """The lifecycle churn model (`fit_no_purchase_model` + `no_purchase_probabilities`) is the same
    MBG/NBD as the CLV features: same fit, same P(no purchase), and longer horizons only add risk."""
    summary = features.clv_summary(cdnow_build.features.set_index("customer_id"))
    fitted = clv.fit_no_purchase_model(summary)
    month, year = clv.no_purchase_probabilities(fitted, summary, [30 / 7, 52.0])
    reference = clv.fit_and_predict(summary, model="mbgnbd", period_days=30, horizon_months=12).predictions
    assert month == pytest.approx(reference["p_no_purchase_next_period"].to_numpy(), abs=1e-6)
    assert (year <= month + 1e-12).all() and (year >= 1 - reference["p_alive"].to_numpy() - 1e-9).all()
    sampled = clv.fit_no_purchase_model(summary, sample_size=1000, seed=1)
    params, full = sampled.params, fitted.params
    assert params != full and params["r"] == pytest.approx(full["r"], rel=0.5)
    assert len(clv.sample_rows(summary, 1000, seed=1)) == 1000
    assert clv.sample_rows(summary, len(summary) + 1) is summary


def test_fit_from_transactions_reproduces_fader_hardie_lee_from_the_raw_log(cdnow):
    """The transaction log straight to the model: the same summary as lifetimes and the paper's
    BG/NBD and Gamma-Gamma parameters within 1 %; integer YYYYMMDD dates are read as dates."""
    raw = cdnow.assign(date=cdnow["date"].dt.strftime("%Y%m%d").astype("int64"))
    summary = clv.summary_from_transactions(raw, CDNOW_END, "id", "date", "spend")
    reference = summary_data_from_transaction_data(
        cdnow, "id", "date", monetary_value_col="spend", observation_period_end=CDNOW_END, freq="D",
        freq_multiplier=7,
    )  # fmt: skip
    ours = summary.set_index("customer_id").loc[reference.index]
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(ours[column], reference[column], rtol=1e-12, atol=1e-9, err_msg=column)
    result = clv.fit_from_transactions(raw, CDNOW_END, "id", "date", "spend", model="bgnbd")
    for name, paper in {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}.items():
        assert result.transaction_params[name] == pytest.approx(paper, rel=0.01), name
    for name, paper in {"p": 6.25, "q": 3.74, "v": 15.44}.items():
        assert result.spend_params[name] == pytest.approx(paper, rel=0.01), name
    assert len(result.predictions) == 2357 and result.predictions["p_alive"].between(0, 1).all()


def test_summary_from_transactions_ignores_refunds_and_later_rows_and_names_bad_columns():
    log = pd.DataFrame(
        {
            "cust": ["a", "a", "a", "a", "b"],
            "ts": ["2024-01-01", "2024-01-01 18:00", "2024-01-15", "2024-03-01", "2024-01-08"],
            "value": [10.0, 5.0, -3.0, 20.0, 0.0],
        }
    )
    summary = clv.summary_from_transactions(log, "2024-01-31", "cust", "ts", "value").set_index("customer_id")
    # a: one purchase day (the refund day is not one, March is after the date); b: a zero-amount day
    assert summary.loc["a"].tolist() == [0.0, 0.0, 30 / 7, 0.0]
    assert summary.loc["b"].tolist() == [0.0, 0.0, 23 / 7, 0.0]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['txn_at', 'amount'\]"):
        clv.summary_from_transactions(log, "2024-01-31", "cust")


@pytest.fixture(scope="module")
def cdnow_summary(cdnow_build) -> pd.DataFrame:
    return features.clv_summary(cdnow_build.features.set_index("customer_id"))


def _pymc_model(kind: str, summary: pd.DataFrame):
    """pymc-marketing's model of `kind` built on `summary` (compiled without C: FAST_COMPILE)."""
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel, GammaGammaModel, ModifiedBetaGeoModel

    if kind == "gg":
        model = GammaGammaModel(model_config={name: Prior("HalfFlat") for name in clv.SPEND_PARAMS})
        model.build_model(
            summary.loc[summary["frequency"] > 0, ["customer_id", "frequency", "monetary_value"]]
        )
        return model
    model_class = {"bgnbd": BetaGeoModel, "mbgnbd": ModifiedBetaGeoModel}[kind]
    model = model_class(model_config={name: Prior("HalfFlat") for name in clv.TRANSACTION_PARAMS})
    model.build_model(summary[["customer_id", "frequency", "recency", "T"]])
    return model


@pytest.mark.parametrize("kind", ["mbgnbd", "bgnbd", "gg"])
def test_log_likelihoods_and_gradients_are_pymc_marketings(cdnow_summary, kind):
    """At two parameter points our summed log-likelihood and its gradient (log parameters) equal the
    logp and dlogp of pymc-marketing's model (flat priors, no Jacobian), to rounding."""
    pytensor = pytest.importorskip("pytensor")
    summary = cdnow_summary
    if kind == "gg":
        repeaters = summary[summary["frequency"] > 0]
        ours = clv.gamma_gamma_log_likelihood(
            repeaters["frequency"].to_numpy(float), repeaters["monetary_value"].to_numpy(float)
        )
        names, points = clv.SPEND_PARAMS, [(6.0, 3.5, 15.0), (2.0, 9.0, 40.0)]
    else:
        loglik = {"mbgnbd": clv.mbgnbd_log_likelihood, "bgnbd": clv.bgnbd_log_likelihood}[kind]
        ours = loglik(*(summary[c].to_numpy(float) for c in ("frequency", "recency", "T")))
        names, points = clv.TRANSACTION_PARAMS, [(0.24, 4.4, 0.79, 2.4), (1.5, 20.0, 0.3, 8.0)]
    model = _pymc_model(kind, summary).model
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        logp = model.compile_logp(jacobian=False)
        dlogp = model.compile_dlogp(jacobian=False)
    for point in points:
        params = dict(zip(names, point, strict=True))
        values = {f"{name}_log__": np.log(value) for name, value in params.items()}
        value, gradient = ours(params)
        assert value.sum() == pytest.approx(float(logp(values)), rel=1e-12)
        theirs = dict(zip([v.name for v in model.value_vars], dlogp(values), strict=True))
        for name in names:
            assert gradient[name].sum() * params[name] == pytest.approx(
                theirs[f"{name}_log__"], rel=1e-9, abs=1e-9
            )


@pytest.mark.parametrize("kind", ["mbgnbd", "bgnbd"])
def test_fits_and_predictions_are_pymc_marketings(cdnow_summary, kind):
    """pymc-marketing's MAP fit (flat priors) and its predictions on CDNOW: our fit stops where
    its optimizer stops (parameters to 1e-7), and with its parameters our predictions are its
    predictions (expected purchases, P(alive), P(no purchase), Gamma-Gamma spend, CLV)."""
    pytensor = pytest.importorskip("pytensor")
    from pymc_marketing.clv import customer_lifetime_value

    summary = cdnow_summary
    with pytensor.config.change_flags(mode="FAST_COMPILE"):
        theirs = _pymc_model(kind, summary)
        theirs.fit(method="map", progressbar=False)
        spend = _pymc_model("gg", summary)
        spend.fit(method="map", progressbar=False)
    their_params = {name: float(theirs.idata.posterior[name].squeeze()) for name in clv.TRANSACTION_PARAMS}
    their_spend = {name: float(spend.idata.posterior[name].squeeze()) for name in clv.SPEND_PARAMS}
    ours = clv.fit_transaction_model(summary, kind)
    for name, value in their_params.items():
        assert ours.params[name] == pytest.approx(value, rel=1e-7), name
    for name, value in their_spend.items():
        assert clv.fit_spend_model(summary).params[name] == pytest.approx(value, rel=1e-7), name

    model, spend_model = clv.TransactionModel(kind, their_params), clv.SpendModel(their_spend)
    data = summary[clv.SUMMARY_COLUMNS]
    predicted = clv.predict(model, spend_model, summary, period_days=30, horizon_months=12)

    def same(ours: np.ndarray, expected) -> None:
        np.testing.assert_allclose(ours, np.asarray(expected).reshape(-1), rtol=1e-12, atol=1e-14)

    same(predicted["expected_purchases_next_period"], theirs.expected_purchases(data=data, future_t=30 / 7))
    same(predicted["p_alive"], theirs.expected_probability_alive(data=data))
    if kind == "bgnbd":
        same(
            predicted["p_no_purchase_next_period"],
            theirs.expected_probability_no_purchase(t=30 / 7, data=data),
        )
    same(predicted["expected_spend_per_purchase"], spend.expected_customer_spend(data=data))
    their_clv = customer_lifetime_value(
        theirs,
        data.assign(future_spend=predicted["expected_spend_per_purchase"].to_numpy()),
        future_t=12,
        time_unit="W",
    )
    same(predicted["clv_12m"], their_clv)


def test_a_fit_on_data_the_model_cannot_describe_names_it():
    """Spend that is not finite makes the likelihood not finite: the error names the model and rows."""
    summary = pd.DataFrame(
        {"customer_id": ["a", "b"], "frequency": [2.0, 3.0], "recency": [5.0, 6.0], "T": [9.0, 9.0],
         "monetary_value": [10.0, 1e308]}
    )  # fmt: skip
    with pytest.raises(ValueError, match="Gamma-Gamma on 2 repeat buyers: the likelihood is not finite"):
        clv.fit_spend_model(summary)
