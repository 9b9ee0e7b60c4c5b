"""The backtest fast path of :meth:`TradingSession.run`: quiet stretches marked in bulk with numpy.

Most candles of a backtest change nothing but the marks: the signal asks for no order
(``None`` in warm-up, ``HOLD``, a ``SELL`` with no position, a ``BUY`` whose position is
already within the rebalance band of its target, any signal while trading is halted, a
``BUY`` while reducing) and no breaker trips. For such a candle the step only computes
``equity = cash + quantity * close + other``, raises the peak, starts a new UTC day and
commits the account. :func:`run_fast` does exactly that arithmetic for a whole stretch
with numpy (the same float64 operations in the same order, so the same numbers), hands
the stretch to the store in one call, and runs the full step
(:meth:`TradingSession.step`: signal -> order -> risk audit -> broker -> store) on each
candle that could propose an order or trip a breaker. When in doubt a candle takes the
full step: the outcome is then the step's by construction.

A candle takes the full step when any of these holds (checked against the state the
session has after the previous full step, which a quiet stretch does not change):

- its timestamp is not after the last processed one (the step skips it with an event);
- its signal is not a valid, plain :class:`~trader.types.Signal` (an exception, another type,
  a subclass, a signal whose fields were forged: :func:`trader.strategy.signal_problem`);
- a signal arrives while ``model_failures`` is not zero (the step resets the counter);
- status not halted: the drawdown or daily-loss breaker condition holds at its close
  (``equity < peak * (1 - max_drawdown)`` or ``equity < day_start * (1 - daily_loss_limit)``);
- status not halted and a position is held: a ``SELL``;
- status active: a ``BUY`` with ``shortfall > 0`` and ``shortfall >= band * target``
  (the step's own test, ``target = min(size * f * equity, max_position_notional)``);
- status reducing: a new UTC day (the daily-loss status may reset).

Only a :class:`~trader.engine.store.BulkStore` (:class:`~trader.engine.memory.MemoryState`
without ``keep_steps``) takes quiet stretches in bulk; other stores get one commit per
candle as before.

This module reads the session through one named view, :class:`QuietView`
(:meth:`TradingSession.quiet_view`, taken again after every full step), and changes it
through one method, :meth:`TradingSession.advance_quietly`; it touches no private
attribute of the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from trader.engine.store import BulkStore, missing_members
from trader.strategy import signal_problem
from trader.timeframes import DAY_MS
from trader.types import SignalAction, TradingStatus

if TYPE_CHECKING:
    import numpy as np

    from trader.engine.step import TradingSession

__all__ = ["QuietView", "run_fast", "supports_fast_path"]


#: Signal kinds of :func:`_classify`.
_NONE, _HOLD, _BUY, _SELL, _OTHER = 0, 1, 2, 3, 4
#: A stretch is first marked in plain Python (numpy's per-call cost loses on short stretches) for up to
#: ``_PYTHON_SPAN`` candles, then in numpy windows that grow from ``_MIN_WINDOW`` to ``_MAX_WINDOW``.
_PYTHON_SPAN, _MIN_WINDOW, _MAX_WINDOW = 128, 512, 1 << 16
_KIND_OF_ACTION = {SignalAction.HOLD: _HOLD, SignalAction.BUY: _BUY, SignalAction.SELL: _SELL}


class QuietView(NamedTuple):
    """What the fast path reads of a session between two full steps."""

    last_ts: int  #: open time of the last processed candle, -1 before the first
    status: TradingStatus
    model_failures: int
    quantity: float  #: the session's position in its symbol
    cash: float
    other_value: float  #: the value of positions in other symbols
    peak: float
    day: int | None  #: the UTC day (``timestamp // DAY_MS``) of the last step
    day_start: float
    mark: float  #: the last mark (the average price before any)
    drawdown_keep: float  #: ``1 - max_drawdown``
    daily_keep: float  #: ``1 - daily_loss_limit``
    position_fraction: float
    max_position_notional: float
    rebalance_band: float


def supports_fast_path(session: TradingSession) -> bool:
    """Whether ``session``'s store takes quiet stretches in one call and wants no step records."""
    store = session.store
    # missing_members checks the protocol's members one by one: past it, the store is a BulkStore
    return not missing_members(store, BulkStore) and not cast("BulkStore", store).keep_steps


def _classify(signals: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Kind (``_NONE`` ... ``_OTHER``) and BUY size of each signal; shared objects are looked at once."""
    import numpy as np

    n = len(signals)
    by_id = dict(zip(map(id, signals), signals, strict=True))
    slot_of: dict[int, int] = {}
    kinds_table: list[int] = []
    sizes_table: list[float] = []
    for key, signal in by_id.items():
        slot_of[key] = len(kinds_table)
        size = 0.0
        if signal is None:
            kind = _NONE
        elif signal_problem(signal) is None:  # subclasses and forged signals take the full step (INVALID_SIGNAL)
            kind = _KIND_OF_ACTION.get(signal.action, _OTHER)
            size = float(signal.size)
        else:
            kind = _OTHER
        kinds_table.append(kind)
        sizes_table.append(size)
    slots = np.fromiter(map(slot_of.__getitem__, map(id, signals)), dtype=np.intp, count=n)
    return np.asarray(kinds_table, dtype=np.int8)[slots], np.asarray(sizes_table, dtype=np.float64)[slots]


def _next_index(mask: np.ndarray) -> np.ndarray:
    """``out[i]`` = the first ``j >= i`` where ``mask[j]``, else ``len(mask)`` (``out`` has one extra slot)."""
    import numpy as np

    n = mask.size
    positions = np.where(mask, np.arange(n), n)
    out = np.empty(n + 1, dtype=np.intp)
    out[n] = n
    out[:n] = np.minimum.accumulate(positions[::-1])[::-1]
    return out


def run_fast(session: TradingSession, timestamps: Sequence[int] | np.ndarray, closes: Sequence[float] | np.ndarray,
             signals: Sequence[Any]) -> int | None:
    """Step ``session`` through the candles, quiet stretches in bulk; the number processed.

    Returns ``None`` (having done nothing) when the inputs are not plain integer
    timestamps and float closes, so that the caller takes the per-candle path.
    """
    import numpy as np

    try:
        ts = np.asarray(timestamps)
        close = np.asarray(closes, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if ts.ndim != 1 or close.ndim != 1 or ts.dtype.kind not in "iu" or len(ts) != len(close):
        return None
    ts = ts.astype(np.int64, copy=False)
    n = len(ts)
    if n == 0:
        return 0
    kinds, sizes = _classify(signals)

    # what does not depend on the account: skipped candles, failed signals, days
    start_view = session.quiet_view()
    last_before = np.empty(n, dtype=np.int64)
    last_before[0] = start_view.last_ts
    if n > 1:
        np.maximum.accumulate(ts[:-1], out=last_before[1:])
        np.maximum(last_before[1:], start_view.last_ts, out=last_before[1:])
    days = ts // DAY_MS
    new_day = np.zeros(n, dtype=bool)
    new_day[1:] = days[1:] != days[:-1]
    next_static = _next_index((ts <= last_before) | (kinds == _OTHER))
    next_sell = _next_index(kinds == _SELL)
    next_buy = _next_index(kinds == _BUY)
    next_signal = _next_index((kinds == _HOLD) | (kinds == _BUY) | (kinds == _SELL))
    next_day = _next_index(new_day)

    ts_list = ts.tolist()
    close_list = close.tolist()
    kind_list = kinds.tolist()
    size_list = sizes.tolist()
    step = session.step
    halted, reducing = TradingStatus.HALTED, TradingStatus.REDUCING
    done = 0
    i = 0
    while i < n:
        view = session.quiet_view()
        status = view.status
        stop = int(next_static[i])
        if view.model_failures:
            stop = min(stop, int(next_signal[i]))
        if status is not halted and view.quantity > 0:
            stop = min(stop, int(next_sell[i]))
        if status is reducing:  # a new day may reset the daily-loss status: full step
            stop = min(stop, i if days[i] != view.day else int(next_day[i + 1]))
        # short stretches in plain Python, long ones in numpy windows
        python_stop = min(stop, i + _PYTHON_SPAN)
        end = _quiet_python(session, view, i, python_stop, ts_list, close_list, kind_list, size_list)
        if end == python_stop < stop:
            window = _MIN_WINDOW
            while end < stop:
                view = session.quiet_view()
                limit = min(stop, end + window)
                found = _quiet_end(view, end, limit, close, days, new_day, sizes, kinds, next_buy)
                if found > end:
                    _commit_numpy(session, view, ts_list, close_list, close, days, new_day, end, found)
                end = found
                if found < limit:
                    break
                window = min(window * 4, _MAX_WINDOW)
        done += end - i
        if end < n and step(ts_list[end], close_list[end], signals[end]).skipped is None:
            done += 1
        i = end + 1
    return done


def _quiet_python(session: TradingSession, view: QuietView, start: int, stop: int, ts_list: list[int],
                  close_list: list[float], kind_list: list[int], size_list: list[float]) -> int:
    """Mark the quiet candles of ``[start, stop)`` one by one (the step's own float expressions);
    returns the first that needs the full step, or ``stop``."""
    if stop <= start:
        return start
    status = view.status
    check_breakers = status is not TradingStatus.HALTED
    buys_trade = status is TradingStatus.ACTIVE
    reducing = status is TradingStatus.REDUCING
    qty, cash, other = view.quantity, view.cash, view.other_value
    peak, day, day_start, mark = view.peak, view.day, view.day_start, view.mark
    dd_keep, daily_keep = view.drawdown_keep, view.daily_keep
    fraction, max_position, band = view.position_fraction, view.max_position_notional, view.rebalance_band
    equities: list[float] = []
    position_values: list[float] = []
    j = start
    while j < stop:
        close = close_list[j]
        d = ts_list[j] // DAY_MS
        new_start = day_start
        if d != day:
            if reducing:
                break
            new_start = cash + qty * mark + other
        equity = cash + qty * close + other
        new_peak = equity if equity > peak else peak
        if check_breakers and (equity < new_peak * dd_keep or equity < new_start * daily_keep):
            break
        if buys_trade and kind_list[j] == _BUY:
            target = size_list[j] * fraction * equity
            if target > max_position:
                target = max_position
            shortfall = target - qty * close
            if not (shortfall <= 0 or shortfall < band * target):
                break
        day, day_start, peak, mark = d, new_start, new_peak, close
        equities.append(equity)
        position_values.append(qty * close + other)
        j += 1
    if j > start:
        session.advance_quietly(ts_list[start:j], close_list[start:j], equities, position_values,
                                peak=peak, day=day, day_start=day_start)
    return j


def _quiet_end(view: QuietView, start: int, stop: int, close: np.ndarray, days: np.ndarray,
               new_day: np.ndarray, sizes: np.ndarray, kinds: np.ndarray, next_buy: np.ndarray) -> int:
    """The first candle in ``[start, stop)`` whose equity makes it take the full step, else ``stop``
    (numpy, the same float64 operations as the step)."""
    import numpy as np

    check_breakers = view.status is not TradingStatus.HALTED
    buys_trade = view.status is TradingStatus.ACTIVE
    fraction, max_position, band = view.position_fraction, view.max_position_notional, view.rebalance_band
    dd_keep, daily_keep = view.drawdown_keep, view.daily_keep
    has_buy = buys_trade and int(next_buy[start]) < stop
    if not (check_breakers or has_buy):
        return stop
    c = close[start:stop]
    qty, cash, other = view.quantity, view.cash, view.other_value
    held_value = c * qty
    equity = held_value + cash
    equity += other
    flagged = None
    if check_breakers:
        peak = np.fmax.accumulate(equity)
        np.fmax(peak, view.peak, out=peak)
        flagged = equity < peak * dd_keep
        day_start = _day_starts(view, start, stop, close, days, new_day)
        flagged |= equity < day_start * daily_keep
    if has_buy:
        target = sizes[start:stop] * fraction * equity
        np.minimum(target, max_position, out=target)  # the step's `if target > max: target = max`
        shortfall = target - held_value
        trades = (kinds[start:stop] == _BUY) & ~((shortfall <= 0) | (shortfall < band * target))
        flagged = trades if flagged is None else flagged | trades
    if flagged is None:
        return stop
    first = int(flagged.argmax())
    return start + first if flagged[first] else stop


def _day_changes(view: QuietView, start: int, stop: int, days: np.ndarray, new_day: np.ndarray) -> np.ndarray:
    """Positions (relative to ``start``) in ``[start, stop)`` where the step starts a new UTC day."""
    import numpy as np

    changes = new_day[start:stop].copy()
    changes[0] = days[start] != view.day
    return np.flatnonzero(changes)


def _day_start_values(view: QuietView, start: int, at: np.ndarray, close: np.ndarray) -> np.ndarray:
    """``cash + qty * mark + other`` with the mark before each relative position ``at`` (``_new_day``)."""
    previous = close[start + at - 1]
    if at[0] == 0:
        previous[0] = view.mark
    values = previous * view.quantity + view.cash
    values += view.other_value
    return values


def _day_starts(view: QuietView, start: int, stop: int, close: np.ndarray, days: np.ndarray,
                new_day: np.ndarray) -> float | np.ndarray:
    """Day-start equity at each candle of ``[start, stop)``, as the step's ``_new_day`` sets it."""
    import numpy as np

    at = _day_changes(view, start, stop, days, new_day)
    if at.size == 0:
        return view.day_start  # one day throughout: a scalar
    values = np.empty(at.size + 1, dtype=np.float64)
    values[0] = view.day_start
    values[1:] = _day_start_values(view, start, at, close)
    which = np.zeros(stop - start, dtype=np.intp)
    which[at] = np.arange(1, at.size + 1)
    np.maximum.accumulate(which, out=which)
    return values[which]


def _commit_numpy(session: TradingSession, view: QuietView, ts_list: list[int], close_list: list[float],
                  close: np.ndarray, days: np.ndarray, new_day: np.ndarray, start: int, end: int) -> None:
    """Advance the session over the quiet candles ``[start, end)`` with numpy and hand them to the store."""
    import numpy as np

    held_value = close[start:end] * view.quantity
    equity = held_value + view.cash
    equity += view.other_value
    position_value = held_value + view.other_value
    peak = float(np.fmax.accumulate(equity)[-1])
    day, day_start = view.day, view.day_start
    at = _day_changes(view, start, end, days, new_day)
    if at.size:
        day_start = float(_day_start_values(view, start, at[-1:], close)[0])
        day = int(days[end - 1])
    session.advance_quietly(ts_list[start:end], close_list[start:end], equity.tolist(), position_value.tolist(),
                            peak=peak if peak > view.peak else view.peak, day=day, day_start=day_start)
