"""trader strategy plugin ``ensemble``: a calibrated soft-voting scikit-learn ensemble over the 86 features.

HistGradientBoosting, ExtraTrees and an L2-regularised LogisticRegression (by
default) are trained on the same features, labels and chronological purged split
as the deep-learning plugins; their averaged probability is calibrated on the
validation rows. The model is stored with skops (trusted types only), never pickle.

This entry module stays light (no numpy, pandas, scikit-learn or skops at import):
the hooks import the sub-modules when called.

Parameters (``[plugins.ensemble]`` in ``trader.toml``): ``buy_threshold`` (0.55),
``sell_threshold`` (0.45), ``position_size`` (1.0), ``size_by_confidence`` (false);
training parameters go in ``[plugins.ensemble.train]`` (see ``docs/models.md``). All of them are
declared in ``StrategyInfo.params`` (``params.PARAMS``), so a misspelt key is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trader import RiskLimits, Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult, hookimpl
from trader.feature_windows import DEFAULT_WINDOWS
from trader_ensemble.params import PARAMS

__version__ = "0.1.0"
NAME = "ensemble"
FEATURE_WINDOWS = DEFAULT_WINDOWS
#: Bars before a feature row is complete for FEATURE_WINDOWS (the longest window).
FEATURE_WARMUP_BARS = 50

__all__ = ["NAME", "__version__", "FEATURE_WINDOWS", "FEATURE_WARMUP_BARS"]


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description="Calibrated soft-voting scikit-learn ensemble (gradient boosting, extra trees, logistic) over the 86 features.",
        warmup_bars=FEATURE_WARMUP_BARS,
        risk_limits=RiskLimits(),
        requires_model=True,
        feature_windows=FEATURE_WINDOWS,
        params=PARAMS,
    )


@hookimpl
def trader_train(request: TrainRequest) -> TrainResult:
    from trader_ensemble.training import train_ensemble

    return train_ensemble(request)


@hookimpl
def trader_save_model(model: Any, directory: Path) -> Sequence[str]:
    from trader_ensemble.persistence import save_ensemble

    return save_ensemble(model, directory)


@hookimpl
def trader_load_model(directory: Path, manifest: dict[str, Any]) -> Any:
    from trader_ensemble.persistence import load_ensemble

    return load_ensemble(directory, manifest)


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    from trader_ensemble.inference import generate_signals

    return generate_signals(request)
