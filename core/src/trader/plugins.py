"""Finding, loading and calling plugins: one :class:`TraderPluginManager` per run.

Two ways to load the installed entry points:

- **eager** (``strategies=None``, the Python API's default): every plugin is imported in
  this process, one at a time; an exception at import (``SystemExit`` included) is that
  plugin's error.
- **lazy** (``strategies=[...]``, what the CLI uses): the entry points are read from package
  metadata, the probe (:mod:`trader.plugin_probe`) imports each in a throw-away process to
  tell strategies from other plugins, and this process imports only the non-strategy
  plugins and the strategies named.

Either way a name must be a lower-case identifier that the core does not reserve, and a
name registered by two distributions is a conflict: neither is loaded.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from trader import hookspecs
from trader.entrypoints import (
    ENTRY_POINT_GROUP,
    DisabledPlugins,
    PluginSpec,
    check_hooks,
    exception_line,
    import_entry_point,
    import_failure,
    installed_specs,
    load_plugin,
    name_problem,
)
from trader.errors import PluginError, UnknownPluginError

if TYPE_CHECKING:
    from trader.plugin_probe import ProbeResult
    from trader.strategy import Strategy
    from trader.types import StrategyInfo

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginRecord",
    "PluginSpec",
    "TraderPluginManager",
    "BUILTIN_PLUGINS",
    "CORE_PLUGINS",
    "load_plugin",
]

log = logging.getLogger("trader.plugins")

#: The core's own plugins, registered through the same hooks third parties use.
#: Core plugins cannot be disabled: the risk audit and state store are not optional.
CORE_PLUGINS: dict[str, str] = {
    "core_risk": "trader.builtin.risk",
    "core_state": "trader.builtin.state",
}
#: Built-in strategies (the yardstick); these can be disabled like any plugin.
BUILTIN_PLUGINS: dict[str, str] = {
    "buy_and_hold": "trader.builtin.buy_and_hold",
    "sma_cross": "trader.builtin.sma_cross",
    "momentum_rank": "trader.builtin.momentum_rank",
}
_CORE_DISTRIBUTION = "trader-core"


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
    import_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def disabled_from_env() -> set[str]:
    """``TRADER_DISABLED_PLUGINS``: comma-separated ``name`` or ``name@distribution`` items."""
    raw = os.environ.get("TRADER_DISABLED_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


class TraderPluginManager:
    """A ``pluggy.PluginManager`` for one run, with typed helpers.

    ``strategies=None`` imports every entry point in this process (eager). An iterable,
    even an empty one, is lazy: the probe classifies the entry points, and only the
    non-strategy plugins and these strategies are imported. ``records`` lists every
    plugin either way. With ``on_demand`` a lazy manager imports any other strategy the
    first time :meth:`strategy` asks for it; ``import_plugins=False`` imports no entry
    point at all (``trader plugins``). ``probe_cache`` is the file the probe's results are
    kept in; ``refresh_probe`` ignores what it holds.
    """

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        disabled: Iterable[str] | None = None,
        trace: bool | None = None,
        strategies: Iterable[str] | None = None,
        on_demand: bool = False,
        import_plugins: bool = True,
        probe_cache: Path | None = None,
        refresh_probe: bool = False,
    ) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}
        self.disabled = set(disabled) if disabled is not None else disabled_from_env()
        self._disabled = DisabledPlugins.parse(self.disabled)
        self._specs: dict[str, PluginSpec] = {}
        self._lazy = strategies is not None
        self._wanted = set(strategies or ())
        self._on_demand = on_demand
        self._import_plugins = import_plugins
        self._probe_cache = probe_cache
        self._refresh_probe = refresh_probe
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

        refused = sorted(self._disabled.names & set(CORE_PLUGINS))
        if refused:
            log.warning("core plugins cannot be disabled (risk audit and state store always run): %s", ", ".join(refused))
        for status, plugins in (("core", CORE_PLUGINS), ("builtin", BUILTIN_PLUGINS)):
            for name, module_name in plugins.items():
                spec = PluginSpec(name, module_name, _CORE_DISTRIBUTION, __version__)
                self._specs[name] = spec
                if status == "builtin" and self._disabled.disables(spec):
                    self.records[name] = PluginRecord(name, _CORE_DISTRIBUTION, __version__, "disabled")
                    continue
                self.register(importlib.import_module(module_name), name, _CORE_DISTRIBUTION, __version__, status=status)

    def register(
        self,
        plugin: object,
        name: str,
        distribution: str = "<in-process>",
        version: str = "0",
        *,
        status: str = "loaded",
        import_ms: float | None = None,
    ) -> PluginRecord:
        """Register ``plugin`` under ``name``; unknown hooks are refused and reported."""
        if name in self.records and self.records[name].status != "disabled" and self.pm.get_plugin(name) is not None:
            raise PluginError(f"plugin {name!r} is already registered (by {self.records[name].distribution})")
        self.pm.register(plugin, name=name)
        try:
            check_hooks(self.pm, name, plugin)
        except PluginError:
            self.pm.unregister(plugin)
            raise
        hooks = tuple(sorted(self._hook_names(plugin)))
        record = PluginRecord(name, distribution, version, status, hooks, is_strategy="trader_strategy_info" in hooks,
                              import_ms=import_ms)
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

    def entry_point(self, name: str) -> PluginSpec | None:
        """The one registration that ``name`` stands for (built-ins too); ``None`` if there is none
        (unknown, disabled, an invalid name, or claimed by several distributions)."""
        record = self.records.get(name)
        if record is None or record.status == "disabled":
            return None
        return self._specs.get(name)

    # ------------------------------------------------------------------ entry points

    def load_entrypoints(self) -> None:
        """Read every ``trader.plugins`` entry point, refuse bad names and conflicts, then load (see the class)."""
        usable = self._admit(installed_specs())
        if not self._lazy:
            for spec in usable:
                self._load(spec)
            return
        from trader.plugin_probe import probe

        results = probe(usable, cache=self._probe_cache, refresh=self._refresh_probe, retry_errors=self._wanted)
        for spec in usable:
            result = results[spec.name]
            wanted = spec.name in self._wanted or not result.is_strategy
            if result.error is None and wanted and self._import_plugins:
                self._load(spec, probed=result)
            else:
                self._record_probed(spec, result)

    def _key(self, spec: PluginSpec) -> str:
        return spec.name if spec.name not in self.records else f"{spec.name}@{spec.distribution}"

    def _admit(self, specs: list[PluginSpec]) -> list[PluginSpec]:
        """The registrations that may load; the others get a record saying why not."""
        by_name: dict[str, list[PluginSpec]] = {}
        for spec in specs:
            by_name.setdefault(spec.name, []).append(spec)
        usable = []
        for name, claims in by_name.items():
            active = [s for s in claims if not self._disabled.disables(s)]
            problem = name_problem(name)
            if problem is None and len(active) > 1:
                problem = _conflict(name, active)
            if problem is not None:
                for spec in active:
                    if not self._lazy:  # a lazy manager leaves them to trader plugins and to the command naming them
                        log.warning("plugin %s (%s) is not loaded: %s", ascii(name), spec.owner, problem)
                    self.records[self._key(spec)] = PluginRecord(name, spec.distribution, spec.version, "error",
                                                                 error=problem)
            elif active:
                self._specs[name] = active[0]
                self.records[name] = PluginRecord(name, active[0].distribution, active[0].version, "pending")
                usable.append(active[0])
            for spec in claims:
                if spec not in active:
                    self.records[self._key(spec)] = PluginRecord(name, spec.distribution, spec.version, "disabled")
        return usable

    def _load(self, spec: PluginSpec, probed: ProbeResult | None = None) -> None:
        """Import and register ``spec`` here; whatever goes wrong becomes its record's error."""
        start = time.perf_counter()
        imported = False
        try:
            plugin = import_entry_point(spec)
            imported = True
            import_ms = (time.perf_counter() - start) * 1000
            record = self.register(plugin, spec.name, spec.distribution, spec.version, import_ms=import_ms)
        except BaseException as exc:  # noqa: BLE001  sys.exit() at import included: the host goes on
            if not imported:
                message = import_failure(exc)
            else:
                message = str(exc) if isinstance(exc, PluginError) else exception_line(exc)
            log.warning("plugin %s (%s) failed to load: %s", spec.name, spec.owner, message)
            self.records[spec.name] = PluginRecord(spec.name, spec.distribution, spec.version, "error",
                                                   error=message, is_strategy=bool(probed and probed.is_strategy))
            return
        if self._lazy and record.is_strategy and spec.name not in self._wanted:
            # The probe's classification was stale (or the plugin behaves differently there): keep it out.
            log.warning("plugin %s was probed as a plugin but is a strategy; it is not used in this run", spec.name)
            self.pm.unregister(name=spec.name)
            self.records[spec.name] = attrs.evolve(record, status="error",
                                                   error="a strategy when imported here, though the probe found a plugin; "
                                                         "run trader plugins to probe again")

    def _record_probed(self, spec: PluginSpec, result: ProbeResult) -> None:
        status = "error" if result.error else "loaded"
        self.records[spec.name] = PluginRecord(spec.name, spec.distribution, spec.version, status, result.hooks,
                                               result.error, result.is_strategy, result.import_ms)

    def _imported(self, name: str) -> bool:
        return self.pm.get_plugin(name) is not None

    # ------------------------------------------------------------------ tracing

    def _enable_tracing(self) -> None:
        trace_log = logging.getLogger("trader.plugins.trace")
        starts: list[float] = []

        def before(hook_name: str, hook_impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]) -> None:
            starts.append(time.perf_counter())
            plugins = ", ".join(impl.plugin_name for impl in hook_impls)
            trace_log.info("hook %s -> [%s] args=%s", hook_name, plugins, sorted(kwargs))

        def after(outcome: pluggy.Result[Any], hook_name: str, hook_impls: Sequence[pluggy.HookImpl],
                  kwargs: Mapping[str, Any]) -> None:
            elapsed = (time.perf_counter() - starts.pop()) * 1000 if starts else float("nan")
            failed = outcome.exception is not None
            trace_log.info("hook %s done in %.2f ms%s", hook_name, elapsed, " (raised)" if failed else "")

        self.pm.add_hookcall_monitoring(before, after)

    # ------------------------------------------------------------------ strategies

    def strategy_names(self) -> list[str]:
        """Every installed strategy that can be used, imported in this process or not."""
        return sorted(name for name, rec in self.records.items()
                      if rec.is_strategy and rec.status not in ("error", "disabled") and rec.name == name)

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
        if not self._imported(name):
            if not (self._on_demand and self._import_plugins):
                raise PluginError(
                    f"strategy {name!r} is installed but not imported in this process "
                    f"(this manager imports only {', '.join(sorted(self._wanted)) or 'no strategy'})"
                )
            self._wanted.add(name)
            self._load(self._specs[name])
            return self.strategy(name)
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
        return [name for name, rec in self.records.items()
                if not rec.is_strategy and rec.status in ("core", "builtin", "loaded") and self._imported(name)]


def _conflict(name: str, claims: list[PluginSpec]) -> str:
    owners = " and ".join(spec.owner for spec in claims)
    fixes = " or ".join(f"{name}@{spec.distribution}" for spec in claims)
    dists = " or ".join(spec.distribution for spec in claims)
    return (f"plugin name {name!r} is claimed by {owners}, so none of them is loaded; "
            f"keep one: pip uninstall {dists}, or set TRADER_DISABLED_PLUGINS={fixes}")
