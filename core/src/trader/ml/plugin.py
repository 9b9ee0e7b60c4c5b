"""A ready-made strategy plugin for sequence classifiers built on :mod:`trader.ml.sequence`.

``dl_lstm`` and ``dl_transformer`` are each one instance of :class:`SequenceStrategyPlugin`;
a third party with another torch architecture writes a ``spec`` module (the model class
and its hyperparameters, see ``trader_dl_lstm/spec.py``) and registers an instance::

    plugin = SequenceStrategyPlugin(name="my_gru", version="0.1.0", description="...",
                                    spec="my_gru.spec:SPEC", architecture_params=(
                                        ParamSpec("hidden_size", "int", 64, low=1, high=4096, section="train"),))

    # pyproject.toml
    [project.entry-points."trader.plugins"]
    my_gru = "my_gru:plugin"

This module is light: the spec (and torch) are imported when a hook first needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import PluginError
from trader.feature_windows import DEFAULT_WINDOWS
from trader.hookspecs import hookimpl
from trader.ml.settings import DEFAULT_SEQUENCE_LENGTH
from trader.probability_signals import THRESHOLD_PARAMS
from trader.types import ParamSpec, RiskLimits, Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult

if TYPE_CHECKING:
    from trader.ml.spec import SequenceClassifierSpec

__all__ = ["SequenceStrategyPlugin", "FEATURE_WINDOWS", "DEFAULT_SEQUENCE_LENGTH", "SIGNAL_PARAMS", "training_params"]

FEATURE_WINDOWS = DEFAULT_WINDOWS


def _train(name: str, kind: str, default: Any = None, help: str = "", **bounds: Any) -> ParamSpec:
    return ParamSpec(name, kind, default, help=help, section="train", **bounds)


#: ``[plugins.NAME]`` of a sequence strategy (read by ``trader.ml.thresholds.SequenceSignalSettings``).
SIGNAL_PARAMS = (
    *THRESHOLD_PARAMS,
    ParamSpec("inference_threads", "int", 1, low=1, help="torch threads of the one-window live path"),
    ParamSpec("batch_threads", "int", None, low=1,
              help="batches of the batched forward pass (backtests) run side by side, one torch thread each "
                   "(default: every usable core)"),
)


def training_params(sequence_length: int, feature_windows: tuple[int, ...]) -> tuple[ParamSpec, ...]:
    """``[plugins.NAME.train]`` keys every sequence strategy reads: the data settings
    (``trader.ml.sequence.DataSettings``) and the optimisation settings (``trader.ml.training.TrainConfig``)."""
    return (
        _train("sequence_length", "int", sequence_length, "candles per window", low=1, high=10_000),
        _train("windows", "int", feature_windows, "windows of the core features", low=2, many=True),
        _train("val_fraction", "float", 0.15, "validation share of the windows (below 0.5)", low=0.0, high=0.5),
        _train("test_fraction", "float", 0.15, "held-out test share of the windows (below 0.5)", low=0.0, high=0.5),
        _train("embargo", "int", 0, "bars dropped after each split boundary", low=0),
        _train("label_horizon", "int", 1, "bars ahead the label looks", low=1),
        _train("label_threshold", "float", 0.0, 'log return an "up" must beat; "fee": the round trip of fee_rate',
               low=0.0, choices=("fee",)),
        _train("fee_rate", "float", 0.001, 'fee per side, for label_threshold = "fee"', low=0.0, high=0.999),
        _train("label_kind", "choice", "binary", "two classes, or three with a flat one", choices=("binary", "ternary")),
        _train("scaler", "choice", "zscore", "feature scaling fit on the training rows", choices=("zscore", "robust")),
        _train("scaler_clip", "float", 10.0, "scaled values are clipped to +-this (above 0)", low=0.0),
        _train("max_fill_bars", "int", 5, "longest gap of missing candles filled in", low=0),
        _train("epochs", "int", 20, "passes over the training windows (--epochs)", low=1),
        _train("batch_size", "int", 256, low=1),
        _train("learning_rate", "float", 1e-3, "AdamW learning rate", low=1e-7, high=10.0, log=True),
        _train("weight_decay", "float", 1e-2, "AdamW weight decay", low=0.0),
        _train("schedule", "choice", "cosine", "learning-rate schedule", choices=("cosine", "constant")),
        _train("warmup_fraction", "float", 0.05, "share of the steps warming up (below 1)", low=0.0, high=1.0),
        _train("grad_clip", "float", 1.0, "gradient-norm clip; 0 turns it off", low=0.0),
        _train("patience", "int", 5, "epochs without improvement before stopping", low=1),
        _train("min_delta", "float", 1e-4, "smallest validation-loss improvement that counts", low=0.0),
        _train("class_weighting", "bool", True, "weight classes to balance them"),
        _train("threads", "int", None, "torch threads for training (default: half the CPU cores, at least 1)", low=1),
        _train("eval_batch_size", "int", 1024, low=1),
        _train("max_batches_per_epoch", "int", None, "cut each epoch short (default: all batches)", low=1),
    )


class SequenceStrategyPlugin:
    """Hook implementations of a sequence-classifier strategy; ``spec`` is ``"module:attribute"``."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        description: str,
        spec: str,
        feature_windows: tuple[int, ...] = FEATURE_WINDOWS,
        sequence_length: int = DEFAULT_SEQUENCE_LENGTH,
        risk_limits: RiskLimits | None = None,
        architecture_params: tuple[ParamSpec, ...] | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.spec_path = spec
        self._spec: SequenceClassifierSpec | None = None
        self.feature_windows = tuple(feature_windows)
        self.sequence_length = sequence_length
        self.risk_limits = risk_limits or RiskLimits()
        #: What a user may set: the signal thresholds, the shared training keys and the network's own
        #: (``architecture_params``, the ``[plugins.NAME.train]`` keys of the spec's architecture defaults).
        #: Without ``architecture_params`` the plugin declares nothing and its tables go unchecked.
        self.params: tuple[ParamSpec, ...] = () if architecture_params is None else (
            *SIGNAL_PARAMS, *training_params(self.sequence_length, self.feature_windows), *architecture_params)

    @property
    def feature_warmup_bars(self) -> int:
        """Bars before a feature row is valid: the longest window (see ``docs/features.md``)."""
        return max(3, max(self.feature_windows))

    def spec(self) -> SequenceClassifierSpec:
        """The spec named by ``spec``, with this plugin's windows and window length filled in
        (loaded once); a one-line PluginError when it is not a spec or disagrees with the plugin."""
        if self._spec is None:
            from trader.ml.spec import SequenceClassifierSpec

            module, _, attribute = self.spec_path.partition(":")
            spec = getattr(importlib.import_module(module), attribute)
            if not isinstance(spec, SequenceClassifierSpec):
                raise PluginError(f"{self.name}: {self.spec_path} is a {type(spec).__name__}, not a SequenceClassifierSpec")
            try:
                self._spec = spec.for_plugin(self.name, self.feature_windows, self.sequence_length)
            except ValueError as exc:
                raise PluginError(f"{self.name}: {self.spec_path}: {exc}") from None
        return self._spec

    def __repr__(self) -> str:
        return f"<SequenceStrategyPlugin {self.name} {self.version}>"

    @hookimpl
    def trader_strategy_info(self) -> StrategyInfo:
        return StrategyInfo(
            name=self.name,
            version=self.version,
            description=self.description,
            warmup_bars=self.feature_warmup_bars + self.sequence_length - 1,
            requires_model=True,
            feature_windows=self.feature_windows,
            risk_limits=self.risk_limits,
            params=self.params,
            pooled_training=True,  # trader.ml.prepare pools TrainRequest.markets
        )

    @hookimpl
    def trader_train(self, request: TrainRequest) -> TrainResult:
        from trader.ml.sequence import train_sequence_classifier

        return train_sequence_classifier(self.spec(), request)

    @hookimpl
    def trader_save_model(self, model: Any, directory: Path) -> Sequence[str]:
        from trader.ml.sequence import save_sequence_model

        return save_sequence_model(self.spec(), model, directory)

    @hookimpl
    def trader_load_model(self, directory: Path, manifest: dict[str, Any]) -> Any:
        from trader.ml.sequence import load_sequence_model

        return load_sequence_model(self.spec(), directory, manifest)

    @hookimpl
    def trader_generate_signals(self, request: SignalRequest) -> Sequence[Signal]:
        from trader.ml.sequence import generate_sequence_signals

        return generate_sequence_signals(self.spec(), request)
