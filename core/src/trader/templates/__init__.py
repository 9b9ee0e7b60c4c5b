"""Project templates for ``trader new-plugin`` and the code that renders them.

Each template is a folder of ``*.tmpl`` files under this package; ``{{key}}``
placeholders in their paths and contents are replaced by the plugin's names
(:class:`PluginNames`). ``gitignore.tmpl`` becomes ``.gitignore``.
"""

from __future__ import annotations

import keyword
import re
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import attrs

from trader.errors import ConfigError

__all__ = ["TEMPLATES", "PluginNames", "check_plugin_name", "core_requirement", "render_plugin"]

#: template name -> what it generates
TEMPLATES: dict[str, str] = {
    "minimal": "a rule-based strategy (moving-average crossover), no model",
    "ml": "a trained model over the core's features (logistic regression, weights as safetensors)",
}

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_RENAMES = {"gitignore": ".gitignore"}
#: Names the core keeps for itself.
_RESERVED_PREFIXES = ("core_", "trader_")


def check_plugin_name(name: str) -> str:
    """Return ``name`` if it can name a plugin; :class:`ConfigError` saying why not otherwise."""
    if not isinstance(name, str) or not _NAME.match(name):
        hint = re.sub(r"[^a-z0-9_]+", "_", str(name).lower()).strip("_")
        suggestion = f" (e.g. {hint!r})" if hint and _NAME.match(hint) else ""
        raise ConfigError(
            f"invalid plugin name {name!r}: use a Python identifier of lower-case letters, digits and underscores, "
            f"starting with a letter{suggestion}"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ConfigError(f"invalid plugin name {name!r}: it is a Python keyword")
    if name.startswith(_RESERVED_PREFIXES):
        raise ConfigError(f"invalid plugin name {name!r}: names starting with {' or '.join(_RESERVED_PREFIXES)} are reserved")
    if len(name) > 64:
        raise ConfigError(f"invalid plugin name {name!r}: at most 64 characters")
    return name


def core_requirement(version: str) -> str:
    """The ``trader-core`` range a plugin built against ``version`` is compatible with.

    Before 1.0 a minor release may break plugins (``0.1.x`` -> ``>=0.1,<0.2``); from
    1.0 on only a major release may (``1.4.2`` -> ``>=1.4,<2``).
    """
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"trader-core>={major}.{minor},<{upper}"


@attrs.frozen
class PluginNames:
    """Every spelling of a plugin's name that a template uses."""

    name: str
    description: str = ""

    @property
    def package(self) -> str:
        return f"trader_{self.name}"

    @property
    def distribution(self) -> str:
        return f"trader-{self.name.replace('_', '-')}"

    @property
    def title(self) -> str:
        return self.name.replace("_", " ").title()

    def values(self, template: str) -> dict[str, str]:
        from trader import __version__

        return {
            "name": self.name,
            "package": self.package,
            "distribution": self.distribution,
            "title": self.title,
            "description": self.description or _default_description(self.title, template),
            "core_requirement": core_requirement(__version__),
            "core_version": __version__,
            "template": template,
        }


def _default_description(title: str, template: str) -> str:
    if template == "ml":
        return f"{title}: logistic regression over the core's features"
    return f"{title}: moving-average crossover"


def _render_text(text: str, values: dict[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise KeyError(f"template {where}: unknown placeholder {{{{{key}}}}}")
        return values[key]

    return _PLACEHOLDER.sub(replace, text)


def _walk(node: Traversable, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Traversable]]:
    found = []
    for child in sorted(node.iterdir(), key=lambda c: c.name):
        if child.name == "__pycache__":
            continue
        if child.is_dir():
            found += _walk(child, (*prefix, child.name))
        elif child.name.endswith(".tmpl"):
            found.append(((*prefix, child.name), child))
    return found


def template_files(template: str) -> list[tuple[tuple[str, ...], Traversable]]:
    """``(relative path parts, resource)`` of every file of ``template``."""
    if template not in TEMPLATES:
        raise ConfigError(f"unknown template {template!r} (choose from {', '.join(TEMPLATES)})")
    return _walk(files(__name__).joinpath(template))


def render_plugin(names: PluginNames, destination: Path, template: str = "minimal") -> list[Path]:
    """Write the project of ``template`` into ``destination`` (which must not exist or be empty).

    Returns the files written, relative to ``destination``.
    """
    values = names.values(template)
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ConfigError(f"{destination} already exists and is not empty; choose another --dir or name")
    written = []
    for parts, resource in template_files(template):
        rendered = [_render_text(part, values, "/".join(parts)) for part in parts]
        rendered[-1] = rendered[-1].removesuffix(".tmpl")
        rendered[-1] = _RENAMES.get(rendered[-1], rendered[-1])
        target = destination.joinpath(*rendered)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_render_text(resource.read_text(encoding="utf-8"), values, "/".join(parts)), encoding="utf-8")
        written.append(target.relative_to(destination))
    return written
