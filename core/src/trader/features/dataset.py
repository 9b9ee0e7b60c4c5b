"""TimeSeriesDataset: (window x features) samples indexed out of one contiguous float32 array.

This module imports torch; ``trader.features`` exposes the class lazily so importing the package
never does. A sample is a view of rows ``t - W + 1 .. t`` (no copy); only batches are copied.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trader.features.windows import finite_rows, gather_windows, valid_window_ends, windows

__all__ = ["TimeSeriesDataset"]


class TimeSeriesDataset(Dataset):
    """Windows of *window* rows of *features* ending at the usable rows (see :mod:`.windows`).

    *features*: ``rows x features`` array or DataFrame (kept as ONE float32 array, copied only when it
    is not float32 and C-contiguous already); *labels*: one value per row, or None for unlabelled
    data; *ends*: the end rows to use (default: every usable window), each must be usable;
    *segments*: segment id per row, windows never span two. ``ds[i]`` is ``(x, y)`` with ``x`` a
    ``window x features`` tensor view, or ``x`` alone without labels.
    """

    def __init__(self, features: Any, labels: Any = None, window: int = 60, ends: Any = None,
                 segments: Any = None) -> None:
        values = features.to_numpy(dtype=np.float32) if hasattr(features, "to_numpy") else features
        self.features = np.ascontiguousarray(values, dtype=np.float32)
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D (rows x features), got shape {self.features.shape}")
        self.window = int(window)
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {window!r}")
        self.labels = None if labels is None else np.ascontiguousarray(np.asarray(labels), dtype=np.float32)
        if self.labels is not None and self.labels.shape != (len(self.features),):
            raise ValueError(f"labels must be one value per row ({len(self.features)}), got {self.labels.shape}")
        usable = valid_window_ends(finite_rows(self.features), self.window, segments, self.labels)
        if ends is None:
            self.ends = usable
        else:
            self.ends = np.asarray(ends, dtype=np.int64)
            bad = ~np.isin(self.ends, usable)
            if bad.any():
                raise ValueError(f"{int(bad.sum())} requested window(s) are not usable (warm-up or NaN rows, "
                                 f"unknown label, or a gap inside); first ends at row {int(self.ends[bad][0])}")
        self._x = torch.from_numpy(self.features)
        self._y = None if self.labels is None else torch.from_numpy(self.labels)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, index: int) -> Any:
        end = int(self.ends[index])
        x = self._x[end - self.window + 1:end + 1]
        return x if self._y is None else (x, self._y[end])

    @property
    def n_features(self) -> int:
        return self.features.shape[1]

    def window_view(self) -> np.ndarray:
        """All windows as a read-only numpy view ``(rows - W + 1, W, F)`` (no copy)."""
        return windows(self.features, self.window)

    def loader(self, batch_size: int = 256, shuffle: bool = False, seed: int | None = None,
               **kwargs: Any) -> DataLoader:
        """A DataLoader: random order for training (``shuffle=True``, seeded), sequential for evaluation."""
        generator = None
        if seed is not None:
            generator = torch.Generator()
            generator.manual_seed(seed)
        return DataLoader(self, batch_size=batch_size, shuffle=shuffle, generator=generator, **kwargs)

    def batches(self, batch_size: int = 256, shuffle: bool = False, seed: int | None = None) -> Iterator[Any]:
        """Fast path: yield ``(x, y)`` batches (``B x W x F`` tensors) gathered by one fancy index each."""
        order = np.arange(len(self.ends))
        if shuffle:
            np.random.default_rng(seed).shuffle(order)
        for start in range(0, len(order), batch_size):
            ends = self.ends[order[start:start + batch_size]]
            x = torch.from_numpy(gather_windows(self.features, ends, self.window))
            yield x if self._y is None else (x, self._y[torch.from_numpy(ends)])
