"""The float-only basket backtest: :meth:`PortfolioSession.step` without its per-step records.

A basket backtest (:func:`trader.portfolio.backtest.simulate_basket`) starts a fresh account
on an in-memory store and reads back the equity curve, the market rows, the orders, fills
and risk events and the final account. :func:`run_floats` produces exactly those, on the
session's own book and risk state, without a :class:`~trader.engine.records.StepRecord`'s
market and position figures or a store commit per step:

- quiet steps (no order possible, no breaker tripped: :mod:`trader.portfolio.quiet`'s test)
  are figured with numpy in windows, as there, but only buffered: no store call per stretch;
- a step that may act is the step itself on plain floats: the marks, the new UTC day, the
  breakers, then sells and buys in symbol order, each sized, audited, filled and booked by
  the session's own methods (:meth:`PortfolioSession._execute`, so an order every core rule
  visibly approves is approved at sight and any other goes through the real audit); its
  orders, fills and events go to the store as the step would commit them;
- a step with a signal that is not a valid plain :class:`~trader.types.Signal`, or while
  ``model_failures`` is not zero, is the full :meth:`PortfolioSession.step` (the buffer is
  committed first);
- the buffered steps are committed a chunk of :data:`_CHUNK` steps at a time, each chunk in one
  :meth:`MemoryState.commit_quiet_basket` call, each market row's quantity being the one held
  after its step (it changes only where an order filled); what the windows read of the timeline
  (marks, prices, size x position fraction, spreads) is figured a chunk at a time too, so no
  array of the whole run's steps x markets is added to the timeline's own.

It applies where :func:`trader.portfolio.quiet.run_quiet` does and no plugin adds risk rules
(the audit's value objects are then only built for an order that is not approved at sight),
the risk log is silent and every position of the account is a market of the basket; otherwise
:func:`run_floats` returns ``None`` having done nothing. ``tests/portfolio/test_portfolio_fastbasket.py``
holds it to ``PortfolioSession.run(..., fast=False)`` float for float and event for event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from trader.engine.brokers.base import Execution
from trader.engine.brokers.paper import PaperBroker, paper_fill
from trader.engine.records import FillRecord, OrderRecord, OrderStatus, RiskEvent, StepRecord
from trader.engine.step import client_order_id
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.quiet import (
    _closes_at,
    _first_acting,
    _running,
    _Stretch,
    _supported,
    _take,
)
from trader.portfolio.session import PORTFOLIO
from trader.timeframes import DAY_MS
from trader.types import Fill, OrderRequest, Side, TradingStatus

if TYPE_CHECKING:
    from trader.portfolio.quiet import _Timeline
    from trader.portfolio.session import BasketQuietState, PortfolioSession

__all__ = ["run_floats"]

_risk_log = logging.getLogger("trader.risk")
_MIN_WINDOW, _MAX_WINDOW = 32, 4096
#: Steps figured and committed at a time (what bounds the run's arrays and the buffer).
_CHUNK = 4096
_TINY = float(np.nextafter(0.0, 1.0))
_any_of_row = np.logical_or.reduce  # ndarray.any without its Python wrapper (one call per window)


class _Held(NamedTuple):
    """The book as the windows read it between two fills."""

    at: np.ndarray  #: each position's column in book order, after the zero column of the chunk's marks
    quantity: np.ndarray  #: each position's quantity in book order, after a 0
    q_all: np.ndarray  #: each market's quantity in symbol order
    held: np.ndarray  #: q_all > 0
    late: int  #: the first step at which every position has a mark in the run
    cap: np.ndarray | None  #: cash / buy cost factor x (1 + 1e-9), where some market's buy may fall short
_ACTIVE, _REDUCING, _HALTED = TradingStatus.ACTIVE, TradingStatus.REDUCING, TradingStatus.HALTED


def _eligible(session: PortfolioSession) -> bool:
    audit = session.audit
    if not _supported(session) or len(audit.plugins) > 1 or audit.fails_closed or _risk_log.isEnabledFor(logging.INFO):
        return False
    broker = session.broker
    if type(broker) is not BasketPaperBroker or any(type(b) is not PaperBroker for b in broker.brokers.values()):
        return False
    return all(symbol in session.column for symbol in session.book.positions)


def run_floats(session: PortfolioSession, timestamps: np.ndarray, closes: np.ndarray,
               signals: Sequence[Mapping[str, Any] | None]) -> int | None:
    """Step ``session`` through the timeline on floats; the number of steps processed.

    ``closes`` is ``(T, M)``, its columns ``session.symbols``, NaN where a market has no candle.
    Returns ``None`` (having done nothing) where the float path does not apply.
    """
    if not _eligible(session):
        return None
    return _take(session, timestamps, closes, signals, lambda tl: _Floats(session, tl, signals).run())


class _Floats:
    """The run: the session's state, the buffer of steps not yet committed and the step on floats.

    The timeline is taken a chunk of :data:`_CHUNK` steps at a time: what the windows read of it is
    figured for the chunk, and the steps buffered before the chunk are committed when it starts."""

    def __init__(self, session: PortfolioSession, tl: _Timeline, signals: Sequence[Mapping[str, Any] | None]) -> None:
        self.session = session
        self.tl = tl
        self.signals = signals
        self.book = session.book
        self.store: Any = session.store
        self.symbols = session.symbols
        self.tf_ms = session.timeframe_ms
        self.audit_limits = session.audit.limits  #: what the audit holds an order to
        self.fraction = session.limits.max_position_fraction
        self.cols = np.arange(tl.closes.shape[1])
        # the first step at which each market has a mark in the run (a position valued at the book's mark before)
        trading = tl.trading
        self.first_row = np.where(trading.any(axis=0), trading.argmax(axis=0), tl.ts.size)
        factor, lot, floor = session.market_constants()
        self.lot_part, self.floor, self.floor_max = 0.006 * lot, floor, float(floor.max()) if floor.size else 0.0
        self.factor = factor
        self.factor_l, self.lot_part_l, self.floor_l = factor.tolist(), self.lot_part.tolist(), floor.tolist()
        self.rules = [session.market_rules[symbol] for symbol in session.symbols]
        self._held: _Held | None = None
        self._keys: tuple[str, ...] | None = None  #: the book's position keys that ``_at`` and ``_late`` were figured for
        self._at = np.zeros(1, dtype=np.intp)
        self._late = 0
        self.factor_max = float(factor.max()) if factor.size else 1.0
        self.brokers = {symbol: session.broker.broker(symbol) for symbol in session.symbols}  # type: ignore[attr-defined]
        self.broker_rules = [self.brokers[symbol].rules for symbol in session.symbols]
        self._chunk(0)
        self._start_buffer(0)
        #: The equity after the previous step (``None``: the book's, at its marks).
        self.previous: float | None = None

    def _chunk(self, a: int) -> None:
        """Figure what every window of the chunk at ``a`` reads: each market's mark (its last close in the run,
        NaN before its first), its close where it trades (0 elsewhere) and size x position fraction."""
        tl = self.tl
        b = min(int(tl.ts.size), a + _CHUNK)
        self.c0, self.c1 = a, b
        rows = tl.last_row[a:b]
        marks = np.zeros((b - a, self.cols.size + 1), dtype=np.float64)  # a last column of 0 (see _Held.at)
        marks[:, :-1] = np.where(rows >= 0, tl.closes[np.maximum(rows, 0), self.cols[None, :]], np.nan)
        self.marks = marks
        self.prices = np.where(tl.trading[a:b], tl.closes[a:b], 0.0)
        self.size_fraction = tl.size[a:b] * self.fraction
        self.spreads: np.ndarray | None = None  # each market's spread at each step, read at the chunk's first order

    def _half_spread(self, k: int, j: int, ts: int) -> float:
        """The paper broker's half spread of market ``j`` at step ``k`` (``spreads.bps(ts) / 20,000``)."""
        spreads = self.spreads
        if spreads is None:
            ts_chunk = self.tl.ts[self.c0 : self.c1]
            spreads = self.spreads = np.column_stack(
                [self.brokers[symbol].spreads.known_bps(ts_chunk) for symbol in self.symbols])
        bps = spreads.item(k - self.c0, j)
        if bps != bps:  # not priced in bulk: the table prices it now
            bps = self.brokers[self.symbols[j]].spreads.bps(ts)
        return bps / 20_000

    def _positions(self) -> _Held:
        """The book's positions and cash as the windows read them, figured again only after a fill."""
        held = self._held
        if held is None:
            positions = self.book.positions
            keys = tuple(positions)
            if keys != self._keys:  # which markets the book holds a slot of (their columns and first marks)
                column, m = self.session.column, self.cols.size
                self._keys = keys
                self._at = np.asarray([m, *(column[symbol] for symbol in keys)], dtype=np.intp)
                self._late = int(self.first_row[self._at[1:]].max()) if keys else 0
            at = self._at
            quantity = np.fromiter((0.0, *(slot[0] for slot in positions.values())), dtype=np.float64,
                                   count=len(keys) + 1)
            q_all = np.zeros(self.cols.size + 1, dtype=np.float64)  # a last 0 for the zero column
            q_all[at] = quantity
            q_all = q_all[:-1]
            cash = self.book.cash
            # cash / factor is smallest at the largest factor (division rounds monotonically): one division for the test
            short = cash / self.factor_max * (1 + 1e-9) < self.floor_max  # some market's buy may be too small
            cap = cash / self.factor * (1 + 1e-9) if short else None
            held = self._held = _Held(at, quantity, q_all, q_all > 0, self._late, cap)
        return held

    # ------------------------------------------------------------------ the buffer

    def _start_buffer(self, at: int) -> None:
        self.since = at
        self.q_start = self._positions().q_all
        self.equities: list[float] = []
        self.values: list[float] = []
        self.cash_runs: list[tuple[int, float]] = []  #: (steps, cash)
        self.changes: list[tuple[int, np.ndarray]] = []  #: (position, quantities after its step)

    def _flush(self, b: int) -> None:
        """Commit the buffered steps ``[since, b)`` to the store and bring the session's marks and streams up to ``b``."""
        a = self.since
        if b <= a:
            return
        session, tl, symbols = self.session, self.tl, self.symbols
        n = b - a
        held = tl.trading[a:b]
        step_of, market_of = np.nonzero(held)
        if self.changes:
            at = np.asarray([k - a for k, _ in self.changes], dtype=np.intp)
            table = np.vstack([self.q_start, *(q for _, q in self.changes)])
            quantity = table[np.searchsorted(at, step_of, side="right"), market_of]
        else:
            quantity = self.q_start[market_of]
        close = tl.closes[a:b][held]
        last = tl.last_row[b - 1]
        traded = np.flatnonzero(last >= a).tolist()
        rows_at = last[traded].tolist()
        last_ts = {symbols[j]: int(tl.ts[r]) for j, r in zip(traded, rows_at, strict=True)}
        rows = {"symbols": symbols, "timestamp": tl.ts[a:b][step_of], "symbol": market_of, "close": close,
                "quantity": quantity, "position_value": quantity * close, "last_ts": last_ts}
        self.book.marks.update({symbols[j]: float(tl.closes[r, j]) for j, r in zip(traded, rows_at, strict=True)})
        session.market_last.update(last_ts)
        last_step = int(tl.ts[b - 1])
        session._last_ts = last_step
        session._now = last_step + self.tf_ms
        record = StepRecord(PORTFOLIO, session.timeframe, last_step, 0.0)
        session._account_into(record)
        store = self.store
        store.commit_quiet_basket(tl.ts[a:b].tolist(), self.equities, 0.0, self.values, rows, record)
        cash: list[float] = []
        for steps, value in self.cash_runs:
            cash.extend([value] * steps)
        store.cash_values[-n:] = cash
        self._start_buffer(b)

    # ------------------------------------------------------------------ the run

    def run(self) -> None:
        session, tl = self.session, self.tl
        n = int(tl.ts.size)
        i = 0
        window = _MIN_WINDOW
        while i < n:
            if i >= self.c1:  # a new chunk: commit the steps before it
                self._flush(i)
                self._chunk(i)
            stop = min(self.c1, i + window)
            state = session.quiet_state()
            figures = self._figures(state.day, i, stop)
            quiet_until = self._first_acting(state, figures, i, stop)
            if quiet_until > i:
                self._quiet(state, figures, i, quiet_until)
            if quiet_until < stop:
                self._act(quiet_until)
                i = quiet_until + 1
                window = _MIN_WINDOW
            else:
                i = stop
                window = min(window * 2, _MAX_WINDOW)
        self._flush(n)

    def _figures(self, day: int | None, a: int, b: int) -> _Stretch:
        """Each step of ``[a, b)`` figured with the book as it is (see :func:`trader.portfolio.quiet._figures`):
        a market's mark is its last close in the run, else the book's."""
        book, tl = self.book, self.tl
        new_day = tl.day_change[a:b].copy()
        new_day[0] = day is None or int(tl.days[a]) != day
        opening = book.equity() if self.previous is None else self.previous
        held = self._positions()
        if held.at.size == 1:
            value = np.zeros(b - a, dtype=np.float64)
            return _Stretch(value, book.cash + value, new_day, opening)
        mark = self.marks[a - self.c0 : b - self.c0, held.at]
        if a < held.late:  # a market that has not traded in the run yet: the book's mark
            marks = book.marks
            start = np.asarray([0.0, *(marks.get(symbol, slot[1]) for symbol, slot in book.positions.items())])
            mark = np.where(np.isnan(mark), start[None, :], mark)
        # 0 (0 x the zero column), then each position's value: the book's sum, left to right from 0
        parts = np.multiply(held.quantity, mark, out=mark)
        value = np.add.accumulate(parts, axis=1)[:, -1]
        return _Stretch(value, book.cash + value, new_day, opening)

    def _first_acting(self, state: BasketQuietState, figures: _Stretch, a: int, b: int) -> int:
        """:func:`trader.portfolio.quiet._first_acting` (the same test, float for float) on the chunk's arrays,
        while active and no failure is counted; that function otherwise."""
        session, tl = self.session, self.tl
        if state.status is not _ACTIVE or state.model_failures:
            return _first_acting(session, state, figures, tl, a, b)
        book = self._positions()
        act = tl.other[a:b] | _any_of_row(tl.sells[a:b] & book.held, axis=1)
        equity = figures.equity
        if state.drawdown_keep > 0 or state.daily_keep > 0:
            peak, day_start = _running(state, figures)
            act |= (equity < peak * state.drawdown_keep) | (equity < day_start * state.daily_keep)
        if _any_of_row(tl.any_buy[a:b]):
            x, y = a - self.c0, b - self.c0
            target = self.size_fraction[x:y] * equity[:, None]
            np.minimum(target, state.max_position_notional, out=target)
            price = self.prices[x:y]
            shortfall = target - book.q_all * price
            # shortfall > 0 and shortfall >= band x target (the smallest positive float: shortfall > 0)
            wanted = shortfall >= np.maximum(state.rebalance_band * target, _TINY, out=target)
            wanted &= tl.buys[a:b]
            if book.cap is not None:  # some market's buy may be too small: quiet._affordable
                wanted &= book.cap + self.lot_part * price >= self.floor
            act |= _any_of_row(wanted, axis=1)
        first = int(act.argmax())
        return a + first if act[first] else b

    def _quiet(self, state: Any, figures: _Stretch, a: int, b: int) -> None:
        """Take the quiet steps ``[a, b)``: the peak, the day and its start, and the buffered rows."""
        n = b - a
        equity = figures.equity[:n]
        peak = float(equity.max())
        session = self.session
        if peak > state.peak:
            session._peak = peak
        starts = figures.new_day[:n].nonzero()[0]
        if starts.size:  # the equity at the marks before the stretch's last new day
            k = int(starts[-1])
            session._day_start = float(equity[k - 1]) if k else figures.opening
        session._day = int(self.tl.days[b - 1])
        self.equities.extend(equity.tolist())
        self.values.extend(figures.value[:n].tolist())
        self.cash_runs.append((n, self.book.cash))
        self.previous = float(equity[-1])

    def _mark(self, k: int) -> None:
        """Each market's mark in the book at step ``k``: its last close in the run (markets not traded yet
        keep theirs)."""
        c0 = self.c0
        if c0 <= k < self.c1:
            row = self.marks[k - c0, :-1].tolist()
        else:
            tl = self.tl
            rows = tl.last_row[k]
            row = np.where(rows >= 0, tl.closes[np.maximum(rows, 0), self.cols], np.nan).tolist()
        marks = self.book.marks
        for symbol, mark in zip(self.symbols, row, strict=True):
            if mark == mark:
                marks[symbol] = mark

    def _act(self, k: int) -> None:
        """The step at position ``k``: on floats, or the full step where a signal failed or failures are counted."""
        session, tl = self.session, self.tl
        if tl.other[k] or session._model_failures:
            self._flush(k)
            session.step(int(tl.ts[k]), _closes_at(self.symbols, tl.closes[k]), self.signals[k])
            self._held = None
            self._start_buffer(k + 1)
            self.previous = None
            return
        book = self.book
        timestamp = int(tl.ts[k])
        record = StepRecord(PORTFOLIO, session.timeframe, timestamp, 0.0)
        session._now = timestamp + self.tf_ms
        day = timestamp // DAY_MS
        if day != session._day:  # the day starts at the marks before this step's closes
            if k > 0:
                self._mark(k - 1)
            session._new_day(record, day)
        self._mark(k)
        value = book.position_value()
        session._valued = (record, 0, value)
        equity = book.cash + value
        if equity > session._peak:
            session._peak = equity
        if session._status is not _HALTED and (equity < session._peak * session._dd_keep
                                               or equity < session._day_start * session._daily_keep):
            session._check_breakers(record, equity)
        self._orders(record, k, equity)
        # what the step commits
        store = self.store
        if record.events:
            store.events.extend(record.events)
        if record.orders:
            for order in record.orders:
                store.orders_by_id[order.order.client_order_id] = order
            store.fill_records.extend(record.fills)
        value = session._position_value_in(record)
        cash = book.cash
        after = cash + value
        self.equities.append(after)
        self.values.append(value)
        self.cash_runs.append((1, cash))
        if record.fills:
            self._held = None
            self.changes.append((k, self._positions().q_all))
        self.previous = after

    def _orders(self, record: StepRecord, k: int, equity: float) -> None:
        """:meth:`PortfolioSession._on_signals` for valid plain signals (no failure, no failure counted):
        sells then buys, each side in symbol order."""
        session, tl = self.session, self.tl
        sells = tl.sells[k].nonzero()[0].tolist()
        buys = tl.buys[k].nonzero()[0].tolist()
        if not (sells or buys) or session._status is _HALTED:
            return
        sizes = tl.size[k]
        symbols = self.symbols
        book = self.book
        marks = book.marks
        limits = session.limits
        for j in sells:
            symbol = symbols[j]
            held = book.quantity(symbol)
            if held <= 0:
                continue
            size = sizes.item(j)
            price = marks[symbol]
            quantity = held if size >= 1.0 else self.rules[j].round_quantity(held * size)
            if quantity <= 0 or quantity * price < self.rules[j].min_notional:
                continue
            self._execute(record, k, j, Side.SELL, quantity, price)
        fraction = limits.max_position_fraction
        cap = limits.max_position_notional
        band = session.rebalance_band
        factors, lot_parts, floors, rules_of = self.factor_l, self.lot_part_l, self.floor_l, self.rules
        for j in buys:
            if session._status is not _ACTIVE:  # no buy is sent (the status only gets stricter within a step)
                break
            symbol = symbols[j]
            price = marks[symbol]
            # a buy that cannot reach the minimum notional with the cash left is never sent (quiet._affordable)
            if book.cash / factors[j] * (1 + 1e-9) + lot_parts[j] * price < floors[j]:
                continue
            now = book.cash + session._position_value_in(record) if record.fills else equity
            target = sizes.item(j) * fraction * (now if now < equity else equity)
            if target > cap:
                target = cap
            shortfall = target - book.quantity(symbol) * price
            if shortfall <= 0 or shortfall < band * target:
                continue
            rules = rules_of[j]
            notional = min(shortfall, limits.max_order_notional, book.cash / rules.buy_cost_factor)
            quantity = rules.round_quantity(notional / price)
            if quantity <= 0 or quantity * price < rules.min_notional:
                continue
            self._execute(record, k, j, Side.BUY, quantity, price)

    def _execute(self, record: StepRecord, k: int, j: int, side: Side, quantity: float, price: float) -> None:
        """:meth:`PortfolioSession._execute` of an order every core rule visibly approves (the paper broker's
        fill and the book's accounting); any other order goes through the session's own ``_execute``."""
        session = self.session
        symbol, ts = self.symbols[j], record.timestamp
        cid = client_order_id(session.strategy, symbol, ts, 0)
        order = OrderRequest(strategy=session.strategy, symbol=symbol, side=side, quantity=quantity, price=price,
                             client_order_id=cid, timestamp=ts)
        if not session._visibly_approved(self.audit_limits, record, symbol, side is Side.BUY, quantity, price):
            session._execute(record, order, None)
            return
        record.events += (RiskEvent(ts, "audit", "APPROVED", "approved", cid, True),)
        # PaperBroker.execute
        rules = self.broker_rules[j]
        quantity, fill_price, fee = paper_fill(rules, side, quantity, price, self._half_spread(k, j, ts), self.book.cash)
        if quantity <= 0 or quantity * price < rules.min_notional:
            execution = Execution.rejected(
                f"order value {quantity * price:,.2f} is below the minimum notional {rules.min_notional:,.2f}"
                + (" (not enough cash)" if quantity < order.quantity else ""))
            session._book_execution(record, order, execution)
            return
        fill = Fill(client_order_id=cid, symbol=symbol, side=side, quantity=quantity, price=fill_price, fee=fee,
                    timestamp=session._now, trade_id=f"paper-{cid}")
        # TradingSession._book_execution of one fill
        realized = self.book.apply_fill(fill)
        record.fills += (FillRecord(fill, realized),)
        if side is Side.SELL:
            if realized < 0:
                session._consecutive_losses += 1
            elif realized > 0:
                session._consecutive_losses = 0
        message = "" if quantity == order.quantity else f"reduced from {order.quantity:g} to fit the cash"
        record.orders += (OrderRecord(order, OrderStatus.FILLED, 0 + quantity, None, message),)
        if session._consecutive_losses >= session.limits.max_consecutive_losses:
            session._check_breakers(record, session.equity)
