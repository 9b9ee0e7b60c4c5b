"""From candles to scaled windows and labels, split chronologically: what training reads.

One market (:func:`prepare_training_data`) or several pooled into one model
(:func:`prepare_pooled_training_data`). Pooled, every market is its own piece: features,
labels and windows are computed on its candles alone, its windows are split and purged on
its own timeline, and its rows sit in one block of the stacked array, so no window reads
rows of two markets. Only the scaler is shared, fit on the training rows of every market.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from trader.errors import ConfigError, DataError
from trader.features.scaler import FeatureScaler
from trader.ml.settings import DataSettings
from trader.ml.split import split_window_ends

__all__ = ["PreparedWindows", "prepare_training_data", "prepare_pooled_training_data", "MIN_TRAIN_WINDOWS"]

#: Fewest training windows (and, below, validation and test windows) training accepts.
MIN_TRAIN_WINDOWS = 16
MIN_EVAL_WINDOWS = 4


@attrs.frozen
class PreparedWindows:
    """Scaled features, labels and the window ends of each part of the split.

    Pooled, ``markets`` maps each symbol to the ``(start, stop)`` rows of its block in
    ``values``; one market gives an empty mapping.
    """

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
    markets: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)


@attrs.frozen
class _Piece:
    """One market's unscaled features, labels and split window ends (rows of its own candles)."""

    values: np.ndarray
    raw_labels: np.ndarray
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    timestamps: np.ndarray
    windows: int


def _engineer(settings: DataSettings, timeframe: str | None) -> Any:
    from trader.features import FeatureEngineer

    try:
        return FeatureEngineer(windows=settings.windows, timeframe=timeframe, max_fill_bars=settings.max_fill_bars)
    except ValueError as exc:
        raise ConfigError(f"feature settings: {exc}") from None


def _piece(candles: Any, settings: DataSettings, timeframe: str | None, engineer: Any) -> _Piece:
    from trader.features import valid_window_ends
    from trader.features.windows import finite_rows

    definition = settings.label_definition()
    values = np.ascontiguousarray(engineer.compute_values(candles).T, dtype=np.float32)
    raw_labels = definition.compute(candles, timeframe).to_numpy(dtype=np.float64)
    if definition.kind == "ternary":  # -1/0/1 -> classes 0 (down), 1 (flat), 2 (up)
        raw_labels = raw_labels + 1.0
    ends = valid_window_ends(finite_rows(values), settings.sequence_length, engineer.segments(candles), raw_labels)
    train, val, test = split_window_ends(ends, settings)
    return _Piece(values, raw_labels, train, val, test, candles["timestamp"].to_numpy(dtype=np.int64), len(ends))


def _too_few(train: int, val: int, test: int, what: str, engineer: Any, settings: DataSettings) -> None:
    if train < MIN_TRAIN_WINDOWS or val < MIN_EVAL_WINDOWS or test < MIN_EVAL_WINDOWS:
        raise DataError(
            f"too few usable windows to train ({what}: {train} train, {val} validation, {test} test); use more "
            f"candles or a shorter sequence_length (warm-up {engineer.warmup_bars} bars + window {settings.sequence_length})"
        )


def _scaler(settings: DataSettings) -> FeatureScaler:
    try:
        return FeatureScaler(kind=settings.scaler, clip=settings.scaler_clip)
    except ValueError as exc:
        raise ConfigError(f"scaler settings: {exc}") from None


def _finish(values: np.ndarray, raw_labels: np.ndarray, train: np.ndarray, val: np.ndarray, test: np.ndarray,
            names: tuple[str, ...], scaler: FeatureScaler, settings: DataSettings, timestamps: np.ndarray,
            markets: Mapping[str, tuple[int, int]]) -> PreparedWindows:
    scaler.scale_in_place(values)
    definition = settings.label_definition()
    classes = ["down", "flat", "up"] if definition.kind == "ternary" else ["no_gain", "gain"]
    labels = np.where(np.isfinite(raw_labels), raw_labels, -1).astype(np.int64)
    n_classes = len(classes)
    counts = np.bincount(labels[train], minlength=n_classes)
    label = {
        **definition.as_dict(),
        "classes": classes,
        "up_class": n_classes - 1,
        "train_class_counts": [int(c) for c in counts],
    }
    return PreparedWindows(values, labels, train, val, test, names, scaler, label, n_classes, timestamps, dict(markets))


def prepare_training_data(candles: Any, settings: DataSettings, timeframe: str | None = None) -> PreparedWindows:
    """From candles to scaled windows and labels, split chronologically (see :func:`~trader.ml.split.split_window_ends`)."""
    engineer = _engineer(settings, timeframe)
    names = tuple(engineer.get_feature_names())
    piece = _piece(candles, settings, timeframe, engineer)
    _too_few(len(piece.train), len(piece.val), len(piece.test), f"{piece.windows} from {len(candles)} candles",
             engineer, settings)
    scaler = _scaler(settings)
    scaler.fit(piece.values[: piece.train[-1] + 1], list(names))  # training rows only
    return _finish(piece.values, piece.raw_labels, piece.train, piece.val, piece.test, names, scaler, settings,
                   piece.timestamps, {})


def prepare_pooled_training_data(markets: Mapping[str, Any], settings: DataSettings,
                                 timeframe: str | None = None) -> PreparedWindows:
    """Several markets' candles (symbol -> candles) as one training set for one model.

    Each market is prepared alone (features, labels, windows, the split and its purge on its
    own timeline) and its rows are stacked in symbol order; the window ends are offset into
    the stacked array, so every window lies inside one market's block. The scaler is fit on
    the stacked training rows of every market (each market's rows up to its last training
    window's end), never on a validation or test row.
    """
    if not markets:
        raise DataError("pooled training needs at least one market")
    engineer = _engineer(settings, timeframe)
    names = tuple(engineer.get_feature_names())
    pieces: dict[str, _Piece] = {}
    for symbol in sorted(markets):
        candles = markets[symbol]
        piece = _piece(candles, settings, timeframe, engineer)
        if len(piece.train) == 0:
            raise DataError(
                f"{symbol}: no usable training window in {len(candles)} candles (warm-up {engineer.warmup_bars} bars "
                f"+ window {settings.sequence_length}); use more of its candles or leave the market out"
            )
        pieces[symbol] = piece
    train = sum(len(p.train) for p in pieces.values())
    val = sum(len(p.val) for p in pieces.values())
    test = sum(len(p.test) for p in pieces.values())
    _too_few(train, val, test, f"{len(pieces)} markets", engineer, settings)
    scaler = _scaler(settings)
    scaler.fit(np.concatenate([p.values[: p.train[-1] + 1] for p in pieces.values()]), list(names))  # training rows only
    blocks: dict[str, tuple[int, int]] = {}
    offset = 0
    ends: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for symbol, piece in pieces.items():
        blocks[symbol] = (offset, offset + len(piece.values))
        for part in ends:
            ends[part].append(getattr(piece, part) + offset)
        offset += len(piece.values)
    values = np.concatenate([p.values for p in pieces.values()])
    raw_labels = np.concatenate([p.raw_labels for p in pieces.values()])
    timestamps = np.concatenate([p.timestamps for p in pieces.values()])
    train_ends, val_ends, test_ends = (np.concatenate(ends[part]).astype(np.int64) for part in ("train", "val", "test"))
    return _finish(values, raw_labels, train_ends, val_ends, test_ends, names, scaler, settings, timestamps, blocks)
