"""One strategy's cash and spot positions in plain floats: the accounting of the decision step.

Conventions (see ``docs/engine.md``):

- a buy fill costs ``quantity * price + fee``; its fee goes into the cost basis, so
  ``avg_price`` is the cost per unit including fees;
- a sell fill returns ``quantity * price - fee`` and realises
  ``quantity * (price - avg_price) - fee``;
- so ``equity = cash + sum(quantity * mark)`` and
  ``equity - initial_cash = realized + unrealized`` exactly, up to float rounding.

Cash never goes negative: :meth:`Book.apply_fill` refuses a buy whose cost exceeds the
cash (the brokers size orders so this never happens) and a sell larger than the position.
"""

from __future__ import annotations

import types

from trader.errors import StateError
from trader.types import Fill, PortfolioSnapshot, Position, Side

__all__ = ["Book", "fill_cost", "DUST"]

#: A position smaller than this fraction of the quantity sold is closed to exactly zero.
DUST = 1e-12


def fill_cost(quantity: float, price: float, fee: float) -> float:
    """Cash a buy of ``quantity`` at ``price`` costs with its ``fee``: the one formula every check uses."""
    return quantity * price + fee


class Book:
    """Cash and positions; ``positions[symbol] = [quantity, avg_price, realized_pnl]``."""

    __slots__ = ("initial_cash", "cash", "fees_paid", "realized_pnl", "positions", "marks")

    def __init__(self, cash: float, initial_cash: float | None = None) -> None:
        if not cash >= 0:
            raise StateError(f"cash must be >= 0, got {cash!r}")
        self.initial_cash = float(cash if initial_cash is None else initial_cash)
        self.cash = float(cash)
        self.fees_paid = 0.0
        self.realized_pnl = 0.0
        self.positions: dict[str, list[float]] = {}
        self.marks: dict[str, float] = {}

    # ------------------------------------------------------------------ reading

    def slot(self, symbol: str) -> list[float]:
        """The mutable ``[quantity, avg_price, realized_pnl]`` of ``symbol`` (created flat)."""
        slot = self.positions.get(symbol)
        if slot is None:
            slot = self.positions[symbol] = [0.0, 0.0, 0.0]
        return slot

    def quantity(self, symbol: str) -> float:
        slot = self.positions.get(symbol)
        return slot[0] if slot else 0.0

    def position(self, symbol: str) -> Position:
        slot = self.positions.get(symbol)
        if not slot:
            return Position(symbol)
        return Position(symbol, slot[0], slot[1], slot[2])

    def position_value(self) -> float:
        marks = self.marks
        return sum(slot[0] * marks.get(symbol, slot[1]) for symbol, slot in self.positions.items())

    def equity(self) -> float:
        return self.cash + self.position_value()

    def snapshot(self, peak_equity: float, day_start_equity: float) -> PortfolioSnapshot:
        """What the risk audit sees: a frozen snapshot with a read-only positions mapping."""
        positions = {s: Position(s, q, a, r) for s, (q, a, r) in self.positions.items()}
        return PortfolioSnapshot(
            cash=self.cash,
            equity=self.equity(),
            positions=types.MappingProxyType(positions),
            peak_equity=peak_equity,
            day_start_equity=day_start_equity,
            marks=types.MappingProxyType(dict(self.marks)),
        )

    # ------------------------------------------------------------------ writing

    def apply_fill(self, fill: Fill) -> float:
        """Book ``fill``; returns the profit it realised (0 for buys). Refuses what would break the account."""
        slot = self.slot(fill.symbol)
        quantity, price, fee = fill.quantity, fill.price, fill.fee
        if fill.side is Side.BUY:
            cost = fill_cost(quantity, price, fee)
            if cost > self.cash:
                raise StateError(
                    f"fill {fill.client_order_id}: buying {quantity:g} {fill.symbol} costs {cost:,.8f}, "
                    f"more than the cash {self.cash:,.8f}"
                )
            held = slot[0]
            new_quantity = held + quantity
            slot[1] = (held * slot[1] + quantity * price + fee) / new_quantity
            slot[0] = new_quantity
            self.cash -= cost
            self.fees_paid += fee
            return 0.0
        held = slot[0]
        if quantity > held * (1 + 1e-9) + DUST:
            raise StateError(f"fill {fill.client_order_id}: selling {quantity:g} {fill.symbol}, more than the position {held:g}")
        proceeds = quantity * price - fee
        if self.cash + proceeds < 0:  # only when a fee exceeds the proceeds
            raise StateError(f"fill {fill.client_order_id}: fee {fee:g} exceeds the sale's proceeds")
        realized = quantity * (price - slot[1]) - fee
        remaining = held - quantity
        if remaining <= held * DUST:
            slot[0] = 0.0
            slot[1] = 0.0
        else:
            slot[0] = remaining
        slot[2] += realized
        self.cash += proceeds
        self.fees_paid += fee
        self.realized_pnl += realized
        return realized
