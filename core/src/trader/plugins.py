"""Finding, loading and calling plugins: one :class:`TraderPluginManager` per run."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from trader import hookspecs
from trader.errors import PluginError, UnknownPluginError

if TYPE_CHECKING:
    from trader.strategy import Strategy
    from trader.types import StrategyInfo

__all__ = ["ENTRY_POINT_GROUP", "PluginRecord", "TraderPluginManager", "BUILTIN_PLUGINS", "CORE_PLUGINS"]

log = logging.getLogger("trader.plugins")

ENTRY_POINT_GROUP = "trader.plugins"

#: The core's own plugins, registered through the same hooks third parties use.
#: Core plugins cannot be disabled: the risk audit and state store are not optional.
CORE_PLUGINS: dict[str, str] = {
    "core_risk": "trader.builtin.risk",
    "core_state": "trader.builtin.state",
}
#: Built-in strategies (the yardstick); these can be disabled like any plugin.
BUILTIN_PLUGINS: dict[str, str] = {
    "buy_and_hold": "trader.builtin.buy_and_hold",
}


@attrs.frozen
class PluginRecord:
    """What ``trader plugins`` reports about one plugin."""

    name: str
    distribution: str
    version: str
    status: str  # "loaded" | "builtin" | "core" | "disabled" | "error"
    hooks: tuple[str, ...] = ()
    error: str | None = None
    is_strategy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def disabled_from_env() -> set[str]:
    raw = os.environ.get("TRADER_DISABLED_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


class TraderPluginManager:
    """A ``pluggy.PluginManager`` for one run, with typed helpers.

    Entry points are loaded one at a time: a plugin that fails to import or that
    implements unknown hooks is recorded with its distribution, version and error,
    and everything else keeps working.
    """

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        disabled: Iterable[str] | None = None,
        trace: bool | None = None,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.disabled = set(disabled) if disabled is not None else disabled_from_env()
        if trace if trace is not None else os.environ.get("TRADER_TRACE_PLUGINS") == "1":
            self._enable_tracing()
        self._register_builtins()
        if load_entrypoints:
            self.load_entrypoints()
        self.pm.check_pending()

    # ------------------------------------------------------------------ registration

    @property
    def hook(self) -> Any:
        return self.pm.hook

    def _register_builtins(self) -> None:
        import importlib

        from trader import __version__

        refused = sorted(self.disabled & set(CORE_PLUGINS))
        if refused:
            log.warning("core plugins cannot be disabled (risk audit and state store always run): %s", ", ".join(refused))
        for name, module_name in CORE_PLUGINS.items():
            self.register(importlib.import_module(module_name), name, "trader-core", __version__, status="core")
        for name, module_name in BUILTIN_PLUGINS.items():
            if name in self.disabled:
                self.records[name] = PluginRecord(name, "trader-core", __version__, "disabled")
                continue
            self.register(importlib.import_module(module_name), name, "trader-core", __version__, status="builtin")

    def register(
        self,
        plugin: object,
        name: str,
        distribution: str = "<in-process>",
        version: str = "0",
        *,
        status: str = "loaded",
    ) -> PluginRecord:
        """Register ``plugin`` under ``name``; unknown hooks are refused and reported."""
        if name in self.records and self.records[name].status != "disabled":
            raise PluginError(f"plugin {name!r} is already registered (by {self.records[name].distribution})")
        self.pm.register(plugin, name=name)
        try:
            self._check_hooks(name, plugin)
        except PluginError:
            self.pm.unregister(plugin)
            raise
        hooks = tuple(sorted(impl_name for impl_name in self._hook_names(plugin)))
        record = PluginRecord(
            name,
            distribution,
            version,
            status,
            hooks,
            is_strategy="trader_strategy_info" in hooks,
        )
        self.records[name] = record
        return record

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.records.pop(name, None)

    @contextmanager
    def registered(self, plugin: object, name: str) -> Iterator[PluginRecord]:
        """Register ``plugin`` for the duration of a ``with`` block (tests, the conformance suite)."""
        record = self.register(plugin, name)
        try:
            yield record
        finally:
            self.unregister(name)

    def _hook_names(self, plugin: object) -> list[str]:
        return [caller.name for caller in (self.pm.get_hookcallers(plugin) or [])]

    def _check_hooks(self, name: str, plugin: object) -> None:
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                raise PluginError(f"plugin {name!r} implements unknown hook {caller.name!r}")
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    unknown = set(impl.argnames) - set(caller.spec.argnames)
                    if unknown:
                        raise PluginError(
                            f"plugin {name!r}: hook {caller.name!r} asks for unknown argument(s) "
                            f"{', '.join(sorted(unknown))}"
                        )

    def load_entrypoints(self) -> None:
        """Load every ``trader.plugins`` entry point, one at a time, tolerating failures."""
        from importlib.metadata import entry_points

        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = getattr(ep, "dist", None)
            dist_name = dist.metadata["Name"] if dist is not None else "<unknown>"
            dist_version = dist.version if dist is not None else "<unknown>"
            if ep.name in self.records and self.records[ep.name].status != "disabled":
                self.records.setdefault(
                    f"{ep.name} ({dist_name})",
                    PluginRecord(ep.name, dist_name, dist_version, "error", error="name already taken"),
                )
                continue
            if ep.name in self.disabled:
                self.records[ep.name] = PluginRecord(ep.name, dist_name, dist_version, "disabled")
                continue
            try:
                plugin = ep.load()
                self.register(plugin, ep.name, dist_name, dist_version)
            except Exception as exc:  # one broken plugin must not break the host
                message = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
                log.warning("plugin %s (%s %s) failed to load: %s", ep.name, dist_name, dist_version, message)
                self.records[ep.name] = PluginRecord(ep.name, dist_name, dist_version, "error", error=message)

    # ------------------------------------------------------------------ tracing

    def _enable_tracing(self) -> None:
        trace_log = logging.getLogger("trader.plugins.trace")
        starts: list[float] = []

        def before(hook_name: str, hook_impls: list, kwargs: dict) -> None:
            starts.append(time.perf_counter())
            plugins = ", ".join(impl.plugin_name for impl in hook_impls)
            trace_log.info("hook %s -> [%s] args=%s", hook_name, plugins, sorted(kwargs))

        def after(outcome: Any, hook_name: str, hook_impls: list, kwargs: dict) -> None:
            elapsed = (time.perf_counter() - starts.pop()) * 1000 if starts else float("nan")
            failed = outcome.exception is not None
            trace_log.info("hook %s done in %.2f ms%s", hook_name, elapsed, " (raised)" if failed else "")

        self.pm.add_hookcall_monitoring(before, after)

    # ------------------------------------------------------------------ strategies

    def strategy_names(self) -> list[str]:
        return sorted(name for name, rec in self.records.items() if rec.is_strategy and rec.status != "error")

    def strategy(self, name: str) -> Strategy:
        """The named strategy, or :class:`UnknownPluginError` listing the installed ones."""
        from trader.strategy import Strategy

        record = self.records.get(name)
        if record is None or not record.is_strategy or record.status in ("disabled", "error"):
            installed = ", ".join(self.strategy_names()) or "none"
            if record is not None and record.status == "disabled":
                raise UnknownPluginError(f"strategy {name!r} is disabled by TRADER_DISABLED_PLUGINS (installed: {installed})")
            if record is not None and record.status == "error":
                raise UnknownPluginError(
                    f"strategy {name!r} failed to load ({record.distribution} {record.version}): {record.error}"
                )
            raise UnknownPluginError(f"unknown strategy {name!r}; installed strategies: {installed}")
        strategy = Strategy(self, name)
        _ = strategy.info  # validates the metadata: a broken strategy is refused by name
        return strategy

    def strategy_info(self, name: str) -> StrategyInfo:
        return self.strategy(name).info

    def subset_hook(self, hook_name: str, keep: Iterable[str]) -> Any:
        """A hook caller that reaches only the plugins named in ``keep``."""
        keep = set(keep)
        remove = [plugin for plugin_name, plugin in self.pm.list_name_plugin() if plugin_name not in keep]
        return self.pm.subset_hook_caller(hook_name, remove_plugins=remove)

    def non_strategy_plugins(self) -> list[str]:
        return [name for name, rec in self.records.items() if not rec.is_strategy and rec.status in ("core", "builtin", "loaded")]
