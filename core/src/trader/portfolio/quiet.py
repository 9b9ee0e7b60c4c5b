"""The basket backtest's fast path: quiet steps of :class:`PortfolioSession` taken in bulk with numpy.

Most steps of a basket backtest change nothing but the marks: no market's signal can
propose an order (``None``, ``HOLD``, a ``SELL`` of a market not held, a ``BUY`` whose
position is within the rebalance band of its target, anything while halted, a ``BUY``
while reducing) and no breaker trips. For such a step :meth:`PortfolioSession.step` only
marks the trading markets, computes ``equity = cash + sum(quantity * mark)`` (the book's
sum, positions in the book's order), raises the peak, starts a new UTC day and commits the
account and each trading market's row. :func:`run_quiet` does that arithmetic for a stretch
of steps with numpy (the same float64 operations in the same order, so the same numbers),
commits the stretch in one store call, and takes the full step on each position that could
propose an order or trip a breaker. When in doubt a position takes the full step. Within
the run, an order that every core risk rule visibly approves is approved without the audit's
value objects, as the audit would approve it (:meth:`PortfolioSession.approving_at_sight`:
only with no plugin risk rule and the audit's log silenced, as backtests silence it).

A position takes the full step when, against the state after the previous full step:

- a trading market's signal is not a valid plain :class:`~trader.types.Signal` (an exception,
  another type, a forged one: :func:`trader.strategy.signal_problem`), or a valid signal
  arrives while ``model_failures`` is not zero;
- status not halted: a trading market's ``SELL`` while it is held, or the drawdown or
  daily-loss breaker condition at the step's equity;
- status active: a trading market's ``BUY`` with ``shortfall > 0`` and
  ``shortfall >= band * target`` (the step's own test);
- status reducing: a new UTC day.

It applies only to a fresh stretch of the timeline (every time after the last processed
one and after every market's last traded candle, valid closes), a store that takes
stretches in bulk (:meth:`MemoryState.commit_quiet_basket`, no step records kept) and no
``on_commit`` listener; otherwise :func:`run_quiet` returns ``None`` and the caller steps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from trader.strategy import signal_problem
from trader.timeframes import DAY_MS
from trader.types import Signal, SignalAction, TradingStatus

if TYPE_CHECKING:
    from trader.portfolio.session import BasketQuietState, PortfolioSession

__all__ = ["run_quiet"]

_NONE, _HOLD, _BUY, _SELL, _OTHER = 0, 1, 2, 3, 4
_KIND_OF_ACTION = {SignalAction.HOLD: _HOLD, SignalAction.BUY: _BUY, SignalAction.SELL: _SELL}
#: Window of steps looked at in one go: small after a full step (the next may be close), doubling while quiet.
_MIN_WINDOW, _MAX_WINDOW = 32, 4096


def _supported(session: PortfolioSession) -> bool:
    store = session.store
    return (callable(getattr(store, "commit_quiet_basket", None)) and not getattr(store, "keep_steps", True)
            and session.on_commit is None)


def _classify(signals: Sequence[Mapping[str, Any] | None], symbols: Sequence[str], shape: tuple[int, int]
              ) -> tuple[np.ndarray, np.ndarray]:
    """Kind (``_NONE`` ... ``_OTHER``) and size of each market's signal at each position.

    Each object is looked at once; signals equal in every field the check reads, field types
    included, are checked once (:func:`trader.strategy.signal_problem` on the first of them):
    a per-market strategy's answers are often many copies of a few signals.
    """
    from trader.portfolio.signals import BasketAnswers

    empty: Mapping[str, Any] = {}
    columnar = isinstance(signals, BasketAnswers) and signals.symbols == tuple(symbols)
    answers = [] if columnar else [answer or empty for answer in signals]
    seen: dict[Any, int] = {}
    kinds: list[int] = [_NONE]
    sizes: list[float] = [0.0]
    slot_of: dict[int, int] = {id(None): 0}
    kind = np.zeros(shape, dtype=np.int8)
    size = np.zeros(shape, dtype=np.float64)
    for j, symbol in enumerate(symbols):
        column = signals.column(symbol) if columnar else [answer.get(symbol) for answer in answers]  # type: ignore[attr-defined]
        for key, signal in dict(zip(map(id, column), column, strict=True)).items():
            if key in slot_of:
                continue
            if type(signal) is Signal:
                action, value, confidence, probability = signal.action, signal.size, signal.confidence, signal.probability
                content: Any = (type(action), action, type(value), value, type(confidence), confidence,
                                type(probability), probability, type(signal.reason))
            else:
                content = key
            slot = seen.get(content)
            if slot is None:
                slot = seen[content] = len(kinds)
                if signal is not None and signal_problem(signal) is None:
                    kinds.append(_KIND_OF_ACTION.get(signal.action, _OTHER))
                    sizes.append(float(signal.size))
                else:
                    kinds.append(_OTHER)
                    sizes.append(0.0)
            slot_of[key] = slot  # the signals outlive this function: an id is not reused meanwhile
        slots = np.fromiter(map(slot_of.__getitem__, map(id, column)), dtype=np.intp, count=len(column))
        kind[:, j] = np.asarray(kinds, dtype=np.int8)[slots]
        size[:, j] = np.asarray(sizes, dtype=np.float64)[slots]
    return kind, size


def _closes_at(symbols: tuple[str, ...], row: np.ndarray) -> dict[str, float]:
    return {symbols[j]: float(row[j]) for j in np.flatnonzero(row == row).tolist()}


def run_quiet(session: PortfolioSession, timestamps: np.ndarray, closes: np.ndarray,
              signals: Sequence[Mapping[str, Any] | None]) -> int | None:
    """Step ``session`` through the timeline, quiet stretches in bulk; the number of steps processed.

    ``closes`` is ``(T, M)``, its columns ``session.symbols``, NaN where a market has no candle.
    Returns ``None`` (having done nothing) where the fast path does not apply.
    """
    if not _supported(session):
        return None
    ts = np.asarray(timestamps)
    if ts.ndim != 1 or ts.size != closes.shape[0] or not np.issubdtype(ts.dtype, np.integer):
        return None
    ts = ts.astype(np.int64, copy=False)
    n = int(ts.size)
    if n == 0:
        return 0
    latest = max([session.last_timestamp or -1, *session.market_last.values()])
    if int(ts[0]) <= latest or (n > 1 and not bool(np.all(np.diff(ts) > 0))):
        return None
    trading = ~np.isnan(closes)
    if not bool(np.all(closes[trading] > 0)) or not bool(np.all(np.isfinite(closes[trading]))):
        return None  # the step refuses such a close: let it say so at its position
    symbols = session.symbols
    kind, size = _classify(signals, symbols, closes.shape)
    kind[~trading] = _NONE  # a market without a candle is not asked
    days = ts // DAY_MS
    with session.approving_at_sight():
        _run(session, ts, closes, signals, trading, kind, size, days)
    return n


def _run(session: PortfolioSession, ts: np.ndarray, closes: np.ndarray, signals: Sequence[Mapping[str, Any] | None],
         trading: np.ndarray, kind: np.ndarray, size: np.ndarray, days: np.ndarray) -> None:
    n = int(ts.size)
    symbols = session.symbols
    step = session.step
    i = 0
    window = _MIN_WINDOW
    while i < n:
        stop = min(n, i + window)
        state = session.quiet_state()
        figures = _figures(session, state, i, stop, days, closes, trading)
        quiet_until = _first_acting(session, state, figures, i, stop, closes, trading, kind, size)
        if quiet_until > i:
            _commit(session, figures, i, quiet_until, ts, closes, trading)
        if quiet_until < stop:  # a position that may act: the full step
            k = quiet_until
            step(int(ts[k]), _closes_at(symbols, closes[k]), signals[k])
            i = k + 1
            window = _MIN_WINDOW
        else:
            i = stop
            window = min(window * 2, _MAX_WINDOW)


class _Stretch(NamedTuple):
    """A window of steps figured with the book as it is: what each step would commit."""

    value: np.ndarray  #: the positions' value at each step
    equity: np.ndarray
    peak: np.ndarray  #: the peak after each step
    day: np.ndarray
    day_start: np.ndarray  #: the day-start equity after each step
    new_day: np.ndarray


def _figures(session: PortfolioSession, state: BasketQuietState, a: int, b: int, days: np.ndarray, closes: np.ndarray,
             trading: np.ndarray) -> _Stretch:
    """Each step of ``[a, b)`` figured as :meth:`PortfolioSession.step` figures it, with the book as it is:
    marks carried forward, ``cash + sum(quantity * mark)`` in the book's order, the peak, the UTC day
    and the day-start equity (the equity at the marks before a new day's closes)."""
    book = session.book
    symbols = session.symbols
    block = closes[a:b]
    rows = np.where(trading[a:b], np.arange(b - a)[:, None], -1)
    np.maximum.accumulate(rows, axis=0, out=rows)
    start = np.asarray([book.marks.get(s, np.nan) for s in symbols], dtype=np.float64)
    marks = np.where(rows >= 0, np.take_along_axis(block, np.maximum(rows, 0), axis=0), start[None, :])
    column = {s: j for j, s in enumerate(symbols)}
    positions = book.positions
    if positions:  # the book's sum, in its order: sum(quantity * mark) added left to right from 0
        parts = np.empty((b - a, len(positions) + 1), dtype=np.float64)
        parts[:, 0] = 0.0
        for p, (symbol, slot) in enumerate(positions.items(), start=1):
            j = column.get(symbol)
            if j is None:
                parts[:, p] = slot[0] * book.marks.get(symbol, slot[1])
            else:
                mark = marks[:, j]
                if np.isnan(start[j]):
                    mark = np.where(np.isnan(mark), slot[1], mark)
                np.multiply(slot[0], mark, out=parts[:, p])
        value = np.add.accumulate(parts, axis=1)[:, -1]
    else:
        value = np.zeros(b - a, dtype=np.float64)
    equity = book.cash + value
    peak = np.maximum.accumulate(np.concatenate(([state.peak], equity)))[1:]
    day = days[a:b]
    previous = np.concatenate(([state.day if state.day is not None else -1], day[:-1]))
    new_day = day != previous
    if state.day is None:
        new_day[0] = True
    before = np.concatenate(([book.equity()], equity[:-1]))  # the equity at the marks before the step
    starts = np.where(new_day, np.arange(b - a), -1)
    np.maximum.accumulate(starts, out=starts)
    day_start = np.where(starts >= 0, before[np.maximum(starts, 0)], state.day_start)
    return _Stretch(value, equity, peak, day, day_start, new_day)


def _first_acting(session: PortfolioSession, state: BasketQuietState, figures: _Stretch, a: int, b: int,
                  closes: np.ndarray, trading: np.ndarray, kind: np.ndarray, size: np.ndarray) -> int:
    """The first position in ``[a, b)`` that needs the full step (``b`` when none does)."""
    k = kind[a:b]
    act = (k == _OTHER).any(axis=1)
    if state.model_failures:
        act |= (k != _NONE).any(axis=1)
    status = state.status
    if status is not TradingStatus.HALTED:
        equity = figures.equity
        quantity = np.asarray([session.book.quantity(s) for s in session.symbols], dtype=np.float64)
        act |= ((k == _SELL) & (quantity > 0)[None, :]).any(axis=1)
        act |= (equity < figures.peak * state.drawdown_keep) | (equity < figures.day_start * state.daily_keep)
        if status is TradingStatus.REDUCING:
            act |= figures.new_day
        elif status is TradingStatus.ACTIVE:
            buys = k == _BUY
            if buys.any():
                target = size[a:b] * state.position_fraction * equity[:, None]
                target = np.where(target > state.max_position_notional, state.max_position_notional, target)
                price = np.where(trading[a:b], closes[a:b], 0.0)
                shortfall = target - quantity[None, :] * price
                wanted = buys & (shortfall > 0) & (shortfall >= state.rebalance_band * target)
                if wanted.any():
                    wanted &= _affordable(session, price)
                act |= wanted.any(axis=1)
    hits = np.flatnonzero(act)
    return a + int(hits[0]) if hits.size else b


def _affordable(session: PortfolioSession, price: np.ndarray) -> np.ndarray:
    """False where no buy can reach a market's minimum notional with the cash left (then the step
    sends none); True where it might. A buy's notional is at most ``cash / buy_cost_factor``, and
    rounding to the lot adds at most ``(1e-9 + 0.005) * lot`` to its quantity (``MarketRules.round_quantity``)."""
    rules = [session.market_rules[s] for s in session.symbols]
    cap = np.asarray([session.book.cash / r.buy_cost_factor for r in rules], dtype=np.float64)
    lot = np.asarray([r.lot_size for r in rules], dtype=np.float64)
    floor = np.asarray([r.min_notional for r in rules], dtype=np.float64)
    return cap * (1 + 1e-9) + 0.006 * lot * price >= floor


def _commit(session: PortfolioSession, figures: _Stretch, a: int, b: int, ts: np.ndarray, closes: np.ndarray,
            trading: np.ndarray) -> None:
    """Take the quiet steps ``[a, b)`` (the first ``b - a`` of ``figures``) in one call."""
    n = b - a
    held = trading[a:b]
    step_of, market_of = np.nonzero(held)
    symbols = session.symbols
    quantity = np.asarray([session.book.quantity(s) for s in symbols], dtype=np.float64)
    close = closes[a:b][held]
    traded = np.flatnonzero(held.any(axis=0))
    last_row = dict(zip(traded.tolist(), (n - 1 - np.argmax(held[::-1, traded], axis=0)).tolist(), strict=True))
    rows = {
        "symbols": symbols,
        "timestamp": ts[a:b][step_of],
        "symbol": market_of,
        "close": close,
        "quantity": quantity[market_of],
        "position_value": quantity[market_of] * close,
        "last_ts": {symbols[j]: int(ts[a + r]) for j, r in last_row.items()},
    }
    last_marks = {symbols[j]: float(closes[a + r, j]) for j, r in last_row.items()}
    session.advance_quietly_basket(
        ts[a:b].tolist(), figures.equity[:n].tolist(), figures.value[:n].tolist(), rows, last_marks,
        peak=float(figures.peak[n - 1]), day=int(figures.day[n - 1]), day_start=float(figures.day_start[n - 1]),
    )
