"""What the engine records: orders, risk events, one step's record and a store's saved state.

These are the values that cross between the decision step (:mod:`trader.engine.step`)
and a state store (:mod:`trader.engine.state`, :mod:`trader.engine.memory`).
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any, NamedTuple

import attrs
from attrs import field, frozen

from trader.types import Fill, OrderRequest, Position, TradingStatus

__all__ = [
    "OrderStatus",
    "OrderRecord",
    "RiskEvent",
    "FillRecord",
    "AccountFigures",
    "PositionFigures",
    "MarketFigures",
    "StepRecord",
    "SavedState",
    "ControlRequest",
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


class AccountFigures(NamedTuple):
    """The account after a step, beside cash and positions: what a store writes to its ``account`` row."""

    fees_paid: float = 0.0
    realized_pnl: float = 0.0
    peak_equity: float = 0.0
    day: int = 0
    day_start_equity: float = 0.0
    status: TradingStatus = TradingStatus.ACTIVE
    status_reason: str = ""
    status_since: int | None = None
    consecutive_losses: int = 0
    model_failures: int = 0


class PositionFigures(NamedTuple):
    """One symbol's position after a step, and the price it was marked at."""

    quantity: float
    avg_price: float
    realized_pnl: float
    mark: float


class MarketFigures(NamedTuple):
    """One market of a portfolio step that had a closed candle: its close and the position's value."""

    symbol: str
    close: float
    quantity: float
    position_value: float


class ControlRequest(NamedTuple):
    """A request from another process (``trader resume``) waiting for the running one."""

    id: int
    command: str
    note: str = ""


_NO_ACCOUNT = AccountFigures()


class StepRecord:
    """Everything one decision step changed, committed by the store in ONE transaction.

    A plain class, built once per candle on the hot path: the fields a step rarely sets
    are class-level defaults (empty tuples, ``None``), replaced on the instance when set
    (``record.events += (event,)``). ``positions`` maps the session's symbol to its
    :class:`PositionFigures`; ``account`` holds the :class:`AccountFigures`, also readable
    as properties of the record (``record.status``). ``skipped`` says why a candle was not
    processed (``duplicate``, ``out-of-order``; ``manual``, ``reconcile``, ``event`` and
    ``error`` for records that are not candles); ``note`` why a signal did not become an
    order (``TRADING_HALTED``, ``REDUCE_ONLY``).
    """

    action: str | None = None
    orders: tuple[OrderRecord, ...] = ()
    fills: tuple[FillRecord, ...] = ()
    events: tuple[RiskEvent, ...] = ()
    cash: float = 0.0
    equity: float = 0.0
    position_value: float = 0.0
    positions: Mapping[str, PositionFigures] = types.MappingProxyType({})
    account: AccountFigures = _NO_ACCOUNT
    inference_ms: float | None = None
    skipped: str | None = None
    note: str | None = None
    #: A portfolio step: the markets that had a closed candle at ``timestamp`` (the store advances
    #: their streams and keeps their rows); empty for a single-market step.
    markets: tuple[MarketFigures, ...] = ()

    def __init__(self, symbol: str, timeframe: str, timestamp: int, close: float) -> None:
        self.symbol = symbol
        self.timeframe = timeframe
        self.timestamp = timestamp
        self.close = close

    @property
    def fees_paid(self) -> float:
        return self.account.fees_paid

    @property
    def realized_pnl(self) -> float:
        return self.account.realized_pnl

    @property
    def peak_equity(self) -> float:
        return self.account.peak_equity

    @property
    def day(self) -> int:
        return self.account.day

    @property
    def day_start_equity(self) -> float:
        return self.account.day_start_equity

    @property
    def status(self) -> TradingStatus:
        return self.account.status

    @property
    def status_reason(self) -> str:
        return self.account.status_reason

    @property
    def status_since(self) -> int | None:
        return self.account.status_since

    @property
    def consecutive_losses(self) -> int:
        return self.account.consecutive_losses

    @property
    def model_failures(self) -> int:
        return self.account.model_failures

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
