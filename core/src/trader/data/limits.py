"""How much an import may cost: checked on what a file declares, before its rows are read.

Each limit has a ``[data]`` key in ``trader.toml`` (see docs/data.md); the defaults keep an
import of the largest file they admit within a few GB of memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from trader.errors import ConfigError

__all__ = ["ImportLimits", "DEFAULT_MAX_FILL_BARS", "bytes_text"]

#: ``--fill-gaps`` creates at most this many bars (``[data] max_fill_bars``).
DEFAULT_MAX_FILL_BARS = 1_000_000

_positive = attrs.validators.and_(attrs.validators.instance_of(int), attrs.validators.ge(1))


@attrs.frozen
class ImportLimits:
    """Limits on one imported file; the ``[data]`` key of each is in its comment."""

    max_rows: int = attrs.field(default=10_000_000, validator=_positive)  # max_import_rows
    max_bytes: int = attrs.field(default=1 << 30, validator=_positive)  # max_import_bytes: decompressed data read
    max_json_bytes: int = attrs.field(default=256 << 20, validator=_positive)  # max_json_bytes: JSON text, decompressed
    max_json_depth: int = attrs.field(default=32, validator=_positive)  # max_json_depth: nesting of [ and {
    max_int_digits: int = attrs.field(default=40, validator=_positive)  # max_int_digits: digits of a JSON integer

    @classmethod
    def from_settings(cls, table: Mapping[str, Any]) -> ImportLimits:
        """From the ``[data]`` table (checked by :mod:`trader.config_rules`); missing keys keep their defaults."""
        names = {"max_import_rows": "max_rows", "max_import_bytes": "max_bytes", "max_json_bytes": "max_json_bytes",
                 "max_json_depth": "max_json_depth", "max_int_digits": "max_int_digits"}
        try:
            return cls(**{field: table[key] for key, field in names.items() if key in table})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[data]: {exc}") from None


def bytes_text(n: int) -> str:
    """``1073741824`` -> ``1 GiB``; ``1536`` -> ``1.5 KiB``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
