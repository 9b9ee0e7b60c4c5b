"""A throwaway PostgreSQL server for the tests: ``initdb`` into a temporary folder, one database and one
user with a password, listening on 127.0.0.1 (a free port) and a unix socket in that folder.

PostgreSQL refuses to run as root: as root its binaries run as the ``postgres`` system user (``runuser``),
otherwise as the current user. :func:`postgres_server` stops the server and removes the folder when its
block ends, a failure included.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

__all__ = ["PgServer", "ServerUnavailable", "find_binaries", "postgres_server", "from_url"]


class ServerUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no user to run them as) on this machine: the message says which."""


@dataclass(frozen=True)
class PgServer:
    """Where the tests' database is, and the password its URL holds (to look for leaks)."""

    url: str
    user: str
    password: str
    host: str
    port: int
    database: str

    def with_password(self, password: str) -> str:
        return f"postgresql://{quote(self.user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/{self.database}"

    @property
    def without_password(self) -> str:
        return f"postgresql://{quote(self.user, safe='')}@{self.host}:{self.port}/{self.database}"


def from_url(url: str) -> PgServer:
    """A server given by URL (``TRADER_TEST_POSTGRES_URL``): its user must have a password in the URL."""
    parts = urlsplit(url)
    if not parts.password:
        raise ValueError("TRADER_TEST_POSTGRES_URL must hold user:password@ (the tests look for the password's leaks)")
    return PgServer(url, unquote(parts.username or ""), unquote(parts.password), parts.hostname or "127.0.0.1",
                    parts.port or 5432, parts.path.lstrip("/"))


def find_binaries() -> dict[str, str]:
    """``initdb``, ``pg_ctl`` and ``postgres``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    names = ("initdb", "pg_ctl", "postgres")
    found = {name: shutil.which(name) for name in names}
    if not all(found.values()):
        for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
            if all((Path(folder) / name).exists() for name in names):
                found = {name: str(Path(folder) / name) for name in names}
                break
    missing = [name for name, path in found.items() if not path]
    if missing:
        raise ServerUnavailable(f"no PostgreSQL server binaries ({', '.join(missing)} not found)")
    return {name: str(path) for name, path in found.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def postgres_server(user: str = "tuner", database: str = "studies") -> Iterator[PgServer]:
    """Start a server, yield it, stop it and remove its folder."""
    binaries = find_binaries()
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise ServerUnavailable("running as root without runuser: PostgreSQL refuses to run as root")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            raise ServerUnavailable("running as root and no 'postgres' user to run PostgreSQL as") from None
        as_postgres = ["runuser", "-u", "postgres", "--"]
    # a short path: a unix socket's path is limited to ~100 bytes; /tmp is traversable by the postgres user
    root = Path(tempfile.mkdtemp(prefix="trader-pg-", dir="/tmp"))
    # a password URLs must encode ('@', '/', '%'): its leaks are looked for as given and encoded
    password = f"pw-{secrets.token_hex(8)}@/%x"
    data, log = root / "data", root / "server.log"

    def run(*cmd: str, stdin: str | None = None) -> None:
        done = subprocess.run([*as_postgres, *cmd], input=stdin, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{Path(cmd[0]).name} failed ({done.returncode}): {done.stderr.strip()[-2000:]}\n{tail}")

    started = False
    try:
        if as_postgres:
            shutil.chown(root, "postgres")
        # local (socket) connections trust the OS user; TCP connections need the password
        run(binaries["initdb"], "-D", str(data), "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
            "-E", "UTF8", "--locale=C", "--no-sync")
        escaped = password.replace("'", "''")
        # single-user mode, before the server starts: one statement a line, each its own transaction
        run(binaries["postgres"], "--single", "-D", str(data), "-j", "postgres",
            stdin=f"CREATE ROLE {user} LOGIN PASSWORD '{escaped}';\n\nCREATE DATABASE {database} OWNER {user};\n")
        port = _free_port()
        started = True
        run(binaries["pg_ctl"], "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
            f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c full_page_writes=off", "start")
        url = f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{port}/{database}"
        yield PgServer(url, user, password, "127.0.0.1", port, database)
    finally:
        if started:
            with contextlib.suppress(Exception):
                subprocess.run([*as_postgres, binaries["pg_ctl"], "-D", str(data), "-m", "immediate", "-w", "stop"],
                               capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)
