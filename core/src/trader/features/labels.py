"""The training target: the only computation in trader.features that looks forward.

The label of row ``t`` is the direction of the log return from the close of bar ``t`` to the close
of bar ``t + H``, against a fee-aware threshold:

- ``binary`` (default, what the classifiers train on): ``1`` when ``ln(c[t+H] / c[t]) > threshold``
  (a long entered at ``c[t]`` and closed at ``c[t+H]`` beats its fees), else ``0``.
- ``ternary``: ``1`` above ``threshold``, ``-1`` below ``-threshold``, ``0`` between.

The last ``H`` rows have no label (NaN), nor do rows whose horizon spans missing bars (the
timestamps of ``t`` and ``t + H`` must be exactly ``H`` bars apart). The default threshold is the
round trip at a 0.1 % taker fee: ``-2 ln(1 - 0.001)``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import field, frozen

from trader.candle_time import candle_timestamps, has_time
from trader.errors import DataError
from trader.timeframes import timeframe_to_ms
from trader.validators import integer, number, one_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LabelDefinition", "make_labels", "round_trip_threshold", "DEFAULT_FEE_RATE", "DEFAULT_THRESHOLD",
           "LABEL_KINDS", "TARGET_COLUMN"]

DEFAULT_FEE_RATE = 0.001
LABEL_KINDS = ("binary", "ternary")
TARGET_COLUMN = "target"


def round_trip_threshold(fee_rate: float) -> float:
    """Log return a long must exceed to pay *fee_rate* on entry and on exit: ``-2 ln(1 - fee)``."""
    if isinstance(fee_rate, bool) or not isinstance(fee_rate, (int, float)) or not 0.0 <= fee_rate < 1.0:
        raise ValueError(f"fee_rate must be within [0, 1), got {fee_rate!r}")
    return -2.0 * math.log1p(-float(fee_rate))


DEFAULT_THRESHOLD = round_trip_threshold(DEFAULT_FEE_RATE)


@frozen
class LabelDefinition:
    """How targets are made: ``kind`` over ``horizon`` bars against ``threshold`` (a log return)."""

    horizon: int = field(default=1, validator=integer(1))
    threshold: float = field(default=DEFAULT_THRESHOLD, validator=number(0))
    kind: str = field(default="binary", validator=one_of(*LABEL_KINDS))

    @classmethod
    def fee_aware(cls, fee_rate: float = DEFAULT_FEE_RATE, horizon: int = 1, kind: str = "binary",
                  margin: float = 0.0) -> LabelDefinition:
        """The threshold is the round-trip fee cost (plus *margin*, a log return)."""
        return cls(horizon=horizon, threshold=round_trip_threshold(fee_rate) + margin, kind=kind)

    @classmethod
    def from_settings(cls, threshold: float | None, fee_rate: float, horizon: int = 1,
                      kind: str = "binary") -> LabelDefinition:
        """A training configuration's labels: ``threshold`` as given, or fee-aware when it is ``None``."""
        if threshold is None:
            return cls.fee_aware(fee_rate, horizon=horizon, kind=kind)
        return cls(horizon=horizon, threshold=threshold, kind=kind)

    def compute_array(self, close: np.ndarray, timestamps: np.ndarray | None = None,
                      bar_ms: int | None = None) -> np.ndarray:
        """Labels for a close column (float64; NaN where there is none, see the module docstring)."""
        from trader.features.segments import check_increasing, infer_bar_ms

        c = np.asarray(close, dtype=np.float64)
        n, h = len(c), self.horizon
        labels = np.full(n, np.nan)
        if n <= h:
            return labels
        with np.errstate(divide="ignore", invalid="ignore"):
            forward = np.log(c[h:] / c[:-h])
        if self.kind == "binary":
            values = (forward > self.threshold).astype(np.float64)
        else:
            values = np.where(forward > self.threshold, 1.0, np.where(forward < -self.threshold, -1.0, 0.0))
        values[~np.isfinite(forward)] = np.nan
        if timestamps is not None:
            ts = np.asarray(timestamps, dtype=np.int64)
            check_increasing(ts)
            step = bar_ms if bar_ms is not None else infer_bar_ms(ts)
            if step is not None:
                values[(ts[h:] - ts[:-h]) != h * step] = np.nan
        labels[:-h] = values
        return labels

    def compute(self, df: pd.DataFrame, timeframe: str | None = None) -> pd.Series:
        """Labels for a candle frame, as a float Series named ``target`` indexed like *df*."""
        import pandas as pd

        if "close" not in df.columns:
            raise DataError("labels need a close column; the candle frame has none")
        ts = candle_timestamps(df) if has_time(df) else None  # a timestamp or date column, or a DatetimeIndex
        bar_ms = timeframe_to_ms(timeframe) if timeframe is not None else None
        values = self.compute_array(df["close"].to_numpy(dtype=np.float64), ts, bar_ms)
        return pd.Series(values, index=df.index, name=TARGET_COLUMN)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe description for a model manifest (``from_dict`` reverses it)."""
        return {"kind": self.kind, "horizon": self.horizon, "threshold": self.threshold, "return": "log"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LabelDefinition:
        try:
            return cls(horizon=data["horizon"], threshold=data["threshold"], kind=data.get("kind", "binary"))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"invalid label definition {data!r}: {exc}") from None


def make_labels(df: pd.DataFrame, horizon: int = 1, threshold: float = DEFAULT_THRESHOLD, kind: str = "binary",
                timeframe: str | None = None) -> pd.Series:
    """Shorthand for ``LabelDefinition(horizon, threshold, kind).compute(df, timeframe)``."""
    return LabelDefinition(horizon=horizon, threshold=threshold, kind=kind).compute(df, timeframe)
