"""The sequence-classifier strategy pipeline shared by ``dl_lstm`` and ``dl_transformer``.

A plugin describes its network with a :class:`SequenceClassifierSpec`; the pipeline
does the rest, the same way for both, one stage per module:

- :mod:`trader.ml.spec`: the spec and the architecture bounds checked before anything is built;
- :mod:`trader.ml.settings`: how candles become windows and labels (``[plugins.NAME.train]``);
- :mod:`trader.ml.prepare` and :mod:`trader.ml.split`: features, fee-aware labels, windows in one
  gap-free segment past the warm-up, a chronological train/validation/test split purged at each
  boundary (plus an optional embargo), the scaler fit on training rows only;
- :mod:`trader.ml.train_classifier`: the ``trader_train`` hook (:func:`trader.ml.training.fit`, then the
  held-out metrics beside the majority baseline);
- :mod:`trader.ml.model`: :class:`SequenceModel`, the trained network and everything needed to feed it;
- :mod:`trader.ml.persistence`: weights in safetensors, everything else in the manifest; loading checks
  the architecture and the weights file's header (on a meta-device skeleton) before building the network;
- :mod:`trader.ml.thresholds` and :mod:`trader.ml.signals`: calibrated P(up) -> BUY / SELL / HOLD, batched
  over every requested row or one window for live trading.

This module re-exports the names a plugin uses, so ``from trader.ml.sequence import
SequenceClassifierSpec`` keeps working.
"""

from __future__ import annotations

from trader.ml.model import SequenceModel
from trader.ml.persistence import WEIGHTS_FILE, load_sequence_model, save_sequence_model
from trader.ml.prepare import PreparedWindows, prepare_training_data
from trader.ml.settings import DataSettings
from trader.ml.signals import generate_sequence_signals
from trader.ml.spec import MAX_SEQUENCE_LENGTH, MAX_WINDOWS, SequenceClassifierSpec, check_architecture
from trader.ml.thresholds import SequenceSignalSettings
from trader.ml.train_classifier import train_sequence_classifier

__all__ = [
    "SequenceClassifierSpec",
    "SequenceModel",
    "SequenceSignalSettings",
    "DataSettings",
    "PreparedWindows",
    "WEIGHTS_FILE",
    "train_sequence_classifier",
    "save_sequence_model",
    "load_sequence_model",
    "generate_sequence_signals",
    "prepare_training_data",
    "check_architecture",
    "MAX_SEQUENCE_LENGTH",
    "MAX_WINDOWS",
]
