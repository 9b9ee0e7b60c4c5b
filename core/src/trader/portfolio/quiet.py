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

from collections.abc import Callable, Mapping, Sequence
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
        # a strategy repeats one signal over long runs: each run's first object is looked up, then spread
        ids = np.fromiter(map(id, column), dtype=np.uint64, count=len(column))
        runs = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1]))) if len(column) else np.empty(0, np.intp)
        firsts = [column[k] for k in runs.tolist()]
        for key, signal in dict(zip(map(id, firsts), firsts, strict=True)).items():
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
        at_runs = np.fromiter(map(slot_of.__getitem__, map(id, firsts)), dtype=np.intp, count=len(firsts))
        slots = np.repeat(at_runs, np.diff(np.append(runs, len(column))))
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
    return _take(session, timestamps, closes, signals, lambda tl: _run(session, tl, signals))


def _take(session: PortfolioSession, timestamps: np.ndarray, closes: np.ndarray,
          signals: Sequence[Mapping[str, Any] | None], run: Callable[[_Timeline], None]) -> int | None:
    """``run`` the prepared timeline, orders approved at sight within; the number of steps processed, or
    ``None`` (having done nothing) where a fast path does not apply (:func:`_prepare`)."""
    tl = _prepare(session, timestamps, closes, signals)
    if tl is None or tl.ts.size == 0:
        return None if tl is None else 0
    with session.approving_at_sight():
        run(tl)
    return int(tl.ts.size)


def _prepare(session: PortfolioSession, timestamps: np.ndarray, closes: np.ndarray,
             signals: Sequence[Mapping[str, Any] | None]) -> _Timeline | None:
    """The run's :class:`_Timeline`, or ``None`` where a fast path does not apply: the timeline is not a fresh,
    increasing stretch after everything the session processed, or a close is not a positive number (the
    step refuses it: let it say so at its position)."""
    ts = np.asarray(timestamps)
    if ts.ndim != 1 or ts.size != closes.shape[0] or not np.issubdtype(ts.dtype, np.integer):
        return None
    ts = ts.astype(np.int64, copy=False)
    n = int(ts.size)
    if n:
        latest = max([session.last_timestamp or -1, *session.market_last.values()])
        if int(ts[0]) <= latest or (n > 1 and not bool(np.all(np.diff(ts) > 0))):
            return None
    if bool((closes <= 0).any()) or bool(np.isinf(closes).any()):  # NaN: no candle
        return None
    trading = ~np.isnan(closes)
    kind, size = _classify(signals, session.symbols, closes.shape)
    kind[~trading] = _NONE  # a market without a candle is not asked
    return _timeline(ts, closes, trading, kind, size)


class _Timeline(NamedTuple):
    """The run's inputs and what every window reads of them, figured once for the whole timeline."""

    ts: np.ndarray
    closes: np.ndarray
    trading: np.ndarray
    kind: np.ndarray
    size: np.ndarray
    days: np.ndarray
    last_row: np.ndarray  #: (T, M) the position of each market's last candle at or before each step, -1 before its first
    other: np.ndarray  #: (T,) some market's signal is not a valid plain Signal
    asked: np.ndarray  #: (T,) some market has a signal
    sells: np.ndarray  #: (T, M) a SELL
    buys: np.ndarray  #: (T, M) a BUY
    any_buy: np.ndarray  #: (T,) some market has a BUY
    day_change: np.ndarray  #: (T,) the UTC day differs from the previous step's (the first step: True)


def _timeline(ts: np.ndarray, closes: np.ndarray, trading: np.ndarray, kind: np.ndarray, size: np.ndarray) -> _Timeline:
    n = ts.size
    dtype = np.int32 if n < 2**31 else np.int64
    last_row = np.where(trading, np.arange(n, dtype=dtype)[:, None], dtype(-1))
    np.maximum.accumulate(last_row, axis=0, out=last_row)
    days = ts // DAY_MS
    day_change = np.ones(n, dtype=bool)
    day_change[1:] = days[1:] != days[:-1]
    buys = kind == _BUY
    return _Timeline(ts, closes, trading, kind, size, days, last_row, (kind == _OTHER).any(axis=1),
                     (kind != _NONE).any(axis=1), kind == _SELL, buys, buys.any(axis=1), day_change)


def _run(session: PortfolioSession, tl: _Timeline, signals: Sequence[Mapping[str, Any] | None]) -> None:
    n = int(tl.ts.size)
    symbols = session.symbols
    step = session.step
    ts, closes = tl.ts, tl.closes
    i = 0
    window = _MIN_WINDOW
    while i < n:
        stop = min(n, i + window)
        state = session.quiet_state()
        figures = _figures(session, state, tl, i, stop)
        quiet_until = _first_acting(session, state, figures, tl, i, stop)
        if quiet_until > i:
            _commit(session, state, figures, tl, i, quiet_until)
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
    new_day: np.ndarray  #: whether the step starts a new UTC day
    opening: float  #: the equity before the window's first step (at the marks the book holds)


def _figures(session: PortfolioSession, state: BasketQuietState, tl: _Timeline, a: int, b: int) -> _Stretch:
    """Each step of ``[a, b)`` figured as :meth:`PortfolioSession.step` figures it, with the book as it is:
    marks carried forward, ``cash + sum(quantity * mark)`` in the book's order, and whether the step
    starts a new UTC day."""
    book = session.book
    positions = book.positions
    new_day = tl.day_change[a:b].copy()
    new_day[0] = state.day is None or int(tl.days[a]) != state.day
    opening = book.equity()
    if not positions:
        value = np.zeros(b - a, dtype=np.float64)
        return _Stretch(value, book.cash + value, new_day, opening)
    column = session.column
    marks = book.marks
    # a position's mark: its market's last close within the window, else the book's (the average price when none)
    start = np.asarray([marks.get(symbol, slot[1]) for symbol, slot in positions.items()], dtype=np.float64)
    quantity = np.asarray([slot[0] for slot in positions.values()], dtype=np.float64)
    parts = np.empty((b - a, len(positions) + 1), dtype=np.float64)
    parts[:, 0] = 0.0
    cols = [column.get(symbol, -1) for symbol in positions]
    if min(cols) >= 0:
        at = np.asarray(cols, dtype=np.intp)
        rows = tl.last_row[a:b, at]
        mark = np.where(rows >= a, tl.closes[rows, at[None, :]], start[None, :])
        np.multiply(quantity[None, :], mark, out=parts[:, 1:])
    else:  # a position outside the basket (an account that traded other markets): its mark stays
        for p, j in enumerate(cols, start=1):
            if j < 0:
                parts[:, p] = quantity[p - 1] * start[p - 1]
            else:
                rows = tl.last_row[a:b, j]
                np.multiply(quantity[p - 1], np.where(rows >= a, tl.closes[rows, j], start[p - 1]), out=parts[:, p])
    # the book's sum, in its order: sum(quantity * mark) added left to right from 0
    value = np.add.accumulate(parts, axis=1)[:, -1]
    return _Stretch(value, book.cash + value, new_day, opening)


def _running(state: BasketQuietState, figures: _Stretch) -> tuple[np.ndarray, np.ndarray]:
    """The peak and the day-start equity after each step of the window (the breakers' thresholds)."""
    equity = figures.equity
    peak = np.maximum.accumulate(np.concatenate(([state.peak], equity)))[1:]
    before = np.concatenate(([figures.opening], equity[:-1]))  # the equity at the marks before the step
    starts = np.where(figures.new_day, np.arange(equity.size), -1)
    np.maximum.accumulate(starts, out=starts)
    day_start = np.where(starts >= 0, before[np.maximum(starts, 0)], state.day_start)
    return peak, day_start


def _first_acting(session: PortfolioSession, state: BasketQuietState, figures: _Stretch, tl: _Timeline,
                  a: int, b: int) -> int:
    """The first position in ``[a, b)`` that needs the full step (``b`` when none does)."""
    act = tl.other[a:b]
    if state.model_failures:
        act = act | tl.asked[a:b]
    status = state.status
    if status is not TradingStatus.HALTED:
        quantity = session.quantities()
        held = quantity > 0
        if held.any():
            act = act | tl.sells[a:b][:, held].any(axis=1)
        # with both keeps at or below 0 no equity (never negative) is below a threshold
        if state.drawdown_keep > 0 or state.daily_keep > 0:
            equity = figures.equity
            peak, day_start = _running(state, figures)
            act = act | (equity < peak * state.drawdown_keep) | (equity < day_start * state.daily_keep)
        if status is TradingStatus.REDUCING:
            act = act | figures.new_day
        elif status is TradingStatus.ACTIVE and tl.any_buy[a:b].any():
            buys = tl.buys[a:b]
            equity = figures.equity
            target = tl.size[a:b] * state.position_fraction * equity[:, None]
            target = np.where(target > state.max_position_notional, state.max_position_notional, target)
            price = np.where(tl.trading[a:b], tl.closes[a:b], 0.0)
            shortfall = target - quantity[None, :] * price
            wanted = buys & (shortfall > 0) & (shortfall >= state.rebalance_band * target)
            if wanted.any():
                wanted &= _affordable(session, price)
            act = act | wanted.any(axis=1)
    hits = np.flatnonzero(act)
    return a + int(hits[0]) if hits.size else b


def _affordable(session: PortfolioSession, price: np.ndarray) -> np.ndarray:
    """False where no buy can reach a market's minimum notional with the cash left (then the step
    sends none); True where it might. A buy's notional is at most ``cash / buy_cost_factor``, and
    rounding to the lot adds at most ``(1e-9 + 0.005) * lot`` to its quantity (``MarketRules.round_quantity``)."""
    factor, lot, floor = session.market_constants()
    cap = session.book.cash / factor
    return cap * (1 + 1e-9) + 0.006 * lot * price >= floor


def _commit(session: PortfolioSession, state: BasketQuietState, figures: _Stretch, tl: _Timeline, a: int, b: int) -> None:
    """Take the quiet steps ``[a, b)`` (the first ``b - a`` of ``figures``) in one call."""
    n = b - a
    held = tl.trading[a:b]
    step_of, market_of = np.nonzero(held)
    symbols = session.symbols
    quantity = session.quantities()
    close = tl.closes[a:b][held]
    last = tl.last_row[b - 1]
    traded = np.flatnonzero(last >= a).tolist()
    rows_at = last[traded].tolist()
    rows = {
        "symbols": symbols,
        "timestamp": tl.ts[a:b][step_of],
        "symbol": market_of,
        "close": close,
        "quantity": quantity[market_of],
        "position_value": quantity[market_of] * close,
        "last_ts": {symbols[j]: int(tl.ts[r]) for j, r in zip(traded, rows_at, strict=True)},
    }
    last_marks = {symbols[j]: float(tl.closes[r, j]) for j, r in zip(traded, rows_at, strict=True)}
    equity = figures.equity[:n]
    peak = float(equity.max())
    if not peak > state.peak:
        peak = state.peak
    starts = np.flatnonzero(figures.new_day[:n])
    day_start = state.day_start
    if starts.size:  # the equity at the marks before the stretch's last new day
        k = int(starts[-1])
        day_start = float(equity[k - 1]) if k else figures.opening
    session.advance_quietly_basket(
        tl.ts[a:b].tolist(), equity.tolist(), figures.value[:n].tolist(), rows, last_marks,
        peak=peak, day=int(tl.days[b - 1]), day_start=day_start,
    )
