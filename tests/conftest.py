"""Shared fixtures. Helpers to import live in uniquely named modules (``cli_runner``), never here:
pytest loads several ``conftest`` modules and ``from conftest import`` picks whichever came first."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def trader_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home
