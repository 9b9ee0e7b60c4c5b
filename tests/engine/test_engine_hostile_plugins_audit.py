"""Real pip-installed hostile plugins against the risk audit, through ``trader backtest`` and ``trader run``."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_runner import TRADER_EXE, run_trader
from plugin_packages import pip_install, plugin_env, write_plugin

pytestmark = pytest.mark.slow


FORGE = """
    import gc

    def forge(obj, **values):
        for name, value in values.items():
            object.__setattr__(obj, name, value)
"""

HOSTILE_RULES = FORGE + """
    from trader import RiskVerdict, hookimpl

    @hookimpl(tryfirst=True)
    def trader_audit_order(order, portfolio, limits, context):
        forge(limits, max_position_fraction=1.0, max_order_notional=1e12, max_position_notional=1e12)
        forge(portfolio, cash=1e15, equity=1e15)
        for underlying in gc.get_referents(portfolio.positions):
            if isinstance(underlying, dict):
                underlying.clear()
        forge(context, status="active")
        return RiskVerdict.approve("core")
"""

GREEDY = FORGE + """
    import pluggy
    from trader import RiskLimits, RiskVerdict, Signal, SignalAction, StrategyInfo, hookimpl

    LIMITS = RiskLimits(max_position_fraction=0.5, max_order_notional=1000.0, max_position_notional=1e9,
                        max_drawdown=1.0, daily_loss_limit=1.0)
    attacked = []

    class Approve:
        @hookimpl(wrapper=True)
        def trader_audit_order(self):
            yield
            return [RiskVerdict.approve("core")]

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="greedy", version="6.6.6", risk_limits=LIMITS)

    @hookimpl
    def trader_generate_signals(request):
        if not attacked:
            attacked.append(True)
            forge(LIMITS, max_position_fraction=1.0, max_order_notional=1e12)
            for pm in [o for o in gc.get_objects() if isinstance(o, pluggy.PluginManager)]:
                pm.register(Approve(), name="late_wrapper")
        return [Signal(SignalAction.BUY, size=1.0) for _ in request.at]
"""

FORGER = FORGE + """
    from trader import RiskLimits, Signal, SignalAction, StrategyInfo, hookimpl

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="forger", version="6.6.6", risk_limits=RiskLimits(max_model_failures=3))

    @hookimpl
    def trader_generate_signals(request):
        out = []
        for i, _ in enumerate(request.at):
            signal = Signal(SignalAction.BUY, size=0.5)
            forge(signal, **[{"size": float("nan")}, {"action": "yolo"}, {"action": "buy"}][i % 3])
            out.append(signal)
        return out
"""

RAISER = """
    from trader import RiskLimits, StrategyInfo, hookimpl

    calls = []

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="raiser", version="6.6.6", risk_limits=RiskLimits(max_model_failures=3))

    @hookimpl
    def trader_generate_signals(request):
        calls.append(1)
        raise (SystemExit(3) if len(calls) % 2 else KeyboardInterrupt())
"""

SLEEPER = """
    import os
    import time
    from trader import StrategyInfo, hookimpl

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="sleeper", version="6.6.6")

    @hookimpl
    def trader_generate_signals(request):
        open(os.environ["SLEEPER_MARKER"], "w").close()
        time.sleep(60)
        return []
"""


@pytest.fixture(scope="module")
def hostile_env(tmp_path_factory) -> dict[str, str]:
    """Five hostile distributions, pip-installed in one call into a folder put on PYTHONPATH."""
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    packages = [
        write_plugin(src, "trader-hostile-rules", "trader_hostile_rules", "hostile_rules", HOSTILE_RULES, "6.6.6"),
        write_plugin(src, "trader-greedy", "trader_greedy", "greedy", GREEDY, "6.6.6"),
        write_plugin(src, "trader-forger", "trader_forger", "forger", FORGER, "6.6.6"),
        write_plugin(src, "trader-raiser", "trader_raiser", "raiser", RAISER, "6.6.6"),
        write_plugin(src, "trader-sleeper", "trader_sleeper", "sleeper", SLEEPER, "6.6.6"),
    ]
    return plugin_env(pip_install(target, packages))


def status(home: Path, env: dict[str, str], name: str) -> dict:
    result = run_trader("status", "--json", "--plugin", name, home=home, env=env)
    assert result.returncode == 0, result.stderr
    (summary,) = json.loads(result.stdout)
    return summary


def test_backtest_with_hostile_rules_and_a_greedy_strategy_keeps_the_position_cap(hostile_env, trader_home, tmp_path):
    report = tmp_path / "report"
    proc = run_trader("backtest", "--plugin", "greedy", "--synthetic-bars", "600", "--bootstrap", "100", "--json",
                      "--report", str(report), home=trader_home, env=hostile_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["strategy"] == "greedy"
    with open(report / "equity.csv", newline="") as fh:
        exposure = {int(row["timestamp"]): float(row["exposure"]) for row in csv.DictReader(fh)}
    with open(report / "fills.csv", newline="") as fh:
        buys = [row for row in csv.DictReader(fh) if row["side"] == "buy"]
    assert len(buys) >= 3
    # every buy is at most max_order_notional, and leaves the position at most max_position_fraction of equity
    assert max(float(b["quantity"]) * float(b["price"]) for b in buys) <= 1_000.0 * 1.001
    assert max(exposure[int(b["timestamp"])] for b in buys) <= 0.5 * 1.001
    assert max(exposure.values()) < 0.75


def test_backtest_of_forged_signals_completes_and_the_model_failure_breaker_halts(hostile_env, trader_home):
    proc = run_trader("backtest", "--plugin", "forger", "--synthetic-bars", "300", "--bootstrap", "100", "--json",
                      home=trader_home, env=hostile_env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["metrics"]["trades"] == 0 and data["final_status"] == "halted"


def test_backtest_of_a_strategy_raising_system_exit_is_one_clear_line(hostile_env, trader_home):
    proc = run_trader("backtest", "--plugin", "raiser", "--synthetic-bars", "300", home=trader_home, env=hostile_env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "Error: plugin 'raiser': trader_generate_signals raised SystemExit: 3"


@pytest.mark.parametrize(("name", "code"), [("forger", "INVALID_SIGNAL"), ("raiser", "PLUGIN_ERROR")])
def test_run_goes_on_through_forged_signals_and_base_exceptions_until_the_breaker_halts(hostile_env, trader_home,
                                                                                         name, code):
    proc = run_trader("run", "--plugin", name, "--max-candles", "8", "--quiet", home=trader_home, env=hostile_env)
    assert proc.returncode == 0, proc.stderr
    assert "Internal error" not in proc.stderr and "Traceback" not in proc.stderr
    summary = status(trader_home, hostile_env, name)
    assert summary["account"]["candles"] == 8
    assert summary["event_counts"][code] >= 3
    assert summary["risk"]["status"] == "halted" and summary["risk"]["reason"].startswith("MODEL_FAILURES")


def test_a_real_ctrl_c_still_stops_a_backtest_inside_the_strategy(hostile_env, trader_home, tmp_path):
    marker = tmp_path / "sleeping"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env.update(hostile_env, TRADER_HOME=str(trader_home), SLEEPER_MARKER=str(marker))
    proc = subprocess.Popen([str(TRADER_EXE), "backtest", "--plugin", "sleeper", "--synthetic-bars", "300"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the strategy was never called"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130  # the CLI's answer to Ctrl-C, not a plugin error
    assert err.strip() in ("Aborted.", "Interrupted."), err


@pytest.mark.parametrize("command", [("backtest", "--synthetic-bars", "300", "--bootstrap", "100"),
                                     ("run", "--max-candles", "2", "--quiet")])
def test_the_config_may_loosen_the_strategys_limits_and_the_command_names_each_loosened_one(
        hostile_env, trader_home, command):
    (trader_home / "trader.toml").write_text(
        "[plugins.greedy.risk]\nmax_position_fraction = 0.9\nmax_order_notional = 500\n")
    proc = run_trader(command[0], "--plugin", "greedy", *command[1:], home=trader_home, env=hostile_env)
    assert proc.returncode == 0, proc.stderr
    (line,) = [ln for ln in proc.stderr.splitlines() if "loosens" in ln]
    assert "WARNING" in line and "[plugins.greedy.risk] loosens the strategy's default risk limits" in line
    assert "max_position_fraction 0.5 -> 0.9" in line and "max_order_notional" not in line  # 500 < 1000: tighter
