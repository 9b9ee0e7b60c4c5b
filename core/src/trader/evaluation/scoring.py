"""A stored model's probabilities scored against its own labels, beside the majority baseline of its TRAINING labels.

``trader backtest`` and ``trader compare`` both call :func:`score_model`, so they print the
same figures for the same rows. The baseline's majority class and class frequencies come
from the labels the model was trained on, never from the labels being scored (which would
hand the baseline a look at the answers):

1. the manifest's ``label.train_class_counts`` (recorded by every trainable strategy the
   project ships);
2. else the labels of the candles the manifest's ``extra.split.train`` window ends point at,
   recomputed with the model's label definition, when those candles are at hand;
3. else no baseline: its metrics are ``None`` and ``baseline_source`` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["training_labels", "score_model"]

NO_TRAINING_LABELS = "none: the manifest records no training class counts and its training candles are not at hand"


def training_labels(manifest: Mapping[str, Any], definition: Any, candles: pd.DataFrame,
                    timeframe: str) -> tuple[np.ndarray | None, str]:
    """The model's training labels and where they came from (see the module docstring)."""
    from trader.evaluation.classification import labels_from_counts

    label = manifest.get("label") or {}
    counts = label.get("train_class_counts") if isinstance(label, Mapping) else None
    labels = labels_from_counts(counts)
    if labels is not None:
        return labels, "the model's training labels (manifest train_class_counts)"
    extra = manifest.get("extra")
    split = extra.get("split") if isinstance(extra, Mapping) else None
    train = split.get("train") if isinstance(split, Mapping) else None
    first, last = (train.get("first_end"), train.get("last_end")) if isinstance(train, Mapping) else (None, None)
    if isinstance(first, int) and isinstance(last, int):
        ts = candles["timestamp"].to_numpy(dtype=np.int64)
        if ts.size and ts[0] <= first and ts[-1] >= last:
            values = definition.compute(candles, timeframe).to_numpy(dtype=np.float64)
            inside = values[(ts >= first) & (ts <= last)]
            inside = inside[np.isfinite(inside)]
            if inside.size:
                return inside.astype(np.int64), "the model's training labels (recomputed from its training candles)"
    return None, NO_TRAINING_LABELS


def score_model(manifest: Mapping[str, Any], candles: pd.DataFrame, rows: np.ndarray, probabilities: np.ndarray,
                timeframe: str) -> dict[str, Any] | None:
    """Classification metrics of ``probabilities`` (P(up), one per entry of ``rows``) on the labels the
    model's manifest defines, beside the majority baseline of its training labels.

    ``candles`` must end where the evaluation may look (labels past its end are NaN and left out).
    ``None`` when the model has no binary label definition or fewer than two rows can be scored.
    """
    from trader.evaluation.classification import classification_metrics, evaluate_classifier
    from trader.features import LabelDefinition

    label = manifest.get("label") or {}
    if not isinstance(label, Mapping) or not label:
        return None
    try:
        definition = LabelDefinition.from_dict(dict(label))
    except (TypeError, ValueError):
        return None
    if definition.kind != "binary":
        return None  # P(up) alone does not score three classes
    labels = definition.compute(candles, timeframe).to_numpy(dtype=np.float64)[np.asarray(rows, dtype=np.int64)]
    probabilities = np.asarray(probabilities, dtype=np.float64)
    keep = np.isfinite(labels) & np.isfinite(probabilities)
    if keep.sum() < 2:
        return None
    y = labels[keep].astype(np.int64)
    train, source = training_labels(manifest, definition, candles, timeframe)
    if train is not None and train.size and int(train.max()) > 1:
        train, source = None, "none: the recorded training class counts are not binary"
    if train is not None:
        out = evaluate_classifier(y, probabilities[keep], train_labels=train).to_dict()
    else:
        counts = np.bincount(y, minlength=2)
        model = classification_metrics(y, probabilities[keep])
        out = {
            "model": {k: (float(v) if np.isfinite(v) else None) for k, v in model.items()},
            "baseline": {k: None for k in model},
            "n_samples": int(y.size),
            "class_counts": {str(c): int(n) for c, n in enumerate(counts)},
            "majority_class": None,
        }
    out["label"] = definition.as_dict()
    out["baseline_source"] = source
    return out
