"""Backtests, walk-forward evaluation and the look-ahead checks behind ``trader check``.

- :func:`run_backtest` (:mod:`~trader.backtest.runner`): features once, the strategy's signals
  batched, then the engine's own per-candle step (:class:`trader.engine.TradingSession`) with
  the paper broker and the strategy's risk audit, beside the ``buy_and_hold`` baseline.
- :func:`run_walk_forward` (:mod:`~trader.backtest.walkforward`): retrain on rolling windows
  with purge and embargo, trade the bars after each, stitch the out-of-sample part.
- :func:`significance` (:mod:`~trader.backtest.bootstrap`): block-bootstrap intervals, PSR, DSR.
- :func:`run_checks` (:mod:`~trader.backtest.lookahead`): truncation, batch, warm-up and
  persistence checks.
- :func:`write_report` (:mod:`~trader.backtest.report`): PNG plots, HTML, JSON and CSV.
- :func:`~trader.backtest.comparison.compare_strategies`: strategies side by side on the same
  held-out candles, each through :func:`run_backtest` (``trader compare``).

Performance metrics live in :mod:`trader.evaluation.performance`. Importing this package
loads numpy and attrs only; pandas, torch and matplotlib load when a function needs them.
"""

from __future__ import annotations

from trader.backtest.bootstrap import (
    Interval,
    Significance,
    deflated_sharpe_ratio,
    probabilistic_sharpe_ratio,
    significance,
)
from trader.backtest.lookahead import CheckContext, CheckResult, run_checks
from trader.backtest.report import write_report
from trader.backtest.results import BacktestResult, SimulatedRun
from trader.backtest.runner import BacktestSettings, run_backtest
from trader.backtest.walkforward import WalkForwardFold, WalkForwardPlan, run_walk_forward, walk_forward_folds

__all__ = [
    "BacktestResult",
    "BacktestSettings",
    "CheckContext",
    "CheckResult",
    "Interval",
    "Significance",
    "SimulatedRun",
    "WalkForwardFold",
    "WalkForwardPlan",
    "deflated_sharpe_ratio",
    "probabilistic_sharpe_ratio",
    "run_backtest",
    "run_checks",
    "run_walk_forward",
    "significance",
    "walk_forward_folds",
    "write_report",
]
