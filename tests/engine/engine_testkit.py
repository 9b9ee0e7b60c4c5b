"""Helpers for the engine tests: in-process strategies, sessions on real SQLite files, candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.engine import PaperBroker, RiskAuditAgent, TradingSession, TradingState
from trader.plugins import TraderPluginManager
from trader.types import RiskLimits

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


class ScriptedStrategy:
    """A strategy plugin object whose signals come from a list (or raise, when the entry is an exception)."""

    def __init__(self, name: str, script: list | None = None, **info: object) -> None:
        self.name = name
        self.script = list(script or [])
        self.info_kwargs = info

    @hookimpl
    def trader_strategy_info(self) -> StrategyInfo:
        return StrategyInfo(name=self.name, version="1.0", **self.info_kwargs)

    @hookimpl
    def trader_generate_signals(self, request):
        out = []
        for _ in request.at:
            item = self.script.pop(0) if self.script else Signal.hold()
            if isinstance(item, BaseException):
                raise item
            out.append(item)
        return out


def make_session(
    manager: TraderPluginManager,
    directory: Path | None,
    name: str = "buy_and_hold",
    *,
    limits: RiskLimits | None = None,
    broker: PaperBroker | None = None,
    cash: float = 10_000.0,
    band: float = 0.1,
    store=None,
    timeframe: str = "1h",
) -> TradingSession:
    limits = limits or RiskLimits()
    if store is None:
        store = TradingState.open(name, directory / name)
    return TradingSession(
        name,
        "BTC/USDT",
        timeframe,
        limits=limits,
        broker=broker or PaperBroker(fee_bps=10, slippage_bps=0, lot_size=1e-6, min_notional=1.0),
        store=store,
        audit=RiskAuditAgent.for_strategy(manager, name, limits),
        initial_cash=cash,
        rebalance_band=band,
    )


def random_walk(n: int, seed: int = 0, start: float = 100.0, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


BUY = Signal(SignalAction.BUY)
SELL = Signal(SignalAction.SELL)
HOLD = Signal.hold()
