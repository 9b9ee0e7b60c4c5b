"""Installed ``trader.plugins`` entry points as values: names, owners, and importing one safely.

Everything here reads package metadata only, except :func:`load_plugin`, which imports
one entry point's object and turns whatever its import raises (``SystemExit`` and
``KeyboardInterrupt`` included) into a :class:`~trader.errors.PluginError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs
import pluggy

from trader import hookspecs
from trader.errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "MAX_NAME_LENGTH",
    "RESERVED_NAMES",
    "PluginSpec",
    "DisabledPlugins",
    "installed_specs",
    "name_problem",
    "load_plugin",
    "import_entry_point",
    "import_failure",
    "exception_line",
    "one_line",
    "inspect_hooks",
    "check_hooks",
    "canonical_distribution",
]

ENTRY_POINT_GROUP = "trader.plugins"
MAX_NAME_LENGTH = 64
#: The core's own plugin names (core plugins and built-in strategies) and reserved prefixes.
RESERVED_NAMES = frozenset({"core_risk", "core_state", "buy_and_hold", "sma_cross", "momentum_rank"})
RESERVED_PREFIXES = ("core_", "trader_")
_NAME = re.compile(r"[a-z][a-z0-9_]*", re.ASCII)


@attrs.frozen
class PluginSpec:
    """One registration: the entry point ``name = value`` declared by ``distribution`` ``version``."""

    name: str = attrs.field(validator=attrs.validators.instance_of(str))
    value: str = attrs.field(validator=attrs.validators.instance_of(str))  # "module[:attr]"
    distribution: str = attrs.field(validator=attrs.validators.instance_of(str))
    version: str = attrs.field(validator=attrs.validators.instance_of(str))

    @property
    def owner(self) -> str:
        """``distribution version``, as messages name it."""
        return f"{self.distribution} {self.version}"


def canonical_distribution(name: str) -> str:
    """PEP 503 normalisation: ``Trader_Impostor`` and ``trader-impostor`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


@attrs.frozen
class DisabledPlugins:
    """``TRADER_DISABLED_PLUGINS``: ``name`` disables every registration of a name,
    ``name@distribution`` only that distribution's."""

    names: frozenset[str] = frozenset()
    registrations: frozenset[tuple[str, str]] = frozenset()

    @classmethod
    def parse(cls, items: Iterable[str]) -> DisabledPlugins:
        names, registrations = set(), set()
        for item in (i.strip() for i in items):
            if not item:
                continue
            name, at, dist = item.partition("@")
            if at:
                registrations.add((name.strip(), canonical_distribution(dist.strip())))
            else:
                names.add(item)
        return cls(frozenset(names), frozenset(registrations))

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def disables(self, spec: PluginSpec) -> bool:
        return spec.name in self.names or (spec.name, canonical_distribution(spec.distribution)) in self.registrations


def installed_specs() -> list[PluginSpec]:
    """Every ``trader.plugins`` entry point, from package metadata (nothing is imported)."""
    from importlib.metadata import entry_points

    specs = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        dist_name = str(dist.metadata["Name"]) if dist is not None else "<unknown>"
        dist_version = str(dist.version) if dist is not None else "<unknown>"
        specs.append(PluginSpec(ep.name, ep.value, dist_name, dist_version))
    return sorted(specs, key=lambda s: (s.name, canonical_distribution(s.distribution)))


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an installed plugin, or ``None``.

    A name is used in folder names (``TRADER_HOME/strategies/NAME``), so it must be a
    lower-case ASCII identifier: ``zz/../buy_and_hold`` is refused, never resolved.
    """
    if len(name) > MAX_NAME_LENGTH:
        return f"invalid plugin name {name[:MAX_NAME_LENGTH]!r}...: longer than {MAX_NAME_LENGTH} characters"
    if not _NAME.fullmatch(name):
        return (f"invalid plugin name {name!r}: a name is lower-case ASCII letters, digits and underscores, "
                "starting with a letter")
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        return f"plugin name {name!r} is reserved for trader-core"
    return None


def one_line(text: str, limit: int = 300) -> str:
    """``text`` as one printable line (a plugin's message may hold newlines or terminal escapes)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    shown = "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in first)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def exception_line(exc: BaseException) -> str:
    """``SystemExit: 3``; ``KeyboardInterrupt`` when there is no message."""
    detail = one_line(str(exc))
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def import_failure(exc: BaseException) -> str:
    """One line for what an import raised: ``import raised SystemExit: 3``."""
    return f"import raised {exception_line(exc)}"


def import_entry_point(spec: PluginSpec) -> object:
    """Import ``spec``'s object in this process, letting whatever its import raises through."""
    from importlib.metadata import EntryPoint

    return EntryPoint(spec.name, spec.value, ENTRY_POINT_GROUP).load()


def load_plugin(spec: PluginSpec) -> object:
    """Import ``spec``'s object in this process; any exception, even a BaseException, is a PluginError."""
    try:
        return import_entry_point(spec)
    except BaseException as exc:  # sys.exit() or KeyboardInterrupt at import must not end the host
        raise PluginError(f"plugin {spec.name!r} ({spec.owner}) failed to load: {import_failure(exc)}") from exc


def check_hooks(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    """Refuse a registered ``plugin`` that implements an unknown hook or asks for unknown arguments."""
    for caller in pm.get_hookcallers(plugin) or []:
        if caller.spec is None:
            raise PluginError(f"plugin {name!r} implements unknown hook {caller.name!r}")
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin:
                unknown = set(impl.argnames) - set(caller.spec.argnames)
                if unknown:
                    raise PluginError(
                        f"plugin {name!r}: hook {caller.name!r} asks for unknown argument(s) {', '.join(sorted(unknown))}"
                    )


def inspect_hooks(plugin: object, name: str) -> tuple[str, ...]:
    """The hooks ``plugin`` implements (checked as registration checks them), without registering it anywhere."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    try:
        pm.register(plugin, name=name)
    except Exception as exc:
        raise PluginError(f"plugin {name!r} cannot be registered: {exception_line(exc)}") from exc
    check_hooks(pm, name, plugin)
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or []))

