"""The search space of ``trader tune``, from the parameters a strategy declares.

By default the space is every :class:`~trader.types.ParamSpec` the strategy marks ``tune=True``,
over its declared range (``low``..``high``, on a log scale when ``log``), its ``choices``, or
true/false. ``[plugins.NAME.tune]`` chooses instead, one key per parameter::

    [plugins.NAME.tune]
    buy_threshold = { low = 0.5, high = 0.7 }   # search it, within a narrower range
    hidden_size = { choices = [32, 64, 128] }   # search only these values
    dropout = true                              # search its declared range
    position_size = false                       # do not search it (though marked tune)

A narrowed range must lie inside the declared one. A parameter not searched keeps its value from
``[plugins.NAME]`` (or its default). A strategy with no space gets one clear error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trader.errors import ConfigError
from trader.types import ParamSpec, StrategyInfo

__all__ = ["Dimension", "SearchSpace", "search_space", "MAX_CHOICES"]

#: The most values one parameter is searched among: every trial stores its choices, and a sampler
#: that picks among more learns nothing from a few dozen trials.
MAX_CHOICES = 1000


@attrs.frozen
class Dimension:
    """One searched parameter: a range (``low``..``high``, ``log``), or ``choices``."""

    name: str
    section: str  # "" ([plugins.NAME]) or "train"
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """Ask an Optuna trial for a value (the key is ``section.name``)."""
        key = self.key
        if self.kind == "choice":
            return trial.suggest_categorical(key, list(self.choices))
        low, high = self.bounds
        if self.kind == "int":
            return trial.suggest_int(key, int(low), int(high), log=self.log)
        return trial.suggest_float(key, float(low), float(high), log=self.log)

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a range (an ``int`` or ``float`` dimension)."""
        if self.low is None or self.high is None:
            raise ValueError(f"{self.key} is searched among choices, not in a range")
        return self.low, self.high

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    def describe(self) -> str:
        if self.kind == "choice":
            shown = ", ".join(map(str, self.choices[:10]))
            more = f", ... ({len(self.choices):,} choices)" if len(self.choices) > 10 else ""
            return f"{self.key} in {{{shown}{more}}}"
        return f"{self.key} in [{self.low:g}, {self.high:g}]{' (log)' if self.log else ''}"


@attrs.frozen
class SearchSpace:
    """The searched dimensions of one strategy."""

    strategy: str
    dimensions: tuple[Dimension, ...]

    def split(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Optuna's ``{key: value}`` as (``[plugins.NAME]`` keys, ``[plugins.NAME.train]`` keys)."""
        signal: dict[str, Any] = {}
        train: dict[str, Any] = {}
        for dim in self.dimensions:
            if dim.key in values:
                (train if dim.section == "train" else signal)[dim.name] = values[dim.key]
        return signal, train

    def defaults(self, info: StrategyInfo, configured: Mapping[str, Any]) -> dict[str, Any] | None:
        """The trial of the current settings (``[plugins.NAME]``, else declared defaults), when it lies in
        the space; ``None`` when a value is unknown or outside it."""
        out: dict[str, Any] = {}
        for dim in self.dimensions:
            table = configured.get("train", {}) if dim.section == "train" else configured
            spec = _spec(info, dim.name, dim.section)
            value = table.get(dim.name, spec.default if spec else None)
            if value is None or isinstance(value, list):
                return None
            if dim.kind == "choice":
                if value not in dim.choices:
                    return None
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not dim.bounds[0] <= value <= dim.bounds[1]:
                return None
            out[dim.key] = value
        return out

    def to_dict(self) -> list[dict[str, Any]]:
        return [attrs.asdict(d) | {"choices": list(d.choices)} for d in self.dimensions]


def _spec(info: StrategyInfo, name: str, section: str) -> ParamSpec | None:
    return next((p for p in info.params if p.name == name and p.section == section), None)


def _dimension(spec: ParamSpec, override: Any, where: str) -> Dimension:
    title = f"{where} {spec.name}"
    if spec.many:
        raise ConfigError(f"{title}: a list parameter cannot be searched")
    override = {} if override is True else override
    if not isinstance(override, Mapping):
        raise ConfigError(f"{title}: expected true, false or a table of low/high/log/choices, got {override!r}")
    unknown = set(override) - {"low", "high", "log", "choices"}
    if unknown:
        raise ConfigError(f"{title}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (known: low, high, log, choices)")
    if "choices" in override:
        choices = override["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{title}: choices must be a non-empty list")
        _few_enough(title, choices, given=True)
        for value in choices:
            try:
                spec.check(value)
            except ValueError as exc:
                raise ConfigError(f"{title}: choice {value!r} {exc}") from None
        return Dimension(spec.name, spec.section, "choice", choices=tuple(choices))
    if spec.kind == "bool":
        return Dimension(spec.name, spec.section, "choice", choices=(False, True))
    if spec.kind == "choice":
        _few_enough(title, spec.choices, given=False)
        return Dimension(spec.name, spec.section, "choice", choices=tuple(spec.choices))
    if spec.kind not in ("int", "float"):
        raise ConfigError(f"{title}: a {spec.kind} parameter is searched only over choices = [...]")
    low, high = override.get("low", spec.low), override.get("high", spec.high)
    if low is None or high is None:
        raise ConfigError(f"{title}: declares no {'low' if low is None else 'high'} bound; give one in [plugins.NAME.tune]")
    for bound, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{title}: {bound} must be a number, got {value!r}")
        if spec.kind == "int" and not isinstance(value, int):
            raise ConfigError(f"{title}: {bound} must be a whole number, got {value!r}")
        if (spec.low is not None and value < spec.low) or (spec.high is not None and value > spec.high):
            raise ConfigError(f"{title}: {bound} {value!r} lies outside the declared range [{spec.low}, {spec.high}]")
    if low >= high:
        raise ConfigError(f"{title}: low {low!r} must be below high {high!r}")
    log = override.get("log", spec.log)
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{title}: log must be true or false, and needs low > 0")
    return Dimension(spec.name, spec.section, spec.kind, low=low, high=high, log=log)


def _few_enough(title: str, choices: Any, *, given: bool) -> None:
    if len(choices) > MAX_CHOICES:
        whose = "" if given else " (as the strategy declares it)"
        raise ConfigError(f"{title}: {len(choices):,} choices{whose} are too many to search (at most {MAX_CHOICES:,}); "
                          f"list the values to try: {title.rsplit(' ', 1)[-1]} = {{ choices = [...] }}")


def search_space(info: StrategyInfo, table: Mapping[str, Any], where: str = "[plugins.NAME.tune]") -> SearchSpace:
    """The space of *info* with the ``[plugins.NAME.tune]`` *table* applied; ``ConfigError`` when empty
    or when the table names an unknown parameter or widens a range."""
    where = where.replace("NAME", info.name)
    if not info.params:
        raise ConfigError(f"strategy {info.name!r} has no search space: it declares no parameters (StrategyInfo.params)")
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where} must be a table")
    specs = {(p.section, p.name): p for p in info.params}
    by_name: dict[str, list[ParamSpec]] = {}
    for p in info.params:
        by_name.setdefault(p.name, []).append(p)
    chosen: dict[tuple[str, str], Any] = {key: True for key, p in specs.items() if p.tune}
    for raw_key, override in table.items():
        section, _, name = str(raw_key).rpartition(".")
        candidates = [specs[(section, name)]] if (section, name) in specs else (by_name.get(name, []) if not section else [])
        if len(candidates) != 1:
            known = ", ".join(sorted({p.name for p in info.params})) or "none"
            why = "is declared in both tables; write train.NAME or NAME" if candidates else f"is not a declared parameter (known: {known})"
            raise ConfigError(f"{where}: {raw_key!r} {why}")
        key = (candidates[0].section, candidates[0].name)
        if override is False:
            chosen.pop(key, None)
        else:
            chosen[key] = override
    if not chosen:
        raise ConfigError(
            f"strategy {info.name!r} has no search space: it marks no declared parameter tune=True and "
            f"{where} names none; add e.g. `{(info.params[0].name if info.params else 'PARAM')} = true` there"
        )
    dims = tuple(_dimension(specs[key], override, where) for key, override in sorted(chosen.items()))
    return SearchSpace(info.name, dims)
