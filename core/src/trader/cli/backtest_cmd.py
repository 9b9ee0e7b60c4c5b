"""``trader backtest``: replay history through the engine's step, with metrics, a baseline and a report."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbols_callback, timeframe_callback
from trader.cli.train_cmd import training_params
from trader.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["backtest", "render_result"]

_SIG_NOTE = "block-bootstrap"


def _time_option(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    from trader.data import parse_time_ms
    from trader.errors import DataError

    try:
        return parse_time_ms(value, name)
    except (DataError, ValueError) as exc:
        raise ConfigError(f"--{name}: {exc}") from None


def _fmt(value: Any, kind: str) -> str:
    from trader.backtest.report import format_value

    return format_value(value, kind)


def render_result(result: Any) -> list[str]:
    """The terminal summary of a backtest (what ``--json`` prints as data)."""
    from trader.backtest.report import METRIC_ROWS, annualised_mark, fold_rows, halt_text, sample_text
    from trader.backtest.verdict import format_p, question_rows
    from trader.costs import format_costs
    from trader.data import format_ms

    data = result.to_dict()
    s = data["settings"]
    rng = data["range"]
    lines = [
        f"backtest {data['strategy']} on {data['source']}: {data['symbol']} {data['timeframe']}, "
        f"{format_ms(rng['start'])} .. {format_ms(rng['end'])} UTC, {rng['bars']:,} candles ({rng['days']:.3g} days)"
        + (f", {s['folds']} walk-forward folds (out-of-sample only)" if s.get("walk_forward") else ""),
        "costs: " + format_costs(s),
        f"cash {s['cash']:,.2f}, "
        f"max position {s['max_position_fraction'] * 100:g}% of equity; market {_fmt(data['market_return'], 'pct')}",
    ]
    sample = sample_text(data)
    if sample:
        lines.append(sample)
    guard = data.get("plausibility") or {}
    if guard.get("warning"):
        lines.append(guard["line"])
    bench = (data.get("benchmark") or {}).get("metrics") or {}
    name_width = max(len(data["strategy"]), 8)
    caveat = data.get("annualised_caveat")
    lines.append(f"{'':<30} {data['strategy']:>{name_width}} {'buy_and_hold':>13}")
    for key, label, kind in METRIC_ROWS:
        mark = annualised_mark(key, caveat)
        other = _fmt(bench.get(key), kind) + mark if bench else ""
        lines.append(f"{label:<30} {_fmt(data['metrics'].get(key), kind) + mark:>{name_width}} {other:>13}")
    if caveat:
        lines.append(f"* {caveat}")
    sig = data.get("significance")
    if sig:
        sh = sig["sharpe"]
        lines.append(
            f"Sharpe {_fmt(sh['estimate'], 'num')}, {sh['confidence'] * 100:.0f}% {_SIG_NOTE} interval "
            f"[{_fmt(sh['low'], 'num')}, {_fmt(sh['high'], 'num')}]: {sig['verdict']} "
            f"(one-sided p {_p(format_p(sig['p_value'], sig.get('p_floor')))}, PSR {_fmt(sig['psr'], 'num')}, "
            f"DSR {_fmt(sig['dsr'], 'num')} for {sig['n_trials']} trial(s))"
        )
        if sig.get("excess_sharpe"):
            ex = sig["excess_sharpe"]
            lines.append(
                f"Sharpe minus buy_and_hold's: {_fmt(ex['estimate'], 'num')} [{_fmt(ex['low'], 'num')}, {_fmt(ex['high'], 'num')}], "
                f"one-sided p {_p(format_p(sig.get('p_value_vs_benchmark'), sig.get('p_floor')))}"
            )
    verdict = data.get("verdict")
    if verdict:
        lines.append(f"skill questions (one-sided p; each holds at p < {verdict['alpha']:g}, 95% intervals):")
        for i, (title, value, measure, p, answer) in enumerate(question_rows(verdict), 1):
            lines.append(f"  {i}. {title:<30} {value:<32} {measure:<44} p {p:<9} {answer}")
        lines.append(verdict["line"])
    cls = data.get("classification")
    if cls and cls.get("model"):
        where = "out of sample" if data.get("sample") == "out_of_sample" else "NOT out of sample"
        lines.append(f"{'classification (' + format(cls['n_samples'], ',') + ' samples, ' + where + ')':<30} "
                     f"{'model':>8} {'majority':>9}")
        for name in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"):
            lines.append(f"  {name:<28} {_fmt(cls['model'].get(name), 'num'):>8} {_fmt(cls['baseline'].get(name), 'num'):>9}")
        if cls.get("roc_auc_permutation_p") is not None:
            lines.append(f"  ROC-AUC block-permutation p-value (one-sided): "
                         f"{_p(format_p(cls['roc_auc_permutation_p'], cls.get('roc_auc_permutation_floor')))}")
    folds = fold_rows(data)
    if folds:
        lines.append(f"{'fold':>4}  {'train':<35}  {'test':<35}  {'return':>9}  {'ROC-AUC':>7}")
        for index, train, test, ret, auc in folds:
            lines.append(f"{index:>4}  {train:<35}  {test:<35}  {ret:>9}  {auc:>7}")
    lines.append(halt_text(data))
    t = data.get("timings") or {}
    lines.append("time: " + ", ".join(f"{k[:-2]} {v:.2f}s" for k, v in t.items()))
    return lines


def _p(text: str) -> str:
    return text if text.startswith("<") or text == "n/a" else f"= {text}"


class _FoldProgress:
    """A rich progress bar over the walk-forward folds (on stderr)."""

    def __init__(self, enabled: bool, where: str = "") -> None:
        self.enabled = enabled
        self.where = where
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _FoldProgress:
        if self.enabled:
            from trader.cli.progress import counted_progress

            self.progress = counted_progress("walk-forward")
            self.progress.__enter__()
        return self

    def __call__(self, event: str, fold: Any, total: int) -> None:
        if self.progress is None:
            return
        if self.task is None:
            self.task = self.progress.add_task(f"folds ({self.where})", total=total)
        if event == "done":  # folds run side by side: only their ends are seen here
            self.progress.update(self.task, description=f"fold {fold.index + 1}/{total} done ({self.where})", advance=1)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy to backtest.")
@click.option("--symbol", "symbols", multiple=True, callback=symbols_callback,
              help="Market symbol [default: [plugins.NAME] symbols, else BTC/USDT]; repeat it for a basket: one account "
                   "trading every market (see docs/portfolios.md).")
@click.option("--timeframe", default=None, callback=timeframe_callback,
              help="Candle timeframe [default: [plugins.NAME] timeframe, else 1h].")
@click.option("--exchange", default=None, help="Exchange whose stored candles to use (when several hold the symbol).")
@click.option("--from", "start", default=None, help="First candle (date/time, UTC) to trade [default: the first].")
@click.option("--to", "end", default=None, help="Last candle (date/time, UTC) to trade [default: the last].")
@click.option("--fee-bps", type=click.FloatRange(min=0), default=None, help="Fee in basis points [default: [broker] fee_bps, else 10].")
@click.option("--slippage-bps", type=click.FloatRange(min=0), default=None, help="Slippage in basis points [default: [broker] slippage_bps, else 2].")
@click.option("--spread-bps", type=click.FloatRange(min=0, max=10_000, max_open=True), default=None,
              help="Bid-ask spread in basis points; fills pay half of it [default: [broker] spread_bps, else estimated per candle from the candles before it (EDGE)].")
@click.option("--cash", type=click.FloatRange(min=0, min_open=True), default=None, help="Starting cash [default: [broker] cash, else 10000].")
@click.option("--model-version", default=None, help="Model version to use (e.g. v2) [default: latest].")
@click.option("--walk-forward", is_flag=True, help="Retrain on rolling windows and test on the bars after each (out of sample).")
@click.option("--train-bars", type=click.IntRange(min=1), default=None, help="Walk-forward: candles per training window.")
@click.option("--test-bars", type=click.IntRange(min=1), default=None, help="Walk-forward: candles per test window.")
@click.option("--step", "step_bars", type=click.IntRange(min=1), default=None, help="Walk-forward: bars between fold starts [default: --test-bars].")
@click.option("--purge-bars", type=click.IntRange(min=0), default=24, show_default=True, help="Walk-forward: bars dropped between training and test (>= the label horizon).")
@click.option("--embargo-bars", type=click.IntRange(min=0), default=0, show_default=True, help="Walk-forward: further bars dropped after the purge.")
@click.option("--anchored", is_flag=True, help="Walk-forward: train from the first candle each time (expanding window).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Walk-forward: training epochs (overrides [plugins.NAME.train]).")
@click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Walk-forward: training parameter (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for training, the bootstrap and the synthetic market.")
@click.option("--bootstrap", "n_resamples", type=click.IntRange(min=100), default=1000, show_default=True, help="Bootstrap resamples for the intervals.")
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=1, show_default=True, help="Strategies or settings tried so far (deflates the Sharpe ratio).")
@click.option("--synthetic-bars", type=click.IntRange(min=100), default=5000, show_default=True, help="Size of the synthetic market used when no candles are stored.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), default=None, help="Write plots (PNG), report.html, results.json and CSVs here.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--no-benchmark", is_flag=True, help="Do not run the buy-and-hold baseline (on a basket: the equal-weight basket).")
@click.option("--no-progress", is_flag=True, help="Do not show the walk-forward progress bar.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default=None,
              help="Walk-forward: where the folds run: local processes, or Ray [default: local].")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Walk-forward: folds run at once [default: the usable cores; a local Ray gets this many CPUs].")
@click.option("--ray-address", default=None, help="Walk-forward with --executor ray: the cluster [default: RAY_ADDRESS, else a local Ray].")
@pass_app
def backtest(
    app: AppContext,
    plugin_name: str,
    symbols: tuple[str, ...],
    timeframe: str | None,
    exchange: str | None,
    start: str | None,
    end: str | None,
    fee_bps: float | None,
    slippage_bps: float | None,
    spread_bps: float | None,
    cash: float | None,
    model_version: str | None,
    walk_forward: bool,
    train_bars: int | None,
    test_bars: int | None,
    step_bars: int | None,
    purge_bars: int,
    embargo_bars: int,
    anchored: bool,
    epochs: int | None,
    param_pairs: tuple[str, ...],
    seed: int,
    n_resamples: int,
    n_trials: int,
    synthetic_bars: int,
    report_dir: str | None,
    as_json: bool,
    no_benchmark: bool,
    no_progress: bool,
    executor_name: str | None,
    workers: int | None,
    ray_address: str | None,
) -> None:
    """Backtest a strategy: features once, its model batched, then the same per-candle step,
    paper broker and risk rules as `trader run`; metrics beside buy-and-hold, a bootstrap
    interval, and with --report plots and an HTML summary.

    With --walk-forward the model is retrained on rolling windows of --train-bars candles
    and judged only on the --test-bars candles after each (with purge and embargo between).

    With two or more --symbol the strategy trades them all from one account (a basket, on
    stored candles only), judged against the equal-weight buy-and-hold basket.
    """
    from trader.backtest.runner import BacktestSettings, run_backtest
    from trader.cli.run_cmd import run_markets
    from trader.data import resolve_candles

    symbols, timeframe = run_markets(app.config, plugin_name, symbols, timeframe)  # as `trader run` picks them
    start_ms, end_ms = _time_option(start, "from"), _time_option(end, "to")
    if start_ms is not None and end_ms is not None and start_ms > end_ms:
        raise ConfigError("--from must not be after --to")
    if not walk_forward and (train_bars or test_bars or step_bars or anchored or epochs or param_pairs):
        raise ConfigError("--train-bars, --test-bars, --step, --anchored, --epochs and --param need --walk-forward")
    if walk_forward and (train_bars is None or test_bars is None):
        raise ConfigError("--walk-forward needs --train-bars and --test-bars")
    if not walk_forward and (executor_name or workers or ray_address):
        raise ConfigError("--executor, --workers and --ray-address need --walk-forward")
    if walk_forward and len(symbols) == 1:  # a basket's folds run in this process (trader.cli.basket_walkforward)
        from trader.executors import get_executor

        executor = get_executor(executor_name or "local", workers, ray_address)  # Ray missing: one line, exit 2
    if walk_forward and model_version is not None:
        raise ConfigError("--model-version does not apply to --walk-forward, which trains a model for every fold")
    manager = app.plugins_for([plugin_name])  # imports this strategy and no other
    strategy = manager.strategy(plugin_name)  # unknown names fail here, before any data is read
    from trader.params import configured_params

    configured_params(app.config, strategy.info)  # and so does a misspelt or out-of-range [plugins.NAME] key
    settings = BacktestSettings(fee_bps=fee_bps, slippage_bps=slippage_bps, spread_bps=spread_bps, cash=cash, n_resamples=n_resamples,
                                n_trials=n_trials, seed=seed, benchmark=not no_benchmark)
    if len(symbols) > 1 and walk_forward:
        from trader.backtest.walkforward import WalkForwardPlan
        from trader.cli.basket_walkforward import walk_forward_basket

        assert train_bars is not None and test_bars is not None  # refused above without them
        plan = WalkForwardPlan(train_bars, test_bars, step_bars, purge_bars, embargo_bars, anchored,
                               training_params(app.config, plugin_name, param_pairs, epochs, strategy.info), seed)
        walk_forward_basket(app, manager, strategy, symbols, timeframe, exchange=exchange, start=start_ms, end=end_ms,
                            settings=settings, plan=plan, as_json=as_json, no_progress=no_progress,
                            report_dir=report_dir, distributed=bool(executor_name or workers or ray_address))
        return
    if len(symbols) > 1:
        from trader.cli.basket_backtest import backtest_basket

        backtest_basket(app, manager, strategy, symbols, timeframe, exchange=exchange, start=start_ms, end=end_ms,
                        settings=settings, model_version=model_version, report_dir=report_dir, as_json=as_json)
        return
    (symbol,) = symbols
    candles, source = resolve_candles(app.home, symbol, timeframe, exchange=exchange, synthetic_bars=synthetic_bars, seed=seed)
    if walk_forward:
        from trader.backtest.walkforward import WalkForwardPlan, run_walk_forward

        params = training_params(app.config, plugin_name, param_pairs, epochs, strategy.info)
        assert train_bars is not None and test_bars is not None  # refused above without them
        plan = WalkForwardPlan(train_bars, test_bars, step_bars, purge_bars, embargo_bars, anchored, params, seed)
        from trader.executors import PluginSource

        with executor, _FoldProgress(enabled=not no_progress, where=executor.describe()) as progress:
            result = run_walk_forward(manager, app.config, strategy.name, candles, plan, symbol=symbol,
                                      timeframe=timeframe, source=source, start=start_ms, end=end_ms, settings=settings,
                                      progress=progress, executor=executor,
                                      plugins=PluginSource((strategy.name,), app.plugin_cache))
    else:
        result = run_backtest(manager, app.config, strategy.name, candles, symbol=symbol, timeframe=timeframe,
                              source=source, start=start_ms, end=end_ms, settings=settings, model_version=model_version)
    if report_dir:
        from trader.backtest.report import write_report

        write_report(result, report_dir)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2, allow_nan=False))
        return
    for line in render_result(result):
        click.echo(line)
    if report_dir:
        click.echo(f"report: {report_dir}/report.html")
