"""docs/portfolios.md, sentence by sentence: the promises no other portfolio test holds. Its example run as
written, the one-process lock, the basket walk-forward's refused options, the window a cross-sectional
strategy is shown in a run, ``BasketRequest.closes()``. Real ``trader`` processes, a real pip-installed plugin."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.cli_runner import TRADER_EXE, copied_home, one_line_error, run_trader, synth_markets
from tests.plugin_packages import pip_install, plugin_env, write_plugin

DOC = Path(__file__).resolve().parents[2] / "docs" / "portfolios.md"
TWO = ("--symbol", "AAA/USDT", "--symbol", "BBB/USDT", "--timeframe", "1h")

#: ``peek``: cross-sectional, holds everything; at each call it appends to its own workdir how many candles of
#: each market it was shown and how many of them it was asked about.
PEEK = '''
import json

from trader import Signal, StrategyInfo, hookimpl


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="peek", version="1.0", warmup_bars=5)


@hookimpl
def trader_generate_basket_signals(request):
    rows = {s: len(request.candles[s]) for s in request.symbols}
    with open(request.workdir / "seen.jsonl", "a") as out:
        out.write(json.dumps({"asked": len(request.at), "rows": rows}) + "\\n")
    return [{s: Signal.hold("peek") for s in request.symbols} for _ in request.at]
'''


#: ``learner`` (one model per market) and ``pooler`` (``pooled_training``): a model is the markets it learnt
#: from; every market the strategy is asked about gets a BUY of a third of the account.
LEARNER = '''
from trader import Signal, SignalAction, StrategyInfo, hookimpl
from trader.types import TrainResult

POOLED = {pooled}


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="{name}", version="1.0", warmup_bars=5, requires_model=True, pooled_training=POOLED)


@hookimpl
def trader_train(request):
    return TrainResult(model=sorted(request.markets) if request.markets else [request.symbol])


@hookimpl
def trader_generate_signals(request):
    return [Signal(SignalAction.BUY, size=0.33, reason="learnt") for _ in request.at]
'''


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"), [
        write_plugin(src, "trader-peek", "trader_peek", "peek", PEEK),
        write_plugin(src, "trader-learner", "trader_learner", "learner", LEARNER.format(name="learner", pooled=False)),
        write_plugin(src, "trader-pooler", "trader_pooler", "pooler", LEARNER.format(name="pooler", pooled=True)),
    ])


@pytest.fixture(scope="module")
def two_home(tmp_path_factory) -> Path:
    return synth_markets(tmp_path_factory.mktemp("two"), ("AAA/USDT", "BBB/USDT"), 600)


@pytest.fixture
def home(tmp_path, two_home) -> Path:
    return copied_home(two_home, tmp_path)


def doc_blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.slow
def test_the_example_runs_as_written(tmp_path):
    lines = [line.split("#")[0].strip() for line in doc_blocks("bash")[0].splitlines() if line.startswith("trader ")]
    assert [shlex.split(line)[1] for line in lines] == ["data"] * 3 + ["backtest", "run", "status"]
    outputs = []
    for line in lines:
        done = run_trader(*shlex.split(line)[1:], home=tmp_path, timeout=300)
        assert done.returncode == 0, (line, done.stderr)
        outputs.append(done.stdout)
    assert outputs[3].startswith("sma_cross on a basket of 3 markets (AAA/USDT, BBB/USDT, CCC/USDT) 1h")
    status = outputs[5]  # totals, each market, the portfolio limits
    assert "markets (3, one account):" in status and "portfolio limits" in status
    assert all(symbol in status for symbol in ("AAA/USDT", "BBB/USDT", "CCC/USDT"))
    assert "max_open_positions 2" in status and "max_position_fraction 50.00%" in status  # momentum_rank's own
    # the settings block names the same basket for a command without --symbol
    (tmp_path / "trader.toml").write_text(doc_blocks("toml")[0])
    done = run_trader("backtest", "--plugin", "momentum_rank", "--json", "--no-benchmark", home=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["symbols"], data["timeframe"]) == (["AAA/USDT", "BBB/USDT", "CCC/USDT"], "1h")


@pytest.mark.slow
def test_a_second_run_of_the_basket_is_refused_by_its_lock_and_another_strategy_runs_beside_it(home):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TRADER_")}
    env["TRADER_HOME"] = str(home)
    out, err = (home / "first.out").open("w"), (home / "first.err").open("w")
    first = subprocess.Popen([str(TRADER_EXE), "run", "--plugin", "momentum_rank", *TWO, "--speed", "36000"],
                             env=env, stdout=out, stderr=err)
    try:
        state = home / "strategies" / "momentum_rank" / "state.sqlite"
        deadline = time.monotonic() + 60
        while not state.exists() and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
        time.sleep(1.0)
        assert first.poll() is None, "the first run ended before the second started"
        line = one_line_error(run_trader("run", "--plugin", "momentum_rank", *TWO, "--max-candles", "1", home=home))
        assert f"strategy 'momentum_rank' is already running (pid {first.pid}" in line
        beside = run_trader("run", "--plugin", "sma_cross", *TWO, "--max-candles", "20", home=home)
        assert beside.returncode == 0, beside.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGINT)  # Ctrl-C: the current step finishes, then the summary
        first.wait(timeout=60)
        out.close()
        err.close()
    assert first.returncode == 0 and "stopped by a stop signal" in (home / "first.out").read_text()
    status = run_trader("status", "--plugin", "sma_cross", home=home)
    assert status.returncode == 0, status.stderr
    # the portfolio limits' defaults, where the strategy sets none
    assert "max_gross_exposure 100.00%" in status.stdout and "max_open_positions 20" in status.stdout


@pytest.mark.slow
@pytest.mark.parametrize(("extra", "says"), [
    (("--executor", "local"), "--executor, --workers and --ray-address do not apply to a basket's walk-forward"),
    (("--executor", "ray"), "--executor, --workers and --ray-address do not apply to a basket's walk-forward"),
    (("--ray-address", "127.0.0.1:1"), "--executor, --workers and --ray-address do not apply to a basket's walk-forward"),
    (("--report", "REPORT"), "--report is not available for a basket's walk-forward"),
])
def test_a_basket_walk_forward_refuses_the_executor_options_and_report(two_home, tmp_path, extra, says):
    extra = tuple(str(tmp_path / "r") if a == "REPORT" else a for a in extra)
    done = run_trader("backtest", "--plugin", "sma_cross", *TWO, "--walk-forward", "--train-bars", "300",
                      "--test-bars", "200", *extra, home=two_home)
    assert done.returncode == 2 and says in one_line_error(done)
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_cross_sectional_strategy_sees_its_recent_candles_in_a_run_and_the_whole_history_in_a_backtest(home, site):
    seen = home / "strategies" / "peek" / "plugin" / "seen.jsonl"
    done = run_trader("run", "--plugin", "peek", *TWO, home=home, env=plugin_env(site), timeout=300)
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in seen.read_text().splitlines()]
    shown = [max(c["rows"].values()) for c in calls if c["asked"] == 1]
    assert shown and 256 <= max(shown) < 600  # at least 256 candles, never the whole history
    assert shown[-1] == max(shown)
    seen.unlink()
    done = run_trader("backtest", "--plugin", "peek", *TWO, "--no-benchmark", home=home, env=plugin_env(site), timeout=300)
    assert done.returncode == 0, done.stderr
    calls = [json.loads(line) for line in seen.read_text().splitlines()]
    assert max(max(c["rows"].values()) for c in calls) == 600


def test_closes_puts_each_market_on_the_timeline_with_nan_where_it_has_no_candle():
    from trader.types import BasketRequest

    hour = 3_600_000
    def frame(times, closes):
        return pd.DataFrame({"timestamp": np.array(times, dtype=np.int64), "open": closes, "high": closes,
                             "low": closes, "close": closes, "volume": [1.0] * len(closes)})
    request = BasketRequest(strategy="s", symbols=("AAA/USDT", "BBB/USDT"), timeframe="1h",
                            timestamps=np.array([0, hour, 2 * hour], dtype=np.int64),
                            candles={"AAA/USDT": frame([0, hour, 2 * hour], [1.0, 2.0, 3.0]),
                                     "BBB/USDT": frame([0, 2 * hour], [10.0, 30.0])},
                            at=np.array([2], dtype=np.int64))
    closes = request.closes()
    assert list(closes.columns) == ["AAA/USDT", "BBB/USDT"] and list(closes.index) == [0, hour, 2 * hour]
    assert closes["AAA/USDT"].tolist() == [1.0, 2.0, 3.0]
    assert closes["BBB/USDT"].iloc[0] == 10.0 and np.isnan(closes["BBB/USDT"].iloc[1]) and closes["BBB/USDT"].iloc[2] == 30.0


@pytest.fixture(scope="module")
def late_home(tmp_path_factory) -> Path:
    """AAA and CCC from 2024-01-01 (1,000 hourly candles), BBB listed 450 hours later (550)."""
    home = tmp_path_factory.mktemp("late")
    for symbol, seed, bars, start in (("AAA/USDT", 1, 1000, "2024-01-01"), ("CCC/USDT", 3, 1000, "2024-01-01"),
                                      ("BBB/USDT", 2, 550, "2024-01-19 18:00")):
        done = run_trader("data", "synth", "--symbol", symbol, "--bars", str(bars), "--seed", str(seed), "--start", start,
                          home=home)
        assert done.returncode == 0, done.stderr
    return home


def walk_forward(home: Path, site: Path, plugin: str, *symbols: str, extra: tuple[str, ...] = ()) -> dict:
    done = run_trader("backtest", "--plugin", plugin, *[a for s in symbols for a in ("--symbol", s)], "--timeframe", "1h",
                      "--walk-forward", "--train-bars", "300", "--test-bars", "200", "--no-benchmark", "--json", *extra,
                      home=home, env=plugin_env(site), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["walk_forward"]


@pytest.mark.slow
def test_a_basket_walk_forward_learns_from_markets_with_100_candles_in_a_fold(late_home, site):
    aaa, bbb, ccc = "AAA/USDT", "BBB/USDT", "CCC/USDT"
    # 1,000 steps, folds of 200 after 300: the last fold tests the 100 steps left; BBB (from step 450) has 0, 26
    # (50 less the 24-bar purge), 226 and 276 training candles in the four folds' spans
    wf = walk_forward(late_home, site, "learner", aaa, bbb, ccc)
    assert [f["test_rows"] for f in wf["folds"]] == [200, 200, 200, 100]
    assert [f["train_rows"][bbb] for f in wf["folds"]] == [0, 26, 226, 276]
    # one model per market and fold; a market not learnt from in a fold gets no signal in it
    assert [f["trained_on"] for f in wf["folds"]] == [[aaa, ccc], [aaa, ccc], [aaa, bbb, ccc], [aaa, bbb, ccc]]
    assert [f["traded"] for f in wf["folds"]] == [[aaa, ccc], [aaa, ccc], [aaa, bbb, ccc], [aaa, bbb, ccc]]
    # one pooled model per fold, learnt from the markets with 100 candles; it trades every market of the basket
    wf = walk_forward(late_home, site, "pooler", aaa, bbb, ccc)
    assert [f["trained_on"] for f in wf["folds"]] == [[aaa, ccc], [aaa, ccc], [aaa, bbb, ccc], [aaa, bbb, ccc]]
    assert all(f["traded"] == [aaa, bbb, ccc] for f in wf["folds"])
    # ... when at least two markets were learnt from: with one, the fold's model is that market's own and trades it alone
    wf = walk_forward(late_home, site, "pooler", aaa, bbb)
    assert [f["trained_on"] for f in wf["folds"]][:2] == [[aaa], [aaa]] and wf["folds"][0]["traded"] == [aaa]
    # --anchored: every fold trains on all the steps before its test window
    wf = walk_forward(late_home, site, "learner", aaa, ccc, extra=("--anchored",))
    first = wf["folds"][0]["train_start_time"]
    assert all(f["train_start_time"] == first for f in wf["folds"]) and wf["anchored"] is True


def test_buy_and_hold_tops_up_a_fallen_market_with_the_cash_kept_for_one_not_listed_yet(tmp_path):
    from trader.backtest.runner import BacktestSettings
    from trader.config import load_config
    from trader.data.synth import synthetic_candles
    from trader.engine import rebalance_band
    from trader.plugins import TraderPluginManager
    from trader.portfolio import align, run_basket_backtest

    frames = {
        "AAA/USDT": synthetic_candles("AAA/USDT", "1h", 400, seed=1),
        "BBB/USDT": synthetic_candles("BBB/USDT", "1h", 400, seed=2).iloc[200:].reset_index(drop=True),  # listed later
        "CCC/USDT": synthetic_candles("CCC/USDT", "1h", 400, seed=3),
    }
    ccc = frames["CCC/USDT"]
    ccc["close"] = ccc["close"] * np.r_[np.linspace(1.0, 0.5, 100), np.full(300, 0.5)]  # halves in 100 candles
    ccc["open"], ccc["high"], ccc["low"] = ccc["close"], ccc["close"], ccc["close"]
    config = load_config(home=tmp_path)
    band = rebalance_band(config)
    result = run_basket_backtest(TraderPluginManager(load_entrypoints=False), config, "buy_and_hold", align(frames, "1h"),
                                 settings=BacktestSettings(fee_bps=0, slippage_bps=0, spread_bps=0, n_resamples=50,
                                                           benchmark=False, spread_multiplier=None))
    orders = [o.order for o in result.result.orders if o.status == "filled"]
    assert all(o.side.value == "buy" for o in orders)
    equity = dict(zip(result.run.timestamps.tolist(), result.run.equity[1:].tolist(), strict=True))
    listed = int(frames["BBB/USDT"]["timestamp"].iloc[0])
    held = 0.0
    top_ups = 0
    for o in (o for o in orders if o.symbol == "CCC/USDT"):
        target = equity[o.timestamp] / 3
        if held:  # a top-up: the market had fallen more than the band below its third; it is bought back to it
            assert held * o.price < (1 - band) * target and o.timestamp < listed
            top_ups += 1
        held += o.quantity
        assert held * o.price == pytest.approx(target, rel=1e-6)
    assert top_ups >= 2
    late = next(o for o in orders if o.symbol == "BBB/USDT")
    assert late.timestamp == listed and late.quantity * late.price < equity[listed] / 3  # what cash was left


def test_a_halt_from_one_market_halts_every_market_of_the_account(tmp_path):
    from tests.portfolio.test_portfolio_session import BUY, HOUR, T0, _session

    from trader.types import RiskLimits

    session = _session(tmp_path, ["AAA/USDT", "BBB/USDT"], limits=RiskLimits(max_position_fraction=0.3,
                                                                              max_model_failures=2))
    boom = RuntimeError("boom")
    session.step(T0, {"AAA/USDT": 1.0, "BBB/USDT": 1.0}, {"AAA/USDT": boom})
    session.step(T0 + HOUR, {"AAA/USDT": 1.0, "BBB/USDT": 1.0}, {"AAA/USDT": boom})
    assert session.status.value == "halted"  # AAA/USDT's failures, the whole account's breaker
    record = session.step(T0 + 2 * HOUR, {"AAA/USDT": 1.0, "BBB/USDT": 1.0}, {"AAA/USDT": BUY, "BBB/USDT": BUY})
    assert not [o for o in record.orders if o.status == "filled"]
    assert session.quantity("AAA/USDT") == 0 and session.quantity("BBB/USDT") == 0


def test_a_per_market_strategy_s_warm_up_counts_from_each_market_s_own_first_candle():
    from trader.data.synth import synthetic_candles
    from trader.plugins import TraderPluginManager
    from trader.portfolio import align
    from trader.portfolio.signals import basket_signals

    frames = {"AAA/USDT": synthetic_candles("AAA/USDT", "1h", 600, seed=1),
              "BBB/USDT": synthetic_candles("BBB/USDT", "1h", 600, seed=2).iloc[150:].reset_index(drop=True)}
    basket = align(frames, "1h")
    answers, _ = basket_signals(TraderPluginManager().strategy("sma_cross"), basket, 0, len(basket.timestamps) - 1)
    for symbol, listed in (("AAA/USDT", 0), ("BBB/USDT", 150)):  # sma_cross's warm-up: 199 candles of its own
        signalled = [k for k, answer in enumerate(answers) if symbol in answer]
        assert signalled[0] == listed + 199 and answers[signalled[0]][symbol].action.value != "hold"


@pytest.mark.slow
def test_the_paper_broker_charges_each_market_its_own_spread(tmp_path):
    import sqlite3

    from trader.data import resolve_candles

    for symbol, seed, bounce in (("AAA/USDT", 1, "0"), ("BBB/USDT", 2, "200")):  # BBB's candles bounce on a wide spread
        done = run_trader("data", "synth", "--symbol", symbol, "--bars", "1500", "--seed", str(seed), "--bounce-bps", bounce,
                          home=tmp_path)
        assert done.returncode == 0, done.stderr
    done = run_trader("run", "--plugin", "sma_cross", *TWO, "--fee-bps", "0", "--slippage-bps", "0", "--quiet",
                      home=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    closes = {s: dict(zip(*(resolve_candles(tmp_path, s, "1h")[0][k] for k in ("timestamp", "close")), strict=True))
              for s in ("AAA/USDT", "BBB/USDT")}
    with sqlite3.connect(tmp_path / "strategies" / "sma_cross" / "state.sqlite") as db:
        fills = db.execute("SELECT symbol, price, timestamp FROM fills").fetchall()
    paid = {s: np.median([abs(p / closes[s][t] - 1) for sym, p, t in fills if sym == s]) for s in closes}
    assert all(paid.values()) and paid["BBB/USDT"] > 3 * paid["AAA/USDT"]  # half of each market's own spread


def test_momentum_rank_s_lookback_is_at_most_199(two_home, tmp_path):
    settings = tmp_path / "lookback.toml"
    settings.write_text("[plugins.momentum_rank]\nlookback = 200\n")
    line = one_line_error(run_trader("--config", str(settings), "backtest", "--plugin", "momentum_rank", *TWO,
                                     home=two_home))
    assert line == f"Error: {settings}: [plugins.momentum_rank] lookback must be within [1, 199], got 200"
