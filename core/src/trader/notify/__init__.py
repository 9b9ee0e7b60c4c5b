"""Alerts from ``trader run`` to webhooks: generic JSON, Telegram bot, Slack and Discord (``[notify]``).

See ``docs/engine.md`` (Alerts). Importing this package opens no connection and starts no
thread; the sender (and ``urllib``) is imported on first use, so checking ``[notify]`` when
any command loads its config stays cheap.
"""

from __future__ import annotations

from typing import Any

from trader.notify.alerts import Alert, alerts_from_record
from trader.notify.settings import FORMATS, KINDS, MODES, NotifySettings, Target, check_notify, resolve_targets

__all__ = [
    "Alert",
    "FORMATS",
    "KINDS",
    "MODES",
    "Notifier",
    "NotifySettings",
    "Target",
    "alerts_from_record",
    "check_notify",
    "redact",
    "resolve_targets",
]


def __getattr__(name: str) -> Any:
    if name in ("Notifier", "redact"):
        from trader.notify import sender

        return getattr(sender, name)
    raise AttributeError(f"module 'trader.notify' has no attribute {name!r}")
