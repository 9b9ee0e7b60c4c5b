"""`trader tune` as an outsider meets it: a tunable plugin written from the docs, hostile search spaces,
baskets and crafted market lists. Real pip-installed plugins, real `trader` processes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from tests.cli_runner import copied_home, one_line_error, run_trader, synth_markets
from tests.plugin_packages import pip_install, plugin_env, write_distribution, write_plugin

pytest.importorskip("optuna", reason="trader-core[tune] (optuna) is not installed")

MARKET = ("--symbol", "AAA/USDT", "--timeframe", "1h")
QUICK = ("--no-progress", "--min-trades", "0", "--fee-bps", "0", "--slippage-bps", "0", "--spread-bps", "0")

# Written from docs/writing-plugins.md and docs/tuning.md only: above or below the mean of the last closes.
TREND = '''
from importlib.metadata import version

from trader import ParamSpec, Signal, SignalAction, StrategyInfo, hookimpl

PARAMS = (
    ParamSpec("lookback", "int", 20, low=2, high=100, tune=True, help="candles of the mean"),
    ParamSpec("band", "float", 0.0, low=0.0, high=0.05, tune=True),
    ParamSpec("mode", "choice", "long", choices=("long", "flat"), tune=True),
)
DEFAULTS = {p.name: p.default for p in PARAMS}


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="trend", version=version("trader-trend"), warmup_bars=100, params=PARAMS)


@hookimpl
def trader_generate_signals(request):
    p = {**DEFAULTS, **request.params}
    close = request.candles["close"]
    mean = close.rolling(int(p["lookback"])).mean().to_numpy()
    c = close.to_numpy()
    out = []
    for row in request.at:
        if p["mode"] == "flat":
            out.append(Signal.hold())
        elif c[row] > mean[row] * (1 + p["band"]):
            out.append(Signal(SignalAction.BUY, size=1.0))
        elif c[row] < mean[row] * (1 - p["band"]):
            out.append(Signal(SignalAction.SELL, size=1.0))
        else:
            out.append(Signal.hold())
    return out
'''

# Declarations forged past ParamSpec's validators, and ones the validators refuse.
COMMON = '''
from trader import ParamSpec, Signal, SignalAction, StrategyInfo, hookimpl


def forged(spec, **changes):
    for key, value in changes.items():
        object.__setattr__(spec, key, value)
    return spec


class Plugin:
    def __init__(self, name, params):
        self.name, self.params = name, params

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.0", warmup_bars=30, params=self.params)

    @hookimpl
    def trader_generate_signals(self, request):
        close = request.candles["close"].to_numpy()
        return [Signal(SignalAction.BUY if row >= 20 and close[row] > close[row - 20:row].mean() else SignalAction.SELL,
                       size=1.0) for row in request.at]
'''
SPACES = {
    "inverted": 'Plugin("sp_inverted", (forged(ParamSpec("lookback", "int", 20, low=2, high=50, tune=True), low=60, '
                'high=10),))',
    "nan": 'Plugin("sp_nan", (forged(ParamSpec("band", "float", 0.1, low=0.0, high=1.0, tune=True), high=float("nan")),))',
    "huge": 'Plugin("sp_huge", (ParamSpec("pick", "choice", "c0", choices=tuple(f"c{i}" for i in range(5000)), '
            'tune=True),))',
    "symbols": 'Plugin("sp_symbols", (ParamSpec("symbols", "choice", "A", choices=("A", "B"), tune=True),))',
    "timeframe": 'Plugin("sp_timeframe", (ParamSpec("timeframe", "choice", "1h", choices=("1h", "4h"), tune=True),))',
    "tune": 'Plugin("sp_tune", (ParamSpec("tune", "int", 3, low=1, high=9, tune=True),))',
}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    modules = {"trader_spaces": COMMON, **{f"trader_spaces_{k}": f"from trader_spaces import *\nplugin = {v}\n"
                                           for k, v in SPACES.items()}}
    entry_points = {f"sp_{k}": f"trader_spaces_{k}:plugin" for k in SPACES}
    return pip_install(tmp_path_factory.mktemp("site"), [
        write_plugin(src, "trader-trend", "trader_trend", "trend", TREND),
        write_distribution(src, "trader-spaces", entry_points, modules),
    ])


@pytest.fixture(scope="module")
def market_home(tmp_path_factory) -> Path:
    return synth_markets(tmp_path_factory.mktemp("markets"), ("AAA/USDT", "BBB/USDT"), 1500)


@pytest.fixture
def home(tmp_path, market_home) -> Path:
    return copied_home(market_home, tmp_path)


def trader(home: Path, site: Path, *args: str, toml: str | None = None, timeout: float = 240):
    if toml is not None:
        (home / "trader.toml").write_text(toml)
    return run_trader(*args, home=home, env=plugin_env(site), timeout=timeout)


@pytest.mark.slow
def test_a_plugin_written_from_the_docs_is_tuned_applied_and_traded_with_what_was_applied(home, site):
    done = trader(home, site, "tune", "--plugin", "trend", *MARKET, *QUICK, "--trials", "4", "--apply", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_trials"] == 4 and report["study"] == "trend-AAA-USDT-1h"
    assert {d["name"] for d in report["space"]} == {"lookback", "band", "mode"}
    tuned = tomllib.loads((home / "tuned" / "trend.toml").read_text())
    assert tuned["plugins"]["trend"] == report["best"]["params"]  # only declared keys: never a core key
    assert tuned["tuned"]["symbol"] == "AAA/USDT"
    # the markets come from [plugins.NAME] symbols/timeframe, as for trader run and backtest
    again = trader(home, site, "tune", "--plugin", "trend", *QUICK, "--trials", "4", "--json",
                   toml='[plugins.trend]\nsymbols = ["AAA/USDT"]\ntimeframe = "1h"\n')
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["study"] == "trend-AAA-USDT-1h"  # the same study, reported again
    tested = trader(home, site, "backtest", "--plugin", "trend", *MARKET, "--json")
    assert tested.returncode == 0, tested.stderr


@pytest.mark.slow
def test_one_complete_trial_ranks_no_parameter(home, site):
    done = trader(home, site, "tune", "--plugin", "trend", *MARKET, *QUICK, "--trials", "1", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["trials"]["complete"] == 1 and report["importances"] is None
    text = trader(home, site, "tune", "--plugin", "trend", *MARKET, *QUICK, "--trials", "1")
    assert "parameter importances" not in text.stdout


def test_a_basket_is_refused_never_cut_to_one_of_its_markets(home, site):
    line = one_line_error(trader(home, site, "tune", "--plugin", "trend", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT"))
    assert line == ("Error: --symbol: trader tune searches one market's parameters, not a basket's "
                    "(AAA/USDT, BBB/USDT); give one --symbol")
    line = one_line_error(trader(home, site, "tune", "--plugin", "trend",
                                 toml='[plugins.trend]\nsymbols = ["AAA/USDT", "BBB/USDT"]\n'))
    assert line.startswith("Error: [plugins.trend] symbols: trader tune searches one market's parameters")
    line = one_line_error(trader(home, site, "tune", "--plugin", "trend", "--symbol", "AAA/USDT", "--symbol", "aaa/usdt"))
    assert "AAA/USDT and aaa/usdt are given, which differ only in case" in line
    assert not (home / "tune" / "studies.db").exists()  # refused before any study is opened


@pytest.mark.parametrize(("plugin", "says"), [
    ("sp_inverted", "plugin 'sp_inverted': trader_strategy_info returned an invalid StrategyInfo: lookback: low 60 is above high 10"),
    ("sp_nan", "plugin 'sp_nan': trader_strategy_info returned an invalid StrategyInfo: high must be finite, got nan"),
    ("sp_huge", "[plugins.sp_huge.tune] pick: 5,000 choices (as the strategy declares it) are too many to search "
                "(at most 1,000); list the values to try: pick = { choices = [...] }"),
    ("sp_symbols", "import raised ValueError: name 'symbols' is the core's key of [plugins.NAME]"),
    ("sp_timeframe", "import raised ValueError: name 'timeframe' is the core's key of [plugins.NAME]"),
    ("sp_tune", "import raised ValueError: name 'tune' is a sub-table of [plugins.NAME], not a parameter"),
])
def test_a_hostile_search_space_is_one_line_naming_the_plugin_or_parameter(home, site, plugin, says):
    line = one_line_error(trader(home, site, "tune", "--plugin", plugin, *MARKET, *QUICK, "--trials", "2", timeout=60))
    assert says in line
    assert not (home / "tuned").exists()


@pytest.mark.slow
def test_a_huge_categorical_is_searched_among_the_values_the_tune_table_lists(home, site):
    toml = '[plugins.sp_huge.tune]\npick = { choices = ["c1", "c2", "c3"] }\n'
    done = trader(home, site, "tune", "--plugin", "sp_huge", *MARKET, *QUICK, "--trials", "2", "--json", toml=toml)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["space"][0]["choices"] == ["c1", "c2", "c3"]
    toml = "[plugins.sp_huge.tune]\npick = { choices = [" + ", ".join(f'"c{i}"' for i in range(1001)) + "] }\n"
    line = one_line_error(trader(home, site, "tune", "--plugin", "sp_huge", *MARKET, *QUICK, toml=toml))
    assert "pick: 1,001 choices are too many to search (at most 1,000)" in line


def test_a_forged_declaration_stops_every_research_command_by_name(home, site):
    for command in (("backtest",), ("check",)):
        line = one_line_error(trader(home, site, *command, "--plugin", "sp_nan", *MARKET, timeout=60))
        assert "plugin 'sp_nan': trader_strategy_info returned an invalid StrategyInfo" in line
