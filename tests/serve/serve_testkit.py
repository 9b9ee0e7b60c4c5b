"""Helpers for the ``trader serve`` tests: a real pip-installed second strategy, real ``trader`` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

TRADER_EXE = Path(sys.executable).with_name("trader")
#: A strong operator token for the tests (never a real secret).
TOKEN = "test-token-0123456789-abcdefghijklmnopqrstuvwxyz"

FLIP = """
    from trader import Signal, SignalAction, StrategyInfo, hookimpl
    from trader.types import RiskLimits

    T0, HOUR = 1_704_067_200_000, 3_600_000
    PATIENT = RiskLimits(max_consecutive_losses=10_000, max_drawdown=0.9, daily_loss_limit=0.9, max_errors=1000)

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="flip", version="1.0", description="buys on even hours, sells on odd", risk_limits=PATIENT)

    @hookimpl
    def trader_generate_signals(request):
        out = []
        stamps = request.candles["timestamp"]
        for row in request.at:
            bar = (int(stamps.iloc[row]) - T0) // HOUR
            out.append(Signal(SignalAction.BUY if bar % 2 == 0 else SignalAction.SELL))
        return out
"""


def install_flip(src: Path, target: Path) -> Path:
    """The ``flip`` strategy as a real distribution, pip-installed into ``target`` (put it on PYTHONPATH)."""
    pkg = src / "trader-serve-flip"
    (pkg / "trader_serve_flip").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "trader-serve-flip"
        version = "1.0"
        dependencies = []

        [project.entry-points."trader.plugins"]
        flip = "trader_serve_flip"
    """))
    (pkg / "trader_serve_flip" / "__init__.py").write_text(textwrap.dedent(FLIP))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(pkg)],
        check=True, capture_output=True, text=True,
    )
    return target


def env_for(home: Path, site: Path | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env["TRADER_HOME"] = str(home)
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def trader(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRADER_EXE), *args], capture_output=True, text=True, env=env, timeout=timeout)


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([str(TRADER_EXE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


class Server:
    """A running ``trader serve --port 0``: its URL, the lines it printed at start, and an HTTP client."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = start(env, "serve", "--port", "0", "--refresh", "0.3", *args)
        self.lines: list[str] = []
        self.url = ""
        while not self.url:  # the address is printed once the socket listens
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"trader serve exited ({self.proc.wait()}): {self.proc.stderr.read()}")
            self.lines.append(line.rstrip("\n"))
            if line.startswith("trader serve: http://"):
                self.url = line.split()[2].rstrip("/")
        self.client = httpx.Client(base_url=self.url, timeout=20)

    def next_line(self) -> str:
        """The next line the server printed (after the address)."""
        line = self.proc.stdout.readline().rstrip("\n")
        self.lines.append(line)
        return line

    def get(self, path: str, **kw) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, token: str | None = None, **kw) -> httpx.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.client.post(path, headers=headers, **kw)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Ctrl-C (or ``sig``); the exit code and what it wrote on stderr."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, err


def stop(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    """SIGTERM (the run finishes its candle and commits), then the exit code and output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


def wait_for(check, timeout: float = 30, every: float = 0.2):
    """The first truthy value of ``check()`` within ``timeout`` seconds; AssertionError otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out; last value {last!r}")
