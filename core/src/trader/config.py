"""Settings: ``TRADER_HOME`` (where data, state and models live) and ``trader.toml``."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trader.errors import ConfigError

__all__ = ["DEFAULT_HOME", "TraderConfig", "resolve_home", "load_config"]

#: Used when neither ``--home`` nor ``TRADER_HOME`` is given.
DEFAULT_HOME = Path("~/.trader")

SECRET_ENV = ("TRADER_API_KEY", "TRADER_API_SECRET", "TRADER_API_PASSWORD")
_SECRET_KEYS = {"apikey", "secret", "password", "api_key", "api_secret", "uid", "privatekey", "token"}


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
            raise ConfigError(f"{self.path}: [{where}] must be a table")
        return dict(node)

    @property
    def exchange_id(self) -> str | None:
        return self.section("exchange").get("id")

    def ccxt_options(self) -> dict[str, Any]:
        """The ``[exchange.ccxt]`` table, passed verbatim to the ccxt constructor. Keys in it are refused."""
        options = self.section("exchange", "ccxt")
        leaked = sorted(key for key in options if key.lower() in _SECRET_KEYS)
        if leaked:
            raise ConfigError(
                f"{self.path}: [exchange.ccxt] must not hold credentials ({', '.join(leaked)}); "
                "set TRADER_API_KEY / TRADER_API_SECRET / TRADER_API_PASSWORD in the environment"
            )
        return options

    def plugin_params(self, name: str) -> dict[str, Any]:
        """``[plugins.NAME]`` without its ``risk`` sub-table."""
        params = self.section("plugins", name)
        params.pop("risk", None)
        return params

    def risk_overrides(self, name: str) -> dict[str, Any]:
        return self.section("plugins", name, "risk")

    def broker_settings(self) -> dict[str, Any]:
        return self.section("broker")

    # ----------------------------------------------------------------- folders

    def strategy_dir(self, name: str) -> Path:
        return self.home / "strategies" / name

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
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"config file not found: {config_path}")
        return TraderConfig(home=home_path)
    try:
        with config_path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{config_path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from None
    return TraderConfig(home=home_path, path=config_path, data=data)


def exchange_credentials() -> dict[str, str]:
    """API credentials from the environment only, in ccxt's constructor keys."""
    mapping = {"TRADER_API_KEY": "apiKey", "TRADER_API_SECRET": "secret", "TRADER_API_PASSWORD": "password"}
    return {key: os.environ[env] for env, key in mapping.items() if os.environ.get(env)}
