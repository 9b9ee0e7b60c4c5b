"""The synthetic market: a documented, realistic, reproducible candle series.

Model (one bar = one step; ``tf`` = the timeframe in hours, so volatility scales with ``sqrt(tf)``):

- **Regimes**: a three-state Markov chain (bear, flat, bull) with drifts of
  ``-0.6, 0, +0.6`` basis points per hour and a mean stay of about ``30 days``
  (whatever the timeframe).
- **Volatility clustering**: GARCH(1,1) on hourly variance,
  ``s2_t = w + a * r_{t-1}^2 + b * s2_{t-1}`` with ``a = 0.06``, ``b = 0.92`` and a long-run
  hourly volatility of 0.6 %.
- **Fat tails**: shocks are Student-t with 4 degrees of freedom, scaled to unit variance.
- **Prices**: log return ``r_t = mu_t + s_t * ((1 - p) * e_t - p * sign(r_{t-1} + r_{t-2} + r_{t-3}))``,
  ``open_t = close_{t-1}``, ``close_t = open_t * exp(r_t)``; high and low extend beyond
  open/close by half-normal wicks proportional to ``s_t``. The first open is 100.
- **Planted signal** ``p`` (``planted_signal``, 0..1): the bar's return leans against the
  sum of the previous three returns (short-term mean reversion): down after a rise,
  up otherwise (``sign`` here is +1 for a positive sum and -1 else). It is causal
  (uses past bars only), 0 turns it off, and the larger ``p`` the more predictable the
  direction of the next bar: at 0.3 the sign of the next return equals
  ``-sign(r_{t-1} + r_{t-2} + r_{t-3})`` about two times out of three.
- **Bid-ask bounce** ``b`` (``bounce_bps``, default 0 = none): the prices above are mid
  prices; with ``b > 0`` every open and close is a trade at the bid or the ask, chosen at
  random (Roll, 1984): ``mid * exp(+-b / 20000)``, and the high and low are the mid's high
  at the ask and its low at the bid. The quoted spread is then ``b`` basis points and
  next-bar returns are negatively autocorrelated (``cov = -(b / 20000)^2``). The random
  sides are drawn after everything else, so the mid path is the one ``b = 0`` gives.
- **Volume**: log-normal, higher on large moves (``1 + 2|e_t|``) and with an intraday
  seasonality peaking at 15:00 UTC (``1 + 0.5 cos(2 pi (hour - 15) / 24)``).

The same arguments give byte-identical frames (numpy's PCG64 seeded with the seed and
a CRC-32 of the symbol, so two symbols with one seed differ).
"""

from __future__ import annotations

import math
import zlib
from typing import TYPE_CHECKING, Any

from trader.data.frame import CANDLE_COLUMNS, check_symbol, check_timeframe, parse_time_ms
from trader.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["synthetic_candles", "DEFAULT_SYNTH_START", "synthetic_source"]

#: Open time of the first synthetic bar: 2024-01-01 00:00 UTC.
DEFAULT_SYNTH_START = "2024-01-01"

_HOURLY_VOL = 0.006
_GARCH_A, _GARCH_B = 0.06, 0.92
_REGIME_DRIFT_PER_HOUR = (-0.00006, 0.0, 0.00006)
_REGIME_STAY_HOURS = 24 * 30
_STUDENT_DF = 4


def synthetic_source(seed: int) -> str:
    """How a synthetic series is described to users."""
    return f"synthetic market (seed {seed})"


def synthetic_candles(
    symbol: str = "SYN/USDT",
    timeframe: str = "1h",
    bars: int = 5000,
    seed: int = 0,
    start: Any = DEFAULT_SYNTH_START,
    planted_signal: float = 0.0,
    bounce_bps: float = 0.0,
) -> pd.DataFrame:
    """A canonical candle frame of *bars* synthetic bars (see the module docstring for the model)."""
    import numpy as np
    import pandas as pd

    symbol = check_symbol(symbol)
    step = check_timeframe(timeframe)
    if isinstance(bars, bool) or not isinstance(bars, int) or bars < 1:
        raise DataError(f"bars must be a positive integer, got {bars!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    if not isinstance(planted_signal, (int, float)) or not 0.0 <= float(planted_signal) <= 1.0:
        raise DataError(f"planted_signal must be within [0, 1], got {planted_signal!r}")
    if (isinstance(bounce_bps, bool) or not isinstance(bounce_bps, (int, float)) or not math.isfinite(bounce_bps)
            or not 0.0 <= float(bounce_bps) < 5_000.0):
        raise DataError(f"bounce_bps must be within [0, 5000), got {bounce_bps!r}")
    p = float(planted_signal)
    first = parse_time_ms(start, "start")
    first -= first % step  # on the timeframe grid

    rng = np.random.Generator(np.random.PCG64([seed, zlib.crc32(symbol.encode())]))
    hours = step / 3_600_000
    shocks = rng.standard_t(_STUDENT_DF, bars) / math.sqrt(_STUDENT_DF / (_STUDENT_DF - 2))
    regime_draws = rng.random(bars)
    wick_up = np.abs(rng.standard_normal(bars))
    wick_down = np.abs(rng.standard_normal(bars))
    volume_noise = rng.standard_normal(bars)

    # regimes: leave the current one with probability q per bar, to a uniformly chosen other one
    q = min(0.5, hours / _REGIME_STAY_HOURS)
    regime = np.empty(bars, dtype=np.int64)
    state = 1
    for i in range(bars):
        u = regime_draws[i]
        if u < q:
            state = (state + 1 + int(u / q * 2)) % 3
        regime[i] = state
    drift = np.asarray(_REGIME_DRIFT_PER_HOUR)[regime] * hours

    # GARCH(1,1) in per-bar units and the returns, with the planted reversal
    long_var = _HOURLY_VOL**2 * hours
    omega = long_var * (1.0 - _GARCH_A - _GARCH_B)
    returns = np.empty(bars)
    sigmas = np.empty(bars)
    var = long_var
    r1 = r2 = r3 = 0.0
    for i in range(bars):
        sigma = math.sqrt(var)
        past = r1 + r2 + r3
        lean = 1.0 if past > 0 else -1.0
        r = drift[i] + sigma * ((1.0 - p) * shocks[i] - p * lean)
        returns[i], sigmas[i] = r, sigma
        var = omega + _GARCH_A * (r - drift[i]) ** 2 + _GARCH_B * var
        var = min(var, 25 * long_var)
        r1, r2, r3 = r, r1, r2

    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.empty(bars)
    open_[0] = 100.0
    open_[1:] = close[:-1]
    high = np.maximum(open_, close) * np.exp(0.5 * sigmas * wick_up)
    low = np.minimum(open_, close) * np.exp(-0.5 * sigmas * wick_down)

    if bounce_bps > 0:  # trades at the bid or the ask around the mid (drawn last: the mid path is unchanged)
        half = float(bounce_bps) / 20_000.0
        sides = rng.choice(np.array([-1.0, 1.0]), size=(2, bars))
        open_ = open_ * np.exp(half * sides[0])
        close = close * np.exp(half * sides[1])
        high = high * math.exp(half)
        low = low * math.exp(-half)

    timestamps = first + step * np.arange(bars, dtype=np.int64)
    hour_of_day = (timestamps // 3_600_000) % 24
    season = 1.0 + 0.5 * np.cos(2 * math.pi * (hour_of_day - 15) / 24)
    activity = 1.0 + 2.0 * np.abs(shocks)
    volume = 50.0 * hours * season * activity * np.exp(0.4 * volume_noise)

    return pd.DataFrame(
        {
            "timestamp": timestamps.astype(np.int64),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        },
        columns=list(CANDLE_COLUMNS),
    )
