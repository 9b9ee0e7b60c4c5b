"""``trader new-plugin``, ``trader install`` and ``trader uninstall``: writing and installing strategies.

``install`` and ``uninstall`` run pip with the interpreter that runs trader
(``python -m pip``), so a plugin always lands in trader's own environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

from trader.cli.main import AppContext, pass_app
from trader.errors import ConfigError, PluginError

__all__ = ["new_plugin", "install", "uninstall"]

_PROTECTED = {"trader-core": "it is trader itself", "pip": "trader installs plugins with it"}


# ---------------------------------------------------------------------- new-plugin


def _clashes(app: AppContext, name: str, distribution: str, package: str) -> str | None:
    """Why ``name`` cannot be used in this environment, or ``None``."""
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    from trader.entrypoints import installed_specs
    from trader.plugins import BUILTIN_PLUGINS, CORE_PLUGINS

    if name in CORE_PLUGINS or name in BUILTIN_PLUGINS:
        return f"plugin name {name!r} is taken by trader-core's built-in {name}"
    for spec in installed_specs():  # package metadata only: no plugin is imported
        if spec.name == name:
            return f"plugin name {name!r} is taken by the installed distribution {spec.distribution} {spec.version}"
    try:
        return f"a distribution called {distribution!r} is already installed (version {version(distribution)})"
    except PackageNotFoundError:
        pass
    if importlib.util.find_spec(package) is not None:
        return f"a Python package called {package!r} is already importable"
    return None


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.command("new-plugin")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder in which the project folder trader-NAME is created.")
@click.option("--template", type=click.Choice(["minimal", "ml"]), default="minimal", show_default=True,
              help="minimal: a rule-based strategy; ml: a model trained on the core's features.")
@click.option("--description", help="One line saying what the strategy does.")
@pass_app
def new_plugin(app: AppContext, name: str, parent: Path, template: str, description: str | None) -> None:
    """Create an installable strategy plugin project called NAME.

    The project has a pyproject.toml with the trader.plugins entry point, the
    strategy's hooks, tests that run trader's conformance suite, and a README.
    """
    from trader.templates import PluginNames, check_plugin_name, render_plugin

    check_plugin_name(name)
    if description is not None and ('"' in description or "\n" in description or "\\" in description):
        raise ConfigError("--description must be one line without double quotes or backslashes")
    names = PluginNames(name, description or "")
    problem = _clashes(app, name, names.distribution, names.package)
    if problem:
        raise ConfigError(f"cannot create plugin {name!r}: {problem}")
    destination = (parent / names.distribution).absolute()
    files = render_plugin(names, destination, template)
    shown = _shown(destination)
    click.echo(f"Created strategy plugin {name!r} ({template} template) in {shown}")
    for path in files:
        click.echo(f"  {path.as_posix()}")
    click.echo("Next:")
    click.echo(f"  trader install -e {shown}    # install it into trader's environment")
    click.echo(f"  cd {shown} && python -m pytest     # its tests, with the conformance suite")
    if template == "ml":
        click.echo(f"  trader train --plugin {name}")
    click.echo(f"  trader backtest --plugin {name}")
    click.echo(f"  trader run --plugin {name}")


# ---------------------------------------------------------------------- pip


def _plugin_entry_points() -> dict[str, tuple[str, str]]:
    """Installed ``trader.plugins`` entry points: name -> (distribution, version)."""
    import importlib
    from importlib.metadata import entry_points

    from trader.plugins import ENTRY_POINT_GROUP

    importlib.invalidate_caches()
    found = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        found[ep.name] = (dist.metadata["Name"], dist.version) if dist is not None else ("<unknown>", "?")
    return found


def _run_pip(args: list[str], action: str) -> None:
    """Run ``python -m pip ARGS``; pip's progress goes to the terminal, its errors become one line."""
    command = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    try:
        proc = subprocess.run(command, stdout=None, stderr=subprocess.PIPE, text=True, env=env)
    except OSError as exc:
        raise PluginError(f"cannot run pip with {sys.executable}: {exc.strerror}") from None
    lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
    if proc.returncode != 0:
        errors = [line.removeprefix("ERROR:").strip() for line in lines if line.startswith("ERROR:")]
        if not errors:
            errors = [line for line in lines if "No module named pip" in line] or lines[-1:]
        detail = "; ".join(dict.fromkeys(errors)) or f"pip exited with status {proc.returncode}"
        raise PluginError(f"pip {action} failed: {detail}")
    for line in lines:
        if not line.startswith("[notice]"):
            click.echo(line, err=True)


def _plugin_status(names: list[str]) -> dict[str, dict]:
    """What a fresh ``trader plugins`` says about ``names`` (run as a new process, as a user would)."""
    import json

    proc = subprocess.run(
        [sys.executable, "-m", "trader", "plugins", "--json"], capture_output=True, text=True, env=dict(os.environ)
    )
    if proc.returncode != 0:
        return {}
    try:
        records = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return {}
    return {r["name"]: r for r in records if r.get("name") in names}


@click.command()
@click.argument("packages", nargs=-1)
@click.option("-e", "--editable", "editables", multiple=True, metavar="PATH",
              help="Install a local project in editable mode (repeatable).")
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade the packages to their newest versions.")
@click.option("--force-reinstall", is_flag=True, help="Reinstall even if already up to date.")
@click.option("--no-cache-dir", is_flag=True, help="Do not use pip's cache.")
@click.option("--pre", is_flag=True, help="Allow pre-release versions.")
def install(packages: tuple[str, ...], editables: tuple[str, ...], upgrade: bool, force_reinstall: bool,
            no_cache_dir: bool, pre: bool) -> None:
    """Install plugin PACKAGES into trader's own Python environment (with pip).

    PACKAGES are anything pip accepts: names from PyPI, local folders, wheels,
    URLs. Afterwards the plugins they provide are listed, as `trader plugins` shows them.
    """
    if not packages and not editables:
        raise ConfigError("name at least one package to install, e.g. trader install trader-my-strategy (or -e PATH)")
    args = ["install"]
    args += ["--upgrade"] * upgrade + ["--force-reinstall"] * force_reinstall
    args += ["--no-cache-dir"] * no_cache_dir + ["--pre"] * pre
    for path in editables:
        args += ["--editable", path]
    args += list(packages)
    before = _plugin_entry_points()
    _run_pip(args, "install")
    after = _plugin_entry_points()
    changed = sorted(name for name, dist in after.items() if before.get(name) != dist)
    if not changed:
        click.echo("Installed; no new trader plugin (the packages declare no trader.plugins entry point, or were up to date).")
        return
    status = _plugin_status(changed)
    broken = []
    for name in changed:
        dist, version = after[name]
        record = status.get(name, {})
        if record.get("status") == "error":
            broken.append(f"{name}: {record.get('error')}")
            click.echo(f"Installed plugin {name} ({dist} {version}) but it fails to load: {record.get('error')}")
        else:
            kind = "strategy" if record.get("is_strategy") else "plugin"
            click.echo(f"Installed {kind} {name} ({dist} {version})")
    if broken:
        raise PluginError(f"installed plugin(s) fail to load: {'; '.join(broken)}")


def _distribution_of(package: str, plugins: dict[str, tuple[str, str]]) -> str:
    """The installed distribution called ``package``, or the one providing the plugin called ``package``."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        return distribution(package).metadata["Name"]
    except PackageNotFoundError:
        pass
    if package in plugins:
        return plugins[package][0]
    raise ConfigError(f"{package!r} is not installed (neither a distribution nor a plugin name; see trader plugins)")


@click.command()
@click.argument("packages", nargs=-1, required=True)
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def uninstall(app: AppContext, packages: tuple[str, ...], yes: bool) -> None:
    """Uninstall PACKAGES (distribution or plugin names) from trader's environment.

    A strategy's models and state under TRADER_HOME are kept.
    """
    plugins = _plugin_entry_points()
    dists = list(dict.fromkeys(_distribution_of(p, plugins) for p in packages))
    for dist in dists:
        reason = _PROTECTED.get(dist.lower())
        if reason:
            raise ConfigError(f"refusing to uninstall {dist}: {reason} (use pip directly if you mean it)")
    provided = {dist: sorted(n for n, (d, _) in plugins.items() if d == dist) for dist in dists}
    listing = ", ".join(f"{d} (plugins: {', '.join(p)})" if p else d for d, p in provided.items())
    if not yes:
        click.confirm(f"Uninstall {listing}? Models and state in {app.home} are kept.", abort=True)
    _run_pip(["uninstall", "--yes", *dists], "uninstall")
    after = _plugin_entry_points()
    for dist, names in provided.items():
        gone = [n for n in names if n not in after]
        click.echo(f"Uninstalled {dist}" + (f"; removed plugin(s): {', '.join(gone)}" if gone else ""))
