"""Classification metrics for model probabilities, each beside the majority-class baseline.

Metrics: accuracy, balanced accuracy, macro-F1, ROC-AUC and log-loss, computed
in numpy (they agree with scikit-learn's definitions, which the tests check).
The baseline predicts the majority class of the training labels (or of the
evaluated labels when none are given) with the class frequencies as its
probabilities: a model that does not beat it has learnt nothing useful. Its score
is the same for every sample, so it ranks nothing: its ROC-AUC is 0.5 by
definition (NaN, like any AUC, when the evaluated labels hold one class only).

``proba`` is either a 1-D array of P(class 1) for binary labels, or an
``(n, k)`` array of class probabilities for labels ``0..k-1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

__all__ = [
    "METRIC_NAMES",
    "HIGHER_IS_BETTER",
    "ClassificationReport",
    "PermutationResult",
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "roc_auc",
    "log_loss",
    "classification_metrics",
    "majority_class",
    "majority_baseline",
    "prior_baseline",
    "labels_from_counts",
    "evaluate_classifier",
    "permutation_test",
]

METRIC_NAMES = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")
HIGHER_IS_BETTER = {"accuracy": True, "balanced_accuracy": True, "macro_f1": True, "roc_auc": True, "log_loss": False}
_EPS = float(np.finfo(np.float64).eps)  # as scikit-learn clips


# ---------------------------------------------------------------------- inputs


def _labels(y_true: Any) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer)):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise ValueError("labels must be integers 0..k-1")
    y = y.astype(np.int64)
    if y.size and y.min() < 0:
        raise ValueError("labels must be integers 0..k-1")
    return y


def _proba_matrix(proba: Any, n: int) -> np.ndarray:
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.ndim != 2 or p.shape[0] != n:
        raise ValueError(f"probabilities must have shape ({n},) or ({n}, k), got {np.asarray(proba).shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probabilities must be finite")
    return p


def _prepare(y_true: Any, proba: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    p = _proba_matrix(proba, len(y))
    if y.size and y.max() >= p.shape[1]:
        raise ValueError(f"label {int(y.max())} has no probability column (k={p.shape[1]})")
    if y.size == 0:
        raise ValueError("no samples to evaluate")
    return y, p


# ---------------------------------------------------------------------- metrics


def accuracy(y_true: Any, y_pred: Any) -> float:
    y, pred = _labels(y_true), _labels(y_pred)
    return float(np.mean(y == pred)) if y.size else math.nan


def balanced_accuracy(y_true: Any, y_pred: Any) -> float:
    """Mean recall over the classes present in ``y_true``."""
    y, pred = _labels(y_true), _labels(y_pred)
    recalls = [np.mean(pred[y == c] == c) for c in np.unique(y)]
    return float(np.mean(recalls)) if recalls else math.nan


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean F1 over the classes present in ``y_true`` or ``y_pred`` (0 where undefined)."""
    y, pred = _labels(y_true), _labels(y_pred)
    scores = []
    for c in np.union1d(np.unique(y), np.unique(pred)):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores)) if scores else math.nan


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(score.size, dtype=np.float64)
    # average ranks of ties (Mann-Whitney U)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_auc(y_true: Any, proba: Any) -> float:
    """Binary ROC-AUC, or one-vs-rest macro ROC-AUC for k > 2; NaN when only one class occurs."""
    y, p = _prepare(y_true, proba)
    if p.shape[1] == 2:
        return _binary_auc(y == 1, p[:, 1])
    present = np.unique(y)
    if present.size < 2:
        return math.nan
    return float(np.mean([_binary_auc(y == c, p[:, c]) for c in present]))


def log_loss(y_true: Any, proba: Any) -> float:
    """Mean negative log-likelihood of the true class (probabilities renormalised, clipped at machine epsilon)."""
    y, p = _prepare(y_true, proba)
    totals = p.sum(axis=1, keepdims=True)
    p = p / np.where(totals > 0, totals, 1.0)
    return float(-np.mean(np.log(np.clip(p[np.arange(y.size), y], _EPS, 1.0))))


def classification_metrics(y_true: Any, proba: Any) -> dict[str, float]:
    """All five metrics for probabilities ``proba``; the prediction is the most probable class."""
    y, p = _prepare(y_true, proba)
    pred = np.argmax(p, axis=1)
    return {
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "macro_f1": macro_f1(y, pred),
        "roc_auc": roc_auc(y, p),
        "log_loss": log_loss(y, p),
    }


# ---------------------------------------------------------------------- baseline


def majority_class(labels: Any) -> int:
    """The most frequent label (the smallest one on a tie)."""
    y = _labels(labels)
    if y.size == 0:
        raise ValueError("no labels to take the majority of")
    return int(np.argmax(np.bincount(y)))


def _prior(labels: np.ndarray, k: int) -> np.ndarray:
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    return counts / counts.sum()


def labels_from_counts(counts: Any) -> np.ndarray | None:
    """Labels ``0..k-1`` repeated by their ``counts`` (a manifest's ``train_class_counts``);
    ``None`` unless the counts are non-negative integers with a positive sum."""
    if not isinstance(counts, (list, tuple)) or len(counts) < 2:
        return None
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) or sum(counts) == 0:
        return None
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def prior_baseline(y_true: Any, prior: Any) -> dict[str, float]:
    """Metrics of predicting, for each sample, the most frequent class of ``prior`` with ``prior`` as
    the probabilities: one row of class frequencies for every sample, or a ``(k,)`` vector for all.

    ROC-AUC is 0.5 whenever it is defined: a score that is constant (or constant within each
    stretch of rows, as when each walk-forward fold has its own prior) carries no ranking, and
    pooling folds must not make the prior look like one.
    """
    y = _labels(y_true)
    p = np.asarray(prior, dtype=np.float64)
    if p.ndim == 1:
        p = np.tile(p, (y.size, 1))
    y, p = _prepare(y, p)
    pred = np.argmax(p, axis=1)
    return {
        "accuracy": accuracy(y, pred),
        "balanced_accuracy": balanced_accuracy(y, pred),
        "macro_f1": macro_f1(y, pred),
        "roc_auc": 0.5 if np.unique(y).size >= 2 else math.nan,
        "log_loss": log_loss(y, p),
    }


def majority_baseline(y_true: Any, *, train_labels: Any = None, n_classes: int | None = None) -> dict[str, float]:
    """Metrics of always predicting the majority class, with the class frequencies as probabilities.

    Majority and frequencies come from ``train_labels`` when given (an honest
    baseline knows only the training data), else from ``y_true``.
    """
    y = _labels(y_true)
    reference = _labels(train_labels) if train_labels is not None else y
    k = max(n_classes or 2, int(y.max()) + 1 if y.size else 0, int(reference.max()) + 1 if reference.size else 0)
    return prior_baseline(y, _prior(reference, k))


# ---------------------------------------------------------------------- report


def _clean(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@attrs.frozen
class ClassificationReport:
    """A model's metrics beside the majority-class baseline on the same samples."""

    model: Mapping[str, float]
    baseline: Mapping[str, float]
    n_samples: int
    class_counts: Mapping[int, int]
    majority_class: int

    def lift(self, metric: str) -> float:
        """How much better than the baseline (positive is better, for every metric)."""
        diff = self.model[metric] - self.baseline[metric]
        return diff if HIGHER_IS_BETTER[metric] else -diff

    def beats_baseline(self, metric: str = "balanced_accuracy", margin: float = 0.0) -> bool:
        return self.lift(metric) > margin

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN (e.g. ROC-AUC with one class) becomes ``None``."""
        return {
            "model": {k: _clean(v) for k, v in self.model.items()},
            "baseline": {k: _clean(v) for k, v in self.baseline.items()},
            "n_samples": self.n_samples,
            "class_counts": {str(k): v for k, v in self.class_counts.items()},
            "majority_class": self.majority_class,
        }

    def table(self) -> str:
        """A small text table: metric, model, baseline."""
        lines = [f"{'metric':<18} {'model':>8} {'majority':>9}"]
        for name in METRIC_NAMES:
            lines.append(f"{name:<18} {self.model[name]:>8.4f} {self.baseline[name]:>9.4f}")
        return "\n".join(lines)


def evaluate_classifier(y_true: Any, proba: Any, *, train_labels: Any = None) -> ClassificationReport:
    """Metrics of ``proba`` on ``y_true`` beside the majority baseline (see :func:`majority_baseline`)."""
    y, p = _prepare(y_true, proba)
    reference = _labels(train_labels) if train_labels is not None else y
    counts = np.bincount(y, minlength=p.shape[1])
    return ClassificationReport(
        model=classification_metrics(y, p),
        baseline=majority_baseline(y, train_labels=reference, n_classes=p.shape[1]),
        n_samples=int(y.size),
        class_counts={int(c): int(n) for c, n in enumerate(counts)},
        majority_class=majority_class(reference),
    )


# ---------------------------------------------------------------------- permutation test


@attrs.frozen
class PermutationResult:
    """Score of the real labels against scores with the labels shuffled."""

    metric: str
    score: float
    null_mean: float
    null_std: float
    p_value: float
    n_permutations: int

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def permutation_test(
    y_true: Any,
    proba: Any,
    *,
    metric: str = "roc_auc",
    n_permutations: int = 200,
    seed: int = 0,
    block: int = 1,
) -> PermutationResult:
    """How likely a score this good is when labels carry no information about the predictions.

    Labels are shuffled ``n_permutations`` times (in blocks of ``block`` consecutive
    samples, which keeps short-range autocorrelation); the p-value is
    ``(1 + #{null >= score}) / (1 + n)`` with the score oriented so higher is better.
    """
    if metric not in HIGHER_IS_BETTER:
        raise ValueError(f"unknown metric {metric!r} (choose from {', '.join(METRIC_NAMES)})")
    if n_permutations < 1 or block < 1:
        raise ValueError("n_permutations and block must be >= 1")
    y, p = _prepare(y_true, proba)
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    pred = np.argmax(p, axis=1)

    def score_of(labels: np.ndarray) -> float:
        if metric in ("roc_auc", "log_loss"):
            return {"roc_auc": roc_auc, "log_loss": log_loss}[metric](labels, p)
        return {"accuracy": accuracy, "balanced_accuracy": balanced_accuracy, "macro_f1": macro_f1}[metric](labels, pred)

    observed = score_of(y)
    rng = np.random.default_rng(seed)
    n_blocks = math.ceil(y.size / block)
    nulls = np.empty(n_permutations)
    for i in range(n_permutations):
        order = rng.permutation(n_blocks)
        index = (order[:, None] * block + np.arange(block)[None, :]).ravel()
        nulls[i] = score_of(y[index[index < y.size]])
    finite = nulls[np.isfinite(nulls)]
    exceed = np.sum(sign * finite >= sign * observed - 1e-12)
    return PermutationResult(
        metric=metric,
        score=float(observed),
        null_mean=float(np.mean(finite)) if finite.size else math.nan,
        null_std=float(np.std(finite)) if finite.size else math.nan,
        p_value=float((1 + exceed) / (1 + finite.size)),
        n_permutations=n_permutations,
    )
