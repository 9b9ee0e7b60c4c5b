"""``trader compare``: trained strategies side by side on the same held-out candles."""

from __future__ import annotations

import json
from typing import Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbol_callback, timeframe_callback

__all__ = ["compare"]

_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss")
_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal.acc", "macro_f1": "F1", "roc_auc": "AUC", "log_loss": "logloss"}


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value * 100:+.2f}%" if pct else f"{value:.4f}"


@click.command()
@click.option("--plugin", "plugin_names", multiple=True, required=True, help="Strategy to compare (repeat).")
@click.option("--symbol", default="BTC/USDT", show_default=True, callback=symbol_callback)
@click.option("--timeframe", default="1h", show_default=True, callback=timeframe_callback)
@click.option("--exchange", default=None, help="Exchange whose stored candles to use.")
@click.option("--from", "start", default=None, help="Start of the held-out range (date or ms); default: after every model's training data.")
@click.option("--to", "end", default=None, help="End of the held-out range (default: the last candle).")
@click.option("--fee-bps", type=click.FloatRange(min=0), default=10.0, show_default=True, help="Fee per position change, in basis points.")
@click.option("--synthetic-bars", type=click.IntRange(min=100), default=None, help="Synthetic market size when no candles are stored (default: what the models were trained on).")
@click.option("--synthetic-seed", "seed", type=click.IntRange(min=0), default=None, help="Synthetic market seed (default: the one the models were trained on).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def compare(
    app: AppContext,
    plugin_names: tuple[str, ...],
    symbol: str,
    timeframe: str,
    exchange: str | None,
    start: str | None,
    end: str | None,
    fee_bps: float,
    synthetic_bars: int | None,
    seed: int | None,
    as_json: bool,
) -> None:
    """Evaluate models side by side on the same held-out range, beside the majority baseline and buy_and_hold."""
    from trader.data import parse_time_ms, resolve_candles
    from trader.evaluation.model_comparison import compare_strategies
    from trader.models import ModelPersistence

    names = list(dict.fromkeys(plugin_names))
    manager = app.plugins_for(names)  # imports these strategies and no other
    for name in names:
        manager.strategy(name)  # unknown names: exit 2 naming the installed ones
    store = ModelPersistence(app.config.models_dir)
    trained = [v for name in names if (v := store.latest(name, symbol, timeframe)) is not None and v.problem is None]
    if synthetic_bars is None:
        synthetic_bars = max((int(v.data.get("range", {}).get("rows") or 0) for v in trained), default=0) or 5000
    if seed is None:
        seed = _training_seed(trained)
    candles, source = resolve_candles(app.home, symbol, timeframe, exchange=exchange, synthetic_bars=synthetic_bars, seed=seed)
    params = {name: app.config.plugin_params(name) for name in [*names, "buy_and_hold"]}
    result = compare_strategies(
        manager, names, candles, symbol=symbol, timeframe=timeframe, models_dir=app.config.models_dir,
        source=source, start=parse_time_ms(start, "--from") if start else None,
        end=parse_time_ms(end, "--to") if end else None, fee_bps=fee_bps, params=params,
    )
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    data = result.as_dict()
    held = data["held_out"]
    click.echo(f"{symbol} {timeframe} from {source}; held-out {held['start_iso']} .. {held['end_iso']} ({held['rows']:,} candles), fees {fee_bps:g} bps")
    header = f"{'strategy':<22} {'version':<8} " + " ".join(f"{_SHORT[m]:>8}" for m in _METRICS) + f" {'return':>9} {'trades':>6}"
    click.echo(header)
    baselines: dict[str, dict[str, Any]] = {}
    for row in result.strategies:
        if row.status != "ok":
            click.echo(f"{row.plugin:<22} {'-':<8} {row.status}: {row.message}")
            continue
        cls = row.classification or {}
        model = cls.get("model", {})
        metrics = " ".join(f"{_fmt(model.get(m)):>8}" for m in _METRICS)
        trading = row.trading or {}
        click.echo(f"{row.plugin:<22} {row.version or '-':<8} {metrics} {_fmt(trading.get('total_return'), pct=True):>9} {trading.get('trades', 0):>6}")
        if cls:
            baselines[json.dumps(cls.get("label"), sort_keys=True)] = cls
    for cls in baselines.values():
        base = cls["baseline"]
        label = cls.get("label") or {}
        name = f"majority (h={label.get('horizon')})" if len(baselines) > 1 else "majority baseline"
        click.echo(f"{name:<22} {'-':<8} " + " ".join(f"{_fmt(base.get(m)):>8}" for m in _METRICS))
    for note in result.notes:
        click.echo(f"note: {note}")


def _training_seed(versions: list[Any]) -> int:
    for version in versions:
        seed = version.data.get("range", {}).get("synthetic_seed")
        if isinstance(seed, int):
            return seed
    return 0
