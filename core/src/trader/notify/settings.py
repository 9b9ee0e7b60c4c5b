"""``[notify]`` in ``trader.toml``: what to send, where, and how hard to try.

Checked when the config is loaded (:func:`check_notify`, pure, no secret read); the
secrets a target needs are read from the environment when ``trader run`` starts
(:func:`resolve_targets`), so ``trader.toml`` never holds one. A URL that would carry a
secret (a Telegram ``/bot<token>/`` path, a Slack or Discord webhook, credentials in the
host part or the query) is refused in ``trader.toml``: name an environment variable with
``url_env`` instead.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen

from trader.errors import ConfigError

__all__ = [
    "KINDS",
    "MODES",
    "FORMATS",
    "NotifySettings",
    "Target",
    "check_notify",
    "resolve_targets",
    "DEFAULT_BOT_ENV",
    "TELEGRAM_API",
]

#: The event kinds an alert can be about.
KINDS = ("fill", "halt", "risk", "error", "stale")
#: What to do with each kind: send it, send it without a sound (where the service allows), drop it.
MODES = ("on", "silent", "off")
FORMATS = ("json", "telegram", "slack", "discord")
DEFAULT_BOT_ENV = "TRADER_TELEGRAM_BOT_TOKEN"
TELEGRAM_API = "https://api.telegram.org"

_SETTINGS = {"max_per_minute": "number", "timeout_s": "number", "retries": "count0", "backoff_s": "number",
             "flush_s": "number", "queue": "count"}
_TARGET_KEYS = {"format", "url", "url_env", "chat_id", "bot_env", *KINDS}
_DEFAULTS = {"max_per_minute": 20.0, "timeout_s": 5.0, "retries": 3, "backoff_s": 1.0, "flush_s": 5.0, "queue": 1000}
# Hosts whose webhook URL is itself the secret.
_SECRET_HOSTS = ("hooks.slack.com", "discord.com", "discordapp.com", "api.telegram.org")
_BOT_PATH = re.compile(r"/bot[^/]+")
_BOT_TOKEN = re.compile(r"\d{3,}:[A-Za-z0-9_-]{20,}")


@frozen
class Target:
    """One receiver: ``name`` (its table), ``format``, the modes of each kind, and where to POST.

    ``url`` is the full URL (with the bot token for Telegram); ``secrets`` are the strings
    redacted from anything logged about it.
    """

    name: str
    format: str
    url: str = field(repr=False)
    modes: Mapping[str, str]
    chat_id: str | None = None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    label: str = ""


@frozen
class NotifySettings:
    """The ``[notify]`` table, checked: its targets and the sending policy."""

    targets: tuple[Target, ...]
    max_per_minute: float = 20.0
    timeout_s: float = 5.0
    retries: int = 3
    backoff_s: float = 1.0
    flush_s: float = 5.0
    queue: int = 1000


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _unknown(key: str, known: Any, title: str, where: str) -> ConfigError:
    close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"
    return _fail(where, f"unknown key {key!r} in {title}{hint}")


def _mode(value: Any, key: str, title: str, where: str) -> str:
    if value not in MODES:
        raise _fail(where, f"{title} {key} must be one of {', '.join(MODES)}, got {value!r}")
    return value


def _setting(value: Any, key: str, where: str) -> float | int:
    kind = _SETTINGS[key]
    if kind in ("count", "count0"):
        low = 1 if kind == "count" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise _fail(where, f"[notify] {key} must be a whole number >= {low}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise _fail(where, f"[notify] {key} must be a positive number, got {value!r}")
    return float(value)


def _check_url(url: Any, title: str, where: str) -> None:
    from trader.config_rules import looks_like_credential

    if not isinstance(url, str) or not url:
        raise _fail(where, f"{title} url must be text, got {url!r}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail(where, f"{title} url must be an http:// or https:// URL")
    secret = (
        parts.username is not None
        or _BOT_PATH.search(parts.path) is not None
        or _BOT_TOKEN.search(url) is not None
        or any(looks_like_credential(k) for k, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        or (parts.hostname in _SECRET_HOSTS and parts.path not in ("", "/"))
    )
    if secret:
        raise _fail(
            where,
            f"{title} url carries a secret, and trader.toml must not hold secrets: put the URL in an environment "
            "variable and name it with url_env",
        )


def _check_env_name(value: Any, key: str, title: str, where: str) -> None:
    from trader.childenv import is_secret_name

    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise _fail(where, f"{title} {key} must name an environment variable, got {value!r}")
    if not is_secret_name(value):
        # strategy workers inherit every variable whose name does not say it is secret (trader.childenv)
        raise _fail(
            where,
            f"{title} {key} = {value!r}: the variable's name must say it holds a secret (contain SECRET, TOKEN or KEY, "
            f"e.g. {value}_SECRET), so strategy processes do not inherit it",
        )


def _check_target(name: str, table: Any, where: str) -> None:
    title = f"[notify.{name}]"
    if not isinstance(table, Mapping):
        raise _fail(where, f"[notify] {name} is not a known setting (known: {', '.join([*_SETTINGS, *KINDS])}) "
                           "nor a target table")
    for key in table:
        if key not in _TARGET_KEYS:
            raise _unknown(key, _TARGET_KEYS, title, where)
    fmt = table.get("format", "json")
    if fmt not in FORMATS:
        raise _fail(where, f"{title} format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    for kind in KINDS:
        if kind in table:
            _mode(table[kind], kind, title, where)
    if "url" in table and "url_env" in table:
        raise _fail(where, f"{title} has both url and url_env: give one")
    if "url" in table:
        _check_url(table["url"], title, where)
    if "url_env" in table:
        _check_env_name(table["url_env"], "url_env", title, where)
    if fmt == "telegram":
        chat = table.get("chat_id")
        if isinstance(chat, bool) or not isinstance(chat, (str, int)) or not str(chat).strip():
            raise _fail(where, f"{title} format 'telegram' needs chat_id (the chat's id or @channel name)")
        _check_env_name(table.get("bot_env", DEFAULT_BOT_ENV), "bot_env", title, where)
    else:
        if "chat_id" in table or "bot_env" in table:
            raise _fail(where, f"{title} chat_id and bot_env are for format 'telegram' only")
        if "url" not in table and "url_env" not in table:
            raise _fail(where, f"{title} needs url (or url_env, the environment variable that holds a secret URL)")


def check_notify(table: Any, where: str) -> None:
    """Refuse a ``[notify]`` table that is not usable, with one line naming *where* and the key."""
    if not isinstance(table, Mapping):
        raise _fail(where, f"[notify] must be a table, got {type(table).__name__}")
    for key, value in table.items():
        if key in _SETTINGS:
            _setting(value, key, where)
        elif key in KINDS:
            _mode(value, key, "[notify]", where)
        elif isinstance(value, Mapping):
            _check_target(str(key), value, where)
        else:
            raise _unknown(key, [*_SETTINGS, *KINDS], "[notify]", where)


def _env_value(name: str, what: str, title: str, environ: Mapping[str, str]) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{title}: {what} comes from the environment variable {name}, which is not set")
    return value


def resolve_targets(table: Mapping[str, Any] | None, environ: Mapping[str, str] | None = None) -> NotifySettings | None:
    """The checked ``[notify]`` table with each target's secrets read from the environment; ``None`` without targets.

    Raises :class:`ConfigError` (one line, never the secret) when a variable is missing or malformed.
    """
    if not table:
        return None
    env = os.environ if environ is None else environ
    check_notify(table, "trader.toml")
    settings = {key: table.get(key, default) for key, default in _DEFAULTS.items()}
    modes = {kind: table.get(kind, "on") for kind in KINDS}
    targets = []
    for name, spec in table.items():
        if not isinstance(spec, Mapping):
            continue
        title = f"[notify.{name}]"
        fmt = spec.get("format", "json")
        own = {kind: spec.get(kind, modes[kind]) for kind in KINDS}
        secrets: list[str] = []
        if "url_env" in spec:
            url = _env_value(spec["url_env"], "the URL", title, env)
            secrets.append(url)
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{title}: ${spec['url_env']} is not an http:// or https:// URL")
            label = f"{fmt}, URL from ${spec['url_env']}"
        else:
            url = spec.get("url", TELEGRAM_API if fmt == "telegram" else "")
            label = f"{fmt} {url}"
        if fmt == "telegram":
            bot_env = spec.get("bot_env", DEFAULT_BOT_ENV)
            token = _env_value(bot_env, "the bot token", title, env)
            if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
                raise ConfigError(f"{title}: ${bot_env} does not look like a Telegram bot token (digits:letters)")
            secrets.append(token)
            url = f"{url.rstrip('/')}/bot{token}/sendMessage"
            label += f" (bot token from ${bot_env})"
        targets.append(Target(str(name), fmt, url, own, None if fmt != "telegram" else str(spec["chat_id"]),
                              tuple(secrets), label))
    if not targets:
        return None
    return NotifySettings(tuple(targets), **settings)
