"""``BasketLiveFeed``: the closed candles of every market of a basket, live from ccxt, on one timeline.

Each market is polled by its own :class:`~trader.engine.feeds.LiveFeed` (its closed-candle
rule, error reporting with back-off and ``STALE_DATA`` detection), all sharing one
:class:`~trader.engine.feeds.RequestPacer`, so the basket's requests are spaced by the
exchange's ``rateLimit`` and never burst, and one back-off. A market is polled only when a
candle can have closed: when its next candle's close time has passed (then again every
``poll_s`` while that candle is late), and a market with no candle yet once per bar.

:meth:`BasketLiveFeed.items` yields each time of the timeline once, in order, with the closed
candles of the markets that have one at that time. A time is yielded when every market that
has traded before has either its candle at that time, a later candle (a gap: it has none at
that time), or was polled ``grace_s`` after the candle's close without sending it (late: it
is not traded at that time). A candle at or before a yielded time is skipped when it arrives
later, never replayed out of order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from trader.engine.feeds import Backoff, LiveFeed, RequestPacer, _candle
from trader.timeframes import format_utc, timeframe_to_ms
from trader.types import Candle

__all__ = ["BasketLiveFeed", "BasketItem"]

log = logging.getLogger("trader.feed")

#: ``(timestamp, {symbol: closed candle opened at timestamp}, now_ms)``
BasketItem = tuple[int, dict[str, Candle], int]


class BasketLiveFeed:
    """Polls every market of a basket for closed candles and yields them on the union timeline.

    ``on_error(code, message)`` gets each failed poll (``EXCHANGE_ERROR``) and each silent
    market (``STALE_DATA`` after ``stale_after_bars`` bars without a candle), naming the market.
    ``grace_s`` is how long after a candle's close a market may be late before the time is
    traded without it (default: ``2 * poll_s``, at least 1 s and at most 60 s).
    """

    name = "live"

    def __init__(
        self,
        exchange: Any,
        symbols: Iterable[str],
        timeframe: str,
        *,
        stop: threading.Event | None = None,
        on_error: Callable[[str, str], None] | None = None,
        stale_after_bars: float | None = None,
        poll_s: float | None = None,
        grace_s: float | None = None,
        min_backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.symbols = tuple(sorted(dict.fromkeys(symbols)))
        if not self.symbols:
            raise ValueError("a basket feed needs at least one market")
        self.exchange = exchange
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_to_ms(timeframe)
        self.stop = stop or threading.Event()
        self.clock = clock
        self.pacer = RequestPacer(exchange, self.stop)
        backoff = Backoff(min_backoff_s, max_backoff_s)
        self.markets = {
            symbol: LiveFeed(
                exchange, symbol, timeframe, stop=self.stop, on_error=on_error, poll_s=poll_s, clock=clock,
                stale_after_bars=stale_after_bars, pacer=self.pacer, backoff=backoff,
            )
            for symbol in self.symbols
        }
        self.poll_s = self.markets[self.symbols[0]].poll_s
        self.grace_s = grace_s if grace_s is not None else min(60.0, max(1.0, 2 * self.poll_s))
        if not self.grace_s >= 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s}")
        self.source = f"live {getattr(exchange, 'id', 'exchange')} {', '.join(self.symbols)} {timeframe}"

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def history(self, bars: int) -> dict[str, Any]:
        """Each market's last ``bars`` closed candles (a frame; empty for a market not listed yet)."""
        return {symbol: feed.history(bars) for symbol, feed in self.markets.items()}

    def start_after(self, after: Mapping[str, int | None]) -> int:
        """The time :meth:`items` starts after: the latest of ``after``; with none (a new account),
        just before the latest closed candle, which is then the first time yielded."""
        known = [int(ts) for ts in after.values() if ts is not None]
        if known:
            return max(known)
        tf = self.timeframe_ms
        return (self.now_ms() // tf - 2) * tf

    def items(self, after: Mapping[str, int | None]) -> Iterator[BasketItem]:
        """The timeline's times after :meth:`start_after` (``after``: each market's last processed
        candle), as their candles close, until the feed is stopped."""
        return _Timeline(self, after).run()


class _Timeline:
    """The state of one :meth:`BasketLiveFeed.items` iteration."""

    def __init__(self, feed: BasketLiveFeed, after: Mapping[str, int | None]) -> None:
        self.feed = feed
        self.tf = feed.timeframe_ms
        self.grace_ms = int(feed.grace_s * 1000)
        self.cursor = feed.start_after(after)
        # the newest candle seen per market (None: none yet), and per market the feed's silence report
        self.last: dict[str, int | None] = {s: _ms(after.get(s)) for s in feed.symbols}
        self.silence = dict.fromkeys(feed.symbols, 0)
        self.due = dict.fromkeys(feed.symbols, 0)  # when to poll each market next (ms): at once
        self.polled = dict.fromkeys(feed.symbols, -1)  # when each market's last complete poll started
        self.pending: dict[int, dict[str, Candle]] = {}

    def run(self) -> Iterator[BasketItem]:
        feed = self.feed
        stop = feed.stop
        while not stop.is_set():
            for symbol in feed.symbols:
                if self.due[symbol] <= feed.now_ms():
                    self._poll(symbol)
                    if stop.is_set():
                        return
            while self.pending:
                ts = min(self.pending)
                if not self._settled(ts):
                    break
                candles = self.pending.pop(ts)
                self.cursor = ts
                yield ts, dict(sorted(candles.items())), feed.now_ms()
                if stop.is_set():
                    return
            stop.wait(self._pause_s())

    def _poll(self, symbol: str) -> None:
        feed = self.feed
        tf = self.tf
        market = feed.markets[symbol]
        last = self.last[symbol]
        since = max(self.cursor, last if last is not None else self.cursor) + 1
        started = feed.now_ms()
        limit = int(min(1000, max(2, (started - since) // tf + 2)))
        rows = market.fetch(since, limit)
        if rows is None:  # failed (reported, backed off) or stopped: a late market for the grace rule
            self.polled[symbol] = started
            self.due[symbol] = feed.now_ms()
            return
        for row in rows:
            candle = _candle(tuple(row[:6]))
            if candle is None or (last is not None and candle.timestamp <= last):
                continue
            last = candle.timestamp
            if candle.timestamp <= self.cursor:
                log.warning("%s: the %s candle at %s came after its time was traded without it; skipped",
                            symbol, feed.timeframe, format_utc(candle.timestamp))
                continue
            self.pending.setdefault(candle.timestamp, {})[symbol] = candle
        self.last[symbol] = last
        if len(rows) >= limit:  # a full page: more are waiting
            self.due[symbol] = feed.now_ms()
            return
        self.polled[symbol] = started
        if last is None:  # not listed yet: once per bar
            self.due[symbol] = (started // tf + 1) * tf + self._settle_ms()
        elif rows:
            self.silence[symbol] = 0
            self.due[symbol] = last + 2 * tf + self._settle_ms()  # when its next candle closes
        else:
            self.silence[symbol] = market.check_silence(last, self.silence[symbol])
            expected = last + 2 * tf + self._settle_ms()
            self.due[symbol] = max(expected, started + int(feed.poll_s * 1000))

    def _settle_ms(self) -> int:
        """A moment after a close for the exchange to publish the candle."""
        return min(250, self.tf // 10)

    def _settled(self, ts: int) -> bool:
        """Whether every market that has traded is known to have, or to lack, a candle at ``ts``."""
        here = self.pending[ts]
        deadline = ts + self.tf + self.grace_ms
        for symbol in self.feed.symbols:
            last = self.last[symbol]
            if symbol in here or last is None or last > ts or self.polled[symbol] >= deadline:
                continue
            return False
        return True

    def _pause_s(self) -> float:
        now = self.feed.now_ms()
        wake = min(self.due.values())
        if self.pending:
            wake = min(wake, min(self.pending) + self.tf + self.grace_ms)
        return min(self.feed.poll_s, max(0.01, (wake - now) / 1000))


def _ms(value: int | None) -> int | None:
    return None if value is None else int(value)
