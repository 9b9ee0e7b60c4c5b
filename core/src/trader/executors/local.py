"""The local executor: a process pool on this machine (``spawn``), or this process for one worker."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable
from typing import Any

from trader.executors.tasks import task_threads

__all__ = ["LocalExecutor"]

# set in each worker process by the pool's initializer
_shared: Any = None
_threads = 1


def _init_worker(shared: Any, threads: int) -> None:
    global _shared, _threads
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the orchestrator's to handle: it stops the pool
    _shared, _threads = shared, threads


def _call(fn: Callable[[Any, Any], Any], task: Any) -> Any:
    with task_threads(_threads):
        return fn(task, _shared)


class LocalExecutor:
    """Up to ``workers`` processes (default: the usable cores), each task with ``threads`` torch threads."""

    name = "local"

    def __init__(self, workers: int | None = None, *, threads: int = 1) -> None:
        from trader.executors import usable_cores

        self.workers = workers or usable_cores()
        self.threads = threads
        self._pool: Any = None
        self._pool_shared: Any = None
        self._pool_size = 0

    def describe(self) -> str:
        if self.workers == 1:
            return "local executor, in this process"
        return f"local executor, up to {self.workers} worker processes"

    def map(self, fn: Callable[[Any, Any], Any], tasks: Iterable[Any], shared: Any = None, *,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        tasks = list(tasks)
        if self.workers == 1 or len(tasks) <= 1:
            return self._map_here(fn, tasks, shared, on_result)
        return self._map_pool(fn, tasks, shared, on_result)

    def _map_here(self, fn: Callable[[Any, Any], Any], tasks: list[Any], shared: Any,
                  on_result: Callable[[int, Any], None] | None) -> list[Any]:
        results = []
        for index, task in enumerate(tasks):
            with task_threads(self.threads):
                result = fn(task, shared)
            results.append(result)
            if on_result:
                on_result(index, result)
        return results

    def _pool_for(self, shared: Any, size: int) -> Any:
        """The pool for ``shared``: the current one when it was started with this object and is big enough."""
        if self._pool is not None and (self._pool_shared is not shared or self._pool_size < size):
            self._shutdown()
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=size, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(shared, self.threads))
            self._pool_shared, self._pool_size = shared, size
        return self._pool

    def _map_pool(self, fn: Callable[[Any, Any], Any], tasks: list[Any], shared: Any,
                  on_result: Callable[[int, Any], None] | None) -> list[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        from trader.executors import ExecutorError

        pool = self._pool_for(shared, min(self.workers, len(tasks)))
        futures = {pool.submit(_call, fn, task): index for index, task in enumerate(tasks)}
        results: list[Any] = [None] * len(tasks)
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=futures.__getitem__):
                    index = futures[future]
                    try:
                        results[index] = future.result()
                    except BrokenProcessPool:
                        unfinished = len(tasks) - sum(f.done() and f.exception() is None for f in futures)
                        raise ExecutorError(
                            f"local executor: a worker process died with {unfinished} of {len(tasks)} tasks unfinished "
                            "(killed, out of memory, or a crash in native code)"
                        ) from None
                    if on_result:
                        on_result(index, results[index])
        except BaseException:
            self._shutdown(kill=True)  # a failed task, a dead worker or Ctrl-C: nothing else runs
            raise
        return results

    def _shutdown(self, kill: bool = False) -> None:
        pool, self._pool, self._pool_shared, self._pool_size = self._pool, None, None, 0
        if pool is None:
            return
        if kill:
            # ProcessPoolExecutor has no public way to stop a running task before Python 3.14
            for process in list((getattr(pool, "_processes", None) or {}).values()):
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._shutdown()

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
