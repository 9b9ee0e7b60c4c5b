"""Test kit for trader and its plugin authors (imported explicitly, never by the core).

Names are imported lazily, so ``import trader.testing`` stays light:

- :func:`conformance_tests` (pytest) and :func:`run_conformance` /
  :func:`assert_conformance`: the conformance suite every strategy runs;
- :func:`isolated_home`, :func:`plugin_manager`, :func:`make_candles`,
  :func:`load_plugin`: building blocks, also offered as pytest fixtures
  (``trader_home``, ``trader_plugin_manager``, ``trader_candles``) by
  :mod:`trader.testing.pytest_plugin`;
- :func:`watch_writes`: record the files a block of code writes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the lazy __getattr__ below returns, for type checkers and IDEs
    from trader.testing.conformance import (
        CHECKS,
        ConformanceError,
        ConformanceReport,
        ConformanceSettings,
        assert_conformance,
        run_conformance,
    )
    from trader.testing.fixtures import isolated_home, load_plugin, make_candles, plugin_manager
    from trader.testing.suite import conformance_tests
    from trader.testing.write_watch import watch_writes

__all__ = [
    "CHECKS",
    "ConformanceError",
    "ConformanceReport",
    "ConformanceSettings",
    "assert_conformance",
    "conformance_tests",
    "isolated_home",
    "load_plugin",
    "make_candles",
    "plugin_manager",
    "run_conformance",
    "watch_writes",
]

_LAZY = {
    "CHECKS": "trader.testing.conformance",
    "ConformanceError": "trader.testing.conformance",
    "ConformanceReport": "trader.testing.conformance",
    "ConformanceSettings": "trader.testing.conformance",
    "assert_conformance": "trader.testing.conformance",
    "run_conformance": "trader.testing.conformance",
    "conformance_tests": "trader.testing.suite",
    "isolated_home": "trader.testing.fixtures",
    "load_plugin": "trader.testing.fixtures",
    "make_candles": "trader.testing.fixtures",
    "plugin_manager": "trader.testing.fixtures",
    "watch_writes": "trader.testing.write_watch",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trader.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
