"""``[plugins.NAME]`` checked against the parameters a strategy declares, before anything runs.

A strategy lists its keys in :attr:`trader.types.StrategyInfo.params` (:class:`~trader.types.ParamSpec`):
those of ``[plugins.NAME]`` (what ``SignalRequest.params`` holds) and those of its ``train``
sub-table (what ``trader train --param`` sets). Every command that hands these tables to a
strategy (``run``, ``backtest`` with or without ``--walk-forward``, ``train``, ``check``,
``compare``) calls :func:`validate_params` first: an unknown key is refused with a "did you
mean", a value of the wrong type or out of its range with the key named, one line each.

- A strategy that declares nothing (``params == ()``) gets both tables as they are, unchecked,
  as before: third-party plugins written without declarations keep working.
- A strategy that declares anything declares everything it reads, in both tables.
- ``[plugins.NAME.risk]`` is not a parameter: :class:`~trader.types.RiskLimits` checks it.
- The declared ranges are checked one key at a time; what depends on several keys
  (``sell_threshold <= buy_threshold``) is still the strategy's own check.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from trader.errors import ConfigError
from trader.types import ParamSpec, StrategyInfo

__all__ = ["validate_params", "validate_section", "configured_params", "params_where"]

_BARE = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def _key(key: Any) -> str:
    text = str(key)
    return text if _BARE.fullmatch(text) else json.dumps(text[:64] + ("..." if len(text) > 64 else ""))


def _title(info: StrategyInfo, section: str) -> str:
    return f"[plugins.{info.name}{'.' + section if section else ''}]"


def validate_section(info: StrategyInfo, section: str, table: Mapping[str, Any], where: str, *,
                     fill_defaults: bool = False) -> dict[str, Any]:
    """One table of *section* (``""`` or ``"train"``) checked against *info*'s declarations; the values
    as the strategy gets them, plus the declared defaults when *fill_defaults*. Sub-tables are left
    to the caller. ``ConfigError`` naming *where*, the table and the key."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: {_title(info, section)} must be a table, got {type(table).__name__}")
    if not info.params:
        return dict(table)
    specs = {p.name: p for p in info.params if p.section == section}
    others = {p.name: p for p in info.params if p.section != section}
    out: dict[str, Any] = {}
    for key, value in table.items():
        spec = specs.get(key)
        if spec is None:
            if not section and key in ("risk", "train") and isinstance(value, Mapping):
                out[key] = value
                continue
            raise ConfigError(f"{where}: {_unknown(info, section, key, specs, others)}")
        try:
            out[key] = spec.check(value)
        except ValueError as exc:
            raise ConfigError(f"{where}: {_title(info, section)} {_key(key)} {exc}") from None
    if fill_defaults:
        for name, spec in specs.items():
            if name not in out and spec.default is not None:
                out[name] = list(spec.default) if spec.many else spec.default
    return out


def _unknown(info: StrategyInfo, section: str, key: Any, specs: Mapping[str, ParamSpec],
             others: Mapping[str, ParamSpec]) -> str:
    text = f"unknown key {_key(key)} in {_title(info, section)}"
    if key in others:
        return f"{text}: it belongs in {_title(info, others[key].section)}"
    close = difflib.get_close_matches(str(key), list(specs), n=1, cutoff=0.6)
    if close:
        return f"{text}; did you mean {close[0]!r}?"
    known = ", ".join(specs) if specs else "none"
    return f"{text} (known: {known})"


def validate_params(info: StrategyInfo, table: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``[plugins.NAME]`` checked against ``info.params``, as the strategy gets it: its declared
    defaults filled in; the ``train`` sub-table checked and kept as given (the trainer applies its
    own defaults and records what the user chose); ``risk`` untouched. A strategy that declares
    nothing gets *table* unchanged. *where* (the settings file) starts every error."""
    params = validate_section(info, "", table, where, fill_defaults=True)
    if info.params and "train" in params:
        params["train"] = validate_section(info, "train", params["train"], where)
    return params


def params_where(config: Any, plugin: str) -> str:
    """Where *plugin*'s ``[plugins.NAME]`` comes from, to start an error: ``trader.toml``, and the
    ``TRADER_HOME/tuned/NAME.toml`` of ``trader tune --apply`` merged under it when there is one."""
    from pathlib import Path

    where = str(config.path or "trader.toml")
    tuned = Path(config.home) / "tuned" / f"{plugin}.toml"
    return f"{where} (with {tuned})" if tuned.is_file() else where


def configured_params(config: Any, info: StrategyInfo) -> dict[str, Any]:
    """The strategy's ``[plugins.NAME]`` of *config* (a :class:`~trader.config.TraderConfig`), without
    ``risk``, through :func:`validate_params`."""
    return validate_params(info, config.plugin_params(info.name), params_where(config, info.name))
