"""Logging set-up: plain text for people, JSON lines (python-json-logger) for machines."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging", "SECRET_MASK"]

SECRET_MASK = "***"


class _RedactSecrets(logging.Filter):
    """Replace the values of API credentials from the environment wherever they would be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        import os

        from trader.config import SECRET_ENV

        secrets = [os.environ[name] for name in SECRET_ENV if os.environ.get(name)]
        if secrets:
            message = record.getMessage()
            for secret in secrets:
                message = message.replace(secret, SECRET_MASK)
            record.msg, record.args = message, None
        return True


def configure_logging(fmt: str = "text", level: int | str = logging.INFO, stream=None) -> None:
    """Send ``trader.*`` logs to stderr as text or JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(_RedactSecrets())
    root = logging.getLogger("trader")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
