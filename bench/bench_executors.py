"""Benchmark: walk-forward folds on the executors (``trader backtest --walk-forward --executor ...``).

1. One walk-forward of ``--folds`` folds of the shipped ``dl_lstm`` strategy (a real model trained per
   fold, one torch thread per task), run three ways in the same process one after the other: the local
   executor with one worker (this process), with two worker processes, and a local Ray with two CPUs.
   Each time counts everything the command pays: starting the pool (or Ray), sending the candles,
   training, signals and the simulation. The results are checked to be identical.
2. Ray's per-task overhead on a warm local Ray: tasks that do nothing, 200 at once (throughput) and
   one at a time (round trip).
3. A simulated larger cluster: a local Ray with more CPUs than the machine has, each task sleeping
   for the fold time measured in 1 (a sleeping task holds a Ray worker, not a core), so the run time
   shows how the scheduling scales with workers, against the ideal ``ceil(tasks / workers) * t``.

Run: ``.venv/bin/python bench/bench_executors.py [--folds 8] [--no-write]``; results replace the
"Executors" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Ray workers import this module by name for the sleeping and empty tasks (never functions of __main__)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p)
os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchlib import load_average, machine, publish  # noqa: E402

HEADING = "Executors: walk-forward folds on a local pool and on Ray (bench/bench_executors.py)"
SYMBOL, TIMEFRAME = "SYN/USDT", "1h"


def nothing(task: int, shared: object) -> int:
    return task


def sleep_for(task: float, shared: object) -> float:
    time.sleep(task)
    return task


_SPIN = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(20_000_000):\n    s += i\nprint(time.perf_counter() - t)"


def _two_process_ceiling() -> float:
    """The machine's own speed-up for two processes at this moment: a CPU-bound loop alone, then two copies
    at once (2 x alone / the slower of the pair). Below 2 when the cores are shared with other jobs."""
    import subprocess

    def spin(n: int) -> float:
        procs = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(n)]
        return max(float(proc.communicate()[0]) for proc in procs)

    alone = spin(1)
    return 2 * alone / spin(2)


def _walk_forward(executor_name: str, workers: int, args: argparse.Namespace, home: Path) -> tuple[float, dict]:
    from trader.backtest.runner import BacktestSettings
    from trader.backtest.walkforward import WalkForwardPlan, run_walk_forward
    from trader.config import load_config
    from trader.data import synthetic_candles
    from trader.executors import PluginSource, get_executor
    from trader.plugins import TraderPluginManager

    cache = home / "cache" / "plugins.json"
    manager = TraderPluginManager(strategies=("dl_lstm",), probe_cache=cache)
    bars = args.train_bars + 5 + args.folds * args.test_bars
    candles = synthetic_candles(SYMBOL, TIMEFRAME, bars=bars, seed=3, planted_signal=0.3)
    params = {"epochs": args.epochs, "hidden_size": 32, "head_hidden": 32, "sequence_length": 32}
    plan = WalkForwardPlan(train_bars=args.train_bars, test_bars=args.test_bars, purge=5, train_params=params)
    began = time.perf_counter()
    with get_executor(executor_name, workers) as executor:
        result = run_walk_forward(manager, load_config(None, home), "dl_lstm", candles, plan, symbol=SYMBOL,
                                  timeframe=TIMEFRAME, settings=BacktestSettings(n_resamples=200), executor=executor,
                                  plugins=PluginSource(("dl_lstm",), cache))
    seconds = time.perf_counter() - began
    data = result.to_dict()
    timings = data.pop("timings")
    assert len(data["folds"]) == args.folds, len(data["folds"])
    return seconds, {"data": data, "timings": timings}


def _ray_overhead(me) -> dict[str, float]:
    from trader.executors import get_executor

    began = time.perf_counter()
    with get_executor("ray", 2) as executor:
        executor.map(me.nothing, [0, 1])  # starts Ray and two workers
        started = time.perf_counter() - began
        walls = []
        for _ in range(5):
            t0 = time.perf_counter()
            executor.map(me.nothing, list(range(200)))
            walls.append(time.perf_counter() - t0)
        single = []
        for _ in range(30):
            t0 = time.perf_counter()
            executor.map(me.nothing, [0])
            single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
    stopped = time.perf_counter() - t0
    return {"start_s": started, "stop_s": stopped, "per_task_ms": min(walls) / 200 * 1000,
            "round_trip_ms": statistics.median(single) * 1000}


def _simulated_cluster(me, fold_s: float, tasks: int, sizes: list[int]) -> list[tuple[int, float, float]]:
    from trader.executors import get_executor

    rows = []
    for workers in sizes:
        with get_executor("ray", workers) as executor:
            executor.map(me.sleep_for, [0.5] * workers)  # Ray and every worker process up: not the point here
            t0 = time.perf_counter()
            executor.map(me.sleep_for, [fold_s] * tasks)
            rows.append((workers, time.perf_counter() - t0, math.ceil(tasks / workers) * fold_s))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=8)
    parser.add_argument("--train-bars", type=int, default=3000)
    parser.add_argument("--test-bars", type=int, default=250)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cluster-tasks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    import bench_executors as me  # the tasks by their importable name

    start_load = load_average()
    configs = (("local", 1), ("local", 2), ("ray", 2))
    runs: dict[tuple[str, int], list[tuple[float, dict]]] = {c: [] for c in configs}
    ceilings = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # alternating, so every executor sees the same load
            ceilings.append(_two_process_ceiling())
            for name, workers in configs:
                runs[(name, workers)].append(_walk_forward(name, workers, args, Path(tmp)))
                print(f"{name} x{workers}: {runs[(name, workers)][-1][0]:.1f} s", file=sys.stderr)
    first = runs[configs[0]][0][1]["data"]
    same = all(run[1]["data"] == first for done in runs.values() for run in done)
    best = {c: min(done, key=lambda run: run[0]) for c, done in runs.items()}
    one, two, ray = (best[c][0] for c in configs)
    fold = {c: best[c][1]["timings"]["train_s"] / args.folds for c in configs}  # a fold's training, in its worker
    fold_s = fold[configs[0]]
    over = {c: best[c][0] - math.ceil(args.folds / c[1]) * fold[c] for c in configs}
    overhead = _ray_overhead(me)
    cluster = _simulated_cluster(me, fold_s, args.cluster_tasks, [2, 4, 8, 16])

    command = "python bench/bench_executors.py" + (f" --folds {args.folds}" if args.folds != 8 else "")
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}. Load average at start {start_load}, at the end "
        f"{load_average()} (the machine is shared with other jobs: wall times are noisy; the ratios are measured in "
        "the same run).", "", f"Command: `{command}`", "",
        f"Walk-forward of {args.folds} folds of `dl_lstm` ({args.train_bars} training bars, {args.test_bars} test bars, "
        f"{args.epochs} epochs, hidden size 32, one torch thread per task); a fold trains in {fold_s:.1f} s on average. "
        f"Wall time of `run_walk_forward` including the executor's start and stop, best of {args.repeats} "
        "alternating runs; beside it, a fold's training time as measured inside its worker (when it grows with the "
        "workers, the folds did not get a core each: the machine's other jobs took the rest):", "",
        "| executor | wall (s) | speed-up vs 1 worker | a fold's training (s) | overhead (s) |",
        "|---|---:|---:|---:|---:|",
        f"| local, 1 worker (this process) | {one:.1f} | 1.00x | {fold[configs[0]]:.1f} | {over[configs[0]]:.1f} |",
        f"| local, 2 worker processes | {two:.1f} | **{one / two:.2f}x** (aim >= 1.7x) | {fold[configs[1]]:.1f} | "
        f"{over[configs[1]]:.1f} |",
        f"| Ray, local with 2 CPUs | {ray:.1f} | {one / ray:.2f}x | {fold[configs[2]]:.1f} | {over[configs[2]]:.1f} |", "",
        f"The machine's own two-process speed-up, measured before each round (a CPU-bound loop alone, then two "
        f"copies at once): {', '.join(f'{c:.2f}x' for c in ceilings)}; 2 workers cannot beat it.", "",
        "Overhead: the wall time less `ceil(folds / workers)` times the fold's training time, i.e. starting the "
        "workers (importing trader, pandas, torch and the plugin), sending the candles, the signals, the simulation "
        f"and the verdict. With a core for each worker, 2 workers would take about "
        f"{math.ceil(args.folds / 2) * fold_s + over[configs[1]]:.1f} s ({one / (math.ceil(args.folds / 2) * fold_s + over[configs[1]]):.2f}x).", "",
        f"Ray against the local pool: {ray - two:+.1f} s, **{(ray - two) / two * 100:+.1f}%** of the pool's run (aim: "
        f"under 10%). Identical results (metrics, folds, equity, verdict) in all {len(configs) * args.repeats} runs: {'yes' if same else 'NO'}.", "",
        f"Ray on a warm local Ray with 2 CPUs: start {overhead['start_s']:.1f} s (Ray and two workers), stop "
        f"{overhead['stop_s']:.1f} s; **{overhead['per_task_ms']:.2f} ms per task** at 200 empty tasks per map, "
        f"{overhead['round_trip_ms']:.1f} ms for a one-task map (round trip).", "",
        f"Simulated larger cluster: a local Ray with more CPUs than the machine's {os.cpu_count()}, "
        f"{args.cluster_tasks} tasks each sleeping {fold_s:.1f} s (the fold time above):", "",
        "| Ray workers | wall (s) | ideal ceil(tasks/workers) x t (s) | efficiency |", "|---:|---:|---:|---:|",
        *(f"| {w} | {wall:.1f} | {ideal:.1f} | {ideal / wall * 100:.0f}% |" for w, wall, ideal in cluster), "",
        "The run time falls with the workers as long as each has folds to train: past the number of tasks, or when "
        "the per-task overhead nears a fold's time, more workers stop helping. On a real cluster each worker also "
        "needs the cores of its torch threads; the sleep stands in for a fold that has them.",
    ]
    publish(HEADING, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
