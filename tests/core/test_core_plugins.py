"""Plugin loading: in-process registration, real pip-installed entry points, broken and disabled plugins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_trader
from plugin_packages import pip_install, plugin_env, write_plugin

from trader import Signal, SignalAction, SignalRequest, StrategyInfo, hookimpl
from trader.errors import PluginError, UnknownPluginError
from trader.plugins import TraderPluginManager


class EchoStrategy:
    """An in-process strategy that answers with its own name in the signal reason."""

    def __init__(self, name: str) -> None:
        self.name = name

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0")

    @hookimpl
    def trader_generate_signals(self, request):
        return [Signal(SignalAction.HOLD, size=0.0, reason=self.name) for _ in request.at]


def request(n: int = 3) -> SignalRequest:
    return SignalRequest(strategy="x", symbol="BTC/USDT", timeframe="1h", candles=None, at=list(range(n)))


def test_strategy_hooks_reach_only_the_named_strategy():
    manager = TraderPluginManager(load_entrypoints=False)
    manager.register(EchoStrategy("alpha"), "alpha")
    manager.register(EchoStrategy("beta"), "beta")
    signals = manager.strategy("beta").generate_signals(request())
    assert [s.reason for s in signals] == ["beta"] * 3
    assert manager.strategy("alpha").info.name == "alpha"
    assert {"alpha", "beta", "buy_and_hold"} <= set(manager.strategy_names())


def test_registered_context_manager_always_unregisters():
    manager = TraderPluginManager(load_entrypoints=False)
    with pytest.raises(RuntimeError):
        with manager.registered(EchoStrategy("gamma"), "gamma"):
            assert "gamma" in manager.strategy_names()
            raise RuntimeError("boom")
    assert "gamma" not in manager.strategy_names()


def test_unknown_strategy_is_refused_listing_installed():
    manager = TraderPluginManager(load_entrypoints=False)
    with pytest.raises(UnknownPluginError, match="unknown strategy 'nope'; installed strategies: buy_and_hold"):
        manager.strategy("nope")


def test_plugin_implementing_unknown_hook_is_refused():
    class Typo:
        @hookimpl
        def trader_generate_signal(self, request):  # missing "s"
            return []

    manager = TraderPluginManager(load_entrypoints=False)
    with pytest.raises(PluginError, match="unknown hook 'trader_generate_signal'"):
        manager.register(Typo(), "typo")
    assert "typo" not in manager.records


def test_strategy_that_misnames_itself_is_reported():
    manager = TraderPluginManager(load_entrypoints=False)
    manager.register(EchoStrategy("other"), "mine")
    with pytest.raises(PluginError, match="names itself 'other'"):
        manager.strategy("mine")


def test_wrong_signal_count_is_a_plugin_error():
    class Short(EchoStrategy):
        @hookimpl
        def trader_generate_signals(self, request):
            return [Signal(SignalAction.HOLD, size=0.0)]

    manager = TraderPluginManager(load_entrypoints=False)
    manager.register(Short("short"), "short")
    with pytest.raises(PluginError, match="returned 1 signals for 3 rows"):
        manager.strategy("short").generate_signals(request(3))


def test_builtin_strategy_can_be_disabled_but_core_plugins_cannot():
    manager = TraderPluginManager(load_entrypoints=False, disabled={"buy_and_hold", "core_risk"})
    assert manager.records["buy_and_hold"].status == "disabled"
    assert manager.records["core_risk"].status == "core"
    with pytest.raises(UnknownPluginError, match="disabled"):
        manager.strategy("buy_and_hold")


# ----------------------------------------------------------------------------- real packages


GOOD = """
    from trader import Signal, StrategyInfo, hookimpl

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="third_party", version="2.3.4", description="from a real wheel")

    @hookimpl
    def trader_generate_signals(request):
        return [Signal("hold", size=0.0) for _ in request.at]
"""
BROKEN = """
    raise ImportError("this plugin needs a library that is not installed")
"""
UNKNOWN_HOOK = """
    from trader import hookimpl

    @hookimpl
    def trader_not_a_hook():
        return 1
"""


@pytest.fixture(scope="module")
def installed_plugins(tmp_path_factory) -> Path:
    """Three real distributions, built and pip-installed into a target folder put on PYTHONPATH."""
    src = tmp_path_factory.mktemp("src")
    target = tmp_path_factory.mktemp("site")
    packages = [
        write_plugin(src, "trader-third-party", "trader_third_party", "third_party", GOOD, "2.3.4"),
        write_plugin(src, "trader-broken", "trader_broken", "broken", BROKEN, "2.3.4"),
        write_plugin(src, "trader-typo", "trader_typo", "typo", UNKNOWN_HOOK, "2.3.4"),
    ]
    return pip_install(target, packages)


def test_pip_installed_plugin_is_discovered_and_broken_ones_reported(installed_plugins, trader_home):
    result = run_trader("plugins", "--json", home=trader_home, env=plugin_env(installed_plugins))
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    good = records["third_party"]
    assert (good["distribution"], good["version"], good["status"]) == ("trader-third-party", "2.3.4", "loaded")
    assert good["is_strategy"] and "trader_generate_signals" in good["hooks"]
    broken = records["broken"]
    assert broken["status"] == "error" and broken["distribution"] == "trader-broken"
    assert "ImportError: this plugin needs a library" in broken["error"]
    typo = records["typo"]
    assert typo["status"] == "error" and "unknown hook 'trader_not_a_hook'" in typo["error"]
    # The shipped strategies still load beside the broken ones.
    for name in ("dl_lstm", "dl_transformer", "ensemble", "buy_and_hold", "sma_cross", "momentum_rank"):
        assert records[name]["status"] in ("loaded", "builtin"), records[name]


def test_broken_plugin_is_refused_by_name_when_run(installed_plugins, trader_home):
    result = run_trader("run", "--plugin", "broken", home=trader_home, env=plugin_env(installed_plugins))
    assert result.returncode == 2
    assert "failed to load (trader-broken 2.3.4)" in result.stderr
    assert "Traceback" not in result.stderr


def test_disabled_plugin_is_hidden_from_strategies(installed_plugins, trader_home):
    env = plugin_env(installed_plugins, TRADER_DISABLED_PLUGINS="third_party, broken")
    listing = json.loads(run_trader("plugins", "--json", home=trader_home, env=env).stdout)
    statuses = {r["name"]: r["status"] for r in listing}
    assert statuses["third_party"] == "disabled" and statuses["broken"] == "disabled"
    result = run_trader("run", "--plugin", "third_party", home=trader_home, env=env)
    assert result.returncode == 2 and "disabled" in result.stderr


def test_tracing_logs_hook_calls(installed_plugins, trader_home):
    env = plugin_env(installed_plugins, TRADER_TRACE_PLUGINS="1")
    result = run_trader("run", "--plugin", "third_party", "--max-candles", "3", home=trader_home, env=env)
    assert "hook trader_strategy_info -> [third_party]" in result.stderr
