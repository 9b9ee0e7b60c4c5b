"""Benchmark: the rolling spread estimators of ``trader.costs`` per 100,000 candles.

Each estimator prices every candle from the ``DEFAULT_WINDOW`` (500) candles before it,
on ``--bars`` synthetic 1h candles with a 50 bps bid-ask bounce. Baselines measured in
the same run: a pandas rolling mean of the close over the same window (a floor for any
rolling statistic) and EDGE computed window by window (what a loop over windows costs),
timed on ``--naive`` windows and extrapolated. Best of ``--repeats``.

    .venv/bin/python bench/bench_costs.py [--bars 100000] [--repeats 3] [--naive 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive", type=int, default=2000)
    args = parser.parse_args()

    from trader.costs import DEFAULT_WINDOW, _edge_rows, _logs, rolling_spread
    from trader.data.synth import synthetic_candles

    candles = synthetic_candles(bars=args.bars, bounce_bps=50.0)
    per = 100_000 / args.bars
    rows = {}
    for name in ("edge", "corwin_schultz", "abdi_ranaldo"):
        rows[name] = best(lambda name=name: rolling_spread(candles, estimator=name), args.repeats) * per
    rows["pandas rolling mean (floor)"] = best(lambda: candles["close"].rolling(DEFAULT_WINDOW).mean(), args.repeats) * per
    logs = _logs(*(candles[k] for k in ("open", "high", "low", "close")))
    ends = np.linspace(DEFAULT_WINDOW, args.bars - 1, args.naive).astype(int)

    def naive() -> None:
        for end in ends:
            _edge_rows(*(x[None, end - DEFAULT_WINDOW : end] for x in logs))

    rows["EDGE window by window (naive)"] = best(naive, 1) / args.naive * 100_000
    edge = rows["edge"]
    print(f"seconds per 100,000 candles ({args.bars:,} candles, window {DEFAULT_WINDOW}, best of {args.repeats}):")
    for name, seconds in rows.items():
        print(f"  {name:<32} {seconds:8.4f} s   {seconds / edge:7.2f} x EDGE")


if __name__ == "__main__":
    main()
