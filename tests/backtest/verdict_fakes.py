"""Strategies and markets for the verdict tests: exposure without timing, planted skill, a bid-ask bounce.

The strategies are registered through a dist-info folder (see :func:`plugin_env`), found by
``trader`` subprocesses like any installed plugin.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from trader import hookimpl
from trader.types import Signal, SignalAction, StrategyInfo

HERE = Path(__file__).parent
ENTRY_POINTS = """[trader.plugins]
mostly_long = verdict_fakes:MOSTLY_LONG
reverter = verdict_fakes:REVERTER
bounce_buyer = verdict_fakes:BOUNCE_BUYER
"""


def plugin_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH for `trader` subprocesses that finds the strategies below through their entry points."""
    site = tmp_path / "verdict_site"
    dist = site / "trader_verdict_fakes-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-verdict-fakes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    return {"PYTHONPATH": f"{site}:{HERE}"}


def _signals(long: np.ndarray, at) -> list[Signal]:
    return [Signal(SignalAction.BUY, confidence=1.0, size=1.0) if long[i] else Signal(SignalAction.SELL, confidence=1.0,
                                                                                      size=1.0) for i in at]


class MostlyLong:
    """Long about 85 % of the time, flat in stretches chosen by the clock alone: exposure, no timing."""

    name = "mostly_long"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=1)

    @hookimpl
    def trader_generate_signals(self, request):
        hours = request.candles["timestamp"].to_numpy() // 3_600_000
        stretch = hours // 40  # 40-hour stretches, flat in a pseudo-random 15 % of them
        flat = (stretch * 2654435761 % 1000) < 150
        return _signals(~flat, request.at)


class Reverter:
    """Real skill on a market with the planted reversal: long after the last three returns fell."""

    name = "reverter"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=4)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        past3 = np.full(close.size, np.nan)
        past3[3:] = np.log(close[3:] / close[:-3])
        return _signals(past3 < 0, request.at)


class BounceBuyer:
    """Exploits a bid-ask bounce: long after a down bar, flat after an up bar."""

    name = "bounce_buyer"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=2)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        down = np.zeros(close.size, dtype=bool)
        down[1:] = close[1:] < close[:-1]
        return _signals(down, request.at)


MOSTLY_LONG = MostlyLong()
REVERTER = Reverter()
BOUNCE_BUYER = BounceBuyer()


def bull_market(bars: int, drift_per_bar: float, seed: int = 0):
    """The synthetic market with a steady planted uptrend added to every price."""
    from trader.data import synthetic_candles

    candles = synthetic_candles("BULL/USDT", "1h", bars=bars, seed=seed)
    lift = np.exp(drift_per_bar * np.arange(bars))
    for column in ("open", "high", "low", "close"):
        candles[column] = candles[column] * lift
    return candles


def bounce_market(bars: int, bounce_bps: float, seed: int = 0, timeframe: str = "5m"):
    """The synthetic market whose opens and closes are trades at the bid or the ask around the mid (Roll, 1984)."""
    from trader.data import synthetic_candles

    candles = synthetic_candles("BNC/USDT", timeframe, bars=bars, seed=seed)
    rng = np.random.default_rng(seed + 1)
    half = bounce_bps / 20_000.0
    sides = rng.choice(np.array([-1.0, 1.0]), size=(2, bars))
    candles["open"] = candles["open"] * np.exp(half * sides[0])
    candles["close"] = candles["close"] * np.exp(half * sides[1])
    candles["high"] = np.maximum(candles["high"] * math.exp(half), candles[["open", "close"]].max(axis=1))
    candles["low"] = np.minimum(candles["low"] * math.exp(-half), candles[["open", "close"]].min(axis=1))
    return candles


def write_csv(candles, path: Path) -> Path:
    """A CSV ``trader data import`` reads (ISO dates, OHLCV)."""
    frame = candles.copy()
    frame["date"] = np.asarray(frame["timestamp"], dtype="int64").astype("datetime64[ms]").astype(str)
    frame[["date", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path
