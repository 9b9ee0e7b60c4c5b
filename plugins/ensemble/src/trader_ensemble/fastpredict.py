"""Predicting a few rows without scikit-learn's per-tree dispatch.

A forest's ``predict_proba`` runs one joblib task (with a configuration context) per
tree, about 60 us each, even on one thread; one candle's decision spent most of its
time there. :func:`compile_predictor` reads the fitted arrays of a calibrated
soft-voting ensemble once (every tree's nodes packed into flat numpy arrays, leaves
pointing at themselves) and returns a function that walks all the trees of a member
together, one numpy step per tree level.

It computes what scikit-learn computes, in the same order where the order changes
the floats: a forest's trees are summed one after the other (``cumsum``), then
divided by their count; boosting adds its predictors to the baseline in iteration
order; inputs go to the forests' trees as float32, as scikit-learn casts them; the
links (``expit``, softmax), the weighted average and the calibrators are
scikit-learn's own. The tests hold it to ``predict_proba`` to 1e-12.

Anything else (another estimator type, categorical features, several outputs, a
non-finite input) gets ``None`` from :func:`compile_predictor` or falls back, so the
caller uses scikit-learn. Trees are checked with :mod:`trader_ensemble.trees`'
rules before they are packed; numpy's indexing is bounds-checked in any case.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trader_ensemble.trees import MAX_TREE_DEPTH

__all__ = ["Predict", "compile_predictor", "PackedTrees"]

#: ``X (n, inputs) float64 -> class probabilities (n, classes)``.
Predict = Callable[[np.ndarray], np.ndarray]


class _Unsupported(Exception):
    """The estimator is not one this module reproduces exactly."""


class PackedTrees:
    """The nodes of several trees in flat arrays; a leaf's children are itself.

    ``walk(X)`` returns each row's leaf index in every tree, shape ``(rows, trees)``.
    """

    def __init__(self, trees: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                 n_features: int) -> None:
        lefts, rights, features, thresholds, roots = [], [], [], [], []
        depth, offset = 0, 0
        for left, right, feature, threshold, leaf in trees:
            n = len(left)
            split = ~leaf
            _check(left, right, feature, threshold, split, n_features)
            depth = max(depth, _depth(left, right, split))
            own = np.arange(offset, offset + n, dtype=np.intp)
            lefts.append(np.where(split, left.astype(np.intp) + offset, own))
            rights.append(np.where(split, right.astype(np.intp) + offset, own))
            features.append(np.where(split, feature, 0).astype(np.intp))
            thresholds.append(np.where(split, threshold, np.inf).astype(np.float64))
            roots.append(offset)
            offset += n
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.roots = np.asarray(roots, dtype=np.intp)
        self.depth = depth

    def walk(self, x: np.ndarray) -> np.ndarray:
        """Leaf of every (row, tree); ``x`` finite, (rows, n_features)."""
        rows = np.arange(x.shape[0], dtype=np.intp)[:, None]
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size))
        left, right, feature, threshold = self.left, self.right, self.feature, self.threshold
        for _ in range(self.depth):
            node = np.where(x[rows, feature[node]] <= threshold[node], left[node], right[node])
        return node


def _check(left: np.ndarray, right: np.ndarray, feature: np.ndarray, threshold: np.ndarray, split: np.ndarray,
           n_features: int) -> None:
    from trader_ensemble.trees import _check_nodes

    if not split[0] and len(left) != 1:
        raise _Unsupported("a root leaf with other nodes")
    try:
        _check_nodes(left.astype(np.int64), right.astype(np.int64), feature, threshold, split, n_features)
    except ValueError as exc:
        raise _Unsupported(str(exc)) from None


def _depth(left: np.ndarray, right: np.ndarray, split: np.ndarray) -> int:
    """Levels below the root (the tree is known to be one: each node reached once)."""
    frontier, depth = np.zeros(1, dtype=np.int64), 0
    while True:
        parents = frontier[split[frontier]]
        if parents.size == 0:
            return depth
        depth += 1
        if depth > MAX_TREE_DEPTH:
            raise _Unsupported("too deep")
        frontier = np.concatenate([left[parents], right[parents]]).astype(np.int64)


def _forest(forest: Any) -> Predict:
    """Mean of the trees' leaf class fractions (``ForestClassifier.predict_proba``)."""
    n_classes = forest.n_classes_
    if getattr(forest, "n_outputs_", 1) != 1 or not isinstance(n_classes, (int, np.integer)):
        raise _Unsupported("several outputs")
    trees, values = [], []
    for member in forest.estimators_:
        tree = member.tree_
        if tree.n_outputs != 1:
            raise _Unsupported("several outputs")
        left, right = np.asarray(tree.children_left), np.asarray(tree.children_right)
        trees.append((left, right, np.asarray(tree.feature), np.asarray(tree.threshold), left == -1))
        values.append(np.asarray(tree.value)[:, 0, :n_classes].astype(np.float64))
    packed = PackedTrees(trees, int(forest.n_features_in_))
    value = np.concatenate(values)
    count = len(forest.estimators_)

    def predict(x: np.ndarray) -> np.ndarray:
        leaves = packed.walk(x.astype(np.float32).astype(np.float64))  # the trees read float32 inputs
        # one tree after the other, as the forest adds them; then the mean
        total = np.cumsum(value[leaves], axis=1)[:, -1, :]
        total /= count
        return total

    return predict


def _boosting(hgb: Any) -> Predict:
    """Baseline plus every predictor's leaf value, through the loss' link (``HistGradientBoosting``)."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    categorical = getattr(hgb, "is_categorical_", None)
    if getattr(hgb, "_preprocessor", None) is not None or (categorical is not None and np.asarray(categorical).any()):
        raise _Unsupported("categorical features")
    per_iteration = int(hgb.n_trees_per_iteration_)
    trees, values = [], []
    for iteration in hgb._predictors:
        if len(iteration) != per_iteration:
            raise _Unsupported("uneven iterations")
        for predictor in iteration:
            nodes = predictor.nodes
            if nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes["is_categorical"].any():
                raise _Unsupported("categorical split")
            trees.append((nodes["left"], nodes["right"], nodes["feature_idx"], nodes["num_threshold"],
                          nodes["is_leaf"] != 0))
            values.append(nodes["value"].astype(np.float64))
    packed = PackedTrees(trees, int(hgb.n_features_in_))
    value = np.concatenate(values)
    baseline = np.asarray(hgb._baseline_prediction, dtype=np.float64).reshape(1, 1, per_iteration)
    loss = hgb._loss

    def predict(x: np.ndarray) -> np.ndarray:
        leaves = packed.walk(x)  # boosting reads float64 inputs
        parts = value[leaves].reshape(x.shape[0], -1, per_iteration)
        # the baseline, then each iteration in turn, as _raw_predict adds them
        steps = np.concatenate([np.broadcast_to(baseline, (x.shape[0], 1, per_iteration)), parts], axis=1)
        raw = np.cumsum(steps, axis=1)[:, -1, :]
        return loss.predict_proba(raw)

    return predict


def _logistic(model: Any) -> Predict:
    """``LogisticRegression.predict_proba``: expit of the one score, or softmax over the classes."""
    from scipy.special import expit
    from sklearn.utils.extmath import softmax

    coef = np.asarray(model.coef_, dtype=np.float64)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    binary = np.size(model.classes_) <= 2
    if coef.ndim != 2 or coef.shape[1] != model.n_features_in_ or intercept.shape != coef.shape[:1] or (
        coef.shape[0] != (1 if binary else np.size(model.classes_))
    ):
        raise _Unsupported("coefficients")

    def predict(x: np.ndarray) -> np.ndarray:
        scores = x @ coef.T + intercept
        if binary:
            prob = expit(scores.reshape(-1))
            return np.stack([1 - prob, prob], axis=1)
        return softmax(scores, copy=False)

    return predict


def _voting(voter: Any) -> Predict:
    """Weighted average of the members' probabilities (soft ``VotingClassifier``)."""
    if getattr(voter, "voting", None) != "soft":
        raise _Unsupported("hard voting")
    members = [_compile(member) for member in voter.estimators_]
    weights = voter._weights_not_none

    def predict(x: np.ndarray) -> np.ndarray:
        return np.average(np.asarray([member(x) for member in members]), axis=0, weights=weights)

    return predict


def _calibrated(model: Any) -> Predict:
    """Mean over the calibrated classifiers of each one's one-vs-rest calibrated probabilities."""
    parts = []
    for calibrated in model.calibrated_classifiers_:
        if calibrated.method not in ("sigmoid", "isotonic"):
            raise _Unsupported(f"{calibrated.method} calibration")
        inner = calibrated.estimator
        if hasattr(inner, "decision_function"):  # scikit-learn would calibrate that, not the probabilities
            raise _Unsupported("decision_function")
        classes = np.asarray(calibrated.classes)
        inner_classes = np.asarray(inner.classes_)
        positions = np.searchsorted(np.unique(classes), inner_classes)  # LabelEncoder().fit(classes).transform
        parts.append((_compile(inner), positions, len(classes), len(inner_classes), list(calibrated.calibrators)))
    n_outputs = len(model.classes_)

    def predict(x: np.ndarray) -> np.ndarray:
        mean = np.zeros((x.shape[0], n_outputs))
        for inner, positions, n_classes, n_inner, calibrators in parts:
            scores = inner(x)
            predictions = scores[:, n_inner - 1:] if n_inner == 2 else scores  # binary: the last class' column
            proba = np.zeros((x.shape[0], n_classes))
            for class_idx, this_pred, calibrator in zip(positions, predictions.T, calibrators, strict=False):
                proba[:, class_idx + 1 if n_classes == 2 else class_idx] = calibrator.predict(this_pred)
            if n_classes == 2:
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                denominator = np.sum(proba, axis=1)[:, np.newaxis]
                proba = np.divide(proba, denominator, out=np.full_like(proba, 1 / n_classes),
                                  where=denominator != 0)
            proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        mean /= len(parts)
        return mean

    return predict


def _compile(estimator: Any) -> Predict:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
        VotingClassifier,
    )
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    kind = type(estimator)
    if kind is FrozenEstimator:
        return _compile(estimator.estimator)
    if kind is CalibratedClassifierCV:
        return _calibrated(estimator)
    if kind is VotingClassifier:
        return _voting(estimator)
    if kind in (ExtraTreesClassifier, RandomForestClassifier):
        return _forest(estimator)
    if kind is HistGradientBoostingClassifier:
        return _boosting(estimator)
    if kind is LogisticRegression:
        return _logistic(estimator)
    raise _Unsupported(kind.__name__)


def compile_predictor(estimator: Any) -> Predict | None:
    """A numpy ``predict_proba`` equal to ``estimator.predict_proba`` (to 1e-12) on finite inputs, or
    ``None`` where the estimator holds something this module does not reproduce."""
    try:
        predict = _compile(estimator)
    except (_Unsupported, AttributeError, TypeError, ValueError, KeyError, IndexError):
        return None
    n_features = int(getattr(estimator, "n_features_in_", -1))

    def checked(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != n_features:
            raise ValueError(f"X has {x.shape[-1]} features, the ensemble takes {n_features}")
        return predict(x)

    return checked
