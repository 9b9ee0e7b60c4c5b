"""Signals from a loaded ensemble: one batched prediction over every requested row."""

from __future__ import annotations

import numpy as np

from trader.errors import ArtifactError, ModelNotFoundError, train_command
from trader.types import Signal, SignalRequest
from trader_ensemble.model import EnsembleModel
from trader_ensemble.params import signal_thresholds
from trader_ensemble.signals import signals_from_probabilities

__all__ = ["generate_signals"]


def generate_signals(request: SignalRequest) -> list[Signal]:
    """The ``trader_generate_signals`` hook: P(up) for the rows ``request.at`` -> Signals.

    The signal of row ``i`` reads feature rows ``i`` and ``i - lag`` only. Rows
    without complete features (warm-up, the bars after a gap) give HOLD.
    """
    model = request.model
    if model is None:
        raise ModelNotFoundError(
            f"ensemble has no trained model for {request.symbol} {request.timeframe}; train one with: "
            + train_command("ensemble", request.symbol, request.timeframe)
        )
    if not isinstance(model, EnsembleModel):
        raise ArtifactError(f"ensemble: request.model is a {type(model).__name__}, not a loaded EnsembleModel")
    thresholds = signal_thresholds(request.params)
    at = np.asarray(request.at, dtype=np.int64).reshape(-1)
    if at.size == 0:
        return []
    features = request.features
    if features is None or not model.reads(features):  # none given, or computed for other windows
        from trader.features import FeatureEngineer

        engineer = FeatureEngineer(windows=model.windows, timeframe=request.timeframe, max_fill_bars=model.max_fill_bars)
        features = engineer.transform(request.candles)
    return signals_from_probabilities(model.predict_up(features, at), thresholds)
