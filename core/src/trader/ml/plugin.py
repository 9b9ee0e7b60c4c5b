"""A ready-made strategy plugin for sequence classifiers built on :mod:`trader.ml.sequence`.

``dl_lstm`` and ``dl_transformer`` are each one instance of :class:`SequenceStrategyPlugin`;
a third party with another torch architecture writes a ``spec`` module (the model class
and its hyperparameters, see ``trader_dl_lstm/spec.py``) and registers an instance::

    plugin = SequenceStrategyPlugin(name="my_gru", version="0.1.0", description="...",
                                    spec="my_gru.spec:SPEC")

    # pyproject.toml
    [project.entry-points."trader.plugins"]
    my_gru = "my_gru:plugin"

This module is light: the spec (and torch) are imported when a hook first needs them.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trader.hookspecs import hookimpl
from trader.types import RiskLimits, Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult

__all__ = ["SequenceStrategyPlugin", "FEATURE_WINDOWS", "DEFAULT_SEQUENCE_LENGTH"]

FEATURE_WINDOWS = (5, 10, 20, 50)
DEFAULT_SEQUENCE_LENGTH = 60


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
    ) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.spec_path = spec
        self.feature_windows = tuple(feature_windows)
        self.sequence_length = sequence_length
        self.risk_limits = risk_limits or RiskLimits()

    @property
    def feature_warmup_bars(self) -> int:
        """Bars before a feature row is valid: the longest window (see ``docs/features.md``)."""
        return max(3, max(self.feature_windows))

    def spec(self) -> Any:
        module, _, attribute = self.spec_path.partition(":")
        return getattr(importlib.import_module(module), attribute)

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
