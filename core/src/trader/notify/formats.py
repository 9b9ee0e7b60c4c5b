"""The JSON body each receiver format expects for one alert.

- ``json``: every field of the alert, plus ``text``, ``silent`` and ``suppressed`` (alerts
  not sent since the last one, by the rate limit or a full queue).
- ``telegram``: the Bot API's ``sendMessage`` (plain text, no parse mode, so a message
  cannot inject markup); ``silent`` sets ``disable_notification``.
- ``slack``: an incoming webhook's ``text``, with ``&``, ``<`` and ``>`` escaped so a
  message cannot mention ``<!channel>``; Slack has no silent messages.
- ``discord``: a webhook's ``content`` with mentions disabled; ``silent`` sets the
  ``SUPPRESS_NOTIFICATIONS`` flag.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from trader.notify.alerts import Alert

__all__ = ["payload"]

_DISCORD_SUPPRESS_NOTIFICATIONS = 1 << 12


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(fmt: str, alert: Alert, *, silent: bool, suppressed: int = 0, chat_id: str | None = None) -> bytes:
    """The UTF-8 JSON body for ``alert`` in format ``fmt``."""
    text = alert.text()
    if suppressed:
        text += f" (+{suppressed} earlier alert{'s' if suppressed > 1 else ''} not sent: rate limit or full queue)"
    body: dict[str, Any]
    if fmt == "telegram":
        body = {"chat_id": chat_id, "text": text, "disable_notification": silent, "disable_web_page_preview": True}
    elif fmt == "slack":
        body = {"text": _slack_escape(text)}
    elif fmt == "discord":
        body = {"content": text[:2000], "allowed_mentions": {"parse": []}}
        if silent:
            body["flags"] = _DISCORD_SUPPRESS_NOTIFICATIONS
    else:
        body = {
            "kind": alert.kind,
            "strategy": alert.strategy,
            "symbol": alert.symbol,
            "code": alert.code,
            "message": alert.message,
            "status": alert.status,
            "timestamp": alert.timestamp,
            "time": datetime.fromtimestamp(alert.timestamp / 1000, tz=UTC).isoformat(),
            "text": text,
            "silent": silent,
            "suppressed": suppressed,
        }
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
