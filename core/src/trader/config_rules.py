"""What ``trader.toml`` may hold, checked once when it is loaded, before any command runs.

- **No credentials anywhere**: a key whose name, normalised (case, whitespace, ``_``, ``-``,
  ``.`` dropped), looks like one (:func:`looks_like_credential`) is refused wherever it is,
  and so is every header that could carry one; keys come only from the environment.
- **Sections the core owns** (the top level, ``[exchange]``, ``[broker]``, ``[engine]``,
  ``[data]``, ``[notify]``, ``[plugins.NAME.risk]``) know their keys: an unknown one is an error with a
  "did you mean". ``[exchange.ccxt]`` goes to ccxt as it is; ``[plugins.NAME]`` is checked
  against the strategy's declared parameters by :mod:`trader.params` when a command starts.
- **Numbers**: the core's own settings are finite numbers (the ``[data]`` limits positive
  integers); ``nan`` is refused anywhere; a thread count (a key ending in ``threads``) must be a positive integer and is capped at the CPU cores this process may use.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from typing import Any

from trader.errors import ConfigError

__all__ = ["check_config", "looks_like_credential", "usable_cores", "CORE_KEYS"]

log = logging.getLogger("trader.config")

_TABLE, _TEXT, _NUMBER, _COUNT, _FREE = "table", "text", "number", "count", "free"

#: The keys of the sections the core owns, and what each holds.
CORE_KEYS: dict[tuple[str, ...], dict[str, str]] = {
    (): {"exchange": _TABLE, "broker": _TABLE, "engine": _TABLE, "data": _TABLE, "plugins": _TABLE, "notify": _TABLE},
    ("exchange",): {"id": _TEXT, "ccxt": _FREE},
    ("broker",): {"fee_bps": _NUMBER, "slippage_bps": _NUMBER, "spread_bps": _NUMBER, "lot_size": _NUMBER, "min_notional": _NUMBER, "cash": _NUMBER},
    ("engine",): {"rebalance_band": _NUMBER, "signal_timeout_s": _NUMBER, "worker_start_timeout_s": _NUMBER},
    ("data",): {
        "max_import_rows": _COUNT,
        "max_import_bytes": _COUNT,
        "max_json_bytes": _COUNT,
        "max_json_depth": _COUNT,
        "max_int_digits": _COUNT,
        "max_fill_bars": _COUNT,
    },
}

# normalised names (see _normalise) that are credentials wherever they appear inside a longer name
_CREDENTIAL_PARTS = ("apikey", "apisecret", "secretkey", "accesskey", "privatekey", "walletaddress", "secret",
                     "password", "passwd", "passphrase", "twofa", "mnemonic", "token", "login")
# words that are credentials only as a whole word of the name (``uid`` but not ``liquidity``)
_CREDENTIAL_WORDS = {"uid", "2fa", "otp", "jwt", "cookie", "signature"}
# any header that could carry a key
_HEADER_PARTS = ("key", "auth", "token", "sign", "secret", "pass", "cookie", "session", "credential", "bearer")


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[\s_\-.]+", spaced.lower()) if w]


def _normalise(name: str) -> str:
    return "".join(_words(name))


def looks_like_credential(name: str, *, header: bool = False) -> bool:
    """Whether a settings key named *name* would hold a credential (``apiKey``, ``"api_key "``,
    ``X-MBX-APIKEY``, ``twofa``, ``walletAddress``, ...); *header*: it names an HTTP header."""
    flat = _normalise(name)
    if header and any(part in flat for part in _HEADER_PARTS):
        return True
    return any(part in flat for part in _CREDENTIAL_PARTS) or bool(_CREDENTIAL_WORDS & set(_words(name)))


def usable_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _key_path(keys: tuple[str, ...]) -> str:
    bare = re.compile(r"[A-Za-z0-9_\-]{1,64}")
    parts = [k if bare.fullmatch(k) else json.dumps(k[:64] + ("..." if len(k) > 64 else "")) for k in keys]
    return ".".join(parts)


def check_config(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Refuse what :mod:`trader.config_rules` forbids with one :class:`ConfigError` line naming
    *where* and the key; returns *data* with thread counts capped."""
    _walk(data, (), where, in_headers=False)
    for section, keys in CORE_KEYS.items():
        table = _table_at(data, section)
        if table is not None:
            _check_known(table, section, keys, where)
    if "notify" in data:  # alerts: targets, kinds and policy (trader.notify.settings); secrets only from the environment
        from trader.notify.settings import check_notify

        check_notify(data["notify"], where)
    plugins = data.get("plugins", {})
    for name, table in plugins.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [plugins.{_key_path((name,))}] must be a table, got {type(table).__name__}")
        for sub in ("risk", "train"):
            if sub in table and not isinstance(table[sub], Mapping):
                raise ConfigError(f"{where}: [plugins.{_key_path((name, sub))}] must be a table")
        symbols = table.get("symbols")
        if symbols is not None and not (isinstance(symbols, list) and symbols and all(isinstance(s, str) for s in symbols)):
            raise ConfigError(f"{where}: [plugins.{_key_path((name,))}] symbols must be a list of market symbols "
                              f'(e.g. ["BTC/USDT", "ETH/USDT"]), got {str(symbols)[:80]}')
        if "timeframe" in table and not isinstance(table["timeframe"], str):
            raise ConfigError(f"{where}: [plugins.{_key_path((name,))}] timeframe must be text (e.g. \"1h\"), "
                              f"got {str(table['timeframe'])[:40]}")
        if isinstance(table.get("risk"), Mapping) and table["risk"]:
            import attrs

            from trader.types import RiskLimits

            known = {field: _NUMBER for field in attrs.fields_dict(RiskLimits)}
            _check_known(table["risk"], ("plugins", name, "risk"), known, where)
    return data


def _table_at(data: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, Any] | None:
    node: Any = data
    for key in keys:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, Mapping) else None


def _check_known(table: Mapping[str, Any], section: tuple[str, ...], keys: Mapping[str, str], where: str) -> None:
    title = f"[{_key_path(section)}]" if section else "the top level"
    for key, value in table.items():
        kind = keys.get(key)
        if kind is None:
            close = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(keys)})"
            raise ConfigError(f"{where}: unknown key {_key_path((key,))} in {title}{hint}")
        name = _key_path((*section, key))
        if kind == _TABLE and not isinstance(value, Mapping):
            raise ConfigError(f"{where}: [{name}] must be a table, got {type(value).__name__}")
        if kind == _TEXT and not isinstance(value, str):
            raise ConfigError(f"{where}: {name} must be text, got {value!r}")
        if kind == _NUMBER and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
            raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
        if kind == _COUNT and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{where}: {name} must be a positive whole number, got {value!r}")


def _walk(node: Any, keys: tuple[str, ...], where: str, in_headers: bool) -> None:
    if isinstance(node, Mapping):
        for key, value in list(node.items()):
            path = (*keys, key)
            if looks_like_credential(key, header=in_headers):
                raise ConfigError(
                    f"{where}: {_key_path(path)} looks like a credential, and trader.toml must not hold credentials: remove it "
                    "and set TRADER_API_KEY / TRADER_API_SECRET / TRADER_API_PASSWORD in the environment"
                )
            if _is_thread_count(key):
                node[key] = _threads(value, path, where)  # type: ignore[index]
            _walk(value, path, where, in_headers=_normalise(key) == "headers")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, (*keys, str(i)), where, in_headers)
    elif isinstance(node, float) and math.isnan(node):
        raise ConfigError(f"{where}: {_key_path(keys)} = nan is not a usable setting")


def _is_thread_count(key: str) -> bool:
    return _normalise(key).endswith("threads")


def _threads(value: Any, path: tuple[str, ...], where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}: {_key_path(path)} must be a positive whole number of threads, got {value!r}")
    cores = usable_cores()
    if value > cores:
        log.warning("%s: %s = %d is more than the %d CPU cores: using %d", where, _key_path(path), value, cores, cores)
        return cores
    return value
