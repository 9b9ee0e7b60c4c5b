"""The exception hierarchy: every error trader raises on purpose is a :class:`TraderError`.

The CLI prints a ``TraderError`` as one line and exits with its ``exit_code``;
anything else is a bug and is reported as an internal error (``--debug`` shows
the traceback).
"""

from __future__ import annotations

__all__ = [
    "train_command",
    "TraderError",
    "ConfigError",
    "PluginError",
    "UnknownPluginError",
    "DataError",
    "ValidationError",
    "ExchangeError",
    "ModelError",
    "ModelNotFoundError",
    "ArtifactError",
    "StateError",
    "LockedError",
    "NotSupportedError",
]


class TraderError(Exception):
    """Base class for errors a user can act on. ``exit_code`` is the CLI's exit status."""

    exit_code: int = 1


class ConfigError(TraderError):
    """``trader.toml`` or a command-line option is wrong."""

    exit_code = 2


class PluginError(TraderError):
    """A plugin failed to load, or broke its hook contract."""


class UnknownPluginError(PluginError):
    """No installed strategy has the requested name."""

    exit_code = 2


class DataError(TraderError):
    """Market data is missing or unusable."""


class ValidationError(DataError):
    """Input data broke a validation rule; the message names file, row and field."""


class ExchangeError(TraderError):
    """The exchange refused a request or could not be reached after retries."""


class ModelError(TraderError):
    """A model could not be trained, saved or loaded."""


class ModelNotFoundError(ModelError):
    """No trained model exists for the strategy, symbol and timeframe."""

    exit_code = 2


def train_command(plugin: str, symbol: str, timeframe: str) -> str:
    """The command that trains the model a :class:`ModelNotFoundError` is about (for its message); a pooled
    model's ``AAA/USDT+BBB/USDT`` becomes a repeated ``--symbol`` (no symbol holds a '+')."""
    symbols = " ".join(f"--symbol {s}" for s in symbol.split("+"))
    return f"trader train --plugin {plugin} {symbols} --timeframe {timeframe}"


class ArtifactError(ModelError):
    """A model artifact failed its integrity or compatibility checks and was refused."""


class StateError(TraderError):
    """A strategy's state store is unusable."""


class LockedError(StateError):
    """Another process is already running this strategy namespace."""


class NotSupportedError(TraderError):
    """The plugin or command does not (yet) support what was asked."""

    exit_code = 2
