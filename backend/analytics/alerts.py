"""Edge-triggered alerts on a z-score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.analytics._arrays import _as_array

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
