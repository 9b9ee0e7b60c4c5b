"""How the shared sequence-classifier pipeline builds, names and checks the BiLSTM."""

from __future__ import annotations

from trader.ml.sequence import SequenceClassifierSpec
from trader_dl_lstm import DEFAULT_SEQUENCE_LENGTH, FEATURE_WINDOWS, NAME
from trader_dl_lstm.model import INPUT_WEIGHT, BiLSTMClassifier

SPEC = SequenceClassifierSpec(
    plugin=NAME,
    model_class=BiLSTMClassifier,
    input_weight=INPUT_WEIGHT,
    architecture_defaults={"hidden_size": 128, "num_layers": 1, "dropout": 0.2, "head_hidden": 64, "bidirectional": True},
    feature_windows=FEATURE_WINDOWS,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
    # Checked before any module is built, on training and on loading (docs/models.md lists them).
    architecture_bounds={
        "input_size": (1, 4096), "hidden_size": (1, 4096), "num_layers": (1, 16), "head_hidden": (0, 4096),
        "num_classes": (2, 16),
    },
)
