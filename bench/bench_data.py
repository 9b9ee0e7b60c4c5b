"""Benchmark: candle import + validation throughput and stored-dataset load time, beside plain pandas.

Generates a 1,000,000-row CSV (synthetic 1m candles; ``timestamp`` in ms plus
``open, high, low, close, volume``) in a temporary folder, then measures, each case in a
fresh Python process (best of ``--repeat`` runs; peak memory is the process's max RSS):

1. ``import``: :func:`read_candle_file` + :func:`validate_candles` + ``CandleStore.write``
   (format detection, timestamp parsing, every validation rule, the Parquet write), against
   the baseline ``pandas.read_csv`` of the same file (no checks at all).
2. ``load``: ``CandleStore.read`` of the stored dataset, against ``pandas.read_csv`` of the CSV.

Ratios are ours / baseline (time); below 1 means faster than the baseline.

Run: ``.venv/bin/python bench/bench_data.py [--rows 1000000] [--repeat 3] [--no-write]``;
results replace the "Market data" section of ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import replace_section

HEADING = "## Market data: import, validation and load (bench/bench_data.py)"

CASES = {
    "baseline_read_csv": """
import pandas as pd
t0 = time.perf_counter()
df = pd.read_csv(CSV)
elapsed = time.perf_counter() - t0
rows = len(df)
""",
    "import_validate_store": """
from trader.data.importers import read_candle_file
from trader.data.validate import validate_candles
from trader.data.store import CandleStore
import shutil
shutil.rmtree(HOME / "data", ignore_errors=True)
t0 = time.perf_counter()
clean = validate_candles(read_candle_file(CSV), "1m")
CandleStore(HOME).write("bench", "SYN/USDT", "1m", clean.candles, filled=clean.filled)
elapsed = time.perf_counter() - t0
rows = len(clean.candles)
""",
    "load_store": """
from trader.data.store import CandleStore
t0 = time.perf_counter()
df = CandleStore(HOME).read("bench", "SYN/USDT", "1m")
elapsed = time.perf_counter() - t0
rows = len(df)
""",
}

_RUNNER = """
import json, resource, sys, time
from pathlib import Path
import numpy, pandas, pyarrow.parquet  # imported before timing in every case
CSV = Path(sys.argv[1]); HOME = Path(sys.argv[2])
{body}
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "rows": rows, "peak_mib": peak / 1024}}))
"""


def _run_case(name: str, csv: Path, home: Path) -> dict:
    code = _RUNNER.format(body=CASES[name])
    out = subprocess.run([sys.executable, "-c", code, str(csv), str(home)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(name: str, csv: Path, home: Path, repeat: int) -> dict:
    runs = [_run_case(name, csv, home) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    best["peak_mib"] = max(r["peak_mib"] for r in runs)
    return best


def _machine() -> str:
    cores = os.cpu_count()
    try:
        mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{mem_kib / 1024 / 1024:.0f} GiB"
    except (OSError, AttributeError):
        mem = "? GiB"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{platform.machine()}, {cores} cores, {mem}, Python {platform.python_version()}, load average {load:.1f} at start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="Print only; leave bench/RESULTS.md alone.")
    args = parser.parse_args()

    from trader.data import synthetic_candles

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "candles.csv"
        home = Path(tmp) / "home"
        synthetic_candles("SYN/USDT", "1m", bars=args.rows, seed=1).to_csv(csv, index=False, float_format="%.8f")
        size_mib = csv.stat().st_size / 2**20
        baseline = _best("baseline_read_csv", csv, home, args.repeat)
        ours = _best("import_validate_store", csv, home, args.repeat)
        load = _best("load_store", csv, home, args.repeat)
    assert ours["rows"] == baseline["rows"] == load["rows"] == args.rows, (ours, baseline, load)

    def rate(r: dict) -> str:
        return f"{r['rows'] / r['seconds']:,.0f}"

    table = [
        "| case | time (s) | rows/s | peak RSS (MiB) | ratio to baseline |",
        "|---|---:|---:|---:|---:|",
        f"| baseline: `pandas.read_csv` of the CSV | {baseline['seconds']:.2f} | {rate(baseline)} | {baseline['peak_mib']:.0f} | 1.00 |",
        f"| import: detect + parse + validate + store | {ours['seconds']:.2f} | {rate(ours)} | {ours['peak_mib']:.0f} | "
        f"{ours['seconds'] / baseline['seconds']:.2f} |",
        f"| load: `CandleStore.read` of the stored dataset | {load['seconds']:.3f} | {rate(load)} | {load['peak_mib']:.0f} | "
        f"{load['seconds'] / baseline['seconds']:.3f} |",
    ]
    section = "\n".join(
        [
            HEADING,
            "",
            f"{dt.date.today().isoformat()}, {_machine()}; {args.rows:,}-row CSV ({size_mib:.0f} MiB) of synthetic 1m candles; "
            f"best of {args.repeat} runs, each in a fresh process.",
            "Command: `.venv/bin/python bench/bench_data.py`",
            "",
            *table,
            "",
            "The import validates every rule of docs/data.md (timestamp units, grid, OHLC consistency, duplicates, gaps, "
            "spikes) and writes Parquet atomically; the baseline only parses the CSV. Loading the store reads "
            "zstd-compressed Parquet instead of parsing text.",
            "",
        ]
    )
    print(section)
    if not args.no_write:
        replace_section(section)


if __name__ == "__main__":
    main()
