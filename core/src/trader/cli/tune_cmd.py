"""``trader tune``: search a strategy's declared parameters with Optuna, scored out of sample."""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbols_callback, timeframe_callback
from trader.cli.train_cmd import training_params
from trader.errors import ConfigError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

__all__ = ["tune", "render_report"]


def _fmt(value: Any, kind: str = "num") -> str:
    from trader.backtest.report import format_value

    return format_value(value, kind)


def _metrics_row(label: str, data: dict[str, Any]) -> str:
    m = data.get("metrics") or {}
    return (f"  {label:<34} {_fmt(m.get('sharpe')):>8} {_fmt(m.get('total_return'), 'pct'):>9} "
            f"{_fmt(m.get('max_drawdown'), 'pct'):>9} {m.get('trades', 0):>7}")


def render_report(report: dict[str, Any]) -> list[str]:
    from trader.data import format_ms

    t, h = report["tuning_range"], report["holdout_range"]
    c = report["trials"]
    best = report["best"]
    lines = [
        f"study {report['study']}: {report['strategy']} on {report['source']} {report['symbol']} {report['timeframe']}, "
        f"{report['n_trials']} trials ({c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed), objective {report['objective']}",
        f"tuning range {format_ms(t[0])} .. {format_ms(t[1])} (purged walk-forward: train {report['plan']['train_bars']}, "
        f"test {report['plan']['test_bars']}, purge {report['plan']['purge']}); held-out tail {format_ms(h[0])} .. {format_ms(h[1])}, "
        "seen by no trial",
        f"best trial #{best['number']}: {report['objective']} {_fmt(best['value'])}, "
        + ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}" for k, v in best["params"].items()),
    ]
    default = report.get("default")
    if default:
        shown = _fmt(default["value"]) if default["value"] is not None else default["state"] + (f" ({default['failed']})" if default.get("failed") else "")
        lines.append(f"current settings (trial #{default['number']}): {report['objective']} {shown}")
    lines.append(f"deflated Sharpe of the best over all {report['n_trials']} trials: {_fmt(report['deflated_sharpe'])} "
                 "(the probability its Sharpe beats the best of as many unskilled trials)")
    lines.append(f"  {'best parameters':<34} {'Sharpe':>8} {'return':>9} {'max DD':>9} {'trades':>7}")
    lines.append(_metrics_row("tuning range (chosen on it)", report["tuning"]))
    lines.append(_metrics_row("held-out tail (once)", report["holdout"]))
    sig = (report["holdout"].get("significance") or {}).get("sharpe")
    if sig:
        lines.append(f"held-out Sharpe {_fmt(sig['estimate'])}, {sig['confidence'] * 100:.0f}% block-bootstrap interval "
                     f"[{_fmt(sig['low'])}, {_fmt(sig['high'])}]")
    verdict = report["holdout"].get("verdict")
    if verdict:
        lines.append("held-out verdict: " + verdict["line"])
    if report.get("importances"):
        lines.append("parameter importances (fANOVA): " + ", ".join(f"{k} {v:.2f}" for k, v in report["importances"].items()))
    return lines


class _TrialProgress:
    """Trials done, the best so far and an ETA, on stderr."""

    def __init__(self, enabled: bool, total: int, done: int) -> None:
        self.enabled, self.total, self.done = enabled, total, done
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _TrialProgress:
        if self.enabled:
            from trader.cli.progress import counted_progress

            self.progress = counted_progress("tune")
            self.progress.__enter__()
            self.task = self.progress.add_task("trials", total=self.total, completed=self.done)
        return self

    def __call__(self, study: Any, results: list[dict[str, Any]]) -> None:
        if self.progress is None or self.task is None:
            return
        from optuna.trial import TrialState

        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = max((t.value for t in complete), default=None)
        self.progress.update(self.task, completed=len(finished),
                             description=f"trials, best {_fmt(best)}" if best is not None else "trials")

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)


def _one_market(app: AppContext, plugin: str, symbols: tuple[str, ...], timeframe: str | None) -> tuple[str, str]:
    """The market tuned on: ``--symbol``/``--timeframe``, else ``[plugins.NAME] symbols``/``timeframe``, as
    ``trader run`` picks them; several markets (a basket) are refused, never cut to one of them."""
    from trader.cli.run_cmd import run_markets

    chosen, timeframe = run_markets(app.config, plugin, symbols, timeframe)
    if len(chosen) > 1:
        where = "--symbol" if symbols else f"[plugins.{plugin}] symbols"
        raise ConfigError(f"{where}: trader tune searches one market's parameters, not a basket's "
                          f"({', '.join(chosen)}); give one --symbol")
    return chosen[0], timeframe


def _study_name(plugin: str, symbol: str, timeframe: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{plugin}-{symbol}-{timeframe}")


def _written_keys(config: Any, plugin: str) -> set[str]:
    """Keys of [plugins.PLUGIN] (and train.KEY) that trader.toml itself sets: they beat the tuned file."""
    import tomllib

    if config.path is None:
        return set()
    table = tomllib.loads(config.path.read_text(encoding="utf-8")).get("plugins", {}).get(plugin, {})
    keys = {k for k in table if k not in ("train", "risk", "tune")}
    return keys | {f"train.{k}" for k in (table.get("train") or {})}


@click.command()
@click.option("--plugin", "plugin_name", default=None, help="Strategy whose parameters to search.")
@click.option("--symbol", "symbols", multiple=True, callback=symbols_callback,
              help="The market to tune on [default: [plugins.NAME] symbols, else BTC/USDT]; one market: a basket is not tuned.")
@click.option("--timeframe", default=None, callback=timeframe_callback,
              help="Candle timeframe [default: [plugins.NAME] timeframe, else 1h].")
@click.option("--exchange", default=None, help="Exchange whose stored candles to use (when several hold the symbol).")
@click.option("--from", "start", default=None, help="First candle (date/time, UTC) [default: the first].")
@click.option("--to", "end", default=None, help="Last candle (date/time, UTC) [default: the last].")
@click.option("--trials", "n_trials", type=click.IntRange(min=1), default=20, show_default=True, help="Finished trials the study should hold (a resumed study runs the rest).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop asking for new trials after this many seconds (the round running finishes).")
@click.option("--objective", type=click.Choice(["sharpe", "return", "sortino", "calmar"]), default="sharpe", show_default=True, help="Walk-forward metric each trial maximises.")
@click.option("--study", "study_name", default=None, help="Study name [default: PLUGIN-SYMBOL-TIMEFRAME].")
@click.option("--storage", default=None, help="Optuna storage URL [default: sqlite:///TRADER_HOME/tune/studies.db].")
@click.option("--apply", "apply_best", is_flag=True, help="Write the best parameters to TRADER_HOME/tuned/PLUGIN.toml, which training and trading read.")
@click.option("--list", "list_only", is_flag=True, help="List the stored studies and exit.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of the sampler, the training and the bootstrap.")
@click.option("--batch", type=click.IntRange(min=1), default=4, show_default=True, help="Trials asked per round (run side by side); fixed, so results do not depend on --workers.")
@click.option("--min-trades", type=click.IntRange(min=0), default=5, show_default=True, help="A trial with fewer trades fails.")
@click.option("--holdout", type=float, default=0.2, show_default=True, help="Share of the bars kept as the held-out tail no trial sees.")
@click.option("--folds", type=click.IntRange(min=1), default=4, show_default=True, help="Walk-forward test windows per trial (when --test-bars is not given).")
@click.option("--train-bars", type=click.IntRange(min=1), default=None, help="Candles per training window [default: twice --test-bars].")
@click.option("--test-bars", type=click.IntRange(min=1), default=None, help="Candles per test window [default: from --folds].")
@click.option("--purge-bars", type=click.IntRange(min=0), default=24, show_default=True, help="Bars dropped between training and test.")
@click.option("--embargo-bars", type=click.IntRange(min=0), default=0, show_default=True, help="Further bars dropped after the purge.")
@click.option("--fee-bps", type=click.FloatRange(min=0), default=None, help="Fee in basis points [default: [broker] fee_bps, else 10].")
@click.option("--slippage-bps", type=click.FloatRange(min=0), default=None, help="Slippage in basis points [default: [broker] slippage_bps, else 2].")
@click.option("--spread-bps", type=click.FloatRange(min=0, max=10_000, max_open=True), default=None, help="Bid-ask spread in basis points [default: [broker] spread_bps, else estimated (EDGE)].")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default="local", show_default=True, help="Where trials run.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Trials run at once [default: the usable cores].")
@click.option("--ray-address", default=None, help="With --executor ray: the cluster [default: RAY_ADDRESS, else a local Ray].")
@click.option("--synthetic-bars", type=click.IntRange(min=100), default=5000, show_default=True, help="Size of the synthetic market used when no candles are stored.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@pass_app
def tune(app: AppContext, plugin_name: str | None, symbols: tuple[str, ...], timeframe: str | None, exchange: str | None, start: str | None,
         end: str | None, n_trials: int, timeout: float | None, objective: str, study_name: str | None, storage: str | None,
         apply_best: bool, list_only: bool, seed: int, batch: int, min_trades: int, holdout: float, folds: int,
         train_bars: int | None, test_bars: int | None, purge_bars: int, embargo_bars: int, fee_bps: float | None,
         slippage_bps: float | None, spread_bps: float | None, executor_name: str, workers: int | None,
         ray_address: str | None, synthetic_bars: int, as_json: bool, no_progress: bool) -> None:
    """Search a strategy's parameters (TPE), each trial scored by a purged walk-forward on the tuning
    range; the best is then scored once on a held-out tail no trial saw. Studies are stored, so the
    same command resumes a stopped run. See docs/tuning.md.
    """
    from trader.tune.study import default_storage, import_optuna, list_studies

    import_optuna()  # missing: one line saying how to install, exit 2
    storage = storage or default_storage(app.home)
    if list_only:
        _print_list(list_studies(storage), as_json)
        return
    if plugin_name is None:
        raise ConfigError("trader tune needs --plugin NAME (or --list)")
    symbol, timeframe = _one_market(app, plugin_name, symbols, timeframe)
    from trader.backtest.runner import BacktestSettings, select_range
    from trader.cli.backtest_cmd import _time_option
    from trader.data import resolve_candles
    from trader.executors import PluginSource, get_executor
    from trader.params import configured_params
    from trader.tune.space import search_space
    from trader.tune.storage import redact_url
    from trader.tune.study import TuneSetup, final_report, open_study, run_trials, split_rows, walk_forward_plan

    start_ms, end_ms = _time_option(start, "from"), _time_option(end, "to")
    manager = app.plugins_for([plugin_name])
    strategy = manager.strategy(plugin_name)  # an unknown name fails here, before any data is read
    config = app.config
    configured = configured_params(config, strategy.info)  # a typo in [plugins.NAME] is refused first
    space = search_space(strategy.info, config.tune_space(plugin_name))  # no space: one clear line
    base_train = training_params(config, plugin_name, (), None, strategy.info)
    settings = BacktestSettings(fee_bps=fee_bps, slippage_bps=slippage_bps, spread_bps=spread_bps, seed=seed)
    setup = TuneSetup(plugin_name, symbol, timeframe, study_name or _study_name(plugin_name, symbol, timeframe), storage,
                      n_trials, objective, seed, batch, min_trades, holdout, folds, train_bars, test_bars, purge_bars,
                      embargo_bars, settings)
    candles, source = resolve_candles(app.home, symbol, timeframe, exchange=exchange, synthetic_bars=synthetic_bars, seed=seed)
    first, last = select_range(candles, start_ms, end_ms)
    candles = candles.iloc[first : last + 1].reset_index(drop=True)
    n_tune, _ = split_rows(len(candles), holdout)
    tuning = candles.iloc[:n_tune].reset_index(drop=True)  # all a trial is ever handed
    plan = walk_forward_plan(setup, n_tune, base_train)
    ts = candles["timestamp"]
    identity = setup.identity(space, (int(ts.iloc[0]), int(ts.iloc[n_tune - 1])), (int(ts.iloc[n_tune]), int(ts.iloc[-1])), plan)
    study = open_study(setup, identity, space.defaults(strategy.info, configured))
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    if not as_json:
        click.echo(f"study {setup.study} ({redact_url(storage)}): {done} of {n_trials} trials finished; searching "
                   + "; ".join(d.describe() for d in space.dimensions), err=True)
    executor = get_executor(executor_name, workers, ray_address)  # Ray missing: one line, exit 2
    source_ref = PluginSource((plugin_name,), app.plugin_cache, manager)
    began = time.monotonic()
    try:
        with executor, _TrialProgress(not no_progress and not as_json, n_trials, done) as progress:
            run_trials(setup, space, study, executor, tuning, config, base_train, plan, source_ref, timeout=timeout,
                       on_round=progress)
    except KeyboardInterrupt:
        done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
        click.echo(f"stopped: {done} of {n_trials} trials finished; the same command resumes study {setup.study}", err=True)
        raise SystemExit(130) from None
    report = final_report(setup, space, study, manager, config, candles, base_train, plan, n_tune, source)
    report["seconds"] = round(time.monotonic() - began, 3)
    report["executor"] = executor.describe()
    if apply_best:
        report["applied"] = _apply(app, plugin_name, report)
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False, default=str))
        return
    for line in render_report(report):
        click.echo(line)
    if apply_best:
        applied = report["applied"]
        click.echo(f"applied: {applied['file']} (training and trading read it; delete it to go back)")
        if applied["shadowed"]:
            click.echo(f"warning: trader.toml sets {', '.join(applied['shadowed'])}, which wins over the tuned value(s)")


def _apply(app: AppContext, plugin: str, report: dict[str, Any]) -> dict[str, Any]:
    from trader.tune.applied import write_tuned

    best = report["best"]
    record = {"study": report["study"], "trial": best["number"], "objective": report["objective"], "value": best["value"],
              "symbol": report["symbol"], "timeframe": report["timeframe"],
              "applied_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path = write_tuned(app.home, plugin, best["signal_params"], best["train_params"], record)
    chosen = set(best["signal_params"]) | {f"train.{k}" for k in best["train_params"]}
    return {"file": str(path), "shadowed": sorted(chosen & _written_keys(app.config, plugin))}


def _print_list(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no studies stored; start one with: trader tune --plugin NAME")
        return
    click.echo(f"{'study':<36} {'strategy':<14} {'market':<16} {'objective':<9} {'trials':>6} {'best':>8}  started (UTC)")
    for r in rows:
        market = f"{r['symbol'] or '?'} {r['timeframe'] or ''}"
        click.echo(f"{r['study']:<36} {str(r['plugin'] or '?'):<14} {market:<16} {str(r['objective'] or '?'):<9} "
                   f"{r['trials']:>6} {_fmt(r['best_value']):>8}  {r['started'] or ''}")
