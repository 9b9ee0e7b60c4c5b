"""trader strategy plugin ``dl_transformer``: a Transformer classifier with a causal attention mask over the 86 engineered features.

The hooks come from :class:`trader.ml.plugin.SequenceStrategyPlugin`; this package adds
the architecture (``model.py``) and how the shared pipeline builds it (``spec.py``).
This entry module stays light: torch is imported when a hook first needs the model.

Parameters (``[plugins.dl_transformer]`` in ``trader.toml``): ``buy_threshold`` (0.55),
``sell_threshold`` (0.45), ``position_size`` (1.0), ``size_by_confidence`` (false);
training parameters go in ``[plugins.dl_transformer.train]`` (see ``docs/models.md``).
"""

from __future__ import annotations

from typing import Any

from trader.ml.plugin import DEFAULT_SEQUENCE_LENGTH, FEATURE_WINDOWS, SequenceStrategyPlugin

__version__ = "0.1.0"
NAME = "dl_transformer"

__all__ = ["NAME", "__version__", "plugin", "TransformerClassifier", "DEFAULT_SEQUENCE_LENGTH", "FEATURE_WINDOWS"]

#: The object registered through the ``trader.plugins`` entry point.
plugin = SequenceStrategyPlugin(
    name=NAME,
    version=__version__,
    description="Transformer classifier with a causal attention mask over the 86 engineered features.",
    spec="trader_dl_transformer.spec:SPEC",
    feature_windows=FEATURE_WINDOWS,
    sequence_length=DEFAULT_SEQUENCE_LENGTH,
)


def __getattr__(name: str) -> Any:
    if name == "TransformerClassifier":  # importing torch only when the class is asked for
        from trader_dl_transformer.model import TransformerClassifier

        return TransformerClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
