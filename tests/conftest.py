"""Shared fixtures. Helpers to import live in uniquely named modules (``cli_runner``), never here:
pytest loads several ``conftest`` modules and ``from conftest import`` picks whichever came first."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings

# Property tests check logic, not speed: no per-example deadline, which a shared CI machine
# would trip at random; a failure prints the blob that reproduces it.
settings.register_profile("trader", deadline=None, print_blob=True)
settings.load_profile("trader")


@pytest.fixture
def trader_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home
