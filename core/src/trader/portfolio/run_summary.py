"""The end of a basket run (``trader run --symbol A --symbol B``): the account's totals and each market."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from attrs import frozen

if TYPE_CHECKING:
    from trader.portfolio.session import PortfolioSession

__all__ = ["BasketRunSummary", "MarketSummary", "basket_summary"]


@frozen
class MarketSummary:
    """One market of the basket at the end of a run: what the account holds of it and its fills."""

    quantity: float
    mark: float | None
    value: float
    fills: int


@frozen
class BasketRunSummary:
    """What a basket run did and where its one account stands."""

    strategy: str
    symbols: tuple[str, ...]
    timeframe: str
    source: str
    processed: int
    stopped_by: str
    first_ts: int | None
    last_ts: int | None
    initial_cash: float
    equity: float
    cash: float
    position_value: float
    fees_paid: float
    realized_pnl: float
    trades: int
    max_drawdown: float
    status: str
    status_reason: str
    markets: Mapping[str, MarketSummary]

    @property
    def pnl(self) -> float:
        return self.equity - self.initial_cash

    def as_dict(self) -> dict[str, Any]:
        from trader.engine.runner import summary_dict

        data = summary_dict(self)
        data["symbols"] = list(self.symbols)
        return data

    def describe(self) -> str:
        from trader.engine.runner import account_lines
        from trader.timeframes import format_utc

        head = (f"{self.strategy} on a basket of {len(self.symbols)} markets ({', '.join(self.symbols)}) {self.timeframe} "
                f"on {self.source}: {self.processed:,} new steps, stopped by {self.stopped_by}; the account covers "
                f"{format_utc(self.first_ts)} .. {format_utc(self.last_ts)}")
        lines = [head, *account_lines(self, f"  cash {self.cash:,.2f}  positions {self.position_value:,.2f}"),
                 "  per market: quantity  value  fills"]
        for symbol, market in self.markets.items():
            lines.append(f"    {symbol:<14} {market.quantity:>14g}  {market.value:>12,.2f}  {market.fills}")
        return "\n".join(lines)


def basket_summary(session: PortfolioSession, source: str, processed: int, stopped_by: str,
                   first_ts: int | None) -> BasketRunSummary:
    """The summary of ``session`` after a run (the whole account, not only this run's steps)."""
    from trader.evaluation.performance import max_drawdown
    from trader.portfolio.session import PORTFOLIO

    store = session.store
    curve = store.equity_curve(PORTFOLIO)
    fills = store.fills()
    count = {s: 0 for s in session.symbols}
    for fill in fills:
        if fill["symbol"] in count:
            count[fill["symbol"]] += 1
    marks = session.book.marks
    markets = {}
    for symbol in session.symbols:
        quantity = session.quantity(symbol)
        mark = marks.get(symbol)
        markets[symbol] = MarketSummary(quantity, mark, quantity * mark if mark is not None else 0.0, count[symbol])
    return BasketRunSummary(
        strategy=session.strategy,
        symbols=session.symbols,
        timeframe=session.timeframe,
        source=source,
        processed=processed,
        stopped_by=stopped_by,
        first_ts=curve[0][0] if curve else first_ts,
        last_ts=session.last_timestamp,
        initial_cash=session.book.initial_cash,
        equity=session.equity,
        cash=session.cash,
        position_value=session.book.position_value(),
        fees_paid=session.book.fees_paid,
        realized_pnl=session.book.realized_pnl,
        trades=len(fills),
        max_drawdown=max_drawdown([e for _, e in curve])[0],
        status=session.status.value,
        status_reason=session.status_reason,
        markets=markets,
    )
