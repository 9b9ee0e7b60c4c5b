"""Benchmark: what alerts (``[notify]``) cost the trading step.

The same decision steps (``TradingSession.step`` on a ``MemoryState``, a signal flipping
BUY/SELL every candle, each fill giving one ``fill`` alert), one core:

- **baseline**: no notifier (``on_commit`` is ``None``), measured in the same run;
- **alerts on**: a :class:`trader.notify.Notifier` with one JSON target, a loopback receiver
  in another process that answers every POST; its sender thread runs on the same core,
  so its work (formatting, HTTP) competes with the step as it would in ``trader run``;
- **receiver hangs**: the same against a receiver that accepts and never answers;
- **observe alone**: :meth:`Notifier.observe` on a committed record with one fill
  (building the alert and queueing it: what the step itself pays).

The cost per event is (alerts-on time - baseline time) / alerts. Aim: under 50 µs.

    .venv/bin/python bench/bench_notify.py [--steps 20000] [--no-write]

Writes its section of bench/RESULTS.md (other sections are left as they are).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import header, pin_one_core, publish  # noqa: E402

HEADING = "Alerts: the cost of [notify] to the trading step (issue 18)"
HOUR = 3_600_000
T0 = 1_704_067_200_000

_RECEIVER = r"""
import sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
hang = sys.argv[1] == "hang"
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if hang:
            time.sleep(3600)
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H); s.daemon_threads = True
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _receiver(kind: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", _RECEIVER, kind], stdout=subprocess.PIPE, text=True)
    port = proc.stdout.readline().strip()
    return proc, f"http://127.0.0.1:{port}/hook"


def _session():
    from trader.engine import MemoryState, PaperBroker, RiskAuditAgent, TradingSession
    from trader.plugins import TraderPluginManager
    from trader.types import RiskLimits

    manager = TraderPluginManager(load_entrypoints=False, disabled=())
    limits = RiskLimits(max_consecutive_losses=10**9, max_drawdown=0.99, daily_loss_limit=0.99)
    return TradingSession(
        "buy_and_hold", "BTC/USDT", "1h", limits=limits,
        broker=PaperBroker(fee_bps=10, slippage_bps=0, lot_size=1e-6, min_notional=1.0),
        store=MemoryState("buy_and_hold"), audit=RiskAuditAgent.for_strategy(manager, "buy_and_hold", limits),
        initial_cash=10_000.0, rebalance_band=0.0,
    )


def _notifier(url: str):
    from trader.notify import Notifier, resolve_targets

    settings = resolve_targets({"max_per_minute": 1e9, "timeout_s": 5, "retries": 0, "flush_s": 0.5, "queue": 10**6,
                                "hook": {"url": url}}, environ={})
    return Notifier(settings, "buy_and_hold")


def _run(steps: int, url: str | None) -> tuple[float, int, dict]:
    import numpy as np

    from trader import Signal, SignalAction

    buy, sell = Signal(SignalAction.BUY), Signal(SignalAction.SELL)
    closes = (100 * np.exp(np.cumsum(np.random.default_rng(3).normal(0, 0.004, steps)))).tolist()
    session = _session()
    notifier = _notifier(url) if url else None
    fills = 0
    if notifier is not None:
        session.on_commit = notifier.observe
    step = session.step
    started = time.perf_counter()
    for i, close in enumerate(closes):
        fills += len(step(T0 + i * HOUR, close, buy if i % 2 == 0 else sell).fills)
    elapsed = time.perf_counter() - started
    stats = {}
    if notifier is not None:
        notifier.close(flush_s=0.2)
        stats = notifier.stats()["hook"]
    return elapsed, fills, stats


def _observe_alone(n: int) -> float:
    from trader import Signal, SignalAction

    session = _session()
    record = session.step(T0, 100.0, Signal(SignalAction.BUY))
    assert record.fills
    notifier = _notifier("http://127.0.0.1:9/unused")
    sender = notifier._senders[0]
    sender.abandon.set()  # nothing is sent: only the step's side is timed
    started = time.perf_counter()
    for _ in range(n):
        notifier.observe(record)
    elapsed = time.perf_counter() - started
    notifier.close(flush_s=0.1)
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    cpu = pin_one_core()
    logging.getLogger("trader.notify").setLevel(logging.ERROR)  # the receivers are stopped mid-send on purpose
    command = "python bench/bench_notify.py" + (f" --steps {args.steps}" if args.steps != 20_000 else "")
    _run(2000, None)  # warm-up
    base = min(_run(args.steps, None)[0] for _ in range(3))
    rows = []
    for kind in ("answers", "hang"):
        proc, url = _receiver(kind)
        try:
            elapsed, fills, stats = _run(args.steps, url)
        finally:
            proc.kill()
            proc.wait()
        rows.append((kind, elapsed, fills, stats))
    alone = _observe_alone(50_000)

    lines = [
        "| run | steps | alerts | time (s) | µs per step | extra µs per alert vs baseline | delivered during the run |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| baseline (no notifier) | {args.steps:,} | 0 | {base:.3f} | {base / args.steps * 1e6:.1f} | - | - |",
    ]
    worst = 0.0
    for kind, elapsed, fills, stats in rows:
        extra = (elapsed - base) / fills * 1e6
        worst = max(worst, extra)
        label = "alerts on, receiver answers" if kind == "answers" else "alerts on, receiver hangs"
        lines.append(f"| {label} | {args.steps:,} | {fills:,} | {elapsed:.3f} | {elapsed / args.steps * 1e6:.1f} | "
                     f"{extra:.1f} | {stats.get('delivered', 0):,} |")
    verdict = "met" if worst < 50 else "NOT met"
    body = header(command, cpu) + "\n" + "\n".join(lines) + f"""

`Notifier.observe` alone (build one fill alert, queue it): {alone * 1e6:.2f} µs per alert.

Aim: under 50 µs per event on the step: {verdict} (worst {worst:.1f} µs). The signal flips
every candle; each fill gives one alert (the alerts column; a step too small to trade gives
none). The extra time includes the sender thread's share of the one core (formatting, the
HTTP exchange), which `trader run` pays too. Against a receiver that hangs,
the sender waits on its socket and the queue only grows: the step does not wait.
"""
    publish(HEADING, body, write=not args.no_write)


if __name__ == "__main__":
    main()
