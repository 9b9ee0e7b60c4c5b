"""Benchmark: TimeSeriesDataset over 1,000,000 rows x 86 features with window 60.

Measures the process's peak resident memory (Linux VmHWM, reset before the dataset is built)
while building the dataset and drawing batches, against (a) the float32 feature array itself and
(b) materialised windows (rows x 60 x 86 float32, about 20 GB: computed, and checked by actually
materialising the windows of a 20,000-row slice in the same run). Also batch throughput of the
DataLoader path and of the gather path.

    .venv/bin/python bench/bench_dataset.py [--rows 1000000] [--window 60] [--batches 200] [--no-write]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchlib import load_average, pin_one_core, write_section
from benchlib import pinned_header as header


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=86)
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    pin_one_core()
    start_load = load_average()

    import numpy as np
    import torch

    from trader.features import TimeSeriesDataset, windows

    torch.set_num_threads(1)
    n, f, w = args.rows, args.features, args.window
    rng = np.random.default_rng(0)
    labels = (rng.random(n) > 0.5).astype(np.float32)
    labels[-1] = np.nan

    rss_before = status_kib("VmRSS")
    features = rng.standard_normal((n, f), dtype=np.float32)
    features[:50] = np.nan  # warm-up rows
    array_bytes = features.nbytes
    if not reset_peak():
        raise SystemExit("cannot reset the peak RSS (/proc/self/clear_refs); run on Linux")

    t0 = time.perf_counter()
    ds = TimeSeriesDataset(features, labels, window=w)
    build_s = time.perf_counter() - t0
    assert ds.features is features  # no copy

    loader = ds.loader(batch_size=args.batch_size, shuffle=True, seed=0)
    t0 = time.perf_counter()
    for i, _batch in enumerate(loader):
        if i + 1 >= args.batches:
            break
    loader_s = (time.perf_counter() - t0) / args.batches
    t0 = time.perf_counter()
    for i, _batch in enumerate(ds.batches(args.batch_size, shuffle=True, seed=0)):
        if i + 1 >= args.batches:
            break
    gather_s = (time.perf_counter() - t0) / args.batches
    view = ds.window_view()
    checksum = float(view[::10_000, -1, 0].sum())  # touch the view: no copy
    peak_kib = status_kib("VmHWM")
    used = peak_kib * 1024 - rss_before * 1024
    materialised = (n - w + 1) * w * f * 4

    # materialise a 20,000-row slice for real, to check the rows x W x F size model
    small = 20_000
    rss0 = status_kib("VmRSS")
    reset_peak()
    copy = np.ascontiguousarray(windows(features[:small], w))
    small_peak = status_kib("VmHWM") * 1024 - rss0 * 1024
    del copy

    print(f"{n:,} rows x {f} features float32 = {array_bytes / 2**20:.0f} MiB; window {w}; {len(ds):,} samples")
    print(f"peak RSS above the pre-array baseline: {used / 2**20:.0f} MiB = {used / array_bytes:.2f}x the array")
    print(f"materialised windows would be {materialised / 2**30:.1f} GiB = {materialised / used:.0f}x our peak "
          f"(20,000-row slice materialised: {small_peak / 2**20:.0f} MiB, model says "
          f"{(small - w + 1) * w * f * 4 / 2**20:.0f} MiB)")
    print(f"build {build_s:.2f} s; DataLoader {loader_s * 1e3:.1f} ms/batch; gather path {gather_s * 1e3:.1f} ms/batch "
          f"(batch {args.batch_size}); checksum {checksum:.3f}")
    if args.no_write:
        return
    body = header("python bench/bench_dataset.py" + (f" --rows {n}" if n != 1_000_000 else ""), start_load) + f"""
| what | {n:,} rows x {f} features, window {w} |
|---|---|
| feature array (float32) | {array_bytes / 2**20:.0f} MiB |
| peak RSS while building the dataset and drawing {args.batches} shuffled batches of {args.batch_size} (both paths), incl. the array | {used / 2**20:.0f} MiB = **{used / array_bytes:.2f}x the array** (aim: <= 1.5x) |
| materialised windows (rows x {w} x {f} float32) | {materialised / 2**30:.1f} GiB = **{materialised / used:.0f}x our peak** (20,000-row slice really materialised: {small_peak / 2**20:.0f} MiB vs {(small - w + 1) * w * f * 4 / 2**20:.0f} MiB modelled) |
| building the dataset (valid-window index) | {build_s:.2f} s |
| DataLoader (shuffled, default collate) | {loader_s * 1e3:.1f} ms per batch of {args.batch_size} |
| `TimeSeriesDataset.batches` (one gather per batch) | {gather_s * 1e3:.1f} ms per batch of {args.batch_size} ({loader_s / gather_s:.1f}x faster) |


"""
    write_section("Features: windowed dataset memory (issue 4)", body)


if __name__ == "__main__":
    main()
