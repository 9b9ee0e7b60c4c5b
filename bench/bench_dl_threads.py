"""Benchmark: a deep-learning backtest on one thread and on every core (``batch_threads``), same signals.

For each shipped network (``dl_lstm`` BiLSTM hidden 128; ``dl_transformer`` d_model 64, 4 heads,
2 layers; 86 features, windows of 60 candles; trained one short epoch, the weights do not change
the cost) ``run_backtest`` runs end to end over ``--bars`` synthetic 1h candles, with
``[plugins.NAME] batch_threads = 1`` and then ``= cores``, and as before issue 19 (batches of
1,024 windows, one thread), alternately in one process
(``--repeats`` times each), so that the load of a shared machine skews both alike. Wall and CPU
seconds of each run; the ratio is best-of-N one thread over best-of-N every core. The fills, the
actions and the equity curve of the two settings are compared (they must be identical).

It also profiles the forward pass alone: CPU time per window at batches of 1,024 and 256 (the
batch size of the batched pass), and, for issue 19 item 4 (a streaming Transformer), the
Transformer per window of 1 position (what a streaming formulation with cached keys and values
would compute per new candle, attention over the cache aside).

    .venv/bin/python bench/bench_dl_threads.py [--bars 6000] [--repeats 3] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from benchlib import load_average, machine, publish

HEADING = "Deep-learning backtest on every core: batch_threads (issue 19)"
SYMBOL, TIMEFRAME = "SYN/USDT", "1h"
ITEM_4 = (
    'Item 4 (a streaming causal Transformer) is not built: the one-position figure shows the compute it c'
    'ould save, but it is a different model (relative positions, keys and values cached per layer, so a l'
    'ayer sees further back than the window), trained anew on whole sequences, with a new artifact format'
    ' that refuses the old ones, a per-layer cache in `trader run`, and a bit-for-bit match between a bac'
    'ktest that computes every position in large products and a live path that computes one row at a time'
    ', which different product shapes do not give without making the backtest step candle by candle too. '
    'Batches of 256 and every core bring the Transformer backtest to the figures above; the streaming mod'
    'el is left to its own issue.'
)
RISK = "[plugins.{name}.risk]\nmax_drawdown = 1.0\ndaily_loss_limit = 1.0\nmax_consecutive_losses = 1000000\n"


def _train(home: Path, manager, name: str) -> None:
    from trader.data import synthetic_candles
    from trader.models import ModelPersistence, candles_hash, candles_range
    from trader.types import TrainRequest

    strategy = manager.strategy(name)
    train = synthetic_candles(SYMBOL, TIMEFRAME, bars=3000, seed=99)
    result = strategy.train(TrainRequest(name, SYMBOL, TIMEFRAME, train,
                                         params={"epochs": 1, "max_batches_per_epoch": 2, "threads": 1}))
    ModelPersistence(home / "models").save(strategy, result, symbol=SYMBOL, timeframe=TIMEFRAME,
                                           data_range=candles_range(train), data_hash=candles_hash(train), seed=0)


def _config(home: Path, name: str, threads: int):
    from trader.config import load_config

    (home / "trader.toml").write_text(RISK.format(name=name) + f"[plugins.{name}]\nbatch_threads = {threads}\n")
    return load_config(None, home)


def measure(home: Path, manager, name: str, bars: int, repeats: int, cores: int) -> dict:
    import numpy as np

    from trader.backtest.runner import BacktestSettings, run_backtest
    from trader.data import synthetic_candles
    from trader.models import ModelPersistence

    _train(home, manager, name)
    strategy = manager.strategy(name)
    candles = synthetic_candles(SYMBOL, TIMEFRAME, bars=bars + strategy.info.warmup_bars, seed=5)
    configs = {t: _config(home, name, t) for t in (1, cores)}
    loaded = ModelPersistence(configs[1].models_dir).load(strategy, SYMBOL, TIMEFRAME)
    from trader.ml.model import SequenceModel

    times: dict[object, list[tuple[float, float, float]]] = {"before": [], 1: [], cores: []}
    runs = {}
    predict = SequenceModel.predict_windows
    for _ in range(repeats):
        for key in times:
            if key == "before":  # the code before issue 19: batches of 1,024 on one thread
                SequenceModel.predict_windows = lambda self, scaled, ends, **kw: predict(self, scaled, ends, batch_size=1024, threads=1)
            try:
                w, c = time.perf_counter(), time.process_time()
                result = run_backtest(manager, configs[1 if key == "before" else key], name, candles, symbol=SYMBOL,
                                      timeframe=TIMEFRAME, loaded_model=loaded, settings=BacktestSettings(n_resamples=1000))
                times[key].append((time.perf_counter() - w, time.process_time() - c, result.timings["signals_s"]))
            finally:
                SequenceModel.predict_windows = predict
            runs[key] = result.run
    a = runs[1]
    same = all(a.fills == b.fills and np.array_equal(a.actions, b.actions) and np.array_equal(a.equity, b.equity)
               for b in (runs[cores], runs["before"]))
    return {"times": times, "same": same, "fills": len(a.fills), "windows": bars}


def _cpu_per_window(net, x, batch_size: int) -> float:
    """Best of 3 CPU milliseconds (user + system: page faults count) per window, one torch thread."""
    import torch

    best = float("inf")
    with torch.inference_mode():
        net(x[:64])
        for _ in range(3):
            before = os.times()
            for start in range(0, x.shape[0], batch_size):
                net(x[start:start + batch_size].contiguous())
            after = os.times()
            best = min(best, after.user + after.system - before.user - before.system)
    return best / x.shape[0] * 1000


def profile_forward(windows: int) -> dict:
    """CPU ms per window of each network at batches of 1,024 and 256 (60 positions), and the Transformer's
    per window of 1 position."""
    import torch

    from trader_dl_lstm.model import BiLSTMClassifier
    from trader_dl_transformer.model import TransformerClassifier

    torch.manual_seed(0)
    x = torch.randn(windows + 59, 86).unfold(0, 60, 1).transpose(1, 2)  # (windows, 60, 86) view
    out = {}
    for name, net in (("dl_lstm", BiLSTMClassifier().eval()), ("dl_transformer", TransformerClassifier().eval())):
        out[name] = {size: _cpu_per_window(net, x, size) for size in (1024, 256)}
    out["transformer_one_position"] = _cpu_per_window(TransformerClassifier().eval(), x[:, -1:], 256)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bars", type=int, default=6000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only, leave bench/RESULTS.md alone")
    args = parser.parse_args()
    import logging

    import torch

    from trader.config_rules import usable_cores
    from trader.plugins import TraderPluginManager

    logging.disable(logging.WARNING)
    torch.set_num_threads(1)
    cores = usable_cores()
    start_load = load_average()
    manager = TraderPluginManager()
    results = {name: measure(Path(tempfile.mkdtemp(prefix="bench-dl-threads-")), manager, name, args.bars, args.repeats, cores)
               for name in ("dl_lstm", "dl_transformer")}
    torch.set_num_threads(1)
    prof = profile_forward(4096)

    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; not pinned (both cores). Load average at start "
        f"{start_load}, at the end {load_average()}: the machine is shared with other engineers' jobs, so the "
        "two settings run alternately in one process and the ratio is best-of-N over best-of-N.\n",
        f"Command: `.venv/bin/python bench/bench_dl_threads.py --bars {args.bars} --repeats {args.repeats}`\n",
        f"`run_backtest` end to end (features, signals, simulation, metrics, baseline, 1,000 bootstrap resamples) "
        f"over {args.bars:,} candles, `[plugins.NAME] batch_threads = 1` against `= {cores}` (every core), and the "
        "code before issue 19 (batches of 1,024 windows, one thread; the one-thread DL backtest the issue measured).\n",
        "| strategy | before (1,024 per batch, 1 thread): wall best / all, CPU | 1 thread: wall best / all, CPU | "
        f"{cores} threads: wall best / all, CPU | ratio {cores} threads / 1 thread (best wall) | ratio / before | "
        "signals phase before, 1, N (best) | same fills, actions, equity (all three) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def cell(ts: list) -> str:
        return f"{min(t[0] for t in ts):.2f} s / {', '.join(f'{t[0]:.1f}' for t in ts)}, {min(t[1] for t in ts):.2f} s"

    for name, r in results.items():
        before, one, many = r["times"]["before"], r["times"][1], r["times"][cores]
        best0, best1, bestn = (min(t[0] for t in ts) for ts in (before, one, many))
        lines.append(
            f"| {name} | {cell(before)} | {cell(one)} | {cell(many)} | **{best1 / bestn:.2f}x** | **{best0 / bestn:.2f}x** | "
            f"{' / '.join(f'{min(t[2] for t in ts):.2f}' for ts in (before, one, many))} s | "
            f"{'yes' if r['same'] else '**NO**'} ({r['fills']} fills) |"
        )
    lines.append("")
    for name, r in results.items():
        one = min(r["times"][1], key=lambda t: t[0])
        rest = one[0] - one[2]
        lines.append(
            f"{name}: outside the signals phase the one-thread backtest spends {rest:.2f} s of {one[0]:.2f} s, so on "
            f"{cores} idle cores the ratio is bounded by {one[0]:.2f} / ({rest:.2f} + {one[2]:.2f} / {cores}) = "
            f"{one[0] / (rest + one[2] / cores):.2f}x; CPU seconds of the two settings "
            f"({min(t[1] for t in r['times'][1]):.2f} vs {min(t[1] for t in r['times'][cores]):.2f}) say what the "
            "threads cost beyond the work itself.")
    lines += [
        "",
        "Forward pass alone, one torch thread, 4,096 windows of 60 candles, CPU time (user + system) per window, "
        "best of 3: the batch size of the batched pass (`trader.ml.inference.INFERENCE_BATCH_SIZE`).",
        "",
        "| network | batches of 1,024 | batches of 256 | saved |",
        "|---|---|---|---|",
        *(f"| {name} | {prof[name][1024]:.3f} ms | {prof[name][256]:.3f} ms | "
          f"{(1 - prof[name][256] / prof[name][1024]) * 100:.0f}% |" for name in ("dl_lstm", "dl_transformer")),
        "",
        f"Transformer, 1 position per window instead of 60: {prof['transformer_one_position']:.4f} ms per window "
        f"({prof['dl_transformer'][256] / prof['transformer_one_position']:.0f}x less than 60 positions): the floor of "
        "what a streaming formulation with cached keys and values would compute per new candle, before its "
        "attention over the cache (issue 19 item 4).",
        "",
        ITEM_4,
        "",
    ]
    publish(HEADING, "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
