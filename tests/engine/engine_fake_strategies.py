"""Strategy plugins for the engine's subprocess tests, loaded through a real entry point.

Every decision depends only on the candle's timestamp, so a restarted run decides exactly
what the interrupted one would have.
"""

from __future__ import annotations

import math
import os
import time

from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.types import RiskLimits

T0 = 1_704_067_200_000  # first bar of the synthetic market
HOUR = 3_600_000
PATIENT = RiskLimits(max_consecutive_losses=10_000, max_drawdown=0.9, daily_loss_limit=0.9, max_errors=1000)


def _bar(request) -> int:
    return int((int(request.candles["timestamp"].iloc[-1]) - T0) // HOUR)


class Fake:
    def __init__(self, name: str, decide, limits: RiskLimits = PATIENT, warmup: int = 0, timeframes=("1h",)) -> None:
        self.name = name
        self.decide = decide
        self.limits = limits
        self.warmup = warmup
        self.timeframes = timeframes

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(
            name=self.name, version="1.0", warmup_bars=self.warmup, risk_limits=self.limits, timeframes=self.timeframes
        )

    @hookimpl
    def trader_generate_signals(self, request):
        return [self.decide(request)]


def _flip(request):
    return Signal(SignalAction.BUY if _bar(request) % 2 == 0 else SignalAction.SELL)


def _raise_every_third(request):
    if _bar(request) % 3 == 2:
        raise RuntimeError("model exploded")
    return _flip(request)


def _flip_seconds(request):
    second = int(request.candles["timestamp"].iloc[-1]) // 1000
    return Signal(SignalAction.BUY if second % 2 == 0 else SignalAction.SELL)


def _nan(request):
    return Signal(SignalAction.BUY, confidence=math.nan)


def _wrong_type(request):
    return "buy"


def _die_at_bar_10(request):
    if _bar(request) >= 10:
        os._exit(3)
    return _flip(request)


def _slow(request):
    time.sleep(0.05)
    return Signal(SignalAction.BUY)


flipper = Fake("flipper", _flip)
raiser = Fake("raiser", _raise_every_third)
nan_signal = Fake("nan_signal", _nan, RiskLimits(max_model_failures=3))
wrong_type = Fake("wrong_type", _wrong_type)
dies = Fake("dies", _die_at_bar_10)
slowpoke = Fake("slowpoke", _slow, RiskLimits(max_inference_ms=20))
warmer = Fake("warmer", _flip, PATIENT, warmup=24)
live_flipper = Fake(
    "live_flipper",
    _flip_seconds,
    RiskLimits(max_position_fraction=0.2, stale_after_bars=60, max_consecutive_losses=10_000, max_drawdown=0.9, daily_loss_limit=0.9),
    timeframes=("1s",),
)

ALL = ["flipper", "raiser", "nan_signal", "wrong_type", "dies", "slowpoke", "warmer", "live_flipper"]
