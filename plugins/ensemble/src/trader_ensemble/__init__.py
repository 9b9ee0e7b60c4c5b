"""trader strategy plugin `ensemble`: Soft-voting scikit-learn ensemble over the 86 engineered features.

This module is the entry point and stays light: heavy libraries are imported
inside the hooks that need them.
"""

from __future__ import annotations

from collections.abc import Sequence

from trader import Signal, SignalRequest, StrategyInfo, hookimpl
from trader.errors import NotSupportedError

__version__ = "0.1.0"
NAME = "ensemble"


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description="Soft-voting scikit-learn ensemble over the 86 engineered features.",
        warmup_bars=50,
        requires_model=True,
        feature_windows=(5, 10, 20, 50),
    )


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    raise NotSupportedError(f"strategy {NAME!r} cannot trade yet: its model is not implemented")
