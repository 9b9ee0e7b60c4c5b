"""How the shared sequence-classifier pipeline builds, names and checks the causal Transformer."""

from __future__ import annotations

from trader.ml.sequence import SequenceClassifierSpec
from trader_dl_transformer import DEFAULT_SEQUENCE_LENGTH, FEATURE_WINDOWS, NAME
from trader_dl_transformer.model import INPUT_WEIGHT, TransformerClassifier

SPEC = SequenceClassifierSpec(
    plugin=NAME,
    model_class=TransformerClassifier,
    input_weight=INPUT_WEIGHT,
    architecture_defaults={"d_model": 64, "nhead": 4, "num_layers": 2, "dim_feedforward": 128, "dropout": 0.1},
    feature_windows=FEATURE_WINDOWS,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
    length_argument="max_len",
    # Checked before any module is built, on training and on loading (docs/models.md lists them).
    architecture_bounds={
        "input_size": (1, 4096), "d_model": (2, 4096), "nhead": (1, 64), "num_layers": (1, 32),
        "dim_feedforward": (1, 16384), "num_classes": (2, 16), "max_len": (1, 10_000),
    },
)
