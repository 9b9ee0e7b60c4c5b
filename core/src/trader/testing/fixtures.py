"""Building blocks for testing plugins, usable with or without pytest.

- :func:`isolated_home`: a throw-away ``TRADER_HOME`` for the ``with`` block;
- :func:`plugin_manager`: a fresh :class:`~trader.plugins.TraderPluginManager`
  (no entry points loaded) with one plugin registered, always unregistered again;
- :func:`load_plugin`: the object an installed ``trader.plugins`` entry point names;
- :func:`make_candles`: the core's synthetic market as a candle frame.

The pytest fixtures in :mod:`trader.testing.pytest_plugin` wrap these.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.errors import PluginError, UnknownPluginError
from trader.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, TraderPluginManager

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["isolated_home", "plugin_manager", "plugin_name", "load_plugin", "installed_distribution", "make_candles"]


@contextmanager
def isolated_home(path: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Point ``TRADER_HOME`` at ``path`` (a new temporary folder if ``None``) inside the block.

    The previous value is restored afterwards; a temporary folder made here is removed.
    """
    owned = path is None
    home = Path(tempfile.mkdtemp(prefix="trader-home-")) if path is None else Path(path)
    home.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("TRADER_HOME")
    os.environ["TRADER_HOME"] = str(home)
    try:
        yield home
    finally:
        if previous is None:
            os.environ.pop("TRADER_HOME", None)
        else:
            os.environ["TRADER_HOME"] = previous
        if owned:
            shutil.rmtree(home, ignore_errors=True)


def plugin_name(plugin: object) -> str:
    """The name a strategy plugin gives itself in ``trader_strategy_info``."""
    info_hook = getattr(plugin, "trader_strategy_info", None)
    if info_hook is None:
        raise PluginError(f"{plugin!r} implements no trader_strategy_info; pass its name explicitly")
    name: str = info_hook().name
    return name


@contextmanager
def plugin_manager(plugin: object | None = None, name: str | None = None) -> Iterator[TraderPluginManager]:
    """A fresh manager with the core plugins and ``plugin`` registered as ``name``.

    No entry points are loaded and ``TRADER_DISABLED_PLUGINS`` is ignored, so the
    result does not depend on what else is installed; a built-in strategy of the
    same name is left out. ``name`` defaults to the
    name the plugin gives itself. ``plugin`` is unregistered when the block ends,
    even if it raised.
    """
    if plugin is None:
        yield TraderPluginManager(load_entrypoints=False, disabled=())
        return
    name = name or plugin_name(plugin)
    # A built-in strategy of the same name (e.g. buy_and_hold itself) makes way for the one under test.
    manager = TraderPluginManager(load_entrypoints=False, disabled={name} & set(BUILTIN_PLUGINS))
    with manager.registered(plugin, name):
        yield manager


def load_plugin(name: str) -> object:
    """Load the installed ``trader.plugins`` entry point called ``name``."""
    from importlib.metadata import entry_points

    found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not found:
        installed = ", ".join(sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})) or "none"
        raise UnknownPluginError(
            f"no installed plugin is called {name!r} (entry-point group {ENTRY_POINT_GROUP!r}; installed: {installed}); "
            "install it first, e.g. pip install -e ."
        )
    if len(found) > 1:
        dists = ", ".join(_dist_name(ep) for ep in found)
        raise PluginError(f"plugin name {name!r} is claimed by several distributions: {dists}")
    try:
        return found[0].load()
    except Exception as exc:
        raise PluginError(f"plugin {name!r} ({_dist_name(found[0])}) failed to load: {type(exc).__name__}: {exc}") from exc


def installed_distribution(name: str) -> tuple[str, str] | None:
    """``(distribution, version)`` of the installed entry point ``name``, or ``None``."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name and ep.dist is not None:
            return ep.dist.metadata["Name"], ep.dist.version
    return None


def _dist_name(ep: Any) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else "<unknown distribution>"


def make_candles(
    bars: int = 600,
    *,
    symbol: str = "SYN/USDT",
    timeframe: str = "1h",
    seed: int = 0,
    planted_signal: float = 0.0,
) -> pd.DataFrame:
    """``bars`` candles of the core's synthetic market (the same arguments give the same frame)."""
    from trader.data import synthetic_candles

    return synthetic_candles(symbol=symbol, timeframe=timeframe, bars=bars, seed=seed, planted_signal=planted_signal)
