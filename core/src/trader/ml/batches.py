"""Mini-batches of windows gathered from one contiguous feature array (never an N x W x F copy)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["WindowBatches"]


class WindowBatches:
    """The windows of ``length`` rows ending at each row of ``ends``.

    ``features`` is an ``(N, F)`` float32 array shared without a copy; a batch is
    gathered with one indexing operation into a fresh ``(B, length, F)`` tensor, so
    memory stays at the size of the feature array plus one batch. ``labels`` (length
    ``N``) gives the target of the window ending at each row.
    """

    def __init__(self, features: Any, ends: Any, length: int, labels: Any = None) -> None:
        feats = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32) if not torch.is_tensor(features) else features)
        if feats.ndim != 2:
            raise ValueError(f"features must be (rows, features), got shape {tuple(feats.shape)}")
        if feats.dtype != torch.float32:
            feats = feats.float()
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"window length must be a positive integer, got {length!r}")
        ends_t = torch.as_tensor(np.asarray(ends, dtype=np.int64))
        if ends_t.ndim != 1:
            raise ValueError("ends must be one-dimensional")
        if ends_t.numel() and (int(ends_t.min()) < length - 1 or int(ends_t.max()) >= feats.shape[0]):
            raise ValueError(f"every window end must lie in [{length - 1}, {feats.shape[0] - 1}]")
        self.features = feats
        self.ends = ends_t
        self.length = length
        self.offsets = torch.arange(-length + 1, 1, dtype=torch.int64)
        self.labels = None if labels is None else torch.as_tensor(np.asarray(labels, dtype=np.int64))
        if self.labels is not None and self.labels.shape[0] != feats.shape[0]:
            raise ValueError("labels must have one entry per feature row")

    @classmethod
    def from_dataset(cls, dataset: Any) -> WindowBatches:
        """The windows of a :class:`trader.features.TimeSeriesDataset` (sharing its feature array)."""
        if isinstance(dataset, cls):
            return dataset
        labels = None
        if getattr(dataset, "labels", None) is not None:
            raw = np.asarray(dataset.labels, dtype=np.float64)
            labels = np.where(np.isfinite(raw), raw, -1).astype(np.int64)
        return cls(dataset.features, dataset.ends, int(dataset.window), labels)

    def __len__(self) -> int:
        return int(self.ends.numel())

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def end_labels(self) -> torch.Tensor:
        """The label of every window, in order."""
        if self.labels is None:
            raise ValueError("these windows have no labels")
        return self.labels[self.ends]

    def gather(self, positions: torch.Tensor) -> torch.Tensor:
        """Windows number ``positions`` as one ``(B, length, F)`` tensor."""
        rows = self.ends[positions].unsqueeze(1) + self.offsets
        return self.features[rows]

    def iter_batches(
        self,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        limit: int | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
        """``(x, y)`` batches; shuffled with ``generator`` for training, in order for evaluation.

        ``limit`` caps the number of windows per pass (a random subset when shuffled).
        """
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        if limit is not None:
            order = order[:limit]
        for start in range(0, order.numel(), batch_size):
            positions = order[start : start + batch_size]
            x = self.gather(positions)
            y = None if self.labels is None else self.labels[self.ends[positions]]
            yield x, y
