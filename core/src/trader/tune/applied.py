"""``trader tune --apply``: the chosen parameters in ``TRADER_HOME/tuned/NAME.toml``.

:func:`trader.config.load_config` merges every such file under ``[plugins.NAME]`` (and its
``train`` sub-table), so ``run``, ``backtest``, ``train`` and ``compare`` read them like keys of
``trader.toml``. ``trader.toml`` wins where both set a key (what a person wrote beats what a search
wrote); ``tune --apply`` names such keys. ``trader.toml`` is never rewritten, so its comments stay.
Deleting the file goes back to the defaults. ``trader train`` records the file's ``[tuned]`` table
(study, trial, value) in the next model's manifest.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trader.errors import ConfigError

__all__ = ["tuned_path", "write_tuned", "read_tuned", "merge_tuned", "tuned_record"]

_NAME = re.compile(r"[A-Za-z0-9_\-]{1,64}")
MAX_TUNED_BYTES = 1 << 16


def tuned_path(home: Path, plugin: str) -> Path:
    return Path(home) / "tuned" / f"{plugin}.toml"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} to TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise ValueError(f"cannot write a {type(value).__name__} to TOML")


def _table(title: str, values: Mapping[str, Any]) -> list[str]:
    return [f"[{title}]", *(f"{key} = {_value(v)}" for key, v in values.items()), ""]


def write_tuned(home: Path, plugin: str, params: Mapping[str, Any], train: Mapping[str, Any],
                record: Mapping[str, Any]) -> Path:
    """Write (replace) ``tuned/PLUGIN.toml``: *params* under ``[plugins.PLUGIN]``, *train* under its
    ``train`` table and *record* (where they come from) under ``[tuned]``."""
    if not _NAME.fullmatch(plugin):
        raise ConfigError(f"cannot write tuned parameters for plugin name {plugin!r}")
    lines = [f"# Written by `trader tune --apply` ({record.get('study', '?')}). trader.toml wins where both set a key;",
             "# delete this file to go back to the defaults.", ""]
    lines += _table("tuned", record)
    lines += _table(f"plugins.{plugin}", params)
    if train:
        lines += _table(f"plugins.{plugin}.train", train)
    path = tuned_path(home, plugin)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines), encoding="utf-8")
    tmp.replace(path)
    return path


def read_tuned(path: Path) -> dict[str, Any]:
    """One tuned file, parsed; ``ConfigError`` naming it when it cannot be read."""
    try:
        raw = path.read_bytes()[: MAX_TUNED_BYTES + 1]
        if len(raw) > MAX_TUNED_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_TUNED_BYTES:,} bytes; delete it or run trader tune --apply again")
        data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read tuned parameters: {exc}; delete it or run trader tune --apply again") from None
    plugins = data.get("plugins", {})
    if not isinstance(plugins, Mapping) or set(plugins) - {path.stem} or not isinstance(plugins.get(path.stem, {}), Mapping):
        raise ConfigError(f"{path}: must hold only [plugins.{path.stem}] and [tuned]")
    return data


def merge_tuned(home: Path, data: Mapping[str, Any]) -> dict[str, Any]:
    """*data* (``trader.toml``) with every ``home/tuned/NAME.toml`` merged under ``[plugins.NAME]``;
    *data*'s own keys win. Returns *data* unchanged (the same dict) when there are no tuned files."""
    folder = Path(home) / "tuned"
    try:
        files = sorted(folder.glob("*.toml")) if folder.is_dir() else []
    except OSError:
        files = []
    if not files:
        return data  # type: ignore[return-value]
    out = dict(data)
    plugins = dict(out.get("plugins", {}) or {})
    for path in files:
        name = path.stem
        tuned = read_tuned(path).get("plugins", {}).get(name, {})
        mine = plugins.get(name, {})
        if not isinstance(mine, Mapping):
            continue  # trader.toml's own error is reported by its check
        merged = {**tuned, **mine}
        if isinstance(tuned.get("train"), Mapping) and isinstance(mine.get("train", {}), Mapping):
            merged["train"] = {**tuned["train"], **mine.get("train", {})}
        plugins[name] = merged
    out["plugins"] = plugins
    return out


def tuned_record(home: Path, plugin: str) -> dict[str, Any] | None:
    """The ``[tuned]`` table of the plugin's tuned file (for a model's manifest), or ``None``."""
    path = tuned_path(home, plugin)
    if not path.is_file():
        return None
    data = read_tuned(path)
    record = dict(data.get("tuned", {}))
    record["file"] = str(path)
    record["params"] = {k: v for k, v in data.get("plugins", {}).get(plugin, {}).items()}
    return record
