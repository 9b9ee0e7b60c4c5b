"""A handle on one strategy plugin: its hooks are called on it alone."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import NotSupportedError, PluginError, TraderError
from trader.types import Signal, SignalRequest, StrategyInfo, TrainRequest, TrainResult

if TYPE_CHECKING:
    from trader.plugins import TraderPluginManager

__all__ = ["Strategy"]


class Strategy:
    """The named strategy of a :class:`~trader.plugins.TraderPluginManager`.

    Strategy hooks are called through a subset hook caller that contains only this
    plugin, so two strategies never answer each other's calls.
    """

    def __init__(self, manager: TraderPluginManager, name: str) -> None:
        self.manager = manager
        self.name = name
        self.record = manager.records[name]

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call ``hook_name`` on this strategy alone; a plugin's own exception becomes a PluginError."""
        try:
            return self.manager.subset_hook(hook_name, [self.name])(**kwargs)
        except TraderError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {self.name!r}: {hook_name} raised {type(exc).__name__}: {exc}") from exc

    def implements(self, hook_name: str) -> bool:
        return hook_name in self.record.hooks

    @cached_property
    def info(self) -> StrategyInfo:
        info = self._call("trader_strategy_info")
        if not isinstance(info, StrategyInfo):
            raise PluginError(f"plugin {self.name!r}: trader_strategy_info returned {type(info).__name__}, not StrategyInfo")
        if info.name != self.name:
            raise PluginError(f"plugin {self.name!r}: trader_strategy_info names itself {info.name!r}")
        return info

    def generate_signals(self, request: SignalRequest) -> list[Signal]:
        """Signals for ``request.at``; raises :class:`PluginError` if the plugin breaks the contract."""
        if not self.implements("trader_generate_signals"):
            raise NotSupportedError(f"strategy {self.name!r} does not implement trader_generate_signals")
        signals = self._call("trader_generate_signals", request=request)
        if signals is None:
            raise PluginError(f"plugin {self.name!r}: trader_generate_signals returned None")
        signals = list(signals)
        if len(signals) != len(request.at):
            raise PluginError(
                f"plugin {self.name!r}: trader_generate_signals returned {len(signals)} signals for {len(request.at)} rows"
            )
        for signal in signals:
            if not isinstance(signal, Signal):
                raise PluginError(f"plugin {self.name!r}: trader_generate_signals returned {type(signal).__name__}, not Signal")
        return signals

    @property
    def trainable(self) -> bool:
        return self.implements("trader_train")

    def train(self, request: TrainRequest) -> TrainResult:
        if not self.trainable:
            raise NotSupportedError(f"strategy {self.name!r} has no model to train")
        result = self._call("trader_train", request=request)
        if not isinstance(result, TrainResult):
            raise PluginError(f"plugin {self.name!r}: trader_train returned {type(result).__name__}, not TrainResult")
        return result

    def save_model(self, model: Any, directory: Path) -> Sequence[str]:
        files = self._call("trader_save_model", model=model, directory=directory)
        if not files:
            raise PluginError(f"plugin {self.name!r}: trader_save_model wrote no files")
        return list(files)

    def load_model(self, directory: Path, manifest: dict[str, Any]) -> Any:
        model = self._call("trader_load_model", directory=directory, manifest=manifest)
        if model is None:
            raise PluginError(f"plugin {self.name!r}: trader_load_model returned None")
        return model
