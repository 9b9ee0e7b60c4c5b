"""How the shared sequence-classifier pipeline builds, names and checks the causal Transformer."""

from __future__ import annotations

from trader.ml.sequence import SequenceClassifierSpec
from trader.ml.spec import param_bounds
from trader_dl_transformer import ARCHITECTURE_PARAMS, MAX_LEN_PARAM, NAME
from trader_dl_transformer.model import INPUT_WEIGHT, TransformerClassifier

SPEC = SequenceClassifierSpec(
    plugin=NAME,
    model_class=TransformerClassifier,
    input_weight=INPUT_WEIGHT,
    architecture_defaults={p.name: p.default for p in ARCHITECTURE_PARAMS},
    length_argument=MAX_LEN_PARAM.name,
    # Checked before any module is built, on training and on loading (docs/models.md lists them).
    # The declared ones come from the plugin's ParamSpecs, so what a user may set and what loads agree.
    architecture_bounds={
        "input_size": (1, 4096), "num_classes": (2, 16),
        **{p.name: param_bounds(p) for p in (*ARCHITECTURE_PARAMS, MAX_LEN_PARAM) if p.kind == "int"},
    },
)
