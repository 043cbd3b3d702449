"""Funding carry and basis of perpetual futures."""

from __future__ import annotations

import numpy as np


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
