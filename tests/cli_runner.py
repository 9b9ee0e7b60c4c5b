"""Run the real `trader` console script in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["TRADER_EXE", "run_trader"]

TRADER_EXE = Path(sys.executable).with_name("trader")


def run_trader(*args: str, home: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120,
               cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``trader ARGS``; returns the completed process (never raises on the exit code).

    ``TRADER_*`` variables of the calling environment are dropped so tests never see a developer's
    home or config; ``home`` sets ``TRADER_HOME``.
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    if home is not None:
        full_env["TRADER_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run([str(TRADER_EXE), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=cwd)


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """A command's refusal as a user meets it: a non-zero exit, no traceback; its last stderr line."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr and "Internal error" not in done.stderr, done.stderr
    return done.stderr.strip().splitlines()[-1]


def synth_markets(home: Path, symbols: list[str] | tuple[str, ...], bars: int, *extra: str, first_seed: int = 1) -> Path:
    """``home`` with ``bars`` synthetic candles of each market (seeds ``first_seed``, ``first_seed + 1``...)."""
    for seed, symbol in enumerate(symbols, start=first_seed):
        done = run_trader("data", "synth", "--symbol", symbol, "--bars", str(bars), "--seed", str(seed), *extra, home=home)
        assert done.returncode == 0, done.stderr
    return home


def copied_home(source: Path, tmp_path: Path) -> Path:
    """A test's own copy of a module's prepared home (``tmp_path / "home"``)."""
    import shutil

    return Path(shutil.copytree(source, tmp_path / "home"))
