"""``trader plugins``: what is installed, what it implements, what failed to load."""

from __future__ import annotations

import json

import click

from trader.cli.main import AppContext, pass_app


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hook", "hook_filter", help="Only plugins implementing this hook.")
@pass_app
def plugins(app: AppContext, as_json: bool, hook_filter: str | None) -> None:
    """List installed plugins: name, distribution, version, hooks and status."""
    records = list(app.plugins.records.values())
    if hook_filter:
        records = [r for r in records if hook_filter in r.hooks]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records], indent=2))
        return
    for r in records:
        kind = "strategy" if r.is_strategy else "plugin"
        line = f"{r.name:<16} {r.distribution} {r.version}  [{r.status}, {kind}]"
        click.echo(line)
        if r.error:
            click.echo(f"    error: {r.error}")
        elif r.hooks:
            click.echo(f"    hooks: {', '.join(r.hooks)}")
