"""Child processes that never outlive their parent.

``trader run --plugin a --plugin b`` starts one ``trader run`` process per strategy, and each
``trader run`` starts its strategy's worker. If the parent is killed outright (``kill -9``,
the OOM killer), nobody is left to stop them: so each child asks the kernel for a signal
when its parent dies (Linux's ``PR_SET_PDEATHSIG``). A strategy's ``trader run`` gets
``SIGTERM`` (it finishes the current candle, commits and exits); a worker, which holds no
state, gets ``SIGKILL``. Elsewhere, a child notices at its next read from a closed pipe.
"""

from __future__ import annotations

import os
import signal
import sys

__all__ = ["die_with_parent", "SUPERVISOR_ENV"]

#: Set by ``trader run`` for the strategy processes it starts: the pid they must not outlive.
SUPERVISOR_ENV = "TRADER_SUPERVISOR_PID"


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies; exit now if it already has."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(sig), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
