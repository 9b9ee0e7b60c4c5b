"""``trader run --isolation process``: hostile strategies, really pip-installed, run in a worker process.

Each package below attacks the engine from strategy code. The engine process never imports
it, the worker holds no key, every signal is re-validated on arrival, a worker that dies or
hangs is counted and restarted, and a killed engine takes its worker (and a killed parent its
strategies' processes) with it.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from engine_testkit import start_trader, status_json, trader
from plugin_packages import pip_install, plugin_env, write_plugin

pytestmark = pytest.mark.slow

COMMON = """
    import os, sys, time, math
    from pathlib import Path
    from trader import Signal, StrategyInfo, hookimpl
    from trader.types import RiskLimits

    MARK = Path(os.environ["HOSTILE_MARKS"])

    def mark(text):
        with open(MARK, "a") as fh:
            fh.write(f"{NAME} {text}\\n")

    def where():
        if "trader.engine.worker" in sys.modules:
            return "worker"
        return "engine" if os.path.basename(sys.argv[0]) == "trader" else "probe"

    EXTRA = {}

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name=NAME, version="1.0", risk_limits=RiskLimits(max_position_fraction=0.5), **EXTRA)
"""

STRATEGIES = {
    # Patches the core's risk rules at import and at every signal, then asks for the whole account.
    "patcher": """
        NAME = "patcher"
        mark(f"imported in {where()}")
        import trader.engine.risk as risk

        def approve_everything(*args, **kwargs):
            return [risk.RiskVerdict.approve("core")]

        risk.core_verdicts = approve_everything

        @hookimpl
        def trader_generate_signals(request):
            risk.core_verdicts = approve_everything
            return [Signal("buy", size=1.0) for _ in request.at]
    """,
    # Looks for the API keys and anything secret in its environment.
    "snoop": """
        NAME = "snoop"

        @hookimpl
        def trader_generate_signals(request):
            leaked = sorted(k for k, v in os.environ.items() if "hunter2" in v or k.startswith("TRADER_API"))
            mark(f"env {','.join(leaked) or 'clean'} in {where()}")
            return [Signal.hold() for _ in request.at]
    """,
    # Kills its own process at the 5th signal, once; buys afterwards.
    "crasher": """
        NAME = "crasher"
        CALLS = [0]

        @hookimpl
        def trader_generate_signals(request):
            CALLS[0] += 1
            if CALLS[0] == 5 and not any("crashed" in line for line in MARK.read_text().splitlines()):
                mark("crashed")
                os._exit(3)
            return [Signal("buy", size=0.5) for _ in request.at]
    """,
    # Hangs once, for longer than the signal timeout.
    "hanger": """
        NAME = "hanger"
        CALLS = [0]

        @hookimpl
        def trader_generate_signals(request):
            CALLS[0] += 1
            if CALLS[0] == 3 and not any("hung" in line for line in MARK.read_text().splitlines()):
                mark("hung")
                time.sleep(60)
            return [Signal.hold() for _ in request.at]
    """,
    # Raises BaseExceptions from the hook, and forges signals past their validators.
    "exiter": """
        NAME = "exiter"
        CALLS = [0]

        @hookimpl
        def trader_generate_signals(request):
            CALLS[0] += 1
            if CALLS[0] == 1:
                raise SystemExit(4)
            if CALLS[0] == 2:
                raise KeyboardInterrupt
            signal = Signal("buy", size=0.5)
            object.__setattr__(signal, "size", float("nan"))
            return [signal for _ in request.at]
    """,
    # Its own risk rule denies every buy, and tries to loosen the limits it is shown.
    "own_rule": """
        NAME = "own_rule"
        from trader.types import RiskVerdict

        @hookimpl
        def trader_generate_signals(request):
            return [Signal("buy", size=1.0) for _ in request.at]

        @hookimpl
        def trader_audit_order(order, portfolio, limits, context):
            object.__setattr__(limits, "max_position_fraction", 1.0)
            mark(f"audited in {where()}")
            return RiskVerdict.deny("own_rule", "NO_BUYS", "this strategy never buys")

        @hookimpl
        def trader_state_store(namespace, directory):
            mark(f"store hook called in {where()}")
            return None
    """,
    # Rewrites another strategy's account from its worker: the file system is not sandboxed.
    "state_forger": """
        NAME = "state_forger"
        import sqlite3

        @hookimpl
        def trader_generate_signals(request):
            victim = Path(os.environ["TRADER_HOME"]) / "strategies" / "buy_and_hold" / "state.sqlite"
            with sqlite3.connect(victim) as db:
                db.execute("UPDATE account SET cash = cash + 1000000")
            mark(f"forged in {where()}")
            return [Signal.hold() for _ in request.at]
    """,
    # Uses the core features, so the worker's features must equal the engine's inline ones.
    "featured": """
        NAME = "featured"
        EXTRA = {"warmup_bars": 30, "feature_windows": (5, 20)}

        @hookimpl
        def trader_generate_signals(request):
            feats = request.features
            out = []
            for i in request.at:
                value = feats["sma_ratio_5"].iloc[i] - feats["sma_ratio_20"].iloc[i]
                out.append(Signal("buy", size=0.5) if value > 0 else Signal("sell", size=1.0))
            return out
    """,
}


def _package(root: Path, name: str, body: str) -> Path:
    return write_plugin(root, f"trader-hostile-{name.replace('_', '-')}", f"trader_hostile_{name}", name,
                        textwrap.dedent(COMMON) + textwrap.dedent(body))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """Every hostile package, built and pip-installed in one go into a folder put on PYTHONPATH."""
    src = tmp_path_factory.mktemp("hostile-src")
    target = tmp_path_factory.mktemp("hostile-site")
    return pip_install(target, [_package(src, name, body) for name, body in STRATEGIES.items()])


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def env(site, tmp_path) -> dict[str, str]:
    marks = tmp_path / "marks.txt"
    marks.write_text("")
    return plugin_env(site, HOSTILE_MARKS=str(marks))


def marks(env: dict[str, str]) -> list[str]:
    return Path(env["HOSTILE_MARKS"]).read_text().splitlines()


def events(home: Path, name: str) -> list[tuple[str, str]]:
    with sqlite3.connect(home / "strategies" / name / "state.sqlite") as db:
        return list(db.execute("SELECT code, message FROM risk_events ORDER BY id"))


def max_position_share_after_buys(home: Path, name: str) -> float:
    """The largest position, right after a buy, as a share of that candle's equity (fill prices include slippage)."""
    with sqlite3.connect(home / "strategies" / name / "state.sqlite") as db:
        rows = list(db.execute(
            "SELECT f.side, f.quantity, f.price, e.equity FROM fills f JOIN orders o USING (client_order_id) "
            "JOIN equity e ON e.timestamp = o.candle_ts ORDER BY f.id"
        ))
    held, shares = 0.0, [0.0]
    for side, quantity, price, equity in rows:
        held += quantity if side == "buy" else -quantity
        if side == "buy":
            shares.append(held * price / equity)
    return max(shares)


def test_a_strategy_patching_the_risk_rules_is_never_imported_by_the_engine(home, env):
    result = trader(home, "run", "--plugin", "patcher", "--max-candles", "60", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "patcher imported in worker" in marks(env)
    assert "patcher imported in engine" not in marks(env)  # only in its worker (and the classifying probe)
    assert 0.4 < max_position_share_after_buys(home, "patcher") <= 0.5 * (1 + 1e-3)  # the core's 50% cap held
    inline = trader(home, "run", "--plugin", "patcher", "--isolation", "inline", "--max-candles", "1", env=env)
    assert "patcher imported in engine" in marks(env)  # the control: inline, the same code does reach the engine
    assert inline.returncode == 0, inline.stderr


def test_the_worker_holds_no_api_key(home, env):
    secret_env = {**env, "TRADER_API_KEY": "hunter2-key", "TRADER_API_SECRET": "hunter2-secret",
                  "MY_EXCHANGE_TOKEN": "hunter2-token"}
    result = trader(home, "run", "--plugin", "snoop", "--max-candles", "3", "--quiet", env=secret_env)
    assert result.returncode == 0, result.stderr
    assert {line for line in marks(env) if line.startswith("snoop")} == {"snoop env clean in worker"}
    # the worker pays its imports when it starts, not on the first candle (a live feed would deny that order)
    assert "INFERENCE_LATENCY" not in {code for code, _ in events(home, "snoop")}


def test_a_worker_that_dies_is_counted_and_restarted(home, env):
    result = trader(home, "run", "--plugin", "crasher", "--max-candles", "40", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    codes = [code for code, _ in events(home, "crasher")]
    assert codes.count("PLUGIN_ERROR") == 1
    message = next(m for c, m in events(home, "crasher") if c == "PLUGIN_ERROR")
    assert "crasher" in message and "exit status 3" in message
    assert "strategy worker restarted" in result.stderr
    (summary,) = status_json(home, "crasher")
    assert summary["risk"]["status"] == "active"
    with sqlite3.connect(home / "strategies" / "crasher" / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM equity").fetchone()[0] == 40  # every candle was processed


def test_a_hung_worker_is_stopped_after_the_signal_timeout(home, env):
    (home / "trader.toml").write_text("[engine]\nsignal_timeout_s = 1\n")
    started = time.monotonic()
    result = trader(home, "run", "--plugin", "hanger", "--max-candles", "10", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 40  # not the 60 s the plugin sleeps
    errors = [m for c, m in events(home, "hanger") if c == "PLUGIN_ERROR"]
    assert len(errors) == 1 and "within 1 s" in errors[0]


def test_base_exceptions_and_forged_signals_are_counted_and_halt_the_strategy(home, env):
    result = trader(home, "run", "--plugin", "exiter", "--max-candles", "10", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    codes = [code for code, _ in events(home, "exiter")]
    assert codes[:2] == ["PLUGIN_ERROR", "PLUGIN_ERROR"] and "INVALID_SIGNAL" in codes
    assert "MODEL_FAILURES" in codes  # three failures in a row halt it
    (summary,) = status_json(home, "exiter")
    assert summary["risk"]["status"] == "halted"
    with sqlite3.connect(home / "strategies" / "exiter" / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0


def test_a_strategy_rule_in_the_worker_can_deny_but_not_loosen(home, env):
    result = trader(home, "run", "--plugin", "own_rule", "--max-candles", "5", "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert "own_rule audited in worker" in marks(env) and "own_rule audited in engine" not in marks(env)
    assert not any("store hook" in line for line in marks(env))  # the engine opens the store without it
    codes = [code for code, _ in events(home, "own_rule")]
    assert "NO_BUYS" in codes and "APPROVED" not in codes
    with sqlite3.connect(home / "strategies" / "own_rule" / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0


def _fills(home: Path, name: str) -> list[tuple]:
    with sqlite3.connect(home / "strategies" / name / "state.sqlite") as db:
        return list(db.execute("SELECT client_order_id, side, quantity, price, fee FROM fills ORDER BY id"))


def test_process_and_inline_isolation_make_the_same_trades_across_a_restart(tmp_path, env):
    homes = {mode: tmp_path / mode for mode in ("process", "inline")}
    for mode, home in homes.items():
        home.mkdir()
        for candles in ("150", "100"):
            result = trader(home, "run", "--plugin", "featured", "--isolation", mode, "--max-candles", candles,
                            "--quiet", env=env)
            assert result.returncode == 0, result.stderr
    process, inline = (_fills(homes[m], "featured") for m in ("process", "inline"))
    assert len(process) >= 4 and process == inline


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie (not reaped yet because its parent is gone too) counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_engine_takes_its_worker_with_it(home, env):
    engine = start_trader(home, "run", "--plugin", "snoop", "--speed", "3600", env=env)  # one candle a second
    try:
        assert _wait_for(lambda: bool(_children(engine.pid)))
        (worker,) = _children(engine.pid)
        engine.kill()
        engine.wait(timeout=10)
        assert _wait_for(lambda: _gone(worker), timeout=10)
    finally:
        if engine.poll() is None:
            engine.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_killing_the_parent_of_several_strategies_stops_them_all(home, env):
    parent = start_trader(home, "run", "--plugin", "snoop", "--plugin", "buy_and_hold", "--speed", "3600", env=env)
    try:
        assert _wait_for(lambda: len(_children(parent.pid)) == 2)
        children = _children(parent.pid)
        assert _wait_for(lambda: all(_children(c) for c in children))  # each strategy has started its worker
        workers = [w for c in children for w in _children(c)]
        parent.kill()
        parent.wait(timeout=10)
        assert _wait_for(lambda: all(_gone(pid) for pid in children + workers), timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
    for name in ("snoop", "buy_and_hold"):  # each stopped cleanly: its last step committed, its lock released
        (summary,) = status_json(home, name)
        assert summary["running_pid"] is None


def test_a_strategy_forging_another_strategys_account_is_detected(home, env):
    first = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "20", "--quiet", env=env)
    assert first.returncode == 0, first.stderr
    attack = trader(home, "run", "--plugin", "state_forger", "--max-candles", "1", "--quiet", env=env)
    assert attack.returncode == 0, attack.stderr
    assert "state_forger forged in worker" in marks(env)
    victim = trader(home, "run", "--plugin", "buy_and_hold", "--max-candles", "20", "--quiet", env=env)
    assert victim.returncode == 0, victim.stderr
    (summary,) = status_json(home, "buy_and_hold")
    assert summary["risk"]["status"] == "halted" and "STATE_INCONSISTENT" in summary["risk"]["reason"]
    with sqlite3.connect(home / "strategies" / "buy_and_hold" / "state.sqlite") as db:
        assert db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 1  # the forged cash bought nothing


def test_ctrl_c_at_the_terminal_stops_the_run_cleanly_and_the_worker_with_it(home, env):
    engine = subprocess.Popen([str(Path(sys.executable).with_name("trader")), "run", "--plugin", "snoop",
                               "--speed", "3600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("TRADER_")},
                                   "TRADER_HOME": str(home), **env},
                              start_new_session=True)  # its own process group, like a terminal's foreground job
    try:
        assert _wait_for(lambda: bool(_children(engine.pid)))
        (worker,) = _children(engine.pid)
        time.sleep(1.5)
        os.killpg(engine.pid, signal.SIGINT)  # what Ctrl-C does: the whole group gets SIGINT
        out, err = engine.communicate(timeout=30)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert engine.returncode == 0, err
    assert "stopped by a stop signal" in out and "Traceback" not in err
    assert _wait_for(lambda: _gone(worker), timeout=10)


def test_isolation_is_reported_and_validated(home, env):
    bad = trader(home, "run", "--plugin", "snoop", "--isolation", "thread", env=env)
    assert bad.returncode == 2 and "--isolation" in bad.stderr
    data = json.loads(trader(home, "run", "--plugin", "snoop", "--max-candles", "2", "--json", env=env).stdout)
    assert data["strategy"] == "snoop"
