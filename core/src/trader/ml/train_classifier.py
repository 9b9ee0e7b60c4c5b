"""The ``trader_train`` hook of a sequence-classifier plugin: settings, windows, fit, held-out metrics."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import attrs
import numpy as np

from trader.errors import ConfigError
from trader.evaluation.classification import evaluate_classifier
from trader.ml.batches import WindowBatches
from trader.ml.model import SequenceModel
from trader.ml.prepare import prepare_pooled_training_data, prepare_training_data
from trader.ml.seeding import default_threads, seed_everything, torch_threads
from trader.ml.settings import DataSettings
from trader.ml.spec import SequenceClassifierSpec, check_architecture
from trader.ml.training import TrainConfig, fit
from trader.types import TrainRequest, TrainResult

__all__ = ["train_sequence_classifier", "known_training_keys", "build_architecture"]


def build_architecture(spec: SequenceClassifierSpec, params: Mapping[str, Any], n_features: int, n_classes: int, length: int) -> dict[str, Any]:
    arch: dict[str, Any] = {"class": spec.class_name}
    for key, default in spec.architecture_defaults.items():
        arch[key] = params.get(key, default)
    arch["input_size"] = n_features
    arch["num_classes"] = n_classes
    if spec.length_argument:
        arch[spec.length_argument] = max(length, int(params.get(spec.length_argument, length)))
    arch["sequence_length"] = length
    return arch


def known_training_keys(spec: SequenceClassifierSpec) -> set[str]:
    keys = set(spec.architecture_defaults) | set(DataSettings.KEYS) | {a.name for a in attrs.fields(TrainConfig)}
    if spec.length_argument:
        keys.add(spec.length_argument)
    return keys - {"seed"}


def train_sequence_classifier(spec: SequenceClassifierSpec, request: TrainRequest) -> TrainResult:
    """The ``trader_train`` hook of a sequence-classifier plugin."""
    params = dict(request.params)
    unknown = sorted(set(params) - known_training_keys(spec))
    if unknown:
        raise ConfigError(
            f"unknown training parameter(s) for {spec.plugin}: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known_training_keys(spec)))})"
        )
    settings = DataSettings.from_params(params, spec)
    try:
        config = TrainConfig.from_params({k: v for k, v in params.items() if k != "seed"}, seed=request.seed)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"training parameters: {exc}") from None
    started = time.perf_counter()
    if request.markets is not None:  # one model on several markets (trader train --symbol A --symbol B)
        data = prepare_pooled_training_data(request.markets, settings, request.timeframe)
    else:
        data = prepare_training_data(request.candles, settings, request.timeframe)
    prep_seconds = time.perf_counter() - started
    arch = build_architecture(spec, params, len(data.feature_names), data.n_classes, settings.sequence_length)
    with torch_threads(config.threads or default_threads()):
        seed_everything(request.seed)
        try:
            check_architecture(spec, arch)
            module = spec.build(arch)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{spec.plugin} architecture: {exc}") from None
        train = WindowBatches(data.values, data.train_ends, settings.sequence_length, data.labels)
        val = WindowBatches(data.values, data.val_ends, settings.sequence_length, data.labels)
        result = fit(module, train, val, config, n_classes=data.n_classes, show_progress=request.show_progress,
                     description=f"{spec.plugin} {request.symbol} {request.timeframe}")
        label = {**data.label, "class_weights": list(result.class_weights) or [1.0] * data.n_classes}
        model = SequenceModel(
            module, feature_names=data.feature_names, windows=settings.windows, sequence_length=settings.sequence_length,
            scaler=data.scaler, label=label, class_weights=label["class_weights"], architecture=arch,
            max_fill_bars=settings.max_fill_bars,
        )
        train_labels = data.labels[data.train_ends]
        val_report = evaluate_classifier(data.labels[data.val_ends], model.predict_windows(data.values, data.val_ends), train_labels=train_labels)
        test_report = evaluate_classifier(data.labels[data.test_ends], model.predict_windows(data.values, data.test_ends), train_labels=train_labels)
    ts = data.timestamps

    def span(ends: np.ndarray) -> dict[str, Any]:
        if len(ends) == 0:
            return {"first_end": None, "last_end": None, "windows": 0}
        return {"first_end": int(ts[ends].min()), "last_end": int(ts[ends].max()), "windows": int(len(ends))}

    split: dict[str, Any] = {"train": span(data.train_ends), "validation": span(data.val_ends), "test": span(data.test_ends),
                             "purge_bars": settings.label_horizon + settings.sequence_length - 1,
                             "embargo_bars": settings.embargo}
    if data.markets:  # pooled: each market's own split (purged on its own timeline)
        split["markets"] = {
            symbol: {"rows": stop - start,
                     **{part: span(ends[(ends >= start) & (ends < stop)])
                        for part, ends in (("train", data.train_ends), ("validation", data.val_ends),
                                           ("test", data.test_ends))}}
            for symbol, (start, stop) in data.markets.items()
        }

    metrics = {
        "test": test_report.to_dict(),
        "validation": val_report.to_dict(),
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_val_loss": result.best_val_loss,
        "samples_per_second": round(result.samples_per_second, 1),
        "train_seconds": round(result.train_seconds, 3),
        "prepare_seconds": round(prep_seconds, 3),
    }
    return TrainResult(
        model=model,
        metrics=metrics,
        architecture=arch,
        feature_names=data.feature_names,
        feature_windows=settings.windows,
        scaler=data.scaler.to_dict(),
        label=label,
        history=result.history,
        extra={
            "split": split,
            "train_config": attrs.asdict(config),
            "data_settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(settings).items()},
        },
    )
