"""The ``trader run`` loop: one strategy, one symbol and timeframe, one feed, until stopped.

For each closed candle: the features (incrementally), the strategy's signal, then the
shared decision step (:meth:`~trader.engine.step.TradingSession.process`: risk audit,
broker, one state commit) and one structured log line. A stop request (SIGINT or
SIGTERM, through :attr:`StrategyRunner.stop`) is honoured between steps, so the current
step always finishes and commits. A restart continues after the last committed candle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from trader.engine.factory import initial_cash, paper_broker, rebalance_band, strategy_limits
from trader.engine.isolation import DEFAULT_SIGNAL_TIMEOUT_S, DEFAULT_START_TIMEOUT_S, ISOLATION_MODES
from trader.engine.lock import StrategyLock
from trader.engine.reconcile import reconcile
from trader.engine.risk import RiskAuditAgent, audit_plugin_names
from trader.engine.signals import SignalSource, StrategySignals, history_bars, window_size
from trader.engine.step import TradingSession
from trader.errors import ConfigError, ModelNotFoundError, NotSupportedError, PluginError, StateError, train_command
from trader.params import validate_params
from trader.timeframes import timeframe_to_ms

if TYPE_CHECKING:
    from pathlib import Path

    from trader.config import TraderConfig
    from trader.engine.brokers.base import Broker
    from trader.engine.store import StateStore
    from trader.plugins import TraderPluginManager
    from trader.strategy import Strategy
    from trader.types import StrategyInfo

__all__ = ["RunOptions", "RunSummary", "StrategyRunner", "open_state_store", "history_bars", "summary_dict",
           "account_lines"]

log = logging.getLogger("trader.run")

FEEDS = ("replay", "live")


@frozen
class RunOptions:
    """What ``trader run`` was asked for (one strategy)."""

    strategy: str
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    exchange: str | None = None
    feed: str = field(default="replay")
    live: bool = False
    speed: float = 0.0
    max_candles: int | None = None
    fee_bps: float | None = None
    slippage_bps: float | None = None
    spread_bps: float | None = None  # None: [broker] spread_bps, else estimated per candle (trader.costs)
    cash: float | None = None
    model_version: str | None = None
    quiet: bool = False
    synthetic_bars: int = 5000
    seed: int = 0
    #: Replay only candles at or after this time (UTC ms); earlier ones warm the features up.
    start_from: int | None = None
    #: ``process``: the strategy's hooks run in a worker process that holds no keys and whose code
    #: the engine never imports; ``inline``: in this process (the Python API's default, for
    #: strategies registered in-process). ``trader run`` defaults to ``process``.
    isolation: str = field(default="inline")

    @feed.validator
    def _check_feed(self, attribute: Any, value: str) -> None:
        if value not in FEEDS:
            raise ValueError(f"unknown feed {value!r} (choose from {', '.join(FEEDS)})")

    @isolation.validator
    def _check_isolation(self, attribute: Any, value: str) -> None:
        if value not in ISOLATION_MODES:
            raise ValueError(f"unknown isolation {value!r} (choose from {', '.join(ISOLATION_MODES)})")


@frozen
class RunSummary:
    """The end of a run: what it did and where the account stands."""

    strategy: str
    symbol: str
    timeframe: str
    source: str
    processed: int
    stopped_by: str
    first_ts: int | None
    last_ts: int | None
    initial_cash: float
    equity: float
    cash: float
    position: float
    fees_paid: float
    realized_pnl: float
    trades: int
    max_drawdown: float
    status: str
    status_reason: str
    buy_and_hold_return: float | None = None

    @property
    def pnl(self) -> float:
        return self.equity - self.initial_cash

    def as_dict(self) -> dict[str, Any]:
        return summary_dict(self)

    def describe(self) -> str:
        from trader.timeframes import format_utc

        head = (f"{self.strategy} {self.symbol} {self.timeframe} on {self.source}: {self.processed:,} new candles, "
                f"stopped by {self.stopped_by}; the account covers {format_utc(self.first_ts)} .. {format_utc(self.last_ts)}")
        market = f"  market this run {self.buy_and_hold_return * 100:+.2f}%" if self.buy_and_hold_return is not None else ""
        return "\n".join([head, *account_lines(self, market, f"  position {self.position:g}")])


def summary_dict(summary: Any) -> dict[str, Any]:
    """A run summary (an attrs class with ``equity`` and ``initial_cash``) as JSON-ready data, with its PnL and return."""
    import attrs

    data = attrs.asdict(summary)
    data["pnl"] = summary.pnl
    data["return"] = summary.pnl / summary.initial_cash if summary.initial_cash else 0.0
    return data


def account_lines(summary: Any, after_pnl: str = "", after_drawdown: str = "") -> list[str]:
    """The account's lines of a run summary: equity and PnL, trades, fees and drawdown, the risk status."""
    ret = summary.pnl / summary.initial_cash * 100 if summary.initial_cash else 0.0
    return [
        f"  equity {summary.equity:,.2f} (start {summary.initial_cash:,.2f})  PnL {summary.pnl:+,.2f} ({ret:+.2f}%)"
        + after_pnl,
        f"  trades {summary.trades}  fees {summary.fees_paid:,.2f}  realized {summary.realized_pnl:+,.2f}  "
        f"max drawdown {summary.max_drawdown * 100:.2f}%" + after_drawdown,
        f"  risk {summary.status}" + (f": {summary.status_reason}" if summary.status_reason else ""),
    ]


def _seconds(section: dict[str, Any], key: str, default: float) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ConfigError(f"[engine] {key} must be a positive number of seconds, got {value!r}")
    return float(value)


def open_state_store(manager: TraderPluginManager, config: TraderConfig, name: str) -> StateStore:
    """The store of ``name`` through ``trader_state_store``, reaching only that strategy's namespace."""
    directory = config.strategy_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    caller = manager.subset_hook("trader_state_store", audit_plugin_names(manager, name))
    store = caller(namespace=name, directory=directory)
    if store is None:
        raise StateError(f"no plugin opened a state store for {name!r}")
    from trader.engine.state import check_store

    return check_store(store, name, directory, hook=caller)


class StrategyRunner:
    """Runs one strategy until its feed ends, ``max_candles`` are processed or :attr:`stop` is set."""

    def __init__(
        self,
        config: TraderConfig,
        manager: TraderPluginManager,
        options: RunOptions,
        *,
        stop: threading.Event | None = None,
        exchange_factory: Callable[[], Any] | None = None,
        log_format: str = "text",
    ) -> None:
        self.config = config
        self.manager = manager
        self.options = options
        self.stop = stop or threading.Event()
        self.log_format = log_format
        self._exchange_factory = exchange_factory
        self._exchange: Any = None
        self._worker: Any = None
        self._info: Any = None
        self._notify: Any = None  # the [notify] settings, secrets read (trader.notify)

    # ------------------------------------------------------------------ set-up

    def _check_strategy(self, info: StrategyInfo, hooks: Any) -> None:
        if "trader_generate_signals" not in hooks:
            raise NotSupportedError(f"strategy {info.name!r} does not implement trader_generate_signals")
        if self.options.timeframe not in info.timeframes:
            raise NotSupportedError(
                f"strategy {info.name!r} does not trade {self.options.timeframe} (it supports {', '.join(info.timeframes)})"
            )

    def _inline_source(self, params: dict[str, Any]) -> tuple[SignalSource, StrategyInfo, tuple]:
        """The strategy's hooks in this process (``--isolation inline``)."""
        strategy = self.manager.strategy(self.options.strategy)  # UnknownPluginError lists the installed ones
        info = strategy.info
        self._check_strategy(info, strategy.record.hooks)
        params = validate_params(info, params, self._params_where)  # before the model is loaded
        model = self._load_model(strategy) if info.requires_model else None
        workdir = self._workdir(info.name)
        return StrategySignals(strategy, self.options.symbol, self.options.timeframe, model, params, workdir), info, ()

    def _workdir(self, name: str) -> Path:
        """The strategy's own writable folder (``SignalRequest.workdir``); :meth:`_run` creates it once the
        state has opened, so a refused run leaves nothing behind."""
        return self.config.strategy_dir(name) / "plugin"

    def _worker_source(self, params: dict[str, Any]) -> tuple[SignalSource, StrategyInfo, tuple]:
        """The strategy's hooks in a worker process (``--isolation process``); this process never imports them."""
        from trader.engine.isolation import StrategyWorker
        from trader.engine.wire import info_from_wire

        opts = self.options
        name = opts.strategy
        spec = self.manager.entry_point(name)
        record = self.manager.records.get(name)
        if spec is None or record is None or not record.is_strategy or record.status == "error":
            self.manager.strategy(name)  # the manager's own one-line error: unknown, disabled, failed or in conflict
            raise ConfigError(f"strategy {name!r} was registered in-process, not installed: run it with isolation 'inline'")
        engine = self.config.section("engine")
        worker = StrategyWorker(
            spec,
            self._worker_init(params),
            signal_timeout_s=_seconds(engine, "signal_timeout_s", DEFAULT_SIGNAL_TIMEOUT_S),
            start_timeout_s=_seconds(engine, "worker_start_timeout_s", DEFAULT_START_TIMEOUT_S),
            log_format=self.log_format,
            log_level=logging.getLevelName(logging.getLogger("trader").getEffectiveLevel()),
        )
        self._worker = worker
        from trader.engine.isolation import WorkerFailure

        try:
            hello = worker.start()
        except WorkerFailure as exc:  # died, hung or answered more than the engine reads: one line, never a traceback
            raise PluginError(f"plugin {name!r}: its worker process {exc} while starting") from None
        try:
            info = info_from_wire(hello.get("info") or {})
        except (ValueError, TypeError) as exc:
            raise PluginError(f"plugin {name!r}: trader_strategy_info from its worker is invalid: {exc}") from None
        if info.name != name:
            raise PluginError(f"plugin {name!r}: trader_strategy_info names itself {info.name!r}")
        said = hello.get("hooks")
        hooks: list[Any] = said if isinstance(said, list) else []
        self._check_strategy(info, hooks)
        validate_params(info, params, self._params_where)  # the worker checked them too; this process does not rely on it
        if hello.get("model_version"):
            log.info("%s: model %s loaded in the strategy worker", name, hello["model_version"])
        rules = ((name, worker.audit),) if "trader_audit_order" in hooks else ()
        return self._worker_signals(worker, info), info, rules

    def _worker_init(self, params: dict[str, Any]) -> dict[str, Any]:
        """What the worker's init request says beyond the plugin (its market, model, parameters, folder)."""
        opts = self.options
        return {"symbol": opts.symbol, "timeframe": opts.timeframe, "models_dir": str(self.config.models_dir),
                "model_version": None if opts.model_version is None else str(opts.model_version), "params": params,
                "params_where": self._params_where, "workdir": str(self._workdir(opts.strategy))}

    def _worker_signals(self, worker: Any, info: StrategyInfo) -> Any:
        from trader.engine.isolation import WorkerSignals

        return WorkerSignals(worker, info)

    @property
    def _params_where(self) -> str:
        from trader.params import params_where

        return params_where(self.config, self.options.strategy)

    def _check_live(self) -> None:
        from trader.config import exchange_credentials

        opts = self.options
        if opts.live and opts.feed != "live":
            raise ConfigError("--live sends real orders and needs --feed live")
        if opts.live:
            creds = exchange_credentials()
            if not {"apiKey", "secret"} <= set(creds):
                raise ConfigError(
                    "--live needs API keys in the environment: set TRADER_API_KEY and TRADER_API_SECRET "
                    "(and TRADER_API_PASSWORD where the exchange wants one)"
                )

    def _load_model(self, strategy: Strategy) -> Any:
        opts = self.options
        hint = f"train one with: {train_command(strategy.name, opts.symbol, opts.timeframe)}"
        try:
            from trader.models import ModelPersistence
        except ImportError:
            raise ModelNotFoundError(f"strategy {strategy.name!r} needs a trained model; {hint}") from None
        loaded = ModelPersistence(self.config.models_dir).load(strategy, opts.symbol, opts.timeframe, version=opts.model_version)
        if loaded is None:
            raise ModelNotFoundError(f"no trained {strategy.name} model for {opts.symbol} {opts.timeframe}; {hint}")
        log.info("%s: model %s loaded from %s", strategy.name, loaded.version, loaded.directory)
        return loaded.model

    def exchange(self) -> Any:
        if self._exchange is None:
            if self._exchange_factory is not None:
                self._exchange = self._exchange_factory()
            else:
                from trader.data.download import make_exchange

                self._exchange = make_exchange(self.config, self.options.exchange, credentials=self.options.live)
        return self._exchange

    def _broker(self) -> Broker:
        opts = self.options
        if opts.live:
            from trader.engine.brokers.ccxt_broker import CcxtBroker

            return CcxtBroker(self.exchange(), strategy=opts.strategy)
        return paper_broker(self.config, fee_bps=opts.fee_bps, slippage_bps=opts.slippage_bps, spread_bps=opts.spread_bps)

    # ------------------------------------------------------------------ the run

    def run(self) -> RunSummary:
        opts = self.options
        try:
            timeframe_to_ms(opts.timeframe)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if opts.max_candles is not None and opts.max_candles < 1:
            raise ConfigError(f"--max-candles must be >= 1, got {opts.max_candles}")
        self._check_live()
        cash = initial_cash(self.config, opts.cash)
        band = rebalance_band(self.config)
        params = self.config.plugin_params(opts.strategy)
        from trader.notify import resolve_targets

        self._notify = resolve_targets(self.config.section("notify"))  # a missing secret stops the run before it starts
        try:
            if opts.isolation == "process":
                source, info, rules = self._worker_source(params)
            else:
                source, info, rules = self._inline_source(params)
            limits = strategy_limits(info, self.config)
            return self._run(source, info, rules, limits, cash, band)
        finally:
            if self._worker is not None:
                self._worker.stop()

    def _run(self, source: SignalSource, info: StrategyInfo, rules: tuple, limits: Any, cash: float, band: float) -> RunSummary:
        opts = self.options
        lock = StrategyLock(self.config.strategy_dir(info.name), info.name).acquire()
        store = None
        broker = None
        notifier = None
        try:
            store = open_state_store(self.manager, self.config, info.name)
            if opts.live:
                store.set_durable(True)
            saved = store.load(opts.symbol, opts.timeframe)
            self._workdir(info.name).mkdir(parents=True, exist_ok=True)
            if saved is not None and opts.cash is not None and abs(saved.initial_cash - cash) > 1e-9:
                raise ConfigError(
                    f"--cash {cash:,.2f} applies to a new account only; {info.name} already started with "
                    f"{saved.initial_cash:,.2f} (state in {self.config.strategy_dir(info.name)})"
                )
            broker = self._broker()
            audit = RiskAuditAgent.for_strategy(self.manager, info.name, limits, **({"extra_rules": rules} if rules else {}))
            session = self._session(info, limits, broker, store, audit, cash, band)
            if self._notify is not None:  # alerts leave from their own threads, never from the step
                from trader.notify import Notifier

                notifier = Notifier(self._notify, info.name)
                session.on_commit = notifier.observe
                log.info("%s: alerts to %s", info.name, notifier.describe())
            if session.audit.fails_closed:
                log.error("%s: the risk audit denies every order: %s", info.name, session.audit.refusal)
            for line in reconcile(session):  # the engine settles what a crash left open; the broker reports
                log.info("%s: %s", info.name, line)
            return self._loop(info, source, session)
        finally:
            if notifier is not None:
                notifier.close()
            if broker is not None:
                broker.close()
            if store is not None:
                store.close()
            lock.release()

    def _session(self, info: StrategyInfo, limits: Any, broker: Broker, store: StateStore, audit: RiskAuditAgent,
                 cash: float, band: float) -> TradingSession:
        opts = self.options
        return TradingSession(info.name, opts.symbol, opts.timeframe, limits=limits, broker=broker, store=store,
                              audit=audit, initial_cash=cash, rebalance_band=band, latency_denies=opts.feed == "live")

    def _loop(self, info: StrategyInfo, signals: SignalSource, session: TradingSession) -> RunSummary:
        opts = self.options
        first_row = info.warmup_bars
        self._info = info
        items, source = self._items(session, signals)
        log.info(
            "%s: trading %s %s on %s with the %s broker; risk status %s",
            info.name, opts.symbol, opts.timeframe, source, session.broker.name, session.status.value,
        )
        costs = session.broker.costs_line()
        if costs is not None:  # the paper broker: what its fills pay
            log.info("%s: costs: %s", info.name, costs)
        processed = 0
        stopped_by = "end of data"
        first_ts = None
        first_close = None
        last_close = None
        read_state = session.store.strategy_state
        watch = session.broker.watch_candle  # the paper broker's spread estimate
        for index, candle, now in items:
            watch(candle)
            session.apply_requests()
            if session.last_timestamp is not None and candle.timestamp <= session.last_timestamp:
                session.process(candle, None, now=now)  # skipped, with a warning and an event
                continue
            state = read_state() if index >= first_row else {}
            signal, inference_ms = signals.next(index, candle, state)
            record = session.process(candle, signal, inference_ms=inference_ms, now=now)
            self._log_step(record, index)
            processed += 1
            if first_ts is None:
                first_ts = candle.timestamp
                first_close = candle.close
            last_close = candle.close
            if opts.max_candles is not None and processed >= opts.max_candles:
                stopped_by = f"--max-candles {opts.max_candles}"
                break
            if self.stop.is_set():
                break
        if self.stop.is_set():
            stopped_by = "a stop signal"
        if opts.feed == "live" and stopped_by == "end of data":
            stopped_by = "a stop signal"
        bh = (last_close / first_close - 1) if first_close and last_close else None
        return self._summary(session, source, processed, stopped_by, first_ts, bh)

    def _items(self, session: TradingSession, signals: SignalSource) -> tuple[Iterator, str]:
        """The feed's candles after the last processed one; warms the window and the features."""
        opts = self.options
        if opts.feed == "replay":
            from trader.data import resolve_candles
            from trader.engine.feeds import ReplayFeed

            df, source = resolve_candles(
                self.config.home, opts.symbol, opts.timeframe, exchange=opts.exchange,
                synthetic_bars=opts.synthetic_bars, seed=opts.seed,
            )
            replay = ReplayFeed(df, opts.timeframe, speed=opts.speed, stop=self.stop, source=source)
            session.broker.watch_candles(df)
            start = replay.start_index(session.last_timestamp)
            if opts.start_from is not None:
                start = max(start, replay.start_index(opts.start_from - 1))
            if start:
                log.info("%s: resuming after candle %d of %d (%s)", opts.strategy, start, len(replay), source)
            signals.warm(replay.history(start))
            if start >= len(replay):
                log.info("%s: every candle of %s is already processed", opts.strategy, source)
            return replay.items(start), source
        from trader.engine.feeds import LiveFeed

        def report(code: str, message: str) -> None:
            session.record_error(None, code, message)

        feed = LiveFeed(self.exchange(), opts.symbol, opts.timeframe, stop=self.stop, on_error=report,
                        stale_after_bars=session.limits.stale_after_bars)
        history = feed.history(self._live_history_bars(session))
        session.broker.watch_candles(history)
        ts = history["timestamp"].to_numpy()
        last = session.last_timestamp
        if last is None:
            cut = max(0, len(history) - 1)
        else:
            import numpy as np

            cut = int(np.searchsorted(ts, last, side="right"))
            if len(ts) and ts[0] > last + session.timeframe_ms:
                log.warning("%s: candles between %d and %d are no longer available; the state has a gap", opts.strategy, last, int(ts[0]))
        signals.warm(history.iloc[:cut])
        pending = history.iloc[cut:]

        def items() -> Iterator:
            from trader.engine.feeds import _candle

            index = cut
            newest = last
            for row in pending.itertuples(index=False):
                candle = _candle(tuple(row))
                if candle is None:
                    continue
                newest = candle.timestamp
                yield index, candle, feed.now_ms()
                index += 1
            yield from feed.items(newest, index)

        return items(), feed.source

    def _live_history_bars(self, session: TradingSession) -> int:
        """How many recent candles the live feed fetches to warm up: the strategy's window, and one more."""
        return window_size(self._info) + 1

    def _log_step(self, record: Any, index: int) -> None:
        from trader.timeframes import format_utc

        level = logging.DEBUG if self.options.quiet and not (record.orders or record.events) else logging.INFO
        if not log.isEnabledFor(level):
            return
        order = "-"
        if record.orders:
            o = record.orders[-1]
            order = f"{o.order.side.value} {o.order.quantity:g} {o.status}"
        latency = f"{record.inference_ms:.1f}ms" if record.inference_ms is not None else "-"
        note = f" note={record.note}" if record.note else ""
        events = ",".join(sorted({e.code for e in record.events if e.code != "APPROVED"}))
        log.log(
            level,
            "step %s %s %s #%d close=%.6g signal=%s order=%s equity=%.2f position=%g status=%s latency=%s%s%s",
            self.options.strategy,
            record.symbol,
            format_utc(record.timestamp),
            index,
            record.close,
            record.action or "-",
            order,
            record.equity,
            record.positions[record.symbol].quantity if record.symbol in record.positions else 0.0,
            record.status.value,
            latency,
            note,
            f" events={events}" if events else "",
            extra={
                "event": "step",
                "strategy": self.options.strategy,
                "symbol": record.symbol,
                "candle_ts": record.timestamp,
                "close": record.close,
                "signal": record.action,
                "orders": [o.order.client_order_id for o in record.orders],
                "fills": len(record.fills),
                "equity": record.equity,
                "cash": record.cash,
                "status": record.status.value,
                "inference_ms": record.inference_ms,
            },
        )

    def _summary(self, session: TradingSession, source: str, processed: int, stopped_by: str, first_ts: int | None, bh: float | None) -> RunSummary:
        from trader.evaluation.performance import max_drawdown

        store = session.store
        curve = store.equity_curve(session.symbol)
        trades = len(store.fills())
        first = curve[0][0] if curve else first_ts
        return RunSummary(
            strategy=session.strategy,
            symbol=session.symbol,
            timeframe=session.timeframe,
            source=source,
            processed=processed,
            stopped_by=stopped_by,
            first_ts=first,
            last_ts=session.last_timestamp,
            initial_cash=session.book.initial_cash,
            equity=session.equity,
            cash=session.cash,
            position=session.position,
            fees_paid=session.book.fees_paid,
            realized_pnl=session.book.realized_pnl,
            trades=trades,
            max_drawdown=max_drawdown([e for _, e in curve])[0],
            status=session.status.value,
            status_reason=session.status_reason,
            buy_and_hold_return=bh,
        )

