"""The deep-learning toolkit shared by the torch strategy plugins.

Training loop (:func:`fit`), reproducible seeding, progress display, safetensors
weights with compatibility checks, batched and single-window inference, and the
sequence-classifier strategy pipeline the ``dl_lstm`` and ``dl_transformer``
plugins are built on. torch is imported by the sub-modules, and only when one of
the names below is first used: ``import trader.ml`` itself is light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy __getattr__ below returns, for type checkers and IDEs
    from trader.ml.batches import WindowBatches
    from trader.ml.inference import predict_proba, predict_window
    from trader.ml.progress import TrainingProgress
    from trader.ml.report import training_report_png
    from trader.ml.seeding import seed_everything, torch_threads
    from trader.ml.training import FitResult, TrainConfig, fit
    from trader.ml.weights import load_weights, save_weights

__all__ = [
    "TrainConfig",
    "FitResult",
    "WindowBatches",
    "fit",
    "seed_everything",
    "torch_threads",
    "save_weights",
    "load_weights",
    "predict_proba",
    "predict_window",
    "TrainingProgress",
    "training_report_png",
]

_LAZY = {
    "TrainConfig": "trader.ml.training",
    "FitResult": "trader.ml.training",
    "fit": "trader.ml.training",
    "WindowBatches": "trader.ml.batches",
    "seed_everything": "trader.ml.seeding",
    "torch_threads": "trader.ml.seeding",
    "save_weights": "trader.ml.weights",
    "load_weights": "trader.ml.weights",
    "predict_proba": "trader.ml.inference",
    "predict_window": "trader.ml.inference",
    "TrainingProgress": "trader.ml.progress",
    "training_report_png": "trader.ml.report",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trader.ml' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
