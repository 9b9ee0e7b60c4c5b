"""``trader status`` (where each strategy stands) and ``trader resume`` (clear a halt)."""

from __future__ import annotations

import click

from trader.cli.main import AppContext, pass_app


def _namespaces(app: AppContext, names: tuple[str, ...]) -> list[str]:
    """The asked strategies, or every strategy with a state folder."""
    from trader.errors import UnknownPluginError

    root = app.home / "strategies"
    have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if not names:
        return have
    for name in names:
        if name not in have and name not in app.plugins.strategy_names():
            installed = ", ".join(app.plugins.strategy_names()) or "none"
            raise UnknownPluginError(f"unknown strategy {name!r}; installed strategies: {installed}")
    return list(names)


def _open(app: AppContext, name: str):
    """The strategy's store through ``trader_state_store`` (its own namespace only), or ``None``."""
    from trader.engine.state import state_path

    directory = app.config.strategy_dir(name)
    if not state_path(directory).exists() and not directory.is_dir():
        return None
    from trader.engine.runner import open_state_store

    if name in app.plugins.strategy_names():
        return open_state_store(app.plugins_for([name]), app.config, name)
    from trader.engine.state import TradingState  # the strategy is uninstalled: its state is still readable

    return TradingState.open(name, directory, create=False)


@click.command()
@click.option("--plugin", "plugin_names", multiple=True, help="Only this strategy (repeatable); default: every strategy with state.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_app
def status(app: AppContext, plugin_names: tuple[str, ...], as_json: bool) -> None:
    """Positions, cash, equity, PnL, risk state and reason, and latency of each strategy."""
    import json

    from trader.engine.lock import lock_holder
    from trader.engine.summary import format_status

    summaries = []
    for name in _namespaces(app, plugin_names):
        store = _open(app, name)
        if store is None:
            summaries.append({"strategy": name, "account": None, "running_pid": None})
            continue
        try:
            summary = store.summary() if hasattr(store, "summary") else {"strategy": name, "account": None}
        finally:
            store.close()
        summary["running_pid"] = lock_holder(app.config.strategy_dir(name))
        summaries.append(summary)
    if as_json:
        click.echo(json.dumps(summaries, indent=2, default=str))
        return
    if not summaries:
        click.echo(f"no strategy has run yet in {app.home} (start one with: trader run --plugin NAME)")
        return
    click.echo("\n\n".join(format_status(s) for s in summaries))


@click.command()
@click.option("--plugin", "plugin_name", required=True, help="Strategy whose halt to clear.")
@click.option("--note", default="", help="Why (recorded with the resume).")
@pass_app
def resume(app: AppContext, plugin_name: str, note: str) -> None:
    """Clear a halt (and the breaker counters) so the strategy trades again.

    The drawdown peak and the day's starting equity restart from the current equity.
    If the strategy is running, its process applies the resume at its next candle.
    """
    import time

    from trader.engine.lock import StrategyLock
    from trader.errors import LockedError, StateError

    _namespaces(app, (plugin_name,))
    store = _open(app, plugin_name)
    if store is None or store.load() is None:
        raise StateError(f"strategy {plugin_name!r} has no state yet in {app.home} (it has never run)")
    try:
        saved = store.load()
        before = f"{saved.status.value}" + (f" ({saved.status_reason})" if saved.status_reason else "")
        lock = StrategyLock(app.config.strategy_dir(plugin_name), plugin_name)
        try:
            lock.acquire()
        except LockedError:
            store.request("resume", note)
            click.echo(f"{plugin_name} is running: resume requested; its process applies it at the next candle (was {before})")
            return
        try:
            store.resume(int(time.time() * 1000), note)
        finally:
            lock.release()
    finally:
        store.close()
    click.echo(f"{plugin_name} resumed: status active (was {before})")
