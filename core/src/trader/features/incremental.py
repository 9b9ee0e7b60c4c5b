"""Incremental features for live trading: one closed candle in, one feature row out.

The state is the running sums of the per-bar series, the last ``max(windows) + 1`` of them, and
one monotonic deque per window for the highest high and lowest low; an update does a fixed
number of array operations over ``len(windows)`` entries (amortised ``O(len(windows))``), and
applies the same kernels and gap policy as :meth:`FeatureEngineer.transform`, so the row equals
the batch row (to float rounding; bitwise when warmed with :meth:`IncrementalFeatures.warm`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.errors import DataError
from trader.features import kernels
from trader.features.segments import plan_gaps
from trader.features.specs import BAR_FEATURES
from trader.timeframes import timeframe_to_ms
from trader.types import Candle

if TYPE_CHECKING:
    import pandas as pd

    from trader.features.engineer import FeatureEngineer

__all__ = ["IncrementalFeatures"]

_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def _candle_values(candle: Any) -> tuple[int, float, float, float, float, float]:
    """``(timestamp, open, high, low, close, volume)`` from a Candle, mapping, Series or 6-sequence."""
    if type(candle) is Candle:  # validated when it was made: finite prices > 0, volume >= 0, integer timestamp
        return (int(candle.timestamp), float(candle.open), float(candle.high), float(candle.low), float(candle.close),
                float(candle.volume))
    try:
        if isinstance(candle, Mapping) or hasattr(candle, "keys"):
            raw = [candle[name] for name in _FIELDS]
        elif all(hasattr(candle, name) for name in _FIELDS):
            raw = [getattr(candle, name) for name in _FIELDS]
        elif isinstance(candle, (Sequence, np.ndarray)) and len(candle) == 6:
            raw = list(candle)
        else:
            raise TypeError
        ts = int(raw[0])
        if ts != raw[0]:
            raise ValueError
        o, h, low, c, v = (float(x) for x in raw[1:])
    except (KeyError, TypeError, ValueError, IndexError):
        raise DataError(f"a candle needs {', '.join(_FIELDS)} (integer ms timestamp, numbers); got {candle!r}") from None
    for name, value in zip(_FIELDS[1:5], (o, h, low, c), strict=True):
        if not (math.isfinite(value) and value > 0):  # plain floats: math is ~10x cheaper than numpy here
            raise DataError(f"candle at {ts}: {name} must be finite and > 0, got {value!r}")
    if not (math.isfinite(v) and v >= 0):
        raise DataError(f"candle at {ts}: volume must be finite and >= 0, got {v!r}")
    return ts, o, h, low, c, v


class IncrementalFeatures:
    """Live feature updater made by :meth:`FeatureEngineer.incremental`.

    ``update(candle)`` returns the float64 feature row (NaN until the segment is warm) for a new
    closed candle; ``warm(history)`` loads a candle frame in one vectorised pass.
    """

    def __init__(self, engineer: FeatureEngineer, timeframe: str | None = None) -> None:
        self.engineer = engineer
        self.windows = engineer.windows
        self.warmup_bars = engineer.warmup_bars
        self.n_features = engineer.n_features
        self.max_fill_bars = engineer.max_fill_bars
        if timeframe is not None:
            self.bar_ms: int | None = timeframe_to_ms(timeframe)
        else:
            self.bar_ms = engineer.bar_ms
        self._w = np.asarray(self.windows, dtype=np.int64)
        self._windows_float = self._w.astype(np.float64).tolist()
        self._ring = int(max(self.windows)) + 1
        self._bar_out = np.empty((len(BAR_FEATURES), 1))
        self.reset()

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget everything; the next candle starts a new segment."""
        n_series = kernels.N_SUM_SERIES
        self._running = np.zeros(n_series)
        self._running_ring = np.zeros((self._ring, n_series))
        self._logc_ring = np.zeros(self._ring)
        self._r_ring = np.full(self._ring, np.nan)
        self._highs: list[deque[Any]] = [deque() for _ in self.windows]
        self._lows: list[deque[Any]] = [deque() for _ in self.windows]
        self._count = 0  # bars pushed, fills included
        self._segment_start = 0
        self._prev_ts: int | None = None
        self._prev_close = np.nan
        self._prev_tp = np.nan

    @property
    def bars_into_segment(self) -> int:
        return self._count - self._segment_start

    @property
    def is_warm(self) -> bool:
        """True when the last row returned was fully valid."""
        return self._count > 0 and self._count - 1 - self._segment_start >= self.warmup_bars

    @property
    def last_timestamp(self) -> int | None:
        return self._prev_ts

    # ------------------------------------------------------------------ updates

    def update(self, candle: Any) -> np.ndarray:
        """Add one closed candle; return its feature row (``n_features`` float64, NaN until warm)."""
        ts, o, h, low, c, v = _candle_values(candle)
        split = False
        if self._prev_ts is not None:
            step = ts - self._prev_ts
            if step <= 0:
                raise DataError(f"candle at {ts} is not after the previous candle at {self._prev_ts}")
            if self.bar_ms is None:
                raise DataError("cannot tell gaps without the bar length: pass timeframe= to FeatureEngineer or "
                                "incremental(), or warm() with at least two candles first")
            missing = step // self.bar_ms - 1
            if step % self.bar_ms or missing > self.max_fill_bars:
                split = True
            else:
                flat = self._prev_close
                for _ in range(missing):
                    self._push(self._prev_ts + self.bar_ms, flat, flat, flat, flat, 0.0)
        if split:
            self._segment_start = self._count
        self._push(ts, o, h, low, c, v)
        return self._row()

    def warm(self, df: pd.DataFrame) -> np.ndarray:
        """Replace the state with candle frame *df* (vectorised); return the feature row of its last candle.

        Warmed from the same history, the rows that follow equal ``transform`` on the history plus the
        new candles bit for bit.
        """
        from trader.features.engineer import candle_columns, extend_candles

        self.reset()
        ts, o, h, low, c, v = candle_columns(df)
        if len(ts) == 0:
            return np.full(self.n_features, np.nan)
        plan = plan_gaps(ts, self.bar_ms, self.max_fill_bars)
        if self.bar_ms is None:
            self.bar_ms = plan.bar_ms
        ext = extend_candles(ts, o, h, low, c, v, plan)
        n = len(ext)
        cp = np.concatenate(([np.nan], ext.close[:-1]))
        tp = (ext.high + ext.low + ext.close) / 3.0
        series = np.empty((kernels.N_SUM_SERIES, n))
        bar = kernels.bar_series(ext.open, ext.high, ext.low, ext.close, ext.volume, cp,
                                 np.concatenate(([np.nan], tp[:-1])), series)
        running = np.cumsum(series, axis=1, out=series)
        tail = np.arange(max(0, n - self._ring), n)
        self._running = running[:, -1].copy()
        self._running_ring[tail % self._ring] = running[:, tail].T
        self._logc_ring[tail % self._ring] = np.log(ext.close)[tail]
        self._r_ring[tail % self._ring] = bar["r"][tail]
        for j, w in enumerate(self.windows):
            for t in range(max(0, n - w), n):
                self._push_extremes(j, w, t, float(ext.high[t]), float(ext.low[t]))
        self._count = n
        self._segment_start = int(np.flatnonzero(ext.segment_start)[-1])
        self._prev_ts = int(ext.ts[-1])
        self._prev_close = float(ext.close[-1])
        self._prev_tp = float(tp[-1])
        last = n - 1
        r = self._r_ring
        kernels.bar_features(ext.ts[last:], ext.open[last:], ext.high[last:], ext.low[last:], ext.close[last:], cp[last:],
                             bar["r"][last:], r[(last - 1) % self._ring:][:1], r[(last - 2) % self._ring:][:1],
                             bar["hl"][last:], bar["clv"][last:], bar["tr"][last:], self._bar_out)
        self._last_bar = (float(ext.close[last]), float(ext.volume[last]), self._bar_out[:, 0].tolist())
        return self._row()

    # ------------------------------------------------------------------ internals

    def _push_extremes(self, j: int, w: int, t: int, h: float, low: float) -> None:
        highs, lows = self._highs[j], self._lows[j]
        while highs and highs[-1][1] <= h:
            highs.pop()
        highs.append((t, h))
        while highs[0][0] <= t - w:
            highs.popleft()
        while lows and lows[-1][1] >= low:
            lows.pop()
        lows.append((t, low))
        while lows[0][0] <= t - w:
            lows.popleft()

    def _push(self, ts: int, o: float, h: float, low: float, c: float, v: float) -> None:
        t = self._count
        ring = self._ring
        series, r, logc, bar_row = kernels.one_bar(ts, o, h, low, c, v, self._prev_close, self._prev_tp,
                                                   float(self._r_ring[(t - 1) % ring]), float(self._r_ring[(t - 2) % ring]))
        self._running += series
        slot = t % ring
        self._running_ring[slot] = self._running
        self._logc_ring[slot] = logc
        self._r_ring[slot] = r
        for j, w in enumerate(self.windows):
            self._push_extremes(j, w, t, h, low)
        self._count = t + 1
        self._prev_ts = ts
        self._prev_close = c
        self._prev_tp = (h + low + c) / 3.0
        self._last_bar = (c, v, bar_row)

    def _row(self) -> np.ndarray:
        t = self._count - 1
        if t - self._segment_start < self.warmup_bars:
            return np.full(self.n_features, np.nan)
        c, v, bar_row = self._last_bar
        ring = self._ring
        lagged = (t - self._w) % ring
        sums = (self._running[:, None] - self._running_ring[lagged].T).tolist()
        window_row = kernels.one_row_windows(self._windows_float, c, v, float(self._logc_ring[t % ring]),
                                             self._logc_ring[lagged].tolist(), sums, [dq[0][1] for dq in self._highs],
                                             [dq[0][1] for dq in self._lows])
        return np.array(bar_row + window_row)
