"""The environment of a process that runs strategy code: the parent's, less anything secret.

A strategy runs in a worker process (``trader run --isolation process``) and plugins are
imported in a probe process (``trader plugins``). Neither needs the exchange's API keys or
any other credential, so :func:`strategy_environment` drops every variable whose name says it
holds one (``TRADER_API_KEY``, ``*_SECRET``, ``*TOKEN*``, ``*PASSWORD*``, ...).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

__all__ = ["strategy_environment", "is_secret_name"]

#: Name fragments of variables that hold credentials (matched case-insensitively).
_SECRET = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|PASSWD|PASSPHRASE|CREDENTIAL|AUTH|SESSION|COOKIE|PRIVATE)", re.I)
#: Variables that match a fragment above but hold no secret and that Python or the OS need.
_HARMLESS: frozenset[str] = frozenset()


def is_secret_name(name: str) -> bool:
    """Whether an environment variable named ``name`` may hold a credential."""
    return name not in _HARMLESS and bool(_SECRET.search(name))


def strategy_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) without the variables that may hold credentials."""
    source = os.environ if base is None else base
    return {name: value for name, value in source.items() if not is_secret_name(name)}
