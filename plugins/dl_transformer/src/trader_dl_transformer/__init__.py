"""trader strategy plugin ``dl_transformer``: a Transformer classifier with a causal attention mask over the 86 engineered features.

The hooks come from :class:`trader.ml.basket.BasketSequenceStrategyPlugin` (a basket's
markets in one batched forward pass per step); this package adds
the architecture (``model.py``) and how the shared pipeline builds it (``spec.py``).
This entry module stays light: torch is imported when a hook first needs the model.

Parameters (``[plugins.dl_transformer]`` in ``trader.toml``): ``buy_threshold`` (0.55),
``sell_threshold`` (0.45), ``position_size`` (1.0), ``size_by_confidence`` (false);
training parameters go in ``[plugins.dl_transformer.train]`` (see ``docs/models.md``). All of
them are declared in ``StrategyInfo.params``, so a misspelt key is refused before anything runs.
"""

from __future__ import annotations

from typing import Any

from trader.ml.basket import BasketSequenceStrategyPlugin
from trader.ml.plugin import DEFAULT_SEQUENCE_LENGTH, FEATURE_WINDOWS
from trader.types import ParamSpec

__version__ = "0.1.0"
NAME = "dl_transformer"

__all__ = ["NAME", "__version__", "plugin", "TransformerClassifier", "DEFAULT_SEQUENCE_LENGTH", "FEATURE_WINDOWS",
           "ARCHITECTURE_PARAMS"]

#: The network's ``[plugins.dl_transformer.train]`` keys; ``spec.py`` takes its defaults and bounds from here.
ARCHITECTURE_PARAMS = (
    ParamSpec("d_model", "int", 64, low=2, high=4096, section="train", help="embedding width (a multiple of nhead)"),
    ParamSpec("nhead", "int", 4, low=1, high=64, section="train", help="attention heads"),
    ParamSpec("num_layers", "int", 2, low=1, high=32, section="train", help="encoder layers"),
    ParamSpec("dim_feedforward", "int", 128, low=1, high=16384, section="train", help="feed-forward width"),
    ParamSpec("dropout", "float", 0.1, low=0.0, high=0.9, section="train", help="dropout in the encoder"),
)
#: The positional table's length: at least the window (``sequence_length``), which is its default.
MAX_LEN_PARAM = ParamSpec("max_len", "int", None, low=1, high=10_000, section="train",
                          help="positions the model can hold (default: sequence_length)")

#: The object registered through the ``trader.plugins`` entry point.
plugin = BasketSequenceStrategyPlugin(
    name=NAME,
    version=__version__,
    description="Transformer classifier with a causal attention mask over the 86 engineered features.",
    spec="trader_dl_transformer.spec:SPEC",
    feature_windows=FEATURE_WINDOWS,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
    architecture_params=(*ARCHITECTURE_PARAMS, MAX_LEN_PARAM),
)


def __getattr__(name: str) -> Any:
    if name == "TransformerClassifier":  # importing torch only when the class is asked for
        from trader_dl_transformer.model import TransformerClassifier

        return TransformerClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
