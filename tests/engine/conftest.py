"""Fixtures for the engine tests."""

from __future__ import annotations

import pytest

from trader.plugins import TraderPluginManager


@pytest.fixture
def manager() -> TraderPluginManager:
    """A plugin manager with the core plugins and buy_and_hold only (no entry points)."""
    return TraderPluginManager(load_entrypoints=False, disabled=())
