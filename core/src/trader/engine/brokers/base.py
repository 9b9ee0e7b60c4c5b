"""What every broker offers the engine: market rules, order execution and the exchange's facts.

A broker reports; the engine decides. :func:`trader.engine.reconcile.reconcile` asks a
broker what became of orders a crash left ``submitting`` (:meth:`Broker.find_order`) and
what the exchange holds (:meth:`Broker.exchange_account`), then books and reports it
through the session: no broker writes to a session or a store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from attrs import field, frozen

from trader.engine.records import OrderStatus
from trader.types import Fill, OrderRequest

if TYPE_CHECKING:
    import pandas as pd

    from trader.types import Candle

__all__ = ["Broker", "MarketRules", "Execution", "ExchangeAccount", "error_text"]


def _non_negative(instance: object, attribute: object, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{attribute.name} must be a finite number >= 0, got {value!r}")  # type: ignore[attr-defined]


@frozen
class MarketRules:
    """How orders for one symbol must look, and what they cost.

    ``lot_size`` is the quantity step (0 means any quantity), ``min_notional`` the smallest
    order value the market accepts, ``fee_rate`` and ``slippage_rate`` fractions (10 bps =
    0.001) used to size buys so that their cost never exceeds the cash.
    """

    lot_size: float = field(default=0.0, validator=_non_negative)
    min_notional: float = field(default=0.0, validator=_non_negative)
    fee_rate: float = field(default=0.0, validator=_non_negative)
    slippage_rate: float = field(default=0.0, validator=_non_negative)

    @property
    def buy_cost_factor(self) -> float:
        """Cash a buy of notional 1 (at the reference price) may cost, fees and slippage included."""
        return (1 + self.slippage_rate) * (1 + self.fee_rate)

    def round_quantity(self, quantity: float) -> float:
        """``quantity`` rounded DOWN to the lot step (never up: rounding must not overspend)."""
        if quantity <= 0:
            return 0.0
        lot = self.lot_size
        if lot <= 0:
            return quantity
        steps = math.floor(quantity / lot + 1e-9)
        decimals = max(0, -math.floor(math.log10(lot))) + 2
        return round(steps * lot, decimals)


def _fills(value: Iterable[Fill]) -> tuple[Fill, ...]:
    return tuple(value)


def _client_ids(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@frozen
class Execution:
    """What a broker did with an order: its status, the fills, and a message when it failed."""

    status: str
    fills: tuple[Fill, ...] = field(default=(), converter=_fills)
    message: str = ""
    exchange_order_id: str | None = None

    @property
    def filled_quantity(self) -> float:
        return sum(f.quantity for f in self.fills)

    @property
    def failed(self) -> bool:
        """Rejections and errors count towards the error breaker."""
        return self.status in (OrderStatus.REJECTED, OrderStatus.ERROR)

    @classmethod
    def rejected(cls, message: str) -> Execution:
        return cls(OrderStatus.REJECTED, (), message)

    @classmethod
    def error(cls, message: str) -> Execution:
        return cls(OrderStatus.ERROR, (), message)


@frozen
class ExchangeAccount:
    """What the exchange holds for one symbol: the base currency in total, the quote currency free,
    and the client ids of open orders that trader placed (``trd-...``)."""

    base: str
    quote: str
    base_total: float
    quote_free: float
    open_orders: tuple[str, ...] = field(default=(), converter=_client_ids)


@runtime_checkable
class Broker(Protocol):
    """A broker executes audited orders and reports what the exchange did and holds.

    ``needs_intent`` is true for brokers with effects outside this process (an exchange):
    the engine then commits the order as ``submitting`` before calling :meth:`execute`, and
    :meth:`execute` must look an order up by its client order id before sending it, so a
    restart never submits twice.
    """

    name: str
    needs_intent: bool

    def market_rules(self, symbol: str) -> MarketRules:
        """Lot size, minimum notional, fee and slippage rates of ``symbol``."""

    def execute(self, order: OrderRequest, *, cash: float, now: int) -> Execution:
        """Execute ``order`` with at most ``cash`` to spend; ``now`` is the feed's clock (ms)."""

    def find_order(self, order: OrderRequest) -> Execution | None:
        """What the exchange did with ``order`` (by its client id); ``None`` when it never got it.
        Raises :class:`~trader.errors.ExchangeError` when the exchange cannot say."""

    def exchange_account(self, symbol: str) -> ExchangeAccount | None:
        """The exchange's balances and open orders for ``symbol``; ``None`` for a broker with
        nothing outside the process. Raises :class:`~trader.errors.ExchangeError` when unreachable."""

    def watch_candles(self, candles: pd.DataFrame) -> None:
        """Learn from a frame of candles before trading (the paper broker estimates its spread)."""

    def watch_candle(self, candle: Candle) -> None:
        """Learn one more closed candle of the feed."""

    def costs_line(self) -> str | None:
        """What its fills pay, for the run's log; ``None`` when the exchange sets it."""

    def close(self) -> None:
        """Release connections; nothing is called afterwards."""


def error_text(exc: BaseException, limit: int = 300) -> str:
    """An exception's text for logs and the state store: shortened, API credentials masked."""
    import os

    from trader.config import SECRET_ENV

    text = str(exc)
    for name in SECRET_ENV:
        secret = os.environ.get(name)
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= limit else text[:limit] + "..."
