"""The report of a basket backtest: one self-contained HTML page, with its data beside it.

Files written into the report folder: ``report.html`` (the charts are embedded as PNG data,
so the page alone is the whole report and loads nothing from anywhere), ``results.json``
(:meth:`~trader.portfolio.backtest.BasketResult.to_dict`), ``equity.csv`` (per step: the
account's equity, the equal-weight basket's, the drawdown, the exposure and each market's
share of equity) and ``fills.csv`` (with each fill's market).

The page shows the portfolio's equity against the equal-weight buy-and-hold basket, each
market's contribution (its PnL), each market's position as a share of equity over time
(stacked, with ``max_gross_exposure``), the drawdown, the denied orders by reason code and
market, the performance table and the verdict. The pieces are those of the single-market
report (:mod:`trader.backtest.report`).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from trader.backtest.report import METRIC_ROWS, _dates, _figure, _save, format_value, halt_text, verdict_section

if TYPE_CHECKING:
    from trader.portfolio.backtest import BasketResult

__all__ = ["write_basket_report", "denials_by_market"]

BASKET = "equal-weight basket"


def write_basket_report(result: BasketResult, directory: str | Path) -> list[Path]:
    """Write the report of ``result`` into ``directory`` (created); return the files' paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.to_dict()
    shares = result.result.market_shares()
    paths = {name: out / name for name in ("report.html", "results.json", "equity.csv", "fills.csv")}
    paths["results.json"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    _write_series(result, shares, paths["equity.csv"])
    _write_fills(result, paths["fills.csv"])
    paths["report.html"].write_text(_html(result, summary, shares), encoding="utf-8")
    return list(paths.values())


def denials_by_market(result: BasketResult) -> dict[str, dict[str, int]]:
    """How many audit reasons denied orders, by code and then by market (``?``: an order not in the store)."""
    symbol_of = {o.order.client_order_id: o.order.symbol for o in result.result.orders}
    out: dict[str, dict[str, int]] = {}
    for event in result.run.events:
        if event.get("kind") == "audit" and event.get("approved") is False:
            per = out.setdefault(event["code"], {})
            symbol = symbol_of.get(event.get("client_order_id"), "?")
            per[symbol] = per.get(symbol, 0) + 1
    return {code: dict(sorted(per.items())) for code, per in sorted(out.items())}


# ---------------------------------------------------------------------- data files


def _write_series(result: BasketResult, shares: dict[str, np.ndarray], path: Path) -> None:
    run = result.run
    bench = result.benchmark.run.equity[1:] if result.benchmark is not None else None
    exposure, drawdown = run.exposure, run.drawdown
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "equity", "basket_equity", "drawdown", "exposure", *(f"share {s}" for s in shares)])
        for i, ts in enumerate(run.timestamps):
            writer.writerow([
                int(ts), repr(float(run.equity[i + 1])), "" if bench is None else repr(float(bench[i])),
                f"{drawdown[i]:.8f}", f"{exposure[i]:.8f}", *(f"{column[i]:.8f}" for column in shares.values()),
            ])


def _write_fills(result: BasketResult, path: Path) -> None:
    columns = ["timestamp", "symbol", "side", "quantity", "price", "fee", "realized_pnl", "client_order_id"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for fill in result.run.fills:
            writer.writerow({key: fill.get(key, "") for key in columns})


# ---------------------------------------------------------------------- charts


def _png(draw: Callable[[Any], None], title: str) -> str:
    """A chart as ``data:`` PNG, so the page needs no other file."""
    plt, fig, ax = _figure(title)
    draw(ax)
    buffer = io.BytesIO()
    _save(plt, fig, buffer)  # type: ignore[arg-type]  # savefig takes a file object as well as a path
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _equity_chart(result: BasketResult) -> str:
    run = result.run

    def draw(ax: Any) -> None:
        dates = _dates(run.timestamps)
        ax.plot(dates, run.equity[1:], label=result.strategy, linewidth=1.2)
        if result.benchmark is not None:
            ax.plot(dates, result.benchmark.run.equity[1:], label=BASKET, linewidth=1.0, alpha=0.8)
        ax.set_ylabel("equity")
        ax.legend(loc="upper left")

    return _png(draw, f"Portfolio equity: {result.strategy} on {len(result.symbols)} markets {result.timeframe} (net of fees)")


def _contribution_chart(result: BasketResult) -> str:
    markets = result.result.markets
    symbols = list(markets)
    pnl = [float(markets[s]["pnl"]) for s in symbols]

    def draw(ax: Any) -> None:
        colours = ["tab:green" if v >= 0 else "tab:red" for v in pnl]
        ax.barh(symbols, pnl, color=colours)
        ax.axvline(0, color="k", linewidth=0.8)
        ax.invert_yaxis()  # the first market on top, as in the table
        ax.set_xlabel("PnL (quote currency, net of fees)")

    return _png(draw, "Contribution of each market")


def _exposure_chart(result: BasketResult, shares: dict[str, np.ndarray]) -> str:
    run = result.run
    cap = (result.settings.get("limits") or {}).get("max_gross_exposure")

    def draw(ax: Any) -> None:
        dates = _dates(run.timestamps)
        ax.stackplot(dates, *(column * 100 for column in shares.values()), labels=list(shares), alpha=0.7, step="post")
        if cap is not None:
            ax.axhline(cap * 100, color="k", linestyle="--", linewidth=0.9, label=f"max_gross_exposure {cap * 100:g}%")
        ax.set_ylabel("share of equity (%)")
        ax.set_ylim(0, max(5.0, float(np.max(run.exposure, initial=0.0)) * 110, (cap or 0) * 105))
        ax.legend(loc="upper left")

    return _png(draw, "Exposure over time: each market's position as a share of equity")


def _drawdown_chart(result: BasketResult) -> str:
    run = result.run

    def draw(ax: Any) -> None:
        dates = _dates(run.timestamps)
        ax.fill_between(dates, run.drawdown * 100, 0, alpha=0.5, label=result.strategy, step="post")
        if result.benchmark is not None:
            ax.plot(dates, result.benchmark.run.drawdown * 100, linewidth=0.9, alpha=0.8, label=BASKET)
        ax.set_ylabel("drawdown (%)")
        ax.legend(loc="lower left")

    return _png(draw, "Drawdown of the account from its running peak")


# ---------------------------------------------------------------------- the page


def _table(head: list[str], rows: list[list[str]], ident: str) -> str:
    esc = html.escape
    header = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{ident}"><tr>{header}</tr>{body}</table>'


def _html(result: BasketResult, summary: dict[str, Any], shares: dict[str, np.ndarray]) -> str:
    from trader.data import format_ms

    esc = html.escape
    metrics = summary["metrics"]
    bench = (summary.get("benchmark") or {}).get("metrics") or {}
    perf = _table(["metric", result.strategy, BASKET],
                  [[label, format_value(metrics.get(key), kind), format_value(bench.get(key), kind) if bench else ""]
                   for key, label, kind in METRIC_ROWS], "performance")
    denied = denials_by_market(result)
    per_market_denied: dict[str, int] = {}
    for order in result.result.orders:
        if order.status == "denied":
            per_market_denied[order.order.symbol] = per_market_denied.get(order.order.symbol, 0) + 1
    market_rows = [
        [symbol, format_value(m["pnl"], "money"), format_value(m["market_return"], "pct"),
         format_value(m["avg_exposure"], "pct"), format_value(m["final_value"], "money"), f"{m['fills']:,}",
         format_value(m["fees"], "money"), f"{m['candles']:,}", f"{per_market_denied.get(symbol, 0):,}",
         str(result.sources.get(symbol, ""))]
        for symbol, m in summary["markets"].items()
    ]
    markets = _table(["market", "contribution (PnL)", "market return", "average exposure", "final value", "fills", "fees",
                      "candles", "denied orders", "data"], market_rows, "markets")
    if denied:
        denied_html = _table(["reason code", "orders denied", "by market"],
                             [[code, f"{sum(per.values()):,}", ", ".join(f"{s} {n}" for s, n in per.items())]
                              for code, per in denied.items()], "denied")
    else:
        denied_html = '<p id="denied">No order was denied.</p>'
    settings = _table(["setting", "value"], [[str(k), str(v)] for k, v in summary["settings"].items()], "settings")
    rng = summary["range"]
    title = f"Basket backtest: {result.strategy} on {len(result.symbols)} markets {result.timeframe}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{esc(format_ms(rng['start']))} .. {esc(format_ms(rng['end']))} UTC, {rng['steps']:,} steps on the union of the markets'
candles ({esc(', '.join(result.symbols))}). One account, one risk budget; the baseline is the {BASKET}: buy-and-hold
putting 1/{len(result.symbols)} of the account into each market at its first candle. Fills: {summary['fills']:,}.</p>
<p>{esc(halt_text(summary))}</p>
{verdict_section(summary.get("verdict"))}
<h2 id="equity">Portfolio equity</h2><img src="{_equity_chart(result)}" alt="portfolio equity against the {BASKET}">
<h2>Performance, net of costs</h2>{perf}
<h2 id="contribution">Per market</h2>{markets}
<img src="{_contribution_chart(result)}" alt="contribution of each market">
<h2 id="exposure">Exposure over time</h2><img src="{_exposure_chart(result, shares)}" alt="share of equity per market">
<h2 id="drawdown">Drawdown</h2><img src="{_drawdown_chart(result)}" alt="drawdown">
<h2>Denied orders</h2>{denied_html}
<h2>Settings</h2>{settings}
<p>Data: <a href="results.json">results.json</a>, <a href="equity.csv">equity.csv</a>, <a href="fills.csv">fills.csv</a>.</p>
</body></html>
"""
