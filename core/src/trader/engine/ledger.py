"""The ledger check: an account recomputed from its cash flows and fills, compared with the stored one.

A strategy's account (cash, fees, realised PnL, positions) is maintained incrementally,
fill by fill, by :class:`~trader.engine.book.Book`. The ledger is what justifies it: the
cash flows (the initial deposit, any later adjustment) and every fill. :func:`replay_ledger`
books them again, in the order they happened, with the same ``Book``, so a legitimate
account matches its ledger exactly; :func:`ledger_differences` names what does not match
(a forged cash or position, a deleted fill), beyond a float tolerance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import frozen

from trader.engine.book import Book
from trader.errors import StateError
from trader.types import Fill

__all__ = ["CashFlow", "LedgerFill", "replay_ledger", "ledger_differences", "close_enough", "REL_TOL", "ABS_TOL"]

REL_TOL = 1e-9
ABS_TOL = 1e-6


@frozen
class CashFlow:
    """Cash in (positive) or out (negative) of the account, booked after fill ``after_fill`` (a fill id, 0: before any)."""

    amount: float
    kind: str
    after_fill: int = 0


@frozen
class LedgerFill:
    """One row of the ``fills`` table, as the ledger reads it."""

    id: int
    client_order_id: str
    symbol: str
    side: str
    quantity: float
    price: float
    fee: float


def close_enough(a: float, b: float) -> bool:
    """Equal up to float rounding: ``|a - b| <= 1e-6 + 1e-9 * max(|a|, |b|)``."""
    return abs(a - b) <= ABS_TOL + REL_TOL * max(abs(a), abs(b))


def replay_ledger(flows: Iterable[CashFlow], fills: Iterable[LedgerFill]) -> Book:
    """The book the flows and fills give, each flow booked right after the fill it follows.

    Raises :class:`StateError` when the ledger itself is impossible (a fill that overspends
    the cash or sells more than held, a fill with a non-positive quantity or price).
    """
    book = Book(0.0, 0.0)
    pending = sorted(flows, key=lambda f: f.after_fill)
    initial = [f.amount for f in pending if f.kind == "initial"]
    book.initial_cash = initial[0] if initial else 0.0
    i = 0

    def book_flows(up_to: int) -> None:
        nonlocal i
        while i < len(pending) and pending[i].after_fill <= up_to:
            book.cash += pending[i].amount
            i += 1

    book_flows(0)
    for row in fills:
        book_flows(row.id - 1)
        try:
            fill = Fill(row.client_order_id, row.symbol, row.side, row.quantity, row.price, row.fee)
        except (TypeError, ValueError) as exc:
            raise StateError(f"fill #{row.id} is invalid: {exc}") from None
        try:
            book.apply_fill(fill)
        except StateError as exc:
            raise StateError(f"fill #{row.id} is impossible: {exc}") from None
        book_flows(row.id)
    book_flows(float("inf"))  # type: ignore[arg-type]
    return book


def _money(value: float) -> str:
    return f"{value:,.2f}"


def ledger_differences(
    ledger: Book,
    *,
    initial_cash: float,
    cash: float,
    fees_paid: float,
    realized_pnl: float,
    positions: Mapping[str, tuple[float, float, float]],
    fills: int,
) -> list[str]:
    """What the stored account says that its ledger does not (empty when they agree).

    ``positions`` maps a symbol to the stored ``(quantity, avg_price, realized_pnl)``.
    """
    where = f"(initial {_money(ledger.initial_cash)}, {fills} fill{'s' if fills != 1 else ''})"
    out = []
    if not close_enough(initial_cash, ledger.initial_cash):
        out.append(f"initial cash {_money(initial_cash)} in the account but {_money(ledger.initial_cash)} in the ledger")
    if not close_enough(cash, ledger.cash):
        out.append(f"cash {_money(cash)} in the account but {_money(ledger.cash)} from the ledger {where}")
    if not close_enough(fees_paid, ledger.fees_paid):
        out.append(f"fees {_money(fees_paid)} in the account but {_money(ledger.fees_paid)} from the ledger {where}")
    if not close_enough(realized_pnl, ledger.realized_pnl):
        out.append(f"realized PnL {_money(realized_pnl)} in the account but {_money(ledger.realized_pnl)} from the ledger {where}")
    for symbol in sorted(set(positions) | set(ledger.positions)):
        stored = positions.get(symbol, (0.0, 0.0, 0.0))
        derived = ledger.positions.get(symbol, [0.0, 0.0, 0.0])
        if not close_enough(stored[0], derived[0]):
            out.append(f"{symbol} position {stored[0]:g} in the account but {derived[0]:g} from the ledger {where}")
        elif stored[0] > 0 and not close_enough(stored[1], derived[1]):
            out.append(f"{symbol} average price {stored[1]:,.6g} in the account but {derived[1]:,.6g} from the ledger {where}")
        elif not close_enough(stored[2], derived[2]):
            out.append(f"{symbol} realized PnL {_money(stored[2])} in the account but {_money(derived[2])} from the ledger {where}")
    return out
