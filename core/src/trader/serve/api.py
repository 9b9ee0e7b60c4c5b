"""The JSON API under ``/api`` (documented in ``docs/serve.md``); the pages use it for their live updates."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from trader.errors import TraderError
from trader.log import mask_secrets
from trader.serve.auth import MIN_TOKEN_CHARS, token_from_headers
from trader.serve.reader import EVENT_FILTERS, MAX_PAGE

if TYPE_CHECKING:
    from trader.serve.app import ServeContext

__all__ = ["api_routes"]

log = logging.getLogger("trader.serve")
MAX_NOTE_CHARS = 500
MAX_BODY_BYTES = 4096


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(data, status_code=status)


def _ctx(request: Request) -> ServeContext:
    return request.app.state.serve


def _name(request: Request) -> str:
    name = request.path_params["name"]
    if not _ctx(request).reader.known(name):
        raise ApiError(404, f"no strategy {name!r} under this home")
    return name


def _int(request: Request, key: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"{key} must be a whole number, got {raw[:40]!r}") from None
    if not low <= value <= high:
        raise ApiError(400, f"{key} must be between {low} and {high}, got {value}")
    return value


def _guarded(handler):
    """Errors become ``{"error": one line}`` with a status code; never a traceback, never a secret."""

    def endpoint(request: Request) -> JSONResponse:
        try:
            return handler(request)
        except ApiError as exc:
            return _json({"error": exc.message}, exc.status)
        except FileNotFoundError:
            return _json({"error": f"strategy {request.path_params.get('name')!r} has no state yet (it has never run)"}, 404)
        except TraderError as exc:
            return _json({"error": mask_secrets(" ".join(str(exc).split()))}, 503)
        except Exception as exc:  # a bug: one line in the log and the answer
            log.warning("trader serve: %s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
            return _json({"error": mask_secrets(f"internal error: {type(exc).__name__}")}, 500)

    endpoint.__name__ = handler.__name__
    return endpoint


# ---------------------------------------------------------------------- reading


def info(request: Request) -> JSONResponse:
    from trader import __version__

    ctx = _ctx(request)
    return _json({"version": __version__, "read_only": ctx.read_only, "refresh_s": ctx.refresh_s,
                  "strategies": ctx.reader.names()})


def strategies(request: Request) -> JSONResponse:
    return _json({"strategies": _ctx(request).reader.overview()})


def strategy(request: Request) -> JSONResponse:
    return _json(_ctx(request).reader.strategy(_name(request)))


def series(request: Request) -> JSONResponse:
    name = _name(request)
    return _json(_ctx(request).reader.series(name, _int(request, "points", 600, 10, 5000)))


def _paged(table: str):
    def handler(request: Request) -> JSONResponse:
        name = _name(request)
        page = _int(request, "page", 1, 1, 10**9)
        per_page = _int(request, "per_page", 50, 1, MAX_PAGE)
        which = request.query_params.get("filter", "risk")
        if table == "events" and which not in EVENT_FILTERS:
            raise ApiError(400, f"filter must be one of {', '.join(EVENT_FILTERS)}, got {which[:40]!r}")
        return _json(_ctx(request).reader.page(name, table, page, per_page, which))

    handler.__name__ = table
    return handler


# ---------------------------------------------------------------------- operator actions


def _authorize(request: Request) -> None:
    ctx = _ctx(request)
    if ctx.read_only:
        raise ApiError(403, "trader serve runs --read-only: halting and resuming are off")
    offered = token_from_headers(request.headers)
    if not offered:
        raise ApiError(401, "this action needs the operator token (header Authorization: Bearer TOKEN)")
    if len(offered) < MIN_TOKEN_CHARS or not ctx.token.accepts(offered):
        log.warning("trader serve: refused a %s request with a wrong token from %s", request.url.path,
                    request.client.host if request.client else "?")
        raise ApiError(403, "wrong operator token")


async def _note(request: Request) -> str:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
    if not body.strip():
        return ""
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, "the body must be JSON, e.g. {\"note\": \"why\"}") from None
    note = data.get("note", "") if isinstance(data, dict) else None
    if not isinstance(note, str):
        raise ApiError(400, "note must be a string")
    note = " ".join(note.split())
    if len(note) > MAX_NOTE_CHARS:
        raise ApiError(400, f"note is over {MAX_NOTE_CHARS} characters")
    return note


def _action(command: str):
    async def handler(request: Request) -> JSONResponse:
        from starlette.concurrency import run_in_threadpool

        try:
            _authorize(request)
            name = _name(request)
            note = await _note(request) or f"{command} from trader serve"
            outcome = await run_in_threadpool(_ctx(request).act, command, name, note)
        except ApiError as exc:
            return _json({"error": exc.message}, exc.status)
        except TraderError as exc:
            return _json({"error": mask_secrets(" ".join(str(exc).split()))}, 409)
        except Exception as exc:  # fails closed: nothing was requested, and the operator is told
            log.warning("trader serve: %s of %s failed: %s: %s", command, request.path_params.get("name"), type(exc).__name__, exc)
            return _json({"error": mask_secrets(f"{command} failed: {type(exc).__name__}: {exc}")}, 500)
        log.info("trader serve: %s", outcome["message"])
        return _json({**outcome, "note": note, "message": mask_secrets(outcome["message"])})

    handler.__name__ = command
    return handler


def not_found(request: Request) -> JSONResponse:
    return _json({"error": f"no such API path {request.url.path[:200]!r} (see docs/serve.md)"}, 404)


def api_routes() -> list[Route]:
    return [
        Route("/api/info", _guarded(info)),
        Route("/api/strategies", _guarded(strategies)),
        Route("/api/strategies/{name}", _guarded(strategy)),
        Route("/api/strategies/{name}/series", _guarded(series)),
        Route("/api/strategies/{name}/orders", _guarded(_paged("orders"))),
        Route("/api/strategies/{name}/fills", _guarded(_paged("fills"))),
        Route("/api/strategies/{name}/events", _guarded(_paged("events"))),
        Route("/api/strategies/{name}/halt", _action("halt"), methods=["POST"]),
        Route("/api/strategies/{name}/resume", _action("resume"), methods=["POST"]),
        Route("/api/{rest:path}", not_found, methods=["GET", "POST"]),
    ]
