"""``trader run`` on a basket as a user runs it: real subprocesses, real SQLite files, pip-installed strategies.

Three stored markets with different histories (one listed two days later, one with a gap of
twenty candles), a per-market strategy with a warm-up and a cross-sectional one. A replay of
the basket makes the trades of a basket backtest of the same candles, in both isolation
modes; a run stopped or killed and restarted ends where an unbroken one does; the order the
markets are listed in changes nothing; a single-market account grows into a basket.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import TRADER_EXE, run_trader
from plugin_packages import pip_install, plugin_env, write_distribution

from trader.engine import TradingState
from trader.portfolio import PORTFOLIO

pytestmark = pytest.mark.slow

AAA, BBB, CCC = "AAA/USDT", "BBB/USDT", "CCC/USDT"
BASKET = ("--symbol", AAA, "--symbol", BBB, "--symbol", CCC)
HOUR = 3_600_000

SMA = '''
"""A per-market SMA cross with a warm-up, shown the core's features."""
from trader import RiskLimits, Signal, SignalAction, StrategyInfo, hookimpl

FAST, SLOW = 5, 20


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="pm_sma", version="1.0", warmup_bars=SLOW, feature_windows=(5,),
                        risk_limits=RiskLimits(max_consecutive_losses=1000, max_position_fraction=0.5))


@hookimpl
def trader_generate_signals(request):
    close = request.candles["close"].to_numpy()
    assert request.features is not None and len(request.features) == len(request.candles)
    out = []
    for i in request.at:
        fast, slow = close[i - FAST + 1 : i + 1].mean(), close[i - SLOW + 1 : i + 1].mean()
        out.append(Signal(SignalAction.BUY if fast > slow else SignalAction.SELL, size=1.0))
    return out
'''

RANK = '''
"""Cross-sectional momentum: hold the market that rose most over its own last ten candles."""
from trader import RiskLimits, Signal, SignalAction, StrategyInfo, hookimpl

LOOKBACK = 10


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="pm_rank", version="1.0", warmup_bars=LOOKBACK, timeframes=("1s", "1h"),
                        risk_limits=RiskLimits(max_consecutive_losses=1000, max_position_fraction=0.6))


@hookimpl
def trader_generate_basket_signals(request):
    out = []
    for position in request.at:
        t = request.timestamps[position]
        scores = {}
        for symbol in request.symbols:
            frame = request.candles[symbol]
            close = frame["close"].to_numpy()[frame["timestamp"].to_numpy() <= t]
            if close.size > LOOKBACK:
                scores[symbol] = close[-1] / close[-1 - LOOKBACK] - 1
        best = max(scores, key=lambda s: (scores[s], s)) if scores else None
        out.append({s: Signal(SignalAction.BUY if s == best else SignalAction.SELL, size=1.0) for s in request.symbols})
    return out
'''

DECLARED = '''
"""A per-market strategy that declares its parameters (so an unknown [plugins.pm_declared] key is refused)."""
from trader import ParamSpec, Signal, SignalAction, StrategyInfo, hookimpl


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="pm_declared", version="1.0", params=(ParamSpec("size", "float", default=0.5),))


@hookimpl
def trader_generate_signals(request):
    return [Signal(SignalAction.BUY, size=request.params["size"]) for _ in request.at]
'''

CRASH = '''
"""Cross-sectional, hostile once each: its worker dies, it raises SystemExit, it forges the worker's reply."""
import os
import sys

from trader import Signal, SignalAction, StrategyInfo, hookimpl

T0, HOUR = 1_704_067_200_000, 3_600_000


@hookimpl
def trader_strategy_info():
    return StrategyInfo(name="pm_crash", version="1.0")


def once(request, what):
    marker = request.workdir / what
    if marker.exists():
        return False
    marker.write_text("done")
    return True


@hookimpl
def trader_generate_basket_signals(request):
    t = int(request.timestamps[request.at[-1]])
    if t == T0 + 30 * HOUR and once(request, "exit"):
        os._exit(3)
    if t == T0 + 60 * HOUR and once(request, "system_exit"):
        raise SystemExit(0)
    if t == T0 + 90 * HOUR and once(request, "forge"):
        from multiprocessing.connection import Connection

        from trader.engine.wire import encode

        Connection(int(sys.argv[1]), readable=False).send_bytes(encode(
            {"ok": True, "signals": {"ZZZ/USDT": {"signal": ["buy", 1.0, 1.0, None, "forged"]}}}))
    size = 1.0 / len(request.symbols)
    return [{s: Signal(SignalAction.BUY, size=size) for s in request.symbols} for _ in request.at]
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The test strategies, pip-installed in one call."""
    root = tmp_path_factory.mktemp("packages")
    package = write_distribution(root / "src", "trader-portfolio-fakes",
                                 {n: n for n in ("pm_sma", "pm_rank", "pm_declared", "pm_crash")},
                                 {"pm_sma": SMA, "pm_rank": RANK, "pm_declared": DECLARED, "pm_crash": CRASH})
    return plugin_env(pip_install(root / "site", [package]))


@pytest.fixture(scope="module")
def market_data(tmp_path_factory, env) -> Path:
    """Three stored markets: AAA (600 candles), BBB listed two days later (500), CCC with a 20-candle gap (580)."""
    home = tmp_path_factory.mktemp("data_home")
    for args in (("--symbol", AAA, "--bars", "600", "--seed", "1"),
                 ("--symbol", BBB, "--bars", "500", "--seed", "2", "--start", "2024-01-03")):
        made = run_trader("data", "synth", *args, home=home, env=env)
        assert made.returncode == 0, made.stderr
    csv = home / "ccc.csv"
    made = run_trader("data", "synth", "--symbol", CCC, "--bars", "600", "--seed", "3", "--output", str(csv), home=home, env=env)
    assert made.returncode == 0, made.stderr
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[:151] + lines[171:]))  # rows 150..169 never happened
    imported = run_trader("data", "import", str(csv), "--symbol", CCC, "--timeframe", "1h", "--exchange", "synthetic",
                          home=home, env=env)
    assert imported.returncode == 0, imported.stderr
    return home / "data"


@pytest.fixture
def home(tmp_path, market_data) -> Path:
    path = tmp_path / "home"
    shutil.copytree(market_data, path / "data")
    return path


def _run(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_trader("run", *args, "--quiet", home=home, env=env)


def _books(home: Path, name: str) -> dict:
    state = TradingState.open(name, home / "strategies" / name, readonly=True)
    try:
        saved = state.load()
        return {
            "fills": [(f["client_order_id"], f["symbol"], f["side"], f["quantity"], f["price"], f["fee"]) for f in state.fills()],
            "curve": state.equity_curve(PORTFOLIO),
            "markets": state.market_history(),
            "cash": saved.cash,
            "positions": {s: p.quantity for s, p in saved.positions.items()},
        }
    finally:
        state.close()


def _backtest(home: Path, env: dict[str, str], name: str, symbols=(AAA, BBB, CCC)):
    """The basket backtest of the same stored candles, in this process (the strategies from ``env``)."""
    code = (
        "import json, sys\n"
        "from trader.config import load_config\nfrom trader.data import resolve_candles\n"
        "from trader.plugins import TraderPluginManager\nfrom trader.portfolio import align, run_basket_backtest\n"
        "home, name, symbols = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
        "frames = {s: resolve_candles(home, s, '1h')[0] for s in symbols}\n"
        "r = run_basket_backtest(TraderPluginManager(), load_config(home=home), name, align(frames, '1h'))\n"
        "print(json.dumps({'fills': [[f['client_order_id'], f['symbol'], f['side'], f['quantity'], f['price'], f['fee']]"
        " for f in r.run.fills], 'timestamps': r.run.timestamps.tolist(), 'equity': r.run.equity[1:].tolist()}))\n"
    )
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | env | {"TRADER_HOME": str(home)}
    done = subprocess.run([sys.executable, "-c", code, str(home), name, *symbols], capture_output=True, text=True,
                          env=full, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("isolation", ["inline", "process"])
@pytest.mark.parametrize(("name", "least_fills"),
                         [("buy_and_hold", 3), ("sma_cross", 10), ("momentum_rank", 10), ("pm_sma", 20), ("pm_rank", 20)])
def test_a_replayed_basket_makes_the_trades_of_its_backtest(home, env, name, least_fills, isolation):
    proc = _run(home, env, "--plugin", name, *BASKET, "--isolation", isolation)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on a basket of 3 markets (AAA/USDT, BBB/USDT, CCC/USDT)" in proc.stdout and "600 new steps" in proc.stdout
    books = _books(home, name)
    test = _backtest(home, env, name)
    assert [tuple(f) for f in test["fills"]] == books["fills"]
    assert {f[1] for f in books["fills"]} == {AAA, BBB, CCC}
    assert len(books["fills"]) >= least_fills
    assert [t for t, _ in books["curve"]] == test["timestamps"]
    assert [e for _, e in books["curve"]] == pytest.approx(test["equity"], rel=1e-12)
    traded = {s: [t for t, sym, *_ in books["markets"] if sym == s] for s in (AAA, BBB, CCC)}
    assert len(traded[AAA]) == 600 and len(traded[BBB]) == 500 and len(traded[CCC]) == 580  # no invented bars
    assert min(traded[BBB]) == min(traded[AAA]) + 48 * HOUR  # BBB trades from its listing on
    assert traded[CCC][150] - traded[CCC][149] == 21 * HOUR  # and CCC not in its gap


def test_json_summary_has_the_totals_and_each_market(home, env):
    proc = run_trader("run", "--plugin", "pm_sma", *BASKET, "--isolation", "inline", "--json", home=home, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    books = _books(home, "pm_sma")
    assert summary["symbols"] == [AAA, BBB, CCC] and summary["processed"] == 600
    assert summary["trades"] == len(books["fills"]) and summary["cash"] == pytest.approx(books["cash"])
    for symbol in (AAA, BBB, CCC):
        market = summary["markets"][symbol]
        assert market["fills"] == sum(1 for f in books["fills"] if f[1] == symbol)
        assert market["quantity"] == pytest.approx(books["positions"].get(symbol, 0.0))
        assert market["value"] == pytest.approx(market["quantity"] * market["mark"])
    assert summary["equity"] == pytest.approx(summary["cash"] + sum(m["value"] for m in summary["markets"].values()))
    assert summary["equity"] == pytest.approx(books["curve"][-1][1])


def test_a_stopped_and_restarted_basket_ends_like_an_unbroken_run(tmp_path, home, env):
    other = tmp_path / "unbroken"
    shutil.copytree(home / "data", other / "data")
    assert _run(other, env, "--plugin", "pm_sma", *BASKET).returncode == 0
    first = _run(home, env, "--plugin", "pm_sma", *BASKET, "--max-candles", "130")
    assert first.returncode == 0, first.stderr[-2000:]
    assert "130 new steps, stopped by --max-candles 130" in first.stdout
    second = _run(home, env, "--plugin", "pm_sma", *BASKET, "--isolation", "inline")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "resuming after step 130 of 600" in second.stderr and "470 new steps" in second.stdout
    assert _books(home, "pm_sma") == _books(other, "pm_sma")


def test_sigkill_mid_replay_then_restart_loses_and_duplicates_nothing(tmp_path, home, env):
    other = tmp_path / "unbroken"
    shutil.copytree(home / "data", other / "data")
    assert _run(other, env, "--plugin", "pm_rank", *BASKET).returncode == 0
    rng = random.Random(16)
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | env | {"TRADER_HOME": str(home)}
    kills = 0
    for _ in range(4):
        process = subprocess.Popen([str(TRADER_EXE), "run", "--plugin", "pm_rank", *BASKET], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=full)
        target, steps = rng.randint(20, 60), 0
        assert process.stderr is not None
        for line in process.stderr:
            if " step pm_rank " in line:
                steps += 1
                if steps >= target:
                    break
        process.kill()
        process.communicate(timeout=60)
        kills += process.returncode != 0
    assert kills >= 3
    killed = _books(home, "pm_rank")
    assert 0 < len(killed["curve"]) < 600
    final = _run(home, env, "--plugin", "pm_rank", *BASKET)
    assert final.returncode == 0, final.stderr[-2000:]
    books = _books(home, "pm_rank")
    assert books == _books(other, "pm_rank")
    ids = [f[0] for f in books["fills"]]
    assert len(ids) == len(set(ids))


def test_the_order_markets_are_listed_in_changes_nothing(tmp_path, home, env):
    other = tmp_path / "shuffled"
    shutil.copytree(home / "data", other / "data")
    assert _run(home, env, "--plugin", "pm_rank", "--symbol", AAA, "--symbol", BBB, "--symbol", CCC).returncode == 0
    assert _run(other, env, "--plugin", "pm_rank", "--symbol", CCC, "--symbol", AAA, "--symbol", BBB).returncode == 0
    books = _books(home, "pm_rank")
    assert len(books["fills"]) >= 20 and books == _books(other, "pm_rank")


def test_a_single_market_account_grows_into_a_basket_without_losing_anything(home, env):
    single = _run(home, env, "--plugin", "pm_sma", "--symbol", AAA, "--max-candles", "150")
    assert single.returncode == 0, single.stderr[-2000:]
    state = TradingState.open("pm_sma", home / "strategies" / "pm_sma", readonly=True)
    before_fills, before = state.fills(), state.load(AAA, "1h")
    before_curve = state.equity_curve(AAA)
    state.close()
    assert before_fills and before.last_candle_ts is not None

    basket = _run(home, env, "--plugin", "pm_sma", "--symbol", AAA, "--symbol", BBB)
    assert basket.returncode == 0, basket.stderr[-2000:]
    state = TradingState.open("pm_sma", home / "strategies" / "pm_sma", readonly=True)
    try:
        after = state.load()
        fills = state.fills()
        assert fills[: len(before_fills)] == before_fills  # the single market's fills are kept
        assert state.equity_curve(AAA) == before_curve  # and its history
        assert after.initial_cash == before.initial_cash
        curve = state.equity_curve(PORTFOLIO)
        assert curve[0][0] == before.last_candle_ts + HOUR  # the basket continues after the last candle
        assert min(t for t, s, *_ in state.market_history(AAA)) > before.last_candle_ts  # AAA replays nothing old
        assert {f["symbol"] for f in fills[len(before_fills):]} == {AAA, BBB}
        # one cash balance: the initial cash and every fill, before and after the migration
        cash = after.initial_cash
        held: dict[str, float] = {}
        for f in fills:
            sign = 1 if f["side"] == "buy" else -1
            cash -= sign * f["quantity"] * f["price"] + f["fee"]
            held[f["symbol"]] = held.get(f["symbol"], 0.0) + sign * f["quantity"]
        assert after.cash == pytest.approx(cash, rel=1e-9)
        assert {s: p.quantity for s, p in after.positions.items() if p.quantity} == pytest.approx(
            {s: q for s, q in held.items() if abs(q) > 1e-12})
    finally:
        state.close()


def test_markets_from_trader_toml_and_a_strategy_that_declares_its_params(home, env):
    (home / "trader.toml").write_text(f'[plugins.pm_declared]\nsymbols = ["{CCC}", "{AAA}"]\ntimeframe = "1h"\nsize = 0.4\n')
    proc = _run(home, env, "--plugin", "pm_declared", "--max-candles", "5")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "on a basket of 2 markets (AAA/USDT, CCC/USDT)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "toml", "message"),
    [
        ((*BASKET, "--symbol", AAA), "", "--symbol: AAA/USDT is given twice"),
        (("--symbol", AAA, "--symbol", "ZZZ/USDT"), "", "no stored ZZZ/USDT 1h candles"),
        ((), '[plugins.pm_sma]\nsymbols = "AAA/USDT"\n', "[plugins.pm_sma] symbols must be a list of market symbols"),
        ((), '[plugins.pm_sma]\nsymbols = ["AAA/USDT", 3]\n', "[plugins.pm_sma] symbols must be a list of market symbols"),
        ((), '[plugins.pm_sma]\nsymbols = ["AAA/USDT", "AAA/USDT"]\n', "[plugins.pm_sma] symbols lists AAA/USDT twice"),
        ((), '[plugins.pm_sma]\nsymbols = ["AAA/USDT", "../x"]\n', "[plugins.pm_sma] symbols:"),
        ((), '[plugins.pm_sma]\ntimeframe = 60\n', "[plugins.pm_sma] timeframe must be text"),
    ],
)
def test_bad_markets_are_one_line_and_a_non_zero_exit(home, env, args, toml, message):
    if toml:
        (home / "trader.toml").write_text(toml)
    proc = _run(home, env, "--plugin", "pm_sma", *args, "--isolation", "inline")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert not (home / "strategies" / "pm_sma" / "state.sqlite").exists()


def test_a_live_basket_orders_each_market_on_the_exchange_and_the_books_match_it(tmp_path, env):
    """``trader run --feed live --live`` on two markets of the loopback exchange (1-second candles around now)."""
    import time

    import numpy as np

    from trader.data.synth import synthetic_candles
    from trader.testing.fake_binance import FakeBinance, toml_for_ccxt

    def around_now(symbol: str, seed: int):
        df = synthetic_candles(symbol, "1s", 400, seed)
        df["timestamp"] = (np.arange(400, dtype=np.int64) + int(time.time()) - 300) * 1000
        return df

    home = tmp_path / "home"
    home.mkdir()
    frames = {"BTC/USDT": around_now("BTC/USDT", 1), "ETH/USDT": around_now("ETH/USDT", 2)}
    with FakeBinance(frames, balances={"USDT": 10_000}) as server:
        (home / "trader.toml").write_text(toml_for_ccxt(server.ccxt_options(timeout=3000)))
        keys = {**env, "TRADER_API_KEY": "test-key-123", "TRADER_API_SECRET": "test-secret-456"}
        proc = run_trader("run", "--plugin", "pm_rank", "--feed", "live", "--live", "--timeframe", "1s",
                          "--symbol", "BTC/USDT", "--symbol", "ETH/USDT", "--max-candles", "4", "--cash", "10000",
                          home=home, env=keys, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "4 new steps" in proc.stdout and "test-secret-456" not in proc.stdout + proc.stderr
        posted = server.requests_to("/api/v3/order", "POST")
        books = _books(home, "pm_rank")
        assert posted and sorted(r.params["newClientOrderId"] for r in posted) == sorted(f[0] for f in books["fills"])
        assert books["cash"] == pytest.approx(server.balance("USDT")[0], rel=1e-9)
        for symbol in frames:
            held = books["positions"].get(symbol, 0.0)
            assert held == pytest.approx(server.balance(symbol.split("/")[0])[0], rel=1e-9, abs=1e-9)


def test_one_worker_serves_the_basket_and_a_dead_or_lying_worker_costs_one_step(home, env):
    proc = _run(home, env, "--plugin", "pm_crash", *BASKET, "--isolation", "process")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "600 new steps" in proc.stdout and "Traceback" not in proc.stderr
    assert proc.stderr.count("strategy worker restarted") == 2  # after the exit and after the forged reply
    state = TradingState.open("pm_crash", home / "strategies" / "pm_crash", readonly=True)
    try:
        errors = [e for e in state.risk_events("signal") if e["code"] == "PLUGIN_ERROR"]
        curve = state.equity_curve(PORTFOLIO)
        fills = state.fills()
        status = state.load().status
    finally:
        state.close()
    T0 = curve[0][0]
    by_time: dict[int, list[str]] = {}
    for e in errors:
        by_time.setdefault(e["timestamp"], []).append(e["message"])
    assert sorted(by_time) == [T0 + 30 * HOUR, T0 + 60 * HOUR, T0 + 90 * HOUR]  # one step each, nothing else
    assert sorted(m.split(":")[0] for m in by_time[T0 + 30 * HOUR]) == [AAA, CCC]  # BBB is not listed yet
    assert all("exit status 3" in m for m in by_time[T0 + 30 * HOUR])
    assert all("SystemExit" in m for m in by_time[T0 + 60 * HOUR])
    assert all("ZZZ/USDT" in m for m in by_time[T0 + 90 * HOUR]) and len(by_time[T0 + 90 * HOUR]) == 3
    assert status.value == "active" and len(curve) == 600
    assert {f["symbol"] for f in fills} == {AAA, BBB, CCC}  # nothing of the forged market


def test_from_starts_the_replay_and_sigterm_finishes_the_current_step(home, env):
    import signal

    from trader.data.frame import parse_time_ms

    start = parse_time_ms("2024-01-10", "--from")
    full = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")} | env | {"TRADER_HOME": str(home)}
    process = subprocess.Popen([str(TRADER_EXE), "run", "--plugin", "pm_sma", *BASKET, "--from", "2024-01-10",
                                "--speed", "36000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full)
    try:
        assert process.stderr is not None
        steps = 0
        for line in process.stderr:
            steps += " step pm_sma " in line
            if steps >= 5:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err[-2000:]
    assert "SIGTERM received" in err and "stopped by a stop signal" in out
    books = _books(home, "pm_sma")
    assert books["curve"][0][0] == start and 5 <= len(books["curve"]) < 100  # nothing before --from was traded
    state = TradingState.open("pm_sma", home / "strategies" / "pm_sma", readonly=True)
    try:
        assert state.load(PORTFOLIO, "1h").last_candle_ts == books["curve"][-1][0]  # the last step committed whole
    finally:
        state.close()
