"""``TradingSession``: the per-candle decision step shared by ``trader run`` and backtests.

One candle, one step: mark the book at the close, check the account breakers, turn
the strategy's signal into an order, audit it, execute the approved order with the
broker, book the fills, and hand everything the step changed to the store, which
commits it in one transaction. ``trader run`` calls :meth:`TradingSession.process`
for each closed candle as it arrives; a backtest calls :meth:`TradingSession.run`
with all candles and precomputed signals. Both go through :meth:`TradingSession.step`,
so a backtest and a replay of the same candles make the same trades by construction.

Signals become orders like this (``f`` = ``RiskLimits.max_position_fraction``):

- ``BUY`` with size ``s``: the target position is ``s * f * equity`` (at most
  ``max_position_notional``); when the position is below it by more than
  ``rebalance_band`` of the target, buy the shortfall, at most ``max_order_notional``
  per candle (a large position is built over several candles) and at most what the
  cash pays for, fees and slippage included. A BUY never sells.
- ``SELL`` with size ``s``: sell ``s`` of the position (all of it when ``s == 1``).
- ``HOLD``: nothing.

Quantities are rounded down to the broker's lot; orders below its minimum notional
are not sent. Orders are market orders at the candle's close (the reference price;
the paper broker adds slippage). Client order ids are deterministic
(:func:`client_order_id`), so re-running a candle after a crash gives the same id.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

from trader.engine.book import Book
from trader.engine.brokers.base import Broker, Execution
from trader.engine.quiet import QuietView, run_fast, supports_fast_path
from trader.engine.records import (
    AccountFigures,
    FillRecord,
    OrderRecord,
    OrderStatus,
    PositionFigures,
    RiskEvent,
    SavedState,
    StepRecord,
)
from trader.engine.risk import STATUS_SEVERITY, RiskAuditAgent, RiskCode, private_limits
from trader.engine.store import BulkStore, StateStore
from trader.errors import PluginError, StateError
from trader.strategy import signal_problem
from trader.timeframes import DAY_MS, timeframe_to_ms
from trader.types import (
    AuditContext,
    Candle,
    OrderRequest,
    RiskLimits,
    RiskReason,
    Side,
    Signal,
    SignalAction,
    TradingStatus,
)

if TYPE_CHECKING:
    import numpy as np

__all__ = ["TradingSession", "client_order_id", "DEFAULT_REBALANCE_BAND", "DAY_MS", "classify_signal_failure"]

log = logging.getLogger("trader.engine")

DEFAULT_REBALANCE_BAND = 0.1

_HOLD = SignalAction.HOLD
_BUY = SignalAction.BUY
_HALTED = TradingStatus.HALTED
_REDUCING = TradingStatus.REDUCING
_ACTIVE = TradingStatus.ACTIVE
_ACTION_NAMES = {action: action.value for action in SignalAction}


def client_order_id(strategy: str, symbol: str, candle_ts: int, sequence: int = 0) -> str:
    """A deterministic id (28 characters, valid for Binance's ``newClientOrderId``).

    The same strategy, symbol, candle and sequence number always give the same id, so a
    step re-run after a crash can ask the exchange whether its order already exists.
    """
    digest = hashlib.sha256(f"{strategy}|{symbol}|{candle_ts}|{sequence}".encode()).hexdigest()
    return f"trd-{digest[:24]}"


def classify_signal_failure(exc: BaseException) -> str:
    """``INVALID_SIGNAL`` when the plugin broke the signal contract, ``PLUGIN_ERROR`` when it crashed."""
    cause = exc.__cause__ if isinstance(exc, PluginError) and exc.__cause__ is not None else exc
    if isinstance(cause, (ValueError, TypeError)) or (isinstance(exc, PluginError) and exc.__cause__ is None):
        return RiskCode.INVALID_SIGNAL
    return RiskCode.PLUGIN_ERROR


class TradingSession:
    """One strategy trading one symbol and timeframe: the decision step and its state.

    :param strategy: the strategy's name (its state namespace).
    :param symbol: e.g. ``"BTC/USDT"``; :param timeframe: e.g. ``"1h"``.
    :param limits: the effective risk limits (metadata overridden by ``[plugins.NAME.risk]``).
    :param broker: a :class:`~trader.engine.brokers.base.Broker` (``PaperBroker`` by default in ``trader run``).
    :param store: a :class:`~trader.engine.store.StateStore`: ``TradingState`` (``trader run``) or
        ``MemoryState`` (backtests).
    :param audit: the strategy's :class:`~trader.engine.risk.RiskAuditAgent`.
    :param initial_cash: the cash of a new account (ignored when the store has one).
    :param rebalance_band: a BUY tops the position up only when it is short of the target
        by more than this fraction of the target.
    :param latency_denies: a signal over ``max_inference_ms`` is denied new exposure (live
        markets); when ``False`` (a replay, whose prices do not move while the model thinks)
        it only raises the ``INFERENCE_LATENCY`` alert, so a replay is reproducible bar for bar.
    """

    def __init__(
        self,
        strategy: str,
        symbol: str,
        timeframe: str,
        *,
        limits: RiskLimits,
        broker: Broker,
        store: StateStore,
        audit: RiskAuditAgent,
        initial_cash: float = 10_000.0,
        rebalance_band: float = DEFAULT_REBALANCE_BAND,
        latency_denies: bool = True,
    ) -> None:
        if not (isinstance(initial_cash, (int, float)) and math.isfinite(initial_cash) and initial_cash > 0):
            raise StateError(f"initial cash must be a positive number, got {initial_cash!r}")
        if not 0.0 <= rebalance_band < 1.0:
            raise StateError(f"rebalance_band must be within [0, 1), got {rebalance_band!r}")
        self.strategy = strategy
        self.symbol = symbol
        self.timeframe = timeframe
        self.timeframe_ms = timeframe_to_ms(timeframe)
        # Orders are sized from a private copy: no plugin is ever handed this object.
        self.limits = private_limits(limits)
        self.broker = broker
        self.store = store
        self.audit = audit
        self.rebalance_band = float(rebalance_band)
        self.latency_denies = bool(latency_denies)
        self._bind_markets()

        saved = store.load(symbol, timeframe)
        if saved is None:
            store.initialize(float(initial_cash))
            saved = store.load(symbol, timeframe)
            assert saved is not None
        self._restore(saved)

        self._dd_keep = 1.0 - self.limits.max_drawdown
        self._daily_keep = 1.0 - self.limits.daily_loss_limit
        self._now = 0
        self._signal_ms: float | None = None
        #: Called with each record once the store committed it (``trader run``'s alerts); must not raise.
        self.on_commit: Callable[[StepRecord], None] | None = None
        self._failed_requests: set[int] = set()

    # ------------------------------------------------------------------ state

    def _bind_markets(self) -> None:
        """Ask the broker for the rules of the session's market(s)."""
        self.rules = self.broker.market_rules(self.symbol)

    def _restore(self, saved: SavedState) -> None:
        book = Book(saved.cash, saved.initial_cash)
        book.fees_paid = saved.fees_paid
        book.realized_pnl = saved.realized_pnl
        for sym, pos in saved.positions.items():
            book.positions[sym] = [pos.quantity, pos.avg_price, pos.realized_pnl]
        book.marks.update(saved.marks)
        self.book = book
        self._slot = book.slot(self.symbol)
        self._other_value = sum(
            slot[0] * book.marks.get(sym, slot[1]) for sym, slot in book.positions.items() if sym != self.symbol
        )
        self._peak = saved.peak_equity or saved.equity()
        self._day = saved.day
        self._day_start = saved.day_start_equity or saved.equity()
        self._status = saved.status
        self._status_reason = saved.status_reason
        self._status_since = saved.status_since
        self._consecutive_losses = saved.consecutive_losses
        self._model_failures = saved.model_failures
        self._errors: deque[int] = deque(saved.error_times, maxlen=10_000)
        self._last_ts = -1 if saved.last_candle_ts is None else saved.last_candle_ts
        self._mark = book.marks.get(self.symbol)

    @property
    def status(self) -> TradingStatus:
        return self._status

    @property
    def status_reason(self) -> str:
        return self._status_reason

    @property
    def status_code(self) -> str:
        return self._status_reason.split(":", 1)[0] if self._status_reason else ""

    @property
    def last_timestamp(self) -> int | None:
        """Open time of the last processed candle of this session's symbol and timeframe."""
        return None if self._last_ts < 0 else self._last_ts

    @property
    def cash(self) -> float:
        return self.book.cash

    @property
    def position(self) -> float:
        return self._slot[0]

    @property
    def equity(self) -> float:
        mark = self._mark if self._mark is not None else self._slot[1]
        return self.book.cash + self._slot[0] * mark + self._other_value

    @property
    def peak_equity(self) -> float:
        return self._peak

    @property
    def consecutive_losses(self) -> int:
        return self._consecutive_losses

    @property
    def model_failures(self) -> int:
        return self._model_failures

    def quiet_view(self) -> QuietView:
        """What the backtest fast path (:mod:`trader.engine.quiet`) reads of the session, named."""
        slot = self._slot
        limits = self.limits
        return QuietView(
            last_ts=self._last_ts,
            status=self._status,
            model_failures=self._model_failures,
            quantity=slot[0],
            cash=self.book.cash,
            other_value=self._other_value,
            peak=self._peak,
            day=self._day,
            day_start=self._day_start,
            mark=self._mark if self._mark is not None else slot[1],
            drawdown_keep=self._dd_keep,
            daily_keep=self._daily_keep,
            position_fraction=limits.max_position_fraction,
            max_position_notional=limits.max_position_notional,
            rebalance_band=self.rebalance_band,
        )

    def advance_quietly(
        self,
        timestamps: list[int],
        closes: list[float],
        equities: list[float],
        position_values: list[float],
        *,
        peak: float,
        day: int | None,
        day_start: float,
    ) -> None:
        """Take a stretch of quiet candles (no order possible, no breaker tripped) in one store call.

        The fast path computed, with this step's own arithmetic, each candle's equity and
        position value, and the peak, UTC day and day-start equity after the stretch; the
        session marks its last close and commits the stretch (a :class:`BulkStore` only).
        """
        self._peak, self._day, self._day_start = peak, day, day_start
        last_ts, last_close = timestamps[-1], closes[-1]
        self._mark = last_close
        self._last_ts = last_ts
        self._now = last_ts + self.timeframe_ms
        record = StepRecord(self.symbol, self.timeframe, last_ts, last_close)
        self._account_into(record)
        cast(BulkStore, self.store).commit_quiet(timestamps, closes, equities, self.book.cash, position_values, record)

    def recent_errors(self, now: int | None = None) -> int:
        now = self._now if now is None else now
        horizon = now - self.limits.error_window_s * 1000
        errors = self._errors
        while errors and errors[0] < horizon:
            errors.popleft()
        return len(errors)

    # ------------------------------------------------------------------ the step

    def process(
        self,
        candle: Candle,
        signal: Signal | BaseException | None = None,
        *,
        inference_ms: float | None = None,
        now: int | None = None,
    ) -> StepRecord:
        """Process one closed candle with the strategy's answer for it (see :meth:`step`)."""
        return self.step(candle.timestamp, candle.close, signal, inference_ms=inference_ms, now=now)

    def step(
        self,
        timestamp: int,
        close: float,
        signal: Signal | BaseException | None = None,
        *,
        inference_ms: float | None = None,
        now: int | None = None,
    ) -> StepRecord:
        """The decision step for the candle opened at ``timestamp`` (ms) and closed at ``close``.

        :param signal: the strategy's :class:`~trader.types.Signal` for this candle; ``None``
            during warm-up (no signal asked); an exception when the strategy failed (recorded
            as ``INVALID_SIGNAL`` or ``PLUGIN_ERROR``, counted by the model-failure breaker,
            never traded).
        :param inference_ms: how long the signal took (latency statistics and budget).
        :param now: the feed's clock in ms (default: the candle's close time).
        :return: the :class:`StepRecord` the store committed.

        A candle at or before the last processed one is skipped with a warning.
        """
        if timestamp <= self._last_ts:
            return self._skip_candle(timestamp, close)
        record = StepRecord(self.symbol, self.timeframe, timestamp, close)
        self._now = timestamp + self.timeframe_ms if now is None else now
        day = timestamp // DAY_MS
        if day != self._day:
            self._new_day(record, day)
        self._mark = close
        slot = self._slot
        equity = self.book.cash + slot[0] * close + self._other_value
        if equity > self._peak:
            self._peak = equity
        if self._status is not _HALTED and (equity < self._peak * self._dd_keep or equity < self._day_start * self._daily_keep):
            self._check_breakers(record, equity)
        if signal is not None:
            if inference_ms is not None:
                record.inference_ms = inference_ms
            if type(signal) is Signal and signal.action is _HOLD and inference_ms is None and signal_problem(signal) is None:
                record.action = "hold"  # the common case, kept short
                if self._model_failures:
                    self._model_failures = 0
            else:
                self._on_signal(record, signal, close, equity, inference_ms)
        self._last_ts = timestamp
        self._finish(record)
        return record

    def run(
        self,
        timestamps: Sequence[int] | np.ndarray,
        closes: Sequence[float] | np.ndarray,
        signals: Sequence[Signal | BaseException | None],
        inference_ms: Sequence[float | None] | None = None,
        *,
        fast: bool = True,
    ) -> int:
        """Step through many candles (a backtest): the same :meth:`step`, in a loop.

        ``signals[i]`` is the signal for candle ``i`` (``None`` during warm-up). Returns the
        number of candles processed (skipped ones excluded).

        With ``fast`` (the default) and a store that takes quiet stretches in bulk
        (:class:`~trader.engine.memory.MemoryState`), candles that can neither propose an
        order nor trip a breaker are marked with numpy and committed in one call, and every
        other candle takes :meth:`step` (see :mod:`trader.engine.quiet`): the same equity
        curve, orders, fills, events and status as ``fast=False``, the per-candle reference.
        """
        if not (len(timestamps) == len(closes) == len(signals)):
            raise ValueError("timestamps, closes and signals must have the same length")
        if fast and inference_ms is None and supports_fast_path(self):
            done = run_fast(self, timestamps, closes, signals)
            if done is not None:
                return done
        step = self.step
        done = 0
        if inference_ms is None:
            for ts, close, signal in zip(timestamps, closes, signals, strict=True):
                if step(int(ts), float(close), signal).skipped is None:
                    done += 1
        else:
            for ts, close, signal, ms in zip(timestamps, closes, signals, inference_ms, strict=True):
                if step(int(ts), float(close), signal, inference_ms=ms).skipped is None:
                    done += 1
        return done

    def submit(self, order: OrderRequest, *, now: int | None = None) -> StepRecord:
        """Audit, execute and commit one explicit order outside the signal path (manual trading).

        The order is marked at its reference price; like every order it goes through the
        risk audit first. Committed in one transaction, like a step.
        """
        if order.strategy != self.strategy or order.symbol != self.symbol:
            raise StateError(f"order {order.client_order_id} is for {order.strategy} {order.symbol}, not this session")
        record = StepRecord(self.symbol, self.timeframe, order.timestamp, order.price)
        record.skipped = "manual"
        self._now = order.timestamp + self.timeframe_ms if now is None else now
        self._mark = order.price
        self._execute(record, order)
        self._finish(record)
        return record

    # ------------------------------------------------------------------ pieces of the step

    def _skip_candle(self, timestamp: int, close: float) -> StepRecord:
        kind = "duplicate" if timestamp == self._last_ts else "out-of-order"
        record = StepRecord(self.symbol, self.timeframe, timestamp, close)
        record.skipped = kind
        message = f"{kind} candle {timestamp} skipped (last processed {self._last_ts})"
        log.warning("%s %s: %s", self.strategy, self.symbol, message)
        record.events += (RiskEvent(timestamp, "data", RiskCode.DUPLICATE_CANDLE, message),)
        self._finish(record)
        return record

    def _new_day(self, record: StepRecord, day: int) -> None:
        mark = self._mark if self._mark is not None else self._slot[1]
        self._day_start = self.book.cash + self._slot[0] * mark + self._other_value
        first = self._day is None
        self._day = day
        if not first and self._status is _REDUCING and self.status_code == RiskCode.DAILY_LOSS_LIMIT:
            message = "a new UTC day: the daily loss limit is reset"
            self._set_status(record, _ACTIVE, RiskReason(RiskCode.DAILY_RESET, message))

    def _context(self, timestamp: int, inference_ms: float | None = None) -> AuditContext:
        return AuditContext(
            strategy=self.strategy,
            now=max(0, int(self._now)),
            status=self._status,
            timeframe_ms=self.timeframe_ms,
            last_candle_ts=timestamp,
            consecutive_losses=self._consecutive_losses,
            recent_errors=self.recent_errors(),
            model_failures=self._model_failures,
            last_inference_ms=inference_ms,
        )

    def _check_breakers(self, record: StepRecord, equity: float) -> None:
        verdicts = self.audit.breakers(equity, self._peak, self._day_start, self._context(record.timestamp))
        for verdict in verdicts:
            if verdict.status is not None and verdict.reasons:
                self._escalate(record, verdict.status, verdict.reasons[0])

    def _escalate(self, record: StepRecord, status: TradingStatus, reason: RiskReason) -> None:
        """Move to a stricter status (never a looser one), recorded with its reason."""
        if STATUS_SEVERITY[status] > STATUS_SEVERITY[self._status]:
            self._set_status(record, status, reason)

    def _set_status(self, record: StepRecord, status: TradingStatus, reason: RiskReason) -> None:
        self._status = status
        self._status_reason = f"{reason.code}: {reason.message}" if reason.message else reason.code
        self._status_since = self._now
        record.events += (RiskEvent(record.timestamp, "status", reason.code, reason.message, status=status),)
        level = logging.INFO if status is _ACTIVE else logging.WARNING
        log.log(level, "%s: risk status %s (%s)", self.strategy, status.value, self._status_reason)

    def _on_signal(self, record: StepRecord, signal: Any, close: float, equity: float, inference_ms: float | None) -> None:
        if isinstance(signal, BaseException):
            self._signal_failure(record, signal)
            return
        problem = signal_problem(signal)  # again here: a signal can be changed after it was checked
        if problem is not None:
            self._signal_failure(record, PluginError(f"plugin {self.strategy!r} gave {problem}"))
            return
        action = signal.action
        record.action = _ACTION_NAMES[action]
        if self._model_failures:
            self._model_failures = 0
        if inference_ms is not None and inference_ms > self.limits.max_inference_ms:
            message = f"the signal took {inference_ms:,.0f} ms, over the {self.limits.max_inference_ms:g} ms budget"
            log.warning("%s: %s", self.strategy, message)
            record.events += (RiskEvent(record.timestamp, "alert", RiskCode.INFERENCE_LATENCY, message),)
        if action is _HOLD:
            return
        if self._status is _HALTED:
            record.note = RiskCode.TRADING_HALTED
            return
        order = self._order_for(signal, record.timestamp, close, equity, len(record.orders))
        if order is None:
            return
        if self._status is _REDUCING and order.side is Side.BUY:
            record.note = RiskCode.REDUCE_ONLY
            return
        self._execute(record, order, inference_ms if self.latency_denies else None)

    def _order_for(self, signal: Signal, timestamp: int, price: float, equity: float, sequence: int = 0) -> OrderRequest | None:
        """The order that moves the position as the signal asks (module docstring), or ``None``."""
        rules = self.rules
        held = self._slot[0]
        limits = self.limits
        if signal.action is _BUY:
            target = signal.size * limits.max_position_fraction * equity
            if target > limits.max_position_notional:
                target = limits.max_position_notional
            shortfall = target - held * price
            if shortfall <= 0 or shortfall < self.rebalance_band * target:
                return None
            notional = min(shortfall, limits.max_order_notional, self.book.cash / rules.buy_cost_factor)
            quantity = rules.round_quantity(notional / price)
            side = Side.BUY
        else:
            if held <= 0:
                return None
            quantity = held if signal.size >= 1.0 else rules.round_quantity(held * signal.size)
            side = Side.SELL
        if quantity <= 0 or quantity * price < rules.min_notional:
            return None
        return OrderRequest(
            strategy=self.strategy,
            symbol=self.symbol,
            side=side,
            quantity=quantity,
            price=price,
            client_order_id=client_order_id(self.strategy, self.symbol, timestamp, sequence),
            timestamp=timestamp,
        )

    def _execute(self, record: StepRecord, order: OrderRequest, inference_ms: float | None = None) -> None:
        snapshot = self.book.snapshot(self._peak, self._day_start)
        decision = self.audit.audit(order, snapshot, self._context(record.timestamp, inference_ms))
        cid = order.client_order_id
        if decision.approved:
            record.events += (RiskEvent(record.timestamp, "audit", "APPROVED", "approved", cid, True),)
        else:
            for reason in decision.denials:
                record.events += (RiskEvent(record.timestamp, "audit", reason.code, reason.message, cid, False),)
        if decision.status is not None:
            reason = decision.status_reason or RiskReason("RISK_STATUS", "requested by a risk rule")
            self._escalate(record, decision.status, reason)
        if not decision.approved:
            record.orders += (OrderRecord(order, OrderStatus.DENIED, 0.0, None, decision.describe()),)
            return
        self._send(record, order)

    def _send(self, record: StepRecord, order: OrderRequest) -> None:
        """Hand an approved order to the broker and book what it did."""
        if self.broker.needs_intent:
            self.store.record_order_intent(order)
        try:
            execution = self.broker.execute(order, cash=self.book.cash, now=self._now)
        except Exception as exc:  # a broker failure is an order error: counted, never fatal
            execution = Execution.error(f"{type(exc).__name__}: {exc}")
        self._book_execution(record, order, execution)

    def _book_execution(self, record: StepRecord, order: OrderRequest, execution: Execution) -> None:
        """Book the fills of ``execution`` (those not booked before), count errors and losses."""
        cid = order.client_order_id
        filled = execution.filled_quantity  # the order's total, booked before or not
        if self.broker.needs_intent and execution.fills:
            booked = self.store.fill_trade_ids(cid)
            if booked:
                execution = Execution(
                    execution.status,
                    tuple(f for f in execution.fills if f.trade_id not in booked),
                    execution.message,
                    execution.exchange_order_id,
                )
        side_is_sell = order.side is Side.SELL
        for fill in execution.fills:
            realized = self.book.apply_fill(fill)
            record.fills += (FillRecord(fill, realized),)
            if side_is_sell:
                if realized < 0:
                    self._consecutive_losses += 1
                elif realized > 0:
                    self._consecutive_losses = 0
        if execution.fills and len(self.book.positions) > 1:
            self._other_value = sum(
                slot[0] * self.book.marks.get(sym, slot[1])
                for sym, slot in self.book.positions.items()
                if sym != self.symbol
            )
        record.orders += (OrderRecord(order, execution.status, filled, execution.exchange_order_id, execution.message),)
        if execution.failed:
            code = RiskCode.ORDER_REJECTED if execution.status == OrderStatus.REJECTED else RiskCode.ORDER_ERROR
            self.record_error(record, code, execution.message or execution.status, cid)
        elif execution.fills and log.isEnabledFor(logging.INFO):
            log.info(
                "%s: %s %g %s @ %g (fee %g) [%s]",
                self.strategy,
                order.side.value,
                execution.filled_quantity,
                order.symbol,
                execution.fills[-1].price,
                sum(f.fee for f in execution.fills),
                cid,
            )
        if self._consecutive_losses >= self.limits.max_consecutive_losses:
            self._check_breakers(record, self.equity)

    def settle(self, order: OrderRequest, execution: Execution, *, now: int | None = None) -> StepRecord:
        """Book what an external broker did with ``order`` outside a step (reconciliation on start).

        Fills already booked (same trade id) are ignored; committed in one transaction.
        """
        record = StepRecord(self.symbol, self.timeframe, order.timestamp, self._mark or order.price)
        record.skipped = "reconcile"
        self._now = int(time.time() * 1000) if now is None else now
        self._book_execution(record, order, execution)
        self._finish(record)
        return record

    def note_event(self, kind: str, code: str, message: str) -> None:
        """Record an event outside a step (e.g. a balance mismatch found on start), committed at once."""
        ts = self._last_ts if self._last_ts >= 0 else 0
        record = StepRecord(self.symbol, self.timeframe, ts, self._mark or 0.0)
        record.skipped = "event"
        record.events += (RiskEvent(ts, kind, code, message),)
        log.warning("%s: %s: %s", self.strategy, code, message)
        self._finish(record)

    def record_error(self, record: StepRecord | None, code: str, message: str, client_order_id: str | None = None) -> None:
        """Count an order or exchange error towards the error breaker (committed with ``record``,
        or at once when ``record`` is ``None``, e.g. for a feed that could not reach the exchange)."""
        own = record is None
        if record is None:
            ts = self._last_ts if self._last_ts >= 0 else 0
            record = StepRecord(self.symbol, self.timeframe, ts, self._mark or 0.0)
            record.skipped = "error"
            self._now = int(time.time() * 1000)
        self._errors.append(self._now)
        log.warning("%s: %s: %s", self.strategy, code, message)
        record.events += (RiskEvent(record.timestamp, "error", code, message, client_order_id),)
        if self.recent_errors() >= self.limits.max_errors:
            self._check_breakers(record, self.equity)
        if own:
            self._finish(record)

    def _signal_failure(self, record: StepRecord, exc: BaseException) -> None:
        code = classify_signal_failure(exc)
        message = str(exc) or type(exc).__name__
        self._model_failures += 1
        record.action = "failed"
        log.warning("%s: %s: %s (%d in a row)", self.strategy, code, message, self._model_failures)
        record.events += (RiskEvent(record.timestamp, "signal", code, message),)
        if self._model_failures >= self.limits.max_model_failures:
            self._check_breakers(record, self.equity)

    def _finish(self, record: StepRecord) -> None:
        """Copy the account into ``record`` and hand it to the store (one transaction)."""
        self._account_into(record)
        self.store.commit_step(record)
        if self.on_commit is not None:
            self.on_commit(record)

    def _account_into(self, record: StepRecord) -> None:
        """Copy the account into ``record`` and remember the mark."""
        book = self.book
        slot = self._slot
        mark = self._mark if self._mark is not None else slot[1]
        position_value = slot[0] * mark
        cash = book.cash
        record.cash = cash
        record.position_value = position_value + self._other_value
        record.equity = cash + position_value + self._other_value
        record.positions = {self.symbol: PositionFigures(slot[0], slot[1], slot[2], mark)}
        record.account = AccountFigures(
            book.fees_paid,
            book.realized_pnl,
            self._peak,
            self._day if self._day is not None else record.timestamp // DAY_MS,
            self._day_start,
            self._status,
            self._status_reason,
            self._status_since,
            self._consecutive_losses,
            self._model_failures,
        )
        if mark is not None:
            book.marks[self.symbol] = mark

    # ------------------------------------------------------------------ control

    def apply_requests(self) -> list[str]:
        """Apply pending requests from other processes (``trader resume``, ``trader halt``), oldest first.

        Returns what was done. Consecutive requests of one command are applied together, so
        the last request wins. A halt fails closed (:meth:`halt`). A request that cannot be
        applied is recorded (``CONTROL_FAILED``) and not tried again by this process; it
        stays pending, so the next start tries it again.
        """
        pending = self.store.pending_requests()
        if not pending:
            return []
        done = []
        for command, group in itertools.groupby(pending, key=lambda r: r.command):
            requests = [r for r in group if r.id not in self._failed_requests]
            if not requests or command not in ("halt", "resume"):
                continue
            ids = [r.id for r in requests]
            note = "; ".join(r.note for r in requests if r.note)
            try:
                (self.halt if command == "halt" else self.resume)(note, ids)
            except Exception as exc:  # noqa: BLE001 - reported, and a halt has already taken effect in this session
                self._failed_requests.update(ids)
                message = f"the {command} request could not be applied: {' '.join(str(exc).split()) or type(exc).__name__}"
                if self._status is _HALTED:
                    message += "; the strategy stays halted"
                try:
                    self.note_event("control", "CONTROL_FAILED", message)  # commits the account, halted, too
                except Exception:  # noqa: BLE001 - the store is failing: the log line is all there is
                    log.error("%s: %s", self.strategy, message)
                continue
            done.append(command)
        return done

    def halt(self, note: str = "", request_ids: Iterable[int] = ()) -> None:
        """Halt now (``OPERATOR_HALT``, the operator's kill switch), recorded with ``note``.

        Fails closed: this session is halted before the store is asked to record it, and
        stays halted when that fails (the next commit writes the halted status).
        """
        from trader.engine.state import OPERATOR_HALT

        now = int(time.time() * 1000)
        message = "halted by the operator" + (f": {note}" if note else "")
        if self._status is not _HALTED:
            self._status = _HALTED
            self._status_reason = f"{OPERATOR_HALT}: {message}"
            self._status_since = now
        saved = self.store.halt(now, note, request_ids)
        self._status = saved.status
        self._status_reason = saved.status_reason
        self._status_since = saved.status_since
        log.warning("%s: risk status halted (%s)", self.strategy, message)
        self._tell(now, "status", OPERATOR_HALT, message, _HALTED)

    def _tell(self, timestamp: int, kind: str, code: str, message: str, status: TradingStatus) -> None:
        """Show :attr:`on_commit` an event a store method committed outside :meth:`_finish`."""
        if self.on_commit is not None:
            record = StepRecord(self.symbol, self.timeframe, timestamp, self._mark or 0.0)
            record.skipped = "event"
            record.events = (RiskEvent(timestamp, kind, code, message, status=status),)
            self.on_commit(record)

    def resume(self, note: str = "", request_ids: Iterable[int] = ()) -> None:
        """Clear a halt and the breaker counters; peak and day-start equity restart from now."""
        saved = self.store.resume(int(time.time() * 1000), note, request_ids)
        self._status = saved.status
        self._status_reason = saved.status_reason
        self._status_since = saved.status_since
        self._consecutive_losses = 0
        self._model_failures = 0
        self._errors.clear()
        self._peak = saved.peak_equity
        self._day_start = saved.day_start_equity
        log.info("%s: %s", self.strategy, saved.status_reason)
        self._tell(saved.status_since or 0, "control", RiskCode.RESUMED, saved.status_reason, saved.status)

    def summary(self) -> dict[str, Any]:
        """Figures of the session so far (the end-of-replay summary adds the store's)."""
        equity = self.equity
        initial = self.book.initial_cash
        return {
            "strategy": self.strategy,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "initial_cash": initial,
            "cash": self.book.cash,
            "position": self._slot[0],
            "equity": equity,
            "pnl": equity - initial,
            "return": equity / initial - 1 if initial else 0.0,
            "fees_paid": self.book.fees_paid,
            "realized_pnl": self.book.realized_pnl,
            "status": self._status.value,
            "status_reason": self._status_reason,
        }
