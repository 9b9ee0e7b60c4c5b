"""The ``trader run`` loop on a basket: one strategy, several markets, one account, until stopped.

:class:`PortfolioRunner` is :class:`~trader.engine.runner.StrategyRunner` (the same lock,
store, notifications, reconciliation, isolation and stop handling) with a
:class:`~trader.portfolio.session.PortfolioSession` for the session and a feed of basket
steps. The replay feed puts the markets' stored candles on their union timeline
(:func:`~trader.portfolio.align.align`) and plays it step by step: at each step the markets
with a closed candle get their signals (:mod:`trader.portfolio.sources`, or the strategy's
worker) and the session decides, audits, fills and commits the step at once. A restart
continues after the account's last step, and a market never replays a candle at or before
its own last traded one, so a replay ends with the fills of a basket backtest of the same
candles.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.engine.runner import StrategyRunner
from trader.errors import ConfigError, DataError, NotSupportedError
from trader.params import validate_params
from trader.timeframes import timeframe_to_ms

if TYPE_CHECKING:
    from trader.engine.brokers.base import Broker
    from trader.engine.risk import RiskAuditAgent
    from trader.engine.store import StateStore
    from trader.portfolio.align import Basket
    from trader.portfolio.run_summary import BasketRunSummary
    from trader.portfolio.session import PortfolioSession
    from trader.portfolio.sources import BasketSource
    from trader.types import Candle, StrategyInfo

__all__ = ["PortfolioRunner", "BasketStep"]

log = logging.getLogger("trader.run")

#: One step of a basket feed: its timeline position, open time, the markets' closed candles, the clock (ms).
BasketStep = tuple[int, int, dict[str, "Candle"], int]


class PortfolioRunner(StrategyRunner):
    """Runs one strategy on ``symbols`` until the feed ends, ``max_candles`` steps are processed or
    :attr:`stop` is set. ``options.symbol`` is not used; ``options.max_candles`` counts steps."""

    def __init__(self, config: Any, manager: Any, options: Any, symbols: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(config, manager, options, **kwargs)
        if len(symbols) < 2:
            raise ConfigError("a basket needs at least two markets")
        if len(set(symbols)) != len(symbols):
            raise ConfigError(f"a market is listed twice in {', '.join(symbols)}")
        self.symbols = tuple(sorted(symbols))
        self._basket: tuple[Basket, dict[str, str]] | None = None

    def run(self) -> BasketRunSummary:  # type: ignore[override]
        if self.options.feed == "replay":  # a market without candles is refused before anything starts
            self._basket = self._replay_basket()
        return super().run()  # type: ignore[return-value]

    # ------------------------------------------------------------------ set-up

    def _check_strategy(self, info: StrategyInfo, hooks: Any) -> None:
        if "trader_generate_signals" not in hooks and "trader_generate_basket_signals" not in hooks:
            raise NotSupportedError(
                f"strategy {info.name!r} implements neither trader_generate_signals nor trader_generate_basket_signals"
            )
        if self.options.timeframe not in info.timeframes:
            raise NotSupportedError(
                f"strategy {info.name!r} does not trade {self.options.timeframe} (it supports {', '.join(info.timeframes)})"
            )

    def _inline_source(self, params: dict[str, Any]) -> tuple[Any, StrategyInfo, tuple]:
        from trader.portfolio.sources import basket_source

        opts = self.options
        strategy = self.manager.strategy(opts.strategy)
        info = strategy.info
        self._check_strategy(info, strategy.record.hooks)
        params = validate_params(info, params, self._params_where)  # before the models are loaded
        models: dict[str, Any] = {}
        if info.requires_model:
            from trader.portfolio.models import load_basket_models

            loaded = load_basket_models(strategy, self.config.models_dir, self.symbols, opts.timeframe,
                                        version=opts.model_version)
            models = loaded.models
            log.info("%s: models %s", info.name, ", ".join(f"{s} {v}" for s, v in loaded.versions.items()))
            for symbol in loaded.mismatched:
                log.warning("%s: the model %s trades was trained on %s, not on it", info.name, symbol,
                            ", ".join(loaded.trained_on[symbol]))
        source = basket_source(strategy, self.symbols, opts.timeframe, models=models, params=params,
                               workdir=self._workdir(info.name))
        return source, info, ()

    def _worker_init(self, params: dict[str, Any]) -> dict[str, Any]:
        return {**super()._worker_init(params), "symbol": self.symbols[0], "symbols": list(self.symbols)}

    def _worker_signals(self, worker: Any, info: StrategyInfo) -> Any:
        from trader.engine.isolation import WorkerBasketSignals

        return WorkerBasketSignals(worker, info, self.symbols)

    def _broker(self) -> Broker:
        if self.options.live:
            return super()._broker()  # the exchange broker trades any of its markets
        from trader.portfolio.broker import BasketPaperBroker

        return BasketPaperBroker.like(super()._broker(), self.symbols)  # type: ignore[arg-type]

    def _session(self, info: StrategyInfo, limits: Any, broker: Broker, store: StateStore, audit: RiskAuditAgent,
                 cash: float, band: float) -> PortfolioSession:
        from trader.portfolio.session import PortfolioSession

        return PortfolioSession(info.name, self.symbols, self.options.timeframe, limits=limits, broker=broker,
                                store=store, audit=audit, initial_cash=cash, rebalance_band=band,
                                latency_denies=self.options.feed == "live")

    # ------------------------------------------------------------------ the run

    def _loop(self, info: StrategyInfo, signals: Any, session: Any) -> BasketRunSummary:  # type: ignore[override]
        from trader.portfolio.broker import BasketPaperBroker
        from trader.portfolio.run_summary import basket_summary

        opts = self.options
        self._info = info
        steps, source = self._steps(session, signals)
        log.info("%s: trading %s %s on %s with the %s broker; risk status %s", info.name, ", ".join(self.symbols),
                 opts.timeframe, source, session.broker.name, session.status.value)
        costs = session.broker.costs_line()
        if costs is not None:
            log.info("%s: costs: %s", info.name, costs)
        paper = session.broker if isinstance(session.broker, BasketPaperBroker) else None
        read_state = session.store.strategy_state
        processed = 0
        stopped_by = "end of data"
        first_ts = None
        for position, timestamp, candles, now in steps:
            if paper is not None and opts.feed == "live":  # a replay's frames were shown whole
                for symbol, candle in candles.items():
                    paper.watch_candle(candle, symbol)
            session.apply_requests()
            last = session.last_timestamp
            if last is not None and timestamp <= last:
                session.step(timestamp, {}, None, now=now)  # skipped, with a warning and an event
                continue
            fresh = {s: c for s, c in candles.items() if session.market_last.get(s, -1) < timestamp}
            answers, inference_ms = signals.next(timestamp, fresh, read_state())
            record = session.step(timestamp, {s: c.close for s, c in fresh.items()}, answers,
                                  inference_ms=inference_ms, now=now)
            self._log_basket_step(record, position)
            processed += 1
            if first_ts is None:
                first_ts = timestamp
            if opts.max_candles is not None and processed >= opts.max_candles:
                stopped_by = f"--max-candles {opts.max_candles}"
                break
            if self.stop.is_set():
                break
        if self.stop.is_set() or (opts.feed == "live" and stopped_by == "end of data"):
            stopped_by = "a stop signal"
        return basket_summary(session, source, processed, stopped_by, first_ts)

    def _steps(self, session: PortfolioSession, signals: BasketSource) -> tuple[Iterator[BasketStep], str]:
        """The feed's steps after the account's last one; warms every market's window and features."""
        if self.options.feed == "live":
            return self._live_steps(session, signals)
        basket, sources = self._basket or self._replay_basket()
        session.broker.watch_candles(dict(basket.frames))
        start = 0 if session.last_timestamp is None else int(np.searchsorted(basket.timestamps, session.last_timestamp, side="right"))
        if self.options.start_from is not None:
            start = max(start, basket.index_at_or_after(self.options.start_from))
        first = int(basket.timestamps[start]) if start < len(basket) else None
        for symbol in basket.symbols:
            frame = basket.frames[symbol]
            cut = len(frame) if first is None else int(np.searchsorted(frame["timestamp"].to_numpy(), first, side="left"))
            signals.warm(symbol, frame.iloc[:cut])
        if start:
            log.info("%s: resuming after step %d of %d", self.options.strategy, start, len(basket))
        if start >= len(basket):
            log.info("%s: every step of the basket is already processed", self.options.strategy)
        source = "; ".join(f"{s}: {sources[s]}" for s in basket.symbols)
        return self._replay(basket, start), source

    def _replay_basket(self) -> tuple[Basket, dict[str, str]]:
        """Each market's stored candles on the union timeline; a market with none stored is refused."""
        from trader.data import resolve_candles
        from trader.data.store import CandleStore
        from trader.portfolio.align import align

        opts = self.options
        store = CandleStore(self.config.home)
        frames, sources = {}, {}
        for symbol in self.symbols:
            if opts.exchange is None and not store.exchanges_with(symbol, opts.timeframe):
                raise DataError(
                    f"no stored {symbol} {opts.timeframe} candles: a basket replays stored markets only "
                    f"(`trader data import`, `trader data download` or `trader data synth --symbol {symbol}`)"
                )
            frames[symbol], sources[symbol] = resolve_candles(self.config.home, symbol, opts.timeframe, exchange=opts.exchange)
        return align(frames, opts.timeframe), sources

    def _replay(self, basket: Basket, start: int) -> Iterator[BasketStep]:
        from trader.engine.feeds import _candle

        speed = self.options.speed
        if speed < 0:
            raise DataError(f"--speed must be >= 0 (0 = as fast as possible), got {speed}")
        tf = timeframe_to_ms(self.options.timeframe)
        pause = tf / 1000 / speed if speed > 0 else 0.0
        columns = ["timestamp", "open", "high", "low", "close", "volume"]
        values = [basket.frames[s][columns].to_numpy(dtype=np.float64) for s in basket.symbols]
        for position in range(start, len(basket)):
            if self.stop.is_set():
                return
            timestamp = int(basket.timestamps[position])
            candles = {}
            for j, symbol in enumerate(basket.symbols):
                row = int(basket.rows[position, j])
                if row >= 0:
                    candle = _candle((timestamp, *values[j][row, 1:]))
                    if candle is not None:
                        candles[symbol] = candle
            yield position, timestamp, candles, timestamp + tf
            if pause and self.stop.wait(pause):
                return

    def _live_steps(self, session: PortfolioSession, signals: BasketSource) -> tuple[Iterator[BasketStep], str]:
        """The live feed of every market (:class:`trader.portfolio.feeds.BasketLiveFeed`): its recent
        history warms the windows, the candles after the account's last step are traded first."""
        from trader.engine.signals import window_size
        from trader.portfolio.feeds import BasketLiveFeed

        def report(code: str, message: str) -> None:
            session.record_error(None, code, message)

        feed = BasketLiveFeed(self.exchange(), self.symbols, self.options.timeframe, stop=self.stop, on_error=report,
                              stale_after_bars=session.limits.stale_after_bars)
        history = feed.history(window_size(self._info) + 1)
        session.broker.watch_candles(dict(history))
        last = session.last_timestamp
        pending: dict[int, dict[str, Candle]] = {}
        after: dict[str, int | None] = {}
        # The markets' histories were fetched one after another: a candle that closed in between is in
        # some of them only. Cut them at the newest time every up-to-date market has, so that candle
        # comes from the feed for every market instead of being skipped for the ones fetched first.
        newest = [int(f["timestamp"].iloc[-1]) for f in history.values() if f is not None and len(f)]
        common: int | None = None
        if newest:
            recent = [ts for ts in newest if ts >= max(newest) - session.timeframe_ms]
            common = min(recent)
            history = {s: (f[f["timestamp"] <= common] if f is not None else f) for s, f in history.items()}
        for symbol in self.symbols:
            frame = history.get(symbol)
            if frame is None or len(frame) == 0:
                signals.warm(symbol, _empty_frame())
                after[symbol] = last
                continue
            ts = frame["timestamp"].to_numpy()
            if last is not None:
                cut = int(np.searchsorted(ts, last, side="right"))
            elif common is not None:  # a new account starts at the newest common candle; older ones warm up
                cut = int(np.searchsorted(ts, common, side="left"))
            else:
                cut = max(0, len(frame) - 1)
            signals.warm(symbol, frame.iloc[:cut])
            after[symbol] = int(ts[-1]) if cut < len(frame) or last is None else last
            for candle in _candles(frame.iloc[cut:]):
                pending.setdefault(candle.timestamp, {})[symbol] = candle

        def steps() -> Iterator[BasketStep]:
            position = 0
            for timestamp in sorted(pending):
                yield position, timestamp, pending[timestamp], feed.now_ms()
                position += 1
            for timestamp, candles, now in feed.items(after):
                yield position, timestamp, dict(candles), now
                position += 1

        return steps(), feed.source

    def _log_basket_step(self, record: Any, position: int) -> None:
        from trader.timeframes import format_utc

        level = logging.DEBUG if self.options.quiet and not (record.orders or record.events) else logging.INFO
        if not log.isEnabledFor(level):
            return
        orders = "; ".join(f"{o.order.side.value} {o.order.quantity:g} {o.order.symbol} {o.status}" for o in record.orders) or "-"
        latency = f"{record.inference_ms:.1f}ms" if record.inference_ms is not None else "-"
        events = ",".join(sorted({e.code for e in record.events if e.code != "APPROVED"}))
        log.log(
            level,
            "step %s %s #%d markets=%s signal=%s orders=%s equity=%.2f cash=%.2f status=%s latency=%s%s%s",
            self.options.strategy, format_utc(record.timestamp), position, ",".join(m.symbol for m in record.markets) or "-",
            record.action or "-", orders, record.equity, record.cash, record.status.value, latency,
            f" note={record.note}" if record.note else "", f" events={events}" if events else "",
            extra={
                "event": "step",
                "strategy": self.options.strategy,
                "symbol": record.symbol,
                "candle_ts": record.timestamp,
                "markets": {m.symbol: m.close for m in record.markets},
                "signal": record.action,
                "orders": [o.order.client_order_id for o in record.orders],
                "fills": len(record.fills),
                "equity": record.equity,
                "cash": record.cash,
                "status": record.status.value,
                "inference_ms": record.inference_ms,
            },
        )


def _empty_frame() -> Any:
    import pandas as pd

    return pd.DataFrame({c: np.empty(0) for c in ("timestamp", "open", "high", "low", "close", "volume")})


def _candles(frame: Any) -> Iterator[Candle]:
    from trader.engine.feeds import _candle

    for row in frame[["timestamp", "open", "high", "low", "close", "volume"]].itertuples(index=False):
        candle = _candle(tuple(row))
        if candle is not None:
            yield candle
