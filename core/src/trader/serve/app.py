"""The ASGI application of ``trader serve``: pages, the JSON API, static files and the headers that guard them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from trader.serve.api import api_routes
from trader.serve.auth import OperatorToken, is_loopback
from trader.serve.pages import page_routes
from trader.serve.reader import StateReader

__all__ = ["ServeContext", "create_app", "STATIC_DIR", "LOOPBACK_NAMES"]

STATIC_DIR = Path(__file__).parent / "static"
#: Host headers a loopback server answers: a page on another site that rebinds its own name to 127.0.0.1 gets a 400.
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]

_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@attrs.frozen
class ServeContext:
    """What the handlers share: the reader, the token, read-only mode, the refresh period and the config."""

    reader: StateReader
    token: OperatorToken
    config: Any
    read_only: bool = False
    refresh_s: float = attrs.field(default=2.0, validator=attrs.validators.ge(0.2))

    def act(self, command: str, name: str, note: str) -> dict[str, Any]:
        """``halt`` or ``resume`` ``name`` through ``trader halt``/``trader resume``'s path (:mod:`trader.engine.control`).

        Applied at once when nothing runs the strategy, else requested from its process (next candle).
        """
        from trader.engine import control

        actions = {"halt": control.request_halt, "resume": control.request_resume}
        outcome = actions[command](self.config, name, note)
        return {**outcome.as_dict(), "message": outcome.describe()}


class _SecurityHeaders:
    """No framing, no sniffing, no referrer, one content security policy; API answers are never cached."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = scope["path"].startswith("/api/")

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", _CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def create_app(context: ServeContext, host: str = "127.0.0.1") -> Starlette:
    """The application; bound to loopback it answers only loopback ``Host`` headers (DNS rebinding)."""
    allowed = LOOPBACK_NAMES if is_loopback(host) else ["*"]
    app = Starlette(
        routes=[*page_routes(), *api_routes(), Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static")],
        middleware=[Middleware(_SecurityHeaders), Middleware(TrustedHostMiddleware, allowed_hosts=allowed)],
    )
    app.state.serve = context
    return app
