"""How the shared sequence-classifier pipeline builds, names and checks the BiLSTM."""

from __future__ import annotations

from trader.ml.sequence import SequenceClassifierSpec
from trader.ml.spec import param_bounds
from trader_dl_lstm import ARCHITECTURE_PARAMS, NAME
from trader_dl_lstm.model import INPUT_WEIGHT, BiLSTMClassifier

SPEC = SequenceClassifierSpec(
    plugin=NAME,
    model_class=BiLSTMClassifier,
    input_weight=INPUT_WEIGHT,
    architecture_defaults={p.name: p.default for p in ARCHITECTURE_PARAMS},
    # Checked before any module is built, on training and on loading (docs/models.md lists them).
    # The declared ones come from ARCHITECTURE_PARAMS, so what a user may set and what loads agree.
    architecture_bounds={
        "input_size": (1, 4096), "num_classes": (2, 16),
        **{p.name: param_bounds(p) for p in ARCHITECTURE_PARAMS if p.kind == "int"},
    },
)
