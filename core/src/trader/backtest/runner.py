"""``run_backtest``: features once, the strategy's signals batched, then the engine's step per candle.

1. Candles come from the store (``trader data``), else the synthetic market, as for ``trader run``.
2. Features are computed once over the candles up to the end of the range.
3. The strategy is asked once for every row of the range after its warm-up
   (``request.at`` lists them all), so a model runs batched.
4. :class:`trader.engine.step.TradingSession` steps through the range candle by candle with
   those signals, the paper broker and the strategy's risk audit, on an in-memory store:
   the same step ``trader run`` takes for each candle, so the same candles give the same
   trades.
5. The builtin ``buy_and_hold`` runs over the same range with the same cash, fees and risk
   limits, as the baseline; a block bootstrap says whether the result differs from chance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.backtest.results import BacktestResult, SimulatedRun
from trader.backtest.signals import request_signals, signal_arrays, strategy_features
from trader.errors import DataError, ModelNotFoundError, PluginError, train_command
from trader.params import configured_params
from trader.types import RiskLimits, Signal

if TYPE_CHECKING:
    import pandas as pd

    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager
    from trader.strategy import Strategy

__all__ = [
    "BacktestSettings",
    "SignalBatch",
    "Market",
    "effective_limits",
    "select_range",
    "BacktestScope",
    "load_model",
    "batch_signals",
    "simulate",
    "run_backtest",
    "quiet_engine_logs",
]

BASELINE = "buy_and_hold"


@attrs.frozen
class BacktestSettings:
    """Money and market settings of a backtest (``None`` means the ``[broker]`` table or its default)."""

    fee_bps: float | None = None
    slippage_bps: float | None = None
    cash: float | None = None
    spread_bps: float | None = None  # None: [broker] spread_bps, else estimated per candle (trader.costs)
    n_resamples: int = 1000
    n_trials: int = 1
    seed: int = 0
    benchmark: bool = True
    spread_multiplier: float | None = 2.0  # the robustness run's spread, x the assumed one (None: no such run)


@attrs.frozen
class Market:
    """The broker, cash and rebalance band a backtest trades with, resolved as ``trader run`` does.

    The broker charges the spread of :mod:`trader.costs` on every candle of ``candles[rows]``
    (the traded range, priced from the candles before each one).
    """

    broker: Any
    cash: float
    rebalance_band: float
    candles: Any = None  # the frame the spreads were estimated on (None: not estimated)
    rows: slice | None = None  # its traded rows

    @classmethod
    def resolve(cls, config: TraderConfig, settings: BacktestSettings, candles: pd.DataFrame | None = None,
                rows: slice | None = None) -> Market:
        from trader.costs import SpreadTable
        from trader.engine import initial_cash, paper_broker, rebalance_band

        broker = paper_broker(config, fee_bps=settings.fee_bps, slippage_bps=settings.slippage_bps,
                              spread_bps=settings.spread_bps)
        if candles is not None:
            broker = broker.with_spreads(SpreadTable.of(broker.costs, candles, rows))
        return cls(broker=broker, cash=initial_cash(config, settings.cash), rebalance_band=rebalance_band(config),
                   candles=candles, rows=rows)

    @property
    def costs(self) -> Any:
        """The :class:`trader.costs.CostModel` the broker charges."""
        return self.broker.costs

    def with_spread_multiplier(self, multiplier: float) -> Market:
        """The same market at ``multiplier`` times the spread (the cost-robustness run)."""
        return attrs.evolve(self, broker=self.broker.with_spreads(self.broker.spreads.scaled(multiplier)))

    def describe(self) -> dict[str, Any]:
        """Money settings and the costs assumed (:func:`trader.costs.describe_costs`), flat."""
        from trader.costs import describe_costs

        rules = self.broker.rules
        return {
            **describe_costs(self.costs, self.broker.spreads.charged(), self.candles, self.rows),
            "cash": self.cash,
            "min_notional": rules.min_notional,
            "lot_size": rules.lot_size,
            "rebalance_band": self.rebalance_band,
        }


def effective_limits(strategy: Strategy, config: TraderConfig) -> RiskLimits:
    """The strategy's default limits overridden by ``[plugins.NAME.risk]``, exactly as ``trader run`` resolves them."""
    from trader.engine import strategy_limits

    return strategy_limits(strategy.info, config)


@contextmanager
def quiet_engine_logs(level: int = logging.ERROR):
    """Silence the per-order audit and fill lines while a backtest runs (the report has them all)."""
    loggers = [logging.getLogger(name) for name in ("trader.risk", "trader.engine")]
    before = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(level, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, before, strict=True):
            lg.setLevel(lvl)


def select_range(candles: pd.DataFrame, start: int | None, end: int | None) -> tuple[int, int]:
    """Row positions ``[first, last]`` of the candles opened within ``[start, end]`` (ms)."""
    ts = candles["timestamp"].to_numpy()
    first = int(np.searchsorted(ts, start, side="left")) if start is not None else 0
    last = int(np.searchsorted(ts, end, side="right")) - 1 if end is not None else len(ts) - 1
    if len(ts) == 0 or first > last:
        from trader.data import format_ms

        have = f"{format_ms(int(ts[0]))} .. {format_ms(int(ts[-1]))}" if len(ts) else "none"
        raise DataError(f"no candles between {format_ms(start)} and {format_ms(end)} (data covers {have})")
    return first, last


@attrs.frozen
class BacktestScope:
    """What every backtest of one strategy over one range starts from (plain and walk-forward)."""

    strategy: Strategy
    limits: RiskLimits
    market: Market
    first: int  # row of the first candle in the range
    last: int  # row of the last one
    view: pd.DataFrame  # the candles up to ``last``: nothing after the range is ever visible

    @classmethod
    def resolve(cls, manager: TraderPluginManager, config: TraderConfig, strategy_name: str, candles: pd.DataFrame,
                start: int | None, end: int | None, settings: BacktestSettings) -> BacktestScope:
        strategy = manager.strategy(strategy_name)
        first, last = select_range(candles, start, end)
        view = candles.iloc[: last + 1]
        market = Market.resolve(config, settings, view, slice(first, last + 1))
        return cls(strategy, effective_limits(strategy, config), market, first, last, view)

    def judge(self, manager: TraderPluginManager, run: SimulatedRun, first: int, last: int, *, symbol: str,
              timeframe: str, settings: BacktestSettings) -> tuple[SimulatedRun | None, Any]:
        """The buy-and-hold baseline over rows ``[first, last]`` (unless disabled, or the strategy is the
        baseline) and the block-bootstrap significance of ``run`` against it (``None`` under 3 returns)."""
        from trader.backtest.bootstrap import significance
        from trader.evaluation.performance import equity_returns, periods_per_year

        bench = None
        if settings.benchmark:
            if self.strategy.name != BASELINE:
                bench = baseline_run(manager, self.limits, self.market, self.view, first, last, symbol=symbol,
                                     timeframe=timeframe)
            else:
                bench = run  # buy-and-hold against itself: it cannot beat itself
        returns = equity_returns(run.equity)
        if returns.size < 3:
            return bench, None
        return bench, significance(
            returns, periods_per_year(timeframe),
            benchmark_returns=equity_returns(bench.equity) if bench is not None and bench is not run else None,
            n_resamples=settings.n_resamples, n_trials=settings.n_trials, seed=settings.seed,
        )

    def wide_spread_run(self, manager: TraderPluginManager, run: SimulatedRun, signals: Sequence[Signal | BaseException | None], *,
                        symbol: str, timeframe: str, settings: BacktestSettings) -> SimulatedRun | None:
        """The same signals simulated again at ``settings.spread_multiplier`` times the spread (``None`` when
        the market cannot widen its spread)."""
        widen = getattr(self.market, "with_spread_multiplier", None)
        if widen is None or settings.spread_multiplier is None:
            return None
        return simulate(manager, run.strategy, self.limits, widen(settings.spread_multiplier), run.timestamps,
                        run.close, signals, symbol=symbol, timeframe=timeframe)

    def verdict(self, run: SimulatedRun, bench: SimulatedRun | None, wide: SimulatedRun | None, *, settings: BacktestSettings,
                strategy: str, symbol: str, timeframe: str, market_return: float, in_sample: bool) -> tuple[Any, Any]:
        """The verdict's three questions (:mod:`trader.backtest.verdict`) and the plausibility guard."""
        from trader.backtest.verdict import judge_runs, plausibility
        from trader.evaluation.performance import window_days

        mine = strategy != BASELINE  # buy-and-hold's result is the market's own: nothing to check
        guard = plausibility(sharpe=run.metrics.sharpe if mine else None,
                             total_return=run.metrics.total_return if mine else None,
                             market_return=market_return, days=window_days(int(run.timestamps.size), timeframe),
                             strategy=strategy, symbol=symbol, timeframe=timeframe, in_sample=in_sample)
        verdict = None
        if run.timestamps.size >= 3:
            verdict = judge_runs(run, bench, wide, spread_multiplier=settings.spread_multiplier or 2.0,
                                 n_resamples=settings.n_resamples, seed=settings.seed, implausible=guard.warning)
        return verdict, guard


def load_model(strategy: Strategy, config: TraderConfig, symbol: str, timeframe: str, version: str | None = None) -> Any:
    """The strategy's stored model (a ``LoadedModel``), ``None`` for strategies without one."""
    if not strategy.info.requires_model and not strategy.trainable:
        return None
    from trader.models import ModelPersistence

    loaded = ModelPersistence(config.models_dir).load(strategy, symbol, timeframe, version)
    if loaded is None and strategy.info.requires_model:
        raise ModelNotFoundError(
            f"no trained {strategy.name} model for {symbol} {timeframe}; train one with "
            f"`{train_command(strategy.name, symbol, timeframe)}`, "
            "or use --walk-forward to train on rolling windows"
        )
    return loaded


@attrs.frozen
class SignalBatch:
    """Signals for rows ``first..last`` of the candles; ``None`` before the warm-up ends."""

    first: int
    last: int
    signals: tuple[Signal | PluginError | None, ...]  # PluginError: an invalid signal
    seconds: float

    @property
    def actions(self) -> np.ndarray:
        codes = {"buy": 1, "sell": -1, "hold": 0}
        return np.array([codes[s.action.value] if isinstance(s, Signal) else 0 for s in self.signals], dtype=np.int8)

    @property
    def probabilities(self) -> np.ndarray:
        out = np.full(len(self.signals), np.nan)
        asked = [i for i, s in enumerate(self.signals) if isinstance(s, Signal)]
        if asked:
            out[asked] = signal_arrays([s for s in self.signals if isinstance(s, Signal)]).probability
        return out


def batch_signals(
    strategy: Strategy,
    candles: pd.DataFrame,
    first: int,
    last: int,
    *,
    symbol: str,
    timeframe: str,
    features: pd.DataFrame | None = None,
    model: Any = None,
    params: Mapping[str, Any] | None = None,
    workdir: Path | None = None,
) -> SignalBatch:
    """One ``trader_generate_signals`` call for every row in ``[first, last]`` past the warm-up
    (:func:`trader.engine.first_signal_row`, the rule ``trader run`` applies).

    ``candles`` (and ``features``) may extend beyond ``last``: they are cut at ``last`` so no
    later candle is ever shown to the strategy.
    """
    view = candles.iloc[: last + 1]
    feats = features.iloc[: last + 1] if features is not None else None
    from trader.engine import first_signal_row

    start = max(first, first_signal_row(strategy.info))
    rows = np.arange(start, last + 1, dtype=np.int64)
    began = time.perf_counter()
    got = (
        request_signals(strategy, view, rows, symbol=symbol, timeframe=timeframe, features=feats, model=model, params=params,
                        keep_invalid=True, workdir=workdir)  # an invalid signal is an INVALID_SIGNAL event, as in `trader run`
        if rows.size
        else []
    )
    seconds = time.perf_counter() - began
    return SignalBatch(first, last, (None,) * (start - first) + tuple(got), seconds)


def simulate(
    manager: TraderPluginManager,
    strategy_name: str,
    limits: RiskLimits,
    market: Market,
    timestamps: Sequence[int] | np.ndarray,
    closes: Sequence[float] | np.ndarray,
    signals: Sequence[Signal | BaseException | None],
    *,
    symbol: str,
    timeframe: str,
) -> SimulatedRun:
    """Step the engine's decision step (:class:`trader.engine.TradingSession`) through the candles
    with precomputed signals, on an in-memory store."""
    from trader.engine import MemoryState, RiskAuditAgent, TradingSession
    from trader.engine.fastsim import distinct_objects, simulate_floats
    from trader.evaluation.performance import performance_metrics

    store = MemoryState(strategy_name)
    session = TradingSession(
        strategy_name,
        symbol,
        timeframe,
        limits=limits,
        broker=market.broker,
        store=store,
        audit=RiskAuditAgent.for_strategy(manager, strategy_name, limits),
        initial_cash=market.cash,
        rebalance_band=market.rebalance_band,
    )
    signals = list(signals)
    slots, objects = distinct_objects(signals)  # the few signal objects a batch repeats, each looked at once
    with quiet_engine_logs():
        floats = simulate_floats(session, timestamps, closes, signals, (slots, objects))  # the step on floats (engine/fastsim.py)
        processed = len(timestamps) if floats is not None else session.run(timestamps, closes, signals)
    store.close()
    if processed != len(timestamps):
        raise DataError(f"{len(timestamps) - processed} candles were skipped as duplicates or out of order")
    if floats is not None:
        ts, close, equities, position_value = floats.timestamps, floats.closes, floats.equities, floats.position_values
        fills, events, final_status = tuple(floats.fills), tuple(floats.events), floats.status.value
    else:
        ts, close = np.asarray(store.timestamps, dtype=np.int64), np.asarray(store.closes, dtype=np.float64)
        equities = np.asarray(store.equities, dtype=np.float64)
        position_value = np.asarray(store.position_values, dtype=np.float64)
        fills, events, final_status = tuple(store.fills()), tuple(store.risk_events()), session.status.value
    equity = np.concatenate(([market.cash], equities))
    with np.errstate(divide="ignore", invalid="ignore"):
        exposure = np.where(equity[1:] > 0, position_value / np.where(equity[1:] > 0, equity[1:], 1.0), 0.0)
    metrics = performance_metrics(equity, ts, timeframe, fills=fills, exposure=exposure, last_price=float(closes[-1]))
    codes = {"buy": 1, "sell": -1, "hold": 0}
    actions = np.array([codes[s.action.value] if isinstance(s, Signal) else 0 for s in objects], dtype=np.int8)[slots]
    return SimulatedRun(
        strategy=strategy_name,
        timestamps=ts,
        close=close,
        equity=equity,
        position_value=position_value,
        actions=actions,
        fills=fills,
        events=events,
        metrics=metrics,
        final_status=final_status,
    )


def baseline_run(
    manager: TraderPluginManager,
    limits: RiskLimits,
    market: Market,
    candles: pd.DataFrame,
    first: int,
    last: int,
    *,
    symbol: str,
    timeframe: str,
) -> SimulatedRun | None:
    """``buy_and_hold`` over the same rows with the same cash, fees and limits (``None`` if disabled)."""
    from trader.errors import UnknownPluginError

    try:
        baseline = manager.strategy(BASELINE)
    except UnknownPluginError:
        return None
    batch = batch_signals(baseline, candles, first, last, symbol=symbol, timeframe=timeframe)
    part = candles.iloc[first : last + 1]
    return simulate(manager, BASELINE, limits, market, part["timestamp"].to_numpy(), part["close"].to_numpy(),
                    batch.signals, symbol=symbol, timeframe=timeframe)


def run_backtest(
    manager: TraderPluginManager,
    config: TraderConfig,
    strategy_name: str,
    candles: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    source: str = "",
    start: int | None = None,
    end: int | None = None,
    settings: BacktestSettings | None = None,
    model_version: str | None = None,
    loaded_model: Any = None,
) -> BacktestResult:
    """Backtest ``strategy_name`` over the candles opened within ``[start, end]``."""
    settings = settings or BacktestSettings()
    began = time.perf_counter()
    scope = BacktestScope.resolve(manager, config, strategy_name, candles, start, end, settings)
    strategy, limits, market, first, last, view = (scope.strategy, scope.limits, scope.market, scope.first, scope.last,
                                                   scope.view)
    loaded = loaded_model if loaded_model is not None else load_model(strategy, config, symbol, timeframe, model_version)
    model = getattr(loaded, "model", None)

    t0 = time.perf_counter()
    features = strategy_features(strategy.info, view, timeframe)
    t_features = time.perf_counter() - t0
    batch = batch_signals(strategy, view, first, last, symbol=symbol, timeframe=timeframe, features=features, model=model,
                          params=configured_params(config, strategy.info), workdir=config.plugin_workdir(strategy_name))
    part = view.iloc[first : last + 1]
    t0 = time.perf_counter()
    run = simulate(manager, strategy_name, limits, market, part["timestamp"].to_numpy(), part["close"].to_numpy(),
                   batch.signals, symbol=symbol, timeframe=timeframe)
    t_sim = time.perf_counter() - t0
    bench, sig = scope.judge(manager, run, first, last, symbol=symbol, timeframe=timeframe, settings=settings)
    t0 = time.perf_counter()
    wide = scope.wide_spread_run(manager, run, batch.signals, symbol=symbol, timeframe=timeframe, settings=settings)
    model_info = None
    if loaded is not None:
        model_info = model_summary(loaded, view, first, last, timeframe)
    verdict, guard = scope.verdict(run, bench, wide, settings=settings, strategy=strategy_name, symbol=symbol,
                                   timeframe=timeframe, market_return=_market_return(view, first, last),
                                   in_sample=bool(model_info and model_info["sample"] != "out_of_sample"))
    t_verdict = time.perf_counter() - t0
    classification = classification_summary(loaded, view, first, last, batch, timeframe) if loaded is not None else None
    return BacktestResult(
        strategy=strategy_name,
        symbol=symbol,
        timeframe=timeframe,
        source=source,
        settings=_settings_dict(settings, market, limits, strategy),
        run=run,
        benchmark=bench if bench is not run else None,
        significance=sig,
        classification=classification,
        model=model_info,
        timings={
            "features_s": t_features,
            "signals_s": batch.seconds,
            "simulation_s": t_sim,
            "verdict_s": t_verdict,
            "total_s": time.perf_counter() - began,
        },
        verdict=verdict,
        plausibility=guard,
        wide_spread=wide,
    )


def _market_return(candles: pd.DataFrame, first: int, last: int) -> float:
    """Close-to-close change over rows ``[first, last]``, from the close before ``first`` when there is one."""
    close = candles["close"].to_numpy()
    start = float(close[first - 1]) if first > 0 else float(close[first])
    return float(close[last]) / start - 1.0 if start > 0 else float("nan")


def _settings_dict(settings: BacktestSettings, market: Market, limits: RiskLimits, strategy: Strategy) -> dict[str, Any]:
    return {
        **market.describe(),
        "warmup_bars": strategy.info.warmup_bars,
        "max_position_fraction": limits.max_position_fraction,
        "max_position_notional": limits.max_position_notional,
        "max_order_notional": limits.max_order_notional,
        "max_drawdown_halt": limits.max_drawdown,
        "daily_loss_limit": limits.daily_loss_limit,
        "max_consecutive_losses": limits.max_consecutive_losses,
        "bootstrap_resamples": settings.n_resamples,
        "seed": settings.seed,
        "wide_spread_multiplier": settings.spread_multiplier,
    }


def model_summary(loaded: Any, candles: pd.DataFrame, first: int, last: int, timeframe: str | None = None) -> dict[str, Any]:
    """Which model version ran, and where the backtest range lies against its training data.

    The training data reaches past its last candle by the label horizon (the purge): a label
    at the last training candle reads the close ``horizon`` bars later. ``sample`` is
    ``out_of_sample`` only when every candle of the range opened after the training range
    plus that purge; ``trained_later`` when the whole range lies before the training data
    (the model has seen this range's future); ``in_sample`` otherwise; ``unknown`` when the
    manifest has no training range. The fractions say how much of the range lies before,
    within (training plus purge) and after the training data.
    """
    from trader.timeframes import timeframe_to_ms

    manifest = loaded.manifest
    trained = manifest.get("data", {}).get("range", {})
    t_start, t_end = trained.get("start"), trained.get("end")
    # the candles of a recorded test split were handed to training but never learnt from: the model saw
    # only up to its last validation (else training) window end, whose labels the purge keeps off the test split
    split = (manifest.get("extra") or {}).get("split") or {}
    ends = [part.get("last_end") for part in (split.get("validation"), split.get("train")) if isinstance(part, dict)]
    seen = [end for end in ends if isinstance(end, int) and not isinstance(end, bool)]
    if seen and isinstance(t_end, int) and isinstance(split.get("test"), dict):
        t_end = min(t_end, max(seen))
    ts = candles["timestamp"].to_numpy()[first : last + 1]
    try:
        horizon = max(int((manifest.get("label") or {}).get("horizon", 1)), 0)
    except (TypeError, ValueError):
        horizon = 1
    bar_ms = timeframe_to_ms(timeframe) if timeframe else (int(ts[1] - ts[0]) if ts.size > 1 else 0)
    out: dict[str, Any] = {
        "version": loaded.version,
        "trained_on": {"start": t_start, "end": t_end, "rows": trained.get("rows")},
        "purge_bars": horizon,
    }
    if not isinstance(t_start, (int, float)) or not isinstance(t_end, (int, float)) or not ts.size:
        return {**out, "sample": "unknown", "in_sample": True, "overlap_fraction": None, "before_fraction": None,
                "after_fraction": None}
    reach = t_end + horizon * bar_ms  # the last close any training label read
    before = float(np.mean(ts < t_start))
    after = float(np.mean(ts > reach))
    overlap = max(0.0, 1.0 - before - after)
    sample = "out_of_sample" if after == 1.0 else "trained_later" if before == 1.0 else "in_sample"
    return {**out, "sample": sample, "in_sample": sample != "out_of_sample", "overlap_fraction": overlap,
            "before_fraction": before, "after_fraction": after}


def classification_summary(loaded: Any, candles: pd.DataFrame, first: int, last: int, batch: SignalBatch,
                           timeframe: str) -> dict[str, Any] | None:
    """Model probabilities against the model's own label definition, beside the majority baseline of
    its TRAINING labels (:func:`trader.evaluation.scoring.score_model`, as ``trader compare`` scores)."""
    probabilities = batch.probabilities
    if not loaded.manifest.get("label") or not np.isfinite(probabilities).any():
        return None
    from trader.evaluation.scoring import score_model

    return score_model(loaded.manifest, candles, np.arange(first, last + 1), probabilities, timeframe)
