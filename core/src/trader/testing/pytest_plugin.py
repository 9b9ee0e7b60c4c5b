"""pytest plugin of trader (entry point ``pytest11``), loaded in every pytest run once trader is installed.

Fixtures:

``trader_home``
    an empty ``TRADER_HOME`` folder for the test (the environment variable points at it).
``trader_plugin_manager``
    :func:`trader.testing.fixtures.plugin_manager`: ``with trader_plugin_manager(plugin) as pm:``
    gives a fresh manager with ``plugin`` registered, unregistered when the block ends.
``trader_candles``
    :func:`trader.testing.fixtures.make_candles`: ``trader_candles(300, seed=1)`` is a
    frame of synthetic candles.

The conformance suite is :func:`trader.testing.conformance_tests`. This module
imports nothing heavy: it is loaded by every pytest session in the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["trader_home", "trader_plugin_manager", "trader_candles"]


@pytest.fixture
def trader_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty folder that ``TRADER_HOME`` points at for this test."""
    home = tmp_path / "trader_home"
    home.mkdir()
    monkeypatch.setenv("TRADER_HOME", str(home))
    return home


@pytest.fixture
def trader_plugin_manager() -> Callable[..., Any]:
    """``with trader_plugin_manager(plugin, name=None) as manager:`` (see :func:`~trader.testing.fixtures.plugin_manager`)."""
    from trader.testing.fixtures import plugin_manager

    return plugin_manager


@pytest.fixture
def trader_candles() -> Callable[..., Any]:
    """``trader_candles(bars=600, *, symbol, timeframe, seed, planted_signal)``: synthetic candles."""
    from trader.testing.fixtures import make_candles

    return make_candles
