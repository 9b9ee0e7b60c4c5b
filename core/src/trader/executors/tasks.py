"""What a task carries across a process boundary, and the thread count it runs with."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["LocalOnly", "PluginSource", "task_threads", "THREADS_ENV"]

#: The torch threads of the running task, read by :func:`trader.ml.seeding.default_threads`.
THREADS_ENV = "TRADER_TASK_THREADS"
_THREAD_VARS = (THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class LocalOnly:
    """A value used only in the process that made it (a plugin manager, a loaded model):
    pickled for a worker process or a Ray node, it arrives as ``None`` and the task rebuilds it."""

    __slots__ = ("value",)

    def __init__(self, value: Any = None) -> None:
        self.value = value

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (LocalOnly, (None,))


class PluginSource:
    """How a task gets its plugin manager: the orchestrator's own in this process, else a manager
    built in the worker (once per process) that imports these strategies and no other."""

    def __init__(self, strategies: tuple[str, ...], probe_cache: Path | None = None, manager: Any = None) -> None:
        self.strategies = tuple(sorted(set(strategies)))
        self.probe_cache = probe_cache
        self.local = LocalOnly(manager)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (PluginSource, (self.strategies, self.probe_cache))

    def manager(self) -> Any:
        if self.local.value is None:
            key = (self.strategies, str(self.probe_cache or ""))
            if key not in _MANAGERS:
                from trader.plugins import TraderPluginManager

                _MANAGERS[key] = TraderPluginManager(strategies=self.strategies, probe_cache=self.probe_cache)
            self.local.value = _MANAGERS[key]
        return self.local.value


_MANAGERS: dict[tuple[tuple[str, ...], str], Any] = {}


@contextmanager
def task_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` torch and OpenMP threads (environment and, once torch is
    imported, ``torch.set_num_threads``); restore both after."""
    before = {name: os.environ.get(name) for name in _THREAD_VARS}
    os.environ.update({name: str(threads) for name in _THREAD_VARS})
    torch = sys.modules.get("torch")
    torch_before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if torch is not None and torch_before is not None:
            torch.set_num_threads(torch_before)
