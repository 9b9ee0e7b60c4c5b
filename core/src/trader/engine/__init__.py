"""The trading engine: per-strategy state, the risk audit, brokers, feeds and the run loop.

The seam shared by ``trader run`` and backtests is :class:`TradingSession`, the
per-candle decision step::

    from trader.engine import backtest_session, first_signal_row

    session = backtest_session(manager, "my_strategy", "BTC/USDT", "1h", config=config)
    session.run(timestamps, closes, signals)          # signals[i]: Signal | exception | None
    store = session.store                             # MemoryState: equities, fills, orders, events

``trader run`` builds the same session on a :class:`TradingState` (SQLite) and calls
``session.process(candle, signal, inference_ms=...)`` for each closed candle as it
arrives. Both end in :meth:`TradingSession.step`: mark, breakers, signal -> order,
risk audit, broker, fills, and one store commit. See ``docs/engine.md``.

Importing this package is light (sqlite3, no pandas); feeds, the runner and the ccxt
broker import their heavy libraries when used.
"""

from __future__ import annotations

from trader.engine.book import Book
from trader.engine.brokers.base import Broker, ExchangeAccount, Execution, MarketRules
from trader.engine.brokers.paper import PAPER_DEFAULTS, PaperBroker
from trader.engine.factory import (
    backtest_session,
    first_signal_row,
    initial_cash,
    paper_broker,
    rebalance_band,
    strategy_limits,
)
from trader.engine.memory import MemoryState
from trader.engine.reconcile import reconcile
from trader.engine.records import (
    AccountFigures,
    ControlRequest,
    FillRecord,
    OrderRecord,
    OrderStatus,
    PositionFigures,
    RiskEvent,
    SavedState,
    StepRecord,
)
from trader.engine.risk import AuditDecision, RiskAuditAgent, RiskCode, core_verdicts, state_verdicts
from trader.engine.state import TradingState
from trader.engine.step import DEFAULT_REBALANCE_BAND, TradingSession, client_order_id
from trader.engine.store import BulkStore, StateStore

__all__ = [
    "AccountFigures",
    "AuditDecision",
    "Book",
    "Broker",
    "BulkStore",
    "ControlRequest",
    "ExchangeAccount",
    "DEFAULT_REBALANCE_BAND",
    "Execution",
    "FillRecord",
    "MarketRules",
    "MemoryState",
    "OrderRecord",
    "OrderStatus",
    "PAPER_DEFAULTS",
    "PaperBroker",
    "PositionFigures",
    "RiskAuditAgent",
    "RiskCode",
    "RiskEvent",
    "SavedState",
    "StateStore",
    "StepRecord",
    "TradingSession",
    "TradingState",
    "backtest_session",
    "client_order_id",
    "core_verdicts",
    "first_signal_row",
    "initial_cash",
    "paper_broker",
    "reconcile",
    "rebalance_band",
    "state_verdicts",
    "strategy_limits",
]
