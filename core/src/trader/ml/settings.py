"""How candles become windows and labels: the data keys of ``[plugins.NAME.train]``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trader.errors import ConfigError
from trader.feature_windows import DEFAULT_WINDOWS

if TYPE_CHECKING:
    from trader.features import LabelDefinition
    from trader.ml.spec import SequenceClassifierSpec

__all__ = ["DataSettings", "read_number", "DEFAULT_SEQUENCE_LENGTH"]

#: Candles per window when neither the plugin nor ``[plugins.NAME.train]`` says otherwise.
DEFAULT_SEQUENCE_LENGTH = 60


def read_number(params: Mapping[str, Any], key: str, default: Any, kind: type = float) -> Any:
    """``params[key]`` (or ``default``) as a ``kind``; a one-line ConfigError for anything else."""
    value = params.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
        raise ConfigError(f"training parameter {key} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
    return kind(value)


@attrs.frozen
class DataSettings:
    """How candles become windows and labels (keys of ``[plugins.NAME.train]``)."""

    sequence_length: int = DEFAULT_SEQUENCE_LENGTH
    windows: tuple[int, ...] = DEFAULT_WINDOWS
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    embargo: int = 0
    label_horizon: int = 1
    label_threshold: float | None = 0.0  # a log return; None ("fee"): the round trip of fee_rate
    fee_rate: float = 0.001
    label_kind: str = "binary"
    scaler: str = "zscore"
    scaler_clip: float | None = 10.0
    max_fill_bars: int = 5

    KEYS = (
        "sequence_length", "windows", "val_fraction", "test_fraction", "embargo", "label_horizon",
        "label_threshold", "fee_rate", "label_kind", "scaler", "scaler_clip", "max_fill_bars",
    )

    @classmethod
    def from_params(cls, params: Mapping[str, Any], spec: SequenceClassifierSpec) -> DataSettings:
        windows = params.get("windows", spec.feature_windows or DEFAULT_WINDOWS)
        if not isinstance(windows, (list, tuple)) or not windows:
            raise ConfigError(f"training parameter windows must be a list of integers, got {windows!r}")
        settings = cls(
            sequence_length=read_number(params, "sequence_length", spec.sequence_length or DEFAULT_SEQUENCE_LENGTH, int),
            windows=tuple(int(w) for w in windows),
            val_fraction=read_number(params, "val_fraction", 0.15),
            test_fraction=read_number(params, "test_fraction", 0.15),
            embargo=read_number(params, "embargo", 0, int),
            label_horizon=read_number(params, "label_horizon", 1, int),
            label_threshold=None if params.get("label_threshold") == "fee" else read_number(params, "label_threshold", 0.0),
            fee_rate=read_number(params, "fee_rate", 0.001),
            label_kind=str(params.get("label_kind", "binary")),
            scaler=str(params.get("scaler", "zscore")),
            scaler_clip=read_number(params, "scaler_clip", 10.0),
            max_fill_bars=read_number(params, "max_fill_bars", 5, int),
        )
        if settings.sequence_length < 1:
            raise ConfigError(f"sequence_length must be >= 1, got {settings.sequence_length}")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(settings, key)
            if not 0.0 < value < 0.5:
                raise ConfigError(f"training parameter {key} must be within (0, 0.5), got {value}")
        if settings.embargo < 0:
            raise ConfigError(f"embargo must be >= 0, got {settings.embargo}")
        return settings

    def label_definition(self) -> LabelDefinition:
        from trader.features import LabelDefinition

        try:
            return LabelDefinition.from_settings(self.label_threshold, self.fee_rate, self.label_horizon, self.label_kind)
        except ValueError as exc:
            raise ConfigError(f"label settings: {exc}") from None

