"""Executors: independent tasks (walk-forward folds, compared markets, tuning trials) run side by side.

The contract callers write against::

    get_executor(name: str = "local", workers: int | None = None, address: str | None = None) -> Executor
    Executor.map(fn, tasks, shared=None, *, on_result=None) -> list

``map`` calls ``fn(task, shared)`` for every task and returns the results **in task order**,
whatever order they finish in; ``on_result(index, result)`` is called as each one finishes
(for progress bars, or to tell a study). The first task that raises stops the map: the tasks
not started are cancelled and the exception is raised again here, a
:class:`~trader.errors.TraderError` as it is (one line in the CLI).

- ``local`` (:class:`LocalExecutor`): a ``concurrent.futures`` process pool (``spawn``), up to
  ``workers`` processes (default: the usable cores). ``workers=1``, or a single task, runs in
  this process. ``shared`` goes to each worker once, through the pool's initializer; the pool
  is kept for the next ``map`` with the same ``shared`` object.
- ``ray`` (:class:`RayExecutor`): an existing cluster (``address``, else ``RAY_ADDRESS``), else
  a local Ray started for the command (``num_cpus`` = ``workers`` or the usable cores, no
  dashboard, usage stats off) and shut down by :meth:`close`. ``shared`` is put in the object
  store once (again only for a different object); each worker process reads it once.

What crosses the boundary is pickled, so ``fn`` must be a module-level function of an importable
module (not ``__main__``), and tasks, ``shared`` and results plain data: no locks, file handles,
open stores or plugin managers (:class:`LocalOnly` keeps such a value in this process;
:class:`PluginSource` rebuilds the plugin manager in a worker). No model objects either: a task
that trains returns what it measured (or the weights as safetensors bytes with their manifest).

Every task runs with ``threads`` torch/OpenMP threads (default 1), set explicitly in the task
(``torch.set_num_threads``, ``OMP_NUM_THREADS`` and ``TRADER_TASK_THREADS``, which
:func:`trader.ml.seeding.default_threads` reads) rather than left to Ray, which sets
``OMP_NUM_THREADS`` from a task's CPUs: the same thread count everywhere keeps results the
same whatever the executor and the worker count.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol, runtime_checkable

from trader.errors import ConfigError, TraderError
from trader.executors.tasks import LocalOnly, PluginSource, task_threads

__all__ = [
    "EXECUTORS",
    "Executor",
    "ExecutorError",
    "LocalOnly",
    "PluginSource",
    "get_executor",
    "task_threads",
    "usable_cores",
]

EXECUTORS = ("local", "ray")
RAY_INSTALL = "pip install 'trader-core[distributed]'"


class ExecutorError(TraderError):
    """A worker died, or a cluster could not be reached."""


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn(task, shared)`` for each task; see the module docstring."""

    name: str
    workers: int

    def map(self, fn: Callable[[Any, Any], Any], tasks: Iterable[Any], shared: Any = None, *,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...

    def __enter__(self) -> Executor: ...

    def __exit__(self, *exc: Any) -> None: ...


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def get_executor(name: str = "local", workers: int | None = None, address: str | None = None, *,
                 threads: int = 1) -> Executor:
    """The executor ``name`` (``local`` or ``ray``); ``ConfigError`` (one line, exit 2) for an unknown
    name, a bad worker count, ``address`` without Ray, or Ray not installed."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigError(f"--workers must be a positive integer, got {workers!r}")
    if name == "local":
        if address:
            raise ConfigError("--ray-address needs --executor ray")
        from trader.executors.local import LocalExecutor

        return LocalExecutor(workers, threads=threads)
    if name == "ray":
        from trader.executors.ray_executor import RayExecutor

        return RayExecutor(address, workers=workers, threads=threads)
    raise ConfigError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
