"""Checking every decision tree of a loaded ensemble before it predicts anything.

scikit-learn walks tree nodes in compiled code without bounds checks: a child index
out of range, a feature index past the input width, or a cycle makes ``predict``
read arbitrary memory (a segfault) or loop forever. skops restores those node arrays
as they are stored, so a crafted archive could do that. :func:`check_trees` walks the
restored object graph and refuses, naming the tree by its attribute path, any tree whose
arrays do not describe a proper tree:

- ``sklearn.tree._tree.Tree``: one node array of ``node_count`` entries (capacity equal);
  a leaf has both children ``-1``; a split node has both children in ``1 .. node_count-1``,
  a feature index below the enclosing estimator's ``n_features_in_`` (which the tree's own
  ``n_features`` must equal) and a threshold that is not NaN or ``-inf`` (``+inf`` is how
  scikit-learn encodes a split of missing values from the rest); every value is finite;
- HistGradientBoosting ``TreePredictor``: the node record dtype scikit-learn expects;
  the same rules for ``left``, ``right``, ``feature_idx`` and ``num_threshold``; no
  categorical split (a trader ensemble has none, and their bitset indices are unchecked
  too); finite leaf values;
- both: every node is reached exactly once from the root (no cycle, no shared or orphan
  node), within :data:`MAX_TREE_DEPTH` levels;
- estimators: ``n_classes_`` and ``n_trees_per_iteration_`` at most :data:`MAX_CLASSES`,
  no categorical features (``is_categorical_``), and every boosting iteration holds
  ``n_trees_per_iteration_`` predictors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trader.errors import ArtifactError

__all__ = ["MAX_TREE_DEPTH", "MAX_CLASSES", "check_trees", "iter_trees"]

#: Deeper trees are refused (a chain of nodes would make the check, and every prediction, crawl).
MAX_TREE_DEPTH = 10_000
#: More classes (or trees per boosting iteration) than any trader label has.
MAX_CLASSES = 64


class _Bad(ValueError):
    pass


def iter_trees(root: Any) -> Iterator[tuple[str, Any, int | None]]:
    """``(attribute path, tree, feature count of the nearest enclosing estimator)`` of every tree under ``root``.

    Also checks the estimator-level counts above (raising ``ValueError`` with the path).
    """
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.tree._tree import Tree

    stack: list[tuple[str, Any, int | None]] = [("estimator", root, None)]
    seen: set[int] = set()
    while stack:
        path, obj, n_features = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool, complex, type)):
            continue
        seen.add(id(obj))
        if type(obj) is Tree or type(obj) is TreePredictor:
            yield path, obj, n_features
            continue
        if isinstance(obj, dict):
            children = [(f"{path}[{key!r}]", value) for key, value in obj.items()]
        elif isinstance(obj, (list, tuple)):
            children = [(f"{path}[{i}]", value) for i, value in enumerate(obj)]
        elif isinstance(obj, np.ndarray):
            children = [(f"{path}[{i}]", value) for i, value in enumerate(obj.ravel())] if obj.dtype == object else []
        elif hasattr(obj, "__dict__"):
            state = vars(obj)
            count = state.get("n_features_in_")
            if isinstance(count, (int, np.integer)) and not isinstance(count, bool):
                n_features = int(count)
            _check_estimator(path, state)
            children = [(f"{path}.{name}", value) for name, value in state.items()]
        else:
            children = []
        stack.extend((child_path, child, n_features) for child_path, child in reversed(children))


def _check_estimator(path: str, state: dict[str, Any]) -> None:
    for name in ("n_classes_", "n_trees_per_iteration_"):
        if name in state:
            counts = np.atleast_1d(np.asarray(state[name], dtype=object))
            if counts.size > MAX_CLASSES or not all(
                isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 < c <= MAX_CLASSES for c in counts
            ):
                raise _Bad(f"{path}.{name} is {str(state[name])[:60]} (at most {MAX_CLASSES} allowed)")
    categorical = state.get("is_categorical_")
    if categorical is not None and np.asarray(categorical).astype(bool).any():
        raise _Bad(f"{path} has categorical features, which a trader ensemble never has")
    predictors = state.get("_predictors")
    if predictors is not None:
        per_iteration = state.get("n_trees_per_iteration_")
        if not isinstance(predictors, list) or any(
            not isinstance(it, list) or len(it) != per_iteration for it in predictors
        ):
            raise _Bad(f"{path}._predictors does not hold {per_iteration} predictors per iteration")


def _reached_once(left: np.ndarray, right: np.ndarray, split: np.ndarray) -> str | None:
    """Why the nodes are not a tree rooted at 0, or ``None`` (children already known to be in range)."""
    n = len(left)
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    frontier = np.zeros(1, dtype=np.int64)
    reached = 1
    for depth in range(1, MAX_TREE_DEPTH + 2):
        parents = frontier[split[frontier]]
        if parents.size == 0:
            break
        if depth > MAX_TREE_DEPTH:
            return f"is deeper than {MAX_TREE_DEPTH} levels"
        children = np.concatenate([left[parents], right[parents]]).astype(np.int64)
        again = seen[children]
        unique, counts = np.unique(children, return_counts=True)
        if again.any() or (counts > 1).any():
            node = int(children[again][0]) if again.any() else int(unique[counts > 1][0])
            return f"reaches node {node} twice from the root (a cycle or a shared node)"
        seen[children] = True
        reached += children.size
        frontier = children
    if reached != n:
        return f"has {n - reached} node(s) the root never reaches (first: {int(np.flatnonzero(~seen)[0])})"
    return None


def _check_nodes(left: np.ndarray, right: np.ndarray, feature: np.ndarray, threshold: np.ndarray,
                 split: np.ndarray, n_features: int) -> None:
    n = len(left)
    for name, child in (("left", left), ("right", right)):
        bad = split & ((child < 1) | (child >= n))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _Bad(f"node {i} has {name} child {int(child[i])} outside 1..{n - 1}")
    bad = split & ((feature < 0) | (feature >= n_features))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _Bad(f"node {i} splits on feature {int(feature[i])}, the model has {n_features} inputs")
    bad = split & (np.isnan(threshold) | np.isneginf(threshold))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _Bad(f"node {i} has threshold {float(threshold[i])}")
    why = _reached_once(left, right, split)
    if why is not None:
        raise _Bad(f"the tree {why}")


def _check_sklearn_tree(tree: Any, n_features: int) -> None:
    n = int(tree.node_count)
    if tree.n_features != n_features:
        raise _Bad(f"the tree takes {tree.n_features} features, its estimator {n_features}")
    if n < 1 or tree.capacity != n:
        raise _Bad(f"node count {n} and capacity {tree.capacity} differ (or are zero)")
    if not 0 < tree.n_outputs <= MAX_CLASSES or not 0 < tree.max_n_classes <= MAX_CLASSES:
        raise _Bad(f"{tree.n_outputs} outputs of up to {tree.max_n_classes} classes (at most {MAX_CLASSES})")
    state = tree.__getstate__()
    nodes, values = state["nodes"], state["values"]
    if nodes.shape != (n,) or values.shape != (n, tree.n_outputs, tree.max_n_classes):
        raise _Bad(f"node arrays of shapes {nodes.shape} and {values.shape} do not match {n} nodes")
    left, right = nodes["left_child"], nodes["right_child"]
    leaf = left == -1
    bad = leaf & (right != -1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _Bad(f"leaf {i} has right child {int(right[i])} (a leaf has none)")
    _check_nodes(left, right, nodes["feature"], nodes["threshold"], ~leaf, n_features)
    if not np.isfinite(values).all():
        raise _Bad(f"node {int(np.flatnonzero(~np.isfinite(values).reshape(n, -1).all(axis=1))[0])} holds a NaN or infinite value")


def _check_predictor(predictor: Any, n_features: int) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    nodes = getattr(predictor, "nodes", None)
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE or nodes.ndim != 1 or nodes.size < 1:
        raise _Bad("its node array is not a non-empty array of scikit-learn's predictor node records")
    if nodes["is_categorical"].any():
        raise _Bad(f"node {int(np.flatnonzero(nodes['is_categorical'])[0])} is a categorical split")
    leaf = nodes["is_leaf"] != 0
    _check_nodes(nodes["left"].astype(np.int64), nodes["right"].astype(np.int64), nodes["feature_idx"],
                 nodes["num_threshold"], ~leaf, n_features)
    bad = leaf & ~np.isfinite(nodes["value"])
    if bad.any():
        raise _Bad(f"leaf {int(np.flatnonzero(bad)[0])} has value {float(nodes['value'][bad][0])}")


def check_trees(estimator: Any, path: Path) -> int:
    """Refuse (:class:`ArtifactError` naming ``path`` and the tree) any tree above that is not safe to
    walk; return how many trees were checked."""
    from sklearn.tree._tree import Tree

    checked = 0
    trees = iter_trees(estimator)
    while True:
        try:
            found = next(trees, None)
        except (_Bad, ValueError, TypeError) as exc:
            raise ArtifactError(f"{path}: refusing to load it: {exc}") from None
        if found is None:
            return checked
        where, tree, n_features = found
        try:
            if n_features is None:
                raise _Bad("no enclosing estimator gives its feature count")
            (_check_sklearn_tree if type(tree) is Tree else _check_predictor)(tree, n_features)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            detail = str(exc) if isinstance(exc, _Bad) else f"{type(exc).__name__}: {str(exc)[:200]}"
            raise ArtifactError(f"{path}: refusing to load it: tree {where}: {detail}") from None
        checked += 1
