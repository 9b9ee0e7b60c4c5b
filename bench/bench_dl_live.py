"""Benchmark: the live decision for one new candle, for both deep-learning strategies, on one thread.

Per candle, as ``trader run`` does it: the incremental feature update
(:class:`trader.features.IncrementalFeatures`), the recent-candles window
(:class:`trader.engine.history.CandleWindow` -> the request's frames), the strategy's
signal through its plugin hook (one window through the model), and the risk audit of
an order (:class:`trader.engine.risk.RiskAuditAgent`, every rule). p50/p99 over the
timed candles, beside the bare forward pass of the same network on one pre-built
window tensor (the floor). Models have the plugins' default architectures (BiLSTM:
hidden 128, 1 layer; Transformer: d_model 64, 4 heads, 2 layers), window 60, 86
features; they are trained for a few batches only (latency does not depend on the
weights' values).

Run: ``.venv/bin/python bench/bench_dl_live.py [--candles 2000] [--no-write]``;
results replace the "Deep learning: live decision" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from benchlib import replace_section

HEADING = "## Deep learning: live decision per candle (bench/bench_dl_live.py)"


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def measure(name: str, candles_total: int) -> dict:
    from trader.data import synthetic_candles
    from trader.engine.history import CandleWindow
    from trader.engine.risk import RiskAuditAgent
    from trader.engine.runner import history_bars
    from trader.features import FeatureEngineer
    from trader.plugins import TraderPluginManager
    from trader.types import AuditContext, Candle, OrderRequest, PortfolioSnapshot, SignalRequest, TrainRequest

    manager = TraderPluginManager()
    strategy = manager.strategy(name)
    info = strategy.info
    history = synthetic_candles("SYN/USDT", "1h", bars=3000 + candles_total, seed=1, planted_signal=0.3)
    train_part = history.iloc[:3000].reset_index(drop=True)
    result = strategy.train(TrainRequest(strategy=name, symbol="SYN/USDT", timeframe="1h", candles=train_part,
                                         params={"epochs": 1, "max_batches_per_epoch": 3, "threads": 1}))
    model = result.model
    torch.set_num_threads(1)

    engineer = FeatureEngineer(windows=list(info.feature_windows))
    names = engineer.get_feature_names()
    window = CandleWindow(history_bars(info, engineer.warmup_bars), names)
    updater = engineer.incremental(timeframe="1h")
    updater.warm(train_part)
    window.extend(train_part, engineer.transform(train_part))
    audit = RiskAuditAgent.for_strategy(manager, name, info.risk_limits)
    portfolio = PortfolioSnapshot(cash=10_000.0, equity=10_000.0, peak_equity=10_000.0, day_start_equity=10_000.0)

    rows = history.iloc[3000:].itertuples(index=False)
    total, parts = [], {"features": [], "frames": [], "signal": [], "audit": []}
    for i, row in enumerate(rows):
        candle = Candle(int(row.timestamp), row.open, row.high, row.low, row.close, row.volume)
        t0 = time.perf_counter()
        features_row = updater.update(candle)
        window.append(candle, features_row)
        t1 = time.perf_counter()
        candles_frame, features_frame = window.frames()
        t2 = time.perf_counter()
        signal = strategy.generate_signals(SignalRequest(
            strategy=name, symbol="SYN/USDT", timeframe="1h", candles=candles_frame, at=[len(candles_frame) - 1],
            features=features_frame, model=model,
        ))[0]
        t3 = time.perf_counter()
        order = OrderRequest(strategy=name, symbol="SYN/USDT", side="buy" if signal.action.value != "sell" else "sell",
                             quantity=0.01, price=candle.close, client_order_id=f"bench-{i}", timestamp=candle.timestamp)
        context = AuditContext(strategy=name, now=candle.timestamp, timeframe_ms=3_600_000, last_candle_ts=candle.timestamp)
        audit.audit(order, portfolio, context)
        t4 = time.perf_counter()
        if signal.probability is None:
            raise SystemExit(f"{name}: no probability at candle {i} (warm-up should be over): {signal}")
        total.append(t4 - t0)
        for key, value in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[key].append(value)
    # the floor: the bare forward pass of the same network on one pre-built window
    x = torch.randn(1, model.sequence_length, model.n_features)
    bare = []
    with torch.inference_mode():
        for _ in range(50):
            model.module(x)
        for _ in range(len(total)):
            t0 = time.perf_counter()
            model.module(x)
            bare.append(time.perf_counter() - t0)
    return {"total": total, "bare": bare, **parts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=2000, help="Timed candles per model.")
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/RESULTS.md alone.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = {name: measure(name, args.candles) for name in ("dl_lstm", "dl_transformer")}
    today = dt.date.today().isoformat()
    from importlib.metadata import version

    lines = [
        HEADING,
        "",
        f"{today}, {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {version('torch')}; "
        f"one torch thread; {args.candles:,} consecutive candles per model after a 3,000-candle warm-up. "
        f"The machine is shared with other work (load average {os.getloadavg()[0]:.1f} at the end): p99 figures in "
        "particular carry noise.",
        f"Command: `.venv/bin/python bench/bench_dl_live.py --candles {args.candles}`",
        "",
        "| strategy | decision p50 (ms) | decision p99 (ms) | bare forward p50 / p99 (ms) | ratio p50 | features | frames | signal | audit (p50 ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {_pct(r['total'], 50):.2f} | {_pct(r['total'], 99):.2f} | "
            f"{_pct(r['bare'], 50):.2f} / {_pct(r['bare'], 99):.2f} | {_pct(r['total'], 50) / _pct(r['bare'], 50):.2f} | "
            f"{_pct(r['features'], 50):.3f} | {_pct(r['frames'], 50):.3f} | {_pct(r['signal'], 50):.3f} | {_pct(r['audit'], 50):.3f} |"
        )
    lines += [
        "",
        "Decision = incremental features + the engine's request frames + the plugin's signal (scaling, one window "
        "through the network, thresholds) + the risk audit of one order. Ratio = decision p50 / bare forward p50. "
        f"Aim: BiLSTM p99 under 2 ms: {'met' if _pct(results['dl_lstm']['total'], 99) < 2.0 else 'not met'} in this run "
        f"({_pct(results['dl_lstm']['total'], 99):.2f} ms). The engine's frames and the incremental features are "
        "measured here as `trader run` uses them; the signal column includes the forward pass on a cache that the "
        "pandas work in between has cooled, hence its distance to the bare forward pass (measured back to back).",
        "",
    ]
    section = "\n".join(lines)
    print(section)
    if not args.no_write:
        replace_section(section)


if __name__ == "__main__":
    main()
