"""The state file on disk: refused when it is not a sound store, created only where none exists.

A damaged or emptied ``state.sqlite`` must never become a new account (a fresh account
would drop a halt, a position and the history), so every check here only reads, and
refuses with ONE line naming the file and what is wrong:

- :func:`inspect_file` before SQLite touches the file: a symbolic link, not a regular
  file, 0 bytes, no SQLite header, shorter than its header says (truncated), or
  ``-wal``/``-shm`` files without the database (the database was removed or moved);
- :func:`validate` on a connection: the ``meta`` table and its namespace and schema
  version, every table of that version, ``PRAGMA quick_check``, and an ``account`` row
  wherever fills, orders, equity or cash flows exist.

:func:`create` builds a new file aside (``.state.sqlite.new-PID``) and links it into
place complete, never over an existing file, so a crash at any instant leaves either no
``state.sqlite`` or a whole one.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from trader.errors import StateError

__all__ = ["inspect_file", "validate", "create", "connect", "SIDE_FILES"]

SIDE_FILES = ("-wal", "-shm")
_MAGIC = b"SQLite format 3\x00"
_HINT = "trader will not replace it with a new account: restore a backup, or move the folder away to start afresh"


def _refuse(path: Path, what: str) -> StateError:
    return StateError(f"state file {path} {what}; {_HINT}")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def inspect_file(path: Path) -> bool:
    """Whether the state file exists (``False``: a new account may be created); raises when it is unusable."""
    sides = {suffix: _lstat(Path(f"{path}{suffix}")) for suffix in SIDE_FILES}
    for suffix, st in sides.items():
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _refuse(path, f"has a {suffix} file that is {_kind(st.st_mode)}, not a regular file")
    st = _lstat(path)
    if st is None:
        found = [f"{path.name}{suffix}" for suffix, side in sides.items() if side is not None]
        if found:
            raise StateError(
                f"state file {path} is missing but {' and '.join(found)} remain (the database was removed or moved "
                f"without them); restore {path.name}, or move the folder away to start afresh"
            )
        return False
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, f"is {_kind(st.st_mode)}, not a regular file")
    if st.st_size == 0:
        raise _refuse(path, "is empty (0 bytes)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror})") from None
    try:
        header = os.read(fd, 100)
    finally:
        os.close(fd)
    if len(header) < 100 or not header.startswith(_MAGIC):
        raise _refuse(path, f"is not a SQLite database ({st.st_size:,} bytes without a SQLite header: overwritten or truncated)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its "version valid for" matches the change counter;
    # with a non-empty write-ahead log (a process killed mid-checkpoint) the file may legitimately be shorter.
    wal = sides["-wal"]
    if pages and header[92:96] == header[24:28] and (wal is None or wal.st_size == 0) and st.st_size < pages * page_size:
        raise _refuse(path, f"is truncated ({st.st_size:,} bytes; its header says {pages * page_size:,})")
    return True


def connect(path: Path, *, readonly: bool = False, timeout: float = 10.0) -> sqlite3.Connection:
    """A connection to an existing file (never creates one).

    ``readonly`` with a write-ahead log present (a killed process's, or a running one's)
    opens ``mode=ro``, so closing it never checkpoints the log into the file; without a
    log a read-write connection is used: a read-only one would leave ``-wal``/``-shm``
    files behind, and it writes nothing here anyway.
    """
    mode = "ro" if readonly and os.path.lexists(f"{path}-wal") else "rw"
    uri = Path(os.path.abspath(path)).as_uri() + f"?mode={mode}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=timeout)
    db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return db


def validate(db: sqlite3.Connection, namespace: str, path: Path, tables: Mapping[int, Iterable[str]], newest: int) -> int:
    """The file's schema version, after checking it is a sound store of ``namespace`` (reads only)."""
    names = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in names:
        raise _refuse(path, "has no meta table (not a trader state file, or damaged)")
    meta = dict(db.execute("SELECT key, value FROM meta"))
    owner = meta.get("namespace")
    if owner is None:
        raise _refuse(path, "records no namespace in its meta table")
    if owner != namespace:
        raise StateError(f"state store {path} belongs to {owner!r}, not {namespace!r}")
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise _refuse(path, f"has no valid schema version ({meta.get('schema_version')!r})") from None
    if version > newest:
        raise StateError(f"state store {path} has schema version {version}; this trader reads {newest} and older")
    if version not in tables:
        raise _refuse(path, f"has an unknown schema version {version}")
    missing = sorted(set(tables[version]) - names)
    if missing:
        raise _refuse(path, f"lacks the table{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    check = db.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise _refuse(path, f"is damaged ({' '.join(check.replace('*** in database main ***', '').split())})")
    if db.execute("SELECT COUNT(*) FROM account").fetchone()[0] == 0:
        for table in ("fills", "orders", "positions", "equity", "cash_flows"):
            if table in names:
                (count,) = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
                if count:
                    raise _refuse(path, f"has {count:,} row{'s' if count > 1 else ''} in {table} but no account row (the account was deleted)")
    return version


def create(path: Path, namespace: str, schema: str, version: int) -> None:
    """Build a new store of ``namespace`` aside and link it to ``path``, unless a file appeared there meanwhile."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    temp = directory / f".{path.name}.new-{os.getpid()}"
    for leftover in (temp, *(Path(f"{temp}{s}") for s in (*SIDE_FILES, "-journal"))):
        if os.path.lexists(leftover):
            os.unlink(leftover)
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(schema)
            db.execute("INSERT INTO meta VALUES ('namespace', ?), ('schema_version', ?)", (namespace, str(version)))
        finally:
            db.close()
        try:
            os.link(temp, path)  # never replaces a file another process created meanwhile
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.replace(temp, path)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
