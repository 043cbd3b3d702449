"""Analytics against independent references and hand-worked cases."""

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from arch.unitroot import ADF
from statsmodels.regression.rolling import RollingOLS
from statsmodels.tsa.stattools import adfuller, coint

from backend import analytics as an


@pytest.fixture(scope="module")
def pair():
    """A cointegrated pair with known beta 1.5 and alpha 2: x a random walk, y = 2 + 1.5 x + AR(1)."""
    rng = np.random.default_rng(11)
    n = 3_000
    x = 100 + np.cumsum(rng.normal(0, 1, n))
    u = np.zeros(n)
    for t in range(1, n):
        u[t] = 0.9 * u[t - 1] + rng.normal(0, 0.5)
    return 2 + 1.5 * x + u, x


def test_ols_matches_lstsq_and_recovers_beta(pair):
    y, x = pair
    beta, alpha = an.hedge_ratio(y, x, "ols")
    (ref_alpha, ref_beta), *_ = np.linalg.lstsq(
        np.column_stack([np.ones_like(x), x]), y, rcond=None
    )
    assert beta == pytest.approx(ref_beta, rel=1e-10) and alpha == pytest.approx(
        ref_alpha, rel=1e-8
    )
    assert abs(beta - 1.5) < 0.02


@pytest.mark.parametrize("method", ["huber", "theil-sen"])
def test_robust_methods_recover_beta_despite_outliers(pair, method):
    y, x = pair
    y = y[:800].copy()
    x = x[:800]
    y[np.argsort(x)[-40:]] -= 40  # bad prints at the highest x: leverage points that tilt OLS
    beta, _ = an.hedge_ratio(y, x, method)
    assert abs(beta - 1.5) < 0.05
    assert abs(an.hedge_ratio(y, x, "ols")[0] - 1.5) > abs(beta - 1.5)


def test_spread_keeps_the_intercept():
    y, x = np.array([5.0, 7.0]), np.array([1.0, 2.0])
    np.testing.assert_allclose(an.spread(y, x, 2.0, 3.0), [0.0, 0.0])
    s = an.spread(pd.Series(y, index=[10, 20]), x, 2.0, 1.0)
    assert isinstance(s, pd.Series) and list(s.index) == [10, 20]


def test_zscore_equals_pandas_rolling_with_sample_std(pair):
    s = an.spread(*pair, 1.5, 2.0)
    s[1000] = np.nan  # a hole: the windows that hold it are NaN
    ser = pd.Series(s)
    ref = (ser - ser.rolling(60).mean()) / ser.rolling(60).std(ddof=1)
    got = an.zscore(s, 60)
    np.testing.assert_allclose(got, ref.to_numpy(), rtol=1e-7, atol=1e-9, equal_nan=True)
    assert np.isnan(got[:59]).all() and np.isfinite(got[59])
    assert np.isnan(got[1000:1060]).all() and np.isfinite(got[1060])


def test_zscore_on_price_sized_values_stays_accurate():
    rng = np.random.default_rng(5)
    prices = 90_000 + np.cumsum(rng.normal(0, 0.5, 86_400))
    ser = pd.Series(prices)
    ref = (ser - ser.rolling(300).mean()) / ser.rolling(300).std()
    np.testing.assert_allclose(an.zscore(prices, 300), ref, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_rolling_corr_equals_pandas(pair):
    ra, rb = an.log_returns(pair[0]), an.log_returns(pair[1])
    ref = pd.Series(ra).rolling(100).corr(pd.Series(rb))
    np.testing.assert_allclose(
        an.rolling_corr(ra, rb, 100), ref, rtol=1e-7, atol=1e-9, equal_nan=True
    )


def test_rolling_hedge_ratio_equals_statsmodels_rolling_ols(pair):
    y, x = pair[0][:600], pair[1][:600]
    beta, alpha = an.rolling_hedge_ratio(y, x, 120)
    ref = RollingOLS(y, sm.add_constant(x), window=120).fit().params
    np.testing.assert_allclose(beta, ref[:, 1], rtol=1e-7, equal_nan=True)
    np.testing.assert_allclose(alpha, ref[:, 0], rtol=1e-6, atol=1e-7, equal_nan=True)


def test_adf_matches_statsmodels_and_arch(pair):
    s = an.spread(*pair, *an.hedge_ratio(*pair))
    p = an.adf_pvalue(s)
    assert p == pytest.approx(
        adfuller(s, regression="c", autolag="AIC", result_object=False)[1], rel=1e-12
    )
    assert p == pytest.approx(ADF(s, trend="c", method="aic").pvalue, rel=0.05, abs=1e-4)
    assert p < 0.01


def test_independent_random_walks_are_not_cointegrated():
    rng = np.random.default_rng(21)
    rejections = 0
    for _ in range(20):
        a = np.cumsum(rng.normal(size=800))
        b = np.cumsum(rng.normal(size=800))
        rejections += an.engle_granger_pvalue(a, b) < 0.05
    assert rejections <= 3  # ~5% size; at most 3 of 20 by chance


def test_engle_granger_matches_statsmodels(pair):
    y, x = pair
    assert an.engle_granger_pvalue(y, x) == pytest.approx(coint(y, x)[1], rel=1e-12)
    assert an.engle_granger_pvalue(y, x) < 0.01


def test_half_life_of_a_known_ar1():
    rng = np.random.default_rng(2)
    phi = 0.95  # half-life ln(0.5)/ln(0.95) = 13.51 bars
    u = np.zeros(20_000)
    for t in range(1, len(u)):
        u[t] = phi * u[t - 1] + rng.normal()
    assert an.half_life(u) == pytest.approx(math.log(0.5) / math.log(phi), rel=0.1)
    assert an.half_life(1.01 ** np.arange(200)) == math.inf  # explosive: no mean reversion


def test_kalman_tracks_a_beta_that_shifts_mid_sample():
    rng = np.random.default_rng(8)
    n = 4_000
    x = 50 + np.cumsum(rng.normal(0, 0.5, n))
    true_beta = np.where(np.arange(n) < n // 2, 1.0, 2.0)
    y = 5 + true_beta * x + rng.normal(0, 0.3, n)
    beta, alpha = an.kalman_hedge(y, x, delta=1e-4, obs_var=0.09)
    assert abs(np.median(beta[1500:2000]) - 1.0) < 0.1
    assert abs(np.median(beta[3500:]) - 2.0) < 0.1
    assert beta.shape == (n,) and np.isfinite(alpha).all()


def test_alerts_are_edge_triggered_one_per_excursion():
    z = np.array([0, 1, 2.5, 3, 2.1, 1, np.nan, 2.2, -2.6, -3, -1, 0, 2.01])
    events = an.zscore_alerts(z, 2.0, times=[f"t{i}" for i in range(len(z))])
    assert [(e.index, e.direction, e.time) for e in events] == [
        (2, "above", "t2"),
        (7, "above", "t7"),
        (8, "below", "t8"),  # straight from +2.2 to -2.6: a new excursion
        (12, "above", "t12"),
    ]
    assert events[0].value == 2.5
    with pytest.raises(ValueError):
        an.zscore_alerts(z, 0)


def test_backtest_hand_worked_with_delay_and_costs():
    # y moves, x flat, beta 1: spread changes are dy. z is given directly.
    y = np.array([100.0, 100, 99, 98, 99, 100, 101, 101])
    x = np.full(8, 50.0)
    z = np.array([0.0, -2.5, -2.8, -1.0, 0.5, 0.2, 3.0, 0.0])
    r = an.backtest(y, x, z, 1.0, entry=2.0, exit=0.0, cost_bps=10, log_prices=False)
    # Long decided at bar 1 (z=-2.5), held from bar 2; exit decided at bar 4 (z>=0), flat from 5.
    assert r.position.tolist() == [0, 0, 1, 1, 1, 0, 0, -1]
    base = 100 + 1 * 50  # gross notional at entry (bar 1)
    expected_gross = [0, 0, -1 / base, -1 / base, 1 / base, 0, 0, 0]
    cost = 10e-4
    # Costs at each decision: entry 1, exit 4, short entry 6 (z=3), its exit 7 (z=0 <= exit).
    expected = np.array(expected_gross) - np.array([0, cost, 0, 0, cost, 0, cost, cost])
    np.testing.assert_allclose(r.pnl, expected)
    assert r.summary["trades"] == 2
    trips = r.trades
    assert trips["direction"].tolist() == ["long", "short"]
    assert trips["net_return"].iloc[0] == pytest.approx(-1 / base - 2 * cost)
    assert trips["closed"].tolist() == [True, True]
    assert trips["net_return"].iloc[1] == pytest.approx(-2 * cost)
    assert r.summary["hit_rate"] == 0.0
    assert r.summary["total_return"] == pytest.approx(expected.sum())
    assert r.summary["max_drawdown"] == pytest.approx(-expected.cumsum().min())


def test_backtest_has_no_look_ahead():
    rng = np.random.default_rng(4)
    y, x = 100 + np.cumsum(rng.normal(size=500)), np.full(500, 10.0)
    z = an.zscore(y, 20)
    base = an.backtest(y, x, z, 0.0, cost_bps=0)
    # Changing the future must not change the past.
    y2 = y.copy()
    y2[300:] += 50
    z2 = an.zscore(y2, 20)
    other = an.backtest(y2, x, z2, 0.0, cost_bps=0)
    np.testing.assert_array_equal(base.position[:301], other.position[:301])
    np.testing.assert_allclose(base.pnl[:300], other.pnl[:300])


@pytest.mark.parametrize("bad", [[], [1.0], [1.0, 1.0, 1.0, 1.0]])
def test_degenerate_inputs_give_nan_not_crashes(bad):
    assert all(math.isnan(v) for v in an.hedge_ratio(bad, bad))
    assert math.isnan(an.adf_pvalue(bad))
    assert math.isnan(an.engle_granger_pvalue(bad, bad))
    assert math.isnan(an.half_life(bad))
    assert np.isnan(an.zscore(bad, 2)).all()
    assert np.isnan(an.rolling_corr(bad, bad, 2)).all()


def test_shorter_than_the_window_and_nan_inside():
    assert np.isnan(an.zscore([1.0, 2.0, 3.0], 10)).all()
    assert np.isnan(an.rolling_hedge_ratio([1.0, 2.0], [1.0, 3.0], 5)[0]).all()
    assert math.isnan(an.adf_pvalue(np.r_[np.arange(30.0), np.nan, np.arange(30.0)]))
    # Leading NaNs (a rolling output's warm-up) are stripped, not fatal.
    rng = np.random.default_rng(1)
    s = np.r_[np.full(10, np.nan), rng.normal(size=200)]
    assert an.adf_pvalue(s) == pytest.approx(
        adfuller(s[10:], autolag="AIC", result_object=False)[1]
    )


def test_misaligned_and_invalid_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="misaligned"):
        an.hedge_ratio([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="misaligned"):
        an.rolling_corr([1, 2, 3], [1, 2], 2)
    with pytest.raises(ValueError, match="window"):
        an.zscore([1, 2, 3], 1)
    with pytest.raises(ValueError, match="unknown method"):
        an.hedge_ratio([1, 2, 3], [1, 2, 3], "ridge")
    with pytest.raises(ValueError, match="entry > exit"):
        an.backtest([1, 2], [1, 2], [0, 0], 1.0, entry=1, exit=2)


def test_correlation_matrix_and_stats_table(pair):
    y, x = pair
    rets = {"Y": an.log_returns(y), "X": an.log_returns(x)}
    m = an.correlation_matrix(rets, 500)
    ref = pd.DataFrame(rets).tail(500).corr()
    np.testing.assert_allclose(m.to_numpy(), ref.to_numpy())
    t = np.arange(len(y)) * 60_000
    z = an.zscore(an.spread(y, x, 1.5, 2.0), 30)
    table = an.bar_stats_table(
        t, y, x, np.ones_like(y), np.ones_like(x), an.spread(y, x, 1.5, 2), z, 30, ("Y", "X")
    )
    assert list(table.columns)[:3] == ["time", "Y_close", "X_close"]
    assert table["time"].iloc[1] == pd.Timestamp("1970-01-01T00:01:00Z")
    np.testing.assert_allclose(
        table["Y_vol"], pd.Series(rets["Y"]).rolling(30).std(), rtol=1e-7, equal_nan=True
    )


def test_log_returns_keep_the_input_length_even_when_empty():
    assert len(an.log_returns(np.array([]))) == 0
    np.testing.assert_allclose(
        an.log_returns([1.0, np.e, 1.0]), [np.nan, 1.0, -1.0], equal_nan=True
    )
    assert len(an.bar_stats_table(np.arange(0), *([np.array([])] * 6), 60)) == 0
