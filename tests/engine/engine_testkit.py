"""Helpers for the engine tests: in-process strategies, sessions on real SQLite files, candles."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.engine import PaperBroker, RiskAuditAgent, TradingSession, TradingState
from trader.plugins import TraderPluginManager
from trader.types import RiskLimits

HOUR = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


class ScriptedStrategy:
    """A strategy plugin object whose signals come from a list (or raise, when the entry is an exception)."""

    def __init__(self, name: str, script: list | None = None, **info: object) -> None:
        self.name = name
        self.script = list(script or [])
        self.info_kwargs = info

    @hookimpl
    def trader_strategy_info(self) -> StrategyInfo:
        return StrategyInfo(name=self.name, version="1.0", **self.info_kwargs)

    @hookimpl
    def trader_generate_signals(self, request):
        out = []
        for _ in request.at:
            item = self.script.pop(0) if self.script else Signal.hold()
            if isinstance(item, BaseException):
                raise item
            out.append(item)
        return out


def make_session(
    manager: TraderPluginManager,
    directory: Path | None,
    name: str = "buy_and_hold",
    *,
    limits: RiskLimits | None = None,
    broker: PaperBroker | None = None,
    cash: float = 10_000.0,
    band: float = 0.1,
    store=None,
    timeframe: str = "1h",
) -> TradingSession:
    limits = limits or RiskLimits()
    if store is None:
        store = TradingState.open(name, directory / name)
    return TradingSession(
        name,
        "BTC/USDT",
        timeframe,
        limits=limits,
        broker=broker or PaperBroker(fee_bps=10, slippage_bps=0, lot_size=1e-6, min_notional=1.0),
        store=store,
        audit=RiskAuditAgent.for_strategy(manager, name, limits),
        initial_cash=cash,
        rebalance_band=band,
    )


def random_walk(n: int, seed: int = 0, start: float = 100.0, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


BUY = Signal(SignalAction.BUY)
SELL = Signal(SignalAction.SELL)
HOLD = Signal.hold()


# --------------------------------------------------------------------------- subprocess helpers

import json  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

TESTS_DIR = Path(__file__).resolve().parent
TRADER_EXE = Path(sys.executable).with_name("trader")


def install_fake_strategies(site: Path) -> dict[str, str]:
    """Make ``engine_fake_strategies`` an installed distribution (a real dist-info with entry points).

    Returns the environment that puts it on ``sys.path`` of a ``trader`` subprocess.
    """
    from engine_fake_strategies import ALL

    dist = site / "trader_engine_fakes-1.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-engine-fakes\nVersion: 1.0\n")
    lines = ["[trader.plugins]"] + [f"{name} = engine_fake_strategies:{name}" for name in ALL]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")
    (dist / "RECORD").write_text("")
    return {"PYTHONPATH": os.pathsep.join([str(site), str(TESTS_DIR)])}


def trader_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env["TRADER_HOME"] = str(home)
    env.update(extra or {})
    return env


def trader(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``trader`` console script."""
    return subprocess.run(
        [str(TRADER_EXE), *args], capture_output=True, text=True, env=trader_env(home, env), timeout=timeout
    )


def start_trader(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(TRADER_EXE), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=trader_env(home, env)
    )


def wait_running(home: Path, name: str, process: subprocess.Popen[str] | None = None, timeout: float = 60.0) -> str:
    """The pid of the ``trader run`` holding ``name``'s lock, once it holds it (a loaded machine may take seconds)."""
    import time

    from trader.engine.lock import lock_holder

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = lock_holder(home / "strategies" / name)
        if pid:
            return pid
        if process is not None and process.poll() is not None:
            raise AssertionError(f"trader run exited ({process.returncode}) before it held {name}'s lock: {process.stderr.read() if process.stderr else ''}")
        time.sleep(0.05)
    raise AssertionError(f"no trader run held {name}'s lock within {timeout:g} s")


def status_json(home: Path, *names: str, env: dict[str, str] | None = None) -> list[dict]:
    args = ["status", "--json"]
    for name in names:
        args += ["--plugin", name]
    result = trader(home, *args, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def state_db(home: Path, name: str):
    import sqlite3

    path = home / "strategies" / name / "state.sqlite"
    return sqlite3.connect(f"file:{path}?mode=rw", uri=True)  # never creates an empty file a run would refuse
