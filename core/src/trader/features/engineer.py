"""FeatureEngineer: OHLCV candles -> the engineered, scale-free, look-ahead-free feature frame."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from attrs import field, frozen

from trader.candle_time import candle_timestamps
from trader.errors import DataError
from trader.features import kernels
from trader.features.labels import DEFAULT_THRESHOLD, LABEL_KINDS, TARGET_COLUMN, LabelDefinition
from trader.features.segments import DEFAULT_MAX_FILL_BARS, GapPlan, plan_gaps
from trader.features.specs import (
    BAR_FEATURES,
    DEFAULT_WINDOWS,
    WINDOW_FEATURES,
    check_windows,
    feature_names,
    feature_specs,
    warmup_bars_for,
)
from trader.timeframes import timeframe_to_ms
from trader.validators import integer, number, one_of

if TYPE_CHECKING:
    import pandas as pd

    from trader.features.incremental import IncrementalFeatures
    from trader.features.specs import FeatureSpec

__all__ = ["FeatureEngineer", "FEATURE_SET_VERSION", "OHLCV_COLUMNS"]

CHUNK_ROWS = 16_384

FEATURE_SET_VERSION = 1
OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def _to_windows(value: Iterable[int]) -> tuple[int, ...]:
    windows = tuple(value)
    check_windows(windows)
    return tuple(sorted(windows))


def _check_timeframe(instance: Any, attribute: Any, value: Any) -> None:
    if value is not None:
        timeframe_to_ms(value)


@frozen
class ExtendedCandles:
    """Candle columns with gap fills inserted; ``positions[i]`` is input row ``i``'s row here."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    segment_start: np.ndarray  # bool: row starts a segment
    positions: np.ndarray | None  # None: no fills, identity
    plan: GapPlan

    def __len__(self) -> int:
        return len(self.close)

    def bars_into_segment(self) -> np.ndarray:
        """For every row, how many rows of its segment precede it."""
        idx = np.arange(len(self.close))
        starts = np.maximum.accumulate(np.where(self.segment_start, idx, 0))
        return idx - starts


@frozen
class FeatureEngineer:
    """The engineered feature set over *windows*; ``18 * len(windows) + 14`` features (86 by default).

    ``transform(df)`` returns one row per candle; a row is NaN until its segment has
    ``warmup_bars`` earlier bars (see ``docs/features.md`` for every formula and the gap policy).
    ``include_target=True`` appends the ``target`` column made by :attr:`label_definition`.
    ``timeframe`` fixes the bar length for gap detection (else it is inferred from the data).
    """

    windows: tuple[int, ...] = field(default=DEFAULT_WINDOWS, converter=_to_windows)
    include_target: bool = field(default=False, converter=bool)
    horizon: int = field(default=1, validator=integer(1))
    threshold: float = field(default=DEFAULT_THRESHOLD, validator=number(0))
    timeframe: str | None = field(default=None, validator=_check_timeframe)
    max_fill_bars: int = field(default=DEFAULT_MAX_FILL_BARS, validator=integer(0))
    label_kind: str = field(default="binary", validator=one_of(*LABEL_KINDS))

    # ------------------------------------------------------------------ description

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(feature_names(self.windows))

    def get_feature_names(self, exclude_target: bool = True) -> list[str]:
        """Ordered output column names (with ``target`` last when included and not excluded)."""
        names = feature_names(self.windows)
        if self.include_target and not exclude_target:
            names.append(TARGET_COLUMN)
        return names

    @property
    def specs(self) -> tuple[FeatureSpec, ...]:
        return feature_specs(self.windows)

    @property
    def n_features(self) -> int:
        return len(BAR_FEATURES) + len(WINDOW_FEATURES) * len(self.windows)

    @property
    def warmup_bars(self) -> int:
        """Row index (within a segment) of the first row where every feature is valid."""
        return warmup_bars_for(self.windows)

    @property
    def bar_ms(self) -> int | None:
        return timeframe_to_ms(self.timeframe) if self.timeframe is not None else None

    @property
    def label_definition(self) -> LabelDefinition:
        return LabelDefinition(horizon=self.horizon, threshold=self.threshold, kind=self.label_kind)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe description for a model manifest; ``from_dict`` rebuilds the same engineer."""
        return {
            "version": FEATURE_SET_VERSION,
            "windows": list(self.windows),
            "feature_names": feature_names(self.windows),
            "timeframe": self.timeframe,
            "max_fill_bars": self.max_fill_bars,
            "label": self.label_definition.as_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], include_target: bool = False) -> FeatureEngineer:
        """Rebuild from :meth:`as_dict`; refuses a feature list this version would not reproduce."""
        if data.get("version") != FEATURE_SET_VERSION:
            raise ValueError(f"feature set version {data.get('version')!r} is not supported "
                             f"(this trader computes version {FEATURE_SET_VERSION})")
        label = LabelDefinition.from_dict(data.get("label", {"horizon": 1, "threshold": DEFAULT_THRESHOLD}))
        engineer = cls(windows=data["windows"], include_target=include_target, horizon=label.horizon,
                       threshold=label.threshold, timeframe=data.get("timeframe"),
                       max_fill_bars=data.get("max_fill_bars", DEFAULT_MAX_FILL_BARS), label_kind=label.kind)
        stored = data.get("feature_names")
        if stored is not None and list(stored) != engineer.get_feature_names():
            raise ValueError("stored feature names differ from the ones these windows produce")
        return engineer

    # ------------------------------------------------------------------ computation

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """The feature frame for candle frame *df* (indexed like it; float64)."""
        import pandas as pd

        values = self.compute_values(df)
        frame = pd.DataFrame(values.T, index=df.index, columns=self.get_feature_names(), copy=False)
        if self.include_target:
            frame[TARGET_COLUMN] = self.make_labels(df).to_numpy()
        return frame

    def make_labels(self, df: pd.DataFrame) -> pd.Series:
        """The target for every row of *df* (see :mod:`trader.features.labels`)."""
        return self.label_definition.compute(df, self.timeframe)

    def compute_values(self, df: pd.DataFrame) -> np.ndarray:
        """Features as an ``n_features x len(df)`` float64 array (rows are features)."""
        ext = self.extend(df)
        values = compute_matrix(ext.ts, ext.open, ext.high, ext.low, ext.close, ext.volume, self.windows)
        for start in np.flatnonzero(ext.segment_start):  # row 0 always starts one
            values[:, start:start + self.warmup_bars] = np.nan
        if ext.positions is not None:
            values = values[:, ext.positions]
        return values

    def extend(self, df: pd.DataFrame) -> ExtendedCandles:
        """Validated candle columns with the gap policy applied (fills inserted, segments marked)."""
        ts, o, h, low, c, v = candle_columns(df)
        plan = plan_gaps(ts, self.bar_ms, self.max_fill_bars)
        return extend_candles(ts, o, h, low, c, v, plan)

    def segments(self, df: pd.DataFrame) -> np.ndarray:
        """Segment number of every row of *df* under the gap policy."""
        ts, *_ = candle_columns(df)
        return np.cumsum(plan_gaps(ts, self.bar_ms, self.max_fill_bars).split_before) - 1

    def incremental(self, timeframe: str | None = None) -> IncrementalFeatures:
        """A live updater: one new closed candle in, one feature row out (equal to ``transform``)."""
        from trader.features.incremental import IncrementalFeatures

        return IncrementalFeatures(self, timeframe=timeframe)


def candle_columns(df: pd.DataFrame) -> tuple[np.ndarray, ...]:
    """``timestamp, open, high, low, close, volume`` as numpy arrays, or a one-line DataError.

    The times come from the ``timestamp`` column, a ``date`` column or a UTC ``DatetimeIndex``
    (:func:`trader.candle_time.candle_timestamps`); the arrays keep the frame's row order.
    """
    missing = [name for name in OHLCV_COLUMNS[1:] if name not in df.columns]
    if missing:
        raise DataError(f"candle frame lacks column(s) {', '.join(missing)} (needs {', '.join(OHLCV_COLUMNS[1:])} "
                        f"and a time: a timestamp or date column, or a DatetimeIndex)")
    ts = candle_timestamps(df)
    cols = [df[name].to_numpy(dtype=np.float64) for name in OHLCV_COLUMNS[1:]]
    for name, col in zip(OHLCV_COLUMNS[1:], cols, strict=True):
        bad = ~(col > 0) if name != "volume" else ~(col >= 0)
        if name == "volume":
            bad |= ~np.isfinite(col)
        else:
            bad |= np.isinf(col)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            rule = "finite and >= 0" if name == "volume" else "finite and > 0"
            raise DataError(f"candle row {row}: {name} must be {rule}, got {col[row]!r}")
    return (ts, *cols)


def extend_candles(ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray,
                   plan: GapPlan) -> ExtendedCandles:
    """Insert the plan's flat zero-volume fill bars (at the previous close) between the rows."""
    if plan.n_fills == 0:
        return ExtendedCandles(ts, o, h, low, c, v, plan.split_before.copy(), None, plan)
    positions = np.cumsum(1 + plan.fill_before) - 1
    size = int(positions[-1]) + 1
    is_input = np.zeros(size, dtype=bool)
    is_input[positions] = True
    source = np.cumsum(is_input) - 1
    close = c[source]
    ext_ts = ts[source] + (np.arange(size) - positions[source]) * plan.bar_ms
    segment_start = np.zeros(size, dtype=bool)
    segment_start[positions[plan.split_before]] = True
    return ExtendedCandles(
        ext_ts,
        np.where(is_input, o[source], close),
        np.where(is_input, h[source], close),
        np.where(is_input, low[source], close),
        close,
        np.where(is_input, v[source], 0.0),
        segment_start,
        positions,
        plan,
    )


def compute_matrix(ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray,
                   windows: tuple[int, ...], chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
    """All features for contiguous bars as a ``n_features x n`` array; early rows hold partial values.

    Row ``t`` reads bars ``t - lookback .. t`` only. The caller masks rows before the warm-up.
    Running sums, log closes and rolling extremes are computed over all rows; the formulas then
    run over blocks of *chunk_rows* rows, so their temporaries stay in the CPU cache.
    """
    n = len(c)
    n_windows = len(windows)
    n_bar = len(BAR_FEATURES)
    out = np.empty((n_bar + len(WINDOW_FEATURES) * n_windows, n))
    if n == 0:
        return out
    cp = np.empty(n)
    cp[0] = np.nan
    cp[1:] = c[:-1]
    tp = (h + low + c) / 3.0
    tpp = np.empty(n)
    tpp[0] = np.nan
    tpp[1:] = tp[:-1]
    del tp
    running = np.empty((kernels.N_SUM_SERIES, n))
    r = np.empty(n)
    hl = np.empty(n)
    clv = np.empty(n)
    tr = np.empty(n)
    for a in range(0, n, chunk_rows):
        b = min(a + chunk_rows, n)
        bar = kernels.bar_series(o[a:b], h[a:b], low[a:b], c[a:b], v[a:b], cp[a:b], tpp[a:b], running[:, a:b])
        r[a:b], hl[a:b], clv[a:b], tr[a:b] = bar["r"], bar["hl"], bar["clv"], bar["tr"]
    del tpp
    np.cumsum(running, axis=1, out=running)
    logc = np.log(c)
    highs = kernels.rolling_extreme(h, windows, "max")
    lows = kernels.rolling_extreme(low, windows, "min")
    sums = np.empty((kernels.N_SUM_SERIES, min(chunk_rows, n)))
    lags = np.empty((3, min(chunk_rows, n)))
    for a in range(0, n, chunk_rows):
        b = min(a + chunk_rows, n)
        m = b - a
        lag1, lag2, logc_lag = lags[0, :m], lags[1, :m], lags[2, :m]
        _shifted(r, 1, a, b, lag1)
        _shifted(r, 2, a, b, lag2)
        kernels.bar_features(ts[a:b], o[a:b], h[a:b], low[a:b], c[a:b], cp[a:b], r[a:b], lag1, lag2, hl[a:b],
                             clv[a:b], tr[a:b], out[:n_bar, a:b])
        for j, w in enumerate(windows):
            window_sums = sums[:, :m]
            window_sums[...] = running[:, a:b]
            first = max(a, w)  # rows from here subtract the running sum W rows back
            if first < b:
                window_sums[:, first - a:] -= running[:, first - w:b - w]
            _shifted(logc, w, a, b, logc_lag)
            kernels.window_features(w, c[a:b], v[a:b], logc[a:b], logc_lag, window_sums, highs[w][a:b],
                                    lows[w][a:b], out[n_bar + j::n_windows, a:b])
    return out


def _shifted(x: np.ndarray, k: int, a: int, b: int, out: np.ndarray) -> None:
    """``out[i] = x[a + i - k]`` for rows ``a .. b-1`` (NaN before row 0)."""
    first = max(a, k)
    out[: first - a] = np.nan
    if first < b:
        out[first - a:] = x[first - k:b - k]
