"""Task functions for the executor tests: module-level, importable by worker processes and Ray workers."""

from __future__ import annotations

import os
import time

from trader.errors import DataError

#: how many times this process unpickled a Counted (the shared inputs)
UNPICKLED = 0


def _load_counted(payload: bytes) -> Counted:
    global UNPICKLED
    UNPICKLED += 1
    return Counted(payload)


class Counted:
    """Shared inputs that count how often a process receives them."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    def __reduce__(self):
        return (_load_counted, (self.payload,))


def echo(task: dict, shared: Counted) -> dict:
    time.sleep(task.get("sleep", 0.0))
    marks = task.get("marks")  # a folder where the other tasks leave a file once done
    if marks is not None and task.get("wait_for"):
        deadline = time.monotonic() + 60
        while len(os.listdir(marks)) < task["wait_for"] and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.0)  # their results reach the caller first
    elif marks is not None:
        with open(os.path.join(marks, str(task["i"])), "w"):
            pass
    return {"i": task["i"], "pid": os.getpid(), "unpickled": UNPICKLED, "shared_bytes": len(shared.payload),
            "shared_id": id(shared)}


def threads(task: int, shared: object) -> dict:
    import torch

    from trader.ml.seeding import default_threads

    return {"env": os.environ.get("TRADER_TASK_THREADS"), "omp": os.environ.get("OMP_NUM_THREADS"),
            "default_threads": default_threads(), "torch": torch.get_num_threads()}


def fail(task: int, shared: object) -> None:
    if task == 1:
        raise DataError(f"market {task} has no candles")
    time.sleep(0.2)


def die(task: int, shared: object) -> None:
    if task == 1:
        os._exit(3)
    time.sleep(0.2)
