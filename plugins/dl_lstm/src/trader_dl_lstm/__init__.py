"""trader strategy plugin ``dl_lstm``: a bidirectional LSTM classifier over the 86 engineered features.

The hooks come from :class:`trader.ml.basket.BasketSequenceStrategyPlugin` (a basket's
markets in one batched forward pass per step); this package adds
the architecture (``model.py``) and how the shared pipeline builds it (``spec.py``).
This entry module stays light: torch is imported when a hook first needs the model.

Parameters (``[plugins.dl_lstm]`` in ``trader.toml``): ``buy_threshold`` (0.55),
``sell_threshold`` (0.45), ``position_size`` (1.0), ``size_by_confidence`` (false);
training parameters go in ``[plugins.dl_lstm.train]`` (see ``docs/models.md``). All of them
are declared in ``StrategyInfo.params``, so a misspelt key is refused before anything runs.
"""

from __future__ import annotations

from typing import Any

from trader.ml.basket import BasketSequenceStrategyPlugin
from trader.ml.plugin import DEFAULT_SEQUENCE_LENGTH, FEATURE_WINDOWS
from trader.types import ParamSpec

__version__ = "0.1.0"
NAME = "dl_lstm"

__all__ = ["NAME", "__version__", "plugin", "BiLSTMClassifier", "DEFAULT_SEQUENCE_LENGTH", "FEATURE_WINDOWS",
           "ARCHITECTURE_PARAMS"]

#: The network's ``[plugins.dl_lstm.train]`` keys; ``spec.py`` takes its defaults and bounds from here.
ARCHITECTURE_PARAMS = (
    ParamSpec("hidden_size", "int", 128, low=1, high=4096, section="train", help="LSTM units per direction"),
    ParamSpec("num_layers", "int", 1, low=1, high=16, section="train", help="stacked LSTM layers"),
    ParamSpec("dropout", "float", 0.2, low=0.0, high=0.9, section="train", help="dropout between layers and in the head"),
    ParamSpec("head_hidden", "int", 64, low=0, high=4096, section="train", help="hidden units of the head (0: none)"),
    ParamSpec("bidirectional", "bool", True, section="train", help="read the window both ways"),
)

#: The object registered through the ``trader.plugins`` entry point.
plugin = BasketSequenceStrategyPlugin(
    name=NAME,
    version=__version__,
    description="Bidirectional LSTM classifier over the 86 engineered features.",
    spec="trader_dl_lstm.spec:SPEC",
    feature_windows=FEATURE_WINDOWS,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
    architecture_params=ARCHITECTURE_PARAMS,
)


def __getattr__(name: str) -> Any:
    if name == "BiLSTMClassifier":  # importing torch only when the class is asked for
        from trader_dl_lstm.model import BiLSTMClassifier

        return BiLSTMClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
