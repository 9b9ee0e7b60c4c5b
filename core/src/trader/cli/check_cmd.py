"""``trader check``: look-ahead, batch, determinism, warm-up, persistence and isolation checks of a strategy.

The strategy runs in a sandbox (:class:`trader.testing.sandbox.Sandbox`): every call sees a
temporary ``TRADER_HOME``, ``HOME``, temporary and working folder, never the user's, and its
writes are recorded for the isolation check. The candles and a stored model are read from the
user's home by the core before that.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbol_callback, timeframe_callback
from trader.cli.train_cmd import DEFAULT_SYMBOL, DEFAULT_TIMEFRAME, training_params

if TYPE_CHECKING:
    from trader.testing.sandbox import Sandbox

__all__ = ["check"]

_CHECKS = ("truncation", "batch", "determinism", "warmup", "persistence", "isolation")


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy to check.")
@click.option("--symbol", default=DEFAULT_SYMBOL, show_default=True, callback=symbol_callback, help="Market symbol of the candles to check on.")
@click.option("--timeframe", default=DEFAULT_TIMEFRAME, show_default=True, callback=timeframe_callback, help="Candle timeframe.")
@click.option("--exchange", default=None, help="Exchange whose stored candles to use (when several hold the symbol).")
@click.option("--bars", type=click.IntRange(min=50), default=1500, show_default=True, help="Check on the last N candles.")
@click.option("--prefixes", type=click.IntRange(min=1), default=None, help="Prefix lengths compared with the full run at every row [default: 24, as the conformance suite].")
@click.option("--samples", type=click.IntRange(min=2), default=12, show_default=True, help="Candles sampled by the batch, warm-up and persistence checks.")
@click.option("--only", "only", multiple=True, type=click.Choice(_CHECKS), help="Run only these checks (repeatable).")
@click.option("--model-version", default=None, help="Model version to check [default: latest; a temporary one is trained when none is stored].")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True, help="Epochs of the temporary model trained when none is stored.")
@click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Training parameter of the temporary model (repeatable).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed for sampling, training and the synthetic market.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@pass_app
def check(
    app: AppContext,
    plugin_name: str,
    symbol: str,
    timeframe: str,
    exchange: str | None,
    bars: int,
    prefixes: int | None,
    samples: int,
    only: tuple[str, ...],
    model_version: str | None,
    epochs: int,
    param_pairs: tuple[str, ...],
    seed: int,
    as_json: bool,
) -> None:
    """Check a strategy for look-ahead, non-determinism, warm-up and isolation problems, and its model for a lossless save and load.

    \b
    truncation   every row before several cuts gives the same signal without the candles after the cut
    batch        a candle asked alone and in a batch gives the same signal
    determinism  the same request twice, in reverse order and in fresh processes gives the same signals
    warmup       with only warmup_bars of history the signal is unchanged; no NaN feature after it
    persistence  a saved and reloaded model gives identical signals
    isolation    everything the strategy writes lies in its own namespace of the (temporary) home

    The strategy runs with a temporary TRADER_HOME, HOME, working and temporary folder.
    Exits 1 when a check fails, naming the candle and the candle column or feature at fault.
    """
    import tempfile
    from pathlib import Path

    from trader.backtest.lookahead import DEFAULT_PREFIXES
    from trader.testing.sandbox import Sandbox

    with tempfile.TemporaryDirectory(prefix="trader-check-") as tmp:
        sandbox = Sandbox(Path(tmp))
        _check(app, sandbox, plugin_name, symbol, timeframe, exchange, bars, prefixes or DEFAULT_PREFIXES, samples,
               only, model_version, epochs, param_pairs, seed, as_json)


def _check(app: AppContext, sandbox: Sandbox, plugin_name: str, symbol: str, timeframe: str, exchange: str | None,
           bars: int, prefixes: int, samples: int, only: tuple[str, ...], model_version: str | None, epochs: int,
           param_pairs: tuple[str, ...], seed: int, as_json: bool) -> None:
    from trader.backtest.fresh import FreshPlugin
    from trader.backtest.lookahead import CheckContext, run_checks
    from trader.config import strategy_workdir
    from trader.data import resolve_candles
    from trader.types import TrainRequest, TrainResult

    cache = app.plugin_cache  # the user's home, resolved before the sandbox replaces TRADER_HOME
    with sandbox.phase("import and trader_strategy_info", (cache.parent,)):
        manager = app.plugins_for([plugin_name])
        strategy = manager.strategy(plugin_name)
    from trader.params import configured_params

    signal_params = configured_params(app.config, strategy.info)  # checked before any candle is read
    candles, source = resolve_candles(app.home, symbol, timeframe, exchange=exchange, seed=seed,
                                      synthetic_bars=max(bars, 100))
    candles = candles.iloc[-bars:].reset_index(drop=True)
    model = train_result = None
    model_note = "no model"
    if strategy.trainable or strategy.info.requires_model:
        from trader.models import ModelPersistence

        with sandbox.phase("trader_load_model"):
            loaded = ModelPersistence(app.config.models_dir).load(strategy, symbol, timeframe, model_version)
        if loaded is not None:
            m = loaded.manifest
            model = loaded.model
            train_result = TrainResult(
                model=loaded.model, metrics=m.get("metrics") or {}, architecture=m.get("architecture") or {},
                feature_names=tuple(m.get("features", {}).get("names") or ()),
                feature_windows=tuple(m.get("features", {}).get("windows") or ()),
                scaler=m.get("scaler"), label=m.get("label") or {}, extra=m.get("extra") or {},
            )
            model_note = f"stored model {loaded.version}"
        elif strategy.trainable:
            params = training_params(app.config, plugin_name, param_pairs, epochs, strategy.info)
            if not as_json:
                click.echo(f"no stored {plugin_name} model for {symbol} {timeframe}: training a temporary one "
                           f"({epochs} epoch(s), not stored)", err=True)
            with sandbox.phase("trader_train"):
                train_result = strategy.train(TrainRequest(plugin_name, symbol, timeframe, candles, params=params, seed=seed))
            model = train_result.model
            model_note = f"temporary model ({epochs} epoch(s), not stored)"
    context = CheckContext(strategy, candles, symbol, timeframe, model=model, train_result=train_result,
                           params=signal_params, samples=samples, seed=seed, prefixes=prefixes,
                           sandbox=sandbox, fresh=FreshPlugin.of(manager, plugin_name), manager=manager,
                           workdir=strategy_workdir(sandbox.home, plugin_name))
    try:
        if context.fresh_request()[0] is not None and (not only or {"determinism", "warmup"} & set(only)):
            context.start_fresh()  # a fresh process answers while the other checks run
        results = run_checks(context, only or _CHECKS)
    finally:
        context.close()
    failed = [r for r in results if r.status == "fail"]
    if as_json:
        click.echo(json.dumps({
            "strategy": plugin_name, "symbol": symbol, "timeframe": timeframe, "source": source, "candles": len(candles),
            "warmup_bars": strategy.info.warmup_bars, "model": model_note, "prefixes": prefixes, "passed": not failed,
            "checks": [r.to_dict() for r in results],
        }, indent=2))
    else:
        click.echo(f"check {plugin_name} on {source}: {symbol} {timeframe}, last {len(candles):,} candles, "
                   f"warm-up {strategy.info.warmup_bars} bars, {model_note}")
        for result in results:
            click.echo(f"{result.status.upper():<5} {result.name:<12} {result.detail}")
            for line in result.offending[:10]:
                click.echo(f"      - {line}")
            if len(result.offending) > 10:
                click.echo(f"      ... and {len(result.offending) - 10} more")
        click.echo(f"{len(failed)} of {len(results)} checks failed" if failed else f"all {len(results)} checks passed or were skipped")
    if failed:
        # not ctx.exit(1): trader's main runs click with standalone_mode=False, which swallows Exit codes
        # (raised after the sandbox is removed: the caller's ``with`` block still ends)
        raise SystemExit(1)
