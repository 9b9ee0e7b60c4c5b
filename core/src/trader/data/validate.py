"""Validation and cleaning of raw candles, with a report of what was found and done.

Policies (also in ``docs/data.md``):

- **Timestamps** are bar open times. Numbers are read by magnitude: below 1e11 seconds,
  below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds (fractions allowed);
  text must be ISO 8601 (``2024-01-01 13:00``, ``...T13:00:00Z``, offsets converted), year-first
  with slashes (``2024/01/01 13:00``) or CryptoDataDownload's ``2017-08-17 05-AM``; naive times
  are UTC. A file may mix all of these; where the main time column is empty or unreadable a
  second time column (``date`` beside ``unix``) is used. Times before 1990 or from 2100 on
  are invalid.
- **Invalid rows** (unreadable time, time off the timeframe grid, a missing or non-numeric
  field, a price <= 0, volume < 0, high below open or close, low above open or close):
  ``on_invalid="fail"`` (default) refuses the input naming the first one; ``"drop"`` drops
  them and reports how many, with examples.
- **Order**: rows are sorted by time (a stable sort, so file order breaks ties); newest-first
  files and out-of-order rows are reported.
- **Duplicate timestamps**: identical rows are dropped (reported); rows that differ are
  conflicts, resolved by ``on_conflict``: ``keep-last`` (default; the row that comes later in
  the file), ``keep-first``, or ``fail``. The report gives their count, the largest relative
  difference and examples.
- **Gaps** are reported (count, missing bars, largest, examples) and never filled unless
  ``fill_gaps``: then each missing bar becomes a flat candle at the previous close with zero
  volume, flagged as filled in the store and the report; more than ``max_fill_bars``
  (1,000,000) missing bars are refused before any is made.
- **Spikes**: a bar is an outlier when its open, high, low or close lies more than 5 % and
  more than ``outlier_threshold`` (80) typical moves away from both the median close of the
  10 bars before it and that of the 10 bars after it (one side at the ends of the series),
  so a lasting jump is not a spike; the typical move is the median absolute close-to-close
  log return of the 501 bars around it, divided by 0.6745. Outliers are reported and kept, or dropped with
  ``drop_outliers`` (leaving a gap).
- **Timeframe**: when the most common spacing of the bars is not the timeframe given, the
  input is refused (wrong ``--timeframe``).
- Zero-volume bars are counted (they are valid).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trader.data.frame import CANDLE_COLUMNS, PRICE_COLUMNS, check_timeframe, format_ms
from trader.data.importers import RawCandles
from trader.data.limits import DEFAULT_MAX_FILL_BARS
from trader.errors import TraderError, ValidationError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = [
    "ImportPolicy",
    "Finding",
    "ValidationReport",
    "CleanCandles",
    "validate_candles",
    "parse_timestamps",
    "CONFLICT_POLICIES",
    "INVALID_POLICIES",
]

CONFLICT_POLICIES = ("keep-last", "keep-first", "fail")
INVALID_POLICIES = ("fail", "drop")
MIN_TIME_MS = 631_152_000_000  # 1990-01-01
MAX_TIME_MS = 4_102_444_800_000  # 2100-01-01
_EXAMPLES = 3
_SPIKE_HALF_WINDOW = 10
_SCALE_WINDOW = 501
_SPIKE_MIN_MOVE = 0.05


@attrs.frozen
class ImportPolicy:
    """How validation treats what it finds (see the module docstring)."""

    on_conflict: str = attrs.field(default="keep-last", validator=attrs.validators.in_(CONFLICT_POLICIES))
    on_invalid: str = attrs.field(default="fail", validator=attrs.validators.in_(INVALID_POLICIES))
    fill_gaps: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    drop_outliers: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))
    outlier_threshold: float = attrs.field(default=80.0, validator=attrs.validators.gt(0))
    max_fill_bars: int = attrs.field(default=DEFAULT_MAX_FILL_BARS, validator=attrs.validators.ge(0))


@attrs.frozen
class Finding:
    """One thing validation found: ``severity`` is ``info`` (normal, e.g. units converted) or ``warning``."""

    code: str
    severity: str = attrs.field(validator=attrs.validators.in_(("info", "warning")))
    count: int = attrs.field(validator=attrs.validators.ge(0))
    message: str
    examples: tuple[str, ...] = ()
    details: Mapping[str, Any] = attrs.field(factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "count": self.count,
            "message": self.message,
            "examples": list(self.examples),
            **({"details": dict(self.details)} if self.details else {}),
        }


@attrs.frozen
class ValidationReport:
    source: str
    format: str
    timeframe: str
    rows_read: int
    rows_kept: int
    first: int | None
    last: int | None
    findings: tuple[Finding, ...]

    def finding(self, code: str) -> Finding | None:
        return next((f for f in self.findings if f.code == code), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "timeframe": self.timeframe,
            "rows_read": self.rows_read,
            "rows_kept": self.rows_kept,
            "first": format_ms(self.first) if self.first is not None else None,
            "last": format_ms(self.last) if self.last is not None else None,
            "findings": [f.as_dict() for f in self.findings],
        }


@attrs.frozen
class CleanCandles:
    """A canonical candle frame, which of its rows were filled gaps, and the report."""

    candles: Any
    filled: Any
    report: ValidationReport


# ---------------------------------------------------------------------------- timestamps

_UNIT_NAMES = ("seconds", "milliseconds", "microseconds", "nanoseconds")


def parse_timestamps(values: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """UTC milliseconds (float, NaN where unreadable) and how many values were in each unit."""
    import numpy as np
    import pandas as pd

    n = len(values)
    out = np.full(n, np.nan)
    units: dict[str, int] = {}
    if n == 0:
        return out, units
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype):
        stamps = values.dt.tz_localize("UTC") if not isinstance(dtype, pd.DatetimeTZDtype) else values.dt.tz_convert("UTC")
        ok = stamps.notna().to_numpy()
        out[ok] = stamps[ok].dt.as_unit("ms").astype("int64").to_numpy()
        units["datetime"] = int(ok.sum())
        return out, units
    if pd.api.types.is_bool_dtype(dtype):
        return out, units
    if pd.api.types.is_numeric_dtype(dtype):
        numbers = values.to_numpy(dtype="float64", na_value=np.nan)
        text_mask = np.zeros(n, dtype=bool)
    else:
        as_object = values.astype(object)
        is_bool = as_object.map(lambda v: isinstance(v, bool)).to_numpy(dtype=bool)
        numbers = pd.to_numeric(as_object.where(~is_bool, None), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        text_mask = np.isnan(numbers) & as_object.map(lambda v: isinstance(v, str) and bool(v.strip())).to_numpy(dtype=bool)
    with np.errstate(invalid="ignore"):
        size = np.abs(numbers)
        finite = np.isfinite(numbers)
        bands = (
            finite & (size < 1e11),
            finite & (size >= 1e11) & (size < 1e14),
            finite & (size >= 1e14) & (size < 1e17),
            finite & (size >= 1e17) & (size < 1e20),
        )
    for name, band, scale in zip(_UNIT_NAMES, bands, (1000.0, 1.0, 1e-3, 1e-6), strict=False):
        count = int(band.sum())
        if count:
            out[band] = np.round(numbers[band] * scale)
            units[name] = count
    if text_mask.any():
        parsed = _parse_text_times(values[text_mask].astype(str))
        out[np.flatnonzero(text_mask)] = parsed
        count = int(np.isfinite(parsed).sum())
        if count:
            units["text"] = count
    return out, units


def _parse_text_times(text: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    text = text.str.strip()
    result = np.full(len(text), np.nan)

    def to_ms(stamps: pd.Series) -> np.ndarray:
        ms = np.full(len(stamps), np.nan)
        ok = stamps.notna().to_numpy()
        if ok.any():
            ms[ok] = stamps[ok].dt.as_unit("ms").astype("int64").to_numpy()
        return ms

    def parse(mask: np.ndarray, fmt: str, transform=None) -> None:
        if not mask.any():
            return
        subset = text[mask]
        if transform is not None:
            subset = transform(subset)
        try:
            stamps = pd.to_datetime(subset, format=fmt, utc=True, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            return
        result[mask] = to_ms(pd.Series(stamps))

    iso_like = text.str.match(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}(?::\d{2}(?::\d{2}(?:\.\d+)?)?)?)?(?:Z|[+-]\d{2}:?\d{2})?$").to_numpy(dtype=bool)
    parse(iso_like, "ISO8601")
    remaining = ~np.isfinite(result)
    am_pm = remaining & text.str.match(r"^\d{4}-\d{2}-\d{2} \d{1,2}-(?:AM|PM|am|pm)$").to_numpy(dtype=bool)
    parse(am_pm, "%Y-%m-%d %I-%p")
    remaining = ~np.isfinite(result)
    slashed = remaining & text.str.match(r"^\d{4}/\d{2}/\d{2}(?: \d{1,2}:\d{2}(?::\d{2})?)?$").to_numpy(dtype=bool)
    parse(slashed, "ISO8601", lambda s: s.str.replace("/", "-", regex=False))
    return result


# ---------------------------------------------------------------------------- validation


def _numbers(series: pd.Series) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(series.dtype):
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    as_object = series.astype(object)
    as_object = as_object.where(~as_object.map(lambda v: isinstance(v, bool)), None)
    return pd.to_numeric(as_object, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def validate_candles(
    raw: RawCandles | pd.DataFrame,
    timeframe: str,
    policy: ImportPolicy | None = None,
    symbol: str | None = None,
) -> CleanCandles:
    """Turn *raw* into a sorted, unique, valid candle frame on the *timeframe* grid, or raise
    :class:`ValidationError` with one line naming source, row and field.

    *raw* is a file as read (:class:`~trader.data.importers.RawCandles`) or a candle frame in
    any of the three forms (:func:`trader.candle_time.candle_timestamps`: a ``timestamp``
    column of UTC milliseconds, a time-zone aware ``date`` column or ``DatetimeIndex``).
    The stages below run in this order; each appends what it found to the report.
    """
    if not isinstance(raw, RawCandles):
        raw = _raw_from_frame(raw)
    policy = policy or ImportPolicy()
    step = _step(timeframe)
    findings: list[Finding] = [Finding("note", "info", 0, note) for note in raw.notes]
    _check_source(raw, symbol)
    ts = _read_times(raw, findings)
    values = {name: _numbers(raw.frame[raw.columns[name]]) for name in CANDLE_COLUMNS[1:]}
    _check_spacing(ts, step, timeframe, raw.source)
    keep = _valid_rows(raw, ts, values, step, timeframe, policy, findings)
    ts_s, data_s, pos_s = _sorted_rows(ts, values, keep, findings)
    ts_s, data_s, pos_s = _dedupe(raw, ts_s, data_s, pos_s, policy, findings)
    ts_s, data_s, pos_s = _outliers(raw, ts_s, data_s, pos_s, policy, findings)
    ts_s, data_s, filled = _gaps(ts_s, data_s, step, policy, raw.source, findings)
    zero_volume = int((data_s[:, 4] == 0).sum()) - int(filled.sum())
    if zero_volume > 0:
        findings.append(Finding("zero-volume", "info", zero_volume, f"{_plural(zero_volume, 'bar')} with zero volume (kept)"))
    return _clean(raw, timeframe, ts_s, data_s, filled, findings)


def _raw_from_frame(frame: pd.DataFrame) -> RawCandles:
    """A candle frame in any of the three forms as :class:`RawCandles` (times as UTC milliseconds)."""
    import numpy as np
    import pandas as pd

    from trader.candle_time import candle_timestamps

    missing = [name for name in CANDLE_COLUMNS[1:] if name not in frame.columns]
    if missing:
        raise ValidationError(f"candles: no {', '.join(missing)} column")
    if "timestamp" in frame.columns:  # read as a file's time column is (numbers by magnitude, text)
        times = frame["timestamp"].to_numpy()
    else:
        try:
            times = candle_timestamps(frame)
        except TraderError as exc:
            raise ValidationError(f"candles: {exc}") from None
    body = pd.DataFrame({"timestamp": times, **{name: frame[name].to_numpy() for name in CANDLE_COLUMNS[1:]}})
    return RawCandles(source="candles", format="frame", frame=body, columns={name: name for name in CANDLE_COLUMNS[1:]} | {"time": "timestamp"},
                      rows=np.arange(1, len(body) + 1, dtype=np.int64))


def _check_source(raw: RawCandles, symbol: str | None) -> None:
    """Refuse an empty input, or one whose symbol column names another market."""
    if len(raw.frame) == 0:
        raise ValidationError(f"{raw.source}: no candles")
    if symbol and raw.symbol_in_file and _symbol_key(raw.symbol_in_file) != _symbol_key(symbol):
        raise ValidationError(f"{raw.source}: the file's symbol column says {raw.symbol_in_file!r}, not {symbol!r}; check --symbol")


def _read_times(raw: RawCandles, findings: list[Finding]) -> np.ndarray:
    """Each row's time in UTC milliseconds (NaN where unreadable), the fallback column filling in;
    the units found are reported."""
    import numpy as np

    cols = raw.columns
    ts, units = parse_timestamps(raw.frame[cols["time"]])
    fallback_used = 0
    if "time_fallback" in cols and np.isnan(ts).any():
        missing = np.flatnonzero(np.isnan(ts))
        extra, extra_units = parse_timestamps(raw.frame[cols["time_fallback"]].iloc[missing])
        ts[missing] = extra
        fallback_used = int(np.isfinite(extra).sum())
        for name, count in extra_units.items():
            units[name] = units.get(name, 0) + count
    if fallback_used:
        findings.append(Finding("time-fallback", "info", fallback_used, f"{_plural(fallback_used, 'row')} without a readable {cols['time']!r}: time taken from {cols['time_fallback']!r}"))
    real_units = {k: v for k, v in units.items() if v}
    if len(real_units) > 1:
        parts = ", ".join(f"{v:,} in {k}" for k, v in sorted(real_units.items(), key=lambda kv: -kv[1]))
        findings.append(Finding("mixed-time-units", "info", sum(real_units.values()), f"timestamps in mixed units: {parts}; all converted to UTC milliseconds", details=real_units))
    elif real_units:
        (unit, count), = real_units.items()
        findings.append(Finding("time-units", "info", count, f"timestamps in {unit}", details=real_units))
    return ts


def _check_spacing(ts: np.ndarray, step: int, timeframe: str, source: str) -> None:
    """Refuse the input when the most common spacing of its bars is not the timeframe."""
    import numpy as np

    unique_ts = ts[np.isfinite(ts)]
    if len(unique_ts) > 1 and not (np.diff(unique_ts) > 0).all():
        unique_ts = np.unique(unique_ts)
    if len(unique_ts) >= 3:
        spacing = np.diff(unique_ts)
        common, counts = np.unique(spacing, return_counts=True)
        modal = float(common[np.argmax(counts)])
        if modal != step and counts.max() >= 0.5 * len(spacing):
            raise ValidationError(
                f"{source}: bars are mostly {_duration(modal)} apart but the timeframe is {timeframe}; check --timeframe"
            )


def _valid_rows(raw: RawCandles, ts: np.ndarray, values: Mapping[str, np.ndarray], step: int, timeframe: str,
                policy: ImportPolicy, findings: list[Finding]) -> np.ndarray:
    """The mask of valid rows; the first invalid one refuses the input unless ``on_invalid="drop"``."""
    import numpy as np

    n = len(ts)
    reason = np.zeros(n, dtype=np.int8)  # 0 = valid, else the index of the row's first reason
    reasons: list[tuple[str, str]] = [("", "")]

    def flag(mask: np.ndarray, field: str, detail: str) -> None:
        fresh = mask & (reason == 0)
        if fresh.any():
            reasons.append((field, detail))
            reason[fresh] = len(reasons) - 1

    readable = np.isfinite(ts)
    with np.errstate(invalid="ignore"):
        flag(~readable, "timestamp", "missing or unreadable time")
        flag(readable & ((ts < MIN_TIME_MS) | (ts >= MAX_TIME_MS)), "timestamp", "time outside 1990..2100 (wrong unit?)")
        flag(readable & (np.mod(ts, step) != 0), "timestamp", f"time not on the {timeframe} grid")
        for name in CANDLE_COLUMNS[1:]:
            flag(~np.isfinite(values[name]), name, "missing or not a number")
        for name in PRICE_COLUMNS:
            flag(values[name] <= 0, name, "price must be > 0")
        flag(values["volume"] < 0, "volume", "volume must be >= 0")
        o, h, low, c = (values[name] for name in PRICE_COLUMNS)
        flag(h < np.maximum(o, c), "high", "high below open or close")
        flag(low > np.minimum(o, c), "low", "low above open or close")
    invalid = reason > 0
    if invalid.any():
        idx = np.flatnonzero(invalid)
        examples = tuple(_invalid_example(raw, i, reasons[reason[i]], ts, values, raw.columns) for i in idx[:_EXAMPLES])
        if policy.on_invalid == "fail":
            more = len(idx) - 1
            tail = f" (and {_plural(more, 'more invalid row')}; --on-invalid drop skips them)" if more else " (--on-invalid drop skips invalid rows)"
            raise ValidationError(examples[0] + tail)
        by_field: dict[str, int] = {}
        for code in np.unique(reason[invalid]):
            key = f"{reasons[code][0]}: {reasons[code][1]}"
            by_field[key] = by_field.get(key, 0) + int((reason == code).sum())
        findings.append(Finding("invalid", "warning", len(idx), f"dropped {_plural(len(idx), 'invalid row')}", examples, details=by_field))
    keep = ~invalid
    if not keep.any():
        raise ValidationError(f"{raw.source}: no valid candles")
    return keep


def _sorted_rows(ts: np.ndarray, values: Mapping[str, np.ndarray], keep: np.ndarray,
                 findings: list[Finding]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept rows oldest first (a stable sort: file order breaks ties): times, OHLCV, positions in the input."""
    import numpy as np

    order_pos = np.flatnonzero(keep)
    ts_k = ts[keep].astype(np.int64)
    data = np.empty((len(ts_k), 5))
    for j, name in enumerate(CANDLE_COLUMNS[1:]):
        data[:, j] = values[name][keep]
    if len(ts_k) > 1:
        steps = np.diff(ts_k)
        backwards = int((steps < 0).sum())
        forwards = int((steps > 0).sum())
        if backwards and backwards >= forwards:
            findings.append(Finding("reverse-order", "info", len(ts_k), "rows were newest first (reverse chronological); sorted oldest first"))
        elif backwards:
            findings.append(Finding("out-of-order", "warning", backwards, f"{_plural(backwards, 'row')} out of time order; sorted"))
    if len(ts_k) < 2 or (np.diff(ts_k) >= 0).all():
        return ts_k, data, order_pos
    sort = np.argsort(ts_k, kind="stable")
    return ts_k[sort], data[sort], order_pos[sort]


def _outliers(raw: RawCandles, ts_s: np.ndarray, data_s: np.ndarray, pos_s: np.ndarray, policy: ImportPolicy,
              findings: list[Finding]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Report extreme spikes (module docstring); drop them with ``drop_outliers``."""
    import numpy as np

    spikes = _spikes(ts_s, data_s, policy.outlier_threshold)
    if not spikes.any():
        return ts_s, data_s, pos_s
    idx = np.flatnonzero(spikes)
    examples = tuple(
        f"{raw.where(pos_s[i])}: {format_ms(int(ts_s[i]))}: open {_num(data_s[i, 0])} high {_num(data_s[i, 1])} "
        f"low {_num(data_s[i, 2])} close {_num(data_s[i, 3])} (median close nearby {_num(_local_median(data_s[:, 3], i))})"
        for i in idx[:_EXAMPLES]
    )
    action = "dropped (--drop-outliers)" if policy.drop_outliers else "kept; --drop-outliers drops them"
    findings.append(Finding("outliers", "warning", len(idx), f"{_plural(len(idx), 'extreme spike')}: {action}", examples, details={"timestamps": [int(t) for t in ts_s[idx]]}))
    if policy.drop_outliers:
        return ts_s[~spikes], data_s[~spikes], pos_s[~spikes]
    return ts_s, data_s, pos_s


def _gaps(ts_s: np.ndarray, data_s: np.ndarray, step: int, policy: ImportPolicy, source: str,
          findings: list[Finding]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Report missing bars; with ``fill_gaps`` fill them (flat, zero volume), refusing more than
    ``max_fill_bars``. Returns the times, OHLCV and the filled mask."""
    import numpy as np

    filled = np.zeros(len(ts_s), dtype=bool)
    if len(ts_s) < 2:
        return ts_s, data_s, filled
    steps = np.diff(ts_s)
    holes = np.flatnonzero(steps > step)
    if not len(holes):
        return ts_s, data_s, filled
    missing_per = steps[holes] // step - 1
    missing = int(missing_per.sum())
    largest = int(holes[np.argmax(missing_per)])
    examples = tuple(
        f"{format_ms(int(ts_s[i]))} -> {format_ms(int(ts_s[i + 1]))}: {_plural(int(steps[i] // step - 1), 'missing bar')}"
        for i in holes[:_EXAMPLES]
    )
    action = "filled with flat zero-volume candles (flagged as filled)" if policy.fill_gaps else "not filled (--fill-gaps fills them, flagged)"
    findings.append(
        Finding(
            "gaps",
            "warning",
            len(holes),
            f"{_plural(len(holes), 'gap')}, {_plural(missing, 'missing bar')}, largest {int(missing_per.max())} "
            f"after {format_ms(int(ts_s[largest]))}; {action}",
            examples,
            details={"gaps": len(holes), "missing_bars": missing},
        )
    )
    if not policy.fill_gaps:
        return ts_s, data_s, filled
    if missing > policy.max_fill_bars:
        raise ValidationError(
            f"{source}: --fill-gaps would create {_plural(missing, 'bar')} (largest gap {int(missing_per.max()):,} "
            f"bars after {format_ms(int(ts_s[largest]))}), more than the limit of {policy.max_fill_bars:,} "
            "([data] max_fill_bars raises it)"
        )
    ts_s, data_s, filled = _fill(ts_s, data_s, step)
    findings.append(Finding("filled", "warning", missing, f"filled {_plural(missing, 'missing bar')} (flagged in the store)"))
    return ts_s, data_s, filled


def _clean(raw: RawCandles, timeframe: str, ts_s: np.ndarray, data_s: np.ndarray, filled: np.ndarray,
           findings: list[Finding]) -> CleanCandles:
    """The candle frame and its report."""
    import numpy as np
    import pandas as pd

    candles = pd.DataFrame({"timestamp": ts_s.astype(np.int64)})
    for j, name in enumerate(CANDLE_COLUMNS[1:]):
        candles[name] = data_s[:, j].astype(np.float64)
    report = ValidationReport(
        source=raw.source,
        format=raw.format,
        timeframe=timeframe,
        rows_read=len(raw.frame),
        rows_kept=len(candles),
        first=int(ts_s[0]) if len(ts_s) else None,
        last=int(ts_s[-1]) if len(ts_s) else None,
        findings=tuple(findings),
    )
    return CleanCandles(candles=candles, filled=filled, report=report)


def _step(timeframe: str) -> int:
    from trader.errors import DataError

    try:
        return check_timeframe(timeframe)
    except DataError as exc:
        raise ValidationError(str(exc)) from None


def _symbol_key(symbol: str) -> str:
    return "".join(ch for ch in symbol.split(":")[0].upper() if ch.isalnum())


def _duration(ms: float) -> str:
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{int(ms // size)}{unit}"
    return f"{ms:g} ms"


def _num(value: float) -> str:
    return f"{value:.10g}"


def _invalid_example(raw: RawCandles, i: int, reason: tuple[str, str], ts: Any, values: Mapping[str, Any], cols: Mapping[str, Any]) -> str:
    import numpy as np

    field, detail = reason
    where = raw.where(i)
    if field == "timestamp":
        shown = raw.frame[cols["time"]].iloc[i]
        when = f" ({format_ms(int(ts[i]))})" if np.isfinite(ts[i]) and MIN_TIME_MS <= ts[i] < MAX_TIME_MS else ""
        return f"{where}: timestamp: {detail}: {_short(shown)}{when}"
    if detail.startswith("missing"):
        return f"{where}: {field}: {detail}: {_short(raw.frame[cols[field]].iloc[i])}"
    if field in ("high", "low"):
        o, h, low, c = (values[name][i] for name in PRICE_COLUMNS)
        return f"{where}: {field}: {detail} (open {_num(o)} high {_num(h)} low {_num(low)} close {_num(c)})"
    return f"{where}: {field}: {detail}, got {_num(values[field][i])}"


def _dedupe(raw: RawCandles, ts: Any, data: Any, pos: Any, policy: ImportPolicy, findings: list[Finding]) -> tuple[Any, Any, Any]:
    import numpy as np

    if len(ts) < 2:
        return ts, data, pos
    same_ts = ts[1:] == ts[:-1]
    if not same_ts.any():
        return ts, data, pos
    identical_prev = same_ts & np.all(data[1:] == data[:-1], axis=1)
    # drop rows identical to the row before them (same time, same values)
    drop_identical = np.concatenate([[False], identical_prev])
    dup_times = np.unique(ts[1:][same_ts])
    ts2, data2, pos2 = ts[~drop_identical], data[~drop_identical], pos[~drop_identical]
    conflict_next = ts2[1:] == ts2[:-1]
    conflict_times = np.unique(ts2[1:][conflict_next])
    identical_dropped = int(drop_identical.sum())
    message = f"{_plural(len(dup_times), 'timestamp')} occur more than once: {identical_dropped:,} identical duplicate rows dropped"
    findings_details: dict[str, Any] = {"timestamps": len(dup_times), "identical_dropped": identical_dropped, "conflicting_timestamps": len(conflict_times)}
    if not len(conflict_times):
        findings.append(Finding("duplicates", "warning", len(dup_times), message, details=findings_details))
        return ts2, data2, pos2
    # conflicting groups: first and last row of each group
    starts = np.flatnonzero(np.concatenate([[True], ~conflict_next]))
    ends = np.concatenate([starts[1:], [len(ts2)]]) - 1
    multi = ends > starts
    first_i, last_i = starts[multi], ends[multi]
    a, b = data2[first_i], data2[last_i]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-300)
    price_rel = rel[:, :4].max(axis=1)
    volume_rel = rel[:, 4]
    volume_only = int((price_rel == 0).sum())
    price_differs = len(price_rel) - volume_only
    largest_price = float(price_rel.max()) if len(price_rel) else 0.0
    largest_volume = float(volume_rel.max()) if len(volume_rel) else 0.0
    # file order decides: stable sort kept file order within a group
    examples = []
    for g in range(min(_EXAMPLES, len(first_i))):
        i, j = first_i[g], last_i[g]
        diffs = [f"{name} {_num(data2[i, k])} vs {_num(data2[j, k])}" for k, name in enumerate(CANDLE_COLUMNS[1:]) if data2[i, k] != data2[j, k]]
        examples.append(f"{format_ms(int(ts2[i]))}: {raw.row_label}s {int(raw.rows[pos2[i]])} and {int(raw.rows[pos2[j]])}: {', '.join(diffs)}")
    if policy.on_conflict == "fail":
        raise ValidationError(
            f"{raw.source}: {examples[0]} ({_plural(len(conflict_times), 'conflicting timestamp')}; "
            "--on-conflict keep-last or keep-first resolves them)"
        )
    keep_rows = np.ones(len(ts2), dtype=bool)
    if policy.on_conflict == "keep-last":
        keep_rows[:-1] &= ~conflict_next  # drop every row followed by one with the same time
    else:
        keep_rows[1:] &= ~conflict_next  # drop every row preceded by one with the same time
    dropped = int((~keep_rows).sum())
    kept = "kept the later row in the file" if policy.on_conflict == "keep-last" else "kept the earlier row in the file"
    message += (
        f"; {len(conflict_times):,} conflicting ({volume_only:,} differ only in volume, {price_differs:,} in prices; "
        f"largest difference {largest_price * 100:.3g} % in a price, {largest_volume * 100:.3g} % in volume): "
        f"{kept}, dropped {dropped:,}"
    )
    findings_details.update(
        conflicting_dropped=dropped,
        volume_only=volume_only,
        prices_differ=price_differs,
        largest_price_difference=largest_price,
        largest_volume_difference=largest_volume,
    )
    findings.append(Finding("duplicates", "warning", len(dup_times), message, tuple(examples), details=findings_details))
    return ts2[keep_rows], data2[keep_rows], pos2[keep_rows]


def _local_median(close: Any, i: int) -> float:
    import numpy as np

    lo, hi = max(0, i - _SPIKE_HALF_WINDOW), min(len(close), i + _SPIKE_HALF_WINDOW + 1)
    return float(np.median(np.delete(close[lo:hi], i - lo)))


def _spikes(ts: Any, data: Any, threshold: float) -> Any:
    import numpy as np

    n = len(ts)
    if n < 5:
        return np.zeros(n, dtype=bool)
    k = _SPIKE_HALF_WINDOW
    logs = np.log(data[:, :4])
    closes = logs[:, 3]
    # cheap bound first: a median of closes lies within their min..max (and within those of
    # any superset), so a price within 5 % of all of them on either side cannot be a spike
    lo_before, hi_before = _window_range(closes, k, before=True)
    lo_after, hi_after = _window_range(closes, k, before=False)
    top, bottom = logs[:, 1], logs[:, 2]  # valid bars: high and low bound open and close
    with np.errstate(invalid="ignore"):
        far_before = np.fmax(top - lo_before, hi_before - bottom)
        far_after = np.fmax(top - lo_after, hi_after - bottom)
    far_before[0] = far_after[0]
    far_after[-1] = far_before[-1]
    maybe = np.flatnonzero(np.minimum(far_before, far_after) > _SPIKE_MIN_MOVE)
    result = np.zeros(n, dtype=bool)
    if not len(maybe):
        return result
    moves = np.abs(np.diff(closes))
    overall = float(np.median(moves)) / 0.6745
    half = _SCALE_WINDOW // 2
    for i in maybe:
        before = closes[max(0, i - k) : i]
        after = closes[i + 1 : i + 1 + k]
        ref_before = np.median(before) if len(before) else np.median(after)
        ref_after = np.median(after) if len(after) else ref_before
        # a price is off only when it is far from the bars before AND from the bars after it,
        # so a lasting jump (open at the old level, close at the new one) is not a spike
        deviation = np.minimum(np.abs(logs[i] - ref_before), np.abs(logs[i] - ref_after)).max()
        if deviation <= _SPIKE_MIN_MOVE:
            continue
        window = moves[max(0, i - half) : i + half]
        typical = float(np.median(window)) / 0.6745 if len(window) >= 20 else overall
        result[i] = typical <= 0 or deviation > threshold * typical
    return result


def _window_range(values: Any, k: int, before: bool) -> tuple[Any, Any]:
    """Bounds on the *k* values before (or after) each position: the min and max of the (at
    most two) aligned blocks of *k* values that cover that window, a superset of it."""
    import numpy as np

    n = len(values)
    blocks = -(-n // k)
    padded_lo = np.full(blocks * k, np.inf)
    padded_hi = np.full(blocks * k, -np.inf)
    padded_lo[:n] = values
    padded_hi[:n] = values
    block_lo = padded_lo.reshape(blocks, k).min(axis=1)
    block_hi = padded_hi.reshape(blocks, k).max(axis=1)
    index = np.arange(n)
    if before:
        first, last = np.clip(index - k, 0, None) // k, np.clip(index - 1, 0, None) // k
    else:
        first, last = np.clip(index + 1, None, n - 1) // k, np.clip(index + k, None, n - 1) // k
    lo = np.minimum(block_lo[first], block_lo[last])
    hi = np.maximum(block_hi[first], block_hi[last])
    return lo, hi


def _fill(ts: Any, data: Any, step: int) -> tuple[Any, Any, Any]:
    import numpy as np

    full = np.arange(ts[0], ts[-1] + step, step, dtype=np.int64)
    where = np.searchsorted(full, ts)
    out = np.empty((len(full), data.shape[1]))
    present = np.zeros(len(full), dtype=bool)
    present[where] = True
    out[where] = data
    # previous real close, carried forward
    last_real = np.maximum.accumulate(np.where(present, np.arange(len(full)), 0))
    prev_close = data[np.searchsorted(where, last_real), 3]
    missing = ~present
    out[missing, 0:4] = prev_close[missing, None]
    out[missing, 4] = 0.0
    return full, out, missing
