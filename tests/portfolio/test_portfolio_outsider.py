"""Baskets as an outsider meets them: a plugin written from the docs alone, a hostile basket hook, crafted
market lists. Real pip-installed plugins, real `trader` processes, real SQLite state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_runner import copied_home, one_line_error, run_trader, synth_markets
from tests.plugin_packages import pip_install, plugin_env, write_plugin

from trader import Signal, SignalAction, hookimpl
from trader.backtest.runner import BacktestSettings
from trader.config import load_config
from trader.data.synth import synthetic_candles
from trader.plugins import TraderPluginManager
from trader.portfolio import align
from trader.portfolio.backtest import run_basket_backtest
from trader.types import BasketRequest, SignalRequest, StrategyInfo

BASKET = ("--symbol", "AAA/USDT", "--symbol", "BBB/USDT", "--symbol", "CCC/USDT", "--timeframe", "1h")
SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")

# Written from docs/portfolios.md and docs/plugins.md only: hold the k calmest markets.
LOWVOL = '''
from importlib.metadata import version

import numpy as np

from trader import ParamSpec, Signal, SignalAction, StrategyInfo, hookimpl

PARAMS = (ParamSpec("window", "int", 24, low=2, high=200, tune=True),
          ParamSpec("top_k", "int", 1, low=1, high=10, tune=True))
DEFAULTS = {p.name: p.default for p in PARAMS}


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="lowvol", version=version("trader-lowvol"), description="hold the calmest markets",
                        warmup_bars=201, params=PARAMS)


@hookimpl
def trader_generate_basket_signals(request):
    p = {**DEFAULTS, **request.params}
    out = []
    for pos in request.at:
        ts = request.timestamps[pos]
        vols = {}
        for symbol in request.symbols:
            frame = request.candles[symbol]
            own = frame["close"].to_numpy()[frame["timestamp"].to_numpy() <= ts]
            if len(own) <= p["window"] or frame["timestamp"].iloc[len(own) - 1] != ts:
                continue  # no candle now, or too short a history: not ranked
            tail = own[-p["window"]:]
            vols[symbol] = float(np.std(tail[1:] / tail[:-1]))
        ranked = sorted(vols, key=lambda s: (vols[s], s))
        out.append({s: Signal(SignalAction.BUY, size=1.0, reason="calm") if i < p["top_k"]
                    else Signal(SignalAction.SELL, size=1.0, reason="not calm") for i, s in enumerate(ranked)})
    return out
'''

# A cross-sectional strategy that breaks the basket hook's contract as [plugins.hostile] mode says.
HOSTILE = '''
import gc
import math
import time

from trader import ParamSpec, Signal, SignalAction, StrategyInfo, hookimpl
from trader.types import RiskLimits

MODES = ("ok", "few", "many", "foreign", "nonsignal", "forged", "nan", "raises", "none", "notmapping",
         "genraise", "mutate", "slow", "loosen")


class Forged(Signal):
    pass


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="hostile", version="1.0", warmup_bars=5,
                        params=(ParamSpec("mode", "choice", "ok", choices=MODES),))


@hookimpl
def trader_generate_basket_signals(request):
    mode = request.params["mode"]
    n = len(request.at)
    every = {s: Signal(SignalAction.BUY, size=1.0, reason="all in") for s in request.symbols}
    if mode == "few":
        return [every] * (n - 1)
    if mode == "many":
        return [every] * (n + 1)
    if mode == "foreign":
        return [{**every, "ZZZ/USDT": Signal(SignalAction.BUY, size=1.0)}] * n
    if mode == "nonsignal":
        return [{s: "BUY" for s in request.symbols}] * n
    if mode == "forged":
        return [{s: Forged(SignalAction.BUY, size=1.0) for s in request.symbols}] * n
    if mode == "nan":
        bad = Signal(SignalAction.BUY, size=1.0)
        object.__setattr__(bad, "size", math.nan)
        return [{s: bad for s in request.symbols}] * n
    if mode == "raises":
        raise RuntimeError("boom in the basket")
    if mode == "none":
        return None
    if mode == "notmapping":
        return [list(request.symbols)] * n
    if mode == "genraise":
        def answers():
            for k in range(n):
                if k == n // 2:
                    raise ValueError("generator broke midway")
                yield every
        return answers()
    if mode == "mutate":  # scribble on everything the request hands out, then answer as "ok"
        for frame in request.candles.values():
            frame["close"] *= 1000.0
        request.timestamps[:] = 0
        request.at[:] = 0
        request.params["mode"] = "raises"
    if mode == "slow":
        time.sleep(3600)
    if mode == "loosen":  # every RiskLimits this process holds, loosened past the core's bounds
        for obj in gc.get_objects():
            if type(obj) is RiskLimits:
                for field, value in (("max_gross_exposure", 100.0), ("max_position_fraction", 1.0),
                                     ("max_open_positions", 1000), ("max_order_notional", 1e12)):
                    object.__setattr__(obj, field, value)
    return [every] * n
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [
        write_plugin(src, "trader-lowvol", "trader_lowvol", "lowvol", LOWVOL),
        write_plugin(src, "trader-hostile", "trader_hostile", "hostile", HOSTILE),
    ])


@pytest.fixture(scope="module")
def market_home(tmp_path_factory) -> Path:
    """Three hourly markets over the same 1,000 hours, and LATE/USDT listed a year later."""
    home = synth_markets(tmp_path_factory.mktemp("markets"), SYMBOLS, 1000)
    return synth_markets(home, ["LATE/USDT"], 300, "--start", "2025-01-01", first_seed=9)


@pytest.fixture
def home(tmp_path, market_home) -> Path:
    return copied_home(market_home, tmp_path)


def trader(home: Path, site: Path, *args: str, toml: str | None = None, timeout: float = 120):
    if toml is not None:
        (home / "trader.toml").write_text(toml)
    return run_trader(*args, home=home, env=plugin_env(site), timeout=timeout)


def held(summary: dict) -> dict[str, float]:
    return {s: round(m["quantity"], 6) for s, m in summary["markets"].items()}


# --------------------------------------------------------------------------- a newcomer's plugin


@pytest.mark.slow
def test_a_cross_sectional_plugin_written_from_the_docs_backtests_runs_and_reports_a_basket(home, site):
    done = trader(home, site, "backtest", "--plugin", "lowvol", *BASKET, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert sorted(result["markets"]) == list(SYMBOLS) and result["fills"] > 0
    text = trader(home, site, "backtest", "--plugin", "lowvol", *BASKET)
    assert text.returncode == 0 and "lowvol on a basket of 3 markets" in text.stdout
    if result["final_status"] == "halted":  # the text says why, as one market's summary does
        assert "halted since" in text.stdout and result["halt"]["code"] in text.stdout

    ran = trader(home, site, "run", "--plugin", "lowvol", *BASKET, "--max-candles", "400", "--quiet", "--json")
    assert ran.returncode == 0, ran.stderr
    assert sorted(json.loads(ran.stdout)["markets"]) == list(SYMBOLS)
    status = trader(home, site, "status", "--plugin", "lowvol", "--json")
    assert status.returncode == 0, status.stderr
    assert "AAA/USDT" in status.stdout and "max_gross_exposure" in status.stdout

    walked = trader(home, site, "backtest", "--plugin", "lowvol", *BASKET, "--walk-forward", "--train-bars", "300",
                    "--test-bars", "200", "--json", "--no-progress")
    assert walked.returncode == 0, walked.stderr
    folds = json.loads(walked.stdout)["walk_forward"]["folds"]
    assert [f["test_rows"] for f in folds] == [200, 200, 200, 100]  # the last fold tests the steps left


# --------------------------------------------------------------------------- a hostile basket hook

CONTRACT = {  # mode: what the one line says
    "few": "returned 0 answers for 1 times",
    "many": "returned 2 answers for 1 times",
    "foreign": "gave a signal for 'ZZZ/USDT', which is not in the basket",
    "nonsignal": "returned str, not Signal for",
    "forged": "returned Forged, not Signal for",
    "nan": "a signal whose size nan is not a number within [0, 1]",
    "raises": "raised RuntimeError: boom in the basket",
    "none": "returned None",
    "notmapping": "answer 0 is list, not a mapping",
    "genraise": "raised ValueError: generator broke midway",
}
INVALID_SIGNALS = ("nonsignal", "forged", "nan")  # a backtest books them as INVALID_SIGNAL and goes on


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(CONTRACT))
def test_a_hostile_basket_answer_is_named_never_traded_and_the_breaker_halts_the_run(home, site, mode):
    toml = f'[plugins.hostile]\nmode = "{mode}"\n'
    ran = trader(home, site, "run", "--plugin", "hostile", *BASKET, "--max-candles", "12", "--quiet", "--json", toml=toml)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert held(summary) == dict.fromkeys(SYMBOLS, 0.0) and summary["trades"] == 0
    assert "MODEL_FAILURES" in ran.stdout + ran.stderr
    for symbol in SYMBOLS:  # one line per market, naming the plugin and the market
        line = next(x for x in ran.stderr.splitlines() if f": {symbol}: plugin 'hostile'" in x)
        assert CONTRACT[mode] in line

    tested = trader(home, site, "backtest", "--plugin", "hostile", *BASKET, "--no-benchmark", "--json")
    if mode in INVALID_SIGNALS:
        assert tested.returncode == 0, tested.stderr
        result = json.loads(tested.stdout)
        assert result["fills"] == 0 and result["halt"]["code"] == "MODEL_FAILURES"
        text = trader(home, site, "backtest", "--plugin", "hostile", *BASKET, "--no-benchmark")
        assert "  halted since 2024-01-01 07:00 UTC (MODEL_FAILURES: 3 model failures in a row (limit 3))" in text.stdout
    else:
        line = one_line_error(tested)
        assert line.startswith("Error: plugin 'hostile': trader_generate_basket_signals")
        assert ("answers for" if mode in ("few", "many") else CONTRACT[mode]) in line


@pytest.mark.slow
def test_a_hung_basket_worker_is_stopped_and_each_step_counts_once(home, site):
    toml = '[plugins.hostile]\nmode = "slow"\n[engine]\nsignal_timeout_s = 1\n'
    ran = trader(home, site, "run", "--plugin", "hostile", *BASKET, "--max-candles", "9", "--quiet", "--json", toml=toml)
    assert ran.returncode == 0, ran.stderr
    summary = json.loads(ran.stdout)
    assert held(summary) == dict.fromkeys(SYMBOLS, 0.0)
    assert "did not answer within 1 s and was stopped" in ran.stderr
    assert "MODEL_FAILURES: 3 model failures in a row" in ran.stdout  # three hung steps, one failure each


@pytest.mark.slow
def test_a_strategy_scribbling_on_its_request_or_loosening_limits_in_its_worker_changes_nothing(home, site):
    """The run with a plugin that rewrites its candles, timeline, rows and params, or loosens every
    RiskLimits its worker holds, holds what the well-behaved plugin holds (per-market cap 0.5)."""
    summaries = {}
    for mode in ("ok", "mutate", "loosen"):
        target = home.parent / f"home-{mode}"
        shutil.copytree(home, target)
        ran = trader(target, site, "run", "--plugin", "hostile", *BASKET, "--max-candles", "30", "--quiet", "--json",
                     toml=f'[plugins.hostile]\nmode = "{mode}"\n')
        assert ran.returncode == 0, ran.stderr
        assert "PLUGIN_ERROR" not in ran.stderr and "INVALID_SIGNAL" not in ran.stderr
        summaries[mode] = json.loads(ran.stdout)
    assert held(summaries["mutate"]) == held(summaries["ok"]) == held(summaries["loosen"])
    assert summaries["mutate"]["equity"] == pytest.approx(summaries["ok"]["equity"], rel=1e-12)
    # each buy is capped at half the account (the default max_position_fraction): two markets fill the cash
    assert held(summaries["ok"])["BBB/USDT"] > 0 and held(summaries["ok"])["CCC/USDT"] == 0

    # in the command's own process (a backtest) the loosened limits fail closed, by name
    tested = trader(home, site, "backtest", "--plugin", "hostile", *BASKET, "--no-benchmark",
                    toml='[plugins.hostile]\nmode = "loosen"\n')
    assert "plugin 'hostile': the risk limits it would trade under are invalid" in one_line_error(tested)


class Scribbler:
    """Writes into every array and mapping its request hands out, then answers by position alone."""

    def __init__(self, scribble: bool) -> None:
        self.scribble = scribble

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name="scribbler", version="1.0", warmup_bars=5)

    @hookimpl
    def trader_generate_basket_signals(self, request: BasketRequest):
        if self.scribble:
            request.timestamps[:] = request.timestamps[::-1].copy()
            request.at[:] = 0
            request.params["scribbled"] = True
            for frame in request.candles.values():
                frame["close"] *= 1000.0
        return [{s: Signal(SignalAction.BUY if (k // 7) % 2 == 0 else SignalAction.SELL, size=1.0)
                 for s in request.symbols} for k in range(len(request.at))]


def test_a_basket_backtest_gives_the_same_fills_whatever_the_strategy_writes_into_its_request(tmp_path):
    frames = {s: synthetic_candles(s, "1h", 300, seed=i) for i, s in enumerate(("AAA/USDT", "BBB/USDT"))}
    settings = BacktestSettings(fee_bps=0.0, slippage_bps=0.0, spread_bps=0.0, n_resamples=100, benchmark=False)
    outcomes = []
    for scribble in (False, True):
        basket = align({s: f.copy() for s, f in frames.items()}, "1h")
        timeline = basket.timestamps.copy()
        manager = TraderPluginManager(load_entrypoints=False)
        with manager.registered(Scribbler(scribble), "scribbler"):
            result = run_basket_backtest(manager, load_config(home=tmp_path), "scribbler", basket, settings=settings)
        assert np.array_equal(basket.timestamps, timeline)
        outcomes.append([sorted(f.items()) for f in result.run.fills])
    assert outcomes[0] and outcomes[0] == outcomes[1]


def test_a_request_s_params_rows_and_timeline_are_its_own():
    params = {"window": 3, "windows": [5, 20]}
    rows = np.arange(4, dtype=np.int64)
    single = SignalRequest(strategy="s", symbol="AAA/USDT", timeframe="1h", candles=None, at=rows, params=params)
    single.params["window"] = 99
    single.params["windows"].append(1)
    single.at[:] = 0
    basket = BasketRequest(strategy="s", symbols=("AAA/USDT",), timeframe="1h", timestamps=rows, candles={}, at=rows,
                           params=params)
    basket.timestamps[:] = 7
    assert params == {"window": 3, "windows": [5, 20]} and rows.tolist() == [0, 1, 2, 3]


# --------------------------------------------------------------------------- crafted market lists


def test_a_market_named_twice_in_another_case_is_refused_in_one_line(home, site):
    line = one_line_error(trader(home, site, "backtest", "--plugin", "sma_cross", "--symbol", "AAA/USDT",
                                 "--symbol", "aaa/usdt", "--symbol", "BBB/USDT"))
    assert line == ("Error: --symbol: AAA/USDT and aaa/usdt are given, which differ only in case; name each market "
                    "once, as the exchange spells it")
    for command in ("run", "train"):
        line = one_line_error(trader(home, site, command, "--plugin", "sma_cross", "--symbol", "BBB/USDT",
                                     "--symbol", "bbb/USDT"))
        assert "BBB/USDT and bbb/USDT are given, which differ only in case" in line
    line = one_line_error(trader(home, site, "run", "--plugin", "sma_cross",
                                 toml='[plugins.sma_cross]\nsymbols = ["AAA/USDT", "Aaa/USDT"]\n'))
    assert "[plugins.sma_cross] symbols lists AAA/USDT and Aaa/USDT, which differ only in case" in line
    assert not (home / "strategies" / "sma_cross").exists()


def test_a_basket_market_without_a_candle_in_the_range_is_refused_by_name(home, site):
    for extra in ((), ("--walk-forward", "--train-bars", "300", "--test-bars", "100")):
        line = one_line_error(trader(home, site, "backtest", "--plugin", "sma_cross", *BASKET, "--symbol", "LATE/USDT",
                                     "--to", "2024-02-01", *extra))
        assert line == ("Error: no candle within the requested range for LATE/USDT (2025-01-01 00:00 UTC .. "
                        "2025-01-13 11:00 UTC): leave it out of the basket, or move --from/--to")
    line = one_line_error(trader(home, site, "backtest", "--plugin", "sma_cross", *BASKET, "--from", "2030-01-01"))
    assert line.startswith("Error: no candle of the basket falls within the requested range: AAA/USDT (")


def test_markets_that_never_overlap_are_each_traded_on_their_own_candles(home, site):
    """Documented: a market with no candle at a time is not traded then; nothing is invented."""
    done = trader(home, site, "backtest", "--plugin", "buy_and_hold", "--symbol", "AAA/USDT", "--symbol", "LATE/USDT",
                  "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["range"]["steps"] == 1000 + 300
    assert {s: m["candles"] for s, m in result["markets"].items()} == {"AAA/USDT": 1000, "LATE/USDT": 300}
    assert all(m["fills"] >= 1 for m in result["markets"].values())
