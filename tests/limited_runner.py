"""Run the real `trader` console script under an address-space limit (``RLIMIT_AS``), timing it.

A refusal that happens before a large allocation passes under the limit; one that happens after
fails with a MemoryError (or is killed). A crash by a signal shows as a negative return code.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import time
from pathlib import Path

from cli_runner import TRADER_EXE

__all__ = ["GiB", "run_limited", "tree_digest"]

GiB = 1 << 30


def run_limited(*args: str, home: Path, limit: int = 2 * GiB, env: dict[str, str] | None = None,
                timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], float]:
    """``trader ARGS`` with ``TRADER_HOME=home`` under ``RLIMIT_AS=limit``; (completed process, wall seconds)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADER_")}
    full_env.update({"TRADER_HOME": str(home), "OMP_NUM_THREADS": "1", **(env or {})})

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    started = time.perf_counter()
    result = subprocess.run([str(TRADER_EXE), *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                            preexec_fn=limit_memory)
    return result, time.perf_counter() - started


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 (or link target) of everything under ``root``: equal before and after = untouched."""
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[rel] = "dir"
    return found
