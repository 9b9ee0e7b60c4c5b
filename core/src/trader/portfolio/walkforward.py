"""Walk-forward across a basket: retrain on the rows before each test window, trade it out of sample.

The folds are cut on the basket's union timeline (:func:`trader.backtest.walkforward.walk_forward_folds`
with positions of the timeline): fold ``k`` tests positions ``[s, s + test_bars)`` and trains on
positions ``[s - train_bars, s)`` (from position 0 with ``anchored``). Each market's training
candles are its own candles in that span **less its last** ``purge + embargo`` **rows**: the purge
counts the market's own rows, so a label reading ``H`` rows ahead never reaches the test window
even where the market has gaps. The trainer sees nothing at or after the test window.

A strategy that declares ``pooled_training`` gets one pooled model per fold (every market with at
least ``min_train_rows`` training candles in the fold); another trainable strategy gets one model
per market and fold; a strategy without a model is only asked for signals. A market without a
model in a fold (too few candles to train on) gets no signal in that fold (a position it holds is kept).

The folds' signals are stitched and run through one :func:`~trader.portfolio.backtest.simulate_basket`
over the out-of-sample span (positions carry over from fold to fold), beside the equal-weight
buy-and-hold basket over the same span, with per-fold returns of both.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.backtest.walkforward import WalkForwardFold, WalkForwardPlan, walk_forward_folds
from trader.errors import ConfigError

if TYPE_CHECKING:
    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager
    from trader.portfolio.align import Basket
    from trader.portfolio.backtest import BasketResult
    from trader.strategy import Strategy

__all__ = ["BasketWalkForward", "run_basket_walk_forward", "fold_training_frames", "MIN_TRAIN_ROWS"]

#: A market joins a fold's training when it has at least this many candles there (``min_train_rows``).
MIN_TRAIN_ROWS = 100


@attrs.frozen
class BasketWalkForward:
    """A basket walk-forward: the stitched out-of-sample backtest and each fold's figures."""

    result: BasketResult
    folds: tuple[dict[str, Any], ...]
    plan: WalkForwardPlan

    def to_dict(self) -> dict[str, Any]:
        from trader.backtest.results import jsonable

        data = self.result.to_dict()
        data["walk_forward"] = jsonable({
            "train_bars": self.plan.train_bars, "test_bars": self.plan.test_bars,
            "step": self.plan.step or self.plan.test_bars, "purge_bars": self.plan.purge,
            "embargo_bars": self.plan.embargo, "anchored": self.plan.anchored, "train_seed": self.plan.seed,
            "train_params": dict(self.plan.train_params), "folds": list(self.folds),
        })
        return data

    def describe(self) -> str:
        lines = [self.result.describe().replace(" steps", " out-of-sample steps", 1),
                 f"  walk-forward: {len(self.folds)} folds of {self.plan.test_bars} test steps, retrained on "
                 f"{'every step before' if self.plan.anchored else f'{self.plan.train_bars} steps before'} each "
                 f"(purge {self.plan.purge} + embargo {self.plan.embargo} rows per market)",
                 "  fold  test start (UTC)       return  basket return  trained on"]
        from trader.timeframes import format_utc

        for fold in self.folds:
            basket = fold.get("baseline_return")
            lines.append(
                f"  {fold['index']:>4}  {format_utc(fold['test_start_time']):<20} {_pct(fold['test_return']):>8}  "
                f"{_pct(basket):>13}  {', '.join(fold['trained_on']) or '-'}"
            )
        return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:+.2f}%"


def fold_training_frames(basket: Basket, fold: WalkForwardFold, gap: int) -> dict[str, Any]:
    """Each market's training candles for ``fold``: its candles opened in the fold's training span,
    less its own last ``gap`` rows (purge + embargo counted in the market's rows)."""
    ts = basket.timestamps
    begin, cut = int(ts[fold.train_start]), int(ts[fold.test_start])
    frames = {}
    for symbol in basket.symbols:
        frame = basket.frames[symbol]
        stamps = frame["timestamp"].to_numpy(dtype=np.int64)
        a = int(np.searchsorted(stamps, begin, side="left"))
        b = int(np.searchsorted(stamps, cut, side="left")) - gap
        frames[symbol] = frame.iloc[a : max(a, b)].reset_index(drop=True)
    return frames


def _fold_models(strategy: Strategy, frames: Mapping[str, Any], plan: WalkForwardPlan, seed: int, timeframe: str,
                 min_rows: int) -> tuple[dict[str, Any], tuple[str, ...], float]:
    """The models a fold trades with (symbol -> model), the markets they learnt from, the seconds spent."""
    from trader.models import basket_symbol
    from trader.types import TrainRequest

    if not strategy.trainable:
        return {}, (), 0.0
    usable = {s: f for s, f in frames.items() if len(f) >= min_rows}
    if not usable:
        return {}, (), 0.0
    began = time.perf_counter()
    params = dict(plan.train_params)
    if strategy.info.pooled_training and len(usable) > 1:
        empty = next(iter(usable.values())).iloc[:0]
        result = strategy.train(TrainRequest(strategy.name, basket_symbol(usable), timeframe, empty, params=params,
                                             seed=seed, markets=dict(sorted(usable.items()))))
        models = {s: result.model for s in frames}  # one pooled model trades every market of the basket
    else:
        models = {s: strategy.train(TrainRequest(strategy.name, s, timeframe, f, params=params, seed=seed)).model
                  for s, f in sorted(usable.items())}
    return models, tuple(sorted(usable)), time.perf_counter() - began


def run_basket_walk_forward(
    manager: TraderPluginManager,
    config: TraderConfig,
    strategy_name: str,
    basket: Basket,
    plan: WalkForwardPlan,
    *,
    sources: Mapping[str, str] | None = None,
    start: int | None = None,
    end: int | None = None,
    settings: Any = None,
    min_train_rows: int = MIN_TRAIN_ROWS,
    progress: Any = None,
) -> BasketWalkForward:
    """Walk ``strategy_name`` forward over ``basket`` (see the module docstring); folds run one after
    the other in this process. ``progress(event, fold, folds)`` is called with ``"train"`` and ``"done"``."""
    from trader.backtest.runner import BASELINE, BacktestSettings, configured_params, effective_limits
    from trader.backtest.verdict import judge_runs
    from trader.engine import initial_cash, rebalance_band
    from trader.portfolio.backtest import BasketResult, basket_broker, basket_range, simulate_basket
    from trader.portfolio.signals import basket_features, basket_signals

    settings = settings or BacktestSettings()
    began = time.perf_counter()
    strategy = manager.strategy(strategy_name)
    limits = effective_limits(strategy, config)
    params = configured_params(config, strategy.info)  # [plugins.NAME] checked before the first fold trains
    first, last = basket_range(basket, start, end)
    try:
        folds = walk_forward_folds(last + 1 - first, plan.train_bars, plan.test_bars, plan.step,
                                   anchored=plan.anchored)
    except ValueError as exc:
        raise ConfigError(f"walk-forward: {exc}") from None
    folds = [WalkForwardFold(f.index, f.train_start + first, f.train_end + first, f.test_start + first, f.test_end + first)
             for f in folds]
    gap = plan.purge + plan.embargo
    features = basket_features(strategy, basket)  # causal: each row reads only candles up to its own
    oos_first, oos_last = folds[0].test_start, folds[-1].test_end - 1
    answers: list[dict[str, Any]] = [{} for _ in range(oos_first, oos_last + 1)]
    timings = {"train_s": 0.0, "signals_s": 0.0}
    fold_info: list[dict[str, Any]] = []
    ts = basket.timestamps
    workdir = config.plugin_workdir(strategy_name)
    for k, fold in enumerate(folds):
        stop = min(fold.test_end, folds[k + 1].test_start) if k + 1 < len(folds) else fold.test_end
        if progress:
            progress("train", fold, len(folds))
        frames = fold_training_frames(basket, fold, gap)
        models, trained_on, seconds = _fold_models(strategy, frames, plan, plan.seed + k, basket.timeframe,
                                                   min_train_rows)
        timings["train_s"] += seconds
        sub: Basket | None = None  # the markets this fold trades: those with a model (all without one)
        if not strategy.trainable:
            sub = basket
        elif models:
            sub = _sub_basket(basket, tuple(models))
        if sub is not None:
            got, spent = basket_signals(strategy, sub, fold.test_start, stop - 1, models=models, params=params,
                                        workdir=workdir, features={s: features[s] for s in sub.symbols})
            timings["signals_s"] += spent
            answers[fold.test_start - oos_first : stop - oos_first] = got
        fold_info.append({
            **fold.to_dict(), "test_rows": stop - fold.test_start,
            "train_start_time": int(ts[fold.train_start]), "test_start_time": int(ts[fold.test_start]),
            "test_end_time": int(ts[stop - 1]), "trained_on": list(trained_on),
            "train_rows": {s: int(len(f)) for s, f in frames.items()},
            "traded": sorted(models) if strategy.trainable else list(basket.symbols),
        })
        if progress:
            progress("done", fold, len(folds))
    cash = initial_cash(config, settings.cash)
    band = rebalance_band(config)
    t0 = time.perf_counter()
    result = simulate_basket(manager, strategy_name, limits, basket, answers, oos_first, oos_last,
                             broker=basket_broker(config, settings, basket, oos_first, oos_last), cash=cash,
                             rebalance_band=band)
    timings["simulation_s"] = time.perf_counter() - t0
    bench = None
    if settings.benchmark:
        baseline = manager.strategy(BASELINE)
        b_answers, _ = basket_signals(baseline, basket, oos_first, oos_last)
        bench = simulate_basket(manager, BASELINE, effective_limits(baseline, config), basket, b_answers, oos_first,
                                oos_last, broker=basket_broker(config, settings, basket, oos_first, oos_last), cash=cash,
                                rebalance_band=band)
    run = result.run
    for info in fold_info:
        a = info["test_start"] - oos_first
        b = a + info["test_rows"]
        info["test_return"] = float(run.equity[b] / run.equity[a] - 1.0) if run.equity[a] > 0 else None
        if bench is not None:
            e = bench.run.equity
            info["baseline_return"] = float(e[b] / e[a] - 1.0) if e[a] > 0 else None
    if bench is not None:  # "the market" of a basket is the equal-weight basket (as in run_basket_backtest)
        run = attrs.evolve(run, close=bench.run.equity[1:])
        result = attrs.evolve(result, run=run)
    wide = None
    if settings.spread_multiplier is not None:
        wide = simulate_basket(manager, strategy_name, limits, basket, answers, oos_first, oos_last,
                               broker=basket_broker(config, settings, basket, oos_first, oos_last,
                                                    settings.spread_multiplier),
                               cash=cash, rebalance_band=band).run
    verdict = None
    if run.timestamps.size >= 3 and strategy_name != BASELINE:
        verdict = judge_runs(run, bench.run if bench is not None else None, wide,
                             spread_multiplier=settings.spread_multiplier or 2.0, n_resamples=settings.n_resamples,
                             seed=settings.seed)
    timings["total_s"] = time.perf_counter() - began
    outcome = BasketResult(
        strategy=strategy_name, symbols=basket.symbols, timeframe=basket.timeframe, sources=dict(sources or {}),
        settings={"cash": cash, "rebalance_band": band, "limits": attrs.asdict(limits), "fee_bps": settings.fee_bps,
                  "slippage_bps": settings.slippage_bps, "spread_bps": settings.spread_bps, "walk_forward": True,
                  "folds": len(folds)},
        result=result, benchmark=bench, verdict=verdict, timings=timings,
        model={"walk_forward": "retrained every fold", "pooled": bool(strategy.trainable and strategy.info.pooled_training)}
        if strategy.trainable else None,
    )
    return BasketWalkForward(outcome, tuple(fold_info), plan)


def _sub_basket(basket: Basket, symbols: tuple[str, ...]) -> Basket:
    """``basket`` with only ``symbols`` able to trade (the others' rows hidden), on the same timeline."""
    if set(symbols) == set(basket.symbols):
        return basket
    keep = np.array([s in symbols for s in basket.symbols])
    rows = np.where(keep[None, :], basket.rows, -1)
    closes = np.where(keep[None, :], basket.closes, np.nan)
    return attrs.evolve(basket, rows=rows, closes=closes)
