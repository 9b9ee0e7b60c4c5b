"""Logging set-up: plain text for people, JSON lines (python-json-logger) for machines.

Every record through the ``trader`` handler has the API credentials of the environment masked
(as given and URL-encoded), its traceback included; ccxt's own output (``verbose``, its debug
log) is sent here by :func:`route_ccxt_output`, so it is masked too.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

__all__ = ["configure_logging", "mask_secrets", "route_ccxt_output", "SECRET_MASK"]

SECRET_MASK = "***"


def mask_secrets(text: str) -> str:
    """*text* with every credential of the environment replaced by ``***``."""
    from trader.config import secret_values

    for secret in secret_values():
        text = text.replace(secret, SECRET_MASK)
    return text


class _RedactSecrets(logging.Filter):
    """Replace the values of API credentials from the environment wherever they would be logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        from trader.config import secret_values

        if secret_values():
            record.msg, record.args = mask_secrets(record.getMessage()), None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = mask_secrets(record.exc_text)
            if record.stack_info:
                record.stack_info = mask_secrets(record.stack_info)
        return True


def route_ccxt_output(exchange: Any) -> Any:
    """Send a ccxt exchange's ``verbose`` output (which ccxt prints) and its debug log through the
    masking ``trader.ccxt`` logger instead of stdout; returns *exchange*."""
    logger = logging.getLogger("trader.ccxt")

    def log(*args: Any) -> None:
        logger.info("%s", " ".join(str(arg) for arg in args).strip())

    exchange.log = log
    exchange.logger = logger
    return exchange


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
