"""Benchmark: the cost of the process boundary on the live decision (``trader run --isolation``).

Per candle, the signal source of ``trader run``: the incremental features, the request
frames and the strategy's signal (one window through the model), either in the engine's
process (:class:`trader.engine.signals.StrategySignals`, ``--isolation inline``) or in the
strategy's worker process (:class:`trader.engine.isolation.WorkerSignals`, ``--isolation
process``: one JSON request and reply over a socket pair per candle, the signal re-validated
on arrival). Same model, same candles, alternating the two sources candle by candle so both
see the same machine load. The worker runs one torch thread, like the inline source.

Run: ``.venv/bin/python bench/bench_isolation.py [--candles 2000] [--no-write]``; results replace the
"Process isolation" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from benchlib import load_average, machine, peak_rss_mib, publish  # noqa: E402

HEADING = "Process isolation: live decision with and without the worker (bench/bench_isolation.py)"
SYMBOL, TIMEFRAME = "SYN/USDT", "1h"


def _trader(home: Path, *args: str) -> None:
    exe = Path(sys.executable).with_name("trader")
    subprocess.run([str(exe), "--home", str(home), *args], check=True, capture_output=True, text=True)


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def measure(name: str, candles: int, home: Path) -> dict[str, list[float]]:
    import torch

    from trader.data import resolve_candles
    from trader.engine.isolation import StrategyWorker, WorkerSignals
    from trader.engine.signals import StrategySignals
    from trader.models import ModelPersistence
    from trader.plugins import TraderPluginManager
    from trader.types import Candle

    torch.set_num_threads(1)
    manager = TraderPluginManager()
    strategy = manager.strategy(name)
    loaded = ModelPersistence(home / "models").load(strategy, SYMBOL, TIMEFRAME) if strategy.info.requires_model else None
    df, _ = resolve_candles(home, SYMBOL, TIMEFRAME)
    split = len(df) - candles
    history, rest = df.iloc[:split].reset_index(drop=True), df.iloc[split:]

    inline = StrategySignals(strategy, SYMBOL, TIMEFRAME, loaded.model if loaded else None, {})
    worker = StrategyWorker(manager.entry_point(name),
                            {"symbol": SYMBOL, "timeframe": TIMEFRAME, "models_dir": str(home / "models"),
                             "model_version": None, "params": {}})
    hello = worker.start()
    from trader.engine.wire import info_from_wire

    process = WorkerSignals(worker, info_from_wire(hello["info"]))
    try:
        inline.warm(history)
        process.warm(history)
        times: dict[str, list[float]] = {"inline": [], "process": []}
        for offset, row in enumerate(rest.itertuples(index=False)):
            index = split + offset
            candle = Candle(int(row.timestamp), row.open, row.high, row.low, row.close, row.volume)
            pair = (("inline", inline), ("process", process))
            for label, source in pair if offset % 2 == 0 else pair[::-1]:
                started = time.perf_counter()
                signal, _ = source.next(index, candle, {})
                times[label].append((time.perf_counter() - started) * 1000)
                if isinstance(signal, BaseException):
                    raise SystemExit(f"{label}: {signal}")
                times.setdefault(f"{label}_signals", []).append((signal.action, signal.size, signal.probability))
        if times["inline_signals"] != times["process_signals"]:
            raise SystemExit("the worker's signals differ from the inline ones")
        return times
    finally:
        worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=2000, help="Timed candles per strategy.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/RESULTS.md alone.")
    args = parser.parse_args()
    start_load = load_average()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        _trader(home, "data", "synth", "--symbol", SYMBOL, "--timeframe", TIMEFRAME, "--bars", str(3000 + args.candles),
                "--planted-signal", "0.3", "--seed", "1")
        for name in ("buy_and_hold", "dl_lstm", "ensemble"):
            if name != "buy_and_hold":
                _trader(home, "train", "--plugin", name, "--symbol", SYMBOL, "--timeframe", TIMEFRAME, "--epochs", "1",
                        "--no-progress")
            times = measure(name, args.candles, home)
            inline, process = times["inline"], times["process"]
            rows.append(
                f"| {name} | {_pct(inline, 50):.3f} / {_pct(inline, 99):.3f} | {_pct(process, 50):.3f} / "
                f"{_pct(process, 99):.3f} | {_pct(process, 50) - _pct(inline, 50):+.3f} | "
                f"{_pct(process, 50) / _pct(inline, 50):.2f} |"
            )
    body = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}. Load average at start {start_load}, at the end "
        f"{load_average()}; peak RSS of the engine process {peak_rss_mib():.0f} MiB. {args.candles:,} candles per "
        "strategy after a 3,000-candle warm-up, the two sources alternating candle by candle; the signals of both "
        "are checked equal.",
        "",
        f"Command: `.venv/bin/python bench/bench_isolation.py --candles {args.candles}`",
        "",
        "| strategy | inline p50 / p99 (ms) | process p50 / p99 (ms) | process - inline, p50 (ms) | ratio p50 |",
        "|---|---:|---:|---:|---:|",
        *rows,
        "",
        "buy_and_hold computes no features and no model: its row is the boundary's own cost (one JSON request and "
        "reply over a socket pair, the signal rebuilt through its validators). Aim: the process boundary adds at most "
        "0.3 ms to the p50 decision.",
    ])
    publish(HEADING, body, write=not args.no_write)


if __name__ == "__main__":
    main()
