"""Benchmark: start-up time of the `trader` command (`trader --version`, `trader plugins`, `trader run --help`).

Baseline (same run): a bare `python -c pass` with the same interpreter, i.e. the part of
the start-up no CLI can avoid. Each command runs in a fresh process; best and median of
``--repeat`` runs, plus the peak RSS of the child. Aim: `trader plugins` in under 0.5 s.

    .venv/bin/python bench/bench_cli.py [--repeat 15] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import load_average, pinned_header, publish

TRADER = Path(sys.executable).with_name("trader")


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS (MiB) of one run of ``argv``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with status {proc.returncode}")
    return wall, usage.ru_maxrss / 1024


def measure(argv: list[str], env: dict[str, str], repeat: int) -> tuple[list[float], float]:
    run_once(argv, env)  # warm the file cache
    walls, peaks = zip(*(run_once(argv, env) for _ in range(repeat)), strict=True)
    return list(walls), max(peaks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if not TRADER.exists():
        raise SystemExit(f"{TRADER} not found: install trader-core into this environment first")
    start_load = load_average()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "TRADER_HOME": home}
        base, base_peak = measure([sys.executable, "-c", "pass"], env, args.repeat)
        rows = []
        for cmd in (["--version"], ["plugins"], ["run", "--help"]):
            walls, peak = measure([str(TRADER), *cmd], env, args.repeat)
            rows.append((f"trader {' '.join(cmd)}", walls, peak))
    lines = [
        "| command | best (s) | median (s) | ratio to bare python (median) | peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|",
        f"| python -c pass (baseline) | {min(base):.3f} | {statistics.median(base):.3f} | 1.0 | {base_peak:.0f} |",
    ]
    for name, walls, peak in rows:
        ratio = statistics.median(walls) / statistics.median(base)
        lines.append(f"| {name} | {min(walls):.3f} | {statistics.median(walls):.3f} | {ratio:.1f} | {peak:.0f} |")
    plugins_best = min(rows[1][1])
    verdict = "met" if plugins_best < 0.5 else "not met"
    body = (
        pinned_header(f".venv/bin/python bench/bench_cli.py --repeat {args.repeat}", start_load).replace(
            "; one core pinned", "; not pinned (each command is its own process)"
        )
        + f"\nEach command in a fresh process, {args.repeat} runs after one warm-up run; the four distributions "
        "of this repo installed (so `trader plugins` loads four entry points and their metadata).\n\n"
        + "\n".join(lines)
        + f"\n\nAim: `trader plugins` under 0.5 s: {verdict} (best {plugins_best:.3f} s). "
        "`tests/core/test_core_cli.py` checks the cause rather than the time: these commands import no torch, "
        "pandas, scikit-learn or ccxt.\n"
    )
    publish("CLI start-up (bench/bench_cli.py)", body, write=not args.no_write)


if __name__ == "__main__":
    main()
