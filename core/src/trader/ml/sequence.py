"""The sequence-classifier strategy pipeline shared by ``dl_lstm`` and ``dl_transformer``.

A plugin describes its network with a :class:`SequenceClassifierSpec`; this module
does the rest, the same way for both:

- **train**: features (:class:`trader.features.FeatureEngineer`), fee-aware labels
  (:class:`trader.features.LabelDefinition`), windows that lie in one gap-free
  segment past the warm-up, a chronological train/validation/test split with the
  label horizon and the window purged at each boundary (plus an optional embargo),
  a scaler fit on training rows only, :func:`trader.ml.training.fit`, and the test
  metrics beside the majority baseline;
- **save/load**: weights in safetensors, everything else in the manifest; loading
  checks the architecture against the plugin's bounds and the weights file's header
  (on a meta-device skeleton, no memory) before building the network, then feature
  names and feature count;
- **signals**: batched over every requested row, or one window for live trading;
  calibrated P(up) -> BUY / SELL / HOLD through configurable thresholds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import nn

from trader.errors import ArtifactError, ConfigError, DataError, ModelNotFoundError, train_command
from trader.evaluation.classification import evaluate_classifier
from trader.ml.batches import WindowBatches
from trader.ml.inference import predict_proba, predict_window
from trader.ml.seeding import default_threads, seed_everything, torch_threads
from trader.ml.training import TrainConfig, fit
from trader.ml.weights import check_header, load_weights, save_weights
from trader.types import Signal, SignalAction, SignalRequest, TrainRequest, TrainResult

__all__ = [
    "SequenceClassifierSpec",
    "SequenceModel",
    "SignalThresholds",
    "DataSettings",
    "WEIGHTS_FILE",
    "train_sequence_classifier",
    "save_sequence_model",
    "load_sequence_model",
    "generate_sequence_signals",
    "prepare_training_data",
    "check_architecture",
    "MAX_SEQUENCE_LENGTH",
    "MAX_WINDOWS",
]

WEIGHTS_FILE = "weights.safetensors"
#: Longest window (candles) a sequence model may read.
MAX_SEQUENCE_LENGTH = 10_000
#: Most feature windows a model may be trained on (each adds 18 features).
MAX_WINDOWS = 64


# ---------------------------------------------------------------------- spec and settings


@attrs.frozen
class SequenceClassifierSpec:
    """What a plugin tells the pipeline about its network.

    ``model_class(**architecture)`` builds the module (``input_size`` and
    ``num_classes`` are filled in from the data); ``input_weight`` names the tensor
    whose second dimension is the feature count; ``length_argument`` names the
    constructor argument that must hold at least the window length (or ``None``);
    ``architecture_bounds`` gives the inclusive ``(low, high)`` range of each integer
    constructor argument, checked before anything is built.
    """

    plugin: str
    model_class: type[nn.Module]
    input_weight: str
    architecture_defaults: Mapping[str, Any]
    feature_windows: tuple[int, ...] = (5, 10, 20, 50)
    sequence_length: int = 60
    length_argument: str | None = None
    architecture_bounds: Mapping[str, tuple[int, int]] = attrs.field(factory=dict)

    @property
    def class_name(self) -> str:
        return self.model_class.__name__

    def build(self, architecture: Mapping[str, Any]) -> nn.Module:
        arguments = {k: v for k, v in architecture.items() if k not in ("class", "sequence_length")}
        return self.model_class(**arguments)


def check_architecture(spec: SequenceClassifierSpec, architecture: Mapping[str, Any]) -> None:
    """``ValueError`` unless every bounded argument is an integer within ``spec.architecture_bounds``
    and ``sequence_length`` lies in ``1 .. MAX_SEQUENCE_LENGTH`` (no module is built)."""
    bounds = {**spec.architecture_bounds, "sequence_length": (1, MAX_SEQUENCE_LENGTH)}
    for key, (low, high) in bounds.items():
        value = architecture.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"{key} must be an integer from {low} to {high}, got {str(value)[:40]}")
    dropout = architecture.get("dropout", 0.0)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a number in [0, 1), got {str(dropout)[:40]}")


def _skeleton_shapes(spec: SequenceClassifierSpec, architecture: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Name -> (dtype, shape) of the state dict ``architecture`` builds, and the bytes of all its tensors,
    from a skeleton on the meta device (no storage is allocated)."""
    with torch.device("meta"):
        skeleton = spec.build(architecture)
    shapes = {name: (t.dtype, tuple(t.shape)) for name, t in skeleton.state_dict().items()}
    tensors = [*skeleton.parameters(), *skeleton.buffers()]
    return shapes, sum(t.numel() * t.element_size() for t in tensors)


def _number(params: Mapping[str, Any], key: str, default: Any, kind: type = float) -> Any:
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise ConfigError(f"training parameter {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


@attrs.frozen
class DataSettings:
    """How candles become windows and labels (keys of ``[plugins.NAME.train]``)."""

    sequence_length: int = 60
    windows: tuple[int, ...] = (5, 10, 20, 50)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    embargo: int = 0
    label_horizon: int = 1
    label_threshold: float | None = 0.0  # a log return; None ("fee"): the round trip of fee_rate
    fee_rate: float = 0.001
    label_kind: str = "binary"
    scaler: str = "zscore"
    scaler_clip: float | None = 10.0
    max_fill_bars: int = 5

    KEYS = (
        "sequence_length", "windows", "val_fraction", "test_fraction", "embargo", "label_horizon",
        "label_threshold", "fee_rate", "label_kind", "scaler", "scaler_clip", "max_fill_bars",
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], spec: SequenceClassifierSpec) -> DataSettings:
        windows = params.get("windows", spec.feature_windows)
        if not isinstance(windows, (list, tuple)) or not windows:
            raise ConfigError(f"training parameter windows must be a list of integers, got {windows!r}")
        settings = cls(
            sequence_length=_number(params, "sequence_length", spec.sequence_length, int),
            windows=tuple(int(w) for w in windows),
            val_fraction=_number(params, "val_fraction", 0.15),
            test_fraction=_number(params, "test_fraction", 0.15),
            embargo=_number(params, "embargo", 0, int),
            label_horizon=_number(params, "label_horizon", 1, int),
            label_threshold=None if params.get("label_threshold") == "fee" else _number(params, "label_threshold", 0.0),
            fee_rate=_number(params, "fee_rate", 0.001),
            label_kind=str(params.get("label_kind", "binary")),
            scaler=str(params.get("scaler", "zscore")),
            scaler_clip=_number(params, "scaler_clip", 10.0),
            max_fill_bars=_number(params, "max_fill_bars", 5, int),
        )
        if settings.sequence_length < 1:
            raise ConfigError(f"sequence_length must be >= 1, got {settings.sequence_length}")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(settings, key)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"training parameter {key} must be within (0, 0.5), got {value}")
        if settings.embargo < 0:
            raise ConfigError(f"embargo must be >= 0, got {settings.embargo}")
        return settings

    def label_definition(self) -> Any:
        from trader.features import LabelDefinition

        try:
            return LabelDefinition.from_settings(self.label_threshold, self.fee_rate, self.label_horizon, self.label_kind)
        except ValueError as exc:
            raise ConfigError(f"label settings: {exc}") from None


@attrs.frozen
class SignalThresholds:
    """How P(up) becomes a signal (keys of ``[plugins.NAME]``).

    BUY when ``P(up) >= buy_threshold``; SELL (close the position) when
    ``P(up) <= sell_threshold``; HOLD in between. ``confidence = |2 P(up) - 1|``.
    A BUY's size is ``position_size`` (times the confidence when
    ``size_by_confidence``). ``inference_threads`` (1) is the torch thread count of
    the one-window live path.
    """

    buy_threshold: float = 0.55
    sell_threshold: float = 0.45
    position_size: float = 1.0
    size_by_confidence: bool = False
    inference_threads: int = 1

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SignalThresholds:
        buy = _number(params, "buy_threshold", 0.55)
        sell = _number(params, "sell_threshold", 0.45)
        size = _number(params, "position_size", 1.0)
        by_conf = params.get("size_by_confidence", False)
        if not (0.0 <= sell <= buy <= 1.0):
            raise ConfigError(f"thresholds must satisfy 0 <= sell_threshold <= buy_threshold <= 1, got sell={sell}, buy={buy}")
        if not 0.0 < size <= 1.0:
            raise ConfigError(f"position_size must be within (0, 1], got {size}")
        if not isinstance(by_conf, bool):
            raise ConfigError(f"size_by_confidence must be true or false, got {by_conf!r}")
        threads = _number(params, "inference_threads", 1, int)
        if threads < 1:
            raise ConfigError(f"inference_threads must be >= 1, got {threads}")
        return cls(buy, sell, size, by_conf, threads)


# ---------------------------------------------------------------------- the model object


class SequenceModel:
    """A trained network with everything needed to feed it: feature order, scaler, window, classes.

    ``predict`` returns calibrated class probabilities: training weights classes to
    balance them, and the same weights are divided out at inference (prior
    correction), so P(up) is comparable with the base rate.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        feature_names: Sequence[str],
        windows: Sequence[int],
        sequence_length: int,
        scaler: Any,
        label: Mapping[str, Any],
        class_weights: Sequence[float],
        architecture: Mapping[str, Any],
        max_fill_bars: int = 5,
    ) -> None:
        self.module = module.eval()
        self.feature_names = tuple(feature_names)
        self.windows = tuple(windows)
        self.sequence_length = int(sequence_length)
        self.scaler = scaler
        self.label = dict(label)
        self.architecture = dict(architecture)
        self.max_fill_bars = max_fill_bars
        weights = np.asarray(class_weights or [1.0] * int(architecture.get("num_classes", 2)), dtype=np.float64)
        self.class_weights = weights
        self.log_prior_correction = torch.as_tensor(-np.log(weights), dtype=torch.float32)
        self.up_class = int(self.label.get("up_class", len(weights) - 1))
        self._center = np.asarray(scaler.center, dtype=np.float32)
        self._scale = np.asarray(scaler.scale, dtype=np.float32)
        self._clip = scaler.clip
        self._checked_columns: Any = None
        self._names = list(self.feature_names)
        self._names_index: Any = None
        self._live_lock = threading.Lock()
        self._live_input: tuple[np.ndarray, torch.Tensor] | None = None

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def calibrate(self, balanced: np.ndarray) -> np.ndarray:
        """Divide out the training class weights and renormalise."""
        p = balanced / self.class_weights
        return p / p.sum(axis=-1, keepdims=True)

    def scale(self, values: np.ndarray) -> np.ndarray:
        out = (np.asarray(values, dtype=np.float32) - self._center) / self._scale
        if self._clip is not None:
            np.clip(out, -self._clip, self._clip, out=out)
        return out

    def _layout(self, features: Any) -> bool | None:
        """True: the frame's columns are the model's, in order; False: they hold them in another
        order or among others; None: some are missing. Cached per columns object."""
        columns = features.columns
        if columns is self._checked_columns:
            return True
        if self._names_index is None:
            import pandas as pd

            self._names_index = pd.Index(self._names)
        if columns.equals(self._names_index):
            self._checked_columns = columns
            return True
        return False if set(self._names) <= set(map(str, columns)) else None

    def reads(self, features: Any) -> bool:
        """Whether the feature frame holds every feature the model reads."""
        return self._layout(features) is not None

    def feature_matrix(self, features: Any, start: int, stop: int) -> np.ndarray:
        """Raw feature rows ``start:stop`` in the model's column order (float32)."""
        layout = self._layout(features)
        if layout is None:
            missing = [n for n in self.feature_names if n not in set(map(str, features.columns))]
            raise DataError(
                f"the feature frame lacks {len(missing)} of the model's {self.n_features} features "
                f"(e.g. {', '.join(missing[:3])}); retrain the model or compute windows {list(self.windows)}"
            )
        if layout:  # the whole frame as one array is a view for a float64 frame; slice, then convert
            return np.asarray(features.to_numpy()[start:stop], dtype=np.float32)
        return features.iloc[start:stop][self._names].to_numpy(dtype=np.float32)

    def scaled_window(self, features: Any, start: int, stop: int) -> np.ndarray:
        """``scale(feature_matrix(features, start, stop))`` (bit for bit) in one fresh float32 array.

        The live path: one copy converted from the frame's rows, then centred, divided and
        clipped in place, instead of three temporaries.
        """
        out = np.array(self._rows(features, start, stop), dtype=np.float32)  # always a copy: the frame stays as it was
        return self._scale_in_place(out)

    def _rows(self, features: Any, start: int, stop: int) -> np.ndarray:
        """Feature rows ``start:stop`` in the model's order: a view of the frame's array when its
        columns are the model's, else :meth:`feature_matrix`'s float32 copy."""
        return features.to_numpy()[start:stop] if self._layout(features) else self.feature_matrix(features, start, stop)

    def _scale_in_place(self, out: np.ndarray) -> np.ndarray:
        """``out`` (float32) centred, divided and clipped as :meth:`scale` does, without temporaries."""
        np.subtract(out, self._center, out=out)
        np.divide(out, self._scale, out=out)
        if self._clip is not None:
            np.clip(out, -self._clip, self._clip, out=out)
        return out

    def live_probability(self, features: Any, end: int, *, threads: int | None = 1) -> float | None:
        """Calibrated P(up) of the window ending at row ``end`` (the live path); ``None`` when it
        holds a non-finite value.

        Bit for bit ``predict_window(scaled_window(features, end - length + 1, end + 1))[up_class]``,
        written into one input buffer kept for the next call (and the tensor over it) instead of
        fresh arrays each candle; a call while another one uses the buffer, or a window of
        another shape, takes that fresh path.
        """
        start = end - self.sequence_length + 1
        if self._live_lock.acquire(blocking=False):
            try:
                if self._live_input is None:
                    buffer = np.empty((self.sequence_length, self.n_features), dtype=np.float32)
                    self._live_input = buffer, torch.from_numpy(buffer).unsqueeze(0)
                buffer, x = self._live_input
                rows = self._rows(features, start, end + 1)
                if start >= 0 and rows.shape == buffer.shape:
                    np.copyto(buffer, rows, casting="unsafe")  # rounds to float32 as np.array(rows, float32) does
                    if not np.isfinite(self._scale_in_place(buffer)).all():
                        return None
                    with torch_threads(threads), torch.inference_mode():
                        balanced = torch.softmax(self.module(x), dim=-1)[0].numpy()
                    return float(self.calibrate(balanced.astype(np.float64))[self.up_class])
            finally:
                self._live_lock.release()
        window = self.scaled_window(features, start, end + 1)
        if not np.isfinite(window).all():
            return None
        return float(self.predict_window(window, threads=threads)[self.up_class])

    def predict_windows(self, scaled: np.ndarray, ends: np.ndarray, *, batch_size: int = 1024) -> np.ndarray:
        """Calibrated probabilities for the windows ending at ``ends`` of a scaled ``(N, F)`` array."""
        if len(ends) == 0:
            return np.empty((0, len(self.class_weights)))
        windows = WindowBatches(scaled, ends, self.sequence_length)
        return self.calibrate(predict_proba(self.module, windows, batch_size=batch_size).astype(np.float64))

    def predict_window(self, scaled_window: np.ndarray, *, threads: int | None = 1) -> np.ndarray:
        """Calibrated probabilities for one scaled ``(sequence_length, F)`` window (one thread by default:
        a single window is too small to share, and spare threads only wait on a busy machine)."""
        return self.calibrate(predict_window(self.module, scaled_window, threads=threads).astype(np.float64))


# ---------------------------------------------------------------------- training


def _split_ends(ends: np.ndarray, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chronological train/validation/test window ends with purge and embargo at each boundary.

    A training window's label reads ``label_horizon`` bars ahead; the next part's
    first window starts ``sequence_length - 1`` bars before its end row. Windows of
    the earlier part whose label reaches into the later part's first window (plus
    ``embargo`` bars) are dropped.
    """
    n = len(ends)
    n_test = int(round(n * settings.test_fraction))
    n_val = int(round(n * settings.val_fraction))
    train, val, test = ends[: n - n_val - n_test], ends[n - n_val - n_test : n - n_test], ends[n - n_test :]

    def purge(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        if len(later) == 0:
            return earlier
        first_row_of_later = later[0] - settings.sequence_length + 1
        return earlier[earlier + settings.label_horizon + settings.embargo < first_row_of_later]

    return purge(train, val), purge(val, test), test


@attrs.frozen
class PreparedWindows:
    """Scaled features, labels and the window ends of each part of the split."""

    values: np.ndarray  # (N, F) float32, scaled; NaN rows are never inside a used window
    labels: np.ndarray  # (N,) int64 class index, -1 where unknown
    train_ends: np.ndarray
    val_ends: np.ndarray
    test_ends: np.ndarray
    feature_names: tuple[str, ...]
    scaler: Any
    label: dict[str, Any]
    n_classes: int
    timestamps: np.ndarray


_CHUNK = 65_536


def fit_scaler(scaler: Any, values: np.ndarray, names: Sequence[str]) -> Any:
    """Fit ``scaler`` on the complete rows of ``values``; z-score in chunks (two passes, float64 sums).

    Equal to ``FeatureScaler.fit`` but without a float64 copy of the whole array, so
    a million rows of 86 features fit in the memory of the float32 array itself.
    """
    if scaler.kind != "zscore":
        return scaler.fit(values, list(names))  # percentiles need every row at once
    n_features = values.shape[1]
    total, count = np.zeros(n_features), 0
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        chunk = chunk[np.isfinite(chunk).all(axis=1)].astype(np.float64)
        total += chunk.sum(axis=0)
        count += len(chunk)
    if count == 0:
        raise DataError("cannot fit the feature scaler: no training row has every feature finite")
    mean = total / count
    squares = np.zeros(n_features)
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        chunk = chunk[np.isfinite(chunk).all(axis=1)].astype(np.float64)
        squares += ((chunk - mean) ** 2).sum(axis=0)
    std = np.sqrt(squares / count)
    scaler.feature_names = tuple(names)
    scaler.center = mean
    scaler.scale = np.where(np.isfinite(std) & (std > 0), std, 1.0)
    scaler.n_samples = int(count)
    return scaler


def scale_in_place(values: np.ndarray, scaler: Any) -> np.ndarray:
    """``(values - center) / scale`` (then clipped) in float32, chunk by chunk, without a copy."""
    center = np.asarray(scaler.center, dtype=np.float32)
    scale = np.asarray(scaler.scale, dtype=np.float32)
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        chunk -= center
        chunk /= scale
        if scaler.clip is not None:
            np.clip(chunk, -scaler.clip, scaler.clip, out=chunk)
    return values


def prepare_training_data(candles: Any, settings: DataSettings, timeframe: str | None = None) -> PreparedWindows:
    """From candles to scaled windows and labels, split chronologically (see :func:`_split_ends`)."""
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
    train_ends, val_ends, test_ends = _split_ends(ends, settings)
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
    fit_scaler(scaler, values[: train_ends[-1] + 1], names)  # training rows only
    scale_in_place(values, scaler)
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


def _architecture(spec: SequenceClassifierSpec, params: Mapping[str, Any], n_features: int, n_classes: int, length: int) -> dict[str, Any]:
    arch = {"class": spec.class_name}
    for key, default in spec.architecture_defaults.items():
        arch[key] = params.get(key, default)
    arch["input_size"] = n_features
    arch["num_classes"] = n_classes
    if spec.length_argument:
        arch[spec.length_argument] = max(length, int(params.get(spec.length_argument, length)))
    arch["sequence_length"] = length
    return arch


def _known_keys(spec: SequenceClassifierSpec) -> set[str]:
    keys = set(spec.architecture_defaults) | set(DataSettings.KEYS) | {a.name for a in attrs.fields(TrainConfig)}
    if spec.length_argument:
        keys.add(spec.length_argument)
    return keys - {"seed"}


def train_sequence_classifier(spec: SequenceClassifierSpec, request: TrainRequest) -> TrainResult:
    """The ``trader_train`` hook of a sequence-classifier plugin."""
    params = dict(request.params)
    unknown = sorted(set(params) - _known_keys(spec))
    if unknown:
        raise ConfigError(
            f"unknown training parameter(s) for {spec.plugin}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_known_keys(spec)))})"
        )
    settings = DataSettings.from_params(params, spec)
    try:
        config = TrainConfig.from_params({k: v for k, v in params.items() if k != "seed"}, seed=request.seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training parameters: {exc}") from None
    started = time.perf_counter()
    data = prepare_training_data(request.candles, settings, request.timeframe)
    prep_seconds = time.perf_counter() - started
    arch = _architecture(spec, params, len(data.feature_names), data.n_classes, settings.sequence_length)
    with torch_threads(config.threads or default_threads()):
        seed_everything(request.seed)
        try:
            check_architecture(spec, arch)
            module = spec.build(arch)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.plugin} architecture: {exc}") from None
        train = WindowBatches(data.values, data.train_ends, settings.sequence_length, data.labels)
        val = WindowBatches(data.values, data.val_ends, settings.sequence_length, data.labels)
        result = fit(module, train, val, config, n_classes=data.n_classes, show_progress=request.show_progress,
                     description=f"{spec.plugin} {request.symbol} {request.timeframe}")
        label = {**data.label, "class_weights": list(result.class_weights) or [1.0] * data.n_classes}
        model = SequenceModel(
            module, feature_names=data.feature_names, windows=settings.windows, sequence_length=settings.sequence_length,
            scaler=data.scaler, label=label, class_weights=label["class_weights"], architecture=arch,
            max_fill_bars=settings.max_fill_bars,
        )
        train_labels = data.labels[data.train_ends]
        val_report = evaluate_classifier(data.labels[data.val_ends], model.predict_windows(data.values, data.val_ends), train_labels=train_labels)
        test_report = evaluate_classifier(data.labels[data.test_ends], model.predict_windows(data.values, data.test_ends), train_labels=train_labels)
    ts = data.timestamps

    def span(ends: np.ndarray) -> dict[str, Any]:
        return {"first_end": int(ts[ends[0]]), "last_end": int(ts[ends[-1]]), "windows": int(len(ends))}

    metrics = {
        "test": test_report.to_dict(),
        "validation": val_report.to_dict(),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_val_loss": result.best_val_loss,
        "samples_per_second": round(result.samples_per_second, 1),
        "train_seconds": round(result.train_seconds, 3),
        "prepare_seconds": round(prep_seconds, 3),
    }
    return TrainResult(
        model=model,
        metrics=metrics,
        architecture=arch,
        feature_names=data.feature_names,
        feature_windows=settings.windows,
        scaler=data.scaler.to_dict(),
        label=label,
        history=result.history,
        extra={
            "split": {"train": span(data.train_ends), "validation": span(data.val_ends), "test": span(data.test_ends),
                      "purge_bars": settings.label_horizon + settings.sequence_length - 1, "embargo_bars": settings.embargo},
            "train_config": attrs.asdict(config),
            "data_settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(settings).items()},
        },
    )


# ---------------------------------------------------------------------- persistence


def save_sequence_model(spec: SequenceClassifierSpec, model: SequenceModel, directory: Path) -> list[str]:
    """The ``trader_save_model`` hook: the module's weights as safetensors."""
    if not isinstance(model, SequenceModel):
        raise ArtifactError(f"{spec.plugin}: cannot save a {type(model).__name__}, expected a trained SequenceModel")
    save_weights(model.module, Path(directory) / WEIGHTS_FILE, metadata={"plugin": spec.plugin, "class": spec.class_name})
    return [WEIGHTS_FILE]


def load_sequence_model(spec: SequenceClassifierSpec, directory: Path, manifest: Mapping[str, Any]) -> SequenceModel:
    """The ``trader_load_model`` hook: rebuild the network and check it fits the manifest and the features."""
    from trader.features import FeatureScaler, feature_names

    directory = Path(directory)
    arch = dict(manifest.get("architecture") or {})
    if arch.get("class") != spec.class_name:
        raise ArtifactError(f"{directory}: architecture {str(arch.get('class'))[:40]!r} is not {spec.plugin}'s {spec.class_name}")
    try:
        check_architecture(spec, arch)
    except ValueError as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest is refused: {exc}") from None
    names = list(manifest["features"]["names"])
    windows = manifest["features"].get("windows") or ()
    if not isinstance(windows, list) or len(windows) > MAX_WINDOWS:
        raise ArtifactError(f"{directory}: feature windows must be a list of at most {MAX_WINDOWS} windows")
    windows = tuple(windows)
    if arch.get("input_size") != len(names):
        raise ArtifactError(
            f"{directory}: the manifest lists {len(names)} features but the architecture takes {arch.get('input_size')} inputs"
        )
    try:
        expected_names = feature_names(windows)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory}: feature windows {list(windows)} are invalid: {exc}") from None
    if len(names) == len(expected_names) and names != expected_names:
        i = next(i for i, (a, b) in enumerate(zip(names, expected_names, strict=True)) if a != b)
        raise ArtifactError(
            f"{directory}: the model's feature {i} is {names[i]!r} where windows {list(windows)} give "
            f"{expected_names[i]!r} in this trader; retrain it (trader train --plugin {spec.plugin})"
        )
    if names != expected_names:
        raise ArtifactError(
            f"{directory}: the model was trained on {len(names)} features, but windows {list(windows)} give "
            f"{len(expected_names)} features in this trader; retrain it (trader train --plugin {spec.plugin})"
        )
    try:
        scaler = FeatureScaler.from_dict(manifest.get("scaler"))
    except ValueError as exc:
        raise ArtifactError(f"{directory}: scaler in the manifest: {exc}") from None
    if list(scaler.feature_names) != names:
        raise ArtifactError(f"{directory}: the scaler was fit on other features than the model's ({scaler.n_features} vs {len(names)})")
    length = arch.get("sequence_length")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ArtifactError(f"{directory}: architecture has no valid sequence_length")
    label = dict(manifest.get("label") or {})
    weights = label.get("class_weights") or [1.0] * int(arch.get("num_classes", 2))
    if len(weights) != arch.get("num_classes") or not all(isinstance(w, (int, float)) and w > 0 for w in weights):
        raise ArtifactError(f"{directory}: label.class_weights must give one positive weight per class")
    from trader.models.bounded import max_artifact_bytes

    try:
        shapes, size = _skeleton_shapes(spec, arch)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest cannot be built: {exc}") from None
    if size > max_artifact_bytes():
        raise ArtifactError(f"{directory}: architecture in the manifest needs {size} bytes of tensors, more than the "
                            f"{max_artifact_bytes()}-byte limit (TRADER_MAX_ARTIFACT_BYTES)")
    check_header(directory / WEIGHTS_FILE, shapes, feature_count_key=spec.input_weight)
    try:
        module = spec.build(arch)
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{directory}: architecture in the manifest cannot be built: {exc}") from None
    load_weights(module, directory / WEIGHTS_FILE, feature_count_key=spec.input_weight)
    data_settings = manifest.get("extra", {}).get("data_settings", {})
    return SequenceModel(
        module, feature_names=names, windows=windows, sequence_length=length, scaler=scaler, label=label,
        class_weights=weights, architecture=arch, max_fill_bars=int(data_settings.get("max_fill_bars", 5)),
    )


# ---------------------------------------------------------------------- signals


def _signal(p_up: float, thresholds: SignalThresholds) -> Signal:
    confidence = min(1.0, abs(2.0 * p_up - 1.0))
    if p_up >= thresholds.buy_threshold:
        size = thresholds.position_size * (confidence if thresholds.size_by_confidence else 1.0)
        return Signal(SignalAction.BUY, confidence=confidence, size=size, probability=p_up, reason=f"P(up)={p_up:.3f}")
    if p_up <= thresholds.sell_threshold:
        return Signal(SignalAction.SELL, confidence=confidence, size=1.0, probability=p_up, reason=f"P(up)={p_up:.3f}")
    return Signal(SignalAction.HOLD, confidence=confidence, size=0.0, probability=p_up, reason=f"P(up)={p_up:.3f}")


def _warmup_signal(length: int) -> Signal:
    return Signal.hold(f"warm-up: needs {length} rows of complete features")


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
    thresholds = SignalThresholds.from_params(request.params)
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
        return [_warmup_signal(length) if p_up is None else _signal(p_up, thresholds)]
    warmup = _warmup_signal(length)
    first = max(int(at.min()) - length + 1, 0)
    scaled = model.scale(model.feature_matrix(features, first, int(at.max()) + 1))
    from trader.features.windows import finite_rows, valid_window_ends

    local = at - first
    mask = np.isin(local, valid_window_ends(finite_rows(scaled), length))
    probs = model.predict_windows(scaled, local[mask]) if mask.any() else np.empty((0, 2))
    signals: list[Signal] = []
    it = iter(probs[:, model.up_class] if len(probs) else [])
    for ok in mask:
        signals.append(_signal(float(next(it)), thresholds) if ok else warmup)
    return signals


