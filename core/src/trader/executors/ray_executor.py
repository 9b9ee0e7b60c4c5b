"""The Ray executor: tasks on a Ray cluster, or on a local Ray started for the command."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from trader.executors.tasks import task_threads

__all__ = ["RayExecutor"]

# in each Ray worker process: the shared inputs it already read, by object id (the latest only)
_shared_cache: dict[str, Any] = {}


def _ray_call(fn: Callable[[Any, Any], Any], task: Any, boxed: list[Any], threads: int) -> Any:
    """Run one task in a Ray worker. ``boxed`` holds the ObjectRef of the shared inputs inside a
    list, so Ray hands over the reference and this process reads the object once, not per task."""
    import ray

    shared = None
    if boxed:
        key = boxed[0].hex()
        if key not in _shared_cache:
            _shared_cache.clear()
            _shared_cache[key] = ray.get(boxed[0])
        shared = _shared_cache[key]
    with task_threads(threads):
        return fn(task, shared)


def _import_ray() -> Any:
    from trader.errors import ConfigError

    try:
        import ray
    except ImportError:
        from trader.executors import RAY_INSTALL

        raise ConfigError(f"--executor ray needs Ray, which is not installed: {RAY_INSTALL}") from None
    return ray


#: Seconds to wait for a TCP connection to a cluster's address before saying that nothing answers there.
CONNECT_TIMEOUT_S = 5.0


def _check_reachable(address: str) -> None:
    """One :class:`ExecutorError` line when nothing accepts a connection at ``host:port`` (``ray://host:port``
    too): Ray itself keeps retrying such an address for minutes. ``auto``, ``local`` and an address without a
    port are left to Ray. A port that accepts the connection but is not a Ray cluster is not caught here."""
    import socket

    from trader.executors import ExecutorError

    target = address.removeprefix("ray://")
    host, colon, port = target.rpartition(":")
    if not colon or not port.isdigit() or not host:
        return
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__).lower()
        raise ExecutorError(f"ray executor: nothing answers at {address} ({why}): start the cluster "
                            "(`ray start --head`) or fix --ray-address / RAY_ADDRESS") from None


class RayExecutor:
    """Tasks of ``threads`` CPUs each on Ray. ``address`` (else ``RAY_ADDRESS``) names a running cluster;
    without one a local Ray with ``workers`` CPUs (default: the usable cores) is started on first use
    and shut down by :meth:`close`. On a cluster, ``workers`` caps the tasks in flight."""

    name = "ray"

    def __init__(self, address: str | None = None, *, workers: int | None = None, threads: int = 1) -> None:
        from trader.executors import usable_cores

        self.ray = _import_ray()
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.threads = threads
        self._cap = workers
        self.workers = workers or (usable_cores() if self.address is None else 0)
        self._started = False
        self._remote: Any = None
        self._shared: tuple[Any, list[Any]] | None = None  # (the object, its boxed ObjectRef): put once

    def describe(self) -> str:
        if self.address:
            return f"ray executor, cluster at {self.address}"
        return f"ray executor, local Ray with {self.workers} CPUs"

    def _ensure(self) -> None:
        if self._remote is not None:
            return
        ray = self.ray
        from trader.executors import ExecutorError

        if not ray.is_initialized():
            # no usage report leaves the machine for a Ray this command starts; a user's own choice stands
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if self.address:
                _check_reachable(self.address)
            try:
                if self.address:
                    ray.init(address=self.address, log_to_driver=False, configure_logging=False)
                else:
                    ray.init(address="local", num_cpus=self.workers, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
            except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
                where = f"the cluster at {self.address}" if self.address else "a local Ray"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise ExecutorError(f"ray executor: could not start or reach {where}: {first}") from None
            self._started = True
        if not self.workers:
            self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=self.threads, max_retries=0)(_ray_call)

    def map(self, fn: Callable[[Any, Any], Any], tasks: Iterable[Any], shared: Any = None, *,
            on_result: Callable[[int, Any], None] | None = None) -> list[Any]:
        tasks = list(tasks)
        if not tasks:
            return []
        self._ensure()
        ray = self.ray
        if shared is None:
            boxed: list[Any] = []
        elif self._shared is not None and self._shared[0] is shared:
            boxed = self._shared[1]  # the next map over the same inputs (a study's next trials) reuses them
        else:
            boxed = [ray.put(shared)]
            self._shared = (shared, boxed)
        cap = self._cap or len(tasks)
        results: list[Any] = [None] * len(tasks)
        running: dict[Any, int] = {}
        queue = iter(enumerate(tasks))
        try:
            for index, task in queue:
                running[self._remote.remote(fn, task, boxed, self.threads)] = index
                if len(running) >= cap:
                    break
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                index = running.pop(ready[0])
                results[index] = self._result(ready[0], index, len(tasks))
                if on_result:
                    on_result(index, results[index])
                for index, task in queue:
                    running[self._remote.remote(fn, task, boxed, self.threads)] = index
                    break
        except BaseException:
            for ref in running:
                ray.cancel(ref, force=True)
            raise
        return results

    def _result(self, ref: Any, index: int, total: int) -> Any:
        from trader.executors import ExecutorError

        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, BaseException):
                raise cause from None  # the task's own exception, as the local executor raises it
            raise
        except exceptions.RayError as exc:
            raise ExecutorError(f"ray executor: task {index + 1} of {total} was lost: {type(exc).__name__}") from None

    def close(self) -> None:
        self._remote, self._shared = None, None
        if self._started:
            self._started = False
            self.ray.shutdown()

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
