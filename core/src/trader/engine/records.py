"""What the engine records: orders, risk events, one step's record and a store's saved state.

These are the values that cross between the decision step (:mod:`trader.engine.step`)
and a state store (:mod:`trader.engine.state`, :mod:`trader.engine.memory`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
from attrs import field, frozen

from trader.types import Fill, OrderRequest, Position, TradingStatus

__all__ = [
    "OrderStatus",
    "OrderRecord",
    "RiskEvent",
    "FillRecord",
    "StepRecord",
    "SavedState",
]


class OrderStatus:
    """Life of an order in the store."""

    SUBMITTING = "submitting"  # recorded before it is sent to an external broker
    OPEN = "open"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    DENIED = "denied"  # by the risk audit: never sent
    REJECTED = "rejected"  # by the broker or exchange
    ERROR = "error"  # the broker could not tell; counted by the error breaker
    CANCELED = "canceled"

    FINAL = frozenset({FILLED, DENIED, REJECTED, CANCELED})


@frozen
class OrderRecord:
    """An order and what became of it."""

    order: OrderRequest
    status: str
    filled_quantity: float = 0.0
    exchange_order_id: str | None = None
    message: str = ""


@frozen
class FillRecord:
    """A fill and the profit it realised (sells) in the quote currency, net of fees."""

    fill: Fill
    realized_pnl: float = 0.0


@frozen
class RiskEvent:
    """Something the risk side of the engine wants remembered: a verdict, a breaker, a failure.

    ``kind`` is one of ``audit`` (one row per reason of an audit), ``status`` (a status
    change), ``signal`` (an invalid signal or a plugin failure), ``error`` (an order or
    exchange error, counted by the error breaker), ``alert`` (latency over budget, stale
    data), ``data`` (a skipped candle) and ``control`` (a resume).
    """

    timestamp: int
    kind: str
    code: str
    message: str = ""
    client_order_id: str | None = None
    approved: bool | None = None
    status: TradingStatus | None = None


class StepRecord:
    """Everything one decision step changed, committed by the store in ONE transaction.

    A plain slotted class (no validation): one is built per candle on the hot path.
    ``positions`` holds ``symbol -> (quantity, avg_price, realized_pnl, mark)`` for the
    symbols the step touched. ``skipped`` says why a candle was not processed
    (``duplicate``, ``out-of-order``; ``manual`` and ``error`` for records that are not
    candles); ``note`` why a signal did not become an order (``TRADING_HALTED``,
    ``REDUCE_ONLY``).
    """

    __slots__ = (
        "symbol",
        "timeframe",
        "timestamp",
        "close",
        "action",
        "orders",
        "fills",
        "events",
        "cash",
        "equity",
        "position_value",
        "positions",
        "fees_paid",
        "realized_pnl",
        "peak_equity",
        "day",
        "day_start_equity",
        "status",
        "status_reason",
        "status_since",
        "consecutive_losses",
        "model_failures",
        "inference_ms",
        "skipped",
        "note",
    )

    def __init__(self, symbol: str, timeframe: str, timestamp: int, close: float) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.timestamp = timestamp
        self.close = close
        self.action: str | None = None
        self.orders: list[OrderRecord] = []
        self.fills: list[FillRecord] = []
        self.events: list[RiskEvent] = []
        self.cash = 0.0
        self.equity = 0.0
        self.position_value = 0.0
        self.positions: dict[str, tuple[float, float, float, float]] = {}
        self.fees_paid = 0.0
        self.realized_pnl = 0.0
        self.peak_equity = 0.0
        self.day = 0
        self.day_start_equity = 0.0
        self.status = TradingStatus.ACTIVE
        self.status_reason = ""
        self.status_since: int | None = None
        self.consecutive_losses = 0
        self.model_failures = 0
        self.inference_ms: float | None = None
        self.skipped: str | None = None
        self.note: str | None = None

    def __repr__(self) -> str:
        return (
            f"StepRecord({self.symbol} {self.timestamp} close={self.close} action={self.action} "
            f"orders={len(self.orders)} fills={len(self.fills)} equity={self.equity:.2f} status={self.status.value})"
        )


@frozen
class SavedState:
    """A strategy's account as a store last committed it."""

    initial_cash: float
    cash: float
    positions: Mapping[str, Position] = field(factory=dict)
    marks: Mapping[str, float] = field(factory=dict)
    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    peak_equity: float = 0.0
    day: int | None = None
    day_start_equity: float = 0.0
    status: TradingStatus = TradingStatus.ACTIVE
    status_reason: str = ""
    status_since: int | None = None
    consecutive_losses: int = 0
    model_failures: int = 0
    #: Timestamps (feed clock, ms) of order/exchange errors since the last resume.
    error_times: tuple[int, ...] = field(default=(), converter=tuple)
    #: Last processed candle (open time, ms) of the requested symbol and timeframe.
    last_candle_ts: int | None = None

    def equity(self) -> float:
        return self.cash + sum(p.quantity * self.marks.get(s, p.avg_price) for s, p in self.positions.items())

    def evolve(self, **changes: Any) -> SavedState:
        return attrs.evolve(self, **changes)
