"""One running process per strategy namespace: an advisory lock on ``strategies/NAME/run.lock``.

The lock is an ``flock`` held for the life of the process: the operating system drops it
when the process ends, however it ends (SIGKILL included), so a crash never leaves a
stale lock behind. The file holds the owner's pid for the error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from trader.errors import LockedError, NotSupportedError

__all__ = ["StrategyLock", "LOCK_FILENAME", "lock_holder"]

LOCK_FILENAME = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


class StrategyLock:
    """``with StrategyLock(directory, name):`` or ``acquire()`` / ``release()``."""

    def __init__(self, directory: str | os.PathLike, name: str) -> None:
        self.path = Path(directory) / LOCK_FILENAME
        self.name = name
        self._fd: int | None = None

    def acquire(self) -> StrategyLock:
        if fcntl is None:  # pragma: no cover
            raise NotSupportedError("running strategies needs a POSIX system (fcntl locks)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LockedError(
                f"strategy {self.name!r} is already running (pid {_read_pid(self.path)}; lock {self.path}); "
                "stop it first or run another strategy"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> StrategyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_holder(directory: str | os.PathLike) -> str | None:
    """The pid holding the lock of the strategy in ``directory``, or ``None`` when it is not running."""
    path = Path(directory) / LOCK_FILENAME
    if fcntl is None or not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
