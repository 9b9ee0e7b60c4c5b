"""Aligning a basket's markets on one timeline without inventing bars.

The timeline is the union of the markets' candle open times. At each time a market
either has a closed candle (it *trades*) or it has none: before its listing, in a gap of
its data, after it was delisted. Nothing is filled in: a market without a candle at ``t``
is not traded at ``t`` and keeps its last traded close as its mark, and when it comes
back its next real candle is the next thing the engine sees of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs
import numpy as np
import pandas as pd

from trader.errors import DataError

__all__ = ["Basket", "align"]


@attrs.frozen
class Basket:
    """Several markets' candles on their union timeline.

    ``timestamps`` (T,) the timeline; ``closes`` (T, M) each market's close, NaN where it has
    no candle; ``rows`` (T, M) the row of that candle in the market's own frame, -1 where none
    (read-only). Markets are in symbol order.
    """

    symbols: tuple[str, ...]
    timeframe: str
    frames: Mapping[str, pd.DataFrame]
    timestamps: np.ndarray
    closes: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.timestamps.size)

    def trading(self, i: int) -> dict[str, float]:
        """The closes of the markets that have a candle at timeline position ``i``."""
        row = self.closes[i]
        return {symbol: float(row[j]) for j, symbol in enumerate(self.symbols) if row[j] == row[j]}

    def steps(self, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, int, dict[str, float]]]:
        """``(position, timestamp, closes)`` for each point of the timeline in ``[start, stop)``."""
        symbols = self.symbols
        closes = self.closes
        for i in range(start, len(self) if stop is None else stop):
            row = closes[i]
            yield i, int(self.timestamps[i]), {symbols[j]: float(row[j]) for j in range(len(symbols)) if row[j] == row[j]}

    def index_at_or_after(self, timestamp: int) -> int:
        """The first timeline position at or after ``timestamp``."""
        return int(np.searchsorted(self.timestamps, timestamp, side="left"))

    def first_rows(self) -> dict[str, int]:
        """The timeline position of each market's first candle."""
        return {s: int(np.argmax(self.rows[:, j] >= 0)) for j, s in enumerate(self.symbols)}


def align(frames: Mapping[str, pd.DataFrame], timeframe: str) -> Basket:
    """Put ``frames`` (symbol -> candles, ``timestamp`` ascending and unique) on their union timeline."""
    if not frames:
        raise DataError("a basket needs at least one market")
    symbols = tuple(sorted(frames))
    stamps = []
    for symbol in symbols:
        frame = frames[symbol]
        ts = frame["timestamp"].to_numpy(dtype=np.int64)
        if ts.size == 0:
            raise DataError(f"{symbol} has no candles")
        if ts.size > 1 and not bool(np.all(np.diff(ts) > 0)):
            raise DataError(f"{symbol}: candle timestamps must be strictly increasing")
        stamps.append(ts)
    # markets on one clock (the common case) share their timeline: no union to sort out
    shared = all(ts.size == stamps[0].size and np.array_equal(ts, stamps[0]) for ts in stamps[1:])
    timeline = stamps[0].copy() if shared else np.unique(np.concatenate(stamps))
    closes = np.full((timeline.size, len(symbols)), np.nan)
    if shared:  # every market's row i at position i: one read-only column repeated, no (T, M) array
        rows = np.broadcast_to(np.arange(timeline.size, dtype=np.int64)[:, None], closes.shape)
    else:
        rows = np.full((timeline.size, len(symbols)), -1, dtype=np.int64)
    for j, (symbol, ts) in enumerate(zip(symbols, stamps, strict=True)):
        where = slice(None) if shared else np.searchsorted(timeline, ts)
        closes[where, j] = frames[symbol]["close"].to_numpy(dtype=np.float64)
        if not shared:
            rows[where, j] = np.arange(ts.size)
    rows.flags.writeable = False
    return Basket(symbols, timeframe, {s: frames[s] for s in symbols}, timeline, closes, rows)
