"""Unit-root and cointegration tests, half-lives."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace

import numpy as np

from backend.analytics._arrays import _as_array, _finite_pairs, _pair
from backend.analytics.hedge import hedge_ratio

MIN_ADF_POINTS = 20


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
    table: str = "Dickey-Fuller"  # whose distribution p and the critical values come from

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


EG_TABLE = "two-variable Engle-Granger"


def spread_adf(s, residual: bool = False, n_vars: int = 2) -> AdfResult:
    """The ADF test of an *estimated* spread, judged against the Engle-Granger distribution:
    MacKinnon's (1994, 2010) tables for 2 variables with a constant, as statsmodels ``coint``
    uses. The one-variable Dickey-Fuller table would call a spread stationary too often: its
    hedge was fitted to make it look so.

    The statistic is statsmodels ``adfuller(s, autolag="AIC")``'s, with ``regression="n"`` when
    ``residual`` (an in-sample OLS residual: mean zero by construction, exactly ``coint``'s
    test) and ``"c"`` otherwise (a walk-forward spread, whose mean was not fitted). Critical
    values ``mackinnoncrit(N=2, regression="c", nobs=len(s) - 1)``, p ``mackinnonp(stat, "c",
    N=2)``; a basket of k series uses ``n_vars=k``. All NaN as ``adf_test``."""
    table = EG_TABLE if n_vars == 2 else f"{n_vars}-variable Engle-Granger"
    a = _clean_series(s)
    if a is None:
        return replace(ADF_NAN, table=table)
    from statsmodels.tsa.adfvalues import mackinnoncrit, mackinnonp
    from statsmodels.tsa.stattools import adfuller

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stat, _, lags, nobs, _, _ = adfuller(
                a, regression="n" if residual else "c", autolag="AIC", result_object=False
            )
    except (ValueError, np.linalg.LinAlgError):
        return replace(ADF_NAN, table=table)
    crit = mackinnoncrit(N=n_vars, regression="c", nobs=len(a) - 1)
    return AdfResult(
        float(stat),
        float(mackinnonp(stat, regression="c", N=n_vars)),
        {level: float(v) for level, v in zip(("1%", "5%", "10%"), crit, strict=True)},
        int(lags),
        int(nobs),
        table,
    )


@dataclass(frozen=True, slots=True)
class HalfLife:
    """A spread's half-life in bars with its 95 % interval (from the AR(1) slope's standard
    error); ``inf`` where no reversion is seen."""

    bars: float
    low: float
    high: float


HALF_LIFE_NAN = HalfLife(math.nan, math.nan, math.nan)


def half_life_interval(s) -> HalfLife:
    """``half_life`` and its interval: ``ds_t = a + b s_{t-1} + e`` by OLS (statsmodels), the
    half-life ``-ln 2 / ln(1 + b)`` at ``b`` and at ``b -+ 1.96 se(b)`` (the interval's high
    end is ``inf`` when ``b + 1.96 se`` reaches 0)."""
    a = _clean_series(s)
    if a is None:
        return HALF_LIFE_NAN
    import statsmodels.api as sm

    fit = sm.OLS(np.diff(a), sm.add_constant(a[:-1], has_constant="add")).fit()
    b, se = float(fit.params[1]), float(fit.bse[1])
    if not math.isfinite(b):
        return HALF_LIFE_NAN
    return HalfLife(_hl(b), _hl(b - 1.96 * se), _hl(b + 1.96 * se))


def _hl(b: float) -> float:
    if not math.isfinite(b):
        return math.nan
    if b >= 0:
        return math.inf
    if b <= -1:
        return 0.0
    return -math.log(2) / math.log1p(b)


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


# --- baskets -----------------------------------------------------------------------------------

JOHANSEN_LEVELS = ("90%", "95%", "99%")


@dataclass(frozen=True)
class JohansenResult:
    """Johansen's test on k series (statsmodels ``coint_johansen``): for each hypothesis
    ``rank <= r`` (r = 0 .. k-1) the trace and maximum-eigenvalue statistics and their 90/95/99 %
    critical values (Osterwald-Lenum); the rank at 95 % by each (the first r not rejected, in
    sequence); the eigenvalues, and the first eigenvector, scaled so its first weight is 1."""

    trace: np.ndarray  # (k,)
    trace_crit: np.ndarray  # (k, 3): 90 %, 95 %, 99 %
    max_eig: np.ndarray  # (k,)
    max_eig_crit: np.ndarray  # (k, 3)
    eigenvalues: np.ndarray
    weights: np.ndarray  # (k,) the first cointegrating vector, weights[0] == 1
    rank_trace: int
    rank_max_eig: int


def johansen(levels, det_order: int = 0, k_ar_diff: int = 1) -> JohansenResult | None:
    """``coint_johansen(levels, det_order, k_ar_diff)`` on a (bars, k) array of levels (log
    prices), 2 <= k <= 12; ``det_order=0``: a constant in the cointegrating relations. None when
    the data cannot be tested (too short, a NaN, a constant or collinear column)."""
    a = np.asarray(levels, dtype=np.float64)
    if a.ndim != 2 or not 2 <= a.shape[1] <= 12:
        raise ValueError(f"johansen needs a (bars, 2..12) array, got shape {a.shape}")
    if len(a) < MIN_ADF_POINTS + a.shape[1] * (k_ar_diff + 1) or not np.isfinite(a).all():
        return None
    if (np.ptp(a, axis=0) == 0).any():
        return None
    from statsmodels.tsa.vector_ar.vecm import coint_johansen

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = coint_johansen(a, det_order, k_ar_diff)
    except (ValueError, np.linalg.LinAlgError):
        return None
    vector = np.asarray(res.evec)[:, 0]
    if not np.isfinite(vector).all() or vector[0] == 0:
        return None
    return JohansenResult(
        trace=np.asarray(res.lr1),
        trace_crit=np.asarray(res.cvt),
        max_eig=np.asarray(res.lr2),
        max_eig_crit=np.asarray(res.cvm),
        eigenvalues=np.asarray(res.eig),
        weights=vector / vector[0],
        rank_trace=_rank(res.lr1, res.cvt[:, 1]),
        rank_max_eig=_rank(res.lr2, res.cvm[:, 1]),
    )


def _rank(stats, crit) -> int:
    """The first r whose hypothesis (rank <= r) the statistic does not reject."""
    for r, (s, c) in enumerate(zip(stats, crit, strict=True)):
        if not s > c:
            return r
    return len(stats)
