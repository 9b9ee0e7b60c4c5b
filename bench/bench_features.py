"""Benchmark: FeatureEngineer.transform on 1,000,000 one-minute candles vs the `ta` library.

Baseline (same run, same data): 13 comparable `ta` indicators for each of the four windows
(52 columns: RSI, stochastic, Williams %R, ATR, Bollinger %b and width, MFI, VWAP, SMA, ROC,
Donchian %b, Chaikin money flow, CCI). Reported: wall and CPU time (median and best of the
repeats), peak traced memory, and the per-column speed ratio. Pinned to one core.

    .venv/bin/python bench/bench_features.py [--rows 1000000] [--repeats 5] [--ta-rows N] [--no-write]

Writes its section of bench/RESULTS.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import statistics
import tracemalloc

from benchlib import RESULTS, load_average, pin_one_core, summary, timed, write_section
from benchlib import pinned_header as header

# ---------------------------------------------------------------------------- the benchmark


def ta_columns(df, windows):
    """The 52 comparable `ta` indicator computations, as (name, thunk) pairs."""
    from ta.momentum import ROCIndicator, RSIIndicator, StochasticOscillator, WilliamsRIndicator
    from ta.trend import CCIIndicator, SMAIndicator
    from ta.volatility import AverageTrueRange, BollingerBands, DonchianChannel
    from ta.volume import ChaikinMoneyFlowIndicator, MFIIndicator, VolumeWeightedAveragePrice

    h, low, c, v = df["high"], df["low"], df["close"], df["volume"]
    jobs = []
    for w in windows:
        jobs += [
            (f"rsi_{w}", lambda w=w: RSIIndicator(c, w).rsi()),
            (f"stoch_{w}", lambda w=w: StochasticOscillator(h, low, c, w).stoch()),
            (f"williams_r_{w}", lambda w=w: WilliamsRIndicator(h, low, c, w).williams_r()),
            (f"atr_{w}", lambda w=w: AverageTrueRange(h, low, c, w).average_true_range()),
            (f"bb_pband_{w}", lambda w=w: BollingerBands(c, w).bollinger_pband()),
            (f"bb_wband_{w}", lambda w=w: BollingerBands(c, w).bollinger_wband()),
            (f"mfi_{w}", lambda w=w: MFIIndicator(h, low, c, v, w).money_flow_index()),
            (f"vwap_{w}", lambda w=w: VolumeWeightedAveragePrice(h, low, c, v, w).volume_weighted_average_price()),
            (f"sma_{w}", lambda w=w: SMAIndicator(c, w).sma_indicator()),
            (f"roc_{w}", lambda w=w: ROCIndicator(c, w).roc()),
            (f"donchian_pband_{w}", lambda w=w: DonchianChannel(h, low, c, w).donchian_channel_pband()),
            (f"cmf_{w}", lambda w=w: ChaikinMoneyFlowIndicator(h, low, c, v, w).chaikin_money_flow()),
            (f"cci_{w}", lambda w=w: CCIIndicator(h, low, c, w).cci()),
        ]
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ta-rows", type=int, default=None, help="rows for the ta baseline (default: --rows)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args()
    cpu = pin_one_core()
    start_load = load_average()

    from trader.data import synthetic_candles
    from trader.features import FeatureEngineer

    df = synthetic_candles("BENCH/USDT", "1m", bars=args.rows, seed=0)
    fe = FeatureEngineer(timeframe="1m")
    out_bytes = fe.n_features * args.rows * 8
    print(f"{args.rows:,} candles, {fe.n_features} features, cpu {cpu}, load {load_average()}")

    fe.transform(df.iloc[:5000])  # imports and first-touch costs out of the way
    walls, cpus = timed(lambda: fe.transform(df), args.repeats)
    print(f"trader.features: wall {summary(walls)}; cpu {summary(cpus)}")

    tracemalloc.start()
    frame = fe.transform(df)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del frame
    print(f"peak traced memory {peak / 2**20:.0f} MiB ({peak / out_bytes:.2f}x the {out_bytes / 2**20:.0f} MiB output)")

    ta_rows = args.ta_rows or args.rows
    ta_df = df.iloc[:ta_rows]
    jobs = ta_columns(ta_df, fe.windows)
    ta_wall = ta_cpu = 0.0
    slowest = []
    for name, job in jobs:
        (w,), (c,) = timed(job, 1)
        ta_wall += w
        ta_cpu += c
        slowest.append((w, name))
    scale = args.rows / ta_rows  # per-row cost is linear in rows for every indicator here
    ta_wall_scaled, ta_cpu_scaled = ta_wall * scale, ta_cpu * scale
    ours_col_wall = min(walls) / fe.n_features
    ours_col_cpu = min(cpus) / fe.n_features
    ta_col_wall = ta_wall_scaled / len(jobs)
    ta_col_cpu = ta_cpu_scaled / len(jobs)
    slowest.sort(reverse=True)
    print(f"ta: {len(jobs)} columns on {ta_rows:,} rows: wall {ta_wall:.1f} s, cpu {ta_cpu:.1f} s; "
          f"slowest {', '.join(f'{n} {w:.2f}s' for w, n in slowest[:4])}")
    print(f"per column: ours {ours_col_wall * 1e3:.1f} ms wall / {ours_col_cpu * 1e3:.1f} ms cpu; "
          f"ta {ta_col_wall * 1e3:.0f} ms wall / {ta_col_cpu * 1e3:.0f} ms cpu -> "
          f"{ta_col_wall / ours_col_wall:.0f}x (wall), {ta_col_cpu / ours_col_cpu:.0f}x (cpu)")

    if args.no_write:
        return
    cmd = "python bench/bench_features.py" + (f" --rows {args.rows}" if args.rows != 1_000_000 else "") + \
        (f" --ta-rows {ta_rows}" if ta_rows != args.rows else "")
    ta_note = "" if ta_rows == args.rows else f" (measured on {ta_rows:,} rows, scaled linearly to {args.rows:,})"
    med_col_wall = statistics.median(walls) / fe.n_features
    med_col_cpu = statistics.median(cpus) / fe.n_features
    body = header(cmd, start_load) + f"""
| what | {args.rows:,} one-minute candles |
|---|---|
| `FeatureEngineer().transform` ({fe.n_features} columns), wall | {summary(walls)} (aim: < 1.5 s) |
| same, CPU time | {summary(cpus)} |
| peak traced memory | {peak / 2**20:.0f} MiB = {peak / out_bytes:.2f}x the {out_bytes / 2**20:.0f} MiB float64 output |
| `ta`, {len(jobs)} comparable columns{ta_note}, wall / CPU | {ta_wall_scaled:.1f} s / {ta_cpu_scaled:.1f} s |
| per column: trader (best) vs `ta` | {ours_col_wall * 1e3:.1f} ms vs {ta_col_wall * 1e3:.0f} ms wall; {ours_col_cpu * 1e3:.1f} ms vs {ta_col_cpu * 1e3:.0f} ms CPU |
| **ratio per column** | **{ta_col_wall / ours_col_wall:.0f}x** wall, **{ta_col_cpu / ours_col_cpu:.0f}x** CPU with our best run; {ta_col_wall / med_col_wall:.0f}x / {ta_col_cpu / med_col_cpu:.0f}x with our median (aim: >= 30x) |

Slowest `ta` columns (one run each): {', '.join(f'{n} {w:.2f} s' for w, n in slowest[:4])}.
"""
    write_section("Features: batch transform (issue 4)", body)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
