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
)
