"""What ``trader status`` and the end of a replay report, read from a strategy's SQLite store."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from trader.timeframes import format_utc

if TYPE_CHECKING:
    from trader.engine.state import TradingState

__all__ = ["summarize_store", "format_status", "percentile", "ACCOUNT_STREAM"]

#: The symbol of a basket account's own stream: ``trader.portfolio.PORTFOLIO`` (a test holds them equal), not
#: imported here so that reading a single-market account never loads the portfolio package (and pandas).
ACCOUNT_STREAM = "*"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of already sorted values, by linear interpolation."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize_store(store: TradingState, db: sqlite3.Connection, *, latency_samples: int = 1000, events: int = 10) -> dict[str, Any]:
    """Everything ``trader status`` shows, as JSON-ready data (``account: None`` before the first run).

    ``ledger`` says whether the account matches its cash flows and fills now (a forgery
    made since the last run shows here before any run halts on it).
    """
    from trader.evaluation.performance import max_drawdown

    out: dict[str, Any] = {"strategy": store.namespace, "path": str(store.path)}
    state = store.load()
    if state is None:
        out["account"] = None
        return out
    positions = []
    unrealized = 0.0
    for sym, pos in state.positions.items():
        mark = state.marks.get(sym, pos.avg_price)
        upnl = pos.quantity * (mark - pos.avg_price)
        unrealized += upnl
        positions.append(
            {
                "symbol": sym,
                "quantity": pos.quantity,
                "avg_price": pos.avg_price,
                "mark": mark,
                "value": pos.quantity * mark,
                "unrealized_pnl": upnl,
                "realized_pnl": pos.realized_pnl,
            }
        )
    equity = state.equity()
    problem = store.ledger_problem()
    curve = [e for (e,) in db.execute("SELECT equity FROM equity ORDER BY timestamp, symbol")]
    orders: dict[str, int] = {}
    for status, count in db.execute("SELECT status, COUNT(*) FROM orders GROUP BY status"):
        orders[status] = count
    fills = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    latencies = sorted(
        ms for (ms,) in db.execute("SELECT inference_ms FROM latency ORDER BY id DESC LIMIT ?", (latency_samples,))
    )
    counts = {code: n for code, n in db.execute("SELECT code, COUNT(*) FROM risk_events GROUP BY code ORDER BY code")}
    streams = [
        {"symbol": s, "timeframe": tf, "last_candle_ts": ts, "last_candle": format_utc(ts)}
        for s, tf, ts in db.execute("SELECT symbol, timeframe, last_candle_ts FROM streams ORDER BY symbol, timeframe")
    ]
    pending = [c for (c,) in db.execute("SELECT command FROM control WHERE applied_at IS NULL")]
    out.update(
        {
            "account": {
                "initial_cash": state.initial_cash,
                "cash": state.cash,
                "equity": equity,
                "pnl": equity - state.initial_cash,
                "return": equity / state.initial_cash - 1 if state.initial_cash else 0.0,
                "realized_pnl": state.realized_pnl,
                "unrealized_pnl": unrealized,
                "fees_paid": state.fees_paid,
                "peak_equity": state.peak_equity,
                "max_drawdown": max_drawdown(curve)[0],
                "candles": len(curve),
            },
            "positions": positions,
            "risk": {
                "status": state.status.value,
                "reason": state.status_reason,
                "since": state.status_since,
                "consecutive_losses": state.consecutive_losses,
                "model_failures": state.model_failures,
                "errors_since_resume": len(state.error_times),
                "pending_requests": pending,
            },
            "ledger": {"consistent": problem is None, "problem": problem, "cash_flows": len(store.cash_flows())},
            "streams": streams,
            "orders": orders,
            "fills": fills,
            "latency": {
                "samples": len(latencies),
                "p50_ms": percentile(latencies, 0.5),
                "p99_ms": percentile(latencies, 0.99),
                "max_ms": latencies[-1] if latencies else None,
            },
            "event_counts": counts,
            "recent_events": store.risk_events(limit=events),
        }
    )
    if any(s["symbol"] == ACCOUNT_STREAM for s in streams):  # one account trading several markets
        from trader.portfolio.status import basket_summary

        out.update(basket_summary(db, state, streams))
    return out


def _money(value: float) -> str:
    return f"{value:,.2f}"


def _signed(value: float) -> str:
    return f"{value:+,.2f}"


def format_status(summary: dict[str, Any]) -> str:
    """Human-readable lines of one strategy's summary."""
    name = summary["strategy"]
    account = summary.get("account")
    running = summary.get("running_pid")
    head = f"{name}" + (f"  (running, pid {running})" if running else "")
    if summary.get("error"):
        return f"{name}: state unreadable: {summary['error']}"
    if account is None:
        return f"{head}\n  no account yet (never run)"
    risk = summary["risk"]
    lines = [f"{head}  [{risk['status'].upper()}]"]
    lines.append(
        f"  equity {_money(account['equity'])}  cash {_money(account['cash'])}  "
        f"PnL {_signed(account['pnl'])} ({account['return'] * 100:+.2f}%)  start {_money(account['initial_cash'])}"
    )
    lines.append(
        f"  realized {_signed(account['realized_pnl'])}  unrealized {_signed(account['unrealized_pnl'])}  "
        f"fees {_money(account['fees_paid'])}  max drawdown {account['max_drawdown'] * 100:.2f}%"
    )
    basket = summary.get("markets") is not None
    if basket:
        from trader.portfolio.status import format_basket

        lines.extend(format_basket(summary))
    for p in () if basket else summary["positions"]:
        if p["quantity"] > 0:
            lines.append(
                f"  position {p['symbol']} {p['quantity']:g} @ {p['avg_price']:,.6g} (mark {p['mark']:,.6g}, "
                f"value {_money(p['value'])}, unrealized {_signed(p['unrealized_pnl'])})"
            )
    if not basket and not any(p["quantity"] > 0 for p in summary["positions"]):
        lines.append("  position: flat")
    ledger = summary.get("ledger") or {}
    if ledger.get("problem"):
        lines.append(f"  state INCONSISTENT with its ledger: {ledger['problem']}")
    reason = risk["reason"] or "-"
    lines.append(f"  risk {risk['status']}: {reason}" + (f" (since {format_utc(risk['since'])})" if risk["since"] else ""))
    lines.append(
        f"  breakers: {risk['consecutive_losses']} losses in a row, {risk['model_failures']} model failures in a row, "
        f"{risk['errors_since_resume']} errors since the last resume"
        + (f"; pending: {', '.join(risk['pending_requests'])}" if risk["pending_requests"] else "")
    )
    for s in summary["streams"]:
        if not basket:
            lines.append(f"  last candle {s['symbol']} {s['timeframe']}: {s['last_candle']}")
        elif s["symbol"] == ACCOUNT_STREAM:  # each market's last candle is in its row
            lines.append(f"  last candle of the account {s['timeframe']}: {s['last_candle']}")
    orders = ", ".join(f"{n} {status}" for status, n in sorted(summary["orders"].items())) or "none"
    lines.append(f"  orders: {orders}; fills: {summary['fills']}")
    lat = summary["latency"]
    if lat["samples"]:
        lines.append(
            f"  inference latency: p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms "
            f"(last {lat['samples']} signals)"
        )
    else:
        lines.append("  inference latency: no samples yet")
    counts = {k: v for k, v in summary["event_counts"].items() if k != "APPROVED"}
    if counts:
        lines.append("  risk events: " + ", ".join(f"{code} x{n}" for code, n in counts.items()))
    if basket:
        from trader.portfolio.status import format_denials

        lines.extend(format_denials(summary))
    for e in summary["recent_events"][-5:]:
        if e["code"] == "APPROVED" or (basket and e["kind"] == "audit"):  # a basket lists its denials with their market
            continue
        lines.append(f"    {format_utc(e['timestamp'])} {e['kind']} {e['code']}: {e['message']}")
    return "\n".join(lines)
