"""Benchmark: the backtest simulation core (the engine's per-candle step) against backtesting.py.

Strategy: an SMA(10)/SMA(30) crossover, as a trader plugin (signals from its
``trader_generate_signals`` hook, asked once for all candles) and as a backtesting.py
``Strategy`` over the same candles, in the same run, pinned to one core.

What is timed:

- **simulation core**: :class:`trader.engine.TradingSession` stepping through every candle
  with the precomputed signals: mark, breakers, signal -> order, the risk audit
  (``trader_audit_order`` through pluggy, every order), paper broker, book, in-memory store.
  The breakers that would halt the account for good (drawdown, consecutive losses, daily
  loss) are relaxed so it trades to the end; every order is still audited.
- **signals**: the strategy's one batched hook call.
- **trader end to end**: ``run_backtest`` (signals, simulation, metrics, the buy-and-hold
  baseline, 1,000 block-bootstrap resamples).
- **backtesting.py**: ``Backtest(...).run()`` (indicators, its per-bar loop, its statistics).

    .venv/bin/python bench/bench_simulation.py [--bars 200000] [--repeats 3] [--no-write]

Writes its section of bench/RESULTS.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import header, peak_rss_mib, pin_one_core, publish  # noqa: E402

from trader import hookimpl  # noqa: E402

HEADING = "Backtest simulation core vs backtesting.py (issue 8)"
CONFIG = """
[plugins.bench_sma.risk]
max_drawdown = 1.0
daily_loss_limit = 1.0
max_consecutive_losses = 1000000
max_position_notional = 1e15
max_order_notional = 1e15
"""


class BenchSma:
    """SMA(fast) / SMA(slow) crossover: BUY on the cross up, SELL (close) on the cross down."""

    name = "bench_sma"

    def __init__(self, fast: int = 10, slow: int = 30) -> None:
        self.fast, self.slow = fast, slow

    @hookimpl
    def trader_strategy_info(self):
        from trader.types import StrategyInfo

        return StrategyInfo(name=self.name, version="1.0", warmup_bars=self.slow)

    @hookimpl
    def trader_generate_signals(self, request):
        import numpy as np

        from trader.types import Signal, SignalAction

        close = request.candles["close"].to_numpy()
        cs = np.concatenate(([0.0], np.cumsum(close)))
        idx = np.arange(close.size)
        fast = (cs[idx + 1] - cs[np.maximum(idx + 1 - self.fast, 0)]) / self.fast
        slow = (cs[idx + 1] - cs[np.maximum(idx + 1 - self.slow, 0)]) / self.slow
        above = fast > slow
        buy, sell, hold = Signal(SignalAction.BUY), Signal(SignalAction.SELL), Signal.hold()
        out = []
        for i in request.at:
            i = int(i)
            if i >= self.slow and above[i] and not above[i - 1]:
                out.append(buy)
            elif i >= self.slow and above[i - 1] and not above[i]:
                out.append(sell)
            else:
                out.append(hold)
        return out


def _backtesting_py(candles, repeats: int) -> tuple[list[float], int]:
    import pandas as pd
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    df = pd.DataFrame(
        {"Open": candles["open"].to_numpy(), "High": candles["high"].to_numpy(), "Low": candles["low"].to_numpy(),
         "Close": candles["close"].to_numpy(), "Volume": candles["volume"].to_numpy()},
        index=pd.to_datetime(candles["timestamp"].to_numpy(), unit="ms"),
    )

    def sma(values, n):
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self):
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 30)

        def next(self):
            if crossover(self.fast, self.slow):
                self.buy(size=0.5)
            elif crossover(self.slow, self.fast):
                self.position.close()

    walls, trades = [], 0
    for _ in range(repeats):
        bt = Backtest(df, SmaCross, cash=10_000, commission=0.001, finalize_trades=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            stats = bt.run()
            walls.append(time.perf_counter() - t)
        trades = int(stats["# Trades"])
    return walls, trades


def _engine_alone(manager, name, limits, market, ts, close, signals, repeats) -> tuple[float, float, float]:
    """Best times of the engine alone: ``simulate_floats`` (what ``simulate`` uses), ``TradingSession.run``'s
    fast path and ``fast=False`` (per candle, the reference)."""
    from trader.backtest.runner import quiet_engine_logs
    from trader.engine import MemoryState, RiskAuditAgent, TradingSession
    from trader.engine.fastsim import simulate_floats

    best = {}
    for fast in ("floats", True, False):
        walls = []
        for _ in range(repeats):
            session = TradingSession(name, "SYN/USDT", "1h", limits=limits, broker=market.broker, store=MemoryState(name),
                                     audit=RiskAuditAgent.for_strategy(manager, name, limits), initial_cash=market.cash,
                                     rebalance_band=market.rebalance_band)
            with quiet_engine_logs():
                t = time.perf_counter()
                if fast == "floats":
                    assert simulate_floats(session, ts, close, signals) is not None
                else:
                    session.run(ts, close, signals, fast=fast)
                walls.append(time.perf_counter() - t)
        best[fast] = min(walls)
    return best["floats"], best[True], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args()
    cpu = pin_one_core()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from trader.backtest.runner import BacktestSettings, Market, batch_signals, effective_limits, run_backtest, simulate
    from trader.config import load_config
    from trader.data import synthetic_candles
    from trader.plugins import TraderPluginManager

    home = Path(tempfile.mkdtemp(prefix="bench-sim-"))
    (home / "trader.toml").write_text(CONFIG)
    config = load_config(None, home)
    candles = synthetic_candles("SYN/USDT", "1h", bars=args.bars, seed=7)
    ts, close = candles["timestamp"].to_numpy(), candles["close"].to_numpy()
    manager = TraderPluginManager(load_entrypoints=False)
    plugin = BenchSma()
    lines = []
    with manager.registered(plugin, plugin.name):
        strategy = manager.strategy(plugin.name)
        limits = effective_limits(strategy, config)
        market = Market.resolve(config, BacktestSettings(), candles, slice(None))  # spreads per candle, as run_backtest
        t = time.perf_counter()
        batch = batch_signals(strategy, candles, 0, len(candles) - 1, symbol="SYN/USDT", timeframe="1h")
        signal_s = time.perf_counter() - t
        core, fills = [], 0
        for _ in range(args.repeats):
            t = time.perf_counter()
            run = simulate(manager, plugin.name, limits, market, ts, close, batch.signals, symbol="SYN/USDT", timeframe="1h")
            core.append(time.perf_counter() - t)
            fills = len(run.fills)
        trades = run.metrics.trades
        engine_floats, engine_fast, engine_ref = _engine_alone(manager, plugin.name, limits, market, ts, close, batch.signals, args.repeats)
        t = time.perf_counter()
        run_backtest(manager, config, plugin.name, candles, symbol="SYN/USDT", timeframe="1h",
                     settings=BacktestSettings(n_resamples=1000))
        end_to_end = time.perf_counter() - t
    ours_rss = peak_rss_mib()
    bt_walls, bt_trades = _backtesting_py(candles, args.repeats)

    n = len(candles)
    core_best, bt_best = min(core), min(bt_walls)
    core_rate, bt_rate = n / core_best, n / bt_best
    lines.append(header(f".venv/bin/python bench/bench_simulation.py --bars {args.bars} --repeats {args.repeats}", cpu))
    lines.append(f"{n:,} synthetic 1h candles, SMA(10)/SMA(30) crossover; trader: {fills:,} fills in {trades:,} round trips "
                 f"(every order through the risk audit), backtesting.py: {bt_trades:,} trades.\n")
    lines.append("| what | best time | candles/s | vs backtesting.py |")
    lines.append("|---|---|---|---|")
    lines.append(f"| trader simulation core (`simulate`: the float-only simulation, then metrics) | {core_best:.3f} s (median {statistics.median(core):.3f}) | "
                 f"{core_rate:,.0f} | **{core_rate / bt_rate:.1f}x** |")
    lines.append(f"| of which the engine alone (`fastsim.simulate_floats`) | {engine_floats:.3f} s | {n / engine_floats:,.0f} | "
                 f"{(n / engine_floats) / bt_rate:.1f}x |")
    lines.append(f"| the engine's quiet-stretch path (`TradingSession.run`, full step per order) | {engine_fast:.3f} s | {n / engine_fast:,.0f} | "
                 f"{(n / engine_fast) / bt_rate:.1f}x |")
    lines.append(f"| the engine, one full step per candle (`run(..., fast=False)`, the reference) | {engine_ref:.3f} s | "
                 f"{n / engine_ref:,.0f} | {(n / engine_ref) / bt_rate:.1f}x |")
    lines.append(f"| trader signals (one batched hook call) | {signal_s:.3f} s | {n / signal_s:,.0f} | |")
    lines.append(f"| trader end to end (`run_backtest`: signals, simulation, metrics, buy-and-hold baseline, 1,000 bootstrap resamples) "
                 f"| {end_to_end:.3f} s | {n / end_to_end:,.0f} | {(n / end_to_end) / bt_rate:.1f}x |")
    lines.append(f"| backtesting.py `Backtest.run()` | {bt_best:.3f} s (median {statistics.median(bt_walls):.3f}) | {bt_rate:,.0f} | 1.0x |")
    lines.append(f"\nPeak RSS of the process after the trader part: {ours_rss:,.0f} MiB (candles, signals, the in-memory store). "
                 "Aim: simulation core >= 10x backtesting.py.")
    lines.append(
        f"\nThe float-only simulation takes quiet candles in bulk and the step on floats on the {fills:,} candles "
        f"that order (no per-order value objects, no pluggy call where no plugin adds risk rules): about "
        f"{engine_floats / max(fills, 1) * 1e6:.0f} us of the engine's time per fill, against backtesting.py's {bt_best / n * 1e6:.1f} us per candle. 10x "
        f"backtesting.py means {bt_best / n * 1e6 / 10:.2f} us per candle on average, i.e. about "
        f"{bt_best / 10 / max(fills, 1) * 1e6:.0f} us per order at this strategy's order rate, everything included."
    )
    body = "\n".join(lines)
    publish(HEADING, body, write=not args.no_write)


if __name__ == "__main__":
    main()
