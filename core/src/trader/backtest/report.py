"""``--report DIR``: equity, drawdown and position plots (PNG), an HTML summary, JSON and CSV.

Files written: ``results.json`` (the summary), ``equity.csv`` (per bar: time, close,
equity, baseline equity, drawdown, exposure), ``fills.csv``, ``equity.png``,
``drawdown.png``, ``position.png`` and ``report.html`` that shows them together.
Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import csv
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from trader.backtest.results import BacktestResult, SimulatedRun

__all__ = ["write_report", "METRIC_ROWS", "format_value", "annualised_mark", "sample_text", "halt_text", "fold_rows",
           "verdict_section"]

#: (key, label, format) of the metric table, in order.
METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("total_return", "Total return", "pct"),
    ("annual_return", "Annualised return", "pct"),
    ("volatility", "Volatility (annualised)", "pct"),
    ("sharpe", "Sharpe", "num"),
    ("sortino", "Sortino", "num"),
    ("calmar", "Calmar", "num"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("max_drawdown_days", "Max drawdown duration (days)", "num1"),
    ("trades", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "num"),
    ("exposure", "Exposure (time in market)", "pct"),
    ("avg_exposure", "Average exposure", "pct"),
    ("turnover", "Turnover (x mean equity)", "num1"),
    ("fees_paid", "Fees paid", "money"),
    ("final_equity", "Final equity", "money"),
)


def format_value(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{value * 100:.2f}%"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "num1":
        return f"{value:.1f}"
    return f"{value:.3f}"


def annualised_mark(key: str, caveat: str | None) -> str:
    """``"*"`` beside an annualised metric when the range is too short to annualise (see the caveat line)."""
    from trader.evaluation.performance import ANNUALISED_KEYS

    return "*" if caveat and key in ANNUALISED_KEYS else ""


def sample_text(summary: dict[str, Any]) -> str:
    """Where the range lies against the model's training data, in the same words everywhere ("" without a model)."""
    from trader.data import format_ms

    if summary.get("settings", {}).get("walk_forward"):
        return "out of sample: walk-forward, each fold trades only candles after its training window and purge"
    model = summary.get("model")
    if not model:
        return ""
    trained = model.get("trained_on") or {}
    span = f"trained on {format_ms(trained.get('start'))} .. {format_ms(trained.get('end'))}"
    purge = f"{model.get('purge_bars', 0)}-bar purge"
    sample = model.get("sample", "unknown")
    if sample == "out_of_sample":
        return f"model {model['version']}: out of sample ({span}; the range starts after it and the {purge})"
    if sample == "trained_later":
        return (f"model {model['version']}: NOT out of sample: the model was TRAINED ON LATER DATA ({span}) than this "
                "range, so it has seen this range's future; these figures are optimistic")
    if sample == "unknown":
        return f"model {model['version']}: NOT known to be out of sample (its manifest has no training range)"
    parts = [f"{model['overlap_fraction'] * 100:.0f}% of the range overlaps the training data (plus the {purge})"]
    if model.get("before_fraction"):
        parts.append(f"{model['before_fraction'] * 100:.0f}% lies before it (the model was trained on later data)")
    return f"model {model['version']}: IN-SAMPLE: {'; '.join(parts)}; {span}; these figures are optimistic"


def halt_text(summary: dict[str, Any]) -> str:
    """The final risk status, why trading halted, and how many orders each rule denied."""
    from trader.data import format_ms

    text = f"risk: final status {summary['final_status']}"
    halt = summary.get("halt")
    if halt:
        text += f" since {format_ms(halt.get('timestamp'))} UTC ({halt.get('code')}: {halt.get('message')})"
    denied = summary.get("denied_orders") or {}
    text += "; denied orders: " + (", ".join(f"{code} x{count}" for code, count in sorted(denied.items())) or "none")
    return text


def fold_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """``(fold, train range, test range, return, ROC-AUC)`` per walk-forward fold, as text."""
    from trader.data import format_ms

    rows = []
    for f in summary.get("folds") or ():
        auc = ((f.get("classification") or {}).get("model") or {}).get("roc_auc")
        rows.append((str(f["index"]), f"{format_ms(f.get('train_start_time'))} .. {format_ms(f.get('train_end_time'))}",
                     f"{format_ms(f.get('test_start_time'))} .. {format_ms(f.get('test_end_time'))}",
                     format_value(f.get("test_return"), "pct"), format_value(auc, "num")))
    return rows


def verdict_section(verdict: dict[str, Any] | None) -> str:
    """The verdict's line and its questions as an HTML section ("" without a verdict)."""
    from trader.backtest.verdict import question_rows

    if not verdict:
        return ""
    esc = html.escape
    q_rows = "".join(
        f"<tr><td>{i}. {esc(title)}</td><td>{esc(value)}</td><td>{esc(measure)}</td><td>p {esc(p)}</td>"
        f"<td><b>{answer}</b></td></tr>"
        for i, (title, value, measure, p, answer) in enumerate(question_rows(verdict), 1)
    )
    return (
        f"<h2>Verdict</h2><p><b>{esc(verdict['line'])}</b></p>"
        f"<table><tr><th>question</th><th>estimate [95 % interval]</th><th>measure</th><th>one-sided p</th>"
        f"<th>holds (p &lt; {verdict['alpha']:g})</th></tr>{q_rows}</table>"
    )


def _dates(timestamps: np.ndarray) -> np.ndarray:
    return np.asarray(timestamps, dtype="int64").astype("datetime64[ms]")


def _figure(title: str):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.2), dpi=100)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return plt, fig, ax


def _save(plt: Any, fig: Any, path: Path) -> None:
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_equity(result: BacktestResult, path: Path) -> None:
    plt, fig, ax = _figure(f"Equity: {result.strategy} on {result.symbol} {result.timeframe} (net of fees)")
    run = result.run
    dates = _dates(run.timestamps)
    ax.plot(dates, run.equity[1:], label=result.strategy, linewidth=1.2)
    if result.benchmark is not None:
        ax.plot(dates, result.benchmark.equity[1:], label="buy_and_hold", linewidth=1.0, alpha=0.8)
    _mark_folds(ax, result)
    ax.set_ylabel("equity")
    ax.legend(loc="upper left")
    _save(plt, fig, path)


def _plot_drawdown(result: BacktestResult, path: Path) -> None:
    plt, fig, ax = _figure("Drawdown from the running peak")
    dates = _dates(result.run.timestamps)
    ax.fill_between(dates, result.run.drawdown * 100, 0, alpha=0.5, label=result.strategy, step="post")
    if result.benchmark is not None:
        ax.plot(dates, result.benchmark.drawdown * 100, linewidth=0.9, alpha=0.8, label="buy_and_hold")
    ax.set_ylabel("drawdown (%)")
    ax.legend(loc="lower left")
    _save(plt, fig, path)


def _plot_position(result: BacktestResult, path: Path) -> None:
    plt, fig, ax = _figure("Position (share of equity) and price")
    run = result.run
    dates = _dates(run.timestamps)
    ax.fill_between(dates, run.exposure * 100, 0, step="post", alpha=0.35, color="tab:green", label="position")
    ax.set_ylabel("position (% of equity)")
    ax.set_ylim(0, max(5.0, float(np.max(run.exposure, initial=0.0)) * 110))
    price = ax.twinx()
    price.plot(dates, run.close, color="tab:gray", linewidth=0.8, label="close")
    buys = [f for f in run.fills if f.get("side") == "buy"]
    sells = [f for f in run.fills if f.get("side") == "sell"]
    if len(run.fills) <= 2000:  # markers stay readable
        if buys:
            price.scatter(_dates(np.array([f["timestamp"] for f in buys])), [f["price"] for f in buys], marker="^", s=14,
                          color="tab:green", label="buy")
        if sells:
            price.scatter(_dates(np.array([f["timestamp"] for f in sells])), [f["price"] for f in sells], marker="v", s=14,
                          color="tab:red", label="sell")
    price.set_ylabel("close")
    handles = ax.get_legend_handles_labels()
    more = price.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="upper left")
    _save(plt, fig, path)


def _mark_folds(ax: Any, result: BacktestResult) -> None:
    for fold in result.folds[1:]:
        start = fold.get("test_start_time")
        if start is not None:
            ax.axvline(np.datetime64(int(start), "ms"), color="k", alpha=0.15, linewidth=0.8)


def _write_series(result: BacktestResult, path: Path) -> None:
    run = result.run
    bench = result.benchmark.equity[1:] if result.benchmark is not None else None
    exposure, drawdown = run.exposure, run.drawdown
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "close", "equity", "benchmark_equity", "drawdown", "exposure", "action"])
        for i, ts in enumerate(run.timestamps):
            writer.writerow([
                int(ts), repr(float(run.close[i])), repr(float(run.equity[i + 1])),
                "" if bench is None else repr(float(bench[i])), f"{drawdown[i]:.8f}", f"{exposure[i]:.8f}",
                int(run.actions[i]) if run.actions.size else "",
            ])


def _write_fills(run: SimulatedRun, path: Path) -> None:
    columns = ["timestamp", "side", "quantity", "price", "fee", "realized_pnl", "client_order_id"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for fill in run.fills:
            writer.writerow({key: fill.get(key, "") for key in columns})


def _html(result: BacktestResult, summary: dict[str, Any]) -> str:
    from trader.backtest.verdict import format_p
    from trader.data import format_ms

    esc = html.escape
    run_metrics = summary["metrics"]
    bench_metrics = summary["benchmark"]["metrics"] if summary.get("benchmark") else {}
    caveat = summary.get("annualised_caveat")
    rows = []
    for key, label, kind in METRIC_ROWS:
        mark = annualised_mark(key, caveat)
        bench = format_value(bench_metrics.get(key), kind) + mark if bench_metrics else ""
        rows.append(f"<tr><td>{esc(label)}</td><td>{format_value(run_metrics.get(key), kind)}{mark}</td><td>{bench}</td></tr>")
    caveat_html = f"<p>* {esc(caveat)}</p>" if caveat else ""
    guard = summary.get("plausibility") or {}
    guard_html = (f'<p style="border:2px solid #c00;padding:8px;color:#900"><b>{esc(guard["line"])}</b></p>'
                  if guard.get("warning") else "")
    sample = sample_text(summary)
    sample_html = f"<p><b>{esc(sample)}</b></p>" if sample else ""
    verdict_html = verdict_section(summary.get("verdict"))
    sig = summary.get("significance")
    sig_html = ""
    if sig:
        sh = sig["sharpe"]
        sig_html = (
            f"<h2>Sharpe ratio</h2><p>Sharpe {format_value(sh['estimate'], 'num')}, {int(sh['confidence'] * 100)}% "
            f"block-bootstrap interval [{format_value(sh['low'], 'num')}, {format_value(sh['high'], 'num')}] "
            f"({sig['n_resamples']} resamples, mean block {sig['mean_block']:.0f} bars): {esc(sig['verdict'])}. "
            f"One-sided p-value (Sharpe &le; 0): {esc(format_p(sig['p_value'], sig.get('p_floor')))}; "
            f"probabilistic Sharpe ratio {format_value(sig['psr'], 'num')}; deflated Sharpe ratio "
            f"{format_value(sig['dsr'], 'num')} for {sig['n_trials']} trial(s).</p>"
        )
        if sig.get("excess_sharpe"):
            ex = sig["excess_sharpe"]
            sig_html += (
                f"<p>Sharpe minus buy-and-hold's: {format_value(ex['estimate'], 'num')} "
                f"[{format_value(ex['low'], 'num')}, {format_value(ex['high'], 'num')}], "
                f"one-sided p-value (not better) {esc(format_p(sig.get('p_value_vs_benchmark'), sig.get('p_floor')))}.</p>"
            )
    cls_html = ""
    cls = summary.get("classification")
    if cls and cls.get("model"):
        names = list(cls["model"])
        head = "".join(f"<th>{esc(n)}</th>" for n in names)
        model_row = "".join(f"<td>{format_value(cls['model'][n], 'num')}</td>" for n in names)
        base_row = "".join(f"<td>{format_value(cls['baseline'][n], 'num')}</td>" for n in names)
        where = "Out-of-sample" if summary.get("sample") == "out_of_sample" else "NOT out-of-sample"
        cls_html = (
            f"<h2>{where} classification ({cls.get('n_samples', '?')} samples)</h2>"
            f"<table><tr><th></th>{head}</tr><tr><td>model</td>{model_row}</tr>"
            f"<tr><td>majority baseline</td>{base_row}</tr></table>"
        )
    folds_html = ""
    folds = fold_rows(summary)
    if folds:
        fold_html_rows = "".join("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>" for row in folds)
        folds_html = (
            "<h2>Walk-forward folds</h2><table><tr><th>fold</th><th>train</th><th>test</th><th>return</th>"
            f"<th>ROC-AUC</th></tr>{fold_html_rows}</table>"
        )
    settings = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(str(v))}</td></tr>" for k, v in summary["settings"].items())
    rng = summary["range"]
    title = f"Backtest: {result.strategy} on {result.symbol} {result.timeframe}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}</style></head><body>
<h1>{esc(title)}</h1>
<p>{esc(format_ms(rng['start']))} .. {esc(format_ms(rng['end']))} UTC, {rng['bars']:,} bars ({rng['days']:.3g} days); data: {esc(summary['source'])}.
Market (close to close): {format_value(summary['market_return'], 'pct')}. Fills: {summary['fills']:,}.</p>
<p>{esc(halt_text(summary))}</p>
{sample_html}{guard_html}{verdict_html}
<h2>Performance, net of costs</h2>
<table><tr><th>metric</th><th>{esc(result.strategy)}</th><th>buy_and_hold</th></tr>{''.join(rows)}</table>
{caveat_html}{sig_html}{cls_html}
<img src="equity.png" alt="equity curve"><img src="drawdown.png" alt="drawdown"><img src="position.png" alt="position">
{folds_html}
<h2>Settings</h2><table>{settings}</table>
<p>Files: <a href="results.json">results.json</a>, <a href="equity.csv">equity.csv</a>, <a href="fills.csv">fills.csv</a>.</p>
</body></html>
"""


def write_report(result: BacktestResult, directory: str | Path) -> list[Path]:
    """Write every report file into ``directory`` (created); return their paths."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    summary = result.to_dict()
    paths = {name: out / name for name in ("results.json", "equity.csv", "fills.csv", "equity.png", "drawdown.png",
                                           "position.png", "report.html")}
    paths["results.json"].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    _write_series(result, paths["equity.csv"])
    _write_fills(result.run, paths["fills.csv"])
    _plot_equity(result, paths["equity.png"])
    _plot_drawdown(result, paths["drawdown.png"])
    _plot_position(result, paths["position.png"])
    paths["report.html"].write_text(_html(result, summary), encoding="utf-8")
    return list(paths.values())
