"""From candles to scaled windows and labels, split chronologically: what training reads."""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from trader.errors import ConfigError, DataError
from trader.features.scaler import FeatureScaler
from trader.ml.settings import DataSettings
from trader.ml.split import split_window_ends

__all__ = ["PreparedWindows", "prepare_training_data"]


@attrs.frozen
class PreparedWindows:
    """Scaled features, labels and the window ends of each part of the split."""

    values: np.ndarray  # (N, F) float32, scaled; NaN rows are never inside a used window
    labels: np.ndarray  # (N,) int64 class index, -1 where unknown
    train_ends: np.ndarray
    val_ends: np.ndarray
    test_ends: np.ndarray
    feature_names: tuple[str, ...]
    scaler: FeatureScaler
    label: dict[str, Any]
    n_classes: int
    timestamps: np.ndarray


def prepare_training_data(candles: Any, settings: DataSettings, timeframe: str | None = None) -> PreparedWindows:
    """From candles to scaled windows and labels, split chronologically (see :func:`~trader.ml.split.split_window_ends`)."""
    from trader.features import FeatureEngineer, FeatureScaler, valid_window_ends

    try:
        engineer = FeatureEngineer(windows=settings.windows, timeframe=timeframe, max_fill_bars=settings.max_fill_bars)
    except ValueError as exc:
        raise ConfigError(f"feature settings: {exc}") from None
    definition = settings.label_definition()
    values = np.ascontiguousarray(engineer.compute_values(candles).T, dtype=np.float32)
    names = tuple(engineer.get_feature_names())
    raw_labels = definition.compute(candles, timeframe).to_numpy(dtype=np.float64)
    if definition.kind == "ternary":  # -1/0/1 -> classes 0 (down), 1 (flat), 2 (up)
        raw_labels = raw_labels + 1.0
        classes = ["down", "flat", "up"]
    else:
        classes = ["no_gain", "gain"]
    from trader.features.windows import finite_rows

    valid = finite_rows(values)
    ends = valid_window_ends(valid, settings.sequence_length, engineer.segments(candles), raw_labels)
    train_ends, val_ends, test_ends = split_window_ends(ends, settings)
    minimum = 16
    if len(train_ends) < minimum or len(val_ends) < 4 or len(test_ends) < 4:
        raise DataError(
            f"too few usable windows to train ({len(ends)} from {len(candles)} candles: {len(train_ends)} train, "
            f"{len(val_ends)} validation, {len(test_ends)} test); use more candles or a shorter sequence_length "
            f"(warm-up {engineer.warmup_bars} bars + window {settings.sequence_length})"
        )
    try:
        scaler = FeatureScaler(kind=settings.scaler, clip=settings.scaler_clip)
    except ValueError as exc:
        raise ConfigError(f"scaler settings: {exc}") from None
    scaler.fit(values[: train_ends[-1] + 1], list(names))  # training rows only
    scaler.scale_in_place(values)
    labels = np.where(np.isfinite(raw_labels), raw_labels, -1).astype(np.int64)
    n_classes = len(classes)
    counts = np.bincount(labels[train_ends], minlength=n_classes)
    label = {
        **definition.as_dict(),
        "classes": classes,
        "up_class": n_classes - 1,
        "train_class_counts": [int(c) for c in counts],
    }
    timestamps = candles["timestamp"].to_numpy(dtype=np.int64)
    return PreparedWindows(values, labels, train_ends, val_ends, test_ends, names, scaler, label, n_classes, timestamps)
