"""How a sequence model's calibrated P(up) becomes a BUY, SELL or HOLD (keys of ``[plugins.NAME]``).

The mapping is the one every probability model shares (:mod:`trader.probability_signals`); a
sequence strategy adds only its thread counts, ``inference_threads`` and ``batch_threads``.
"""

from __future__ import annotations

from attrs import field, frozen, validators

from trader.probability_signals import SignalThresholds, signal_from_probability
from trader.types import Signal
from trader.validators import integer

__all__ = ["SequenceSignalSettings", "signal_from_probability", "warmup_signal"]


@frozen
class SequenceSignalSettings(SignalThresholds):
    """:class:`~trader.probability_signals.SignalThresholds` plus ``inference_threads`` (1): the torch
    thread count of the one-window live path, and ``batch_threads`` (None: every usable core): the
    batches of the batched forward pass (backtests) run side by side."""

    inference_threads: int = field(default=1, validator=integer(1))
    batch_threads: int | None = field(default=None, validator=validators.optional(integer(1)))


def warmup_signal(length: int) -> Signal:
    """The HOLD of a row whose window is not complete yet."""
    return Signal.hold(f"warm-up: needs {length} rows of complete features")
