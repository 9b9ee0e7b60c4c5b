"""The ``trader_generate_signals`` hook of a sequence-classifier plugin: batched rows or one live window."""

from __future__ import annotations

import numpy as np

from trader.errors import ArtifactError, ModelNotFoundError, train_command
from trader.ml.model import SequenceModel
from trader.ml.spec import SequenceClassifierSpec
from trader.ml.thresholds import SequenceSignalSettings, signal_from_probability, warmup_signal
from trader.types import Signal, SignalRequest

__all__ = ["generate_sequence_signals"]


def generate_sequence_signals(spec: SequenceClassifierSpec, request: SignalRequest) -> list[Signal]:
    """The ``trader_generate_signals`` hook: one window per requested row, batched when there are many."""
    model = request.model
    if model is None:
        raise ModelNotFoundError(
            f"{spec.plugin} has no trained model for {request.symbol} {request.timeframe}; train one with: "
            + train_command(spec.plugin, request.symbol, request.timeframe)
        )
    if not isinstance(model, SequenceModel):
        raise ArtifactError(f"{spec.plugin}: request.model is a {type(model).__name__}, not a loaded SequenceModel")
    thresholds = SequenceSignalSettings.from_params(request.params)
    features = request.features
    if features is None or not model.reads(features):  # none given, or computed for other windows
        from trader.features import FeatureEngineer

        engineer = FeatureEngineer(windows=model.windows, timeframe=request.timeframe, max_fill_bars=model.max_fill_bars)
        features = engineer.transform(request.candles)
    at = np.asarray(request.at, dtype=np.int64)
    if len(at) == 0:
        return []
    length = model.sequence_length
    if len(at) == 1:  # the live path: one window, no batching machinery
        end = int(at[0])
        p_up = model.live_probability(features, end, threads=thresholds.inference_threads) if end >= length - 1 else None
        return [warmup_signal(length) if p_up is None else signal_from_probability(p_up, thresholds)]
    warmup = warmup_signal(length)
    first = max(int(at.min()) - length + 1, 0)
    scaled = model.scale(model.feature_matrix(features, first, int(at.max()) + 1))
    from trader.features.windows import finite_rows, valid_window_ends

    local = at - first
    mask = np.isin(local, valid_window_ends(finite_rows(scaled), length))
    probs = model.predict_windows(scaled, local[mask], threads=thresholds.batch_threads) if mask.any() else np.empty((0, 2))
    signals: list[Signal] = []
    it = iter(probs[:, model.up_class] if len(probs) else [])
    for ok in mask:
        signals.append(signal_from_probability(float(next(it)), thresholds) if ok else warmup)
    return signals


