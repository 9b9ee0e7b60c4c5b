"""Settings: ``TRADER_HOME`` (where data, state and models live) and ``trader.toml``."""

from __future__ import annotations

import errno
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trader.errors import ConfigError

__all__ = ["DEFAULT_HOME", "TraderConfig", "resolve_home", "load_config", "exchange_credentials", "secret_values"]

#: Used when neither ``--home`` nor ``TRADER_HOME`` is given.
DEFAULT_HOME = Path("~/.trader")

SECRET_ENV = ("TRADER_API_KEY", "TRADER_API_SECRET", "TRADER_API_PASSWORD")
#: ``trader.toml`` larger than this is refused unread (a settings file is a few kilobytes).
MAX_CONFIG_BYTES = 1 << 20
#: Keys of ``[plugins.NAME]`` that belong to the core, never to the strategy's parameters.
PLUGIN_MARKET_KEYS = ("symbols", "timeframe")


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """``--home``, else ``$TRADER_HOME``, else ``~/.trader``; made absolute."""
    raw = home or os.environ.get("TRADER_HOME") or DEFAULT_HOME
    return Path(raw).expanduser().resolve()


@attrs.frozen
class TraderConfig:
    """Parsed ``trader.toml`` plus the home folder. Sections are plain mappings."""

    home: Path
    path: Path | None = None
    data: Mapping[str, Any] = attrs.field(factory=dict)

    # ----------------------------------------------------------------- sections

    def section(self, *keys: str) -> dict[str, Any]:
        node: Any = self.data
        for key in keys:
            node = node.get(key, {}) if isinstance(node, Mapping) else {}
        if not isinstance(node, Mapping):
            where = ".".join(keys)
            raise ConfigError(f"{self.path or f'the settings of {self.home} (no trader.toml)'}: [{where}] must be a table")
        return dict(node)

    @property
    def exchange_id(self) -> str | None:
        return self.section("exchange").get("id")

    def ccxt_options(self) -> dict[str, Any]:
        """The ``[exchange.ccxt]`` table, passed verbatim to the ccxt constructor. Keys in it are refused
        (checked again here for a config built without :func:`load_config`)."""
        from trader.config_rules import check_config

        options = self.section("exchange", "ccxt")
        check_config({"exchange": {"ccxt": options}}, str(self.path or "trader.toml"))
        return options

    def data_limits(self) -> dict[str, int]:
        """The ``[data]`` table: the import limits that replace the defaults (see docs/data.md)."""
        return self.section("data")

    def plugin_params(self, name: str) -> dict[str, Any]:
        """``[plugins.NAME]`` without its ``risk`` and ``tune`` sub-tables and the core's market keys
        (``symbols``, ``timeframe``: see :meth:`plugin_markets`)."""
        params = self.section("plugins", name)
        for key in ("risk", "tune", *PLUGIN_MARKET_KEYS):
            params.pop(key, None)
        return params

    def plugin_markets(self, name: str) -> tuple[tuple[str, ...], str | None]:
        """``[plugins.NAME] symbols`` and ``timeframe``: the markets ``trader run`` trades when no
        ``--symbol`` is given (``()`` and ``None`` when unset; their types are checked on load)."""
        table = self.section("plugins", name)
        symbols = table.get("symbols") or ()
        timeframe = table.get("timeframe")
        return tuple(symbols), timeframe

    def tune_space(self, name: str) -> dict[str, Any]:
        """``[plugins.NAME.tune]``: what ``trader tune`` searches (see :mod:`trader.tune.space`)."""
        return self.section("plugins", name, "tune")

    def risk_overrides(self, name: str) -> dict[str, Any]:
        return self.section("plugins", name, "risk")

    def broker_settings(self) -> dict[str, Any]:
        return self.section("broker")

    # ----------------------------------------------------------------- folders

    def strategy_dir(self, name: str) -> Path:
        return self.home / "strategies" / name

    def plugin_workdir(self, name: str) -> Path:
        """The strategy's own writable folder (``SignalRequest.workdir``), created if missing."""
        return strategy_workdir(self.home, name)

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"


def load_config(path: str | os.PathLike | None = None, home: str | os.PathLike | None = None) -> TraderConfig:
    """Read ``--config``/``$TRADER_CONFIG``, else ``HOME/trader.toml`` if present, else defaults."""
    home_path = resolve_home(home)
    explicit = path or os.environ.get("TRADER_CONFIG")
    config_path = Path(explicit).expanduser() if explicit else home_path / "trader.toml"
    try:
        exists = config_path.exists()
    except OSError as exc:  # a name too long, a folder that cannot be searched
        hint = "; use a shorter --home / TRADER_HOME" if exc.errno == errno.ENAMETOOLONG else ""
        raise ConfigError(f"{str(config_path)[:120]}...: cannot read: {exc.strerror or exc}{hint}") from None
    from trader.tune.applied import merge_tuned  # TRADER_HOME/tuned/NAME.toml, written by trader tune --apply

    if not exists:
        if explicit:
            raise ConfigError(f"config file not found: {config_path}")
        return TraderConfig(home=home_path, data=merge_tuned(home_path, {}))
    from trader.config_rules import check_config

    try:
        with config_path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{config_path}: larger than {MAX_CONFIG_BYTES:,} bytes; is this a settings file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{config_path}: not UTF-8 text (byte {exc.start + 1}, line {line}); save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{config_path}: invalid TOML: nested too deeply") from None
    return TraderConfig(home=home_path, path=config_path, data=merge_tuned(home_path, check_config(data, str(config_path))))


def _env_secret(name: str) -> str | None:
    """The variable with surrounding whitespace removed; ``None`` when unset or only whitespace."""
    value = os.environ.get(name, "").strip()
    return value or None


def exchange_credentials() -> dict[str, str]:
    """API credentials from the environment only, in ccxt's constructor keys. A variable that is
    empty or only whitespace counts as missing."""
    mapping = {"TRADER_API_KEY": "apiKey", "TRADER_API_SECRET": "secret", "TRADER_API_PASSWORD": "password"}
    found = {key: _env_secret(env) for env, key in mapping.items()}
    return {key: value for key, value in found.items() if value}


def secret_values() -> list[str]:
    """The credentials to mask wherever text is shown or logged: as given and URL-encoded."""
    from urllib.parse import quote, quote_plus

    values = {value for value in map(_env_secret, SECRET_ENV) if value is not None}
    forms = {form for value in values for form in (value, quote(value, safe=""), quote_plus(value))}
    return sorted(forms, key=len, reverse=True)


def strategy_workdir(home: Path, name: str) -> Path:
    """``home/strategies/NAME/plugin``, created if missing: the folder a strategy writes in
    (``SignalRequest.workdir``) in backtests, walk-forward and the checks, as in ``trader run``."""
    folder = Path(home) / "strategies" / name / "plugin"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
