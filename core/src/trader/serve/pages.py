"""The two pages, rendered by the server (complete without JavaScript); ``static/app.js`` keeps them live from the API.

Every value from a state file is escaped: a strategy's reason, a risk event's message or an
order id is text, never markup.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from trader.timeframes import format_utc as format_ms

if TYPE_CHECKING:
    from trader.serve.app import ServeContext

__all__ = ["page_routes"]

PER_PAGE = 20


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+,.2f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _layout(ctx: ServeContext, title: str, body: str, page: str, strategy: str = "") -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)} - trader</title><link rel="stylesheet" href="/static/style.css"></head>
<body data-page="{page}" data-strategy="{_e(strategy)}" data-refresh="{ctx.refresh_s:g}" data-read-only="{int(ctx.read_only)}">
<header><a class="brand" href="/">trader</a><span class="muted">{_e(title)}</span>
<span id="live" class="muted">{'read-only' if ctx.read_only else ''}</span></header>
<main>{body}</main>
<script src="/static/chart.js"></script><script src="/static/app.js"></script>
</body></html>"""


def _status(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f'<span class="badge error">unreadable</span> <span class="reason">{_e(row["error"])}</span>'
    risk = row.get("risk")
    if not risk:
        return '<span class="badge none">no account</span>'
    reason = f' <span class="reason">{_e(risk["reason"])}</span>' if risk.get("reason") else ""
    pending = f' <span class="pending">pending: {_e(", ".join(risk["pending_requests"]))}</span>' if risk.get("pending_requests") else ""
    return f'<span class="badge {_e(risk["status"])}">{_e(risk["status"])}</span>{reason}{pending}'


def _positions(row: dict[str, Any]) -> str:
    held = [p for p in row.get("positions") or [] if p["quantity"] > 0]
    return ", ".join(f"{p['symbol']} {p['quantity']:g}" for p in held) or "flat"


def overview_row(row: dict[str, Any]) -> str:
    a = row.get("account") or {}
    lat = row.get("latency") or {}
    name = row["strategy"]
    running = f'running (pid {_e(row["running_pid"])})' if row.get("running_pid") else "stopped"
    return (
        f'<tr data-strategy="{_e(name)}"><td><a href="/strategies/{_e(name)}">{_e(name)}</a></td>'
        f"<td>{_status(row)}</td><td>{running}</td>"
        f'<td class="num">{money(a.get("equity"))}</td>'
        f'<td class="num">{signed(a.get("pnl"))} ({pct(a.get("return"))})</td>'
        f'<td class="num">{pct(a.get("drawdown"))} / {pct(a.get("max_drawdown"))}</td>'
        f"<td>{_e(_positions(row))}</td><td>{_e(row.get('last_candle') or '-')}</td>"
        f'<td class="num">{ms(lat.get("p50_ms"))} / {ms(lat.get("p99_ms"))}</td><td>{_e(row.get("model") or "-")}</td></tr>'
    )


OVERVIEW_HEAD = (
    "<tr><th>strategy</th><th>status</th><th>process</th><th>equity</th><th>PnL</th><th>drawdown / max</th>"
    "<th>positions</th><th>last candle</th><th>latency p50 / p99</th><th>model</th></tr>"
)


def overview(request: Request) -> HTMLResponse:
    ctx: ServeContext = request.app.state.serve
    rows = ctx.reader.overview()
    body = "".join(overview_row(r) for r in rows) or '<tr><td colspan="10">no strategy has run yet under this home</td></tr>'
    html = (
        f'<h1>Strategies</h1><table id="overview"><thead>{OVERVIEW_HEAD}</thead><tbody>{body}</tbody></table>'
        '<p class="muted">Data from each strategy\'s state file, read-only; this page updates itself.</p>'
    )
    return HTMLResponse(_layout(ctx, "overview", html, "overview"))


# ---------------------------------------------------------------------- the strategy page

_COLUMNS = {
    "orders": ("candle_ts", "client_order_id", "side", "quantity", "price", "status", "filled_quantity", "message"),
    "fills": ("timestamp", "client_order_id", "side", "quantity", "price", "fee", "realized_pnl"),
    "risk": ("timestamp", "kind", "code", "message"),
    "decisions": ("timestamp", "kind", "code", "message", "client_order_id"),
}
_TITLES = {"orders": "Orders", "fills": "Fills", "risk": "Risk events", "decisions": "Decision log"}


def cell(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if column in ("timestamp", "candle_ts"):
        return format_ms(value)
    if isinstance(value, float):
        return f"{value:,.8g}" if column in ("quantity", "filled_quantity", "price") else f"{value:,.4f}"
    return str(value)


def _list_section(ctx: ServeContext, name: str, key: str) -> str:
    table, which = ("events", key) if key in ("risk", "decisions") else (key, "risk")
    data = ctx.reader.page(name, table, 1, PER_PAGE, which)
    cols = _COLUMNS[key]
    head = "".join(f"<th>{c.replace('_', ' ')}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{_e(cell(c, item.get(c)))}</td>" for c in cols) + "</tr>" for item in data["items"])
    return (
        f'<section class="list" data-list="{key}"><h2>{_TITLES[key]} <span class="count muted">({data["total"]:,})</span></h2>'
        f'<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'
        f'<div class="pager"><button type="button" data-dir="-1" disabled>newer</button>'
        f'<span class="where">page 1 of {data["pages"]:,}</span>'
        f'<button type="button" data-dir="1"{" disabled" if data["pages"] <= 1 else ""}>older</button></div></section>'
    )


def _stat(label: str, field: str, value: str) -> str:
    return f'<div class="stat"><div class="label">{label}</div><div class="value" data-field="{field}">{_e(value)}</div></div>'


def _actions(ctx: ServeContext) -> str:
    if ctx.read_only:
        return '<section id="actions"><p class="muted">read-only: halting and resuming are off</p></section>'
    return (
        '<section id="actions"><h2>Operator</h2>'
        '<label>token <input id="token" type="password" autocomplete="off" placeholder="TRADER_SERVE_TOKEN"></label> '
        '<label>reason <input id="note" type="text" maxlength="500" placeholder="why"></label> '
        '<button type="button" id="halt" class="danger">Halt</button> <button type="button" id="resume">Resume</button>'
        '<p id="action-result" role="status"></p></section>'
    )


def strategy_page(request: Request) -> Response:
    ctx: ServeContext = request.app.state.serve
    name = request.path_params["name"]
    if not ctx.reader.known(name):
        return HTMLResponse(_layout(ctx, "not found", f"<h1>No strategy {_e(name)!s}</h1><p><a href='/'>overview</a></p>", "missing"),
                            status_code=404)
    row = ctx.reader.strategy(name)
    a = row.get("account") or {}
    lat = row.get("latency") or {}
    stats = "".join([
        _stat("equity", "equity", money(a.get("equity"))),
        _stat("PnL", "pnl", f"{signed(a.get('pnl'))} ({pct(a.get('return'))})"),
        _stat("drawdown / max", "drawdown", f"{pct(a.get('drawdown'))} / {pct(a.get('max_drawdown'))}"),
        _stat("fees", "fees", money(a.get("fees_paid"))),
        _stat("positions", "positions", _positions(row)),
        _stat("last candle", "last_candle", row.get("last_candle") or "-"),
        _stat("latency p50 / p99", "latency", f"{ms(lat.get('p50_ms'))} / {ms(lat.get('p99_ms'))}"),
        _stat("model", "model", row.get("model") or "-"),
    ])
    has_state = row.get("account") is not None
    lists = "".join(_list_section(ctx, name, k) for k in ("orders", "fills", "risk", "decisions")) if has_state else ""
    charts = (
        '<section class="charts"><h2>Equity</h2><div id="equity-chart" class="chart"></div>'
        '<h2>Drawdown</h2><div id="drawdown-chart" class="chart"></div></section>'
    ) if has_state else ""
    body = (
        f'<h1>{_e(name)}</h1><p id="status">{_status(row)}</p><div class="stats">{stats}</div>'
        f"{_actions(ctx)}{charts}{lists}"
    )
    return HTMLResponse(_layout(ctx, name, body, "strategy", name))


def favicon(request: Request) -> Response:
    return Response(status_code=204)


def page_routes() -> list[Route]:
    return [Route("/", overview), Route("/strategies/{name}", strategy_page), Route("/favicon.ico", favicon)]
