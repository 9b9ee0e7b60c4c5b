"""``trader plugins``: what is installed, what it implements, what failed to load, what is slow.

The plugins are imported by the probe (:mod:`trader.plugin_probe`), never by this process.
"""

from __future__ import annotations

import json

import click

from trader.cli.main import AppContext, pass_app

#: A plugin whose import takes longer is named by the listing (``import_ms`` in --json has them all).
SLOW_IMPORT_MS = 500.0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", "hook_filter", help="Only plugins implementing this hook.")
@pass_app
def plugins(app: AppContext, as_json: bool, hook_filter: str | None) -> None:
    """List installed plugins: name, distribution, version, hooks, status; names the ones slow to import."""
    records = list(app.plugin_listing().records.values())
    if hook_filter:
        records = [r for r in records if hook_filter in r.hooks]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    for r in records:
        kind = "strategy" if r.is_strategy else "" if r.status == "error" else "plugin"  # unknown if it failed
        slow = f"slow import: {r.import_ms / 1000:.1f} s" if _slow(r) else ""
        details = ", ".join(filter(None, [r.status, kind, slow]))
        click.echo(f"{_shown(r.name):<16} {_shown(r.distribution)} {_shown(r.version)}  [{details}]")
        if r.error:
            click.echo(f"    error: {r.error}")
        elif r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
    slow_ones = [r for r in records if _slow(r)]
    if slow_ones:
        listed = ", ".join(f"{_shown(r.name)} ({r.import_ms / 1000:.1f} s)" for r in slow_ones)
        click.echo(f"slow to import (over {SLOW_IMPORT_MS / 1000:g} s): {listed}")


def _slow(record) -> bool:
    return record.import_ms is not None and record.import_ms > SLOW_IMPORT_MS


def _shown(text: str) -> str:
    """``text`` with anything but printable ASCII escaped: metadata cannot forge lines or colours."""
    return ascii(text)[1:-1]
