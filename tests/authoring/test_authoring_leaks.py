"""The conformance suite at its defaults catches each leak kind in a real pip-installed plugin, as ``trader check`` does.

The same plugins as ``tests/backtest/test_backtest_leaks.py``; the suite runs in a fresh
Python process that sees them only through their installed entry points.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from leak_plugins import PLUGINS, install_leak_plugins, plugin_env

pytestmark = pytest.mark.slow  # a pip install, then the suite on six plugins

_SCRIPT = """
import json, sys
from trader.testing import run_conformance
out = {}
for name in sys.argv[1:]:
    report = run_conformance(name)
    out[name] = {r.check: [r.outcome, r.message] for r in report.results}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """``{plugin: {check: [outcome, message]}}`` from ``run_conformance(NAME)`` with every default."""
    target = install_leak_plugins(tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("site"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}, **plugin_env(target)}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, *PLUGINS], capture_output=True, text=True, env=env,
                          timeout=900, cwd=tmp_path_factory.mktemp("cwd"))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def outcomes(report: dict[str, list[str]]) -> dict[str, str]:
    return {check: outcome for check, (outcome, _) in report.items()}


def test_the_honest_plugin_conforms(reports):
    report = reports["honest_cross"]
    assert outcomes(report) == {"metadata": "passed", "signals": "passed", "lookahead": "passed",
                                "determinism": "passed", "persistence": "skipped", "isolation": "passed"}
    assert "24 cuts" in report["lookahead"][1]  # the default shared with trader check --prefixes
    assert "a fresh process asked 3 times" in report["determinism"][1]


@pytest.mark.parametrize(("name", "column"), [("leak_std", "close"), ("leak_volume", "volume")])
def test_a_whole_frame_statistic_fails_lookahead_naming_the_column(reports, name, column):
    outcome, text = reports[name]["lookahead"]
    assert outcome == "failed"
    assert "statistic of the whole frame" in text and f"candle column {column!r}" in text
    assert reports[name]["determinism"][0] == "passed"


def test_a_rare_24_bar_shift_fails_lookahead(reports):
    outcome, text = reports["leak_rare"]["lookahead"]
    assert outcome == "failed"
    assert "candle column 'close'" in text and "whole frame" not in text
    assert "it reads at least" in text


def test_call_count_dependence_fails_determinism_as_such(reports):
    report = reports["call_count"]
    assert report["determinism"][0] == "failed"
    assert "depends on how many times the strategy was called" in report["determinism"][1]
    assert report["lookahead"][0] == "skipped" and "look-ahead not judged" in report["lookahead"][1]
    assert report["signals"][0] == "passed"


def test_randomness_fails_determinism_as_non_determinism(reports):
    report = reports["coin_flip"]
    assert report["determinism"][0] == "failed"
    assert report["determinism"][1].startswith("not deterministic: two fresh processes")
    assert report["lookahead"][0] == "skipped" and report["signals"][0] == "passed"


def test_no_leak_kind_passes_the_suite(reports):
    for name in PLUGINS:
        if name != "honest_cross":
            assert "failed" in outcomes(reports[name]).values(), (name, reports[name])


def test_an_in_process_object_gets_the_in_process_determinism_checks_and_says_so(tmp_path: Path):
    from trader import Signal, SignalAction, StrategyInfo, hookimpl
    from trader.testing import run_conformance

    class Flip:
        calls = 0

        @hookimpl
        def trader_strategy_info(self):
            return StrategyInfo(name="flip", version="1.0.0", description="alternates", warmup_bars=5)

        @hookimpl
        def trader_generate_signals(self, request):
            Flip.calls += 1
            action = SignalAction.BUY if Flip.calls % 2 else SignalAction.SELL
            return [Signal(action, size=1.0) for _ in request.at]

    report = run_conformance(Flip(), bars=200)
    result = next(r for r in report.results if r.check == "determinism")
    assert result.outcome == "failed"
    assert "the same request asked twice in a row gives different signals" in result.message
    assert "no fresh process could tell which" in result.message
