"""The float-only simulation of a backtest: :class:`TradingSession`'s step on plain floats.

A backtest (:func:`trader.backtest.runner.simulate`) starts a fresh account on an in-memory
store and asks only for the equity curve, the fills, the risk events and the final status.
:func:`simulate_floats` computes exactly those, with the step's own float expressions in the
step's order (:mod:`trader.engine.step`), without building a :class:`~trader.engine.records.StepRecord`,
an order, a fill or a portfolio snapshot per candle or per order:

- candles that can neither order nor trip a breaker are taken in bulk: between two candles
  that may act, the account is constant, so the highest equity of a stretch is the equity at
  its highest close and the lowest at its lowest (``cash + quantity * close`` is monotone in
  ``close`` for a long position, rounding included); a stretch whose lowest equity is above
  every breaker threshold is passed in one go, any other is checked candle by candle;
- a candle that may act (a ``BUY`` while active, a ``SELL`` while holding, a failed signal,
  a new day while reducing, a breaker condition) takes :func:`_Sim.full`, the step on floats;
  a ``BUY`` whose target the held position already meets (no shortfall, or one under the
  rebalance band: buy-and-hold asks on every candle) cannot order and is taken in bulk;
- an order whose every core rule visibly passes is approved without the audit's value
  objects (the ``APPROVED`` event the audit would give); any other order, and every order
  when a plugin adds risk rules (``trader_audit_order``), goes through
  :meth:`RiskAuditAgent.audit` with real objects, as the step does;
- the paper broker's fill (spread per candle, slippage, fee, lots, minimum notional, the
  cash shrink) and the book's accounting are the same expressions as
  :class:`~trader.engine.brokers.paper.PaperBroker` and :class:`~trader.engine.book.Book`.

The property test ``tests/engine/test_engine_fastsim.py`` holds it to ``TradingSession.run(...,
fast=False)`` trade for trade and event for event. It writes no log line (a backtest silences
the engine's). :func:`simulate_floats` returns ``None`` where it does not apply (a session that
is not fresh, another broker, a store that keeps step records, timestamps that are not
strictly increasing integers); the caller then takes the step.
"""

from __future__ import annotations

import math
import types
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from attrs import frozen

from trader.engine.book import DUST
from trader.engine.brokers.paper import PaperBroker
from trader.engine.risk import _SLACK, STATUS_SEVERITY, RiskCode, state_verdicts
from trader.engine.step import client_order_id
from trader.errors import PluginError, StateError
from trader.strategy import signal_problem
from trader.timeframes import DAY_MS
from trader.types import (
    AuditContext,
    Fill,
    OrderRequest,
    PortfolioSnapshot,
    Position,
    RiskReason,
    Side,
    SignalAction,
    TradingStatus,
)

if TYPE_CHECKING:
    import numpy as np

    from trader.engine.step import TradingSession

__all__ = ["FloatRun", "distinct_objects", "simulate_floats"]

_NONE, _HOLD, _BUY, _SELL, _OTHER = 0, 1, 2, 3, 4
_KIND_OF_ACTION = {SignalAction.HOLD: _HOLD, SignalAction.BUY: _BUY, SignalAction.SELL: _SELL}
_ACTIVE, _REDUCING, _HALTED = TradingStatus.ACTIVE, TradingStatus.REDUCING, TradingStatus.HALTED
#: Stretches longer than this find their lowest and highest close with numpy.
_NUMPY_SPAN = 512


@frozen
class FloatRun:
    """What a backtest reads of a simulation: per candle, and the account at the end."""

    timestamps: np.ndarray
    closes: np.ndarray
    equities: np.ndarray  #: the account's equity after each candle's step
    cash: np.ndarray
    position_values: np.ndarray
    fills: list[dict[str, Any]]  #: as :meth:`MemoryState.fills` gives them
    events: list[dict[str, Any]]  #: as :meth:`MemoryState.risk_events` gives them
    status: TradingStatus
    status_reason: str
    status_since: int | None
    quantity: float
    avg_price: float
    realized_pnl: float
    fees_paid: float
    peak_equity: float
    day: int | None
    day_start_equity: float
    consecutive_losses: int
    model_failures: int


def distinct_objects(items: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
    """``(slots, objects)`` with ``items[i] is objects[slots[i]]``: each distinct object (by identity)
    once, in the order of its first appearance. A strategy's batch repeats a few shared signals over
    every row, so what is decided per signal is decided per object, then spread with ``slots``."""
    import numpy as np
    import pandas as pd

    ids = np.fromiter(map(id, items), dtype=np.uint64, count=len(items))  # hashed in C: no dict of every row
    slots, _ = pd.factorize(ids)  # numbered in the order of first appearance
    firsts = np.flatnonzero(np.diff(np.maximum.accumulate(slots), prepend=-1) > 0) if slots.size else slots
    return slots, [items[i] for i in firsts.tolist()]


def _kinds(signals: Sequence[Any], distinct: tuple[np.ndarray, list[Any]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Kind and size of each signal; shared objects are looked at once."""
    import numpy as np

    slots, objects = distinct if distinct is not None else distinct_objects(signals)
    kinds: list[int] = []
    sizes: list[float] = []
    for signal in objects:
        if signal is None:
            kind, size = _NONE, 0.0
        elif signal_problem(signal) is None:
            kind, size = _KIND_OF_ACTION.get(signal.action, _OTHER), float(signal.size)
        else:
            kind, size = _OTHER, 0.0
        kinds.append(kind)
        sizes.append(size)
    return np.asarray(kinds, dtype=np.int8)[slots], np.asarray(sizes, dtype=np.float64)[slots]


class _Next:
    """The first position ``>= i`` where a mask holds, else ``len(mask)``: a bisection of its true positions."""

    def __init__(self, mask: np.ndarray) -> None:
        import numpy as np

        self.at = np.flatnonzero(mask).tolist()
        self.n = mask.size

    def __getitem__(self, i: int) -> int:
        k = bisect_left(self.at, i)
        return self.at[k] if k < len(self.at) else self.n


def simulate_floats(session: TradingSession, timestamps: Sequence[int] | np.ndarray, closes: Sequence[float] | np.ndarray,
                    signals: Sequence[Any], distinct: tuple[np.ndarray, list[Any]] | None = None) -> FloatRun | None:
    """Simulate ``session`` (fresh: no candle processed, no position) over the candles; ``None``
    (having done nothing) where the float path does not apply. ``session`` itself is not advanced.
    ``distinct``: :func:`distinct_objects` of ``signals`` when the caller has it already."""
    import numpy as np

    if type(session.broker) is not PaperBroker or session.last_timestamp is not None or session.position != 0:
        return None
    if session.status is not _ACTIVE or session.model_failures or session.consecutive_losses or session.recent_errors():
        return None
    if getattr(session.store, "keep_steps", True) or session.on_commit is not None:
        return None
    if session.book.positions.keys() - {session.symbol} or session.book.cash != session.equity:
        return None
    try:
        ts = np.asarray(timestamps)
        close = np.asarray(closes, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    n = len(ts)
    if ts.ndim != 1 or close.ndim != 1 or ts.dtype.kind not in "iu" or n != len(close) or n != len(signals):
        return None
    ts = ts.astype(np.int64, copy=False)
    if n and (ts[0] < 0 or (n > 1 and not bool((ts[1:] > ts[:-1]).all()))):
        return None
    if not bool(np.isfinite(close).all()) or (n and float(close.min()) <= 0):
        return None
    sim = _Sim(session, ts, close, signals, distinct)
    sim.run()
    return sim.result()


class _Sim:
    """One simulation's state: the session's account in local floats."""

    def __init__(self, session: TradingSession, ts: np.ndarray, close: np.ndarray, signals: Sequence[Any],
                 distinct: tuple[np.ndarray, list[Any]] | None = None) -> None:
        import numpy as np

        self.session = session
        self.signals = signals
        self.n = n = len(ts)
        self.ts_arr, self.close_arr = ts, close
        self.ts = ts.tolist()
        self.close = close.tolist()
        kinds, sizes = _kinds(signals, distinct)
        self.kinds, self.sizes = kinds, sizes  # read at the candles that may act only: no list of every candle
        self.next_other = _Next(kinds == _OTHER)
        self.next_buy = _Next(kinds == _BUY)
        self.buy_rows = np.asarray(self.next_buy.at, dtype=np.intp)
        self.next_sell = _Next(kinds == _SELL)
        self._next_signal: _Next | None = None  # made when first needed (a failed signal)
        self._next_day: _Next | None = None  # (reducing)
        days = ts // DAY_MS
        change = np.ones(n, dtype=bool)
        change[1:] = days[1:] != days[:-1]
        self.day_change = change
        self.changes_at = np.flatnonzero(change).tolist()  # candles that start a new UTC day

        limits = session.limits
        self.limits = limits
        broker = cast(PaperBroker, session.broker)  # simulate() runs only on a PaperBroker (checked there)
        self.rules = rules = broker.rules
        self.spreads = broker.spreads
        # the spreads of the candles that may fill, looked up at once (NaN: priced by bps() at the fill)
        may_fill = np.flatnonzero((kinds == _BUY) | (kinds == _SELL))
        self.bps_at = np.full(n, np.nan)
        self.bps_at[may_fill] = self.spreads.known_bps(ts[may_fill])
        self.strategy, self.symbol = session.strategy, session.symbol
        self.tf_ms = session.timeframe_ms
        self.fraction = limits.max_position_fraction
        self.max_position = limits.max_position_notional
        self.max_order = limits.max_order_notional
        self.band = session.rebalance_band
        self.dd_keep = 1.0 - limits.max_drawdown
        self.daily_keep = 1.0 - limits.daily_loss_limit
        self.buy_cost_factor = rules.buy_cost_factor
        self.plugin_rules = len(session.audit.plugins) > 1 or session.audit.fails_closed

        self.cash = session.book.cash
        self.qty = 0.0
        self.avg = session.book.slot(session.symbol)[1]
        self.pos_realized = session.book.slot(session.symbol)[2]
        self.fees = session.book.fees_paid
        self.realized = session.book.realized_pnl
        self.mark = self.avg  # the session's mark before its first candle: the average price
        self.peak = session.peak_equity
        self.day: int | None = None
        self.day_start = session.cash
        self.status = _ACTIVE
        self.status_reason = ""
        self.status_since: int | None = None
        self.losses = 0
        self.failures = 0
        self.errors: deque[int] = deque(maxlen=10_000)
        self.now = 0
        self.current = 0
        self.fills: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.changes: list[tuple[int, float, float]] = []  # (candle, cash, quantity) after a step that traded

    # ------------------------------------------------------------------ the loop

    def run(self) -> None:
        n = self.n
        i = 0
        while i < n:
            status = self.status
            stop = self.next_other[i]
            if self.failures:
                if self._next_signal is None:
                    self._next_signal = _Next(self.kinds != _NONE)
                stop = min(stop, self._next_signal[i])
            if status is not _HALTED and self.qty > 0:
                stop = min(stop, self.next_sell[i])
            if status is _ACTIVE:
                stop = self._next_buy_that_may_order(i, stop)
            elif status is _REDUCING:
                if self._next_day is None:
                    self._next_day = _Next(self.day_change)
                stop = min(stop, self._next_day[i])
            if stop > i:
                stop = self.quiet(i, stop)
            if stop < n:
                self.full(stop)
            i = stop + 1

    def _next_buy_that_may_order(self, i: int, limit: int) -> int:
        """The first ``BUY`` in ``[i, limit)`` that may order, else ``limit``.

        While the account holds a position and no failure is counted, a ``BUY`` whose target the
        position already meets (``shortfall <= 0`` or below the rebalance band, :meth:`_order`'s
        first test on the account as it stands) changes nothing :meth:`quiet` does not do: such
        candles (buy-and-hold asks every candle) are passed in bulk, tested with numpy with a
        margin, so a candle that may order always takes :meth:`full`, which decides exactly.
        """
        first = self.next_buy[i]
        if first >= limit or self.qty <= 0 or self.failures:
            return min(first, limit)
        import numpy as np

        buys = self.buy_rows
        k = bisect_left(self.next_buy.at, first)
        end = bisect_left(self.next_buy.at, limit, lo=k)
        cash, qty = self.cash, self.qty
        width = 64
        while k < end:
            rows = buys[k : min(end, k + width)]
            price = self.close_arr[rows]
            held = qty * price
            equity = cash + held + 0.0
            target = np.minimum(self.sizes[rows] * self.fraction * equity, self.max_position)
            shortfall = target - held
            slack = 1e-9 * np.abs(target)  # err towards the full step: it decides exactly
            may = (shortfall > -slack) & (shortfall >= self.band * target - slack)
            if may.any():
                return int(rows[int(np.argmax(may))])
            k += rows.size
            width *= 4
        return limit

    def quiet(self, lo: int, hi: int) -> int:
        """Advance over ``[lo, hi)`` where only a breaker could act; returns the first candle that must
        take the full step (``hi`` when none)."""
        cash, qty = self.cash, self.qty
        close = self.close
        if hi - lo > _NUMPY_SPAN:
            part = self.close_arr[lo:hi]
            low, high = float(part.min()), float(part.max())
        else:
            part = close[lo:hi]
            low, high = min(part), max(part)
        if self.status is not _HALTED:
            # the lowest equity against the highest thresholds the stretch can reach (module docstring)
            floor = cash + qty * low + 0.0
            top = cash + qty * high + 0.0
            peak = top if top > self.peak else self.peak
            mark_high = self.mark if self.mark > high else high
            day_start = cash + qty * mark_high + 0.0
            if day_start < self.day_start:
                day_start = self.day_start
            if floor < peak * self.dd_keep or floor < day_start * self.daily_keep:
                return self._quiet_exactly(lo, hi)
        top = cash + qty * high + 0.0
        if top > self.peak:
            self.peak = top
        last = hi - 1
        last_day = self.ts[last] // DAY_MS
        if last_day != self.day:
            k = self.changes_at[bisect_right(self.changes_at, last) - 1]  # the last new day within the stretch
            if k >= lo:
                mark = close[k - 1] if k > lo else self.mark
                self.day_start = cash + qty * mark + 0.0
            self.day = last_day
        self.mark = close[last]
        return hi

    def _quiet_exactly(self, lo: int, hi: int) -> int:
        cash, qty = self.cash, self.qty
        close, ts = self.close, self.ts
        peak, day, day_start, mark = self.peak, self.day, self.day_start, self.mark
        dd_keep, daily_keep = self.dd_keep, self.daily_keep
        j = lo
        while j < hi:
            c = close[j]
            d = ts[j] // DAY_MS
            new_start = day_start
            if d != day:
                new_start = cash + qty * mark + 0.0
            equity = cash + qty * c + 0.0
            new_peak = equity if equity > peak else peak
            if equity < new_peak * dd_keep or equity < new_start * daily_keep:
                break
            day, day_start, peak, mark = d, new_start, new_peak, c
            j += 1
        self.peak, self.day, self.day_start, self.mark = peak, day, day_start, mark
        return j

    # ------------------------------------------------------------------ one candle, the step on floats

    def full(self, i: int) -> None:
        """:meth:`TradingSession.step` for candle ``i``."""
        self.current = i
        ts = self.ts[i]
        close = self.close[i]
        self.now = ts + self.tf_ms
        day = ts // DAY_MS
        if day != self.day:
            self.day_start = self.cash + self.qty * self.mark + 0.0
            first = self.day is None
            self.day = day
            if not first and self.status is _REDUCING and self.status_reason.split(":", 1)[0] == RiskCode.DAILY_LOSS_LIMIT:
                self._set_status(ts, _ACTIVE, RiskReason(RiskCode.DAILY_RESET, "a new UTC day: the daily loss limit is reset"))
        prev_mark = self.mark
        self.mark = close
        equity = self.cash + self.qty * close + 0.0
        if equity > self.peak:
            self.peak = equity
        if self.status is not _HALTED and (equity < self.peak * self.dd_keep or equity < self.day_start * self.daily_keep):
            self._check_breakers(ts, equity)
        kind = self.kinds.item(i)
        if kind == _NONE:
            return
        if kind == _OTHER:
            self._signal_failure(ts, self.signals[i])
            return
        self.failures = 0
        if kind == _HOLD or self.status is _HALTED:
            return
        self._order(i, ts, close, equity, prev_mark)

    def _order(self, i: int, ts: int, price: float, equity: float, prev_mark: float) -> None:
        """``_order_for`` and ``_execute``: size the order, audit it, fill it, book it."""
        rules = self.rules
        held = self.qty
        if self.kinds.item(i) == _BUY:
            target = self.sizes.item(i) * self.fraction * equity
            if target > self.max_position:
                target = self.max_position
            shortfall = target - held * price
            if shortfall <= 0 or shortfall < self.band * target:
                return
            notional = min(shortfall, self.max_order, self.cash / self.buy_cost_factor)
            quantity = rules.round_quantity(notional / price)
            buy = True
        else:
            if held <= 0:
                return
            size = self.sizes.item(i)
            quantity = held if size >= 1.0 else rules.round_quantity(held * size)
            buy = False
        if quantity <= 0 or quantity * price < rules.min_notional:
            return
        if self.status is _REDUCING and buy:
            return  # REDUCE_ONLY: a note on the step record, nothing recorded
        cid = client_order_id(self.strategy, self.symbol, ts, 0)
        if not self._approved_at_sight(ts, cid, buy, quantity, price, prev_mark) \
                and not self._audit(ts, cid, buy, quantity, price, prev_mark):
            return
        self._fill(ts, cid, buy, quantity, price)

    def _approved_at_sight(self, ts: int, cid: str, buy: bool, quantity: float, price: float, prev_mark: float) -> bool:
        """Whether the core's rules visibly all pass (:func:`~trader.engine.risk.core_verdicts`), no plugin rule
        being there: the audit's decision is then one approval, recorded as ``APPROVED``."""
        if self.plugin_rules:
            return False
        limits = self.limits
        held = self.qty
        # the audit's portfolio equity: the book's marks hold the previous candle's close
        equity = self.cash + (held * prev_mark)
        if self.peak > 0 and equity < self.peak * (1 - limits.max_drawdown):
            return False
        if self.day_start > 0 and equity < self.day_start * (1 - limits.daily_loss_limit):
            return False
        if self.losses >= limits.max_consecutive_losses or (self._recent_errors() if self.errors else 0) >= limits.max_errors:
            return False
        if self.failures >= limits.max_model_failures:
            return False
        if self.status is _HALTED or (self.status is _REDUCING and buy):
            return False
        # STALE_DATA never applies: a backtest's clock is the candle's close (age 0)
        if not buy and quantity > held * (1 + _SLACK):
            return False
        if buy:
            notional = quantity * price
            after = (held + quantity) * price
            if notional > limits.max_order_notional * (1 + _SLACK) or after > limits.max_position_notional * (1 + _SLACK):
                return False
            if after > limits.max_position_fraction * equity * (1 + _SLACK) or notional > self.cash * (1 + _SLACK):
                return False
        self.events.append(self._event(ts, "audit", "APPROVED", "approved", cid, True))
        return True

    def _audit(self, ts: int, cid: str, buy: bool, quantity: float, price: float, prev_mark: float) -> bool:
        """The real audit on real objects (what :meth:`TradingSession._execute` does with its decision)."""
        session = self.session
        order = OrderRequest(strategy=self.strategy, symbol=self.symbol, side=Side.BUY if buy else Side.SELL,
                             quantity=quantity, price=price, client_order_id=cid, timestamp=ts)
        position = Position(self.symbol, self.qty, self.avg, self.pos_realized)
        snapshot = PortfolioSnapshot(cash=self.cash, equity=self.cash + (0 + self.qty * prev_mark),
                                     positions=types.MappingProxyType({self.symbol: position}),
                                     peak_equity=self.peak, day_start_equity=self.day_start)
        decision = session.audit.audit(order, snapshot, self._context(ts))
        if decision.approved:
            self.events.append(self._event(ts, "audit", "APPROVED", "approved", cid, True))
        else:
            for reason in decision.denials:
                self.events.append(self._event(ts, "audit", reason.code, reason.message, cid, False))
        if decision.status is not None:
            reason = decision.status_reason or RiskReason("RISK_STATUS", "requested by a risk rule")
            self._escalate(ts, decision.status, reason)
        return decision.approved

    def _fill(self, ts: int, cid: str, buy: bool, quantity: float, reference: float) -> None:
        """:meth:`PaperBroker.execute`, then ``_book_execution`` and :meth:`Book.apply_fill`."""
        rules = self.rules
        ordered = quantity
        bps = self.bps_at.item(self.current)
        if bps != bps:
            bps = self.spreads.bps(ts)
        half_spread = bps / 20_000
        cash = self.cash
        if buy:
            price = reference * (1 + half_spread + rules.slippage_rate)
            fee = quantity * price * rules.fee_rate
            if quantity * price + fee > cash:
                quantity = rules.round_quantity(cash / (price * (1 + rules.fee_rate)))
                fee = quantity * price * rules.fee_rate
                while quantity > 0 and quantity * price + fee > cash:
                    quantity = rules.round_quantity(quantity - max(rules.lot_size, quantity * 1e-12))
                    fee = quantity * price * rules.fee_rate
        else:
            price = reference * (1 - half_spread - rules.slippage_rate)
            fee = quantity * price * rules.fee_rate
        if quantity <= 0 or quantity * reference < rules.min_notional:
            message = (f"order value {quantity * reference:,.2f} is below the minimum notional {rules.min_notional:,.2f}"
                       + (" (not enough cash)" if quantity < ordered else ""))
            self._record_error(ts, RiskCode.ORDER_REJECTED, message, cid)
        else:
            if not (price > 0 and math.isfinite(price)):  # the broker's Fill refuses it: the same error
                Fill(cid, self.symbol, Side.BUY if buy else Side.SELL, quantity, price, fee, self.now, f"paper-{cid}")
            realized = self._book(cid, buy, quantity, price, fee)
            self.fills.append({
                "client_order_id": cid, "trade_id": f"paper-{cid}", "symbol": self.symbol,
                "side": "buy" if buy else "sell", "quantity": quantity, "price": price, "fee": fee,
                "timestamp": self.now, "realized_pnl": realized,
            })
            if not buy:
                if realized < 0:
                    self.losses += 1
                elif realized > 0:
                    self.losses = 0
            self.changes.append((self.current, self.cash, self.qty))
        if self.losses >= self.limits.max_consecutive_losses:
            self._check_breakers(ts, self.cash + self.qty * self.mark + 0.0)

    def _book(self, cid: str, buy: bool, quantity: float, price: float, fee: float) -> float:
        if buy:
            cost = quantity * price + fee
            if cost > self.cash:
                raise StateError(f"fill {cid}: buying {quantity:g} {self.symbol} costs {cost:,.8f}, "
                                 f"more than the cash {self.cash:,.8f}")
            held = self.qty
            new_quantity = held + quantity
            self.avg = (held * self.avg + quantity * price + fee) / new_quantity
            self.qty = new_quantity
            self.cash -= cost
            self.fees += fee
            return 0.0
        held = self.qty
        if quantity > held * (1 + 1e-9) + DUST:
            raise StateError(f"fill {cid}: selling {quantity:g} {self.symbol}, more than the position {held:g}")
        proceeds = quantity * price - fee
        if self.cash + proceeds < 0:
            raise StateError(f"fill {cid}: fee {fee:g} exceeds the sale's proceeds")
        realized = quantity * (price - self.avg) - fee
        remaining = held - quantity
        if remaining <= held * DUST:
            self.qty = 0.0
            self.avg = 0.0
        else:
            self.qty = remaining
        self.pos_realized += realized
        self.cash += proceeds
        self.fees += fee
        self.realized += realized
        return realized

    # ------------------------------------------------------------------ breakers, failures, errors

    def _recent_errors(self) -> int:
        horizon = self.now - self.limits.error_window_s * 1000
        errors = self.errors
        while errors and errors[0] < horizon:
            errors.popleft()
        return len(errors)

    def _context(self, ts: int) -> AuditContext:
        return AuditContext(strategy=self.strategy, now=max(0, int(self.now)), status=self.status, timeframe_ms=self.tf_ms,
                            last_candle_ts=ts, consecutive_losses=self.losses, recent_errors=self._recent_errors(),
                            model_failures=self.failures, last_inference_ms=None)

    def _check_breakers(self, ts: int, equity: float) -> None:
        for verdict in state_verdicts(equity, self.peak, self.day_start, self.limits, self._context(ts)):
            if verdict.status is not None and verdict.reasons:
                self._escalate(ts, verdict.status, verdict.reasons[0])

    def _escalate(self, ts: int, status: TradingStatus, reason: RiskReason) -> None:
        if STATUS_SEVERITY[status] > STATUS_SEVERITY[self.status]:
            self._set_status(ts, status, reason)

    def _set_status(self, ts: int, status: TradingStatus, reason: RiskReason) -> None:
        self.status = status
        self.status_reason = f"{reason.code}: {reason.message}" if reason.message else reason.code
        self.status_since = self.now
        self.events.append(self._event(ts, "status", reason.code, reason.message, None, None, status))

    def _signal_failure(self, ts: int, signal: Any) -> None:
        from trader.engine.step import classify_signal_failure

        if isinstance(signal, BaseException):
            exc: BaseException = signal
        else:
            exc = PluginError(f"plugin {self.strategy!r} gave {signal_problem(signal)}")
        self.failures += 1
        self.events.append(self._event(ts, "signal", classify_signal_failure(exc), str(exc) or type(exc).__name__))
        if self.failures >= self.limits.max_model_failures:
            self._check_breakers(ts, self.cash + self.qty * self.mark + 0.0)

    def _record_error(self, ts: int, code: str, message: str, cid: str) -> None:
        self.errors.append(self.now)
        self.events.append(self._event(ts, "error", code, message, cid))
        if self._recent_errors() >= self.limits.max_errors:
            self._check_breakers(ts, self.cash + self.qty * self.mark + 0.0)

    @staticmethod
    def _event(ts: int, kind: str, code: str, message: str, cid: str | None = None, approved: bool | None = None,
               status: TradingStatus | None = None) -> dict[str, Any]:
        return {"timestamp": ts, "kind": kind, "code": code, "message": message, "client_order_id": cid,
                "approved": approved, "status": status.value if status else None}

    # ------------------------------------------------------------------ the result

    def result(self) -> FloatRun:
        import numpy as np

        n = self.n
        # the account after each candle: constant from one trading candle to the next
        at, cashes, quantities = zip(*self.changes, strict=True) if self.changes else ((), (), ())
        runs = np.diff(np.concatenate(([0], np.asarray(at, dtype=np.int64), [n])))
        cash = np.repeat(np.asarray((self.session.book.cash, *cashes), dtype=np.float64), runs)
        qty = np.repeat(np.asarray((0.0, *quantities), dtype=np.float64), runs)
        held = qty * self.close_arr
        held += 0.0
        equities = cash + held
        equities += 0.0
        return FloatRun(
            timestamps=self.ts_arr.copy(), closes=self.close_arr.copy(), equities=equities, cash=cash, position_values=held,
            fills=self.fills, events=self.events, status=self.status, status_reason=self.status_reason,
            status_since=self.status_since, quantity=self.qty, avg_price=self.avg, realized_pnl=self.realized,
            fees_paid=self.fees, peak_equity=self.peak, day=self.day, day_start_equity=self.day_start,
            consecutive_losses=self.losses, model_failures=self.failures,
        )
