"""The study's storage: an Optuna RDB URL opened with its password kept out of every line shown.

- :func:`redact_url`: the URL as shown (report, messages): ``scheme://user:***@host/db``.
- :func:`open_storage`: the Optuna storage of a URL. ``postgresql://`` without a driver gets one that is
  installed (SQLAlchemy 2.1 defaults to psycopg 3, earlier versions to psycopg2, which
  ``trader-core[postgres]`` installs); none installed, a missing driver or an unreachable or refusing
  server is one :class:`~trader.errors.ConfigError` line with the password masked. A PostgreSQL
  connection waits at most :data:`CONNECT_TIMEOUT_S` seconds unless the URL sets ``connect_timeout``.
"""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

from trader.errors import ConfigError

__all__ = ["CONNECT_TIMEOUT_S", "POSTGRES_INSTALL", "open_storage", "redact_url", "mask_url_secrets", "storage_error"]

POSTGRES_INSTALL = "pip install 'trader-core[postgres]'"
CONNECT_TIMEOUT_S = 10
MASK = "***"
_SECRET_KEYS = {"password", "passwd", "sslpassword"}


def _split(url: str) -> tuple[str, str | None, str | None, str]:
    """``(scheme://, user, password, host_path_and_query)`` of *url*. The credentials end at the LAST '@' and
    begin after the first '//' (so an unencoded '@', '/', '?' or ':' in a password, or a URL missing its
    ':', masks too much rather than too little)."""
    credentials, at, tail = url.rpartition("@")
    if not at:
        return "", None, None, url
    start = credentials.find("//")
    start = 0 if start < 0 else start + 2
    user, colon, password = credentials[start:].partition(":")
    return credentials[:start], user, password if colon else None, tail


def _secrets(url: str) -> list[str]:
    """The URL's password (and ``password=`` query values), as written, decoded and encoded: longest first."""
    _, _, password, tail = _split(url)
    query = tail.partition("?")[2]
    found = {password} if password else set()
    found |= {value for key, value in parse_qsl(query, keep_blank_values=True) if key.lower() in _SECRET_KEYS and value}
    forms = set()
    for secret in found:
        decoded = unquote(secret)
        pieces = [decoded, secret, *decoded.split("@")]  # an unencoded '@' makes a driver read part of it as the host
        forms |= {f for p in pieces if len(p) >= 3 for f in (p, quote(p, safe=""), quote_plus(p))}
    return sorted(forms, key=len, reverse=True)


def mask_url_secrets(text: str, url: str) -> str:
    """*text* with the password of *url* (in any of its forms) replaced by ``***``."""
    for secret in _secrets(url):
        text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """*url* as it may be shown: its password (and ``password=`` query values) replaced by ``***``."""
    scheme, user, password, tail = _split(url)
    if password is not None:
        return mask_url_secrets(f"{scheme}{user}:{MASK}@{tail}", url)
    return mask_url_secrets(url, url)


def _postgres_driver(url: str) -> str:
    """*url* with a PostgreSQL driver that is installed when it names none."""
    scheme, sep, rest = url.partition("://")
    if scheme != "postgresql":
        return url
    from sqlalchemy.dialects import postgresql

    default = str(postgresql.dialect.driver)  # psycopg (SQLAlchemy 2.1+) or psycopg2 (earlier)
    for driver in dict.fromkeys((default, "psycopg2", "psycopg")):
        if importlib.util.find_spec(driver) is not None:
            return url if driver == default else f"postgresql+{driver}{sep}{rest}"
    raise ConfigError(f"--storage {redact_url(url)}: no PostgreSQL driver is installed: {POSTGRES_INSTALL}")


def open_storage(url: str) -> Any:
    """The Optuna storage of *url*, its tables created where missing."""
    import optuna

    target = _postgres_driver(url)
    kwargs: dict[str, Any] = {}
    if target.startswith("postgresql") and "connect_timeout" not in target:
        kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}  # a silent host: one line, not a hang
    try:
        return optuna.storages.RDBStorage(target, engine_kwargs=kwargs)
    except Exception as exc:  # a missing driver, an unreachable server, a wrong password, a bad URL
        missing = _missing_module(exc)
        if missing is not None:  # a driver the URL names (postgresql+psycopg2://, mysql://)
            hint = POSTGRES_INSTALL if missing == "psycopg2" else f"pip install {missing}"
            raise ConfigError(f"--storage {redact_url(url)}: its database driver {missing} is not installed: {hint}") from None
        raise ConfigError(storage_error(url, exc)) from None


def _missing_module(exc: BaseException | None) -> str | None:
    """The module a ModuleNotFoundError in *exc*'s chain names (Optuna re-raises it as an ImportError)."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name.split(".")[0]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def storage_error(url: str, exc: BaseException) -> str:
    """One line naming the storage (password masked) and what went wrong."""
    origin = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error, whose text is the useful one
    lines = [line.strip() for line in str(origin).splitlines() if line.strip()]
    detail = " ".join(lines[:2])[:300] if lines else type(origin).__name__
    return mask_url_secrets(f"--storage {redact_url(url)}: {type(origin).__name__}: {detail}", url)
