"""Real plugin distributions for the tests: write them, pip-install many in ONE call, put them on PYTHONPATH.

pip installs are slow, so each test module builds all of its packages and installs them together
into a target folder (``pip install --no-deps --no-build-isolation --no-index --target DIR``), then
runs ``trader`` with :func:`plugin_env`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["write_distribution", "write_plugin", "pip_install", "plugin_env"]


def write_distribution(root: Path, dist: str, entry_points: Mapping[str, str], modules: Mapping[str, str],
                       version: str = "1.0") -> Path:
    """A source tree of distribution ``dist``: ``entry_points`` (name -> ``module[:attr]``) and module bodies."""
    pkg = root / dist
    pkg.mkdir(parents=True)
    # JSON strings are TOML basic strings: names a hostile package may use (quotes, slashes, Unicode) stay exact
    lines = "\n".join(f"{json.dumps(name)} = {json.dumps(value)}" for name, value in entry_points.items())
    packages = ", ".join(json.dumps(module) for module in modules)
    (pkg / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{dist}"\nversion = "{version}"\ndependencies = []\n\n'
        f"[tool.setuptools]\npackages = [{packages}]\n\n"
        f'[project.entry-points."trader.plugins"]\n{lines}\n',
        encoding="utf-8",
    )
    for module, body in modules.items():
        (pkg / module).mkdir()
        (pkg / module / "__init__.py").write_text(textwrap.dedent(body), encoding="utf-8")
    return pkg


def write_plugin(root: Path, dist: str, module: str, entry_name: str, body: str, version: str = "1.0") -> Path:
    """The common case: one module registered under one entry-point name."""
    return write_distribution(root, dist, {entry_name: module}, {module: body}, version)


def pip_install(target: Path, packages: Iterable[Path]) -> Path:
    """Build and install every package into ``target`` with one pip call; returns ``target``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, packages)],
        check=True, capture_output=True, text=True,
    )
    return target


def plugin_env(*targets: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``trader`` subprocess that sees the packages installed in ``targets``."""
    env = {"PYTHONPATH": os.pathsep.join([*map(str, targets), os.environ.get("PYTHONPATH", "")])}
    env.update(extra)
    return env
