"""``BasketPaperBroker``: one paper broker per market, so each market pays its own spread.

The paper broker estimates the spread per candle from the candles it is shown
(:mod:`trader.costs`); a basket's markets have different spreads at the same time, so
each market gets its own :class:`~trader.engine.brokers.paper.PaperBroker` with the same
fees, slippage, lot and minimum notional. Orders go to the broker of their symbol. An
exchange broker (:class:`~trader.engine.brokers.ccxt_broker.CcxtBroker`) already handles
any symbol and needs no wrapper.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trader.engine.brokers.base import ExchangeAccount, Execution, MarketRules
from trader.engine.brokers.paper import PaperBroker
from trader.errors import StateError
from trader.types import OrderRequest

__all__ = ["BasketPaperBroker"]


class BasketPaperBroker:
    """A :class:`~trader.engine.brokers.base.Broker` routing each order to its market's paper broker."""

    name = "paper"
    needs_intent = False

    def __init__(self, brokers: Mapping[str, PaperBroker]) -> None:
        if not brokers:
            raise StateError("a basket broker needs at least one market")
        self.brokers = dict(brokers)

    @classmethod
    def like(cls, template: PaperBroker, symbols: Iterable[str]) -> BasketPaperBroker:
        """One fresh broker per symbol with ``template``'s fees, slippage, lot and spread model."""
        from trader.costs import SpreadTable

        return cls({symbol: template.with_spreads(SpreadTable(template.costs)) for symbol in symbols})

    def broker(self, symbol: str) -> PaperBroker:
        try:
            return self.brokers[symbol]
        except KeyError:
            raise StateError(f"{symbol!r} is not a market of this basket ({', '.join(self.brokers)})") from None

    @property
    def costs(self) -> Any:
        return next(iter(self.brokers.values())).costs

    def market_rules(self, symbol: str) -> MarketRules:
        return self.broker(symbol).market_rules(symbol)

    def execute(self, order: OrderRequest, *, cash: float, now: int) -> Execution:
        return self.broker(order.symbol).execute(order, cash=cash, now=now)

    def find_order(self, order: OrderRequest) -> Execution | None:
        return None

    def exchange_account(self, symbol: str) -> ExchangeAccount | None:
        return None

    def watch_candles(self, candles: Any, symbol: str | None = None) -> None:
        """Learn ``symbol``'s candle frame (every market's, when ``candles`` maps symbols to frames)."""
        if isinstance(candles, Mapping):
            for sym, frame in candles.items():
                self.broker(sym).watch_candles(frame)
        elif symbol is not None:
            self.broker(symbol).watch_candles(candles)

    def watch_candle(self, candle: Any, symbol: str | None = None) -> None:
        if symbol is not None:
            self.broker(symbol).watch_candle(candle)

    def costs_line(self) -> str | None:
        lines = [f"{symbol}: {line}" for symbol, b in self.brokers.items() if (line := b.costs_line())]
        return "; ".join(lines) or None

    def close(self) -> None:
        for broker in self.brokers.values():
            broker.close()
