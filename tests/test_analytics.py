"""Analytics against independent references and hand-worked cases."""

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from arch.unitroot import ADF
from statsmodels.regression.rolling import RollingOLS
from statsmodels.stats.multitest import multipletests
from statsmodels.tsa.stattools import adfuller, coint

from backend import analytics as an
from tests.conftest import basket_levels, reference_bars


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
    full = an.adf_test(s)
    ref = ADF(s, trend="c", method="aic")
    assert full.pvalue == p and full.statistic == pytest.approx(ref.stat, rel=1e-6)
    for level in ("1%", "5%", "10%"):
        assert full.critical[level] == pytest.approx(ref.critical_values[level], rel=1e-3)
    assert full.verdict.startswith("stationary at 1%")
    walk = np.cumsum(np.random.default_rng(0).normal(size=300))
    assert an.adf_test(walk).verdict.startswith("unit root not rejected")


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


def test_an_estimated_spread_is_judged_against_the_engle_granger_table(pair):
    """The spread's ADF p comes from MacKinnon's two-variable table (statsmodels coint's); on
    an in-sample OLS residual it is coint's test exactly."""
    from statsmodels.tsa.adfvalues import mackinnoncrit, mackinnonp

    y, x = pair[0][:400], pair[1][:400]
    b, a = an.hedge_ratio(y, x)
    residual = an.spread_adf(y - a - b * x, residual=True)
    ref = coint(y, x, trend="c", autolag="aic")
    assert residual.statistic == pytest.approx(ref[0], rel=1e-10)
    assert residual.pvalue == pytest.approx(ref[1], rel=1e-10)
    np.testing.assert_allclose(list(residual.critical.values()), ref[2], rtol=1e-12)
    rng = np.random.default_rng(3)
    walk = np.cumsum(rng.normal(size=300)) + 0.4 * rng.normal(size=300)
    got = an.spread_adf(walk)
    stat = adfuller(walk, regression="c", autolag="AIC", result_object=False)[0]
    assert got.statistic == stat and got.pvalue == mackinnonp(stat, "c", N=2)
    np.testing.assert_allclose(list(got.critical.values()), mackinnoncrit(2, "c", 299))
    # The example: a statistic of -3.0 is p 0.035 on the one-variable table, 0.110 on
    # the Engle-Granger one.
    assert mackinnonp(-3.0, "c", N=1) == pytest.approx(0.035, abs=5e-4)
    assert an.mackinnon_pvalue(-3.0, n_vars=2) == pytest.approx(0.110, abs=5e-4)


def test_half_life_interval_matches_statsmodels_and_covers_the_truth():
    rng = np.random.default_rng(8)
    phi = 0.9  # half-life 6.58 bars
    u = np.zeros(3_000)
    for t in range(1, len(u)):
        u[t] = phi * u[t - 1] + rng.normal()
    got = an.half_life_interval(u)
    fit = sm.OLS(np.diff(u), sm.add_constant(u[:-1])).fit()
    assert got.bars == pytest.approx(an.half_life(u), rel=1e-9)
    assert got.low == pytest.approx(-math.log(2) / math.log1p(fit.params[1] - 1.96 * fit.bse[1]))
    assert got.low < math.log(0.5) / math.log(phi) < got.high
    walk = np.cumsum(rng.normal(size=200))
    assert (
        an.half_life_interval(walk).high == math.inf or an.half_life_interval(walk).bars == math.inf
    )


def test_half_life_of_a_known_ar1():
    rng = np.random.default_rng(2)
    phi = 0.95  # half-life ln(0.5)/ln(0.95) = 13.51 bars
    u = np.zeros(20_000)
    for t in range(1, len(u)):
        u[t] = phi * u[t - 1] + rng.normal()
    assert an.half_life(u) == pytest.approx(math.log(0.5) / math.log(phi), rel=0.1)
    assert an.half_life(1.01 ** np.arange(200)) == math.inf  # explosive: no mean reversion


def _predicted_states(y, x, obs_var, q_alpha, q_beta, prior_var):
    """Independent reference: the textbook Kalman recursion for y_t = a_t + b_t x_t + v_t with
    random-walk [a, b], returning the one-step-ahead predictions (before seeing y_t)."""
    m, P = np.zeros(2), np.eye(2) * prior_var
    Q = np.diag([q_alpha, q_beta])
    out = np.empty((len(y), 2))
    for t in range(len(y)):
        out[t] = m
        h = np.array([1.0, x[t]])
        f = h @ P @ h + obs_var
        k = P @ h / f
        m = m + k * (y[t] - h @ m)
        P = P - np.outer(k, h @ P) + Q
    return out[:, 1], out[:, 0]


def _random_walk_beta(seed, n=2000, q_beta=0.01, obs=1.0, q_alpha=0.0):
    """y = alpha + beta_t x + white noise, beta a random walk (x a random walk around 50)."""
    rng = np.random.default_rng(seed)
    x = 50 + np.cumsum(rng.normal(0, 1, n))
    beta = 1.5 + np.cumsum(rng.normal(0, q_beta, n))
    alpha = 2 + np.cumsum(rng.normal(0, q_alpha, n))
    return alpha + beta * x + rng.normal(0, obs, n), x, beta


def _ar1_spread_on_log_prices(seed, n=2000, half_life=9.0):
    """log y = 0.3 + 0.8 log x + s + a little white noise: constant beta, x near 11.4 (log
    of ~90,000), s an AR(1) of the given half-life in bars."""
    rng = np.random.default_rng(seed)
    phi = 0.5 ** (1 / half_life)
    x = 11.4 + np.cumsum(rng.normal(0, 1e-3, n))
    s = np.zeros(n)
    for t in range(1, n):
        s[t] = phi * s[t - 1] + rng.normal(0, 1e-3)
    return 0.3 + 0.8 * x + s + rng.normal(0, 2e-4, n), x, s


def test_kalman_with_fixed_noise_is_the_textbook_filter():
    y, x, _ = _random_walk_beta(1, n=400, q_alpha=0.1)
    beta, alpha = an.kalman_hedge(y, x, delta=1e-4, obs_var=1.0)
    q = 1e-4 / (1 - 1e-4)
    ref_beta, ref_alpha = _predicted_states(y, x, 1.0, q, q, 1e6 * y[0] ** 2)
    np.testing.assert_allclose(beta[50:], ref_beta[50:], rtol=1e-6)
    np.testing.assert_allclose(alpha[50:], ref_alpha[50:], rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="both"):
        an.kalman_hedge(y, x, delta=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_kalman_tracks_a_random_walk_beta_like_a_filter_told_the_true_noise(seed):
    """Every seed: the maximum-likelihood fit's beta within 2x the RMSE of the textbook filter
    given the true noise (a constant alpha, beta's shocks 0.01 a bar, white noise 1), run on
    the same bars: each block's filter starts at its fit window, as ours does (anchoring's
    price, apart from the fit's: a filter from bar 0 knows the constant alpha better)."""
    y, x, true_beta = _random_walk_beta(seed)
    path = an.kalman_path(y, x)
    out = np.isfinite(path.beta)
    assert not out[: an.KALMAN_FIT_BARS].any() and out[an.KALMAN_FIT_BARS :].all()
    ref_beta = np.full(len(y), np.nan)
    for fit in path.fits:
        lo, stop = fit.start - an.KALMAN_FIT_BARS, fit.start + an.KALMAN_REFIT_BARS
        b, _ = _predicted_states(y[lo:stop], x[lo:stop], 1.0, 0.0, 0.01**2, 1e6 * y[lo] ** 2)
        ref_beta[fit.start : stop] = b[an.KALMAN_FIT_BARS :]
    rmse = np.sqrt(np.mean((path.beta[out] - true_beta[out]) ** 2))
    ref_rmse = np.sqrt(np.mean((ref_beta[out] - true_beta[out]) ** 2))
    assert rmse < 2 * ref_rmse, (rmse, ref_rmse)
    np.testing.assert_array_equal(an.kalman_hedge(y, x)[0], path.beta)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10))
def test_kalman_keeps_an_ar1_spread_on_log_price_levels(seed):
    """Every seed: the traded spread y - alpha_t - beta_t x follows the true AR(1) spread
    (correlation >= 0.85, size within 0.7-1.3x), the fitted phi's half-life is within 0.5-2x
    of the true 9 bars, and beta is no worse than a walk-forward 300-bar OLS."""
    y, x, s = _ar1_spread_on_log_prices(seed)
    path = an.kalman_path(y, x)
    out = np.isfinite(path.beta)
    traded = (y - path.alpha - path.beta * x)[out]
    assert np.corrcoef(traded, s[out])[0, 1] >= 0.85
    assert 0.7 <= traded.std() / s[out].std() <= 1.3
    for fit in path.fits:
        assert 4.5 <= fit.half_life_bars <= 18, fit
    ys, xs = pd.Series(y), pd.Series(x)
    ols = (ys.rolling(300).cov(xs) / xs.rolling(300).var()).shift(1).to_numpy()[out]
    rmse = np.sqrt(np.mean((path.beta[out] - 0.8) ** 2))
    assert rmse <= np.sqrt(np.mean((ols - 0.8) ** 2))


@pytest.mark.slow
def test_kalman_outputs_use_only_earlier_bars_and_blocks_are_anchored_in_time():
    y, x, _ = _ar1_spread_on_log_prices(3, n=1700)
    t = 1_765_000_000_000 + np.arange(len(y)) * 60_000
    beta, alpha = an.kalman_hedge(y, x, open_time_ms=t, bar_ms=60_000)
    y2 = y.copy()
    y2[1300:] += 0.01  # change y_1300 and everything after
    beta2, alpha2 = an.kalman_hedge(y2, x, open_time_ms=t, bar_ms=60_000)
    np.testing.assert_array_equal(beta[:1301], beta2[:1301])
    np.testing.assert_array_equal(alpha[:1301], alpha2[:1301])
    assert not np.allclose(beta[1320:], beta2[1320:])
    # Blocks start where the open time is a multiple of 200 minutes, whatever the first bar.
    starts = np.flatnonzero(np.diff(np.isnan(beta).astype(int)) == -1) + 1
    assert (t[starts] // 60_000) % an.KALMAN_REFIT_BARS == 0
    # The window slides: 150 bars fewer at the start. Every bar still defined keeps its value.
    late_beta, _ = an.kalman_hedge(y[150:], x[150:], open_time_ms=t[150:], bar_ms=60_000)
    both = np.isfinite(late_beta)
    assert both.sum() > 300
    np.testing.assert_allclose(late_beta[both], beta[150:][both], rtol=1e-9)
    # A memo of block fits gives the same path without refitting them.
    memo = {}
    first = an.kalman_path(y, x, t, 60_000, memo=memo)
    assert len(memo) == 2 * len(first.fits) - 1  # every fit, and every whole block's states
    again = an.kalman_path(y, x, t, 60_000, memo=memo)
    np.testing.assert_array_equal(first.beta, again.beta)


def test_kalman_hindsight_is_the_smoother():
    """Hindsight is a real Kalman: the smoothed states, each from every bar, later ones too."""
    y, x, s = _ar1_spread_on_log_prices(5, n=1200)
    smooth = an.kalman_smoothed(y, x)
    assert np.isfinite(smooth.beta).all() and 4.5 <= smooth.half_life_bars <= 18
    y2 = y.copy()
    y2[1000:] += 0.01
    assert not np.allclose(an.kalman_smoothed(y2, x).beta[:1000], smooth.beta[:1000])
    walk = an.kalman_path(y, x)
    late = np.isfinite(walk.beta)
    assert np.mean((smooth.beta[late] - 0.8) ** 2) <= np.mean((walk.beta[late] - 0.8) ** 2)


def test_kalman_on_real_log_prices_keeps_the_spread(dec_trades):
    """The recorded sample (7 minutes of 1s bars, so shorter fit windows here): the spread is
    not absorbed by the hedge (it used to be ~1e-10 with random-walk noise on log prices)."""
    from backend.store.resampling import align, bars_from_trades

    yb, xb = align(
        bars_from_trades(dec_trades["ETHUSDT"], "1s"), bars_from_trades(dec_trades["BTCUSDT"], "1s")
    )
    y, x = np.log(yb.close), np.log(xb.close)
    path = an.kalman_path(y, x, yb.open_time, 1000, fit_bars=150, refit_bars=50)
    out = np.isfinite(path.beta)
    assert out.sum() > 150
    spread = (y - (path.alpha + path.beta * x))[out]
    b, a = an.hedge_ratio(y, x)
    assert spread.std() > 0.2 * (y - (a + b * x)).std()


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


# --- pair scanner ------------------------------------------------------------------------------


def _cointegrated_market(n_bars: int = 400, seed: int = 7) -> tuple[pd.DataFrame, set]:
    """Log prices of 8 symbols: A0-A2 share one random-walk trend, B0-B1 another (plus their
    own stationary AR(1) noise: cointegrated within a group), R0-R2 walk on their own."""
    rng = np.random.default_rng(seed)
    walk = lambda: np.cumsum(rng.normal(0, 0.002, n_bars))  # noqa: E731
    noise = lambda: pd.Series(rng.normal(0, 0.001, n_bars)).ewm(alpha=0.3).mean().to_numpy()  # noqa: E731
    trend_a, trend_b = walk(), walk()
    cols = {f"A{i}": 4.0 + i + (0.6 + 0.4 * i) * trend_a + noise() for i in range(3)}
    cols |= {f"B{i}": 7.0 + (1.0 + 0.5 * i) * trend_b + noise() for i in range(2)}
    cols |= {f"R{i}": 2.0 + walk() for i in range(3)}
    order = ["R0", "A0", "B0", "R1", "A1", "B1", "A2", "R2"]  # groups interleaved
    truth = {("A0", "A1"), ("A0", "A2"), ("A1", "A2"), ("B0", "B1")}
    return pd.DataFrame(cols)[order], truth


def _pair_reference(y: np.ndarray, x: np.ndarray, lag: int) -> dict:
    """One pair by statsmodels and pandas, call by call."""
    fit = sm.OLS(y, sm.add_constant(x)).fit()
    s = pd.Series(y - fit.params[0] - fit.params[1] * x)
    ar = sm.OLS(s.diff().iloc[1:].to_numpy(), sm.add_constant(s.shift().iloc[1:].to_numpy())).fit()
    b = ar.params[1]
    returns = pd.DataFrame({"y": y, "x": x}).diff()
    n = len(y)
    # Five sub-windows of half the window, evenly spaced from its first row to its last.
    half = n // 2
    subwindows = np.linspace(0, n - half, 5).round().astype(int)
    share = np.mean(
        [coint(y[a : a + half], x[a : a + half], maxlag=lag, autolag=None)[1] <= 0.05
         for a in subwindows]
    )  # fmt: skip
    third = n // 3
    drift = (
        np.polyfit(x[-third:], y[-third:], 1)[0] - np.polyfit(x[:third], y[:third], 1)[0]
    ) / abs(fit.params[1])
    lags = np.arange(1, min(20, n // 10) + 1)
    spread = s.to_numpy()
    hurst = np.polyfit(np.log(lags), [np.log(np.std(spread[k:] - spread[:-k])) for k in lags], 1)[0]
    return {
        "alpha": fit.params[0],
        "beta": fit.params[1],
        "eg_pvalue": coint(y, x, trend="c", maxlag=lag, autolag=None)[1],
        "half_life": math.inf if b >= 0 else -math.log(2) / math.log(1 + b),
        "corr": returns["y"].corr(returns["x"]),
        "z": (s.iloc[-1] - s.mean()) / s.std(),
        "coint_share": share,
        "beta_drift": drift,
        "hurst": hurst,
    }


def _assert_scan_matches_references(prices: pd.DataFrame, lookback: int, lag: int) -> None:
    scan = an.scan_pairs(prices, lookback=lookback, adf_lag=lag)
    k = prices.shape[1]
    assert len(scan) == k * (k - 1) // 2 and list(scan.columns) == list(an.SCAN_COLUMNS)
    window = prices.iloc[-lookback:]
    position = {s: i for i, s in enumerate(prices.columns)}
    for row in scan.itertuples():
        assert position[row.y] < position[row.x]  # y is the symbol whose column comes first
        ref = _pair_reference(window[row.y].to_numpy(), window[row.x].to_numpy(), lag)
        for name, expected in ref.items():
            np.testing.assert_allclose(getattr(row, name), expected, rtol=1e-8, atol=1e-8)
    assert scan["eg_pvalue"].is_monotonic_increasing
    # q: Benjamini-Hochberg over every pair scanned, as statsmodels adjusts them.
    np.testing.assert_allclose(
        scan["eg_qvalue"], multipletests(scan["eg_pvalue"], method="fdr_bh")[1], rtol=1e-12
    )


@pytest.mark.parametrize("lag", [0, 1, 3])
def test_scan_pairs_matches_statsmodels_coint_and_ols_pair_by_pair(lag):
    prices, _ = _cointegrated_market()
    _assert_scan_matches_references(prices, lookback=300, lag=lag)


def test_scan_pairs_on_the_recorded_sample_matches_coint(dec_trades):
    closes = {
        s: reference_bars(t, 1_000).set_index("open_time")["close"] for s, t in dec_trades.items()
    }
    prices = np.log(pd.DataFrame(closes).dropna())  # aligned 1s bars of the real sample
    assert len(prices) >= 300
    _assert_scan_matches_references(prices, lookback=300, lag=1)


def test_scan_pairs_ranks_the_cointegrated_pairs_first():
    prices, truth = _cointegrated_market()
    scan = an.scan_pairs(prices, lookback=300)
    top = {tuple(sorted(p)) for p in scan[["y", "x"]].head(len(truth)).itertuples(index=False)}
    assert top == truth
    assert (scan["eg_pvalue"].head(len(truth)) < 0.01).all()
    assert (scan["eg_pvalue"].iloc[len(truth) :] > 0.01).all()


def test_scan_pairs_leaves_out_incomplete_columns_and_says_which():
    prices, _ = _cointegrated_market()
    prices.loc[prices.index[-5], "B0"] = np.nan
    scan = an.scan_pairs(prices, lookback=300)
    assert scan.attrs["skipped"] == ["B0"]
    assert "B0" not in set(scan["y"]) | set(scan["x"]) and len(scan) == 21
    old_gap = prices.copy()
    old_gap.loc[old_gap.index[0], "B1"] = np.nan  # outside the window: used
    assert an.scan_pairs(old_gap.drop(columns="B0"), lookback=300).attrs["skipped"] == []


def test_scan_pairs_rejects_too_few_rows_and_bad_input():
    prices, _ = _cointegrated_market(n_bars=100)
    with pytest.raises(ValueError, match="needs 300 rows"):
        an.scan_pairs(prices, lookback=300)
    with pytest.raises(ValueError, match="window must be an integer >= 10"):
        an.scan_pairs(prices, lookback=9)  # sub-windows of 4 bars leave an ADF no freedom
    with pytest.raises(ValueError, match="DataFrame"):
        an.scan_pairs(prices.to_numpy())
    with pytest.raises(ValueError, match="duplicate"):
        an.scan_pairs(prices.rename(columns={"A1": "A0"}), lookback=50)
    assert an.scan_pairs(prices[["A0"]], lookback=50).empty


def test_scan_pairs_collinear_pair_has_coint_s_p_value_of_zero():
    prices, _ = _cointegrated_market()
    prices["A0copy"] = 2 * prices["A0"] + 1
    scan = an.scan_pairs(prices[["A0", "A0copy", "R0"]], lookback=300)
    row = scan[(scan["y"] == "A0") & (scan["x"] == "A0copy")].iloc[0]
    with pytest.warns(Warning, match="colinear"):
        expected = coint(prices["A0"][-300:], prices["A0copy"][-300:], maxlag=1, autolag=None)[1]
    assert row["eg_pvalue"] == expected == 0.0 and scan.iloc[0]["x"] == "A0copy"


def test_mackinnon_pvalue_equals_statsmodels_for_each_statistic():
    from statsmodels.tsa.adfvalues import mackinnonp

    stats = np.concatenate([np.linspace(-25, 5, 301), [-np.inf, np.inf, np.nan]])
    for n_vars in (1, 2):
        got = an.mackinnon_pvalue(stats, n_vars)
        expected = [np.nan if np.isnan(s) else mackinnonp(s, "c", n_vars) for s in stats]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)


def test_cluster_order_puts_each_correlated_group_together():
    """Three groups of symbols driven by their own common factor, columns shuffled: in the
    clustered order each group is one contiguous run."""
    rng = np.random.default_rng(5)
    n = 500
    groups = {"a": 4, "b": 3, "c": 5}
    returns = {}
    for g, size in groups.items():
        factor = rng.normal(size=n)
        for i in range(size):
            returns[f"{g}{i}"] = factor + rng.normal(scale=0.5, size=n)
    returns["flat"] = np.zeros(n)  # constant: NaN correlations, an outsider
    names = list(returns)
    rng.shuffle(names)
    corr = pd.DataFrame(returns)[names].corr()
    order = an.cluster_order(corr)
    assert sorted(order) == sorted(names)
    for g, size in groups.items():
        at = [i for i, s in enumerate(order) if s.startswith(g) and s != "flat"]
        assert at == list(range(at[0], at[0] + size)), (g, order)
    assert an.cluster_order(corr.iloc[:2, :2]) == list(corr.columns[:2])


@pytest.mark.parametrize("seed", range(5))
def test_johansen_finds_the_one_relation_of_a_basket_and_its_weights(seed):
    from statsmodels.tsa.vector_ar.vecm import coint_johansen

    levels = basket_levels(seed)
    got = an.johansen(levels)
    ref = coint_johansen(levels, 0, 1)
    np.testing.assert_allclose(got.trace, ref.lr1)
    np.testing.assert_allclose(got.max_eig_crit, ref.cvm)
    assert got.rank_trace == 1 and got.rank_max_eig == 1
    np.testing.assert_allclose(got.weights, [1.0, -0.5, -0.3], atol=0.05)
    spread = levels @ got.weights
    assert an.adf_test(spread).pvalue < 0.01


def test_johansen_on_independent_walks_finds_no_relation_and_refuses_bad_input():
    rng = np.random.default_rng(2)
    ranks = [an.johansen(np.cumsum(rng.normal(size=(800, 3)), axis=0)).rank_trace for _ in range(5)]
    assert sum(r > 0 for r in ranks) <= 1  # a 5 % test: at most one false rejection in five
    assert an.johansen(np.ones((100, 3))) is None
    assert an.johansen(np.full((10, 3), np.nan)) is None
    with pytest.raises(ValueError, match="2..12"):
        an.johansen(np.zeros((100, 1)))
