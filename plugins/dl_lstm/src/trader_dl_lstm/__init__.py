"""trader strategy plugin ``dl_lstm``: a bidirectional LSTM classifier over the 86 engineered features.

This entry module stays light (no torch, numpy or pandas at import): the hooks
import the model and the shared toolkit (:mod:`trader.ml.sequence`) when called.

Parameters (``[plugins.dl_lstm]`` in ``trader.toml``): ``buy_threshold`` (0.55),
``sell_threshold`` (0.45), ``position_size`` (1.0), ``size_by_confidence`` (false);
training parameters go in ``[plugins.dl_lstm.train]`` (see ``docs/models.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trader import Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult, hookimpl

__version__ = "0.1.0"
NAME = "dl_lstm"
FEATURE_WINDOWS = (5, 10, 20, 50)
#: Bars before a feature row is valid for FEATURE_WINDOWS (the longest window).
FEATURE_WARMUP_BARS = 50
DEFAULT_SEQUENCE_LENGTH = 60

__all__ = ["NAME", "__version__", "BiLSTMClassifier"]


def __getattr__(name: str) -> Any:
    if name == "BiLSTMClassifier":  # importing torch only when the class is asked for
        from trader_dl_lstm.model import BiLSTMClassifier

        return BiLSTMClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _spec():
    from trader_dl_lstm.spec import SPEC

    return SPEC


@hookimpl
def trader_strategy_info() -> StrategyInfo:
    return StrategyInfo(
        name=NAME,
        version=__version__,
        description="Bidirectional LSTM classifier over the 86 engineered features.",
        warmup_bars=FEATURE_WARMUP_BARS + DEFAULT_SEQUENCE_LENGTH - 1,
        requires_model=True,
        feature_windows=FEATURE_WINDOWS,
    )


@hookimpl
def trader_train(request: TrainRequest) -> TrainResult:
    from trader.ml.sequence import train_sequence_classifier

    return train_sequence_classifier(_spec(), request)


@hookimpl
def trader_save_model(model: Any, directory: Path) -> Sequence[str]:
    from trader.ml.sequence import save_sequence_model

    return save_sequence_model(_spec(), model, directory)


@hookimpl
def trader_load_model(directory: Path, manifest: dict[str, Any]) -> Any:
    from trader.ml.sequence import load_sequence_model

    return load_sequence_model(_spec(), directory, manifest)


@hookimpl
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    from trader.ml.sequence import generate_sequence_signals

    return generate_sequence_signals(_spec(), request)
