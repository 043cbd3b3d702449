"""Pair analytics as pure functions: arrays or Series in, arrays, floats or frames out.

Conventions, for every function here:

* Inputs are 1-D and of equal length (aligned bars); a length mismatch is a ``ValueError``.
* Rolling outputs have the input's length, use a *trailing* window that includes the current
  point, and are NaN until the window is full and wherever the window holds a NaN.
* Standard deviations are sample standard deviations (``ddof = 1``).
* Statistics that cannot be computed (too few points, a constant series) are NaN, not errors.
* Nothing here does I/O or knows about Streamlit.


Modules: ``hedge`` (hedge ratios, spread, rolling moments, correlation, tables), ``kalman``,
``stationarity`` (ADF, Engle-Granger, half-life), ``execution`` (the backtest), ``scan`` (every
pair at once), ``funding`` (carry, basis), ``alerts``. Their public names are re-exported here.
"""

from backend.analytics.alerts import AlertEvent, zscore_alerts
from backend.analytics.execution import (
    MAKER_FEE_BPS,
    MIN_SHARPE_DAYS,
    TAKER_FEE_BPS,
    BacktestResult,
    BacktestSummary,
    ExecutionConfig,
    LegData,
    backtest,
)
from backend.analytics.funding import basis_bps, funding_carry_bps_per_day
from backend.analytics.hedge import (
    HEDGE_METHODS,
    MIN_REGRESSION_POINTS,
    bar_stats_table,
    correlation_matrix,
    hedge_ratio,
    log_returns,
    rolling_corr,
    rolling_hedge_ratio,
    rolling_mean_std,
    spread,
    zscore,
)
from backend.analytics.kalman import (
    KALMAN_FIT_BARS,
    KALMAN_REFIT_BARS,
    KalmanPath,
    anchored_blocks,
    kalman_hedge,
    kalman_path,
    kalman_smoothed,
)
from backend.analytics.scan import (
    SCAN_COLUMNS,
    bh_qvalues,
    cluster_order,
    hurst_exponent,
    scan_pairs,
)
from backend.analytics.stationarity import (
    ADF_NAN,
    EG_TABLE,
    HALF_LIFE_NAN,
    JOHANSEN_LEVELS,
    MIN_ADF_POINTS,
    AdfResult,
    HalfLife,
    JohansenResult,
    adf_pvalue,
    adf_test,
    engle_granger_pvalue,
    half_life,
    half_life_interval,
    johansen,
    mackinnon_pvalue,
    spread_adf,
)

__all__ = [
    "ADF_NAN",
    "AdfResult",
    "AlertEvent",
    "BacktestResult",
    "BacktestSummary",
    "EG_TABLE",
    "ExecutionConfig",
    "HALF_LIFE_NAN",
    "HEDGE_METHODS",
    "HalfLife",
    "JOHANSEN_LEVELS",
    "JohansenResult",
    "KALMAN_FIT_BARS",
    "KALMAN_REFIT_BARS",
    "KalmanPath",
    "LegData",
    "MAKER_FEE_BPS",
    "MIN_ADF_POINTS",
    "MIN_REGRESSION_POINTS",
    "MIN_SHARPE_DAYS",
    "SCAN_COLUMNS",
    "TAKER_FEE_BPS",
    "adf_pvalue",
    "adf_test",
    "anchored_blocks",
    "backtest",
    "bar_stats_table",
    "basis_bps",
    "bh_qvalues",
    "cluster_order",
    "correlation_matrix",
    "engle_granger_pvalue",
    "funding_carry_bps_per_day",
    "half_life",
    "half_life_interval",
    "hedge_ratio",
    "hurst_exponent",
    "johansen",
    "kalman_hedge",
    "kalman_path",
    "kalman_smoothed",
    "log_returns",
    "mackinnon_pvalue",
    "rolling_corr",
    "rolling_hedge_ratio",
    "rolling_mean_std",
    "scan_pairs",
    "spread",
    "spread_adf",
    "zscore",
    "zscore_alerts",
]
