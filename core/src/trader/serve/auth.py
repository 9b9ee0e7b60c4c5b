"""The operator token and the bind rules of ``trader serve``.

Halting and resuming need the token in a header (``Authorization: Bearer TOKEN``, or
``X-Trader-Token``); reading needs none. The token is ``TRADER_SERVE_TOKEN``, or a random
one generated at start and printed once. A token shorter than :data:`MIN_TOKEN_CHARS`
never authenticates: such a ``TRADER_SERVE_TOKEN`` is refused at start, and a short or
empty header is refused before any comparison. The server binds to loopback unless
``TRADER_SERVE_TOKEN`` is a strong token (at least :data:`STRONG_TOKEN_CHARS` characters,
:data:`STRONG_TOKEN_DISTINCT` of them distinct).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Mapping

import attrs

from trader.errors import ConfigError

__all__ = [
    "TOKEN_ENV",
    "MIN_TOKEN_CHARS",
    "STRONG_TOKEN_CHARS",
    "STRONG_TOKEN_DISTINCT",
    "OperatorToken",
    "operator_token",
    "check_bind",
    "is_loopback",
    "token_from_headers",
]

TOKEN_ENV = "TRADER_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
STRONG_TOKEN_CHARS = 32
STRONG_TOKEN_DISTINCT = 10


@attrs.frozen(repr=False)
class OperatorToken:
    """The token actions need; ``generated`` when it was made at start (then printed once). Never shown by repr."""

    value: str = attrs.field(validator=attrs.validators.instance_of(str))
    generated: bool = False

    @value.validator
    def _long_enough(self, _attribute: attrs.Attribute, value: str) -> None:
        if len(value) < MIN_TOKEN_CHARS:
            raise ValueError(f"a token has at least {MIN_TOKEN_CHARS} characters")

    def __repr__(self) -> str:
        return f"OperatorToken(***, generated={self.generated})"

    @property
    def strong(self) -> bool:
        return len(self.value) >= STRONG_TOKEN_CHARS and len(set(self.value)) >= STRONG_TOKEN_DISTINCT

    def accepts(self, offered: str | None) -> bool:
        """Whether ``offered`` is this token; an empty or short one never is (compared in constant time)."""
        if not isinstance(offered, str) or len(offered) < MIN_TOKEN_CHARS:
            return False
        return hmac.compare_digest(offered.encode(), self.value.encode())


def operator_token(environ: Mapping[str, str]) -> OperatorToken:
    """``TRADER_SERVE_TOKEN`` when set (refused when short), else a new random token."""
    value = environ.get(TOKEN_ENV)
    if value is None or value == "":
        return OperatorToken(secrets.token_urlsafe(32), generated=True)
    value = value.strip()
    if len(value) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{TOKEN_ENV} is too short ({len(value)} characters; at least {MIN_TOKEN_CHARS}, "
            f"{STRONG_TOKEN_CHARS} to serve beyond 127.0.0.1): make one with: python -c \"import secrets; print(secrets.token_urlsafe(32))\""
        )
    return OperatorToken(value)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: OperatorToken) -> None:
    """Refuse a non-loopback ``host`` unless ``TRADER_SERVE_TOKEN`` is a strong token."""
    if is_loopback(host):
        return
    if token.generated or not token.strong:
        raise ConfigError(
            f"trader serve binds to 127.0.0.1 only; --host {host} needs a strong {TOKEN_ENV} in the environment "
            f"(at least {STRONG_TOKEN_CHARS} characters, {STRONG_TOKEN_DISTINCT} of them distinct), and anyone who "
            "reaches that address can read the dashboard"
        )


def token_from_headers(headers: Mapping[str, str]) -> str | None:
    """The token a request offers: ``Authorization: Bearer TOKEN`` or ``X-Trader-Token: TOKEN``."""
    auth = headers.get("authorization")
    if auth:
        scheme, _, rest = auth.partition(" ")
        if scheme.lower() == "bearer":
            return rest.strip()
        return None
    offered = headers.get("x-trader-token")
    return None if offered is None else offered.strip()
