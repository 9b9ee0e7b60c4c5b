"""Strategies side by side on the same held-out candles: ``trader backtest``'s twin.

Every strategy (and the builtin ``buy_and_hold``, always added) is run through
:func:`trader.backtest.runner.run_backtest` over the same range: the same signals,
engine step, paper broker, costs, risk audit, trade counting (round trips of fills),
Sharpe interval and verdict as ``trader backtest --from ... --to ...`` prints for it,
because it is the same code. A model's stored version (latest, or a pinned one) is
loaded and verified first; a missing or refused model is a row of its own, not an error.

The classification metrics of a model's P(up) are scored against its own label
definition beside the majority baseline of its TRAINING labels
(:func:`trader.evaluation.scoring.score_model`); baselines are listed once each in
:attr:`Comparison.baselines` (one per distinct baseline, naming the models it serves).

The held-out range starts after the last row any compared model saw in training or
validation (the latest test-split start among the manifests), unless given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from trader.errors import ArtifactError, DataError, ModelError, PluginError, train_command

if TYPE_CHECKING:
    import pandas as pd

    from trader.backtest.runner import BacktestSettings
    from trader.config import TraderConfig
    from trader.plugins import TraderPluginManager

__all__ = ["ComparedMarket", "ComparedStrategy", "Comparison", "compare_markets", "compare_strategies", "held_out_start",
           "distinct_baselines", "run_compared"]

BASELINE = "buy_and_hold"


@attrs.frozen
class ComparedStrategy:
    """One row of a comparison: a strategy's status, classification metrics and backtest outcome."""

    plugin: str
    status: str  # "ok" | "no model" | "refused" | "error"
    version: str | None = None
    message: str = ""
    samples: int = 0
    classification: Mapping[str, Any] | None = None
    trading: Mapping[str, Any] | None = None  # the backtest's metrics (PerformanceMetrics.to_dict())
    significance: Mapping[str, Any] | None = None  # Sharpe interval and p-values, as backtest's JSON
    verdict: Any = None  # backtest's verdict (a mapping from trader.backtest.verdict, or its phrase)
    costs: Mapping[str, Any] | None = None
    model: Mapping[str, Any] | None = None  # version, training range and overlap, as backtest's JSON
    sample: str | None = None  # out_of_sample | in_sample | trained_later | unknown, as backtest's JSON
    plausibility: Mapping[str, Any] | None = None  # backtest's plausibility guard
    risk: Mapping[str, Any] | None = None  # final_status, halt (why) and denied_orders, as backtest's JSON

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class Comparison:
    symbol: str
    timeframe: str
    source: str
    start: int
    end: int
    rows: int
    costs: Mapping[str, Any]
    strategies: tuple[ComparedStrategy, ...]
    baselines: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    annualised_caveat: str | None = None

    def as_dict(self) -> dict[str, Any]:
        from trader.backtest.results import jsonable
        from trader.data import format_ms

        return jsonable({
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "source": self.source,
            "held_out": {"start": self.start, "end": self.end, "start_iso": format_ms(self.start),
                         "end_iso": format_ms(self.end), "rows": self.rows},
            "costs": dict(self.costs),
            "strategies": [s.as_dict() for s in self.strategies],
            "baselines": [dict(b) for b in self.baselines],
            "annualised_caveat": self.annualised_caveat,
            "notes": list(self.notes),
        })


def held_out_start(manifests: Sequence[Mapping[str, Any]]) -> int | None:
    """The latest first test-window timestamp among the manifests (None when none records a split)."""
    starts = []
    for manifest in manifests:
        split = manifest.get("extra", {}).get("split", {})
        test = split.get("test") if isinstance(split, Mapping) else None
        if isinstance(test, Mapping) and isinstance(test.get("first_end"), int):
            starts.append(test["first_end"])
    return max(starts) if starts else None


def distinct_baselines(rows: Sequence[ComparedStrategy]) -> tuple[dict[str, Any], ...]:
    """The majority baselines of the rows' models, once each: models with the same label definition
    and the same training class frequencies share one (their metrics on the same rows are the same)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        cls = row.classification
        if row.status != "ok" or not cls:
            continue
        key = repr((sorted((cls.get("label") or {}).items()), sorted((cls.get("baseline") or {}).items()),
                    cls.get("majority_class"), cls.get("n_samples")))
        if key in found:
            found[key]["strategies"].append(row.plugin)
            continue
        found[key] = {
            "strategies": [row.plugin],
            "label": cls.get("label"),
            "majority_class": cls.get("majority_class"),
            "source": cls.get("baseline_source"),
            "metrics": cls.get("baseline"),
        }
    return tuple(found.values())


def _row(name: str, result: Any, samples: int) -> ComparedStrategy:
    data = result.to_dict()
    significance = data.get("significance")
    verdict = data.get("verdict")
    if verdict is None and significance:
        verdict = significance.get("verdict")
    model = data.get("model")
    return ComparedStrategy(
        name, "ok", model.get("version") if model else None, samples=samples,
        classification=data.get("classification"), trading=data.get("metrics"), significance=significance,
        verdict=verdict, costs=_cost_summary(data.get("costs") or data.get("settings") or {}), model=model,
        sample=data.get("sample"), plausibility=data.get("plausibility"),
        risk={k: data.get(k) for k in ("final_status", "halt", "denied_orders")},
    )


def compare_strategies(
    manager: TraderPluginManager,
    config: TraderConfig,
    names: Sequence[str],
    candles: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    settings: BacktestSettings,
    source: str = "",
    start: int | None = None,
    end: int | None = None,
    versions: Mapping[str, str] | None = None,
    executor: Any = None,
    plugins: Any = None,
) -> Comparison:
    """Backtest ``names`` (and ``buy_and_hold``) on the same held-out rows of ``candles`` (see the module docstring)."""
    return compare_markets(manager, config, names, [ComparedMarket(symbol, candles, source)], timeframe=timeframe,
                           settings=settings, start=start, end=end, versions=versions, executor=executor,
                           plugins=plugins)[0]


@attrs.frozen
class ComparedMarket:
    """One market of a comparison: its symbol, candles and where they came from."""

    symbol: str
    candles: Any  # pandas.DataFrame
    source: str = ""


def compare_markets(
    manager: TraderPluginManager,
    config: TraderConfig,
    names: Sequence[str],
    markets: Sequence[ComparedMarket],
    *,
    timeframe: str,
    settings: BacktestSettings,
    start: int | None = None,
    end: int | None = None,
    versions: Mapping[str, str] | None = None,
    executor: Any = None,
    plugins: Any = None,
) -> tuple[Comparison, ...]:
    """One :class:`Comparison` per market. Every (strategy, market) backtest is a task of ``executor``
    (:mod:`trader.executors`; default: one after the other in this process), the candles its shared
    inputs. Models are loaded and checked here first; a worker process loads the same version from the
    store again (models are never pickled). ``plugins`` (a :class:`~trader.executors.PluginSource`) tells
    a worker how to load the strategies. Rows come back in task order, whatever the executor."""
    from trader.executors import ExecutorError, LocalOnly, PluginSource, get_executor

    plans = [_plan_market(manager, config, names, market, timeframe=timeframe, start=start, end=end,
                          versions=versions or {}) for market in markets]
    tasks = [_BacktestTask(name, plan.market.symbol, plan.loaded[name].version if name in plan.loaded else None,
                           plan.range_start, plan.range_end, plan.rows)
             for plan in plans for name in plan.order if name not in plan.refused]
    base = plugins or PluginSource(tuple(names))
    shared = _CompareInputs(
        PluginSource(base.strategies, base.probe_cache, manager), config, settings, timeframe,
        {m.symbol: (m.candles, m.source) for m in markets},
        LocalOnly({(name, plan.market.symbol): model for plan in plans for name, model in plan.loaded.items()}),
    )
    own = executor is None
    executor = executor or get_executor("local", 1)
    try:
        done = executor.map(run_compared, tasks, shared) if tasks else []
    except ExecutorError as exc:  # a worker died: one of these strategies is the likely cause
        raise ExecutorError(f"compare of {', '.join(f'plugin {n!r}' for n in names)}: {exc}") from None
    finally:
        if own:
            executor.close()
    rows = {(task.strategy, task.symbol): row for task, row in zip(tasks, done, strict=True)}
    return tuple(plan.comparison(rows, timeframe) for plan in plans)


@attrs.frozen
class _MarketPlan:
    market: ComparedMarket
    order: tuple[str, ...]  # the strategies, then buy_and_hold
    refused: Mapping[str, ComparedStrategy]  # rows decided before any backtest (no model, refused artifact)
    loaded: Mapping[str, Any]  # name -> LoadedModel
    range_start: int
    range_end: int
    rows: int
    notes: tuple[str, ...]

    def comparison(self, done: Mapping[tuple[str, str], ComparedStrategy], timeframe: str) -> Comparison:
        from trader.evaluation.performance import annualised_caveat

        results = [self.refused.get(name) or done[(name, self.market.symbol)] for name in self.order]
        costs = next((row.costs for row in results if row.status == "ok" and row.costs), None) or {}
        return Comparison(
            self.market.symbol, timeframe, self.market.source, self.range_start, self.range_end, self.rows,
            _cost_summary(costs), tuple(results), distinct_baselines(results), self.notes,
            annualised_caveat(self.rows, timeframe),
        )


def _plan_market(manager: TraderPluginManager, config: TraderConfig, names: Sequence[str], market: ComparedMarket, *,
                 timeframe: str, start: int | None, end: int | None, versions: Mapping[str, str]) -> _MarketPlan:
    """The models (loaded and verified), the held-out range and the notes of one market."""
    from trader.models import ModelPersistence

    symbol, candles = market.symbol, market.candles
    store = ModelPersistence(config.models_dir)
    notes: list[str] = []
    loaded: dict[str, Any] = {}
    rows_out: dict[str, ComparedStrategy] = {}
    for name in names:
        strategy = manager.strategy(name)
        if not strategy.info.requires_model:
            continue
        try:
            model = store.load(strategy, symbol, timeframe, version=versions.get(name))
        except ModelError as exc:  # refused artifacts and missing pinned versions are reported, not fatal
            rows_out[name] = ComparedStrategy(name, "refused" if isinstance(exc, ArtifactError) else "no model", message=str(exc))
            continue
        if model is None:
            rows_out[name] = ComparedStrategy(
                name, "no model",
                message=f"no trained model; train one with: {train_command(name, symbol, timeframe)}",
            )
            continue
        loaded[name] = model
    timestamps = candles["timestamp"].to_numpy(dtype=np.int64)
    if start is None:
        start = held_out_start([m.manifest for m in loaded.values()])
        if start is None:
            start = int(timestamps[int(len(timestamps) * 0.85)])
            notes.append("no model records its test split: using the last 15% of the candles")
    first = int(np.searchsorted(timestamps, start, side="left"))
    last = int(np.searchsorted(timestamps, end, side="right")) - 1 if end is not None else len(timestamps) - 1
    if last - first + 1 < 2:
        raise DataError(
            f"the held-out range of {symbol} has {max(last - first + 1, 0)} candles; the compared models were trained "
            "on data that ends after these candles (give --from, or compare on the data they were trained on)"
        )
    range_start, range_end = int(timestamps[first]), int(timestamps[last])
    for name, model in loaded.items():
        data_end = model.manifest.get("data", {}).get("range", {}).get("end")
        if isinstance(data_end, int) and data_end < range_start:
            continue
        split = model.manifest.get("extra", {}).get("split", {}).get("test", {})
        if isinstance(split.get("first_end"), int) and split["first_end"] > range_start:
            notes.append(f"{name} {model.version}: the range starts before its test split, so it overlaps its training data")
    order = (*names, *([BASELINE] if BASELINE not in names else []))
    return _MarketPlan(market, order, rows_out, loaded, range_start, range_end, last - first + 1, tuple(notes))


@attrs.frozen
class _CompareInputs:
    """What every (strategy, market) task reads, sent to each worker once."""

    plugins: Any  # trader.executors.PluginSource
    config: Any
    settings: Any
    timeframe: str
    candles: Mapping[str, tuple[Any, str]]  # symbol -> (candles, source)
    models: Any  # LocalOnly({(name, symbol): LoadedModel}): a worker process loads the same version itself


@attrs.frozen
class _BacktestTask:
    strategy: str
    symbol: str
    version: str | None  # the model version checked by the orchestrator
    start: int
    end: int
    rows: int


def run_compared(task: _BacktestTask, inputs: _CompareInputs) -> ComparedStrategy:
    """One row of a comparison, as an executor task: ``trader backtest`` of one strategy on one market."""
    from trader.backtest.runner import run_backtest
    from trader.models import ModelPersistence

    manager = inputs.plugins.manager()
    candles, source = inputs.candles[task.symbol]
    model = (inputs.models.value or {}).get((task.strategy, task.symbol))
    try:
        if model is None and task.version is not None:
            model = ModelPersistence(inputs.config.models_dir).load(manager.strategy(task.strategy), task.symbol,
                                                                    inputs.timeframe, version=task.version)
        result = run_backtest(manager, inputs.config, task.strategy, candles, symbol=task.symbol,
                              timeframe=inputs.timeframe, source=source, start=task.start, end=task.end,
                              settings=inputs.settings, loaded_model=model)
    except (PluginError, DataError, ModelError) as exc:
        return ComparedStrategy(task.strategy, "error", task.version, message=str(exc))
    return _row(task.strategy, result, task.rows)


def _cost_summary(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The cost part of a backtest's settings (:func:`trader.costs.describe_costs` and the broker's cash and
    rules): every row of a comparison trades the same candles with the same costs."""
    keep = ("fee_bps", "slippage_bps", "round_trip_bps", "unestimated_candles", "cash", "min_notional", "lot_size",
            "rebalance_band")
    return {k: v for k, v in settings.items() if k in keep or k.startswith("spread")}
