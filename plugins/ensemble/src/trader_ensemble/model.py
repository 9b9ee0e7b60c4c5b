"""The fitted ensemble and how it turns the core's feature frame into P(up).

:func:`build_ensemble` makes the (unfitted) soft-voting classifier of
:class:`~trader_ensemble.params.EnsembleParams`; :class:`EnsembleModel` holds the
fitted, calibrated classifier together with what feeding it needs: the ordered
feature names, the train-only scaler and the lags.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from trader.errors import DataError, ModelError
from trader.feature_windows import DEFAULT_WINDOWS
from trader_ensemble.params import EnsembleParams
from trader_ensemble.threads import limited_threads

__all__ = [
    "EnsembleModel", "build_ensemble", "lagged_names", "member_estimators", "single_threaded", "SINGLE_THREAD_ROWS",
    "FAST_ROWS",
]

#: Below this many rows, prediction runs on one thread.
SINGLE_THREAD_ROWS = 2048
#: Below this many rows, prediction walks the trees' arrays in numpy (:mod:`trader_ensemble.fastpredict`);
#: from here on scikit-learn's compiled loops win despite their per-tree dispatch.
FAST_ROWS = 128


def lagged_names(feature_names: Sequence[str], lags: Sequence[int]) -> list[str]:
    """Column names of the model's inputs: the features, then each lag's copies (``lag1:ret_1``)."""
    return [*feature_names, *(f"lag{lag}:{name}" for lag in lags for name in feature_names)]


def _random_state(seed: int, offset: int) -> int:
    return (int(seed) * 7919 + offset) % (2**32)


def member_estimators(params: EnsembleParams, seed: int) -> list[tuple[str, Any]]:
    """The unfitted member models, each seeded from ``seed``."""
    from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    class_weight = "balanced" if params.balanced else None
    makers = {
        "hgb": lambda rs: HistGradientBoostingClassifier(
            max_iter=params.hgb_max_iter,
            learning_rate=params.hgb_learning_rate,
            max_leaf_nodes=params.hgb_max_leaf_nodes,
            min_samples_leaf=params.hgb_min_samples_leaf,
            l2_regularization=params.hgb_l2_regularization,
            early_stopping=False,  # its hold-out would be a random (not chronological) split
            # No class weights: with sample weights scikit-learn bins every feature through a weighted
            # percentile, many times slower; calibration corrects the probabilities anyway.
            random_state=rs,
        ),
        "extra_trees": lambda rs: ExtraTreesClassifier(
            n_estimators=params.trees,
            max_depth=params.tree_max_depth,
            min_samples_leaf=params.tree_min_samples_leaf,
            max_features="sqrt",
            class_weight=class_weight,
            n_jobs=params.threads or -1,
            random_state=rs,
        ),
        "random_forest": lambda rs: RandomForestClassifier(
            n_estimators=params.trees,
            max_depth=params.tree_max_depth,
            min_samples_leaf=params.tree_min_samples_leaf,
            max_features="sqrt",
            max_samples=0.5,
            class_weight=class_weight,
            n_jobs=params.threads or -1,
            random_state=rs,
        ),
        "logistic": lambda rs: LogisticRegression(
            C=params.logistic_c, class_weight=class_weight, max_iter=2000, random_state=rs
        ),
    }
    return [(name, makers[name](_random_state(seed, i))) for i, name in enumerate(params.members)]


def build_ensemble(params: EnsembleParams, seed: int) -> Any:
    """An unfitted soft-voting classifier over the members of ``params``."""
    from sklearn.ensemble import VotingClassifier

    return VotingClassifier(member_estimators(params, seed), voting="soft", weights=params.member_weights())


def single_threaded(voter: Any) -> Any:
    """Set ``n_jobs = 1`` on the fitted members: predicting one candle is faster without a worker pool."""
    for member in getattr(voter, "estimators_", []):
        if getattr(member, "n_jobs", None) not in (None, 1):
            member.n_jobs = 1
    return voter


class EnsembleModel:
    """A calibrated classifier plus the definition of its inputs.

    ``scaler`` is the train-only :class:`trader.features.FeatureScaler` over
    ``feature_names`` (lagged copies reuse it); ``label`` describes the target and
    names ``up_class``, the class meaning "the price goes up".
    """

    def __init__(
        self,
        estimator: Any,
        feature_names: Sequence[str],
        scaler: Any,
        *,
        lags: Sequence[int] = (),
        windows: Sequence[int] = DEFAULT_WINDOWS,
        max_fill_bars: int = 5,
        label: Mapping[str, Any] | None = None,
        members: Sequence[str] = (),
    ) -> None:
        self.estimator = estimator
        self.feature_names = tuple(feature_names)
        self.scaler = scaler
        self.lags = tuple(int(lag) for lag in lags)
        self.windows = tuple(int(w) for w in windows)
        self.max_fill_bars = int(max_fill_bars)
        self.label = dict(label or {})
        self.members = tuple(members)
        classes = [int(c) for c in getattr(estimator, "classes_", [])]
        self.up_class = int(self.label.get("up_class", max(classes, default=1)))
        if self.up_class not in classes:
            raise ModelError(f"the ensemble's classes {classes} lack the 'up' class {self.up_class}")
        self._up_column = classes.index(self.up_class)
        self._fast: Any = None  # compiled on the first small prediction; False where unsupported
        self._columns: tuple[Any, bool, np.ndarray | None] | None = None  # (frame columns, reads, positions)

    def __repr__(self) -> str:
        return f"EnsembleModel(members={list(self.members)}, features={len(self.feature_names)}, lags={list(self.lags)})"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_fast": None, "_columns": None}  # the compiled closures are rebuilt where it is unpickled

    @property
    def input_names(self) -> list[str]:
        return lagged_names(self.feature_names, self.lags)

    def reads(self, features: Any) -> bool:
        """Whether the feature frame holds every feature the model reads."""
        columns = getattr(features, "columns", None)
        if columns is None:
            return False
        return self._lookup(features)[1]

    def _lookup(self, features: Any) -> tuple[Any, bool, np.ndarray | None]:
        """Whether the frame holds the model's features, and their column positions; kept while the frame's
        columns are the same (immutable) Index object, as they are for every candle of a backtest."""
        columns = features.columns
        cached = self._columns
        if cached is None or cached[0] is not columns:
            reads = set(self.feature_names) <= set(map(str, columns))
            cached = self._columns = (columns, reads, None)
        return cached

    def _positions(self, features: Any) -> np.ndarray:
        columns, reads, positions = self._lookup(features) if hasattr(features, "columns") else (None, False, None)
        if positions is None:
            positions = _column_positions(features, self.feature_names)
            self._columns = (columns, reads, positions)
        return positions

    def design_matrix(self, features: Any, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        """Scaled inputs for ``rows`` of the feature frame, and which rows are complete (finite).

        Row ``i`` reads rows ``i`` and ``i - lag`` only, never later ones. Values are
        scaled to float32 exactly as in training.
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        columns = self._positions(features)
        offsets = np.asarray((0, *self.lags), dtype=np.int64)
        needed = (rows[None, :] - offsets[:, None]).reshape(-1)
        in_range = needed >= 0
        raw = np.full((needed.size, len(self.feature_names)), np.nan)
        if in_range.any():
            # rows first, then the model's columns in numpy: pandas' 2-D iloc costs far more for a few rows
            raw[in_range] = np.asarray(features.iloc[needed[in_range]].to_numpy()[:, columns], dtype=np.float64)
        scaled = self.scaler.transform_array(raw, dtype=np.float32).astype(np.float64)
        blocks = scaled.reshape(offsets.size, rows.size, len(self.feature_names))
        matrix = np.concatenate(list(blocks), axis=1) if offsets.size > 1 else blocks[0]
        return matrix, np.isfinite(matrix).all(axis=1)

    def predict_up(self, features: Any, rows: Any) -> np.ndarray:
        """P(up) for each of ``rows``; NaN where the features are not complete (warm-up, gaps)."""
        matrix, valid = self.design_matrix(features, rows)
        out = np.full(matrix.shape[0], np.nan)
        if valid.any():
            out[valid] = self.predict_up_matrix(matrix[valid])
        return out

    def predict_up_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """P(up) for the rows of an already scaled design matrix.

        Fewer than :data:`FAST_ROWS` finite rows (live trading asks for one) are predicted
        by :func:`~trader_ensemble.fastpredict.compile_predictor`'s numpy walk (the same
        probabilities, without a joblib task per tree), where it supports the estimator.
        Fewer than :data:`SINGLE_THREAD_ROWS` rows are predicted on one thread: a thread
        pool costs more than it saves there, and on a busy machine OpenMP's spinning
        threads can stall a single prediction.
        """
        if len(matrix) < FAST_ROWS:
            fast = self.fast_predictor()
            if fast is not None and np.isfinite(matrix).all():
                return fast(matrix)[:, self._up_column]
        threads = 1 if len(matrix) < SINGLE_THREAD_ROWS else None
        with limited_threads(threads):
            proba = self.estimator.predict_proba(matrix)
        return np.asarray(proba, dtype=np.float64)[:, self._up_column]


    def fast_predictor(self) -> Any:
        """The estimator's numpy ``predict_proba`` (compiled once), or ``None`` where it is not supported."""
        if self._fast is None:
            from trader_ensemble.fastpredict import compile_predictor

            self._fast = compile_predictor(self.estimator) or False
        return self._fast or None


def _column_positions(features: Any, names: Sequence[str]) -> np.ndarray:
    columns = getattr(features, "columns", None)
    if columns is None or not hasattr(features, "iloc"):
        raise DataError(f"the ensemble needs the feature frame as a DataFrame, got {type(features).__name__}")
    positions = np.asarray(columns.get_indexer(list(names)))
    if (positions < 0).any():
        missing = [n for n, p in zip(names, positions, strict=True) if p < 0]
        raise DataError(
            f"the feature frame lacks {len(missing)} feature(s) the ensemble was trained on, e.g. {missing[0]!r}"
        )
    return positions
