"""Record every file a block of code creates, changes or deletes.

Two witnesses, because neither sees everything:

- a :func:`sys.addaudithook` hook sees every write that goes through Python
  (``open`` for writing, ``os.open`` with write flags, renames, deletes,
  ``mkdir``, ``sqlite3.connect``, ``shutil.copyfile``) anywhere on disk;
- a before/after snapshot of a few folders (the sandbox: ``TRADER_HOME``, the
  working folder, ``HOME`` and the temporary folder) sees files written by
  native code (safetensors, torch, pyarrow) that the audit hook cannot.

Writes of byte-code caches (anything inside a ``__pycache__`` folder) are
ignored: they are Python's, not the plugin's; so are devices (``/dev/null``). The audit hook is installed once
per process (Python cannot remove one) and does nothing while no watch is active.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

__all__ = ["FileWrite", "WriteLog", "watch_writes"]

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
#: audit event -> index of the path argument that is written
_PATH_EVENTS = {
    "os.mkdir": 0,
    "os.remove": 0,
    "os.rmdir": 0,
    "os.truncate": 0,
    "shutil.rmtree": 0,
    "sqlite3.connect": 0,
    "os.rename": 1,
    "os.symlink": 1,
    "os.link": 1,
    "shutil.copyfile": 1,
}

_lock = threading.Lock()
_active: list[WriteLog] = []
_hook_installed = False


@attrs.frozen
class FileWrite:
    """One write: ``how`` is the audit event (``open``, ``os.rename``, ...) or ``snapshot``."""

    path: Path
    how: str

    def __str__(self) -> str:
        return f"{self.path} ({self.how})"


@attrs.define
class WriteLog:
    """What a watched block wrote; filled in while the block runs and when it ends."""

    writes: list[FileWrite] = attrs.field(factory=list)

    @property
    def paths(self) -> list[Path]:
        return sorted({w.path for w in self.writes})

    def outside(self, allowed: Iterable[Path], *, transient: Iterable[Path] = ()) -> list[FileWrite]:
        """Writes that do not lie under any of ``allowed``, one per path.

        Creating a folder on the way to an allowed folder is not counted.

        A path under one of ``transient`` (e.g. the temporary folder) only counts
        if a file is still there: a temporary file removed again, or a folder
        (such as a library's cache folder), is fine.
        """
        roots = [_real(p) for p in allowed]
        temporary = [_real(p) for p in transient]
        found: dict[Path, FileWrite] = {}
        for write in self.writes:
            if any(_is_within(write.path, root) for root in roots):
                continue
            if write.how == "os.mkdir" and any(_is_within(root, write.path) for root in roots):
                continue  # a folder on the way to an allowed one
            if write.how == "open" and os.path.isdir(write.path):
                continue  # O_TMPFILE: an anonymous file that vanishes unless linked (which is recorded)
            if any(_is_within(write.path, root) for root in temporary) and (
                not os.path.lexists(write.path) or os.path.isdir(write.path)
            ):
                continue  # scratch space: folders (library caches) and files removed again are fine
            found.setdefault(write.path, write)
        return list(found.values())


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _is_within(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _ignored(path: Path) -> bool:
    # devices (/dev/null for a child's output) hold nothing a plugin could leave behind
    return "__pycache__" in path.parts or path.parts[:2] == ("/", "dev")


def _uri_path(uri: str) -> str:
    """The file a SQLite ``file:`` URI names (``file:///a/b.sqlite?mode=rw`` -> ``/a/b.sqlite``)."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    return unquote(parts.path or parts.netloc)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _active:
        return
    if event == "open":
        path, mode, flags = args
        if isinstance(path, int) or path is None:
            return
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE_FLAGS)
        if not writes:
            return
    elif event in _PATH_EVENTS:
        index = _PATH_EVENTS[event]
        if len(args) <= index:
            return
        path = args[index]
        if event == "sqlite3.connect" and (path in (":memory:", "", b":memory:") or str(path).startswith("file::memory:")):
            return
        if event == "sqlite3.connect" and isinstance(path, str) and path.startswith("file:"):
            path = _uri_path(path)
        if isinstance(path, int) or path is None:
            return
    else:
        return
    try:
        real = _real(os.fsdecode(path))
    except (TypeError, ValueError):
        return
    if _ignored(real):
        return
    for log in list(_active):
        log.writes.append(FileWrite(real, event))


def _install_hook() -> None:
    global _hook_installed
    with _lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


def _snapshot(roots: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    state: dict[Path, tuple[int, int]] = {}
    for root in roots:
        if not root.is_dir():
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except OSError:
                    continue
                state[_real(path)] = (st.st_mtime_ns, st.st_size)
    return state


@contextmanager
def watch_writes(snapshot_roots: Iterable[str | os.PathLike[str]] = ()) -> Iterator[WriteLog]:
    """Record writes made inside the ``with`` block.

    Every Python-level write anywhere is recorded as it happens; files under
    ``snapshot_roots`` that were created, changed or deleted by any means are
    added when the block ends.
    """
    roots = [_real(p) for p in snapshot_roots]
    _install_hook()
    log = WriteLog()
    before = _snapshot(roots)
    _active.append(log)
    try:
        yield log
    finally:
        _active.remove(log)
        after = _snapshot(roots)
        changed = [p for p, stamp in after.items() if before.get(p) != stamp]
        deleted = [p for p in before if p not in after]
        seen = {w.path for w in log.writes}
        for path in sorted(changed + deleted):
            if path not in seen:
                log.writes.append(FileWrite(path, "snapshot"))
