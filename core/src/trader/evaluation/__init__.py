"""Evaluation of strategies and models.

``trader.evaluation.classification`` scores model probabilities beside the
majority-class baseline; backtest metrics live in sibling modules. Import the
module you need: this package imports nothing heavy.
"""

from __future__ import annotations

__all__: list[str] = []
