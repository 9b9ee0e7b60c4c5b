"""``PortfolioSession``: one strategy trading several markets from one account and one risk budget.

The per-candle step of a basket, shared by ``trader run --symbol A --symbol B`` and basket
backtests (so a replay and a backtest of the same basket make the same trades):

1. The step's time ``t`` is a point of the basket's timeline (the union of its markets'
   candle open times). Only the markets with a closed candle at ``t`` are *trading*; the
   others keep their last traded close as their mark and get no order at ``t``.
2. Mark the trading markets at their closes; equity = cash + every position at its mark.
   The account's breakers (daily loss, drawdown, errors, model failures) watch that equity.
3. Turn each trading market's signal into an order, exactly as a single-market session
   does, but sized from the *portfolio's* equity at the candle (``size * f * equity``),
   never from the cash left. Sells go first (they free cash), then buys; within each side
   markets go in symbol order, so results never depend on the order markets are listed in.
   Each buy is capped by the cash left after the orders before it, so cash is reserved as
   each order is approved and filled.
4. Every order goes through the same risk audit, which sees the whole portfolio (positions
   and marks): the per-market limits (position fraction and notional, order notional) and
   the portfolio limits (``max_gross_exposure``, ``max_open_positions``).
5. One store commit for the whole step: the account, each trading market's row and stream.

A strategy's signals for one step are a mapping from symbol to signal (``None`` or a
missing market: no signal asked; an exception: that market's signal failed). One failed
market counts once for the model-failure breaker per step, whatever the number of markets.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, cast

import numpy as np

from trader.engine.book import Book
from trader.engine.brokers.base import Broker
from trader.engine.records import (
    AccountFigures,
    MarketFigures,
    PositionFigures,
    RiskEvent,
    SavedState,
    StepRecord,
)
from trader.engine.risk import _SLACK, RiskAuditAgent, RiskCode
from trader.engine.step import DEFAULT_REBALANCE_BAND, TradingSession, classify_signal_failure, client_order_id
from trader.engine.store import StateStore
from trader.errors import PluginError, StateError
from trader.strategy import signal_problem
from trader.timeframes import DAY_MS
from trader.types import OrderRequest, RiskLimits, Side, Signal, SignalAction, TradingStatus

__all__ = ["PortfolioSession", "PORTFOLIO", "StepSignals", "quote_currency", "mixed_quotes", "BasketQuietState"]

log = logging.getLogger("trader.engine")
_risk_log = logging.getLogger("trader.risk")

#: The symbol of the account's own rows in a store (its stream and equity curve).
PORTFOLIO = "*"

#: One step's signals: symbol -> the strategy's answer (``None``: none asked).
StepSignals = Mapping[str, "Signal | BaseException | None"]

_HOLD = SignalAction.HOLD
_BUY = SignalAction.BUY
_HALTED = TradingStatus.HALTED
_REDUCING = TradingStatus.REDUCING


class BasketQuietState(NamedTuple):
    """What the basket fast path (:mod:`trader.portfolio.quiet`) reads of the session between full steps."""

    status: TradingStatus
    model_failures: int
    peak: float
    day: int | None  #: the UTC day (``timestamp // DAY_MS``) of the last step
    day_start: float
    drawdown_keep: float  #: ``1 - max_drawdown``
    daily_keep: float  #: ``1 - daily_loss_limit``
    position_fraction: float
    max_position_notional: float
    rebalance_band: float


def _check_symbols(symbols: Iterable[str]) -> tuple[str, ...]:
    out = tuple(symbols)
    if len(out) < 1:
        raise StateError("a portfolio needs at least one market")
    for symbol in out:
        if not isinstance(symbol, str) or not symbol.strip() or symbol == PORTFOLIO:
            raise StateError(f"{symbol!r} is not a market symbol")
    if len(set(out)) != len(out):
        raise StateError(f"a market is listed twice in {', '.join(out)}")
    problem = mixed_quotes(out)
    if problem is not None:
        raise StateError(problem)
    return tuple(sorted(out))


def mixed_quotes(symbols: Iterable[str]) -> str | None:
    """Why ``symbols`` cannot be one basket's markets (they are quoted in several currencies), or ``None``."""
    symbols = tuple(symbols)
    quotes = sorted({quote_currency(symbol) for symbol in symbols})
    if len(quotes) <= 1:
        return None
    return (f"the markets {', '.join(symbols)} are quoted in {', '.join(quotes)}: one account holds one quote "
            "currency's cash, so a basket's markets must share it")


def quote_currency(symbol: str) -> str:
    """``BTC/USDT`` -> ``USDT`` (``BTC/USDT:USDT`` -> ``USDT``); the symbol itself when it names no quote."""
    if "/" not in symbol:
        return symbol
    return symbol.split("/", 1)[1].split(":", 1)[0]


class PortfolioSession(TradingSession):
    """One strategy, several markets of one timeframe, one account (see the module docstring).

    Takes the arguments of :class:`~trader.engine.step.TradingSession`, with ``symbols`` for
    ``symbol``. Breakers, the risk status, ``trader halt``/``resume`` requests, error counting
    and reconciliation behave exactly as in a single-market session, on the whole account.
    """

    def __init__(
        self,
        strategy: str,
        symbols: Iterable[str],
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
        self.symbols = _check_symbols(symbols)
        super().__init__(strategy, PORTFOLIO, timeframe, limits=limits, broker=broker, store=store, audit=audit,
                         initial_cash=initial_cash, rebalance_band=rebalance_band, latency_denies=latency_denies)
        #: The audit's limits while :meth:`approving_at_sight` (the backtest fast path), else ``None``.
        self._at_sight: RiskLimits | None = None
        #: ``(record, fills booked, position value)`` of the step being taken (:meth:`_position_value_in`).
        self._valued: tuple[StepRecord | None, int, float] = (None, 0, 0.0)

    # ------------------------------------------------------------------ state

    def _bind_markets(self) -> None:
        self.market_rules = {symbol: self.broker.market_rules(symbol) for symbol in self.symbols}
        self.rules = self.market_rules[self.symbols[0]]
        #: Each market's column in :attr:`symbols` order (the fast path's arrays).
        self.column = {symbol: j for j, symbol in enumerate(self.symbols)}
        rules = [self.market_rules[symbol] for symbol in self.symbols]
        self._constants = tuple(np.asarray(values, dtype=np.float64) for values in (
            [r.buy_cost_factor for r in rules], [r.lot_size for r in rules], [r.min_notional for r in rules]))

    def _restore(self, saved: SavedState) -> None:
        book = Book(saved.cash, saved.initial_cash)
        book.fees_paid = saved.fees_paid
        book.realized_pnl = saved.realized_pnl
        # The book sums its positions in the order of their first fills: restored in that order, a
        # restarted account's equity is the unbroken account's to the last bit (a float sum's order).
        first: dict[str, int] = {}
        if saved.positions:
            for fill in self.store.fills():
                first.setdefault(fill["symbol"], len(first))
        for sym in sorted(saved.positions, key=lambda s: (first.get(s, len(first)), s)):
            pos = saved.positions[sym]
            book.positions[sym] = [pos.quantity, pos.avg_price, pos.realized_pnl]
        book.marks.update(saved.marks)
        self.book = book
        self._slot = [0.0, 0.0, 0.0]  # the base class's single-market slot: unused here
        self._other_value = 0.0
        self._mark = None
        #: Last traded candle of each market (its stream): a candle at or before it is never replayed.
        self.market_last: dict[str, int] = {}
        for symbol in self.symbols:
            stream = self.store.load(symbol, self.timeframe)
            if stream is not None and stream.last_candle_ts is not None:
                self.market_last[symbol] = int(stream.last_candle_ts)
        last = saved.last_candle_ts
        if last is None and self.market_last:  # an account that traded these markets one at a time
            last = max(self.market_last.values())
        self._peak = saved.peak_equity or saved.equity()
        self._day = saved.day
        self._day_start = saved.day_start_equity or saved.equity()
        self._status = saved.status
        self._status_reason = saved.status_reason
        self._status_since = saved.status_since
        self._consecutive_losses = saved.consecutive_losses
        self._model_failures = saved.model_failures
        self._errors: deque[int] = deque(saved.error_times, maxlen=10_000)
        self._last_ts = -1 if last is None else int(last)

    @property
    def position(self) -> float:
        """The value of every position at its mark (a basket has no single quantity)."""
        return self.book.position_value()

    def quantity(self, symbol: str) -> float:
        return self.book.quantity(symbol)

    @property
    def equity(self) -> float:
        return self.book.equity()

    def quiet_view(self) -> Any:
        raise NotImplementedError("a portfolio session has no single-market fast path")

    def advance_quietly(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("a portfolio session has no single-market fast path")

    def quantities(self) -> np.ndarray:
        """Each market's held quantity, in :attr:`symbols` order."""
        positions = self.book.positions
        return np.asarray([positions[s][0] if s in positions else 0.0 for s in self.symbols], dtype=np.float64)

    def market_constants(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each market's buy cost factor, lot size and minimum notional, in :attr:`symbols` order."""
        return cast("tuple[np.ndarray, np.ndarray, np.ndarray]", self._constants)

    def quiet_state(self) -> BasketQuietState:
        """What the basket fast path (:mod:`trader.portfolio.quiet`) reads of the session, named."""
        limits = self.limits
        return BasketQuietState(
            status=self._status,
            model_failures=self._model_failures,
            peak=self._peak,
            day=self._day,
            day_start=self._day_start,
            drawdown_keep=self._dd_keep,
            daily_keep=self._daily_keep,
            position_fraction=limits.max_position_fraction,
            max_position_notional=limits.max_position_notional,
            rebalance_band=self.rebalance_band,
        )

    def advance_quietly_basket(
        self,
        timestamps: list[int],
        equities: list[float],
        position_values: list[float],
        markets: Mapping[str, Any],
        last_marks: Mapping[str, float],
        *,
        peak: float,
        day: int,
        day_start: float,
    ) -> None:
        """Take a stretch of quiet steps (no order possible, no breaker tripped) in one store call.

        The fast path computed, with this step's own arithmetic, each step's equity and position
        value, each trading market's row (``markets``, see :meth:`MemoryState.commit_quiet_basket`),
        each market's last close, and the peak, UTC day and day-start equity after the stretch.
        """
        self._peak, self._day, self._day_start = peak, day, day_start
        self.book.marks.update(last_marks)
        self.market_last.update(markets["last_ts"])
        last_ts = timestamps[-1]
        self._last_ts = last_ts
        self._now = last_ts + self.timeframe_ms
        record = StepRecord(PORTFOLIO, self.timeframe, last_ts, 0.0)
        self._account_into(record)
        self.store.commit_quiet_basket(  # type: ignore[attr-defined]
            timestamps, equities, self.book.cash, position_values, markets, record
        )

    # ------------------------------------------------------------------ the step

    def process(self, candle: Any, signal: Any = None, *, inference_ms: float | None = None, now: int | None = None) -> StepRecord:
        raise StateError("a portfolio session steps all its markets at once: use step(timestamp, closes, signals)")

    def step(  # type: ignore[override]
        self,
        timestamp: int,
        closes: Mapping[str, float],
        signals: StepSignals | None = None,
        *,
        inference_ms: float | None = None,
        now: int | None = None,
    ) -> StepRecord:
        """The decision step at ``timestamp`` (ms): ``closes`` holds the close of each market that
        has a closed candle opened at ``timestamp`` (the others are not traded), ``signals`` the
        strategy's answer per market. Returns the :class:`StepRecord` the store committed.

        A time at or before the last processed one is skipped with a warning, as is a market
        outside the basket.
        """
        if timestamp <= self._last_ts:
            return self._skip_candle(timestamp, 0.0)
        record = StepRecord(PORTFOLIO, self.timeframe, timestamp, 0.0)
        self._now = timestamp + self.timeframe_ms if now is None else now
        day = timestamp // DAY_MS
        if day != self._day:
            self._new_day(record, day)
        book = self.book
        marks = book.marks
        trading: list[str] = []
        for symbol in sorted(closes):
            if symbol not in self.market_rules:
                message = f"a candle of {symbol!r}, which is not in this basket, was ignored"
                record.events += (RiskEvent(timestamp, "data", RiskCode.DUPLICATE_CANDLE, message),)
                continue
            if self.market_last.get(symbol, -1) >= timestamp:
                continue  # never replay a market's stale candle
            close = float(closes[symbol])
            if not (math.isfinite(close) and close > 0):
                raise StateError(f"{symbol} close at {timestamp} must be a positive number, got {close!r}")
            marks[symbol] = close
            trading.append(symbol)
        value = book.position_value()
        self._valued = (record, 0, value)
        equity = book.cash + value
        if equity > self._peak:
            self._peak = equity
        if self._status is not _HALTED and (equity < self._peak * self._dd_keep or equity < self._day_start * self._daily_keep):
            self._check_breakers(record, equity)
        if signals:
            if inference_ms is not None:
                record.inference_ms = inference_ms
            self._on_signals(record, trading, signals, equity, inference_ms)
        self._last_ts = timestamp
        for symbol in trading:
            self.market_last[symbol] = timestamp
        positions = book.positions
        record.markets = tuple(
            MarketFigures(symbol, mark, quantity, quantity * mark)
            for symbol in trading
            for mark, quantity in ((marks[symbol], positions[symbol][0] if symbol in positions else 0.0),)
        )
        self._finish(record)
        return record

    def _position_value_in(self, record: StepRecord) -> float:
        """``book.position_value()`` during ``record``'s step, summed again only after a fill was booked:
        within a step, once the closes are marked, nothing else changes the book."""
        valued, fills, value = self._valued
        if valued is record and fills == len(record.fills):
            return value
        value = self.book.position_value()
        self._valued = (record, len(record.fills), value)
        return value

    def run(  # type: ignore[override]
        self,
        timestamps: Sequence[int] | np.ndarray,
        closes: Sequence[Mapping[str, float]] | np.ndarray,
        signals: Sequence[StepSignals | None],
        inference_ms: Sequence[float | None] | None = None,
        *,
        fast: bool = True,
    ) -> int:
        """Step through a basket's timeline (a backtest): ``closes[i]`` and ``signals[i]`` are the
        markets' closes and signals at ``timestamps[i]``. Returns the number of steps processed.

        ``closes`` may also be a ``(T, M)`` array whose columns are :attr:`symbols` (NaN: no
        candle, as :class:`~trader.portfolio.align.Basket` holds them). Then, with ``fast`` (the
        default) and a store that takes stretches in bulk, steps where no order is possible and
        no breaker trips are taken with numpy (:mod:`trader.portfolio.quiet`): the same equity
        curve, market rows, orders, fills, events and status as ``fast=False``, one step at a time.
        """
        if not (len(timestamps) == len(closes) == len(signals)):
            raise ValueError("timestamps, closes and signals must have the same length")
        if isinstance(closes, np.ndarray):
            if closes.ndim != 2 or closes.shape[1] != len(self.symbols):
                raise ValueError(f"closes must be a (steps, {len(self.symbols)}) array, one column per market")
            if fast and inference_ms is None:
                from trader.portfolio.quiet import run_quiet

                done = run_quiet(self, np.asarray(timestamps), closes, signals)
                if done is not None:
                    return done
            symbols = self.symbols
            closes = [{symbols[j]: float(row[j]) for j in np.flatnonzero(row == row).tolist()} for row in closes]
        done = 0
        step = self.step
        for i, ts in enumerate(timestamps):
            ms = inference_ms[i] if inference_ms is not None else None
            if step(int(ts), closes[i], signals[i], inference_ms=ms).skipped is None:
                done += 1
        return done

    def submit(self, order: OrderRequest, *, now: int | None = None) -> StepRecord:
        if order.strategy != self.strategy or order.symbol not in self.market_rules:
            raise StateError(f"order {order.client_order_id} is for {order.strategy} {order.symbol}, not this session")
        record = StepRecord(PORTFOLIO, self.timeframe, order.timestamp, 0.0)
        record.skipped = "manual"
        self._now = order.timestamp + self.timeframe_ms if now is None else now
        self.book.marks[order.symbol] = order.price
        self._execute(record, order)
        self._finish(record)
        return record

    # ------------------------------------------------------------------ pieces of the step

    def _new_day(self, record: StepRecord, day: int) -> None:
        first = self._day is None
        self._day_start = self.book.equity()  # at the marks before this step's closes
        self._day = day
        if not first and self._status is _REDUCING and self.status_code == RiskCode.DAILY_LOSS_LIMIT:
            from trader.types import RiskReason

            self._set_status(record, TradingStatus.ACTIVE, RiskReason(RiskCode.DAILY_RESET, "a new UTC day: the daily loss limit is reset"))

    def _on_signals(
        self, record: StepRecord, trading: list[str], signals: StepSignals, equity: float, inference_ms: float | None
    ) -> None:
        valid: dict[str, Signal] = {}
        failed = False
        for symbol in trading:
            signal = signals.get(symbol)
            if signal is None:
                continue
            if isinstance(signal, BaseException):
                problem: BaseException | None = signal
            else:
                why = signal_problem(signal)
                problem = None if why is None else PluginError(f"plugin {self.strategy!r} gave {why} for {symbol}")
            if problem is not None:
                failed = True
                code = classify_signal_failure(problem)
                message = f"{symbol}: {str(problem) or type(problem).__name__}"
                log.warning("%s: %s: %s", self.strategy, code, message)
                record.events += (RiskEvent(record.timestamp, "signal", code, message),)
                continue
            valid[symbol] = cast(Signal, signal)
        if failed:
            self._model_failures += 1
            record.action = "failed"
            if self._model_failures >= self.limits.max_model_failures:
                self._check_breakers(record, self.book.cash + self._position_value_in(record))
        elif valid and self._model_failures:
            self._model_failures = 0
        if not valid:
            return
        actions = [s.action for s in valid.values() if s.action is not _HOLD]
        if record.action is None:
            record.action = "hold" if not actions else ",".join(
                f"{sum(1 for a in actions if a is kind)} {kind.value}" for kind in (SignalAction.SELL, _BUY) if kind in actions
            )
        if inference_ms is not None and inference_ms > self.limits.max_inference_ms:
            message = f"the signals took {inference_ms:,.0f} ms, over the {self.limits.max_inference_ms:g} ms budget"
            log.warning("%s: %s", self.strategy, message)
            record.events += (RiskEvent(record.timestamp, "alert", RiskCode.INFERENCE_LATENCY, message),)
        if not actions:
            return
        if self._status is _HALTED:
            record.note = RiskCode.TRADING_HALTED
            return
        latency = inference_ms if self.latency_denies else None
        closes = self.book.marks
        sequence = len(record.orders)
        # Sells first (they free cash), then buys; each side in symbol order.
        for symbol, signal in valid.items():
            if signal.action is SignalAction.SELL:
                order = self._sell_order(symbol, signal, record.timestamp, closes[symbol], sequence)
                if order is not None:
                    self._execute(record, order, latency)
        for symbol, signal in valid.items():
            if signal.action is not _BUY:
                continue
            now = self.book.cash + self._position_value_in(record) if record.fills else equity
            order = self._buy_order(symbol, signal, record.timestamp, closes[symbol], equity, sequence, now=now)
            if order is None:
                continue
            if self._status is not TradingStatus.ACTIVE:
                record.note = RiskCode.REDUCE_ONLY if self._status is _REDUCING else RiskCode.TRADING_HALTED
                continue
            self._execute(record, order, latency)

    @contextmanager
    def approving_at_sight(self) -> Iterator[None]:
        """Within: an order every core rule visibly approves is approved without the audit's value
        objects (when no plugin rule is there and the audit does not log), as the audit would approve it."""
        audit = self.audit
        if len(audit.plugins) > 1 or audit.fails_closed:
            yield
            return
        self._at_sight = audit.limits
        try:
            yield
        finally:
            self._at_sight = None

    def _execute(self, record: StepRecord, order: OrderRequest, inference_ms: float | None = None) -> None:
        if self._at_sight is not None and self._approved_at_sight(self._at_sight, record, order, inference_ms):
            record.events += (RiskEvent(record.timestamp, "audit", "APPROVED", "approved", order.client_order_id, True),)
            self._send(record, order)
            return
        super()._execute(record, order, inference_ms)

    def _approved_at_sight(self, limits: RiskLimits, record: StepRecord, order: OrderRequest, inference_ms: float | None) -> bool:
        """Whether every core rule (:func:`~trader.engine.risk.core_verdicts`) visibly approves ``order``
        on the portfolio the audit would see, no plugin rule being there and the audit not logging:
        the audit's decision is then one approval, recorded as ``APPROVED``. Any doubt: ``False``."""
        if _risk_log.isEnabledFor(logging.INFO):  # the audit logs its decision: let it
            return False
        if inference_ms is not None and inference_ms > limits.max_inference_ms:
            return False
        return self._visibly_approved(limits, record, order.symbol, order.side is Side.BUY, order.quantity, order.price)

    def _visibly_approved(self, limits: RiskLimits, record: StepRecord, symbol: str, buy: bool, quantity: float,
                          price: float) -> bool:
        """:meth:`_approved_at_sight` of an order given by its plain figures (the float-only backtest's orders),
        the audit's log and the inference time left aside."""
        book = self.book
        timestamp = record.timestamp
        equity = book.cash + self._position_value_in(record)
        if not math.isfinite(equity) or self._status is not TradingStatus.ACTIVE:
            return False
        if self._peak > 0 and equity < self._peak * (1 - limits.max_drawdown):
            return False
        if self._day_start > 0 and equity < self._day_start * (1 - limits.daily_loss_limit):
            return False
        if self._consecutive_losses >= limits.max_consecutive_losses or self._model_failures >= limits.max_model_failures:
            return False
        if self._errors and self.recent_errors() >= limits.max_errors:  # no error recorded: none recent
            return False
        tf = self.timeframe_ms
        if max(0, int(self._now)) - (timestamp + tf) > limits.stale_after_bars * tf:
            return False
        slack = 1 + _SLACK
        held = book.quantity(symbol)
        if not buy:
            return quantity <= held * slack
        notional = quantity * price
        after = (held + quantity) * price
        if notional > limits.max_order_notional * slack or after > limits.max_position_notional * slack:
            return False
        if after > limits.max_position_fraction * equity * slack or notional > book.cash * slack:
            return False
        marks = book.marks
        gross = 0.0
        held_value = 0.0
        open_positions = 0
        for name, slot in book.positions.items():  # PortfolioSnapshot.gross_exposure's sum, in its order
            value = slot[0] * marks.get(name, slot[1]) if slot[0] > 0 else 0.0
            gross += value
            if slot[0] > 0:
                open_positions += 1
            if name == symbol:
                held_value = value
        if gross - held_value + after > limits.max_gross_exposure * equity * slack:
            return False
        return not (held <= 0 and open_positions >= limits.max_open_positions)

    def _buy_order(self, symbol: str, signal: Signal, timestamp: int, price: float, equity: float, sequence: int,
                   now: float | None = None) -> OrderRequest | None:
        """Top ``symbol`` up towards ``size * f * equity`` (portfolio equity at the candle), paid from the cash left.
        ``now``: the book's equity as it stands (``None``: summed here)."""
        rules = self.market_rules[symbol]
        limits = self.limits
        # The audit caps a position at f x the equity it sees, which the costs of this step's
        # earlier orders lowered: sized from the candle's equity alone, a rotation's buy was denied.
        if now is None:
            now = self.book.equity()
        target = signal.size * limits.max_position_fraction * (now if now < equity else equity)
        if target > limits.max_position_notional:
            target = limits.max_position_notional
        shortfall = target - self.book.quantity(symbol) * price
        if shortfall <= 0 or shortfall < self.rebalance_band * target:
            return None
        notional = min(shortfall, limits.max_order_notional, self.book.cash / rules.buy_cost_factor)
        quantity = rules.round_quantity(notional / price)
        return self._order(symbol, Side.BUY, quantity, price, timestamp, sequence)

    def _sell_order(self, symbol: str, signal: Signal, timestamp: int, price: float, sequence: int) -> OrderRequest | None:
        held = self.book.quantity(symbol)
        if held <= 0:
            return None
        rules = self.market_rules[symbol]
        quantity = held if signal.size >= 1.0 else rules.round_quantity(held * signal.size)
        return self._order(symbol, Side.SELL, quantity, price, timestamp, sequence)

    def _order(self, symbol: str, side: Side, quantity: float, price: float, timestamp: int, sequence: int) -> OrderRequest | None:
        if quantity <= 0 or quantity * price < self.market_rules[symbol].min_notional:
            return None
        return OrderRequest(
            strategy=self.strategy,
            symbol=symbol,
            side=side,
            quantity=quantity,
            price=price,
            client_order_id=client_order_id(self.strategy, symbol, timestamp, sequence),
            timestamp=timestamp,
        )

    def _account_into(self, record: StepRecord) -> None:
        book = self.book
        marks = book.marks
        cash = book.cash
        position_value = self._position_value_in(record)
        record.cash = cash
        record.position_value = position_value
        record.equity = cash + position_value
        record.positions = {
            symbol: PositionFigures(slot[0], slot[1], slot[2], marks.get(symbol, slot[1]))
            for symbol, slot in book.positions.items()
        }
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

    def summary(self) -> dict[str, Any]:
        """Figures of the account so far, with each market's position."""
        equity = self.equity
        initial = self.book.initial_cash
        marks = self.book.marks
        return {
            "strategy": self.strategy,
            "symbols": list(self.symbols),
            "timeframe": self.timeframe,
            "initial_cash": initial,
            "cash": self.book.cash,
            "position_value": self.book.position_value(),
            "equity": equity,
            "pnl": equity - initial,
            "return": equity / initial - 1 if initial else 0.0,
            "fees_paid": self.book.fees_paid,
            "realized_pnl": self.book.realized_pnl,
            "status": self._status.value,
            "status_reason": self._status_reason,
            "markets": {
                symbol: {
                    "quantity": self.book.quantity(symbol),
                    "mark": marks.get(symbol),
                    "value": self.book.quantity(symbol) * marks.get(symbol, 0.0),
                }
                for symbol in self.symbols
            },
        }
