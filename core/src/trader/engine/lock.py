"""One running process per strategy namespace: an advisory lock on ``strategies/NAME/run.lock``.

The lock is an ``flock`` held for the life of the process: the operating system drops it
when the process ends, however it ends (SIGKILL included), so a crash never leaves a
stale lock behind. The file holds the owner's pid for the error message.

The lock file is opened without following a symbolic link (``O_NOFOLLOW``) and must be
a regular file with one link, so writing the pid never truncates anything but our own
lock file (a link planted to another file is refused with one line).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from trader.errors import LockedError, NotSupportedError, StateError

__all__ = ["StrategyLock", "LOCK_FILENAME", "lock_holder"]

LOCK_FILENAME = "run.lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
    except OSError:
        return "?"


def _open_lock(path: Path, flags: int) -> int:
    """An fd on the lock file, refusing a symbolic link, anything but a regular file, and a hard link."""
    problem = None
    try:
        fd = os.open(path, flags | _NOFOLLOW, 0o644)
    except OSError as exc:
        if os.path.islink(path):
            problem = "is a symbolic link"
        else:
            raise StateError(f"cannot open the lock file {path}: {exc.strerror}") from None
    else:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            problem = "is not a regular file"
        elif st.st_nlink != 1:
            problem = f"has {st.st_nlink} hard links"
        if problem is None:
            return fd
        os.close(fd)
    raise StateError(f"lock file {path} {problem}; refusing to use it (remove it; trader creates its own)")


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
        fd = _open_lock(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = _read_pid(fd)
            os.close(fd)
            raise LockedError(
                f"strategy {self.name!r} is already running (pid {pid}; lock {self.path}); "
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
    try:
        fd = _open_lock(path, os.O_RDONLY)
    except StateError:
        return None  # not a lock trader made: nobody holds it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
