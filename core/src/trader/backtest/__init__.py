"""Backtests, walk-forward evaluation and the look-ahead checks behind ``trader check``.

Modules: :mod:`~trader.backtest.signals` (batched signals), :mod:`~trader.backtest.walkforward`
(folds with purge and embargo), :mod:`~trader.backtest.bootstrap` (intervals, PSR/DSR),
:mod:`~trader.backtest.lookahead` (checks). Performance metrics live in
:mod:`trader.evaluation.performance`.
"""

from __future__ import annotations

from trader.backtest.bootstrap import Interval, Significance, significance
from trader.backtest.lookahead import CheckContext, CheckResult, run_checks
from trader.backtest.walkforward import WalkForwardFold, walk_forward_folds

__all__ = [
    "CheckContext",
    "CheckResult",
    "Interval",
    "Significance",
    "WalkForwardFold",
    "run_checks",
    "significance",
    "walk_forward_folds",
]
