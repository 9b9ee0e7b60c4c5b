"""Benchmark: IncrementalFeatures.update, microseconds per closed candle (p50 / p99).

Baseline (same run): what a live loop does without an incremental path, i.e. recompute
``FeatureEngineer.transform`` over the trailing 500 candles for every new one and keep its last
row. Both paths are checked to give the same row.

    .venv/bin/python bench/bench_incremental.py [--steps 20000] [--no-write]
"""

from __future__ import annotations

import argparse
import time

from benchlib import load_average, pin_one_core, write_section
from benchlib import pinned_header as header


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--baseline-steps", type=int, default=500)
    parser.add_argument("--history", type=int, default=5_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    pin_one_core()
    start_load = load_average()

    import numpy as np

    from trader.data import synthetic_candles
    from trader.features import FeatureEngineer

    df = synthetic_candles("BENCH/USDT", "1m", bars=args.history + args.steps, seed=0)
    fe = FeatureEngineer(timeframe="1m")
    records = [tuple(r) for r in df[["timestamp", "open", "high", "low", "close", "volume"]]
               .astype(object).itertuples(index=False)]
    inc = fe.incremental()
    inc.warm(df.iloc[: args.history])
    times = np.empty(args.steps)
    cpu_times = np.empty(args.steps)
    last = None
    for i in range(args.steps):
        c = time.thread_time_ns()
        t = time.perf_counter_ns()
        last = inc.update(records[args.history + i])
        times[i] = time.perf_counter_ns() - t
        cpu_times[i] = time.thread_time_ns() - c
    times /= 1e3
    cpu_times /= 1e3
    batch_last = fe.transform(df).to_numpy()[-1]
    max_diff = float(np.max(np.abs(last - batch_last)))

    trailing = 500
    base = np.empty(args.baseline_steps)
    for i in range(args.baseline_steps):
        end = args.history + i + 1
        t = time.perf_counter_ns()
        fe.transform(df.iloc[end - trailing:end]).to_numpy()[-1]
        base[i] = time.perf_counter_ns() - t
    base /= 1e3

    p50, p99, mean = np.percentile(times, 50), np.percentile(times, 99), times.mean()
    c50, c99 = np.percentile(cpu_times, 50), np.percentile(cpu_times, 99)
    b50, b99 = np.percentile(base, 50), np.percentile(base, 99)
    print(f"incremental: p50 {p50:.0f} us, p99 {p99:.0f} us, mean {mean:.0f} us over {args.steps:,} candles; "
          f"last row vs batch max |diff| {max_diff:.1e}; CPU time p50 {c50:.0f} us, p99 {c99:.0f} us")
    print(f"baseline (transform over the trailing {trailing} candles): p50 {b50:.0f} us, p99 {b99:.0f} us "
          f"-> {b50 / p50:.0f}x at p50")
    if args.no_write:
        return
    body = header("python bench/bench_incremental.py", start_load) + f"""
| what | microseconds per candle (86 features, windows 5/10/20/50) |
|---|---|
| `IncrementalFeatures.update`, {args.steps:,} candles after `warm()` on {args.history:,}, wall | p50 **{p50:.0f}**, p99 **{p99:.0f}**, mean {mean:.0f} |
| same, CPU time of the thread (insensitive to other jobs preempting it) | p50 {c50:.0f}, p99 {c99:.0f} |
| baseline: `transform` over the trailing {trailing} candles per new candle ({args.baseline_steps} candles) | p50 {b50:.0f}, p99 {b99:.0f} |
| ratio at p50 | **{b50 / p50:.0f}x** faster |

Last incremental row vs the batch row: max abs difference {max_diff:.1e}.
"""
    write_section("Features: incremental update (issue 4)", body)


if __name__ == "__main__":
    main()
