"""``PaperBroker``: simulated market orders with fees, slippage, the spread, lots and a minimum notional.

A buy fills at ``price * (1 + half_spread + slippage)``, a sell at
``price * (1 - half_spread - slippage)``, where ``price`` is the order's reference price
(the close of the candle that decided it) and ``half_spread`` half the spread of that
candle (:class:`trader.costs.SpreadTable`: fixed, or estimated from the candles before
it); the fee is ``fee_bps`` of the filled notional, in the quote currency. Quantities are rounded
down to ``lot_size``; an order worth less than ``min_notional`` is rejected; a buy
whose cost would exceed the cash is shrunk to fit (or rejected), so cash never goes
negative. The broker is deterministic and has no effect outside the process: executing
the same order twice gives the same fill, which is what makes a replay after a crash
exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from trader.costs import CostModel, SpreadTable
from trader.engine.book import fill_cost
from trader.engine.brokers.base import ExchangeAccount, Execution, MarketRules
from trader.engine.records import OrderStatus
from trader.errors import ConfigError
from trader.types import Fill, OrderRequest, Side

__all__ = ["PaperBroker", "PAPER_DEFAULTS", "paper_fill"]

#: Defaults of the ``[broker]`` table in ``trader.toml`` (and of the CLI flags).
PAPER_DEFAULTS: Mapping[str, float] = {
    "fee_bps": 10.0,
    "slippage_bps": 2.0,
    "lot_size": 1e-8,
    "min_notional": 5.0,
    "cash": 10_000.0,
}


def paper_fill(rules: MarketRules, side: Side, quantity: float, price: float, half_spread: float,
               cash: float) -> tuple[float, float, float]:
    """The paper fill of an order of ``quantity`` at the reference ``price``: its quantity (a buy's cut to
    what ``cash`` pays), its price (half the spread and the slippage against the order) and its fee."""
    if side is Side.BUY:
        fill_price = price * (1 + half_spread + rules.slippage_rate)
        fee = quantity * fill_price * rules.fee_rate
        if fill_cost(quantity, fill_price, fee) > cash:
            quantity = rules.round_quantity(cash / (fill_price * (1 + rules.fee_rate)))
            fee = quantity * fill_price * rules.fee_rate
            while quantity > 0 and fill_cost(quantity, fill_price, fee) > cash:
                quantity = rules.round_quantity(quantity - max(rules.lot_size, quantity * 1e-12))
                fee = quantity * fill_price * rules.fee_rate
    else:
        fill_price = price * (1 - half_spread - rules.slippage_rate)
        fee = quantity * fill_price * rules.fee_rate
    return quantity, fill_price, fee


class PaperBroker:
    """Simulated execution. ``fee_bps`` and ``slippage_bps`` are basis points (10 = 0.1 %);
    ``spreads`` prices the spread per candle (none: no spread)."""

    name = "paper"
    needs_intent = False

    def __init__(
        self,
        fee_bps: float = PAPER_DEFAULTS["fee_bps"],
        slippage_bps: float = PAPER_DEFAULTS["slippage_bps"],
        lot_size: float = PAPER_DEFAULTS["lot_size"],
        min_notional: float = PAPER_DEFAULTS["min_notional"],
        spreads: SpreadTable | None = None,
    ) -> None:
        for label, value in (("fee_bps", fee_bps), ("slippage_bps", slippage_bps), ("lot_size", lot_size), ("min_notional", min_notional)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"broker {label} must be a finite number >= 0, got {value!r}")
        if fee_bps >= 10_000 or slippage_bps >= 10_000:
            raise ConfigError("broker fee_bps and slippage_bps must be below 10000 (100 %)")
        self.fee_bps = float(fee_bps)
        self.slippage_bps = float(slippage_bps)
        self.rules = MarketRules(
            lot_size=float(lot_size),
            min_notional=float(min_notional),
            fee_rate=self.fee_bps / 10_000,
            slippage_rate=self.slippage_bps / 10_000,
        )
        self.spreads = spreads if spreads is not None else SpreadTable(CostModel(self.fee_bps, self.slippage_bps, 0.0))

    @property
    def costs(self) -> CostModel:
        """The fees, slippage and spread this broker charges."""
        return self.spreads.model

    def with_spreads(self, spreads: SpreadTable) -> PaperBroker:
        """The same broker charging the spreads of ``spreads``."""
        rules = self.rules
        return PaperBroker(self.fee_bps, self.slippage_bps, rules.lot_size, rules.min_notional, spreads)

    def watch_candles(self, candles: Any) -> None:
        """Learn a candle frame (``trader run``: the replay's candles, the live feed's history)."""
        self.spreads.watch(candles)

    def watch_candle(self, candle: Any) -> None:
        """Learn one more candle of the live feed."""
        self.spreads.watch_candle(candle.timestamp, candle.open, candle.high, candle.low, candle.close)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **overrides: Any) -> PaperBroker:
        """Build from the ``[broker]`` table; ``overrides`` (CLI flags) win when not ``None``.

        ``spread_bps`` (flag or table) fixes the spread; without it the spread is estimated
        from the candles the broker is shown (:meth:`watch_candles`)."""
        known = {"fee_bps", "slippage_bps", "lot_size", "min_notional"}
        values = {k: v for k, v in settings.items() if k in known}
        values.update({k: v for k, v in overrides.items() if v is not None and k in known})
        broker = cls(**values)
        spread = overrides.get("spread_bps")
        table_spread = settings.get("spread_bps")
        source = ""
        if spread is not None:
            source = "fixed by --spread-bps"
        elif table_spread is not None:
            spread, source = table_spread, "fixed by [broker] spread_bps"
        try:
            model = CostModel(broker.fee_bps, broker.slippage_bps, spread, source)
        except ValueError as exc:
            raise ConfigError(f"broker {exc}") from None
        return broker.with_spreads(SpreadTable(model))

    def market_rules(self, symbol: str) -> MarketRules:
        return self.rules

    def execute(self, order: OrderRequest, *, cash: float, now: int) -> Execution:
        rules = self.rules
        quantity, price, fee = paper_fill(rules, order.side, order.quantity, order.price,
                                          self.spreads.bps(order.timestamp) / 20_000, cash)
        if quantity <= 0 or quantity * order.price < rules.min_notional:
            return Execution.rejected(
                f"order value {quantity * order.price:,.2f} is below the minimum notional {rules.min_notional:,.2f}"
                + (" (not enough cash)" if quantity < order.quantity else "")
            )
        fill = Fill(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            fee=fee,
            timestamp=now,
            trade_id=f"paper-{order.client_order_id}",
        )
        message = "" if quantity == order.quantity else f"reduced from {order.quantity:g} to fit the cash"
        return Execution(OrderStatus.FILLED, (fill,), message, None)

    def find_order(self, order: OrderRequest) -> Execution | None:
        """``None``: the paper broker sends nothing anywhere, so no order can be left on an exchange."""
        return None

    def exchange_account(self, symbol: str) -> ExchangeAccount | None:
        """``None``: no balances exist outside the process to compare with."""
        return None

    def costs_line(self) -> str | None:
        from trader.costs import describe_costs, format_costs

        return format_costs(describe_costs(self.costs, self.spreads.charged()))

    def close(self) -> None:
        pass
