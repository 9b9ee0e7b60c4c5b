"""Shared test helpers: run the real `trader` console script in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TRADER_EXE = Path(sys.executable).with_name("trader")


def run_trader(*args: str, home: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``trader ARGS`` as a user would; returns the completed process (never raises on exit code)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    if home is not None:
        full_env["TRADER_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run([str(TRADER_EXE), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd)


@pytest.fixture
def trader_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home
