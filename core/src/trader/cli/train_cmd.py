"""``trader train`` (train a strategy's model and store it as a new version) and ``trader models``."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from trader.cli.main import AppContext, pass_app
from trader.cli.market_options import symbol_callback, timeframe_callback
from trader.errors import ConfigError, NotSupportedError, train_command

__all__ = ["train", "models", "parse_params", "DEFAULT_SYMBOL", "DEFAULT_TIMEFRAME"]

DEFAULT_SYMBOL = "BTC/USDT"
DEFAULT_TIMEFRAME = "1h"
REPORT_NAME = "training_report.png"


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``("hidden_size=32", "schedule=constant")`` -> ``{"hidden_size": 32, "schedule": "constant"}`` (JSON values)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r}: expected KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = value
    return params


def training_params(config: Any, plugin_name: str, pairs: tuple[str, ...], epochs: int | None = None,
                    info: Any = None) -> dict[str, Any]:
    """``[plugins.NAME.train]`` overridden by ``--param`` pairs, then by ``--epochs`` when given. With the
    strategy's *info*, the whole ``[plugins.NAME]`` table and the pairs are first checked against its
    declared parameters (:func:`trader.params.validate_params`)."""
    table = config.plugin_params(plugin_name).get("train", {})
    if not isinstance(table, dict):
        raise ConfigError(f"[plugins.{plugin_name}.train] must be a table")
    overrides = parse_params(pairs)
    if info is not None:
        from trader.params import configured_params, validate_section

        table = configured_params(config, info).get("train", {})
        overrides = validate_section(info, "train", overrides, "--param")
    params = {**table, **overrides}
    if epochs is not None:
        params["epochs"] = epochs
    return params


def _symbols_callback(ctx: Any, param: Any, value: tuple[str, ...]) -> tuple[str, ...]:
    """Every ``--symbol`` checked as ``symbol_callback`` checks one; a market given twice is refused."""
    from trader.cli.market_options import named_twice

    symbols = tuple(symbol_callback(ctx, param, v) or "" for v in value) or (DEFAULT_SYMBOL,)
    problem = named_twice(symbols)
    if problem is not None:
        raise ConfigError(f"--symbol {problem}")
    return symbols


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _restrict(candles, source: str, start: str | None, until: str | None):
    """The candles in ``[start, until)``; a clear error when too few remain."""
    from trader.data.frame import parse_time_ms
    from trader.errors import DataError

    ts = candles["timestamp"]
    mask = ts >= parse_time_ms(start, "--from") if start is not None else ts == ts
    if until is not None:
        mask &= ts < parse_time_ms(until, "--until")
    chosen = candles.loc[mask].reset_index(drop=True)
    if len(chosen) < 100:
        raise DataError(f"only {len(chosen)} candles of {source} lie in --from {start or '-'} --until {until or '-'}; need at least 100")
    return chosen, f"{source}, {start or 'start'} .. {until or 'end'}"


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy whose model to train (e.g. dl_lstm).")
@click.option("--symbol", "symbols", multiple=True, callback=_symbols_callback, metavar="SYMBOL",
              help=f"Market symbol of the candles to learn from [default: {DEFAULT_SYMBOL}]; repeat it to train one "
                   "model on several markets pooled (stored under the markets joined by '+').")
@click.option("--timeframe", default=DEFAULT_TIMEFRAME, show_default=True, callback=timeframe_callback, help="Candle timeframe.")
@click.option("--exchange", default=None, help="Exchange whose stored candles to use (when several hold the symbol).")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Training epochs (overrides [plugins.NAME.train]).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed: the same seed and data give the same model.")
@click.option("--param", "param_pairs", multiple=True, metavar="KEY=VALUE", help="Training parameter (repeatable), e.g. hidden_size=64.")
@click.option("--synthetic-bars", type=click.IntRange(min=100), default=5000, show_default=True, help="Size of the synthetic market used when no candles are stored.")
@click.option("--synthetic-seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of that synthetic market (as `trader run --seed`).")
@click.option("--from", "start", default=None, metavar="DATE", help="Learn only from candles at or after this UTC date/time.")
@click.option("--until", "until", default=None, metavar="DATE", help="Learn only from candles before this UTC date/time (keep later ones for out-of-sample runs).")
@click.option("--if-missing", is_flag=True, help="Do nothing when a model already exists for the strategy, symbol and timeframe.")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored version and its metrics as JSON.")
@pass_app
def train(
    app: AppContext,
    plugin_name: str,
    symbols: tuple[str, ...],
    timeframe: str,
    exchange: str | None,
    epochs: int | None,
    seed: int,
    param_pairs: tuple[str, ...],
    synthetic_bars: int,
    synthetic_seed: int,
    start: str | None,
    until: str | None,
    if_missing: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Train a strategy's model on stored candles (else the synthetic market) and store it as a new version.

    Writes MODELS/NAME/SYMBOL_TF/vN/ with the weights, manifest.json and a
    training report (training_report.png, loss curves). With several --symbol, one
    model learns from all of them (features, labels and the split per market, the
    scaler on their pooled training rows) and is stored once, as SYMBOL1+SYMBOL2_TF.
    """
    from trader.data import resolve_candles
    from trader.models import ModelPersistence, basket_symbol, candles_hash, candles_range
    from trader.types import TrainRequest

    strategy = app.plugins_for([plugin_name]).strategy(plugin_name)
    if not strategy.trainable:
        raise NotSupportedError(f"strategy {plugin_name!r} has no model to train")
    pooled = len(symbols) > 1
    if pooled and not strategy.info.pooled_training:
        raise NotSupportedError(
            f"strategy {plugin_name!r} cannot train one model on several markets (its trader_strategy_info does not "
            f"declare pooled_training); train one model per market: trader train --plugin {plugin_name} --symbol "
            f"{symbols[0]}"
        )
    symbol = basket_symbol(symbols) if pooled else symbols[0]
    params = training_params(app.config, plugin_name, param_pairs, epochs, strategy.info)  # checked before anything
    if if_missing:
        existing = ModelPersistence(app.config.models_dir).latest(plugin_name, symbol, timeframe)
        if existing is not None:
            if as_json:
                click.echo(json.dumps({**existing.as_dict(), "trained": False}, indent=2, default=str))
            else:
                click.echo(f"{plugin_name} {symbol} {timeframe} already has model {existing.version} ({existing.directory}); not training")
            return
    ModelPersistence(app.config.models_dir).check_writable(plugin_name, symbol, timeframe)  # before, not after, training
    frames: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for market in sorted(symbols):
        candles, source = resolve_candles(
            app.home, market, timeframe, exchange=exchange, synthetic_bars=synthetic_bars, seed=synthetic_seed
        )
        if start is not None or until is not None:
            candles, source = _restrict(candles, f"{market}: {source}" if pooled else source, start, until)
        frames[market], sources[market] = candles, source
    if pooled:
        candles = next(iter(frames.values())).iloc[:0]  # a pooled request's candles are empty: markets holds them
        source = "; ".join(sources[m] if sources[m].startswith(m) else f"{m}: {sources[m]}" for m in sorted(frames))
        if not as_json:
            rows = ", ".join(f"{m} {len(f):,}" for m, f in frames.items())
            click.echo(f"training {plugin_name} on {len(frames)} markets pooled ({timeframe}): {rows} candles", err=True)
    else:
        candles, source = frames[symbol], sources[symbol]
        if not as_json:
            click.echo(f"training {plugin_name} on {source}: {symbol} {timeframe}, {len(candles):,} candles", err=True)
    started = time.perf_counter()
    request = TrainRequest(
        strategy=plugin_name, symbol=symbol, timeframe=timeframe, candles=candles, params=params, seed=seed,
        show_progress=not no_progress and not as_json, markets=dict(frames) if pooled else None,
    )
    result = strategy.train(request)
    seconds = time.perf_counter() - started
    extra_files = {}
    if result.history.get("epoch"):
        from trader.ml.report import training_report_png

        extra_files[REPORT_NAME] = training_report_png(result.history, f"{plugin_name} {symbol} {timeframe}", result.metrics)
    markets = None
    if pooled:
        markets = {m: {**candles_range(f), "source": sources[m], "sha256": candles_hash(f),
                       **({"synthetic_seed": synthetic_seed} if sources[m].startswith("synthetic") else {})}
                   for m, f in frames.items()}
        starts = [r["start"] for r in markets.values()]
        ends = [r["end"] for r in markets.values()]
        data_range = {"start": min(starts), "end": max(ends), "rows": sum(r["rows"] for r in markets.values()),
                      "source": source}
        data_hash = _pooled_hash(markets)
    else:
        data_range = {**candles_range(candles), "source": source}
        if source.startswith("synthetic"):
            data_range["synthetic_seed"] = synthetic_seed
        data_hash = candles_hash(candles)
    from trader.tune.applied import tuned_record

    tuned = tuned_record(app.home, plugin_name)  # trader tune --apply's choice, where it came from
    version = ModelPersistence(app.config.models_dir).save(
        strategy, result, symbol=symbol, timeframe=timeframe, data_range=data_range,
        data_hash=data_hash, seed=seed, extra_files=extra_files,
        extra={"train_seconds": round(seconds, 3), "params": params, **({"tuned": tuned} if tuned else {})},
        markets=markets,
    )
    test = result.metrics.get("test", {}) if isinstance(result.metrics, dict) else {}
    if as_json:
        click.echo(json.dumps({**version.as_dict(), "trained": True, "train_seconds": round(seconds, 3)}, indent=2, default=str))
        return
    click.echo(f"stored {plugin_name} {version.version} in {version.directory} ({seconds:.1f}s)")
    if extra_files:
        click.echo(f"training report: {version.directory / REPORT_NAME}")
    if test.get("model"):
        click.echo(f"held-out test ({test.get('n_samples', '?')} samples)   model   majority")
        for name in ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc", "log_loss"):
            click.echo(f"  {name:<22} {_fmt(test['model'].get(name)):>8} {_fmt(test['baseline'].get(name)):>9}")


def _pooled_hash(markets: dict[str, dict[str, Any]]) -> str:
    """``sha256:<hex>`` over each market's symbol and candle hash, in symbol order."""
    import hashlib

    digest = hashlib.sha256()
    for market in sorted(markets):
        digest.update(f"{market}={markets[market]['sha256']};".encode())
    return "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------------- models


@click.group()
def models() -> None:
    """Stored model versions: list, show and verify them."""


@models.command("list")
@click.option("--plugin", "plugin_name", default=None, help="Only this strategy's models.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def list_models(app: AppContext, plugin_name: str | None, as_json: bool) -> None:
    """Every stored version: strategy, symbol, timeframe, version, creation time, test metrics (and the markets
    of a pooled model)."""
    from trader.models import ModelPersistence

    versions = ModelPersistence(app.config.models_dir).list(plugin_name)
    if as_json:
        click.echo(json.dumps([v.as_dict() for v in versions], indent=2, default=str))
        return
    if not versions:
        click.echo(f"no models stored in {app.config.models_dir}; train one with: trader train --plugin NAME")
        return
    click.echo(f"{'strategy':<16} {'symbol':<12} {'tf':<4} {'version':<8} {'created (UTC)':<20} {'test bal.acc':>12} {'majority':>9}")
    for v in versions:
        if v.problem:
            click.echo(f"{v.plugin:<16} {v.symbol:<12} {v.timeframe:<4} {v.version:<8} REFUSED: {v.problem}")
            continue
        test = v.metrics.get("test", {}) if isinstance(v.metrics, dict) else {}
        model = test.get("model", {}).get("balanced_accuracy")
        base = test.get("baseline", {}).get("balanced_accuracy")
        click.echo(
            f"{v.plugin:<16} {v.symbol:<12} {v.timeframe:<4} {v.version:<8} {v.created_at[:19]:<20} {_fmt(model):>12} {_fmt(base):>9}"
            + (f"  pooled on {len(v.markets)} markets: {', '.join(v.markets)}" if v.markets else "")
        )


def _select(app: AppContext, plugin_name: str, symbol: str, timeframe: str, version: str | None):
    from trader.errors import ArtifactError, ModelNotFoundError
    from trader.models import ModelPersistence, parse_version

    store = ModelPersistence(app.config.models_dir)
    listed = store.list(plugin_name, symbol, timeframe)
    versions = [v for v in listed if v.problem is None]
    if not listed:
        raise ModelNotFoundError(
            f"no {plugin_name} model for {symbol} {timeframe}; train one with: {train_command(plugin_name, symbol, timeframe)}"
        )
    if version in (None, "latest"):
        if not versions:
            raise ArtifactError(listed[-1].problem or "no usable model version")
        return store, versions[-1]
    wanted = parse_version(version)
    for v in listed:
        if v.number == wanted:
            if v.problem:
                raise ArtifactError(v.problem)
            return store, v
    for v in listed:  # a refused folder above the versions (a link) hides them all
        if v.problem and v.version == "-":
            raise ArtifactError(v.problem)
    raise ModelNotFoundError(f"no version {version} of {plugin_name} {symbol} {timeframe} (available: {', '.join(v.version for v in versions)})")


def _pooled_symbol_callback(ctx: Any, param: Any, value: tuple[str, ...]) -> str:
    """One ``--symbol``: that market; several: the symbol their pooled model is stored under."""
    from trader.models import basket_symbol

    symbols = _symbols_callback(ctx, param, value)
    return basket_symbol(symbols) if len(symbols) > 1 else symbols[0]


def _model_selection(command: Any) -> Any:
    """The options that pick one stored version: ``--plugin --symbol --timeframe --model-version``."""
    for option in reversed((
        click.option("--plugin", "plugin_name", required=True),
        click.option("--symbol", "symbol", multiple=True, callback=_pooled_symbol_callback, metavar="SYMBOL",
                     help=f"Market [default: {DEFAULT_SYMBOL}]; repeat it for the pooled model of those markets."),
        click.option("--timeframe", default=DEFAULT_TIMEFRAME, show_default=True, callback=timeframe_callback),
        click.option("--model-version", "version", default=None, help="Version (v1, v2, ...); latest by default."),
    )):
        command = option(command)
    return command


@models.command("show")
@_model_selection
@pass_app
def show_model(app: AppContext, plugin_name: str, symbol: str, timeframe: str, version: str | None) -> None:
    """Print a version's manifest (JSON)."""
    from trader.models import read_manifest

    _, chosen = _select(app, plugin_name, symbol, timeframe, version)
    click.echo(json.dumps(read_manifest(chosen.directory), indent=2))


@models.command("verify")
@_model_selection
@pass_app
def verify_model(app: AppContext, plugin_name: str, symbol: str, timeframe: str, version: str | None) -> None:
    """Run every load check (manifest, hashes, formats, architecture) without trading."""
    strategy = app.plugins_for([plugin_name]).strategy(plugin_name)
    store, chosen = _select(app, plugin_name, symbol, timeframe, version)
    loaded = store.load(strategy, symbol, timeframe, version=chosen.version)
    click.echo(f"ok: {plugin_name} {loaded.version} ({loaded.directory}) passed every check")
