"""Chronological train/validation/test splits, purged at each boundary, and train-only scaling.

Rows are never shuffled across time: train comes first, then validation, then test. The label of
row ``t`` reads the close of row ``t + horizon``, so the last ``horizon`` rows before each
boundary are purged (their labels would look into the next part); ``embargo`` more rows are
dropped after each boundary. The scaler is fit on the training part only. A sample's window may
reach back over a boundary: those rows are past features, never labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import field, frozen

from trader.errors import DataError
from trader.features.labels import TARGET_COLUMN
from trader.features.scaler import SCALER_KINDS, FeatureScaler
from trader.features.windows import finite_rows, gather_windows, valid_window_ends
from trader.validators import integer, number

if TYPE_CHECKING:
    import pandas as pd

    from trader.features.dataset import TimeSeriesDataset

__all__ = ["DataSplit", "DataPreprocessor", "PreparedData", "PARTS"]

PARTS = ("train", "val", "test")


def _optional_ms(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise ValueError(f"{attribute.name} must be a timestamp in UTC milliseconds or None, got {value!r}")


@frozen
class DataSplit:
    """Row ranges of the three parts of ``n_rows`` rows, with the purge and embargo applied."""

    n_rows: int = field(validator=integer(numpy=True, low=0))
    val_start: int = field(validator=integer(numpy=True, low=0))
    test_start: int = field(validator=integer(numpy=True, low=0))
    purge: int = field(default=1, validator=integer(numpy=True, low=0))
    embargo: int = field(default=0, validator=integer(numpy=True, low=0))

    def __attrs_post_init__(self) -> None:
        if not self.val_start <= self.test_start <= self.n_rows:
            raise ValueError(f"split boundaries must satisfy val_start <= test_start <= n_rows, got "
                             f"{self.val_start}, {self.test_start}, {self.n_rows}")

    def bounds(self, part: str) -> tuple[int, int]:
        """``(start, stop)`` rows whose labels belong to *part* ("train", "val" or "test")."""
        if part == "train":
            return 0, max(0, self.val_start - self.purge)
        if part == "val":
            return min(self.val_start + self.embargo, self.test_start), max(self.val_start, self.test_start - self.purge)
        if part == "test":
            return min(self.test_start + self.embargo, self.n_rows), self.n_rows
        raise ValueError(f"part must be one of {', '.join(PARTS)}; got {part!r}")

    def rows(self, part: str) -> np.ndarray:
        start, stop = self.bounds(part)
        return np.arange(start, max(start, stop), dtype=np.int64)

    @property
    def train(self) -> np.ndarray:
        return self.rows("train")

    @property
    def val(self) -> np.ndarray:
        return self.rows("val")

    @property
    def test(self) -> np.ndarray:
        return self.rows("test")

    def as_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "val_start": self.val_start, "test_start": self.test_start,
                "purge": self.purge, "embargo": self.embargo,
                **{f"{part}_rows": list(self.bounds(part)) for part in PARTS}}


@frozen(eq=False)
class PreparedData:
    """Scaled float32 features (one contiguous ``rows x features`` array), labels and the split.

    ``ends[part]`` are the end rows of the usable windows of each part (see :mod:`.windows`).
    """

    values: np.ndarray
    labels: np.ndarray | None
    feature_names: tuple[str, ...]
    scaler: FeatureScaler
    split: DataSplit
    window: int
    ends: dict[str, np.ndarray]

    def n_samples(self, part: str) -> int:
        return len(self.ends[part])

    def arrays(self, part: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(X, y)`` copies for *part*: ``X`` is ``samples x features`` for window 1, else ``samples x W x F``."""
        ends = self.ends[part]
        x = self.values[ends] if self.window == 1 else gather_windows(self.values, ends, self.window)
        y = None if self.labels is None else self.labels[ends]
        return x, y

    def dataset(self, part: str) -> TimeSeriesDataset:
        """A torch Dataset of *part*'s windows, sharing memory with :attr:`values`."""
        from trader.features.dataset import TimeSeriesDataset

        return TimeSeriesDataset(self.values, self.labels, window=self.window, ends=self.ends[part])


@frozen
class DataPreprocessor:
    """Chronological split + train-only scaler + window bookkeeping.

    Boundaries come from ``val_start`` / ``test_start`` (UTC ms; both or neither) when given, else
    from ``train_fraction`` and ``val_fraction`` of the rows (test gets the rest).
    """

    train_fraction: float = field(default=0.7, validator=number(0, 1, high_open=True))
    val_fraction: float = field(default=0.15, validator=number(0, 1, high_open=True))
    val_start: int | None = field(default=None, validator=_optional_ms)
    test_start: int | None = field(default=None, validator=_optional_ms)
    horizon: int = field(default=1, validator=integer(numpy=True, low=0))
    embargo: int = field(default=0, validator=integer(numpy=True, low=0))
    scaler_kind: str = field(default="zscore")
    clip: float | None = None
    window: int = field(default=1, validator=integer(numpy=True, low=1))

    def __attrs_post_init__(self) -> None:
        if self.scaler_kind not in SCALER_KINDS:
            raise ValueError(f"scaler_kind must be one of {', '.join(SCALER_KINDS)}; got {self.scaler_kind!r}")
        FeatureScaler(self.scaler_kind, self.clip)
        if self.train_fraction + self.val_fraction > 1.0:
            raise ValueError("train_fraction + val_fraction must be <= 1")
        if (self.val_start is None) != (self.test_start is None):
            raise ValueError("give both val_start and test_start, or neither")
        if self.val_start is not None and self.test_start is not None and self.val_start > self.test_start:
            raise ValueError("val_start must not be after test_start")

    def split(self, n_rows: int, timestamps: np.ndarray | None = None) -> DataSplit:
        """The boundaries for *n_rows* rows (timestamps needed when splitting by time)."""
        if self.val_start is not None and self.test_start is not None:  # both or neither (checked above)
            if timestamps is None:
                raise DataError("splitting by time needs the candle timestamps")
            ts = np.asarray(timestamps, dtype=np.int64)
            if len(ts) != n_rows:
                raise DataError(f"{len(ts)} timestamps for {n_rows} feature rows")
            val_start = int(np.searchsorted(ts, self.val_start, side="left"))
            test_start = int(np.searchsorted(ts, self.test_start, side="left"))
        else:
            val_start = int(n_rows * self.train_fraction)
            test_start = int(n_rows * (self.train_fraction + self.val_fraction))
        return DataSplit(n_rows=n_rows, val_start=val_start, test_start=test_start, purge=self.horizon,
                         embargo=self.embargo)

    def fit_scaler(self, features: pd.DataFrame, split: DataSplit) -> FeatureScaler:
        """A scaler fit on the training rows of *features* only."""
        start, stop = split.bounds("train")
        return FeatureScaler(self.scaler_kind, self.clip).fit(features.iloc[start:stop])

    def prepare(self, features: pd.DataFrame, labels: Any = None, *, timestamps: np.ndarray | None = None,
                segments: np.ndarray | None = None) -> PreparedData:
        """Split, fit the scaler on train, scale everything to one float32 array, list usable windows.

        A ``target`` column in *features* is used as the labels when *labels* is not given.
        """
        if TARGET_COLUMN in features.columns:
            if labels is None:
                labels = features[TARGET_COLUMN]
            features = features.drop(columns=[TARGET_COLUMN])
        n = len(features)
        label_values = None
        if labels is not None:
            label_values = np.asarray(labels, dtype=np.float32)
            if label_values.shape != (n,):
                raise DataError(f"labels must be one value per feature row ({n}), got shape {label_values.shape}")
        split = self.split(n, timestamps)
        scaler = self.fit_scaler(features, split)
        values = scaler.transform_array(features.to_numpy(dtype=np.float64), dtype=np.float32)
        usable = valid_window_ends(finite_rows(values), self.window, segments, label_values)
        ends = {}
        for part in PARTS:
            start, stop = split.bounds(part)
            ends[part] = usable[(usable >= start) & (usable < stop)]
        return PreparedData(values=values, labels=label_values, feature_names=tuple(features.columns),
                            scaler=scaler, split=split, window=self.window, ends=ends)
