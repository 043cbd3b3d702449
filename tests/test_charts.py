"""Charts drawn from many bars (frontend/charts.py): lines thinned for display keep every
stretch's extremes; the figures are never computed on thinned data."""

from __future__ import annotations

import numpy as np

from frontend.charts import MAX_LINE_POINTS, _line, thin_index


def test_a_long_line_keeps_each_stretch_lowest_and_highest_point():
    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=123_457))
    y[5_000:5_300] = np.nan  # a stretch without values
    keep = thin_index(y)
    assert len(keep) <= MAX_LINE_POINTS + 2
    assert keep[0] == 0 and keep[-1] == len(y) - 1 and np.all(np.diff(keep) > 0)
    # Independent: the extremes of each stretch, found one stretch at a time.
    buckets = MAX_LINE_POINTS // 2
    width = -(-len(y) // buckets)
    kept = set(keep.tolist())
    for start in range(0, len(y), width):
        part = y[start : start + width]
        if np.isfinite(part).any():
            assert start + int(np.nanargmin(part)) in kept
            assert start + int(np.nanargmax(part)) in kept
    assert np.nanmax(y[keep]) == np.nanmax(y) and np.nanmin(y[keep]) == np.nanmin(y)


def test_short_lines_are_drawn_point_by_point():
    y = np.arange(MAX_LINE_POINTS, dtype=float)
    assert thin_index(y).tolist() == list(range(MAX_LINE_POINTS))
    trace = _line(np.arange(len(y)), y, "y")
    assert len(trace["y"]) == MAX_LINE_POINTS
    long = _line(np.arange(50_000), np.sin(np.arange(50_000) / 100), "y")
    assert len(long["x"]) == len(long["y"]) <= MAX_LINE_POINTS + 2
