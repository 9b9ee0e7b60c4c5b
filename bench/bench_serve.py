"""Benchmark: ``trader serve``'s API latency and page weight over 20 strategies with 100,000 fills each.

A real ``trader run`` makes one state file; 100,000 orders, fills, equity rows and audit events
are added to it, and it is copied to 20 strategy folders (the namespace set for each). A real
``trader serve`` subprocess answers; each endpoint is asked ``--requests`` times over one
keep-alive connection (p50, p99). "overview after a write" appends one equity row to every
file before each request, as 20 running strategies would (the cache misses; the drawdown is
brought up to date incrementally). Page weight: the HTML, the static files, and the JSON one
refresh of each page fetches. Baseline (same run): ``trader status --json`` over the same home,
the terminal's way to read the same strategies.

    .venv/bin/python bench/bench_serve.py [--strategies 20] [--fills 100000] [--requests 200] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import load_average, machine, publish

TRADER = Path(sys.executable).with_name("trader")
HOUR = 3_600_000
T0 = 1_704_067_200_000


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    env["TRADER_HOME"] = str(home)
    return env


def build_home(home: Path, strategies: int, fills: int) -> None:
    env = _env(home)
    subprocess.run([str(TRADER), "run", "--plugin", "buy_and_hold", "--max-candles", "5", "--isolation", "inline", "--quiet"],
                   env=env, check=True, capture_output=True)
    template = home / "strategies" / "buy_and_hold" / "state.sqlite"
    db = sqlite3.connect(template)
    start = T0 + 10 * HOUR
    db.executemany(
        "INSERT INTO orders (client_order_id, symbol, side, quantity, price, order_type, candle_ts, status, filled_quantity, "
        "created_at, updated_at) VALUES (?, 'BTC/USDT', ?, 0.01, ?, 'market', ?, 'filled', 0.01, ?, ?)",
        ((f"bench-{i}", "buy" if i % 2 == 0 else "sell", 100.0 + i % 7, start + i * HOUR, start, start) for i in range(fills)),
    )
    db.executemany(
        "INSERT INTO fills (client_order_id, trade_id, symbol, side, quantity, price, fee, timestamp, realized_pnl) "
        "VALUES (?, ?, 'BTC/USDT', ?, 0.01, ?, 0.001, ?, 0.0)",
        ((f"bench-{i}", f"t-{i}", "buy" if i % 2 == 0 else "sell", 100.0 + i % 7, start + i * HOUR) for i in range(fills)),
    )
    db.executemany(
        "INSERT INTO equity (timestamp, symbol, close, cash, position_value, equity) VALUES (?, 'BTC/USDT', 100, 10000, 0, ?)",
        ((start + i * HOUR, 10_000 + 50 * ((i * 7919) % 101 - 50) / 50) for i in range(fills)),
    )
    db.executemany(
        "INSERT INTO risk_events (timestamp, kind, code, message, client_order_id, approved, created_at) "
        "VALUES (?, 'audit', 'APPROVED', 'approved', ?, 1, ?)",
        ((start + i * HOUR, f"bench-{i}", start) for i in range(fills)),
    )
    db.executemany("INSERT INTO latency (timestamp, inference_ms) VALUES (?, ?)",
                   ((start + i * HOUR, 0.5 + (i % 10) / 10) for i in range(1000)))
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    for i in range(strategies):
        folder = home / "strategies" / f"s{i:02d}"
        folder.mkdir()
        shutil.copyfile(template, folder / "state.sqlite")
        copy = sqlite3.connect(folder / "state.sqlite")
        copy.execute("UPDATE meta SET value = ? WHERE key = 'namespace'", (f"s{i:02d}",))
        copy.commit()
        copy.close()
    shutil.rmtree(home / "strategies" / "buy_and_hold")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategies", type=int, default=20)
    parser.add_argument("--fills", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    start_load = load_average()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        home = Path(tmp)
        t = time.perf_counter()
        build_home(home, args.strategies, args.fills)
        print(f"built {args.strategies} state files in {time.perf_counter() - t:.1f} s")
        env = _env(home)
        t = time.perf_counter()
        status = subprocess.run([str(TRADER), "status", "--json"], env=env, capture_output=True, text=True)
        baseline = time.perf_counter() - t
        assert status.returncode == 0, status.stderr
        server = subprocess.Popen([str(TRADER), "serve", "--port", "0", "--read-only"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        try:
            url = server.stdout.readline().split()[2].rstrip("/")
            client = httpx.Client(base_url=url, timeout=120)
            rows = []

            def measure(label: str, path: str, before=None) -> None:
                walls = []
                for _ in range(args.requests):
                    if before:
                        before()
                    t = time.perf_counter()
                    r = client.get(path)
                    walls.append(time.perf_counter() - t)
                    assert r.status_code == 200, (path, r.text[:200])
                rows.append((label, path, walls, len(r.content)))

            t = time.perf_counter()
            assert client.get("/api/strategies").status_code == 200
            cold = time.perf_counter() - t
            measure("overview (cached)", "/api/strategies")
            writers = [sqlite3.connect(home / "strategies" / f"s{i:02d}" / "state.sqlite") for i in range(args.strategies)]
            step = [0]

            def append_candle() -> None:
                step[0] += 1
                for db in writers:
                    db.execute("INSERT INTO equity VALUES (?, 'BTC/USDT', 100, 10000, 0, 10001)",
                               (T0 + (args.fills + 100 + step[0]) * HOUR,))
                    db.commit()

            measure("overview after a write to all 20 files", "/api/strategies", append_candle)
            for db in writers:
                db.close()
            one = f"s{args.strategies // 2:02d}"
            measure("one strategy", f"/api/strategies/{one}")
            measure("equity + drawdown series (600 points)", f"/api/strategies/{one}/series")
            measure("fills, first page (50)", f"/api/strategies/{one}/fills")
            measure("fills, last page (50)", f"/api/strategies/{one}/fills?page={args.fills // 50}")
            measure("decision log, first page", f"/api/strategies/{one}/events?filter=decisions")
            weight = {}
            for label, paths in {
                "overview page": ["/", "/static/style.css", "/static/chart.js", "/static/app.js"],
                "strategy page": [f"/strategies/{one}", "/static/style.css", "/static/chart.js", "/static/app.js"],
                "overview refresh": ["/api/strategies"],
                "strategy refresh": [f"/api/strategies/{one}", f"/api/strategies/{one}/series?points=600",
                                     *(f"/api/strategies/{one}/{p}" for p in ("orders?per_page=20", "fills?per_page=20",
                                                                              "events?filter=risk&per_page=20",
                                                                              "events?filter=decisions&per_page=20"))],
            }.items():
                weight[label] = sum(len(client.get(p).content) for p in paths)
            client.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; load average at start {start_load}, at the end "
        f"{load_average()} (a shared machine: wall times are noisy). {args.strategies} strategies, {args.fills:,} orders, "
        f"fills, equity rows and audit events each (synthetic rows in real state files); a real `trader serve` "
        f"subprocess, {args.requests} sequential requests per row over one keep-alive connection.",
        "",
        "Command: `.venv/bin/python bench/bench_serve.py`",
        "",
        "| request | p50 (ms) | p99 (ms) | response (KiB) | p99 vs baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, path, walls, size in rows:
        lines.append(f"| {label}: `GET {path}` | {statistics.median(walls) * 1000:.1f} | {pct(walls, 0.99) * 1000:.1f} | "
                     f"{size / 1024:.1f} | {pct(walls, 0.99) / baseline:.4f} |")
    lines.append(f"| baseline: `trader status --json` over the same {args.strategies} strategies (one run) | "
                 f"{baseline * 1000:.0f} | | {len(status.stdout) / 1024:.1f} | 1.0 |")
    lines += [
        "",
        f"First overview after start (every file read, drawdowns over all equity rows): {cold * 1000:.0f} ms.",
        "",
        "Page weight (uncompressed; no web font, no image, no third-party file): "
        + "; ".join(f"{k} {v / 1024:.1f} KiB" for k, v in weight.items())
        + ". A page's first load is the HTML and static files; each refresh (every `--refresh` seconds, 2 by default) "
        "fetches the JSON of its \"refresh\" row.",
        "",
        "`trader status` checks every account against its ledger (replaying every fill); the server does not (see "
        "docs/serve.md), and caches each strategy's overview until its file changes.",
    ]
    publish("trader serve: API latency and page weight (bench/bench_serve.py)", "\n".join(lines), write=not args.no_write)


if __name__ == "__main__":
    main()
