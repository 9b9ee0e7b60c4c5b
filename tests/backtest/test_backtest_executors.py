"""Executors: folds and compared markets run side by side, on a local process pool or on Ray, with the
same results as one after the other in one process; the shared inputs reach each worker once."""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path

import executor_tasks as tasks
import pytest
from cli_runner import run_trader

from trader.errors import DataError
from trader.executors import ExecutorError, get_executor

HERE = Path(__file__).parent
HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed (pip install 'trader-core[distributed]')")

TINY_LSTM = ("--param", "epochs=1", "--param", "max_batches_per_epoch=3", "--param", "hidden_size=8",
             "--param", "head_hidden=8", "--param", "sequence_length=16")
WALK_FORWARD = ("backtest", "--plugin", "dl_lstm", "--symbol", "SYN/USDT", "--walk-forward", "--train-bars", "500",
                "--test-bars", "250", "--purge-bars", "5", "--synthetic-bars", "1300", "--bootstrap", "200",
                *TINY_LSTM, "--json", "--no-progress")


def _sleeps() -> list[dict]:
    return [{"i": i, "sleep": 0.4 if i == 0 else 0.02} for i in range(6)]  # task 0 takes longest


def _last_first(marks: Path) -> list[dict]:
    """Six tasks; task 0 finishes last, once the other five have (however slowly the workers start)."""
    marks.mkdir()
    return [{"i": 0, "marks": str(marks), "wait_for": 5}] + [{"i": i, "marks": str(marks)} for i in range(1, 6)]


def _check_map(executor, marks: Path) -> None:
    shared = tasks.Counted(b"x" * 10_000)
    finished: list[int] = []
    results = executor.map(tasks.echo, _last_first(marks), shared, on_result=lambda i, r: finished.append(i))
    assert [r["i"] for r in results] == list(range(6))  # task order, whatever order they finish in
    assert sorted(finished) == list(range(6)) and finished[-1] == 0
    assert 1 < len({r["pid"] for r in results}) <= 2 and os.getpid() not in {r["pid"] for r in results}
    again = executor.map(tasks.echo, [{"i": i} for i in range(4)], shared)  # the next map over the same inputs
    assert {r["unpickled"] for r in results + again} == {1}  # each worker process received them once
    assert {r["shared_bytes"] for r in results} == {10_000}
    with pytest.raises(DataError, match="^market 1 has no candles$"):  # a task's own error, as it is
        executor.map(tasks.fail, [0, 1, 2])


def test_the_local_pool_keeps_task_order_and_sends_the_shared_inputs_once_per_worker(tmp_path):
    with get_executor("local", 2) as executor:
        _check_map(executor, tmp_path / "marks")


def test_one_local_worker_runs_in_this_process_without_copying_the_shared_inputs():
    shared = tasks.Counted(b"x")
    with get_executor("local", 1) as executor:
        results = executor.map(tasks.echo, _sleeps()[:3], shared)
    assert {r["pid"] for r in results} == {os.getpid()} and {r["shared_id"] for r in results} == {id(shared)}


def test_every_task_runs_with_the_thread_count_it_was_given():
    with get_executor("local", 2, threads=2) as executor:
        got = executor.map(tasks.threads, [0, 1])
    assert got == [{"env": "2", "omp": "2", "default_threads": 2, "torch": 2}] * 2  # torch and the trainers' default


def test_a_worker_that_dies_is_one_line():
    with get_executor("local", 2) as executor, pytest.raises(ExecutorError, match="a worker process died"):
        executor.map(tasks.die, [0, 1, 2])


@needs_ray
@pytest.mark.slow
def test_a_local_ray_keeps_task_order_and_sends_the_shared_inputs_once_per_worker(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    with get_executor("ray", 2) as executor:  # a real local Ray with 2 CPUs, started and shut down here
        _check_map(executor, tmp_path / "marks")
        got = executor.map(tasks.threads, [0, 1])
        assert got == [{"env": "1", "omp": "1", "default_threads": 1, "torch": 1}] * 2
        with pytest.raises(ExecutorError, match="^ray executor: task 2 of 3 was lost"):
            executor.map(tasks.die, [0, 1, 2])


# --------------------------------------------------------------------------- the commands


def _data(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    data.pop("timings", None)  # the only part that depends on where it ran
    return data


@pytest.mark.slow
@pytest.mark.parametrize("executors", [
    pytest.param([("local", "1"), ("local", "2")], id="local"),
    pytest.param([("local", "1"), ("ray", "2")], id="ray", marks=needs_ray),
])
def test_walk_forward_gives_identical_results_whatever_the_executor_and_worker_count(trader_home, executors):
    runs = [_data(run_trader(*WALK_FORWARD, "--executor", name, "--workers", workers, home=trader_home, timeout=300))
            for name, workers in executors]
    assert len(runs[0]["folds"]) == 4 and runs[0]["classification"]["n_samples"] > 700  # a trained LSTM per fold
    assert runs[0]["metrics"] == runs[1]["metrics"] and runs[0]["folds"] == runs[1]["folds"]
    assert runs[0] == runs[1]


@pytest.mark.slow
@pytest.mark.parametrize("executor", [pytest.param("local", id="local"), pytest.param("ray", id="ray", marks=needs_ray)])
def test_compare_over_two_markets_gives_the_same_rows_whatever_the_executor(trader_home, executor):
    args = ("compare", "--plugin", "buy_and_hold", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
            "--synthetic-bars", "600", "--bootstrap", "200", "--json")
    serial = _data(run_trader(*args, "--workers", "1", home=trader_home))
    spread = _data(run_trader(*args, "--executor", executor, "--workers", "2", home=trader_home, timeout=300))
    assert [m["symbol"] for m in serial["markets"]] == ["AAA/USDT", "BBB/USDT"]
    assert all(m["strategies"][0]["status"] == "ok" for m in serial["markets"])
    assert spread == serial
    one = _data(run_trader(*args[:5], *args[7:], "--workers", "1", home=trader_home))  # one market: as before
    assert one == serial["markets"][0]


@pytest.fixture
def no_ray(tmp_path: Path) -> dict[str, str]:
    """An environment where ``import ray`` fails, as on a machine without the distributed extra."""
    fake = tmp_path / "noray" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    return {"PYTHONPATH": str(fake.parent)}


@pytest.mark.parametrize("command", [
    ("backtest", "--plugin", "buy_and_hold", "--walk-forward", "--train-bars", "100", "--test-bars", "50"),
    ("compare", "--plugin", "buy_and_hold"),
], ids=["backtest", "compare"])
def test_without_ray_the_ray_executor_says_how_to_install_it(trader_home, no_ray, command):
    proc = run_trader(*command, "--executor", "ray", home=trader_home, env=no_ray)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("Error: --executor ray needs Ray, which is not installed: "
                                   "pip install 'trader-core[distributed]'")


@pytest.mark.parametrize(("args", "message"), [
    (("--workers", "2"), "--executor, --workers and --ray-address need --walk-forward"),
    (("--walk-forward", "--train-bars", "100", "--test-bars", "50", "--ray-address", "10.0.0.1:6379"),
     "--ray-address needs --executor ray"),
])
def test_executor_options_are_checked_before_any_work(trader_home, args, message):
    proc = run_trader("backtest", "--plugin", "buy_and_hold", *args, home=trader_home)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed when the block ends: a connection there is refused


@needs_ray
@pytest.mark.parametrize("how", ["option", "environment", "client"])
def test_a_ray_address_where_nothing_answers_is_one_line_at_once(trader_home, how):
    address = f"127.0.0.1:{_closed_port()}"
    args, env = ("--ray-address", address), None
    if how == "environment":
        args, env = (), {"RAY_ADDRESS": address}
    elif how == "client":
        address = f"ray://{address}"
        args = ("--ray-address", address)
    started = time.monotonic()
    proc = run_trader("backtest", "--plugin", "buy_and_hold", "--walk-forward", "--train-bars", "100", "--test-bars",
                      "50", "--synthetic-bars", "400", "--executor", "ray", *args, "--no-progress", home=trader_home,
                      env=env, timeout=60)
    assert time.monotonic() - started < 30  # Ray alone retries such an address for minutes
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"Error: walk-forward of plugin 'buy_and_hold': ray executor: nothing answers at {address} (connection "
        "refused): start the cluster (`ray start --head`) or fix --ray-address / RAY_ADDRESS"), proc.stderr


@pytest.fixture
def hostile_env(tmp_path: Path) -> dict[str, str]:
    """Two installed strategies (entry points of a real distribution) whose training raises, or exits."""
    dist = tmp_path / "site" / "trader_executor_fakes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-executor-fakes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[trader.plugins]\nfake_train_raises = executor_fakes:TRAIN_RAISES\n"
                                           "fake_train_exits = executor_fakes:TRAIN_EXITS\n")
    return {"PYTHONPATH": f"{dist.parent}:{HERE}"}


@pytest.mark.parametrize(("plugin", "message"), [
    ("fake_train_raises", "Error: plugin 'fake_train_raises': trader_train raised RuntimeError: boom in fold training"),
    ("fake_train_exits", "Error: walk-forward of plugin 'fake_train_exits': local executor: a worker process died with "
                         "3 of 3 tasks unfinished (killed, out of memory, or a crash in native code)"),
])
def test_a_strategy_that_breaks_in_a_worker_is_one_line_naming_it(trader_home, hostile_env, plugin, message):
    proc = run_trader("backtest", "--plugin", plugin, "--walk-forward", "--train-bars", "200", "--test-bars", "100",
                      "--synthetic-bars", "500", "--workers", "2", "--no-progress", home=trader_home, env=hostile_env)
    assert proc.returncode == 1 and proc.stderr.strip() == message, proc.stderr
