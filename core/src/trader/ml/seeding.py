"""Seeds and thread counts that make CPU training reproducible."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

__all__ = ["seed_everything", "torch_threads", "default_threads", "default_batch_threads"]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; return a torch generator for shuffling seeded the same way.

    With the same seed, data and thread count, CPU training gives identical weights.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def default_threads() -> int:
    """Half the CPU cores (at least 1): torch's OpenMP threads spin while they wait, so using every
    core of a machine that also runs the trading loop, the feeds or other jobs slows training down
    several times (7x measured on the 2-core development machine under load). Inside an executor's
    task, the task's own count (``TRADER_TASK_THREADS``, :mod:`trader.executors`)."""
    task = os.environ.get("TRADER_TASK_THREADS", "")
    if task.isdigit() and int(task) > 0:
        return int(task)
    return max(1, (os.cpu_count() or 2) // 2)


def default_batch_threads() -> int:
    """Batches of the batched forward pass run side by side (backtests): every core this process
    may use, each thread on one torch thread (no OpenMP team, so nothing spins); inside an
    executor's task, the task's own count (``TRADER_TASK_THREADS``)."""
    task = os.environ.get("TRADER_TASK_THREADS", "")
    if task.isdigit() and int(task) > 0:
        return int(task)
    from trader.config_rules import usable_cores

    return usable_cores()


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(threads)`` (unchanged when ``None``), then restore."""
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
