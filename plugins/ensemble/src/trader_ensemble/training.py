"""Training: features and labels, a chronological purged split, a soft-voting ensemble, calibration.

1. the core's features (:class:`trader.features.FeatureEngineer`) and labels (the next bar's
   direction, or fee-aware; :class:`trader.features.LabelDefinition`), as for the deep-learning plugins;
2. :class:`trader.features.DataPreprocessor`: train, validation and test in time order,
   the label horizon purged before each boundary (plus ``embargo``), rows past the
   warm-up in one gap-free segment, the scaler fit on training rows only;
3. the members are fit on the training rows and their probabilities averaged (soft voting);
4. the average is calibrated on the validation rows (sigmoid or isotonic), which also
   undoes the balanced class weights;
5. test metrics beside the majority baseline (:mod:`trader.evaluation.classification`),
   for the ensemble and for each member alone.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from trader.errors import ConfigError, DataError
from trader.types import TrainRequest, TrainResult
from trader_ensemble.model import EnsembleModel, build_ensemble, lagged_names, single_threaded
from trader_ensemble.params import EnsembleParams
from trader_ensemble.threads import limited_threads

__all__ = ["train_ensemble", "lagged_matrix", "MIN_TRAIN_ROWS", "MIN_EVAL_ROWS"]

MIN_TRAIN_ROWS = 200
MIN_EVAL_ROWS = 20


def lagged_matrix(values: np.ndarray, ends: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """Rows ``ends`` of ``values`` followed by rows ``ends - lag`` for each lag (float64)."""
    blocks = [values[ends], *(values[ends - lag] for lag in lags)]
    return np.concatenate(blocks, axis=1).astype(np.float64) if lags else blocks[0].astype(np.float64)


@contextlib.contextmanager
def _stage(show: bool, text: str) -> Iterator[None]:
    if not show:
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def _span(timestamps: np.ndarray, ends: np.ndarray) -> dict[str, Any]:
    return {"first_end": int(timestamps[ends[0]]), "last_end": int(timestamps[ends[-1]]), "rows": int(len(ends))}


def train_ensemble(request: TrainRequest) -> TrainResult:
    """The ``trader_train`` hook (see the module docstring)."""
    params = EnsembleParams.from_mapping(request.params)  # a bad setting fails before anything heavy loads

    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.frozen import FrozenEstimator

    from trader.evaluation.classification import evaluate_classifier
    from trader.features import DataPreprocessor, FeatureEngineer

    candles = request.candles
    started = time.perf_counter()
    try:
        engineer = FeatureEngineer(windows=params.windows, timeframe=request.timeframe, max_fill_bars=params.max_fill_bars)
    except ValueError as exc:
        raise ConfigError(f"[plugins.ensemble.train] feature settings: {exc}") from None
    if params.lags and max(params.lags) > engineer.warmup_bars:
        raise ConfigError(
            f"[plugins.ensemble.train] lags must not exceed the features' warm-up of {engineer.warmup_bars} bars, "
            f"got {list(params.lags)}"
        )
    definition = params.label_definition()
    features = engineer.transform(candles)
    labels = definition.compute(candles, request.timeframe).to_numpy(dtype=np.float64)
    if definition.kind == "ternary":  # -1/0/1 -> classes 0 (down), 1 (flat), 2 (up)
        labels = labels + 1.0
        classes = ["down", "flat", "up"]
    else:
        classes = ["no_gain", "gain"]
    preprocessor = DataPreprocessor(
        train_fraction=1.0 - params.val_fraction - params.test_fraction,
        val_fraction=params.val_fraction,
        horizon=params.label_horizon,
        embargo=params.embargo,
        scaler_kind=params.scaler,
        clip=params.scaler_clip,
        window=max(params.lags, default=0) + 1,
    )
    data = preprocessor.prepare(features, labels, segments=engineer.segments(candles))
    ends = {part: data.ends[part] for part in ("train", "val", "test")}
    if len(ends["train"]) < MIN_TRAIN_ROWS or len(ends["val"]) < MIN_EVAL_ROWS or len(ends["test"]) < MIN_EVAL_ROWS:
        raise DataError(
            f"too few usable rows to train the ensemble ({len(candles)} candles give {len(ends['train'])} train, "
            f"{len(ends['val'])} validation, {len(ends['test'])} test rows after the {engineer.warmup_bars}-bar warm-up); "
            f"need at least {MIN_TRAIN_ROWS} train and {MIN_EVAL_ROWS} of each other part: use more candles"
        )
    x = {part: lagged_matrix(data.values, rows, params.lags) for part, rows in ends.items()}
    assert data.labels is not None  # prepared with labels
    y = {part: data.labels[rows].astype(np.int64) for part, rows in ends.items()}
    up_class = len(classes) - 1
    for part in ("train", "val"):
        present = np.unique(y[part])
        if up_class not in present or len(present) < 2:
            raise DataError(
                f"the {part} rows hold only the class(es) {[classes[c] for c in present]}: cannot learn or calibrate "
                "P(up); use more candles or a lower label_threshold"
            )
    prepare_seconds = time.perf_counter() - started

    voter = build_ensemble(params, request.seed)
    started = time.perf_counter()
    with _stage(request.show_progress, f"fitting {', '.join(params.members)} on {len(y['train']):,} rows"), \
            limited_threads(params.threads):
        voter.fit(x["train"], y["train"])
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    with _stage(request.show_progress, f"calibrating ({params.calibration}) on {len(y['val']):,} validation rows"), \
            limited_threads(params.threads):
        calibrated = CalibratedClassifierCV(FrozenEstimator(voter), method=params.calibration)
        calibrated.fit(x["val"], y["val"])
    calibrate_seconds = time.perf_counter() - started
    single_threaded(voter)

    names = tuple(data.feature_names)
    label = {
        **definition.as_dict(),
        "classes": classes,
        "up_class": up_class,
        "train_class_counts": [int(c) for c in np.bincount(y["train"], minlength=len(classes))],
    }
    model = EnsembleModel(
        calibrated, names, data.scaler, lags=params.lags, windows=engineer.windows,
        max_fill_bars=params.max_fill_bars, label=label, members=params.members,
    )
    started = time.perf_counter()
    with limited_threads(params.threads):
        test_proba = calibrated.predict_proba(x["test"])
        val_proba = calibrated.predict_proba(x["val"])
        member_proba = {name: est.predict_proba(x["test"]) for name, est in voter.named_estimators_.items()}
        member_proba["uncalibrated_ensemble"] = voter.predict_proba(x["test"])
    test_report = evaluate_classifier(y["test"], test_proba, train_labels=y["train"])
    val_report = evaluate_classifier(y["val"], val_proba, train_labels=y["train"])
    test_seconds = time.perf_counter() - started
    members = {
        name: evaluate_classifier(y["test"], proba, train_labels=y["train"]).to_dict()["model"]
        for name, proba in member_proba.items()
    }
    timestamps = np.asarray(candles["timestamp"], dtype=np.int64)
    metrics = {
        "test": test_report.to_dict(),
        "validation": val_report.to_dict(),
        "members_test": members,
        "fit_seconds": round(fit_seconds, 3),
        "calibrate_seconds": round(calibrate_seconds, 3),
        "prepare_seconds": round(prepare_seconds, 3),
        "predict_seconds": round(test_seconds, 3),
        "train_rows": int(len(y["train"])),
    }
    architecture = {
        "class": "SoftVotingEnsemble",
        "voting": "soft",
        "members": list(params.members),
        "weights": params.member_weights(),
        "calibration": params.calibration,
        "lags": list(params.lags),
        "n_inputs": len(lagged_names(names, params.lags)),
        "num_classes": len(classes),
        "hyperparameters": {
            key: value for key, value in params.as_dict().items()
            if key.startswith(("hgb_", "tree", "logistic_")) or key in ("balanced",)
        },
    }
    import sklearn

    return TrainResult(
        model=model,
        metrics=metrics,
        architecture=architecture,
        feature_names=names,
        feature_windows=engineer.windows,
        scaler=data.scaler.to_dict(),
        label=label,
        history={},
        extra={
            "split": {
                "train": _span(timestamps, ends["train"]),
                "validation": _span(timestamps, ends["val"]),
                "test": _span(timestamps, ends["test"]),
                "purge_bars": params.label_horizon,
                "embargo_bars": params.embargo,
            },
            "data_settings": {
                key: value for key, value in params.as_dict().items()
                if key in ("windows", "val_fraction", "test_fraction", "embargo", "label_horizon", "label_threshold",
                           "fee_rate", "label_kind", "scaler", "scaler_clip", "max_fill_bars")
            },
            "scikit_learn": sklearn.__version__,
        },
    )
