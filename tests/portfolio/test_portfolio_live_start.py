"""A live basket's start: the markets' histories are fetched one after another, so a candle that closes
in between is in some of them only. It must come from the feed for every market, never be skipped for
the markets fetched first."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pandas as pd

import trader.portfolio.feeds as feeds
from trader.portfolio.runner import PortfolioRunner

HOUR = 3_600_000
T0 = 1_704_067_200_000


def _frame(n: int, start: int = T0) -> pd.DataFrame:
    ts = [start + i * HOUR for i in range(n)]
    return pd.DataFrame({"timestamp": ts, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0})


class _Feed:
    """Histories as a slow start fetched them: AAA before the hour closed, BBB after; ZZZ silent for long."""

    seen_after: dict | None = None

    def __init__(self, exchange, symbols, timeframe, **kwargs) -> None:
        self.source = "fake"

    def history(self, bars: int) -> dict[str, pd.DataFrame]:
        return {"AAA/USDT": _frame(10), "BBB/USDT": _frame(11), "ZZZ/USDT": _frame(3, T0 - 100 * HOUR)}

    def now_ms(self) -> int:
        return T0 + 12 * HOUR

    def items(self, after):
        _Feed.seen_after = dict(after)
        return iter(())


def test_a_candle_that_closed_between_two_fetches_comes_from_the_feed_for_every_market(monkeypatch):
    monkeypatch.setattr(feeds, "BasketLiveFeed", _Feed)
    warmed: dict[str, int] = {}
    runner = PortfolioRunner.__new__(PortfolioRunner)
    runner.symbols = ("AAA/USDT", "BBB/USDT", "ZZZ/USDT")
    runner.options = SimpleNamespace(timeframe="1h")
    runner.stop = threading.Event()
    runner._info = SimpleNamespace(warmup_bars=0, feature_windows=())
    runner.exchange = lambda: None
    session = SimpleNamespace(limits=SimpleNamespace(stale_after_bars=2.0), broker=SimpleNamespace(watch_candles=lambda f: None),
                              last_timestamp=None, timeframe_ms=HOUR, record_error=lambda *a: None)
    signals = SimpleNamespace(warm=lambda symbol, frame: warmed.__setitem__(symbol, len(frame)))
    steps, source = runner._live_steps(session, signals)
    first = list(steps)
    # the newest common candle (AAA's last, 09:00) is the first step, for both up-to-date markets;
    # BBB's 10:00 candle, which AAA's fetch did not have yet, is left to the feed
    assert [(ts, sorted(candles)) for _, ts, candles, _ in first] == [(T0 + 9 * HOUR, ["AAA/USDT", "BBB/USDT"])]
    assert _Feed.seen_after == {"AAA/USDT": T0 + 9 * HOUR, "BBB/USDT": T0 + 9 * HOUR, "ZZZ/USDT": T0 - 98 * HOUR}
    assert warmed == {"AAA/USDT": 9, "BBB/USDT": 9, "ZZZ/USDT": 3}  # a market silent for long only warms up
