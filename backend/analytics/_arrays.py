"""Input handling and O(n) rolling moments shared by the analytics modules."""

from __future__ import annotations

import numpy as np
import pandas as pd

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


def _tiny(a: np.ndarray) -> float:
    """Below this a std is rounding noise of the centred sums (about sqrt(eps) of the series'
    scale), i.e. the window is constant."""
    finite = a[np.isfinite(a)]
    scale = float(np.max(np.abs(finite))) if len(finite) else 0.0
    return 1e-7 * max(scale, 1e-300)
