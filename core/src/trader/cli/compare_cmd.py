"""``trader compare``: trained strategies side by side on the same held-out candles, each backtested as ``trader backtest`` does."""

from __future__ import annotations

import json
from typing import Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbol_callback, timeframe_callback

__all__ = ["compare", "render_comparison"]

_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")
_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal.acc", "macro_f1": "F1", "roc_auc": "AUC", "log_loss": "logloss"}


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.2f}%" if pct else f"{value:.4f}"


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _verdict_line(verdict: Any) -> str:
    if isinstance(verdict, dict):
        return str(verdict.get("line") or verdict.get("verdict") or "")
    return str(verdict or "")


def _costs_line(costs: dict[str, Any]) -> str:
    from trader.costs import format_costs

    return "costs: " + format_costs(costs)


def _row_warnings(row: dict[str, Any]) -> list[str]:
    """What ``trader backtest`` would warn about for this row: the plausibility guard, a model that is not
    out of sample, and a halt with its reason and the denials per rule."""
    from trader.backtest.report import halt_text, sample_text

    out = []
    guard = row.get("plausibility") or {}
    if guard.get("warning"):
        out.append(f"{row['plugin']}: {guard['line']}")
    if row.get("model") and row.get("sample") != "out_of_sample":
        out.append(f"{row['plugin']}: {sample_text({'model': row['model'], 'settings': {}})}")
    risk = row.get("risk") or {}
    if risk.get("final_status") not in (None, "active"):
        out.append(f"{row['plugin']}: {halt_text(risk)}")
    return out


def render_comparison(data: dict[str, Any]) -> list[str]:
    """The terminal table of a comparison (what ``--json`` prints as data)."""
    held = data["held_out"]
    lines = [
        f"{data['symbol']} {data['timeframe']} from {data['source']}; held-out {held['start_iso']} .. {held['end_iso']} "
        f"({held['rows']:,} candles)",
        _costs_line(data.get("costs") or {}),
    ]
    caveat = data.get("annualised_caveat")
    mark = "*" if caveat else ""
    header = (f"{'strategy':<22} {'version':<8} " + " ".join(f"{_SHORT[m]:>8}" for m in _METRICS)
              + f" {'return':>9} {'trades':>6} {'Sharpe' + mark:>7} {'interval':>17}")
    lines.append(header)
    verdicts: list[str] = []
    warnings: list[str] = []
    for row in data["strategies"]:
        if row["status"] != "ok":
            lines.append(f"{row['plugin']:<22} {'-':<8} {row['status']}: {row['message']}")
            continue
        cls = row.get("classification") or {}
        model = cls.get("model") or {}
        metrics = " ".join(f"{_fmt(model.get(m)):>8}" for m in _METRICS)
        trading = row.get("trading") or {}
        sharpe = (row.get("significance") or {}).get("sharpe") or {}
        interval = f"[{_num(sharpe.get('low'))}, {_num(sharpe.get('high'))}]" if sharpe else "-"
        lines.append(
            f"{row['plugin']:<22} {row.get('version') or '-':<8} {metrics} {_fmt(trading.get('total_return'), pct=True):>9} "
            f"{trading.get('trades', 0):>6} {_num(trading.get('sharpe')):>7} {interval:>17}"
        )
        if _verdict_line(row.get("verdict")):
            verdicts.append(f"{row['plugin']}: {_verdict_line(row['verdict'])}")
        warnings.extend(_row_warnings(row))
    baselines = data.get("baselines") or []
    legend = []
    for k, base in enumerate(baselines, 1):
        name = "majority baseline" if len(baselines) == 1 else f"majority #{k}"
        base_metrics = base.get("metrics") or {}
        lines.append(f"{name:<22} {'-':<8} " + " ".join(f"{_fmt(base_metrics.get(m)):>8}" for m in _METRICS))
        label = base.get("label") or {}
        legend.append(f"{name}: class {base.get('majority_class')} of the training labels of {', '.join(base['strategies'])} "
                      f"(horizon {label.get('horizon')}, threshold {label.get('threshold')}); {base.get('source')}"
                      if base.get("majority_class") is not None else f"{name}: {base.get('source')}")
    lines.extend(legend)
    if verdicts:
        lines.append("verdicts (as trader backtest prints them):")
        lines.extend(f"  {v}" for v in verdicts)
    lines.extend(warnings)
    if caveat:
        lines.append(f"* {caveat}")
    lines.extend(f"note: {note}" for note in data.get("notes") or [])
    return lines


def _symbols_callback(ctx: Any, param: Any, value: tuple[str, ...]) -> tuple[str, ...]:
    checked = (symbol_callback(ctx, param, v) for v in value)
    return tuple(dict.fromkeys(s for s in checked if s is not None))


@click.command()
@click.option("--plugin", "plugin_names", multiple=True, required=True, help="Strategy to compare (repeat).")
@click.option("--symbol", "symbols", multiple=True, default=("BTC/USDT",), show_default=True, callback=_symbols_callback,
              help="Market to compare on (repeat: one table per market).")
@click.option("--timeframe", default="1h", show_default=True, callback=timeframe_callback)
@click.option("--exchange", default=None, help="Exchange whose stored candles to use.")
@click.option("--from", "start", default=None, help="Start of the held-out range (date or ms); default: after every model's training data.")
@click.option("--to", "end", default=None, help="End of the held-out range (default: the last candle).")
@click.option("--fee-bps", type=click.FloatRange(min=0), default=None, help="Fee in basis points [default: [broker] fee_bps, else 10].")
@click.option("--slippage-bps", type=click.FloatRange(min=0), default=None, help="Slippage in basis points [default: [broker] slippage_bps, else 2].")
@click.option("--spread-bps", type=click.FloatRange(min=0, max=10_000, max_open=True), default=None,
              help="Bid-ask spread in basis points; fills pay half of it [default: [broker] spread_bps, else estimated per candle from the candles before it (EDGE)].")
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=None, help="Starting cash [default: [broker] cash, else 10000].")
@click.option("--seed", "bootstrap_seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the bootstrap (as trader backtest --seed).")
@click.option("--bootstrap", "n_resamples", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=1, show_default=True, help="Strategies or settings tried so far (deflates the Sharpe ratio).")
@click.option("--synthetic-bars", type=click.IntRange(min=100), default=None, help="Synthetic market size when no candles are stored (default: what the models were trained on).")
@click.option("--synthetic-seed", "seed", type=click.IntRange(min=0), default=None, help="Synthetic market seed (default: the one the models were trained on).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the (strategy, market) backtests run: local processes, or Ray.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Backtests run at once [default: the usable cores; a local Ray gets this many CPUs].")
@click.option("--ray-address", default=None, help="With --executor ray: the cluster [default: RAY_ADDRESS, else a local Ray].")
@pass_app
def compare(
    app: AppContext,
    plugin_names: tuple[str, ...],
    symbols: tuple[str, ...],
    timeframe: str,
    exchange: str | None,
    start: str | None,
    end: str | None,
    fee_bps: float | None,
    slippage_bps: float | None,
    spread_bps: float | None,
    cash: float | None,
    bootstrap_seed: int,
    n_resamples: int,
    n_trials: int,
    synthetic_bars: int | None,
    seed: int | None,
    as_json: bool,
    executor_name: str,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """Backtest strategies side by side on the same held-out range, as `trader backtest` does (same costs,
    trades, Sharpe interval and verdict), with each model's classification metrics beside the majority
    baseline of its training labels, and buy_and_hold. Each (strategy, market) backtest is a task of the
    executor: the same rows whatever the executor and the worker count."""
    from trader.backtest.comparison import ComparedMarket, compare_markets
    from trader.backtest.runner import BacktestSettings
    from trader.data import parse_time_ms, resolve_candles
    from trader.executors import PluginSource, get_executor
    from trader.models import ModelPersistence
    from trader.params import configured_params

    names = list(dict.fromkeys(plugin_names))
    executor = get_executor(executor_name, workers, ray_address)  # Ray missing: one line, exit 2
    manager = app.plugins_for(names)  # imports these strategies and no other
    for name in names:
        configured_params(app.config, manager.strategy(name).info)  # unknown names: exit 2; then [plugins.NAME] checked
    store = ModelPersistence(app.config.models_dir)
    markets = []
    for symbol in symbols:
        trained = [v for name in names if (v := store.latest(name, symbol, timeframe)) is not None and v.problem is None]
        bars = synthetic_bars or max((int(v.data.get("range", {}).get("rows") or 0) for v in trained), default=0) or 5000
        candles, source = resolve_candles(app.home, symbol, timeframe, exchange=exchange, synthetic_bars=bars,
                                          seed=seed if seed is not None else _training_seed(trained))
        markets.append(ComparedMarket(symbol, candles, source))
    settings = BacktestSettings(fee_bps=fee_bps, slippage_bps=slippage_bps, spread_bps=spread_bps, cash=cash,
                                n_resamples=n_resamples, n_trials=n_trials, seed=bootstrap_seed)
    with executor:
        results = compare_markets(
            manager, app.config, names, markets, timeframe=timeframe, settings=settings,
            start=parse_time_ms(start, "--from") if start else None, end=parse_time_ms(end, "--to") if end else None,
            executor=executor, plugins=PluginSource(tuple(names), app.plugin_cache),
        )
    data = [result.as_dict() for result in results]
    if as_json:  # one market: its comparison, as before; several: {"markets": [...]}, in the order given
        click.echo(json.dumps(data[0] if len(data) == 1 else {"markets": data}, indent=2, allow_nan=False))
        return
    for k, comparison in enumerate(data):
        if k:
            click.echo("")
        for line in render_comparison(comparison):
            click.echo(line)



def _training_seed(versions: list[Any]) -> int:
    for version in versions:
        seed = version.data.get("range", {}).get("synthetic_seed")
        if isinstance(seed, int):
            return seed
    return 0
