"""Helpers every benchmark script shares: pinning, memory, machine facts and bench/RESULTS.md sections.

Scripts run as ``python bench/NAME.py``, so this folder is on ``sys.path`` and they
``from benchlib import ...``.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import statistics
import time
from pathlib import Path

__all__ = [
    "RESULTS", "pin_one_core", "peak_rss_mib", "machine", "load_average", "timed", "summary",
    "header", "pinned_header", "write_section", "replace_section", "publish",
]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def pin_one_core() -> int | None:
    """Run on one CPU (the last one available); returns it, or None where unsupported."""
    try:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """CPU model, cores, memory and Python version, e.g. ``AMD EPYC, 2 cores, 24 GiB RAM, Python 3.11.7``."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem = f", {int(Path('/proc/meminfo').read_text().split()[1]) / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        mem = ""
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}"


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def timed(fn, repeats: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds) of each call."""
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus


def summary(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    return f"median {statistics.median(values) * scale:.3f} {unit}, best {min(values) * scale:.3f} {unit}"


def header(command: str, cpu: int | None) -> str:
    """Date, machine, pinned CPU and load at the start of a run."""
    pinned = f"pinned to CPU {cpu}" if cpu is not None else "not pinned"
    return (f"Measured {dt.date.today().isoformat()} on {machine()}; one core ({pinned}). Load average at start "
            f"{load_average()}: the machine is shared with other jobs, so wall times are noisy; ratios measured in "
            f"the same run are the figures to read.\n\nCommand: `{command}`\n")


def pinned_header(command: str, start_load: str) -> str:
    """Date, machine and the load at the start and end of a run."""
    return (f"Measured {dt.date.today().isoformat()} on {machine()}; one core pinned. "
            f"Load average at start {start_load}, at the end {load_average()} (the machine is shared with other "
            f"jobs: wall times are noisy, CPU times and best-of-N less so).\n\nCommand: `{command}`\n")


def replace_section(section: str) -> None:
    """Replace (or append) the section whose first line is ``section``'s ``## heading``; others stay."""
    heading = section.splitlines()[0]
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def write_section(heading: str, body: str) -> None:
    """Replace (or append) the ``## heading`` section of bench/RESULTS.md."""
    replace_section(f"## {heading}\n\n{body.strip()}\n")


def publish(heading: str, body: str, write: bool = True) -> None:
    """Print ``body`` and, when ``write``, make it the ``## heading`` section of bench/RESULTS.md."""
    print(body)
    if write:
        write_section(heading, body)
