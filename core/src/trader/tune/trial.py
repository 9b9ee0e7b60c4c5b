"""One trial of ``trader tune``: a purged walk-forward of one parameter set over the tuning range.

:func:`evaluate_trial` is an executor task (a top-level function of plain, picklable arguments): it
gets the tuning range's candles as the executor's shared input, and nothing later. It returns plain
data (metrics, the per-fold returns the orchestrator reports for pruning, the first and last candle
it was handed); it never touches the study, whose only writer is the orchestrator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["TrialTask", "OBJECTIVES", "evaluate_trial", "trial_config"]

#: ``--objective`` -> the walk-forward metric it maximises.
OBJECTIVES = {"sharpe": "sharpe", "return": "total_return", "sortino": "sortino", "calmar": "calmar"}

@attrs.frozen
class TrialTask:
    """What one trial runs: the strategy's settings with the trial's values, and the walk-forward plan."""

    number: int
    plugin: str
    symbol: str
    timeframe: str
    config: Any  # trader.config.TraderConfig with the trial's values under [plugins.NAME]
    plan: Any  # trader.backtest.walkforward.WalkForwardPlan with the trial's training values
    settings: Any  # trader.backtest.runner.BacktestSettings
    source: Any  # trader.executors.PluginSource: the orchestrator's manager here, rebuilt in a worker
    objective: str = "sharpe"


def trial_config(config: Any, plugin: str, signal: Mapping[str, Any], train: Mapping[str, Any]) -> Any:
    """*config* with *signal* over ``[plugins.PLUGIN]`` and *train* over its ``train`` table."""
    data = dict(config.data)
    plugins = dict(data.get("plugins", {}) or {})
    table = dict(plugins.get(plugin, {}) or {})
    table.update(signal)
    if train or "train" in table:
        table["train"] = {**dict(table.get("train", {}) or {}), **train}
    plugins[plugin] = table
    data["plugins"] = plugins
    return attrs.evolve(config, data=data)


def evaluate_trial(task: TrialTask, candles: Any) -> dict[str, Any]:
    """Score *task* by a purged walk-forward over *candles* (the tuning range, nothing after it)."""
    from trader.backtest.runner import quiet_engine_logs
    from trader.backtest.walkforward import run_walk_forward
    from trader.errors import TraderError
    from trader.evaluation.performance import equity_returns

    began = time.perf_counter()
    ts = candles["timestamp"]
    out: dict[str, Any] = {"number": task.number, "read_range": [int(ts.iloc[0]), int(ts.iloc[-1])], "rows": len(candles)}
    try:
        with quiet_engine_logs():
            result = run_walk_forward(task.source.manager(), task.config, task.plugin, candles, task.plan,
                                      symbol=task.symbol, timeframe=task.timeframe, settings=task.settings)
    except (TraderError, ValueError) as exc:  # a combination the strategy refuses (sell above buy...)
        out.update(error=str(exc).splitlines()[0][:300], seconds=time.perf_counter() - began)
        return out
    metrics = result.run.metrics.to_dict()
    value = metrics.get(OBJECTIVES[task.objective])
    returns = equity_returns(result.run.equity)
    sd = float(returns.std(ddof=1)) if returns.size > 1 else 0.0
    fold_returns = [f.get("test_return") for f in result.folds]
    out.update(
        value=float(value) if value is not None and math.isfinite(value) else None,
        trades=int(metrics.get("trades") or 0),
        metrics=metrics,
        per_bar_sharpe=float(returns.mean() / sd) if sd > 0 else None,
        fold_returns=[float(r) if r is not None else None for r in fold_returns],
        folds=[{k: f[k] for k in ("train_start_time", "train_end_time", "test_start_time", "test_end_time")}
               for f in result.folds],
        seconds=time.perf_counter() - began,
    )
    return out
