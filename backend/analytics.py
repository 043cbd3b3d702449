"""Pair analytics as pure functions: arrays or Series in, arrays, floats or frames out.

Conventions, for every function here:

* Inputs are 1-D and of equal length (aligned bars); a length mismatch is a ``ValueError``.
* Rolling outputs have the input's length, use a *trailing* window that includes the current
  point, and are NaN until the window is full and wherever the window holds a NaN.
* Standard deviations are sample standard deviations (``ddof = 1``).
* Statistics that cannot be computed (too few points, a constant series) are NaN, not errors.
* Nothing here does I/O or knows about Streamlit.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

HEDGE_METHODS = ("ols", "huber", "theil-sen")
MIN_REGRESSION_POINTS = 3
MIN_ADF_POINTS = 20


# --- input handling ----------------------------------------------------------------------------


def _as_array(a, name: str = "input") -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _pair(y, x) -> tuple[np.ndarray, np.ndarray]:
    y, x = _as_array(y, "y"), _as_array(x, "x")
    if len(y) != len(x):
        raise ValueError(f"y and x are misaligned: {len(y)} vs {len(x)} points")
    return y, x


def _window(window: int, minimum: int = 2) -> int:
    if int(window) != window or window < minimum:
        raise ValueError(f"window must be an integer >= {minimum}, got {window!r}")
    return int(window)


def _finite_pairs(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(y) & np.isfinite(x)
    return y[ok], x[ok]


def _wrap(like, values: np.ndarray):
    """Return a Series with the input's index when the input was a Series."""
    if isinstance(like, pd.Series):
        return pd.Series(values, index=like.index, name=like.name)
    return values


# --- regression --------------------------------------------------------------------------------


def hedge_ratio(y, x, method: str = "ols") -> tuple[float, float]:
    """``(beta, alpha)`` for ``y = alpha + beta * x + e``.

    Methods: ``"ols"`` (closed form: ``beta = cov(x, y) / var(x)``), ``"huber"`` (statsmodels
    RLM with Huber's T norm: robust to outlier bars), ``"theil-sen"`` (median of pairwise slopes,
    scipy; O(n^2) memory, so keep the window to a few thousand points). Pairs with a NaN are
    dropped; fewer than 3 points left, or a constant ``x``, gives ``(nan, nan)``.
    """
    if method not in HEDGE_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(HEDGE_METHODS)}")
    y, x = _finite_pairs(*_pair(y, x))
    if len(y) < MIN_REGRESSION_POINTS or np.ptp(x) == 0:
        return math.nan, math.nan
    if method == "ols":
        xm, ym = x.mean(), y.mean()
        dx = x - xm
        beta = float(dx @ (y - ym) / (dx @ dx))
        return beta, float(ym - beta * xm)
    if method == "huber":
        import statsmodels.api as sm

        fit = sm.RLM(y, sm.add_constant(x, has_constant="add"), M=sm.robust.norms.HuberT()).fit()
        alpha, beta = fit.params
        return float(beta), float(alpha)
    from scipy.stats import theilslopes

    slope, intercept, _, _ = theilslopes(y, x)
    return float(slope), float(intercept)


def spread(y, x, beta, alpha=0.0):
    """``y - (alpha + beta * x)``; ``beta`` and ``alpha`` are scalars or per-bar arrays."""
    ya, xa = _pair(y, x)
    return _wrap(y, ya - (np.asarray(alpha, dtype=np.float64) + np.asarray(beta) * xa))


# --- rolling moments (centred cumulative sums: O(n), stable for price-sized inputs) -----------


def _rolling_sums(arrays: list[np.ndarray], products: list[tuple[int, int]], window: int):
    """Trailing-window means of each array and co-moments of the given index pairs.

    Values are centred on their overall mean first so that the running sums stay small; a
    window that holds a NaN yields NaN.
    """
    n = len(arrays[0])
    bad = np.zeros(n, np.bool_)
    centred = []
    for a in arrays:
        finite = np.isfinite(a)
        bad |= ~finite
        c = a - (a[finite].mean() if finite.any() else 0.0)
        centred.append(np.where(finite, c, 0.0))

    def trailing_sum(v: np.ndarray) -> np.ndarray:
        cs = np.concatenate(([0.0], np.cumsum(v)))
        out = np.full(n, np.nan)
        if n >= window:
            out[window - 1 :] = cs[window:] - cs[:-window]
        return out

    # Commonly nothing is NaN and only the warm-up is invalid.
    warm = np.arange(n) >= window - 1
    valid = trailing_sum(bad.astype(np.float64)) == 0 if bad.any() else warm
    means = [np.where(valid, trailing_sum(c) / window, np.nan) for c in centred]
    co = []
    for i, j in products:
        s = trailing_sum(centred[i] * centred[j])
        # Sample co-moment: (sum(ab) - w * mean_a * mean_b) / (w - 1).
        co.append(np.where(valid, (s - window * means[i] * means[j]) / (window - 1), np.nan))
    return means, co


def rolling_mean_std(s, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Trailing mean and sample std over ``window`` points (NaN until full)."""
    a = _as_array(s)
    window = _window(window)
    finite = np.isfinite(a)
    offset = a[finite].mean() if finite.any() else 0.0
    (mean,), (var,) = _rolling_sums([a], [(0, 0)], window)
    return mean + offset, np.sqrt(np.maximum(var, 0.0))


def zscore(s, window: int):
    """``(s - trailing mean) / trailing sample std`` over the last ``window`` points including the
    current one; NaN until the window is full, where it holds a NaN, or where the std is 0."""
    a = _as_array(s)
    mean, std = rolling_mean_std(a, window)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > _tiny(a), (a - mean) / std, np.nan)
    return _wrap(s, z)


def _tiny(a: np.ndarray) -> float:
    """Below this a std is rounding noise of the centred sums (about sqrt(eps) of the series'
    scale), i.e. the window is constant."""
    finite = a[np.isfinite(a)]
    scale = float(np.max(np.abs(finite))) if len(finite) else 0.0
    return 1e-7 * max(scale, 1e-300)


def rolling_corr(a, b, window: int):
    """Trailing Pearson correlation of ``a`` and ``b`` over ``window`` points; NaN until full
    and where either side is constant. Pass returns, not price levels."""
    av, bv = _pair(a, b)
    window = _window(window)
    _, (vaa, vbb, vab) = _rolling_sums([av, bv], [(0, 0), (1, 1), (0, 1)], window)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (vaa > _tiny(av) ** 2) & (vbb > _tiny(bv) ** 2)
        r = np.where(ok, vab / np.sqrt(vaa * vbb), np.nan)
    return _wrap(a, np.clip(r, -1.0, 1.0))


def rolling_hedge_ratio(y, x, window: int):
    """Trailing OLS ``(beta, alpha)`` per bar over ``window`` points, in closed form:
    ``beta = cov_w(x, y) / var_w(x)``, ``alpha = mean_w(y) - beta * mean_w(x)``."""
    ya, xa = _pair(y, x)
    window = _window(window, MIN_REGRESSION_POINTS)
    offsets = [v[np.isfinite(v)].mean() if np.isfinite(v).any() else 0.0 for v in (ya, xa)]
    (my, mx), (vxx, vxy) = _rolling_sums([ya, xa], [(1, 1), (1, 0)], window)
    with np.errstate(invalid="ignore", divide="ignore"):
        beta = np.where(vxx > _tiny(xa) ** 2, vxy / vxx, np.nan)
    alpha = (my + offsets[0]) - beta * (mx + offsets[1])
    return _wrap(y, beta), _wrap(y, alpha)


KALMAN_MIN_FIT_BARS = 100  # bars before the first maximum-likelihood fit of the noise
KALMAN_FIT_WINDOW = 1_000  # each fit uses at most this many of the latest bars before it


def kalman_hedge(y, x, delta: float | None = None, obs_var: float | None = None):
    """One-step-ahead ``(beta_t, alpha_t)`` of the time-varying regression
    ``y_t = alpha_t + beta_t x_t + v_t``, ``v_t ~ N(0, obs_var)``, with the state
    ``[alpha, beta]`` a random walk of covariance ``diag(q_alpha, q_beta)``.

    ``beta_t, alpha_t`` are the Kalman filter's *predictions* for bar ``t`` from bars before it
    (statsmodels' ``predicted_state``), so ``y_t - (alpha_t + beta_t x_t)`` is an out-of-sample
    spread and neither changes when ``y_t`` or any later value changes.

    Noise: ``delta`` sets ``q_alpha = q_beta = delta / (1 - delta)``; ``obs_var`` the observation
    variance. Either left ``None`` is estimated by maximum likelihood (statsmodels' state-space
    ``MLEModel``) walk-forward: bars ``[r_k, 2 r_k)`` use the noise fitted on the (at most
    ``KALMAN_FIT_WINDOW``) bars before ``r_k``, ``r_0 = KALMAN_MIN_FIT_BARS``; so outputs are NaN
    for the first ``r_0`` bars. With both given the filter runs from the first bar (an
    approximately diffuse prior; the first two outputs are NaN). NaN bars are missing data.
    """
    ya, xa = _pair(y, x)
    if delta is not None and not 0 < delta < 1:
        raise ValueError(f"delta must be in (0, 1), got {delta}")
    if obs_var is not None and not obs_var > 0:
        raise ValueError(f"obs_var must be > 0, got {obs_var}")
    n = len(ya)
    betas, alphas = np.full(n, np.nan), np.full(n, np.nan)
    finite_x = xa[np.isfinite(xa)]
    if n < MIN_REGRESSION_POINTS or len(finite_x) < 2 or np.ptp(finite_x) == 0:
        return _wrap(y, betas), _wrap(y, alphas)
    state_var = None if delta is None else delta / (1 - delta)
    if state_var is not None and obs_var is not None:
        noise = np.tile([obs_var, state_var, state_var], (n, 1))
        first = 2
    else:
        noise, first = _walk_forward_noise(ya, xa, obs_var, state_var)
    if first < n:
        predicted = _TimeVaryingRegression(ya, xa).predict_states(noise)
        alphas[first:], betas[first:] = predicted[0, first:], predicted[1, first:]
    return _wrap(y, betas), _wrap(y, alphas)


def _walk_forward_noise(ya, xa, obs_var, state_var) -> tuple[np.ndarray, int]:
    """Per-bar ``[obs_var, q_alpha, q_beta]`` fitted only on earlier bars (doubling blocks)."""
    n = len(ya)
    noise = np.full((n, 3), np.nan)
    start = KALMAN_MIN_FIT_BARS
    fitted = None
    while start < n:
        lo = max(0, start - KALMAN_FIT_WINDOW)
        model = _TimeVaryingRegression(ya[lo:start], xa[lo:start])
        fitted = model.fit_noise(obs_var, state_var, warm=fitted)  # from the previous block's
        noise[start : min(2 * start, n)] = fitted
        start *= 2
    first = KALMAN_MIN_FIT_BARS
    noise[:first] = noise[first] if first < n else np.nan
    return noise, first


class _TimeVaryingRegression:
    """``y_t = [1, x_t] . state_t + v_t`` with a random-walk state, in statsmodels' state space.
    Built lazily so that importing this module does not import statsmodels."""

    def __init__(self, y: np.ndarray, x: np.ndarray) -> None:
        from statsmodels.tsa.statespace.mlemodel import MLEModel

        resid = y - np.polyval(np.polyfit(*_finite_pairs(x, y), 1), x) if len(y) > 2 else y
        scale = float(np.nanvar(resid)) or 1e-12  # the noise is fitted relative to this

        class Model(MLEModel):
            def __init__(self) -> None:
                super().__init__(y, k_states=2, k_posdef=2, loglikelihood_burn=2)
                self["design"] = np.stack([np.ones(len(y)), np.nan_to_num(x)])[None, :, :]
                self["transition"] = np.eye(2)
                self["selection"] = np.eye(2)
                # A prior wide against the first level seen (not the whole series: no bar may
                # depend on later ones).
                first = y[np.isfinite(y)][:1]
                self.initialize_approximate_diffuse(
                    1e6 * max(1.0, float(first[0]) ** 2 if len(first) else 1.0)
                )
                self.fixed: dict[int, float] = {}

            @property
            def param_names(self):  # standard deviations relative to the OLS residual's
                return ["sd_obs", "sd_alpha", "sd_beta"]

            @property
            def start_params(self):
                return np.array([1.0, 1e-2, 1e-2])

            def update(self, params, **kwargs):
                # Squared, not exponentiated: a noise of zero (a constant coefficient) is a
                # point the optimiser can reach, where log-variances would drift forever.
                params = super().update(params, **kwargs)
                v = np.square(params) * scale
                for i, value in self.fixed.items():
                    v[i] = value
                self["obs_cov", 0, 0] = v[0]
                self["state_cov"] = np.diag(v[1:])

        self._model = Model()
        self._scale = scale

    def fit_noise(self, obs_var, state_var, warm: np.ndarray | None = None) -> np.ndarray:
        """Maximum-likelihood ``[obs_var, q_alpha, q_beta]`` (the given ones held fixed),
        starting from ``warm`` (an earlier fit's variances) when given."""
        model = self._model
        start = model.start_params if warm is None else np.sqrt(warm / self._scale)
        if obs_var is not None:
            model.fixed[0] = obs_var
        if state_var is not None:
            model.fixed.update({1: state_var, 2: state_var})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Only the point estimate: no standard errors (a numerical Hessian costs far more
            # than the fit itself) and no results object.
            params = model.fit(
                start,
                disp=False,
                method="lbfgs",
                maxiter=200,
                factr=1e10,  # noise variances to ~6 digits: plenty for a hedge ratio
                cov_type="none",
                return_params=True,
            )
        v = np.square(params) * self._scale
        for i, value in model.fixed.items():
            v[i] = value
        return v

    def predict_states(self, noise: np.ndarray) -> np.ndarray:
        """Predicted states ``a_t = E[state_t | y_0..y_{t-1}]`` under per-bar noise ``noise``
        (rows ``[obs_var, q_alpha, q_beta]``); ``noise[t]`` enters only predictions after ``t``."""
        ssm = self._model.ssm
        n = len(noise)
        h = np.nan_to_num(noise[:, 0], nan=1.0)
        q = np.zeros((2, 2, n))
        q[0, 0], q[1, 1] = np.nan_to_num(noise[:, 1], nan=1.0), np.nan_to_num(noise[:, 2], nan=1.0)
        ssm["obs_cov"] = h[None, None, :]
        ssm["state_cov"] = q
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(ssm.filter().predicted_state)[:, :n]


# --- stationarity ------------------------------------------------------------------------------


def _clean_series(s) -> np.ndarray | None:
    """Leading/trailing NaNs stripped (rolling outputs have them); None if NaNs remain inside,
    the series is too short, or it is constant."""
    a = _as_array(s)
    finite = np.flatnonzero(np.isfinite(a))
    if len(finite) == 0:
        return None
    a = a[finite[0] : finite[-1] + 1]
    if not np.isfinite(a).all() or len(a) < MIN_ADF_POINTS or np.ptp(a) == 0:
        return None
    return a


@dataclass(frozen=True, slots=True)
class AdfResult:
    """Augmented Dickey-Fuller test of one series (H0: a unit root, i.e. no mean reversion)."""

    statistic: float
    pvalue: float
    critical: dict[str, float]  # "1%", "5%", "10%" -> critical value of the statistic
    lags: int
    nobs: int

    @property
    def verdict(self) -> str:
        """One line: the strongest level at which the unit root is rejected, if any."""
        if not math.isfinite(self.statistic):
            return "not computed"
        for level in ("1%", "5%", "10%"):
            if self.statistic < self.critical[level]:
                return f"stationary at {level} (statistic {self.statistic:.2f} < {self.critical[level]:.2f})"
        return (
            f"unit root not rejected at 10% (statistic {self.statistic:.2f} > "
            f"{self.critical['10%']:.2f}): the spread may not mean-revert"
        )


ADF_NAN = AdfResult(math.nan, math.nan, {"1%": math.nan, "5%": math.nan, "10%": math.nan}, 0, 0)


def adf_test(s) -> AdfResult:
    """statsmodels ``adfuller(s, regression="c", autolag="AIC")``: statistic, p-value (MacKinnon),
    the 1/5/10% critical values, the lags chosen and the observations used. All NaN when the
    series is shorter than 20 points, constant, or has a NaN inside."""
    a = _clean_series(s)
    if a is None:
        return ADF_NAN
    from statsmodels.tsa.stattools import adfuller

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stat, pvalue, lags, nobs, crit, _ = adfuller(
                a, regression="c", autolag="AIC", result_object=False
            )
    except (ValueError, np.linalg.LinAlgError):
        return ADF_NAN
    return AdfResult(float(stat), float(pvalue), {k: float(v) for k, v in crit.items()}, lags, nobs)


def adf_pvalue(s) -> float:
    """p-value of the augmented Dickey-Fuller test, statsmodels
    ``adfuller(s, regression="c", autolag="AIC")``. H0: a unit root (not mean-reverting); small
    is evidence of stationarity. NaN when shorter than 20 points, constant, or NaN inside."""
    a = _clean_series(s)
    if a is None:
        return math.nan
    from statsmodels.tsa.stattools import adfuller

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(adfuller(a, regression="c", autolag="AIC", result_object=False)[1])
    except (ValueError, np.linalg.LinAlgError):
        return math.nan


def engle_granger_pvalue(y, x) -> float:
    """p-value of the Engle-Granger cointegration test (statsmodels ``coint``, constant term);
    NaN when it cannot be computed."""
    ya, xa = _finite_pairs(*_pair(y, x))
    if len(ya) < MIN_ADF_POINTS or np.ptp(ya) == 0 or np.ptp(xa) == 0:
        return math.nan
    from statsmodels.tsa.stattools import coint

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(coint(ya, xa, trend="c", autolag="aic")[1])
    except (ValueError, np.linalg.LinAlgError):
        return math.nan


def half_life(s) -> float:
    """Mean-reversion half-life in bars from the AR(1) fit ``ds_t = a + b s_{t-1} + e``:
    ``-ln 2 / ln(1 + b)``. ``inf`` when ``b >= 0`` (no mean reversion); NaN when too short."""
    a = _clean_series(s)
    if a is None:
        return math.nan
    b, _ = hedge_ratio(np.diff(a), a[:-1])
    if not math.isfinite(b):
        return math.nan
    if b >= 0:
        return math.inf
    if b <= -1:
        return 0.0  # reverts fully within one bar
    return -math.log(2) / math.log1p(b)


# --- alerts ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertEvent:
    index: int  # bar index where |z| crossed above the threshold
    time: object  # the bar's time when given (else the index)
    value: float  # z at that bar
    direction: str  # "above" (z > +threshold) or "below" (z < -threshold)


def zscore_alerts(z, threshold: float, times=None) -> list[AlertEvent]:
    """Edge-triggered alerts: one event when ``|z|`` rises above ``threshold`` (from at or below
    it, or from NaN), none while it stays above; a jump straight from one side to the other is a
    new excursion. ``times`` (same length) labels the events."""
    za = _as_array(z, "z")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold!r}")
    if times is not None and len(times) != len(za):
        raise ValueError("times and z are misaligned")
    side = np.where(za > threshold, 1, np.where(za < -threshold, -1, 0))  # NaN -> 0
    prev = np.concatenate(([0], side[:-1]))
    starts = np.flatnonzero((side != 0) & (side != prev)).tolist()
    return [
        AlertEvent(
            i, i if times is None else times[i], float(za[i]), "above" if side[i] > 0 else "below"
        )
        for i in starts
    ]


# --- backtest ----------------------------------------------------------------------------------

MIN_SHARPE_TRIPS = 10


@dataclass(frozen=True, slots=True)
class BacktestResult:
    position: np.ndarray  # held during each bar: +1 long spread, -1 short, 0 flat
    pnl: np.ndarray  # per-bar return net of costs (fraction of gross notional)
    equity: np.ndarray  # cumulative sum of pnl
    trades: pd.DataFrame  # entry, exit, direction, gross and net return per round trip
    summary: dict[str, float]


def backtest(
    y,
    x,
    z,
    beta,
    entry: float = 2.0,
    exit: float = 0.0,
    cost_bps: float = 1.0,
    log_prices: bool = True,
    bars_per_year: float = 365 * 24 * 60,
    times_ms=None,
) -> BacktestResult:
    """A mean-reversion backtest of the spread ``y - beta x``, long and short.

    Signals at the close of bar ``t``: flat and ``z < -entry`` -> long the spread; flat and
    ``z > entry`` -> short; long and ``z >= -exit`` or short and ``z <= exit`` -> flat. The
    position is taken at bar ``t``'s close and earns from bar ``t + 1`` (no look-ahead); the
    hedge ratio is frozen at entry. A bar's PnL is ``pos * (dy - beta_entry * dx)`` divided by
    the gross notional at entry (``1 + |beta|`` for log prices, ``y + |beta| x`` for prices);
    every change of position costs ``cost_bps`` of the gross notional traded. Max drawdown is
    on the equity curve (cumulative return); hit rate is the share of closed round trips with a
    positive net return; holding time is per closed round trip, in bars.

    Sharpe is the per-bar mean over std, annualised by the bars per year of the calendar time
    the sample covers (``times_ms``, bar open times; else ``bars_per_year``), and only reported
    (else NaN) with at least ``MIN_SHARPE_TRIPS`` closed round trips over at least a day: from
    minutes of data an annualised figure is noise.
    """
    ya, xa = _pair(y, x)
    za, ba = _pair(z, np.broadcast_to(np.asarray(beta, dtype=np.float64), ya.shape))
    if len(za) != len(ya):
        raise ValueError(f"z is misaligned: {len(za)} vs {len(ya)} points")
    if not entry > exit >= 0:
        raise ValueError(f"need entry > exit >= 0, got entry={entry}, exit={exit}")
    if cost_bps < 0:
        raise ValueError("cost_bps must be >= 0")
    n = len(ya)
    signal = np.zeros(n, np.int8)  # decided at the close of each bar
    held_beta = np.full(n, np.nan)
    pos, b_now = 0, math.nan
    for t in range(n):
        zt = za[t]
        if zt == zt and ba[t] == ba[t]:
            if pos == 0 and zt > entry:
                pos, b_now = -1, ba[t]
            elif pos == 0 and zt < -entry:
                pos, b_now = 1, ba[t]
            elif (pos == 1 and zt >= -exit) or (pos == -1 and zt <= exit):
                pos = 0
        signal[t], held_beta[t] = pos, b_now
    position = np.concatenate(([0], signal[:-1])).astype(np.int8)  # earns from the next bar
    beta_held = np.concatenate(([np.nan], held_beta[:-1]))
    dy = np.diff(ya, prepend=ya[:1])
    dx = np.diff(xa, prepend=xa[:1])
    entry_idx = _entry_index(signal)
    base_now = (1 + np.abs(held_beta)) if log_prices else (ya + np.abs(held_beta) * xa)
    base = np.concatenate(([np.nan], base_now[entry_idx][:-1]))
    with np.errstate(invalid="ignore"):
        gross = np.where(position != 0, position * (dy - beta_held * dx) / base, 0.0)
    gross = np.nan_to_num(gross, nan=0.0)
    turnover = np.abs(np.diff(signal.astype(np.int64), prepend=0))
    cost = turnover * cost_bps * 1e-4
    # The cost of a decision at bar t is paid at bar t's close.
    pnl = gross - cost
    equity = np.cumsum(pnl)
    trades = _round_trips(signal, gross, cost)
    closed = trades[trades["closed"]]
    covered_days = math.nan
    if times_ms is not None and n > 1:
        t = np.asarray(times_ms, dtype=np.float64)
        bar_ms = (t[-1] - t[0]) / (n - 1)
        covered_days = (t[-1] - t[0] + bar_ms) / 86_400_000
        bars_per_year = n / (covered_days / 365)
        trades["entry_time"] = pd.to_datetime(t[trades["entry_bar"]], unit="ms", utc=True)
        trades["exit_time"] = pd.to_datetime(t[trades["exit_bar"]], unit="ms", utc=True)
    std = pnl.std(ddof=1) if n > 1 else math.nan
    enough = len(closed) >= MIN_SHARPE_TRIPS and not covered_days < 1.0
    summary = {
        "total_return": float(equity[-1]) if n else 0.0,
        "sharpe": float(pnl.mean() / std * math.sqrt(bars_per_year))
        if std and std > 0 and enough
        else math.nan,
        "round_trips": float(len(closed)),
        "avg_holding_bars": float((closed["exit_bar"] - closed["entry_bar"]).mean())
        if len(closed)
        else math.nan,
        "covered_days": covered_days,
        "max_drawdown": float(np.max(np.maximum.accumulate(np.maximum(equity, 0)) - equity))
        if n
        else 0.0,
        "hit_rate": float((closed["net_return"] > 0).mean()) if len(closed) else math.nan,
        "trades": float(len(trades)),
        "costs": float(cost.sum()),
    }
    return BacktestResult(position, pnl, equity, trades, summary)


def _entry_index(signal: np.ndarray) -> np.ndarray:
    """For each bar, the index of the bar where the current position was opened."""
    opened = (signal != 0) & (np.concatenate(([0], signal[:-1])) != signal)
    idx = np.where(opened, np.arange(len(signal)), 0)
    return np.maximum.accumulate(idx)


def _round_trips(signal: np.ndarray, gross: np.ndarray, cost: np.ndarray) -> pd.DataFrame:
    """One row per position: decided at ``entry_bar``, closed at ``exit_bar`` (or still open at
    the last bar, marked there). Positions only change through flat, so each trip pays the cost
    at its entry bar and, once closed, at its exit bar."""
    changes = np.flatnonzero(np.diff(signal.astype(np.int64), prepend=0))
    rows = []
    for k, start in enumerate(changes.tolist()):
        direction = int(signal[start])
        if direction == 0:
            continue
        closed = k + 1 < len(changes)
        stop = changes[k + 1] if closed else len(signal) - 1
        g = float(gross[start + 1 : stop + 1].sum())
        c = float(cost[start]) + (float(cost[stop]) if closed else 0.0)
        rows.append((start, stop, "long" if direction > 0 else "short", closed, g, g - c))
    return pd.DataFrame(
        rows, columns=["entry_bar", "exit_bar", "direction", "closed", "gross_return", "net_return"]
    )


# --- tables ------------------------------------------------------------------------------------


def log_returns(prices) -> np.ndarray:
    """``ln(p_t / p_{t-1})``; the first value is NaN."""
    p = _as_array(prices)
    if len(p) == 0:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.concatenate(([np.nan], np.diff(np.log(p))))


def correlation_matrix(returns_by_symbol: dict[str, np.ndarray], window: int) -> pd.DataFrame:
    """Pearson correlations of the symbols' returns over the last ``window`` bars (aligned,
    rows with a NaN dropped); NaN where a symbol is constant in the window."""
    window = _window(window)
    frame = pd.DataFrame({s: _as_array(r, s) for s, r in returns_by_symbol.items()})
    return frame.tail(window).dropna().corr()


def bar_stats_table(
    open_time_ms,
    y_close,
    x_close,
    y_volume,
    x_volume,
    spread_values,
    z,
    vol_window: int,
    names: tuple[str, str] = ("y", "x"),
) -> pd.DataFrame:
    """Per-bar table for export: time, closes, log returns, trailing return vol (sample std over
    ``vol_window``), volumes, spread and z-score."""
    ny, nx = names
    ry, rx = log_returns(y_close), log_returns(x_close)
    return pd.DataFrame(
        {
            "time": pd.to_datetime(np.asarray(open_time_ms), unit="ms", utc=True),
            f"{ny}_close": _as_array(y_close),
            f"{nx}_close": _as_array(x_close),
            f"{ny}_log_return": ry,
            f"{nx}_log_return": rx,
            f"{ny}_vol": rolling_mean_std(ry, vol_window)[1],
            f"{nx}_vol": rolling_mean_std(rx, vol_window)[1],
            f"{ny}_volume": _as_array(y_volume),
            f"{nx}_volume": _as_array(x_volume),
            "spread": _as_array(spread_values),
            "zscore": _as_array(z),
        }
    )


# --- pair scanner ------------------------------------------------------------------------------

SCAN_COLUMNS = ("y", "x", "beta", "alpha", "eg_pvalue", "half_life", "corr", "z")


def scan_pairs(log_prices: pd.DataFrame, lookback: int = 300, adf_lag: int = 1) -> pd.DataFrame:
    """Every pair of the frame's columns (symbols; rows aligned bars of log close), ranked by
    the Engle-Granger p-value, on the last ``lookback`` rows.

    One row per pair, ``y`` the symbol whose column comes first and ``x`` the other:

    * ``beta``, ``alpha``: OLS of y on x with intercept; the spread is ``y - alpha - beta x``.
    * ``eg_pvalue``: statsmodels ``coint(y, x, trend="c", maxlag=adf_lag, autolag=None)[1]``:
      the ADF t-statistic of the spread (no constant, ``adf_lag`` lagged differences) against
      MacKinnon's (1994) distribution for 2 variables; 0 when y and x are collinear.
    * ``half_life``: AR(1) half-life of the spread in bars, from ``ds_t = a + b s_{t-1}``:
      ``-ln 2 / ln(1 + b)``, ``inf`` when ``b >= 0`` (see ``half_life``).
    * ``corr``: Pearson correlation of the log returns (``lookback - 1`` of them).
    * ``z``: the last spread value less the window's mean, over its sample std. The fit saw
      the whole window, that bar included (hindsight within the window).

    Sorted by ``eg_pvalue`` ascending (NaN last). Columns with a non-finite value in the window
    are left out and named in ``result.attrs["skipped"]``. Vectorised over pairs: one batched
    least-squares solve for all the ADF regressions, no per-pair statsmodels call.
    """
    if not isinstance(log_prices, pd.DataFrame):
        raise ValueError("scan_pairs needs a DataFrame: columns symbols, rows aligned bars")
    if not log_prices.columns.is_unique:
        raise ValueError("scan_pairs: duplicate symbol columns")
    lag = int(adf_lag)
    if lag < 0:
        raise ValueError(f"adf_lag must be >= 0, got {adf_lag}")
    lookback = _window(lookback, minimum=lag + 4)  # the ADF regression keeps >= 1 dof
    if len(log_prices) < lookback:
        raise ValueError(f"scan_pairs needs {lookback} rows (lookback), has {len(log_prices)}")
    window = log_prices.iloc[-lookback:].to_numpy(dtype=np.float64)
    usable = np.isfinite(window).all(axis=0)
    symbols = log_prices.columns[usable]
    values = window[:, usable]
    iy, ix = np.triu_indices(len(symbols), 1)
    if not len(iy):
        return _scan_frame(symbols, iy, ix, {}, log_prices.columns[~usable])

    centred = values - values.mean(axis=0)
    moments = centred.T @ centred  # sums of centred cross products, every column pair at once
    sxx, sxy, syy = moments[ix, ix], moments[iy, ix], moments[iy, iy]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta = sxy / sxx
        rsquared = sxy * sxy / (sxx * syy)
    alpha = values.mean(axis=0)[iy] - beta * values.mean(axis=0)[ix]
    spread = centred[:, iy] - centred[:, ix] * beta  # y - alpha - beta x, one column a pair
    # coint's own guard: a fit this close to perfect has no residual to test.
    collinear = rsquared >= 1 - 100 * np.sqrt(np.finfo(float).eps)
    stat = np.where(collinear, -np.inf, _adf_t_no_constant(spread, lag))
    returns = np.diff(values, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(returns, rowvar=False)[iy, ix] if len(returns) > 1 else np.nan
        z = (spread[-1] - spread.mean(axis=0)) / spread.std(axis=0, ddof=1)
    columns = {
        "beta": beta,
        "alpha": alpha,
        "eg_pvalue": mackinnon_pvalue(stat, n_vars=2),
        "half_life": _ar1_half_life(spread),
        "corr": corr,
        "z": z,
    }
    return _scan_frame(symbols, iy, ix, columns, log_prices.columns[~usable])


def _adf_t_no_constant(series: np.ndarray, lag: int) -> np.ndarray:
    """The ADF t-statistic of each column, as statsmodels ``adfuller(s, maxlag=lag,
    autolag=None, regression="n")``: OLS of ``ds_t`` on ``s_{t-1}, ds_{t-1} … ds_{t-lag}``,
    the t-value of the first coefficient. All columns in one batched solve."""
    diff = np.diff(series, axis=0)
    rows = len(diff) - lag
    target = diff[lag:]  # (rows, pairs)
    regressors = [series[lag:-1]] + [diff[lag - i : lag - i + rows] for i in range(1, lag + 1)]
    design = np.stack(regressors)  # (k, rows, pairs)
    xtx = np.einsum("irp,jrp->pij", design, design)
    xty = np.einsum("irp,rp->pi", design, target)
    with np.errstate(divide="ignore", invalid="ignore"):
        inverse = np.linalg.pinv(xtx)  # singular only for a constant spread: NaN below
        coef = np.einsum("pij,pj->pi", inverse, xty)
        resid = target - np.einsum("irp,pi->rp", design, coef)
        dof = rows - (lag + 1)
        s2 = (resid * resid).sum(axis=0) / dof
        return coef[:, 0] / np.sqrt(s2 * inverse[:, 0, 0])


def mackinnon_pvalue(stat, n_vars: int = 1) -> np.ndarray:
    """MacKinnon's (1994) approximate p-value of unit-root t-statistics (constant term), as
    statsmodels ``mackinnonp(stat, regression="c", N=n_vars)``, for an array at once, with
    statsmodels' own coefficient tables."""
    from scipy.stats import norm
    from statsmodels.tsa import adfvalues as tables

    stat = np.asarray(stat, dtype=np.float64)
    i = n_vars - 1
    small = np.asarray(tables._tau_smallps["c"][i])[::-1]
    large = np.asarray(tables._tau_largeps["c"][i])[::-1]
    with np.errstate(invalid="ignore", over="ignore"):
        curve = np.where(
            stat <= tables._tau_stars["c"][i], np.polyval(small, stat), np.polyval(large, stat)
        )
        p = norm.cdf(curve)
    p = np.where(stat > tables._tau_maxs["c"][i], 1.0, p)
    return np.where(stat < tables._tau_mins["c"][i], 0.0, p)


def _ar1_half_life(spread: np.ndarray) -> np.ndarray:
    """``half_life`` of each column: b of ``ds_t = a + b s_{t-1}`` by centred moments."""
    level, step = spread[:-1], np.diff(spread, axis=0)
    level_c = level - level.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        b = (level_c * (step - step.mean(axis=0))).sum(axis=0) / (level_c * level_c).sum(axis=0)
        out = -math.log(2) / np.log1p(np.clip(b, -1 + 1e-300, None))
    out = np.where(b >= 0, np.inf, out)
    return np.where(b <= -1, 0.0, np.where(np.isfinite(b), out, np.nan))


def _scan_frame(symbols, iy, ix, columns: dict, skipped) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"y": np.asarray(symbols)[iy], "x": np.asarray(symbols)[ix]}
        | {name: columns.get(name, np.empty(0)) for name in SCAN_COLUMNS[2:]}
    )
    frame = frame.sort_values("eg_pvalue", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs["skipped"] = [str(s) for s in skipped]
    return frame


def cluster_order(corr: pd.DataFrame) -> list:
    """The symbols of a correlation matrix in the leaf order of an average-linkage hierarchical
    clustering on the distance ``1 - corr`` (scipy, with optimal leaf ordering), so that
    correlated symbols sit next to each other in a heatmap. A NaN correlation (a constant
    series) counts as uncorrelated."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    labels = list(corr.columns)
    if len(labels) < 3:
        return labels
    distance = 1.0 - np.nan_to_num(corr.to_numpy(dtype=np.float64), nan=0.0)
    distance = np.clip((distance + distance.T) / 2, 0.0, 2.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), "average", optimal_ordering=True)
    return [labels[i] for i in leaves_list(tree)]


def funding_carry_bps_per_day(rate_y, interval_y_h, rate_x, interval_x_h, beta):
    """Funding carry *earned* by the spread position long y, short ``beta`` of x, in bps of y's
    notional per day, if the current funding rates held:

        carry = 1e4 * (-r_y * 24 / h_y + beta * r_x * 24 / h_x)

    ``r`` is a leg's funding rate per interval (a fraction), ``h`` its funding interval in hours.
    Binance's convention: at each funding time a long pays ``r`` times its notional and a short
    receives it (the reverse when ``r < 0``). Notionals: 1 of y against ``beta`` of x, the
    position whose value moves with the log spread ``log y - beta log x``; so carry and the
    spread's moves are in the same unit (bps of y's notional). The reverse position carries the
    negative. Arrays broadcast; NaN in, NaN out."""
    r_y, r_x = np.asarray(rate_y, float), np.asarray(rate_x, float)
    per_day_y = 24.0 / np.asarray(interval_y_h, float)
    per_day_x = 24.0 / np.asarray(interval_x_h, float)
    return 1e4 * (-r_y * per_day_y + np.asarray(beta, float) * r_x * per_day_x)


def basis_bps(mark_price, index_price):
    """The perpetual's premium over its index, ``1e4 * (mark - index) / index`` (bps)."""
    mark, index = np.asarray(mark_price, float), np.asarray(index_price, float)
    return 1e4 * (mark - index) / index
