"""The Kalman hedge: a time-varying regression in statsmodels' state space."""

from __future__ import annotations

import warnings

import numpy as np

from backend.analytics._arrays import _finite_pairs, _pair, _wrap
from backend.analytics.hedge import MIN_REGRESSION_POINTS

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
