"""Candle feeds for ``trader run``: a replay of stored (or synthetic) candles, and a live ccxt feed.

A feed yields ``(index, candle, now)``: ``index`` is the candle's row in the series
(the warm-up rule counts rows from the first candle a feed knows), ``candle`` a
validated :class:`~trader.types.Candle`, ``now`` the feed's clock in ms (the candle's close
time in a replay, the wall clock live). A candle that is not after the last processed
one is passed on: the decision step skips it with a warning and a ``DUPLICATE_CANDLE``
event. A row that is not a valid candle is skipped with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from trader.engine.brokers.base import error_text as _short
from trader.errors import DataError, ExchangeError
from trader.timeframes import format_utc, timeframe_to_ms
from trader.types import Candle

__all__ = ["ReplayFeed", "LiveFeed", "FeedItem", "Backoff", "RequestPacer"]

log = logging.getLogger("trader.feed")

FeedItem = tuple[int, Candle, int]


def _candle(row: tuple) -> Candle | None:
    ts, o, h, low, c, v = row
    try:
        return Candle(int(ts), float(o), float(h), float(low), float(c), float(v))
    except ValueError as exc:
        log.warning("candle at %s skipped: %s", ts, exc)
        return None


class ReplayFeed:
    """Plays a candle frame bar by bar, as fast as possible or ``speed`` times real time."""

    name = "replay"

    def __init__(self, candles: Any, timeframe: str, *, speed: float = 0.0, stop: threading.Event | None = None, source: str = "") -> None:
        import numpy as np

        if speed < 0:
            raise DataError(f"--speed must be >= 0 (0 = as fast as possible), got {speed}")
        self.timeframe_ms = timeframe_to_ms(timeframe)
        self.speed = float(speed)
        self.stop = stop or threading.Event()
        self.source = source
        self.frame = candles
        self.timestamps = candles["timestamp"].to_numpy(dtype=np.int64)
        self._rows = candles[["timestamp", "open", "high", "low", "close", "volume"]].to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.timestamps)

    def start_index(self, after_ts: int | None) -> int:
        """Row of the first candle after ``after_ts`` (0 when ``None``)."""
        if after_ts is None:
            return 0
        import numpy as np

        return int(np.searchsorted(self.timestamps, after_ts, side="right"))

    def history(self, start: int) -> Any:
        """The candles before row ``start`` (a frame, for warm-up)."""
        return self.frame.iloc[:start]

    def items(self, start: int = 0) -> Iterator[FeedItem]:
        pause = self.timeframe_ms / 1000 / self.speed if self.speed > 0 else 0.0
        tf = self.timeframe_ms
        for index in range(start, len(self._rows)):
            if self.stop.is_set():
                return
            row = self._rows[index]
            ts = int(self.timestamps[index])
            candle = _candle((ts, *row[1:]))
            if candle is None:
                continue
            yield index, candle, ts + tf
            if pause and self.stop.wait(pause):
                return


class Backoff:
    """The wait after a failed poll: doubles from ``min_s`` up to ``max_s``; a success resets it."""

    def __init__(self, min_s: float = 1.0, max_s: float = 60.0) -> None:
        self.min_s = min_s
        self.max_s = max_s
        self.seconds = 0.0

    def failed(self) -> float:
        self.seconds = min(self.max_s, max(self.min_s, self.seconds * 2))
        return self.seconds

    def reset(self) -> None:
        self.seconds = 0.0


class RequestPacer:
    """Starts each request to one exchange at least ``exchange.rateLimit`` ms after the previous
    one ended (so the exchange sees them at least that far apart), whether or not ccxt's own
    ``enableRateLimit`` is on; a basket's markets share one pacer: no burst of polls."""

    def __init__(self, exchange: Any, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        rate_limit = getattr(exchange, "rateLimit", 0)
        self.interval_s = max(0.0, float(rate_limit) / 1000) if isinstance(rate_limit, (int, float)) else 0.0
        self.stop = stop
        self.clock = clock
        self._last: float | None = None

    def wait(self) -> bool:
        """Wait for the next request's turn; ``False`` when the feed was stopped meanwhile."""
        if self._last is not None:
            remaining = self._last + self.interval_s - self.clock()
            if remaining > 0 and self.stop.wait(remaining):
                return False
        return not self.stop.is_set()

    def done(self) -> None:
        """The request ended (answered or failed): the next waits from now."""
        self._last = self.clock()


class LiveFeed:
    """Polls ccxt for closed candles; backs off on network errors and reports every error.

    ``on_error(code, message)`` is called for each failed poll (the run loop counts it
    towards the error breaker), and with ``STALE_DATA`` when the exchange has sent no new
    candle for more than ``stale_after_bars`` bars (then again for every further
    ``stale_after_bars`` bars of silence). A candle is closed when its close time has passed.
    Requests are spaced by ``pacer`` (the exchange's ``rateLimit``); ``pacer`` and ``backoff``
    are shared by the markets of a basket (:class:`trader.portfolio.feeds.BasketLiveFeed`).
    """

    name = "live"

    def __init__(
        self,
        exchange: Any,
        symbol: str,
        timeframe: str,
        *,
        stop: threading.Event | None = None,
        on_error: Callable[[str, str], None] | None = None,
        poll_s: float | None = None,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        stale_after_bars: float | None = None,
        pacer: RequestPacer | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        if stale_after_bars is not None and not stale_after_bars > 0:
            raise ValueError(f"stale_after_bars must be > 0, got {stale_after_bars}")
        self.exchange = exchange
        self.stale_after_bars = stale_after_bars
        self.symbol = symbol
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_to_ms(timeframe)
        self.stop = stop or threading.Event()
        self.on_error = on_error or (lambda code, message: None)
        self.poll_s = poll_s if poll_s is not None else min(30.0, max(0.5, self.timeframe_ms / 1000 / 10))
        self.backoff = backoff or Backoff(min_backoff_s, max_backoff_s)
        self.pacer = pacer or RequestPacer(exchange, self.stop)
        self.clock = clock
        self.source = f"live {getattr(exchange, 'id', 'exchange')} {symbol} {timeframe}"

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def fetch(self, since: int | None, limit: int) -> list[list[float]] | None:
        """Closed candles from the exchange, oldest first, or ``None`` after an error (reported,
        and backed off) or a stop."""
        import ccxt

        if not self.pacer.wait():
            return None
        try:
            try:
                rows = self.exchange.fetch_ohlcv(self.symbol, self.timeframe, since=since, limit=limit)
            finally:
                self.pacer.done()
        except ccxt.NetworkError as exc:
            self._fail("EXCHANGE_ERROR", f"network error polling {self.symbol}: {type(exc).__name__}: {_short(exc)}")
            return None
        except ccxt.BadSymbol as exc:
            raise ExchangeError(f"the exchange does not list {self.symbol}: {_short(exc)}") from None
        except ccxt.ExchangeError as exc:
            self._fail("EXCHANGE_ERROR", f"exchange error polling {self.symbol}: {type(exc).__name__}: {_short(exc)}")
            return None
        self.backoff.reset()
        now = self.now_ms()
        tf = self.timeframe_ms
        return sorted((r for r in rows or [] if r and r[0] + tf <= now), key=lambda r: r[0])

    def _fail(self, code: str, message: str) -> None:
        wait = self.backoff.failed()
        log.warning("%s; retrying in %.0f s", message, wait)
        self.on_error(code, message)
        self.stop.wait(wait)

    def history(self, bars: int) -> Any:
        """The last ``bars`` closed candles (a frame), retrying until they come or the feed stops."""
        import pandas as pd

        tf = self.timeframe_ms
        since = (self.now_ms() // tf - bars - 1) * tf
        rows: list[list[float]] = []
        while not self.stop.is_set():
            page = self.fetch(since, 1000)
            if page is None:
                continue  # reported and backed off; try again
            page = [r for r in page if r[0] >= since]
            rows.extend(page)
            if len(page) < 2:
                break
            since = int(page[-1][0]) + 1
        rows = rows[-bars:]
        frame = pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])
        frame["timestamp"] = frame["timestamp"].astype("int64")
        for name in ("open", "high", "low", "close", "volume"):
            frame[name] = frame[name].astype("float64")
        return frame

    def items(self, after_ts: int | None, first_index: int) -> Iterator[FeedItem]:
        """Closed candles after ``after_ts``, as they close, numbered from ``first_index``."""
        last = -1 if after_ts is None else after_ts
        index = first_index
        tf = self.timeframe_ms
        reported_silence = 0  # bars of silence already reported
        while not self.stop.is_set():
            rows = self.fetch(last + 1 if last >= 0 else None, 1000)
            if rows is None:
                continue
            if rows:
                reported_silence = 0
            elif last >= 0:
                reported_silence = self.check_silence(last, reported_silence)
            for row in rows:
                candle = _candle(tuple(row[:6]))
                if candle is None:
                    continue
                last = max(last, candle.timestamp)
                yield index, candle, self.now_ms()
                index += 1
                if self.stop.is_set():
                    return
            next_close = (last + 2 * tf) if last >= 0 else self.now_ms() + tf
            wait_s = (next_close - self.now_ms()) / 1000 + 0.25
            self.stop.wait(min(self.poll_s, max(0.2, wait_s)) if rows else max(0.2, min(self.poll_s, wait_s)))

    def check_silence(self, last: int, reported: int) -> int:
        """Report ``STALE_DATA`` when the candles closed since ``last`` went missing for too long;
        returns the bars of silence reported so far."""
        limit = self.stale_after_bars
        if limit is None:
            return reported
        missing = (self.now_ms() - (last + self.timeframe_ms)) // self.timeframe_ms
        if missing > limit and missing >= reported + limit:
            message = (f"no new {self.timeframe} candle for {self.symbol} from the exchange for {missing} bars "
                       f"(the last closed at {format_utc(last + self.timeframe_ms)}); the feed is silent")
            log.warning(message)
            self.on_error("STALE_DATA", message)
            return int(missing)
        return reported
