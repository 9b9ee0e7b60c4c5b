"""A fresh virtual environment per test, for installing generated plugins with real pip.

How the environment is made, and why it is honest:

- ``python -m venv --without-pip`` creates a new, empty environment (0.1 s).
- A ``.pth`` file in its site-packages runs ``site.addsitedir(<this environment's
  site-packages>)``, so the heavy stack (pandas, torch, scikit-learn, pip,
  setuptools, pytest) and trader-core itself are importable there without being
  downloaded or reinstalled each time. That directory comes *after* the fresh
  environment's own site-packages on ``sys.path``.
- ``FRESH/bin/python -m pip install ...`` (pip from the shared directory, run by the
  fresh interpreter) installs into the fresh environment's own site-packages:
  a real build of the generated project (setuptools, wheel, dist-info with its
  entry points). ``PIP_NO_INDEX`` and ``PIP_NO_BUILD_ISOLATION=0`` keep pip off the
  network; its dependency ``trader-core>=0.1,<0.2`` is satisfied by the shared core.
- ``FRESH/bin/python -m trader ...`` is trader started by the fresh interpreter: it
  discovers plugins through ``importlib.metadata`` entry points, so seeing the new
  plugin proves the package and its entry point were installed. The tests also
  check that this repository's own environment does *not* see it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import attrs
import pytest


@attrs.frozen
class FreshVenv:
    """A throw-away environment and a TRADER_HOME for one test."""

    root: Path
    home: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3*/site-packages"))

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TRADER_", "PIP_", "PYTHON"))}
        env.update(
            TRADER_HOME=str(self.home),
            PIP_NO_INDEX="1",
            PIP_NO_BUILD_ISOLATION="0",
            PIP_DISABLE_PIP_VERSION_CHECK="1",
            PIP_NO_CACHE_DIR="1",
        )
        env.update(extra)
        return env

    def run(self, *args: str | Path, cwd: Path | None = None, timeout: float = 240, **env: str) -> subprocess.CompletedProcess[str]:
        """``FRESH/bin/python ARGS`` (never raises on the exit status)."""
        return subprocess.run(
            [str(self.python), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=self.env(**env), timeout=timeout
        )

    def trader(self, *args: str | Path, cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "trader", *args, cwd=cwd, timeout=timeout)


@pytest.fixture
def fresh_venv(tmp_path: Path) -> FreshVenv:
    root = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    venv = FreshVenv(root, tmp_path / "trader_home")
    venv.home.mkdir()
    shared = sysconfig.get_paths()["purelib"]
    (venv.site_packages / "_shared_stack.pth").write_text(f"import site; site.addsitedir({shared!r})\n")
    return venv


@pytest.fixture
def main_env_plugins():
    """``trader plugins`` as this repository's own environment sees it (a function of the home)."""

    def listing(home: Path) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
        env["TRADER_HOME"] = str(home)
        proc = subprocess.run([sys.executable, "-m", "trader", "plugins"], capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    return listing
