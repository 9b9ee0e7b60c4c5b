"""``trader check`` at its defaults catches each leak kind in a real pip-installed plugin, with the right diagnosis.

Whole-frame standard deviation of returns, whole-frame mean volume and a rare 24-bar shift
are look-ahead (naming the column); call-count dependence and randomness are reported as
such, never as look-ahead; no failure is turned into warm-up advice. The check runs in a
temporary home: nothing lands in the user's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from leak_plugins import install_leak_plugins, plugin_env

from trader import Signal, SignalAction, StrategyInfo, hookimpl

pytestmark = pytest.mark.slow  # a pip install, then one trader process per plugin


@pytest.fixture(scope="module")
def plugins(tmp_path_factory) -> Path:
    return install_leak_plugins(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def checked(plugins, tmp_path_factory):
    """``trader check --plugin NAME --json`` at its defaults, once per plugin (each in its own empty home)."""
    results = {}

    def run(name: str) -> tuple[int, dict]:
        if name not in results:
            home = tmp_path_factory.mktemp(f"home_{name}")
            proc = run_trader("check", "--plugin", name, "--json", home=home, env=plugin_env(plugins), timeout=600)
            assert proc.returncode in (0, 1), proc.stderr
            assert "Traceback" not in proc.stderr
            data = json.loads(proc.stdout)
            results[name] = (proc.returncode, {c["name"]: c for c in data["checks"]}, home)
        return results[name]

    return run


def _text(check: dict) -> str:
    return check["detail"] + " " + " ".join(check["offending"])


def test_an_honest_plugin_passes_every_check_in_a_temporary_home(checked):
    code, checks, home = checked("honest_cross")
    assert code == 0, checks
    assert {name: c["status"] for name, c in checks.items()} == {
        "truncation": "pass", "batch": "pass", "determinism": "pass", "warmup": "pass", "persistence": "skip",
        "isolation": "pass"}
    assert "24 cuts (1,470 rows after the warm-up)" in checks["truncation"]["detail"]  # every row, not a sample
    assert "a fresh process asked 3 times" in checks["determinism"]["detail"]
    assert "trader run traded" in checks["isolation"]["detail"]
    # the strategy ran in a temporary home: the user's holds at most the plugin probe's cache
    assert {p.name for p in home.iterdir()} <= {"cache"}


@pytest.mark.parametrize(("name", "column"), [("leak_std", "close"), ("leak_volume", "volume")])
def test_a_whole_frame_statistic_is_look_ahead_naming_the_column_never_warm_up(checked, name, column):
    code, checks, _ = checked(name)
    assert code == 1
    truncation = checks["truncation"]
    assert truncation["status"] == "fail"
    assert "statistic of the whole frame" in truncation["detail"]
    assert f"candle column {column!r}" in truncation["detail"]
    assert all(line.startswith("candle ") and "UTC" in line for line in truncation["offending"])
    # no warm-up advice for a leak, and the strategy is deterministic
    assert checks["warmup"]["status"] == "skip" and "warmup_bars=" not in checks["warmup"]["detail"]
    assert checks["determinism"]["status"] == "pass"


def test_a_rare_24_bar_shift_is_caught_as_a_bounded_look_ahead(checked):
    code, checks, _ = checked("leak_rare")
    assert code == 1
    truncation = checks["truncation"]
    assert truncation["status"] == "fail"
    assert "candle column 'close'" in truncation["detail"]
    assert "whole frame" not in truncation["detail"]
    assert "bars before the cut: it reads at least" in truncation["detail"]
    assert checks["determinism"]["status"] == "pass" and checks["warmup"]["status"] == "skip"


def test_call_count_dependence_is_named_as_such_not_as_look_ahead(checked):
    code, checks, _ = checked("call_count")
    assert code == 1
    assert checks["determinism"]["status"] == "fail"
    assert "depends on how many times the strategy was called" in checks["determinism"]["detail"]
    assert checks["truncation"]["status"] == "skip" and "look-ahead not judged" in checks["truncation"]["detail"]
    assert checks["batch"]["status"] == "pass"
    assert not [c for c in checks.values() if c["status"] == "fail" and "look-ahead" in _text(c)]


def test_randomness_is_named_non_determinism_not_look_ahead(checked):
    code, checks, _ = checked("coin_flip")
    assert code == 1
    determinism = checks["determinism"]
    assert determinism["status"] == "fail"
    assert determinism["detail"].startswith("not deterministic: two fresh processes")
    assert checks["truncation"]["status"] == "skip" and checks["batch"]["status"] == "pass"
    assert checks["warmup"]["status"] == "skip"
    assert not [c for c in checks.values() if c["status"] == "fail" and "look-ahead" in _text(c)]


def test_the_text_report_names_the_leak_in_one_line_per_finding(plugins, trader_home):
    proc = run_trader("check", "--plugin", "leak_volume", "--only", "truncation", home=trader_home,
                      env=plugin_env(plugins))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "FAIL  truncation   look-ahead:" in proc.stdout
    assert "1 of 1 checks failed" in proc.stdout


@pytest.mark.parametrize("name", ["buy_and_hold", "ensemble", "dl_lstm", "dl_transformer"])
def test_the_shipped_strategies_pass_trader_check(name, trader_home, tmp_path):
    # torch remembers its first cache folder in TORCHINDUCTOR_CACHE_DIR, which a parent process may pass down:
    # the check's sandbox must move it, or torch's own cache counts as the strategy writing outside its namespace
    env = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "outside" / "torchinductor")}
    proc = run_trader("check", "--plugin", name, "--bars", "600", "--json", home=trader_home, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checks = {c["name"]: c["status"] for c in json.loads(proc.stdout)["checks"]}
    assert set(checks.values()) <= {"pass", "skip"} and checks["truncation"] == checks["determinism"] == "pass"
    assert checks["isolation"] == "pass"


class ExpandingMean:
    """Causal but never warmed up: close against the mean of ALL closes so far."""

    name = "expanding_mean"

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0.0", description="expanding mean", warmup_bars=20)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        mean = np.cumsum(close) / np.arange(1, close.size + 1)
        gap = np.clip(0.5 + 5 * (close - mean) / close, 0.0, 1.0)  # a confidence: continuous, so no chance agreement
        return [Signal(SignalAction.BUY if close[row] > mean[row] else SignalAction.SELL, size=1.0,
                       confidence=float(gap[row])) for row in request.at]


def test_a_history_dependence_that_never_settles_gets_no_warm_up_number():
    from trader.backtest.lookahead import CheckContext, run_checks
    from trader.data import synthetic_candles
    from trader.plugins import TraderPluginManager

    manager = TraderPluginManager(load_entrypoints=False)
    plugin = ExpandingMean()
    with manager.registered(plugin, plugin.name):
        ctx = CheckContext(manager.strategy(plugin.name), synthetic_candles("SYN/USDT", "1h", bars=800, seed=4),
                           "SYN/USDT", "1h")
        checks = {r.name: r for r in run_checks(ctx, ["warmup"])}
    # causal: no look-ahead, and deterministic; the warm-up check then judges it
    assert checks["truncation"].status == "pass" and checks["determinism"].status == "pass"
    warmup = checks["warmup"]
    assert warmup.status == "fail"
    assert "depends on the whole history" in warmup.detail and "warmup_bars=" not in warmup.detail
