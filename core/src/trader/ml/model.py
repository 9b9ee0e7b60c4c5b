"""SequenceModel: a trained network with its feature order, scaler, window length and classes."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from trader.errors import DataError
from trader.ml.batches import WindowBatches
from trader.ml.inference import INFERENCE_BATCH_SIZE, predict_proba, predict_window
from trader.ml.seeding import torch_threads

__all__ = ["SequenceModel"]


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

    def predict_windows(self, scaled: np.ndarray, ends: np.ndarray, *, batch_size: int = INFERENCE_BATCH_SIZE,
                        threads: int | None = None) -> np.ndarray:
        """Calibrated probabilities for the windows ending at ``ends`` of a scaled ``(N, F)`` array
        (``threads`` batches side by side, see :func:`~trader.ml.inference.predict_proba`)."""
        if len(ends) == 0:
            return np.empty((0, len(self.class_weights)))
        windows = WindowBatches(scaled, ends, self.sequence_length)
        return self.calibrate(predict_proba(self.module, windows, batch_size=batch_size, threads=threads).astype(np.float64))

    def predict_window(self, scaled_window: np.ndarray, *, threads: int | None = 1) -> np.ndarray:
        """Calibrated probabilities for one scaled ``(sequence_length, F)`` window (one thread by default:
        a single window is too small to share, and spare threads only wait on a busy machine)."""
        return self.calibrate(predict_window(self.module, scaled_window, threads=threads).astype(np.float64))
