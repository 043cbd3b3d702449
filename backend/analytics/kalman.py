"""The Kalman hedge: a time-varying hedge ratio that keeps the mean-reverting spread apart.

The model, in statsmodels' state space::

    y_t = mu + beta_t x_t + s_t + e_t,      e_t ~ N(0, h)
    beta_t = beta_{t-1} + eta_t,            eta_t ~ N(0, q_beta)      (a random walk)
    s_t = phi s_{t-1} + w_t,                w_t ~ N(0, q_s)           (an AR(1) spread)

``mu`` is a constant. A random-walk hedge without ``s`` has only ``beta`` and an intercept to
explain a persistent spread with, so on log prices (``x`` near 11, nearly collinear with the
intercept) their noise soaks the spread up and the "spread" left to trade is noise. Here the
spread has a state of its own.

* **Numerics.** ``mu`` and ``beta`` start diffuse (exact diffuse initialisation), ``s`` at its
  stationary distribution. The regression is written about ``c``, the fit window's first ``x``
  (states ``mu + c beta_t`` and ``beta_t``, regressors ``1`` and ``x_t - c``): the same model,
  without the near-collinearity of ``1`` and ``x`` that keeps a diffuse filter from ever
  leaving its diffuse phase.
* **Fit.** ``h`` is concentrated out of the likelihood; the parameters are
  ``log(q_beta * E[x^2] / h)``, ``log(q_s / h)`` and ``logit(phi)``. Maximum likelihood from
  several starting points: the likelihood on a grid of ``KALMAN_GRID`` points, then L-BFGS
  from the best point of each ``phi`` level; the best likelihood wins (one start lands on the
  wrong optimum for many series).
* **Walk-forward, anchored.** Bars are cut into blocks of ``KALMAN_REFIT_BARS`` whose starts
  are fixed UTC times (open times that are multiples of the block's length, or bar indices
  when no times are given). A block's noise is fitted on the ``KALMAN_FIT_BARS`` bars before
  it, and its states come from a filter started (diffuse) at that window's first bar. So
  ``beta_t, alpha_t`` use bars before ``t`` only, and they depend on a fixed span of bars, not
  on where the data starts: no past value changes when bars arrive or the window slides. A
  block without ``KALMAN_FIT_BARS`` bars before it is NaN.
* **Outputs** are one-step-ahead predictions (``predicted_state``): ``beta_t`` and ``alpha_t =
  mu`` as known before bar ``t``; the traded spread is ``y_t - alpha_t - beta_t x_t``, which
  keeps ``s_t``. ``phi`` (per bar, the block's) gives the spread's half-life
  ``-ln 2 / ln phi`` bars.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from backend.analytics._arrays import _pair, _wrap
from backend.analytics.hedge import MIN_REGRESSION_POINTS

KALMAN_FIT_BARS = 800  # each block's noise: the bars before it
KALMAN_REFIT_BARS = 200  # block length; blocks start at multiples of it (UTC)
_LOGIT = lambda p: math.log(p / (1 - p))  # noqa: E731
# Starting points: beta noise from none to fast, spread noise from none to dominant, phi from
# quick reversion to nearly a random walk (their cost: docs/benchmarks.md, bench_backtest.py).
KALMAN_GRID = tuple(
    (b, s, _LOGIT(f))
    for b, s, f in itertools.product(
        (-20, -9, -4, -1), (-10, -2, 1, 4), (0.3, 0.7, 0.9, 0.97, 0.995)
    )
)
# The spread reverts within a fraction of the fit window: a slower "spread" cannot be told
# from a drifting hedge over the window, and is the hedge's.
KALMAN_MAX_HALF_LIFE_BARS = KALMAN_FIT_BARS / 8
_PHI_MAX = 0.5 ** (1 / KALMAN_MAX_HALF_LIFE_BARS)
_BOUNDS = ((-30.0, 10.0), (-15.0, 15.0), (-6.0, _LOGIT(_PHI_MAX)))


@dataclass(frozen=True)
class KalmanFit:
    """One block's maximum-likelihood noise."""

    start: int  # the block's first bar
    log_q_beta: float  # log(q_beta * E[x^2] / h)
    log_q_s: float  # log(q_s / h)
    phi: float
    loglike: float

    @property
    def params(self) -> np.ndarray:
        return np.array(
            [self.log_q_beta, self.log_q_s, _LOGIT(min(max(self.phi, 1e-12), 1 - 1e-12))]
        )

    @property
    def half_life_bars(self) -> float:
        """``-ln 2 / ln phi``: bars for the spread to revert halfway (inf at phi >= 1)."""
        if not 0 < self.phi < 1:
            return math.inf if self.phi >= 1 else 0.0
        return -math.log(2) / math.log(self.phi)


@dataclass(frozen=True)
class KalmanPath:
    beta: np.ndarray  # one-step-ahead, per bar (NaN before the first fitted block)
    alpha: np.ndarray
    phi: np.ndarray  # the AR(1) coefficient of the spread in force at each bar
    fits: tuple[KalmanFit, ...]

    @property
    def half_life_bars(self) -> float:
        """The latest fit's spread half-life, in bars (NaN before any fit)."""
        return self.fits[-1].half_life_bars if self.fits else math.nan


def kalman_hedge(
    y,
    x,
    delta: float | None = None,
    obs_var: float | None = None,
    open_time_ms=None,
    bar_ms: int | None = None,
    memo=None,
):
    """One-step-ahead ``(beta_t, alpha_t)``: the traded spread is ``y - alpha_t - beta_t x``.

    With neither ``delta`` nor ``obs_var``: the model of the module docstring, fitted
    walk-forward in anchored blocks (``kalman_path``; ``open_time_ms`` and ``bar_ms`` anchor
    the blocks to UTC, ``memo`` keeps block fits between calls). With both: the classic
    random-walk regression ``y_t = alpha_t + beta_t x_t + v_t``, ``v ~ N(0, obs_var)``,
    ``[alpha, beta]`` a random walk of covariance ``diag(q, q)``, ``q = delta / (1 - delta)``,
    run from the first bar (an approximately diffuse prior; the first two outputs NaN).
    NaN bars are missing data.
    """
    ya, xa = _pair(y, x)
    if (delta is None) != (obs_var is None):
        raise ValueError("give both delta and obs_var to fix the noise, or neither to fit it")
    if delta is not None:
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {delta}")
        if not obs_var > 0:
            raise ValueError(f"obs_var must be > 0, got {obs_var}")
        beta, alpha = _fixed_noise_filter(ya, xa, delta / (1 - delta), obs_var)
    else:
        path = kalman_path(ya, xa, open_time_ms, bar_ms, memo=memo)
        beta, alpha = path.beta, path.alpha
    return _wrap(y, beta), _wrap(y, alpha)


def kalman_path(
    y,
    x,
    open_time_ms=None,
    bar_ms: int | None = None,
    fit_bars: int = KALMAN_FIT_BARS,
    refit_bars: int = KALMAN_REFIT_BARS,
    memo=None,
) -> KalmanPath:
    """The walk-forward path of the module docstring. ``memo`` (a mapping, optional) keeps
    each block's fit, and each whole block's states, under a key of its bars: a caller running
    this as bars arrive fits only new blocks and filters only the newest."""
    ya, xa = _pair(y, x)
    n = len(ya)
    beta, alpha, phi = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
    fits = []
    for start, stop in anchored_blocks(n, open_time_ms, bar_ms, refit_bars, fit_bars):
        lo = start - fit_bars
        fy, fx = ya[lo:start], xa[lo:start]
        if not (np.isfinite(fy).sum() > MIN_REGRESSION_POINTS and np.ptp(fx[np.isfinite(fx)]) > 0):
            continue
        key = ("kalman-ar1", _digest(fy, fx))
        fit = memo.get(key) if memo is not None else None
        if fit is None:
            fit = _fit(fy, fx, start)
            if memo is not None:
                memo[key] = fit
        fit = KalmanFit(start, fit.log_q_beta, fit.log_q_s, fit.phi, fit.loglike)
        # A whole block's states never change either: only the newest block is filtered anew.
        whole = stop < n
        states_key = ("kalman-states", _digest(ya[lo:stop], xa[lo:stop])) if whole else None
        states = memo.get(states_key) if memo is not None and whole else None
        if states is None:
            states = _SpreadModel(ya[lo:stop], xa[lo:stop]).predict(fit.params)[:, fit_bars:]
            if memo is not None and whole:
                memo[states_key] = states
        beta[start:stop] = states[1]
        alpha[start:stop] = states[0]
        phi[start:stop] = fit.phi
        fits.append(fit)
    return KalmanPath(beta, alpha, phi, tuple(fits))


def kalman_smoothed(y, x, fit_bars: int = KALMAN_FIT_BARS) -> KalmanPath:
    """Hindsight: the noise fitted on the last ``fit_bars`` bars, then ``beta_t, alpha_t`` from
    the smoother over every bar (each uses every other bar, later ones included)."""
    ya, xa = _pair(y, x)
    n = len(ya)
    nan = np.full(n, np.nan)
    lo = max(0, n - fit_bars)
    finite_x = xa[np.isfinite(xa)]
    if n - lo <= MIN_REGRESSION_POINTS or len(finite_x) < 2 or np.ptp(finite_x) == 0:
        return KalmanPath(nan, nan.copy(), nan.copy(), ())
    fit = _fit(ya[lo:], xa[lo:], 0)
    states = _SpreadModel(ya, xa).smooth(fit.params)
    return KalmanPath(states[1], states[0], np.full(n, fit.phi), (fit,))


def anchored_blocks(n: int, open_time_ms, bar_ms, block_bars: int, before: int):
    """``(start, stop)`` of consecutive blocks over ``n`` bars, each starting where the open
    time is a multiple of ``block_bars`` bars (UTC; without times, where the index is), and
    only those with at least ``before`` bars before them."""
    if open_time_ms is None or bar_ms is None:
        starts = np.arange(0, n, block_bars)
    else:
        t = np.asarray(open_time_ms, dtype=np.int64)
        block = t // (int(bar_ms) * block_bars)
        starts = np.flatnonzero(np.diff(block, prepend=block[0] - 1) != 0) if n else t[:0]
    stops = np.append(starts[1:], n)
    return [(int(a), int(b)) for a, b in zip(starts, stops, strict=True) if a >= before]


def _digest(*arrays: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.digest()


def _fit(y: np.ndarray, x: np.ndarray, start: int) -> KalmanFit:
    """Maximum likelihood from the best grid point of each phi level (optima of different
    reversion speeds are the ones a single start confuses), the best likelihood kept."""
    model = _SpreadModel(y, x)
    grid = np.array(KALMAN_GRID)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lls = np.nan_to_num([model.loglike(g) for g in grid], nan=-np.inf)
        best_ll, best = -np.inf, grid[int(np.argmax(lls))]
        for level in np.unique(grid[:, 2]):
            at = np.flatnonzero(grid[:, 2] == level)
            # Only the point estimate: no standard errors (a numerical Hessian costs more
            # than the fit) and no results object.
            params = model.fit(
                grid[at[np.argmax(lls[at])]], disp=False, method="lbfgs", maxiter=300,
                factr=1e7, cov_type="none", return_params=True, bounds=_BOUNDS,
            )  # fmt: skip
            ll = model.loglike(params)
            if np.isfinite(ll) and ll > best_ll:
                best_ll, best = ll, params
    phi = 1 / (1 + math.exp(-float(best[2])))
    return KalmanFit(start, float(best[0]), float(best[1]), phi, float(best_ll))


class _SpreadModel:
    """The state-space model of the module docstring on one span of bars. Built lazily so that
    importing this module does not import statsmodels."""

    def __init__(self, y: np.ndarray, x: np.ndarray) -> None:
        from statsmodels.tsa.statespace.initialization import Initialization
        from statsmodels.tsa.statespace.mlemodel import MLEModel

        finite_x = x[np.isfinite(x)]
        c = float(finite_x[0])
        xs2 = float(np.mean(finite_x**2)) or 1.0
        xc = np.nan_to_num(x - c)

        class Model(MLEModel):
            def __init__(self) -> None:
                super().__init__(y, k_states=3, k_posdef=2)
                self.ssm.filter_concentrated = True  # h out of the likelihood
                self["design"] = np.stack([np.ones(len(y)), xc, np.ones(len(y))])[None]
                self["transition"] = np.eye(3)
                # States [mu + c beta, beta, s]: a beta shock moves the first by c times it.
                self["selection"] = np.array([[c, 0.0], [1.0, 0.0], [0.0, 1.0]])
                self["obs_cov", 0, 0] = 1.0
                init = Initialization(3)
                init.set((0, 2), "diffuse")
                init.set(2, "stationary")
                self.ssm.initialize(init)

            @property
            def param_names(self):
                return ["log_q_beta", "log_q_s", "logit_phi"]

            @property
            def start_params(self):
                return np.array(KALMAN_GRID[0])

            def update(self, params, **kwargs):
                params = super().update(params, **kwargs)
                self["state_cov"] = np.diag([math.exp(params[0]) / xs2, math.exp(params[1])])
                self["transition", 2, 2] = 1 / (1 + math.exp(-params[2]))

        self._model, self._c = Model(), c

    def loglike(self, params: np.ndarray) -> float:
        return float(self._model.loglike(params))

    def fit(self, start: np.ndarray, **kwargs) -> np.ndarray:
        return self._model.fit(start, **kwargs)

    def predict(self, params: np.ndarray) -> np.ndarray:
        """``[alpha_t, beta_t]`` predicted from the bars before each (rows 0 and 1)."""
        return self._states(params, smoothed=False)

    def smooth(self, params: np.ndarray) -> np.ndarray:
        return self._states(params, smoothed=True)

    def _states(self, params, smoothed: bool) -> np.ndarray:
        model = self._model
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.update(params)
            if smoothed:
                states = np.asarray(model.ssm.smooth().smoothed_state)
            else:
                states = np.asarray(model.ssm.filter().predicted_state)[:, : model.nobs]
        out = states[:2].copy()
        out[0] -= self._c * out[1]  # back from mu + c beta to alpha = mu
        return out


def _fixed_noise_filter(y, x, q: float, obs_var: float) -> tuple[np.ndarray, np.ndarray]:
    """The classic random-walk regression filter with given noise, from the first bar."""
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    n = len(y)
    beta, alpha = np.full(n, np.nan), np.full(n, np.nan)
    finite_x = x[np.isfinite(x)]
    if n < MIN_REGRESSION_POINTS or len(finite_x) < 2 or np.ptp(finite_x) == 0:
        return beta, alpha
    model = MLEModel(y, k_states=2, k_posdef=2)
    model["design"] = np.stack([np.ones(n), np.nan_to_num(x)])[None, :, :]
    model["transition"] = np.eye(2)
    model["selection"] = np.eye(2)
    model["obs_cov", 0, 0] = obs_var
    model["state_cov"] = np.diag([q, q])
    # A prior wide against the first level seen (not the whole series: no bar may depend on
    # later ones).
    first = y[np.isfinite(y)][:1]
    model.ssm.initialize_approximate_diffuse(
        1e6 * max(1.0, float(first[0]) ** 2 if len(first) else 1.0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predicted = np.asarray(model.ssm.filter().predicted_state)[:, :n]
    alpha[2:], beta[2:] = predicted[0, 2:], predicted[1, 2:]
    return beta, alpha
