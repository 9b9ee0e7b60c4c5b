"""Walk-forward folds: train on a rolling window, test on the bars right after it.

For fold ``k`` (``s = first_test + k * step``)::

    train = [s - gap - train_bars, s - gap)      gap = purge + embargo
    test  = [s, s + test_bars)

- **purge**: training rows whose label looks forward into the test window would carry
  test prices into training. A label over ``H`` bars at row ``i`` reads up to ``i + H``,
  so ``purge = H`` drops exactly those rows. (The trainer only ever receives candles
  before ``s - gap``, so nothing of the test window can reach it.)
- **embargo**: extra bars skipped after the purge, against slow serial correlation.

Test windows do not overlap when ``step >= test_bars`` (the default ``step`` is
``test_bars``), so the out-of-sample results can be stitched into one curve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from trader.validators import integer

__all__ = ["WalkForwardFold", "WalkForwardPlan", "walk_forward_folds", "run_walk_forward", "run_fold"]


@attrs.frozen
class WalkForwardFold:
    """Row ranges (half-open, positions in the candle frame) of one fold."""

    index: int = attrs.field(validator=integer(0))
    train_start: int = attrs.field(validator=integer(0))
    train_end: int = attrs.field(validator=integer(0))
    test_start: int = attrs.field(validator=integer(0))
    test_end: int = attrs.field(validator=integer(0))

    def __attrs_post_init__(self) -> None:
        if not self.train_start < self.train_end <= self.test_start < self.test_end:
            raise ValueError(
                f"fold {self.index}: need train_start < train_end <= test_start < test_end, got "
                f"{self.train_start}, {self.train_end}, {self.test_start}, {self.test_end}"
            )

    @property
    def gap(self) -> int:
        return self.test_start - self.train_end

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def walk_forward_folds(
    n_rows: int,
    train_bars: int,
    test_bars: int,
    step: int | None = None,
    *,
    purge: int = 0,
    embargo: int = 0,
    first_test: int | None = None,
    anchored: bool = False,
    allow_partial_test: bool = True,
) -> list[WalkForwardFold]:
    """The folds over ``n_rows`` candles.

    :param first_test: first test row; by default the earliest row leaving a full
        training window and the gap before it.
    :param anchored: train from row 0 every time (an expanding window) instead of a
        rolling one of ``train_bars``.
    :param allow_partial_test: keep a last test window shorter than ``test_bars``.
    :raises ValueError: naming the argument that makes the folds impossible.
    """
    _count("n_rows", n_rows)
    _positive("train_bars", train_bars)
    _positive("test_bars", test_bars)
    step = _positive("step", step if step is not None else test_bars)
    _count("purge", purge)
    _count("embargo", embargo)
    gap = purge + embargo
    earliest = train_bars + gap
    start = earliest if first_test is None else _count("first_test", first_test)
    if start < earliest:
        raise ValueError(f"first_test {start} leaves fewer than train_bars + purge + embargo = {earliest} rows before it")
    if start >= n_rows:
        raise ValueError(
            f"{n_rows} candles are too few for train_bars={train_bars}, purge={purge}, embargo={embargo}: "
            f"the first test row would be {start}"
        )
    folds: list[WalkForwardFold] = []
    s = start
    while s < n_rows:
        end = min(s + test_bars, n_rows)
        if end - s < test_bars and not allow_partial_test:
            break
        train_end = s - gap
        train_start = 0 if anchored else train_end - train_bars
        folds.append(WalkForwardFold(len(folds), train_start, train_end, s, end))
        s += step
    if not folds:
        raise ValueError(f"{n_rows} candles leave no complete test window of {test_bars} bars")
    return folds


# --------------------------------------------------------------------------- running the folds


@attrs.frozen
class WalkForwardPlan:
    """What a walk-forward run does: fold sizes, purge, embargo and training parameters."""

    train_bars: int
    test_bars: int
    step: int | None = None
    purge: int = 0
    embargo: int = 0
    anchored: bool = False
    train_params: Any = attrs.field(factory=dict)
    seed: int = 0


def run_walk_forward(
    manager: Any,
    config: Any,
    strategy_name: str,
    candles: Any,
    plan: WalkForwardPlan,
    *,
    symbol: str,
    timeframe: str,
    source: str = "",
    start: int | None = None,
    end: int | None = None,
    settings: Any = None,
    progress: Any = None,
    executor: Any = None,
    plugins: Any = None,
) -> Any:
    """Retrain on each fold's training window, trade its test window, stitch the out-of-sample part.

    Features are computed once; each fold (train, then its model asked once for all of its test
    rows) is a task of ``executor`` (:mod:`trader.executors`; default: one after the other in this
    process), with the candles and features as its shared inputs; a fold task returns signals and
    label arrays, never its model (fold models are not kept). ``plugins`` (a
    :class:`~trader.executors.PluginSource`) tells a worker process how to load the strategy.
    The stitched signals then run through one continuous simulation here (positions carry over
    from fold to fold, as they would when a model is replaced in live trading).
    ``progress(event, fold, folds)`` is called with ``"train"`` as each fold is handed to the
    executor and ``"done"`` as its result comes back.
    """
    import time

    import numpy as np

    from trader.backtest.results import BacktestResult
    from trader.backtest.runner import BacktestScope, BacktestSettings, _market_return, _settings_dict, simulate
    from trader.backtest.signals import strategy_features
    from trader.params import configured_params

    settings = settings or BacktestSettings()
    began = time.perf_counter()
    scope = BacktestScope.resolve(manager, config, strategy_name, candles, start, end, settings)
    strategy, limits, market, first, last, view = (scope.strategy, scope.limits, scope.market, scope.first, scope.last,
                                                   scope.view)
    try:
        folds = walk_forward_folds(
            last + 1 - first, plan.train_bars, plan.test_bars, plan.step,
            purge=plan.purge, embargo=plan.embargo, anchored=plan.anchored,
        )
    except ValueError as exc:
        from trader.errors import ConfigError

        raise ConfigError(f"walk-forward: {exc}") from None
    folds = [WalkForwardFold(f.index, f.train_start + first, f.train_end + first, f.test_start + first, f.test_end + first)
             for f in folds]
    params = configured_params(config, strategy.info)  # [plugins.NAME] checked before the first fold trains
    t0 = time.perf_counter()
    features = strategy_features(strategy.info, view, timeframe)
    timings = {"features_s": time.perf_counter() - t0, "train_s": 0.0, "signals_s": 0.0}
    oos_first, oos_last = folds[0].test_start, folds[-1].test_end - 1
    signals: list[Any] = [None] * (oos_last + 1 - oos_first)
    fold_info: list[dict[str, Any]] = []
    pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]] = []  # (labels, proba, train labels) per fold
    ts = view["timestamp"].to_numpy()
    from trader.executors import ExecutorError, PluginSource, get_executor

    base = plugins or PluginSource((strategy_name,))
    local_plugins = PluginSource(base.strategies, base.probe_cache, manager)  # a worker process builds its own
    shared = _FoldInputs(local_plugins, view, features, params, symbol, timeframe, config.plugin_workdir(strategy_name))
    tasks = []
    for k, fold in enumerate(folds):
        stop = min(fold.test_end, folds[k + 1].test_start) if k + 1 < len(folds) else fold.test_end
        tasks.append(_FoldTask(strategy_name, fold, stop, dict(plan.train_params), plan.seed + k, strategy.trainable))
        if progress and strategy.trainable:
            progress("train", fold, len(folds))

    def done(index: int, outcome: _FoldOutcome) -> None:
        if progress:
            progress("done", folds[index], len(folds))

    own = executor is None
    executor = executor or get_executor("local", 1)
    t0 = time.perf_counter()
    try:
        outcomes = executor.map(run_fold, tasks, shared, on_result=done)
    except ExecutorError as exc:  # a worker died: the strategy's own code is the likely cause, so name it
        raise ExecutorError(f"walk-forward of plugin {strategy_name!r}: {exc}") from None
    finally:
        if own:
            executor.close()
    timings["folds_s"] = time.perf_counter() - t0
    for task, outcome in zip(tasks, outcomes, strict=True):
        fold, stop = task.fold, task.stop
        timings["train_s"] += outcome.train_seconds
        timings["signals_s"] += outcome.signals_seconds
        signals[fold.test_start - oos_first : stop - oos_first] = outcome.signals
        if outcome.labels is not None:
            pieces.append(outcome.labels)
        info: dict[str, Any] = fold.to_dict()
        info.update({
            "train_start_time": int(ts[fold.train_start]), "train_end_time": int(ts[fold.train_end - 1]),
            "test_start_time": int(ts[fold.test_start]), "test_end_time": int(ts[stop - 1]), "test_rows": stop - fold.test_start,
        })
        fold_info.append(info)

    part = view.iloc[oos_first : oos_last + 1]
    t0 = time.perf_counter()
    run = simulate(manager, strategy_name, limits, market, part["timestamp"].to_numpy(), part["close"].to_numpy(), signals,
                   symbol=symbol, timeframe=timeframe)
    timings["simulation_s"] = time.perf_counter() - t0
    for info in fold_info:
        a = info["test_start"] - oos_first
        b = a + info["test_rows"]
        info["test_return"] = float(run.equity[b] / run.equity[a] - 1.0) if run.equity[a] > 0 else None
    bench, sig = scope.judge(manager, run, oos_first, oos_last, symbol=symbol, timeframe=timeframe, settings=settings)
    t0 = time.perf_counter()
    wide = scope.wide_spread_run(manager, run, signals, symbol=symbol, timeframe=timeframe, settings=settings)
    verdict, guard = scope.verdict(run, bench, wide, settings=settings, strategy=strategy_name, symbol=symbol,
                                   timeframe=timeframe, market_return=_market_return(view, oos_first, oos_last),
                                   in_sample=False)
    timings["verdict_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - began
    result_settings = {
        **_settings_dict(settings, market, limits, strategy),
        "walk_forward": True, "train_bars": plan.train_bars, "test_bars": plan.test_bars,
        "step": plan.step or plan.test_bars, "purge_bars": plan.purge, "embargo_bars": plan.embargo,
        "anchored": plan.anchored, "folds": len(folds), "train_params": dict(plan.train_params), "train_seed": plan.seed,
    }
    return BacktestResult(
        strategy=strategy_name, symbol=symbol, timeframe=timeframe, source=source, settings=result_settings, run=run,
        benchmark=bench if bench is not run else None, significance=sig,
        classification=_pooled_classification(pieces, fold_info), folds=tuple(fold_info), timings=timings,
        verdict=verdict, plausibility=guard, wide_spread=wide,
    )


@attrs.frozen
class _FoldInputs:
    """What every fold reads (sent to each worker once): the candles, their features and the strategy."""

    plugins: Any  # trader.executors.PluginSource
    view: Any
    features: Any
    params: Any
    symbol: str
    timeframe: str
    workdir: Path | None = None  # the strategy's own folder (SignalRequest.workdir)


@attrs.frozen
class _FoldTask:
    strategy: str
    fold: WalkForwardFold
    stop: int  # the fold trades rows [fold.test_start, stop): the next fold takes over at its own start
    train_params: dict[str, Any]
    seed: int
    trainable: bool


@attrs.frozen
class _FoldOutcome:
    """What a fold hands back: its signals and label arrays (never its model) and its timings."""

    signals: tuple[Any, ...]
    labels: Any  # (test labels, test probabilities, training labels), or None without a label definition
    train_seconds: float
    signals_seconds: float


def run_fold(task: _FoldTask, inputs: _FoldInputs) -> _FoldOutcome:
    """One fold, as an executor task: train on its training rows, ask the model for its test rows."""
    import time

    from trader.backtest.runner import batch_signals
    from trader.types import TrainRequest

    strategy = inputs.plugins.manager().strategy(task.strategy)
    view, fold = inputs.view, task.fold
    model, label, train_seconds = None, None, 0.0
    if task.trainable:
        t0 = time.perf_counter()
        train_frame = view.iloc[fold.train_start : fold.train_end].reset_index(drop=True)
        result = strategy.train(TrainRequest(task.strategy, inputs.symbol, inputs.timeframe, train_frame,
                                             params=dict(task.train_params), seed=task.seed))
        train_seconds = time.perf_counter() - t0
        model, label = result.model, dict(result.label or {})
    batch = batch_signals(strategy, view, fold.test_start, task.stop - 1, symbol=inputs.symbol,
                          timeframe=inputs.timeframe, features=inputs.features, model=model, params=inputs.params,
                          workdir=inputs.workdir)
    labels = _fold_labels(label, view, fold, task.stop, batch.probabilities, inputs.timeframe) if label else None
    return _FoldOutcome(tuple(batch.signals), labels, train_seconds, batch.seconds)


def _fold_labels(label: dict[str, Any], candles: Any, fold: WalkForwardFold, stop: int, proba: Any, timeframe: str):
    """(test labels, test probabilities, training labels) of one fold, or empty arrays."""
    import numpy as np

    from trader.features import LabelDefinition

    try:
        definition = LabelDefinition.from_dict(label)
    except ValueError:
        return np.empty(0), np.empty(0), None
    if definition.kind != "binary":
        return np.empty(0), np.empty(0), None
    # labels of the test rows may look past the fold (never past the data): they are only scored
    labels = definition.compute(candles, timeframe).to_numpy()
    test = labels[fold.test_start : stop]
    train_frame = candles.iloc[fold.train_start : fold.train_end].reset_index(drop=True)
    train = definition.compute(train_frame, timeframe).to_numpy()
    return test, np.asarray(proba, dtype=float), train[np.isfinite(train)]


def _pooled_classification(pieces: list, fold_info: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Out-of-sample metrics pooled over folds, beside a majority baseline that knows only each
    fold's training labels; plus a block permutation test of the ROC-AUC."""
    import numpy as np

    from trader.evaluation.classification import (
        classification_metrics,
        evaluate_classifier,
        permutation_test,
        prior_baseline,
    )

    ys, ps, bs = [], [], []
    for (test, proba, train), info in zip(pieces, fold_info, strict=False):
        keep = np.isfinite(test) & np.isfinite(proba)
        if train is None or keep.sum() < 2 or train.size == 0:
            continue
        y = test[keep].astype(np.int64)
        report = evaluate_classifier(y, proba[keep], train_labels=train.astype(np.int64))
        info["classification"] = report.to_dict()
        prior = np.bincount(train.astype(np.int64), minlength=2)[:2] / train.size
        ys.append(y)
        ps.append(proba[keep])
        bs.append(np.tile(prior, (y.size, 1)))
    if not ys:
        return None
    y, p, b = np.concatenate(ys), np.concatenate(ps), np.concatenate(bs)
    counts = np.bincount(y, minlength=2)
    perm = permutation_test(y, p, metric="roc_auc", n_permutations=200, block=24)
    return {
        "model": classification_metrics(y, p),
        "baseline": prior_baseline(y, b),  # per-fold priors pooled still rank nothing: AUC 0.5
        "n_samples": int(y.size),
        "class_counts": {str(i): int(c) for i, c in enumerate(counts)},
        "baseline_kind": "majority class of each fold's training labels",
        "roc_auc_permutation_p": perm.p_value,
        "roc_auc_permutation_floor": 1.0 / (200 + 1),  # 200 shuffles: the smallest p-value they can give
    }
