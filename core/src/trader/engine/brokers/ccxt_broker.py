"""``CcxtBroker``: real market orders through ccxt, safe to restart.

Only ``trader run --feed live --live`` with API keys in the environment builds one.

- Every order carries the engine's deterministic client order id (``newClientOrderId``
  on Binance, ``clientOrderId`` elsewhere), and the engine commits it as ``submitting``
  before this broker sends it.
- :meth:`CcxtBroker.execute` first asks the exchange for that client id: an order that
  already exists (sent before a crash) is never sent again; its fills are booked.
- After a timeout or a network error while sending, the broker looks the order up by
  its client id (polling for ``lookup_s`` seconds) before it retries; a retry with the
  same client id that the exchange refuses as a duplicate is looked up again.
- Market buys spend a quote amount (``quoteOrderQty``/``cost``) where the exchange
  supports it, so a buy never costs more than the audited notional.
- Fees charged in the base asset (Binance's default for buys) reduce the quantity
  received and are booked in the quote currency at the fill price; fees in a third
  currency (BNB) cannot be valued and are booked as 0 with a warning.
- On start, the engine's reconciliation (:func:`trader.engine.reconcile.reconcile`) asks
  :meth:`CcxtBroker.find_order` about orders a crash left ``submitting`` and
  :meth:`CcxtBroker.exchange_account` for the balances and open orders; the broker only
  reports, the engine books and compares.
- One broker serves every market of a basket: rules, orders, look-ups, trades and open orders
  are all asked for the order's own market, and a failed order's message names it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from trader.engine.brokers.base import ExchangeAccount, Execution, MarketRules
from trader.engine.brokers.base import error_text as _short
from trader.engine.records import OrderStatus
from trader.errors import ExchangeError
from trader.types import Fill, OrderRequest, Side

if TYPE_CHECKING:
    import pandas as pd

    from trader.types import Candle

__all__ = ["CcxtBroker"]

log = logging.getLogger("trader.broker")


class CcxtBroker:
    """Executes audited orders on a ccxt exchange. ``slippage_rate`` only sizes amount-based buys."""

    name = "ccxt"
    needs_intent = True

    def __init__(
        self,
        exchange: Any,
        *,
        strategy: str,
        slippage_rate: float = 0.005,
        lookup_s: float = 10.0,
        retries: int = 2,
        sleep: Any = time.sleep,
    ) -> None:
        self.exchange = exchange
        self.strategy = strategy
        self.slippage_rate = slippage_rate
        self.lookup_s = lookup_s
        self.retries = retries
        self._sleep = sleep
        self._markets_loaded = False

    # ------------------------------------------------------------------ markets

    def _market(self, symbol: str) -> dict[str, Any]:
        import ccxt

        if not self._markets_loaded:
            try:
                self.exchange.load_markets()
            except ccxt.BaseError as exc:
                raise ExchangeError(f"{self.exchange.id}: cannot load markets: {type(exc).__name__}: {_short(exc)}") from None
            self._markets_loaded = True
        try:
            return self.exchange.market(symbol)
        except ccxt.BadSymbol:
            raise ExchangeError(f"{self.exchange.id} does not list {symbol}") from None

    def market_rules(self, symbol: str) -> MarketRules:
        market = self._market(symbol)
        precision = (market.get("precision") or {}).get("amount")
        lot = 0.0
        if precision is not None:
            # ccxt gives a step (TICK_SIZE mode, e.g. Binance) or a number of decimals
            from ccxt.base.decimal_to_precision import TICK_SIZE

            lot = float(precision) if getattr(self.exchange, "precisionMode", None) == TICK_SIZE else 10.0 ** -int(precision)
        cost_min = ((market.get("limits") or {}).get("cost") or {}).get("min") or 0.0
        fee = market.get("taker") or 0.001
        return MarketRules(lot_size=lot, min_notional=float(cost_min), fee_rate=float(fee), slippage_rate=self.slippage_rate)

    # ------------------------------------------------------------------ orders

    def lookup(self, order: OrderRequest) -> dict[str, Any] | None:
        """The exchange's order with ``order``'s client id, or ``None`` when it does not exist."""
        import ccxt

        cid = order.client_order_id
        params = {"origClientOrderId": cid} if self.exchange.id.startswith("binance") else {"clientOrderId": cid}
        try:
            return self.exchange.fetch_order(None, order.symbol, params)
        except ccxt.OrderNotFound:
            return None

    def _lookup_patiently(self, order: OrderRequest) -> dict[str, Any] | None:
        """Look the order up until it shows or ``lookup_s`` passes (a timed-out request may land late)."""
        import ccxt

        deadline = time.monotonic() + self.lookup_s
        delay = 0.2
        while True:
            try:
                found = self.lookup(order)
            except ccxt.NetworkError as exc:
                log.warning("%s: looking up %s failed: %s", self.strategy, order.client_order_id, _short(exc))
                found = None
            if found is not None:
                return found
            if time.monotonic() + delay > deadline:
                return None
            self._sleep(delay)
            delay = min(2.0, delay * 2)

    def _send(self, order: OrderRequest) -> dict[str, Any]:
        ex = self.exchange
        cid = order.client_order_id
        params: dict[str, Any] = {"newClientOrderId": cid} if ex.id.startswith("binance") else {"clientOrderId": cid}
        if order.side is Side.BUY and ex.has.get("createMarketBuyOrderWithCost"):
            params["cost"] = float(ex.cost_to_precision(order.symbol, order.quantity * order.price))
            return ex.create_order(order.symbol, "market", "buy", None, None, params)
        amount = float(ex.amount_to_precision(order.symbol, order.quantity))
        return ex.create_order(order.symbol, "market", order.side.value, amount, None, params)

    def execute(self, order: OrderRequest, *, cash: float, now: int) -> Execution:
        """Send ``order`` unless the exchange already has its client id; its message names the market
        (a basket's orders go to several)."""
        execution = self._place(order)
        if not execution.message or execution.message.startswith(f"{order.symbol}: "):
            return execution
        return Execution(execution.status, execution.fills, f"{order.symbol}: {execution.message}", execution.exchange_order_id)

    def _place(self, order: OrderRequest) -> Execution:
        import ccxt

        try:
            existing = self.lookup(order)
        except ccxt.BaseError as exc:
            return Execution.error(f"could not check whether {order.client_order_id} exists: {type(exc).__name__}: {_short(exc)}")
        if existing is not None:
            log.warning("%s: order %s already exists on %s (sent before a restart); not sending it again",
                        self.strategy, order.client_order_id, self.exchange.id)
            return self._execution(order, existing)
        attempt = 0
        while True:
            try:
                placed = self._send(order)
                return self._execution(order, placed)
            except (ccxt.InsufficientFunds, ccxt.InvalidOrder) as exc:
                if "uplicate" in str(exc):
                    found = self._lookup_patiently(order)
                    if found is not None:
                        return self._execution(order, found)
                return Execution.rejected(f"{type(exc).__name__}: {_short(exc)}")
            except (ccxt.RequestTimeout, ccxt.NetworkError) as exc:
                log.warning("%s: sending %s: %s; looking it up before retrying", self.strategy, order.client_order_id, _short(exc))
                found = self._lookup_patiently(order)
                if found is not None:
                    return self._execution(order, found)
                attempt += 1
                if attempt > self.retries:
                    return Execution.error(f"{type(exc).__name__} after {attempt} attempts: {_short(exc)}")
            except ccxt.ExchangeError as exc:
                if "uplicate" in str(exc):
                    found = self._lookup_patiently(order)
                    if found is not None:
                        return self._execution(order, found)
                return Execution.rejected(f"{type(exc).__name__}: {_short(exc)}")

    def _execution(self, order: OrderRequest, placed: dict[str, Any]) -> Execution:
        """Turn the exchange's order into fills (its trades, fetched by order id) and a status."""
        import ccxt

        exchange_id = str(placed.get("id")) if placed.get("id") is not None else None
        status = placed.get("status")
        filled = float(placed.get("filled") or 0.0)
        if status == "open" or (status is None and not filled):
            deadline = time.monotonic() + self.lookup_s  # a market order normally fills at once
            while status == "open" and time.monotonic() < deadline:
                self._sleep(0.2)
                placed = self.exchange.fetch_order(exchange_id, order.symbol)
                status, filled = placed.get("status"), float(placed.get("filled") or 0.0)
        trades: list[dict[str, Any]] = []
        if filled > 0:
            try:
                trades = self.exchange.fetch_my_trades(order.symbol, None, None, {"orderId": exchange_id})
            except ccxt.BaseError as exc:
                return Execution(OrderStatus.ERROR, (), f"filled {filled:g} but its trades could not be read: {_short(exc)}", exchange_id)
            trades = [t for t in trades if str(t.get("order")) == exchange_id] or trades
        fills = tuple(f for f in (self._fill(order, t) for t in trades) if f is not None)
        if filled <= 0:
            return Execution(OrderStatus.REJECTED, (), f"the exchange filled nothing (status {status})", exchange_id)
        amount = float(placed.get("amount") or filled)
        final = OrderStatus.FILLED if filled >= amount * (1 - 1e-9) else OrderStatus.PARTIALLY_FILLED
        message = "" if final == OrderStatus.FILLED else f"filled {filled:g} of {amount:g} (status {status})"
        return Execution(final, fills, message, exchange_id)

    def _fill(self, order: OrderRequest, trade: dict[str, Any]) -> Fill | None:
        base, quote = order.symbol.split(":")[0].split("/")
        quantity = float(trade["amount"])
        price = float(trade["price"])
        fee = trade.get("fee") or {}
        fee_cost = float(fee.get("cost") or 0.0)
        currency = fee.get("currency")
        fee_quote = 0.0
        if fee_cost:
            if currency == quote:
                fee_quote = fee_cost
            elif currency == base:
                fee_quote = fee_cost * price
                if order.side is Side.BUY:
                    quantity -= fee_cost  # received net of the fee
            else:
                log.warning("%s: fee of %g %s on trade %s cannot be valued in %s; booked as 0",
                            self.strategy, fee_cost, currency, trade.get("id"), quote)
        if quantity <= 0:
            return None
        return Fill(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee_quote,
            timestamp=int(trade.get("timestamp") or 0),
            trade_id=str(trade.get("id")),
        )

    # ------------------------------------------------------------------ facts for the engine's reconciliation

    def find_order(self, order: OrderRequest) -> Execution | None:
        """What the exchange did with ``order`` (its fills fetched), or ``None`` when it never got it."""
        import ccxt

        try:
            found = self.lookup(order)
        except ccxt.BaseError as exc:
            raise ExchangeError(f"cannot reconcile order {order.client_order_id}: {type(exc).__name__}: {_short(exc)}") from None
        return None if found is None else self._execution(order, found)

    def exchange_account(self, symbol: str) -> ExchangeAccount:
        """The balances of ``symbol``'s currencies and the open orders on ``symbol`` with trader's
        client ids (asked market by market for a basket)."""
        import ccxt

        try:
            open_orders = self.exchange.fetch_open_orders(symbol)
            balance = self.exchange.fetch_balance()
        except ccxt.BaseError as exc:
            raise ExchangeError(f"cannot reconcile {symbol} with {self.exchange.id}: {type(exc).__name__}: {_short(exc)}") from None
        base, quote = symbol.split(":")[0].split("/")
        return ExchangeAccount(
            base=base,
            quote=quote,
            base_total=float((balance.get(base) or {}).get("total") or 0.0),
            quote_free=float((balance.get(quote) or {}).get("free") or 0.0),
            open_orders=tuple(
                str(o.get("clientOrderId")) for o in open_orders if str(o.get("clientOrderId") or "").startswith("trd-")
            ),
        )

    def watch_candles(self, candles: pd.DataFrame) -> None:
        """Nothing to learn: the exchange sets the prices."""

    def watch_candle(self, candle: Candle) -> None:
        """Nothing to learn: the exchange sets the prices."""

    def costs_line(self) -> str | None:
        """``None``: the exchange charges its own fees and spread."""
        return None

    def close(self) -> None:
        close = getattr(self.exchange, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # pragma: no cover - sync ccxt has nothing to close
                pass
