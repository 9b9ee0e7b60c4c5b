"""FeatureScaler: per-feature centring and scaling, fit on training rows, stored as JSON with the names.

The scaler remembers the ordered feature names it was fit on and refuses any frame whose columns
differ, so a model can never be fed features in another order. It is data (JSON), never code.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.errors import ArtifactError, DataError, ModelError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FeatureScaler", "SCALER_KINDS", "SCALER_FORMAT"]

SCALER_KINDS = ("zscore", "robust")
SCALER_FORMAT = "trader-feature-scaler"
_VERSION = 1
_CHUNK_ROWS = 65_536
_MIN_SCALE = 10 * float(np.finfo(np.float64).eps)


def _check_kind(kind: Any) -> str:
    if kind not in SCALER_KINDS:
        raise ValueError(f"scaler kind must be one of {', '.join(SCALER_KINDS)}; got {kind!r}")
    return kind


def _check_clip(clip: Any) -> float | None:
    if clip is None:
        return None
    if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not math.isfinite(clip) or clip <= 0:
        raise ValueError(f"clip must be a finite number > 0 or None, got {clip!r}")
    return float(clip)


class FeatureScaler:
    """``(x - center) / scale`` per feature; ``zscore`` (mean, std) or ``robust`` (median, IQR).

    A feature whose scale is 0 on the training rows (constant), or under 10 machine epsilons,
    gets scale 1. ``clip`` bounds the scaled values to ``[-clip, clip]``.
    """

    def __init__(self, kind: str = "zscore", clip: float | None = None) -> None:
        self.kind = _check_kind(kind)
        self.clip = _check_clip(clip)
        self.feature_names: tuple[str, ...] | None = None
        self.center: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.n_samples = 0

    def __repr__(self) -> str:
        state = f"{self.n_features} features, {self.n_samples} rows" if self.is_fitted else "not fitted"
        return f"FeatureScaler(kind={self.kind!r}, clip={self.clip!r}, {state})"

    @property
    def is_fitted(self) -> bool:
        return self.center is not None

    @property
    def n_features(self) -> int:
        return 0 if self.feature_names is None else len(self.feature_names)

    # ------------------------------------------------------------------ fitting

    def fit(self, features: pd.DataFrame | np.ndarray, feature_names: list[str] | None = None) -> FeatureScaler:
        """Fit on *features* (training rows only); rows with any NaN (warm-up) are ignored.

        The one fit of the project: the deep-learning pipeline, the preprocessing pipeline and the
        ensemble all come here. A z-score is summed in float64 chunk by chunk (two passes), so a
        float32 array of a million rows is fit without a float64 copy of it.
        """
        values, names = _values_and_names(features, feature_names)
        if self.kind == "zscore":
            center, scale, count = _chunked_mean_std(values)
        else:  # percentiles need every row at once
            rows = values[_finite_rows(values)].astype(np.float64, copy=False)
            count = len(rows)
            if count:
                q25, center, q75 = np.percentile(rows, [25.0, 50.0, 75.0], axis=0)
                scale = q75 - q25
        if count == 0:
            raise DataError("cannot fit the feature scaler: no training row has every feature finite")
        # a (near-)constant feature: a scale under 10 machine epsilons would blow values up to inf
        scale = np.where(np.isfinite(scale) & (scale >= _MIN_SCALE), scale, 1.0)
        self.feature_names = tuple(names)
        self.center = np.asarray(center, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.n_samples = int(count)
        return self

    # ------------------------------------------------------------------ transforming

    def _require_fitted(self) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
        """The fitted ``(feature_names, center, scale)``; ModelError when not fitted."""
        if self.feature_names is None or self.center is None or self.scale is None:
            raise ModelError("the feature scaler is not fitted: call fit() on the training rows first")
        return self.feature_names, self.center, self.scale

    def check_names(self, names: list[str] | tuple[str, ...]) -> None:
        """Raise a one-line DataError unless *names* are exactly the fitted names, in order."""
        expected, _, _ = self._require_fitted()
        names = tuple(str(n) for n in names)
        if names == expected:
            return
        missing = [n for n in expected if n not in names]
        extra = [n for n in names if n not in expected]
        if missing or extra:
            detail = "; ".join(part for part in (
                f"missing {', '.join(missing[:5])}" if missing else "",
                f"unexpected {', '.join(extra[:5])}" if extra else "") if part)
        else:
            i = next(i for i, (a, b) in enumerate(zip(names, expected, strict=True)) if a != b)
            detail = f"column {i} is {names[i]!r} where {expected[i]!r} is expected (same names, other order)"
        raise DataError(f"features do not match the scaler's {len(expected)} fitted features: {detail}")

    def transform(self, features: pd.DataFrame) -> pd.DataFrame:
        """Scaled copy of feature frame *features* (same index and columns, float64)."""
        import pandas as pd

        if not isinstance(features, pd.DataFrame):
            raise TypeError("transform() takes a feature DataFrame; use transform_array() for arrays")
        self.check_names(list(features.columns))
        values = self.transform_array(features.to_numpy(dtype=np.float64), dtype=np.float64)
        return pd.DataFrame(values, index=features.index, columns=list(self._require_fitted()[0]), copy=False)

    def transform_array(self, values: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
        """Scale an array whose last axis is the fitted features, in order (NaN stays NaN)."""
        _, center, scale = self._require_fitted()
        values = np.asarray(values)
        if values.ndim == 0 or values.shape[-1] != self.n_features:
            raise DataError(f"expected {self.n_features} features on the last axis, got shape {values.shape}")
        out = np.empty(values.shape, dtype=dtype)
        flat_in = values.reshape(-1, self.n_features)
        flat_out = out.reshape(-1, self.n_features)
        for start in range(0, len(flat_in), _CHUNK_ROWS):
            chunk = (flat_in[start:start + _CHUNK_ROWS] - center) / scale
            if self.clip is not None:
                np.clip(chunk, -self.clip, self.clip, out=chunk)
            flat_out[start:start + _CHUNK_ROWS] = chunk
        return out

    def scale_in_place(self, values: np.ndarray) -> np.ndarray:
        """Scale a float32 ``(rows, features)`` array in place, chunk by chunk, in float32 arithmetic
        (centre and scale rounded to float32 first, as a :class:`~trader.ml.SequenceModel` reads them)."""
        _, center64, scale64 = self._require_fitted()
        center = np.asarray(center64, dtype=np.float32)
        scale = np.asarray(scale64, dtype=np.float32)
        for start in range(0, len(values), _CHUNK_ROWS):
            chunk = values[start:start + _CHUNK_ROWS]
            chunk -= center
            chunk /= scale
            if self.clip is not None:
                np.clip(chunk, -self.clip, self.clip, out=chunk)
        return values

    # ------------------------------------------------------------------ storage

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe state, including the ordered feature names (``from_dict`` reverses it)."""
        names, center, scale = self._require_fitted()
        return {
            "format": SCALER_FORMAT,
            "version": _VERSION,
            "kind": self.kind,
            "clip": self.clip,
            "n_samples": self.n_samples,
            "feature_names": list(names),
            "center": [float(x) for x in center],
            "scale": [float(x) for x in scale],
        }

    @classmethod
    def from_dict(cls, data: Any) -> FeatureScaler:
        """Rebuild a fitted scaler; ValueError naming the problem for anything malformed."""
        if not isinstance(data, dict) or data.get("format") != SCALER_FORMAT:
            raise ValueError(f"not a feature scaler (expected format {SCALER_FORMAT!r})")
        if data.get("version") != _VERSION:
            raise ValueError(f"feature scaler version {data.get('version')!r} is not supported")
        names = data.get("feature_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise ValueError("feature scaler: feature_names must be a non-empty list of strings")
        if len(set(names)) != len(names):
            raise ValueError("feature scaler: feature_names has duplicates")
        arrays = {}
        for key in ("center", "scale"):
            raw = data.get(key)
            if not isinstance(raw, list) or len(raw) != len(names):
                raise ValueError(f"feature scaler: {key} must list one number per feature ({len(names)})")
            if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in raw):
                raise ValueError(f"feature scaler: {key} must hold finite numbers")
            arrays[key] = np.asarray(raw, dtype=np.float64)
        if (arrays["scale"] <= 0).any():
            raise ValueError("feature scaler: every scale must be > 0")
        n_samples = data.get("n_samples", 0)
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 0:
            raise ValueError("feature scaler: n_samples must be a non-negative integer")
        scaler = cls(kind=_check_kind(data.get("kind")), clip=data.get("clip"))
        scaler.feature_names = tuple(names)
        scaler.center = arrays["center"]
        scaler.scale = arrays["scale"]
        scaler.n_samples = n_samples
        return scaler

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON file atomically (temporary file, then rename)."""
        path = Path(path)
        text = json.dumps(self.to_dict(), indent=1)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FeatureScaler:
        """Read a file written by :meth:`save`; ArtifactError naming the file when it is unusable."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"feature scaler file {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"feature scaler file {path} is unreadable: {exc}") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ArtifactError(f"feature scaler file {path}: {exc}") from None


def _values_and_names(features: Any, feature_names: list[str] | None) -> tuple[np.ndarray, list[str]]:
    """The rows as a 2-D float array (a float32 array is kept as it is, not copied) and the names."""
    if hasattr(features, "columns") and hasattr(features, "to_numpy"):
        names = [str(c) for c in features.columns]
        if feature_names is not None and list(feature_names) != names:
            raise DataError("feature_names differ from the frame's columns")
        return features.to_numpy(dtype=np.float64), names
    values = np.asarray(features)
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float64)
    if values.ndim != 2:
        raise DataError(f"features must be a 2-D array (rows x features), got shape {values.shape}")
    if feature_names is None or len(feature_names) != values.shape[1]:
        raise DataError("fitting an array needs feature_names, one per column")
    return values, [str(n) for n in feature_names]


def _complete_chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    """The rows with every feature finite, in float64 chunks of at most ``_CHUNK_ROWS`` rows."""
    for start in range(0, len(values), _CHUNK_ROWS):
        chunk = values[start:start + _CHUNK_ROWS]
        yield chunk[np.isfinite(chunk).all(axis=1)].astype(np.float64, copy=False)


def _chunked_mean_std(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and population standard deviation of the complete rows (two passes of float64 sums)."""
    total, count = np.zeros(values.shape[1]), 0
    for chunk in _complete_chunks(values):
        total += chunk.sum(axis=0)
        count += len(chunk)
    if count == 0:
        return total, total, 0
    mean = total / count
    squares = np.zeros(values.shape[1])
    for chunk in _complete_chunks(values):
        squares += ((chunk - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squares / count), count


def _finite_rows(values: np.ndarray) -> np.ndarray:
    ok = np.empty(len(values), dtype=bool)
    for start in range(0, len(values), _CHUNK_ROWS):
        ok[start:start + _CHUNK_ROWS] = np.isfinite(values[start:start + _CHUNK_ROWS]).all(axis=1)
    return ok
