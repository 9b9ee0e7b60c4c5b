"""Reconciliation on start: the engine settles what a crash left open and compares the books with the exchange.

The broker reports facts (:meth:`~trader.engine.brokers.base.Broker.find_order`,
:meth:`~trader.engine.brokers.base.Broker.exchange_account`); this module decides what
they mean and books them through the session, so every change goes through the same
step bookkeeping and store commit as trading:

- an order left ``submitting`` that the exchange never got is marked ``canceled``;
- one the exchange has is settled with its fills (fills already booked are skipped);
- open orders with trader's client ids are reported;
- less base currency, or less free quote currency, on the exchange than in the books is a
  ``BALANCE_MISMATCH`` alert. The books are never adjusted to the exchange.

A basket (:class:`~trader.portfolio.session.PortfolioSession`) is compared market by market
(its base currency against the books' quantity, its open orders), and its one cash balance
once, against the free balance of the quote currency its markets share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trader.engine.brokers.base import Execution
from trader.engine.records import OrderStatus

if TYPE_CHECKING:
    from trader.engine.step import TradingSession
    from trader.portfolio.session import PortfolioSession

__all__ = ["reconcile", "BALANCE_MISMATCH"]

BALANCE_MISMATCH = "BALANCE_MISMATCH"


def reconcile(session: TradingSession) -> list[str]:
    """Settle ``session``'s orders left ``submitting`` and compare its books with the exchange; report lines."""
    from trader.portfolio.session import PortfolioSession

    report = _settle_intents(session)
    if isinstance(session, PortfolioSession):
        return report + _compare_basket(session)
    account = session.broker.exchange_account(session.symbol)
    if account is None:  # nothing outside the process
        return report
    if account.open_orders:
        report.append(f"{len(account.open_orders)} open order(s) with trader client ids on {session.symbol}: "
                      + ", ".join(account.open_orders))
    base, quote = account.base, account.quote
    mismatches = []
    if account.base_total < session.position * (1 - 1e-6) - 1e-12:
        mismatches.append(f"the exchange holds {account.base_total:g} {base}, less than the books' {session.position:g}")
    if account.quote_free < session.cash * (1 - 1e-6) - 0.01:
        mismatches.append(
            f"the exchange has {account.quote_free:,.2f} {quote} free, less than the books' cash {session.cash:,.2f}"
        )
    for text in mismatches:
        session.note_event("alert", BALANCE_MISMATCH, text)
    report.append(f"balances: {account.base_total:g} {base}, {account.quote_free:,.2f} {quote} free; "
                  f"books: {session.position:g} {base}, {session.cash:,.2f} {quote}")
    return report


def _settle_intents(session: TradingSession) -> list[str]:
    report = []
    for record in session.store.orders([OrderStatus.SUBMITTING]):
        order = record.order
        execution = session.broker.find_order(order)
        if execution is None:
            session.settle(order, Execution(OrderStatus.CANCELED, (), "never reached the exchange (found on restart)"))
            report.append(f"order {order.client_order_id} never reached the exchange; marked canceled")
        else:
            session.settle(order, execution)
            report.append(f"order {order.client_order_id} was on the exchange ({execution.status}); its fills are booked")
    return report


def _compare_basket(session: PortfolioSession) -> list[str]:
    """Each market's base currency and open orders, then the cash once, against the exchange."""
    report: list[str] = []
    mismatches = []
    quote_free = None
    for symbol in session.symbols:
        account = session.broker.exchange_account(symbol)
        if account is None:  # nothing outside the process
            return report
        if account.open_orders:
            report.append(f"{len(account.open_orders)} open order(s) with trader client ids on {symbol}: "
                          + ", ".join(account.open_orders))
        books = session.book.quantity(symbol)
        report.append(f"{symbol}: {account.base_total:g} {account.base} on the exchange, {books:g} in the books")
        if account.base_total < books * (1 - 1e-6) - 1e-12:
            mismatches.append(f"{symbol}: the exchange holds {account.base_total:g} {account.base}, less than the books' {books:g}")
        if quote_free is None:
            quote_free = (account.quote, account.quote_free)
    assert quote_free is not None  # a basket has a market
    quote, free = quote_free
    report.append(f"cash: {free:,.2f} {quote} free on the exchange, {session.cash:,.2f} in the books")
    if free < session.cash * (1 - 1e-6) - 0.01:
        mismatches.append(f"the exchange has {free:,.2f} {quote} free, less than the books' cash {session.cash:,.2f}")
    for text in mismatches:
        session.note_event("alert", BALANCE_MISMATCH, text)
    return report
