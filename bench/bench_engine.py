"""Benchmark: the trading engine's decision step, its SQLite commits and the ``trader run`` loop.

Same candles and signals for every row (synthetic random walk; SMA(10)/SMA(30) "state"
signals: BUY while the fast average is above the slow one, SELL otherwise), one core:

- **bare loop** (the baseline): a hand-written loop doing the same paper accounting
  (target 50 % of equity on BUY, close on SELL, fee and slippage) with plain floats:
  no risk audit, no records. The floor any engine in Python pays.
- **decision step, in memory**: ``TradingSession.run`` on a ``MemoryState`` (what a
  backtest uses): marks, breakers, signal -> order, the risk audit through pluggy on every
  order, the paper broker, the book. With the fast path (the default) quiet candles are
  marked in bulk and only candles that could order or trip a breaker take the full step;
  ``fast=False`` is the per-candle reference (one full step and one record per candle).
  Both give identical results (checked here and in ``tests/engine/test_engine_fastpath.py``).
- **decision step, HOLD only**: the same with HOLD signals (the per-candle overhead).
- **decision step, SQLite**: the same steps on a ``TradingState`` file, one transaction per
  candle (what ``trader run`` commits).
- **trader run**: ``trader run --plugin buy_and_hold`` on the synthetic market, a real
  subprocess, end to end (start-up, one DataFrame per candle for the strategy, logging).

    .venv/bin/python bench/bench_engine.py [--bars 300000] [--sqlite-bars 20000] [--no-write]

Writes its section of bench/RESULTS.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import header, peak_rss_mib, pin_one_core, publish  # noqa: E402

HEADING = "Trading engine: decision step and trader run (issue 5)"
HOUR = 3_600_000
T0 = 1_704_067_200_000


def market(n: int):
    import numpy as np

    rng = np.random.default_rng(7)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.006, n)))
    fast = np.convolve(closes, np.ones(10) / 10, "full")[:n]
    slow = np.convolve(closes, np.ones(30) / 30, "full")[:n]
    timestamps = (T0 + np.arange(n, dtype=np.int64) * HOUR).tolist()
    return timestamps, closes.tolist(), (fast > slow).tolist()


def bare_loop(closes, bullish, fee=0.001, slip=0.0002, cash=10_000.0) -> tuple[float, int]:
    qty = 0.0
    trades = 0
    for close, up in zip(closes, bullish, strict=True):
        equity = cash + qty * close
        if up:
            short = 0.5 * equity - qty * close
            if short > 0.1 * 0.5 * equity:
                price = close * (1 + slip)
                buy = min(short, cash / (1 + fee) / (1 + slip)) / close
                cost = buy * price * (1 + fee)
                if buy > 0 and cost <= cash:
                    cash -= cost
                    qty += buy
                    trades += 1
        elif qty > 0:
            cash += qty * close * (1 - slip) * (1 - fee)
            qty = 0.0
            trades += 1
    return cash + qty * closes[-1], trades


def session(store):
    from trader.engine import PaperBroker, RiskAuditAgent, TradingSession
    from trader.plugins import TraderPluginManager
    from trader.types import RiskLimits

    manager = TraderPluginManager(load_entrypoints=False)
    limits = RiskLimits(max_drawdown=1.0, daily_loss_limit=1.0, max_consecutive_losses=10**9,
                        max_order_notional=1e15, max_position_notional=1e15)
    return TradingSession("buy_and_hold", "BTC/USDT", "1h", limits=limits, broker=PaperBroker(), store=store,
                          audit=RiskAuditAgent.for_strategy(manager, "buy_and_hold", limits))


def best_of(repeats: int, fn):
    times = []
    result = None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=300_000)
    parser.add_argument("--sqlite-bars", type=int, default=20_000)
    parser.add_argument("--run-bars", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    cpu = pin_one_core()

    import logging

    logging.getLogger("trader").setLevel(logging.WARNING)
    from trader.engine import MemoryState, TradingState
    from trader.types import Signal, SignalAction

    n = args.bars
    timestamps, closes, bullish = market(n)
    buy, sell, hold = Signal(SignalAction.BUY), Signal(SignalAction.SELL), Signal.hold()
    signals = [buy if up else sell for up in bullish]
    holds = [hold] * n

    bare_s, (bare_equity, bare_trades) = best_of(args.repeats, lambda: bare_loop(closes, bullish))

    def in_memory(sigs, fast=True):
        s = session(MemoryState("buy_and_hold"))
        s.run(timestamps, closes, sigs, fast=fast)
        return s

    step_s, stepped = best_of(args.repeats, lambda: in_memory(signals))
    ref_s, reference = best_of(args.repeats, lambda: in_memory(signals, fast=False))
    hold_s, _ = best_of(args.repeats, lambda: in_memory(holds))
    hold_ref_s, _ = best_of(args.repeats, lambda: in_memory(holds, fast=False))
    rss = peak_rss_mib()
    same = (stepped.store.equities == reference.store.equities and stepped.store.fills() == reference.store.fills()
            and stepped.store.events == reference.store.events)
    if not same:
        raise SystemExit("the fast path and the per-candle step disagree: a bug, please report it")

    m = args.sqlite_bars

    def on_disk():
        with tempfile.TemporaryDirectory() as tmp:
            s = session(TradingState.open("buy_and_hold", Path(tmp)))
            s.run(timestamps[:m], closes[:m], signals[:m])
            s.store.close()
            return None

    sqlite_s, _ = best_of(1, on_disk)

    with tempfile.TemporaryDirectory() as home:
        exe = Path(sys.executable).with_name("trader")
        started = time.perf_counter()
        done = subprocess.run([str(exe), "--home", home, "run", "--plugin", "buy_and_hold", "--bars", str(args.run_bars), "--quiet"],
                              capture_output=True, text=True)
        run_s = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(done.stderr)
        started = time.perf_counter()
        subprocess.run([str(exe), "--home", home, "status"], capture_output=True, text=True, check=True)
        status_s = time.perf_counter() - started
        started = time.perf_counter()
        subprocess.run([str(exe), "--home", home, "run", "--plugin", "buy_and_hold", "--bars", str(args.run_bars), "--quiet"],
                       capture_output=True, text=True, check=True)
        startup_s = time.perf_counter() - started  # every candle already processed: start-up and warm-up only

    fills = len(stepped.store.fill_records)
    command = "python bench/bench_engine.py" + (f" --bars {n}" if n != 300_000 else "")
    body = header(command, cpu) + f"""
{n:,} synthetic 1h candles; SMA(10)/SMA(30) state signals (BUY while fast > slow, else SELL). The engine made
{fills:,} fills (every order through the risk audit); the bare loop {bare_trades:,} trades. The fast path and the
per-candle reference gave the same equity curve, fills and risk events (checked in this run).

| what | time | candles/s | vs bare loop |
|---|---|---|---|
| bare loop (baseline: same accounting, plain floats, no audit, no records) | {bare_s:.3f} s | {n / bare_s:,.0f} | 1.0x |
| decision step, in memory, fast path (`TradingSession.run` + `MemoryState`, backtests) | {step_s:.3f} s | {n / step_s:,.0f} | {bare_s / step_s:.2f}x |
| decision step, in memory, per-candle reference (`run(..., fast=False)`) | {ref_s:.3f} s | {n / ref_s:,.0f} | {bare_s / ref_s:.2f}x |
| decision step, HOLD signals only, fast path | {hold_s:.3f} s | {n / hold_s:,.0f} | {bare_s / hold_s:.2f}x |
| decision step, HOLD signals only, per-candle reference (per-candle overhead) | {hold_ref_s:.3f} s | {n / hold_ref_s:,.0f} | {bare_s / hold_ref_s:.2f}x |
| decision step, SQLite, one transaction per candle ({m:,} candles, `trader run`'s store) | {sqlite_s:.3f} s | {m / sqlite_s:,.0f} | {(bare_s / n) / (sqlite_s / m):.3f}x |
| `trader run --plugin buy_and_hold --bars {args.run_bars}` (subprocess, end to end) | {run_s:.2f} s | {args.run_bars / run_s:,.0f} | |
| of which start-up (a second run with nothing left to process) | {startup_s:.2f} s | | |
| `trader status` (subprocess) | {status_s:.2f} s | | |

Peak RSS after the in-memory runs: {rss:,.0f} MiB (candles, signals, the in-memory store's lists).
With the fast path a backtest's time goes to the candles that order: each takes the full step (signal -> order,
the risk audit through pluggy, the paper broker, validated value objects: about {(step_s - hold_s) / max(fills, 1) * 1e6:,.0f} us
per fill here), and the quiet candles between them cost about {hold_s / n * 1e6:.2f} us each.
The live loop (`trader run`) spends most of each candle building the strategy's DataFrame window and
committing the step; at {args.run_bars / max(run_s - startup_s, 1e-9):,.0f} candles/s beyond start-up it is far
faster than any candle feed.
"""
    publish(HEADING, body, write=not args.no_write)


if __name__ == "__main__":
    main()
