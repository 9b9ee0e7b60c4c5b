"""Validation policies: invalid rows, conflicts, gaps, spikes, timestamps; and property tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_fixtures import candles, shuffled_with_duplicates
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trader.data import check_candles
from trader.data.importers import RawCandles, raw_from_rows, read_candle_file
from trader.data.ingest import import_candle_file
from trader.data.store import CandleStore
from trader.data.validate import ImportPolicy, parse_timestamps, validate_candles
from trader.errors import TraderError, ValidationError


def _raw(frame: pd.DataFrame, source: str = "test.csv") -> RawCandles:
    columns = {"time": "timestamp", **{c: c for c in ("open", "high", "low", "close", "volume")}}
    return RawCandles(source=source, format="csv", frame=frame, columns=columns, rows=np.arange(2, len(frame) + 2), row_label="line")


def test_invalid_row_fails_naming_file_line_and_field() -> None:
    df = candles(50)
    df.loc[7, "high"] = df.loc[7, "low"] * 0.9
    with pytest.raises(ValidationError) as info:
        validate_candles(_raw(df), "1h")
    message = str(info.value)
    assert message.startswith("test.csv: line 9: high: high below open or close")
    assert "\n" not in message and "--on-invalid drop" in message


@pytest.mark.parametrize(
    "column, value, field, text",
    [
        ("open", -1.0, "open", "price must be > 0"),
        ("close", 0.0, "close", "price must be > 0"),
        ("volume", -5.0, "volume", "volume must be >= 0"),
        ("low", np.nan, "low", "missing or not a number"),
        ("volume", "abc", "volume", "missing or not a number: 'abc'"),
        ("timestamp", "yesterday", "timestamp", "unreadable time: 'yesterday'"),
        ("timestamp", 1704067200000 + 1800_000, "timestamp", "not on the 1h grid"),
        ("timestamp", 17040672, "timestamp", "outside 1990..2100"),
    ],
)
def test_each_kind_of_invalid_value_is_named(column: str, value: object, field: str, text: str) -> None:
    df = candles(30).astype(object)
    df.loc[4, column] = value
    with pytest.raises(ValidationError, match=f"line 6: {field}: .*{text}".replace("(", r"\(").replace("'", "'")):
        validate_candles(_raw(df), "1h")
    cleaned = validate_candles(_raw(df), "1h", ImportPolicy(on_invalid="drop"))
    assert len(cleaned.candles) == 29
    invalid = cleaned.report.finding("invalid")
    assert invalid.count == 1 and "line 6" in invalid.examples[0]


def test_conflicting_duplicates_follow_the_policy() -> None:
    df = candles(20)
    later = df.iloc[[5]].copy()
    later["close"] = later["close"] * 1.001
    later["high"] = later[["high", "close"]].max(axis=1)
    frame = pd.concat([df, later], ignore_index=True)  # the conflicting row comes later in the file
    last = validate_candles(_raw(frame), "1h").candles
    assert last.loc[5, "close"] == later["close"].item()
    first = validate_candles(_raw(frame), "1h", ImportPolicy(on_conflict="keep-first")).candles
    assert first.loc[5, "close"] == df.loc[5, "close"]
    with pytest.raises(ValidationError, match=r"2024-01-01 05:00: lines 7 and 22: close .* --on-conflict"):
        validate_candles(_raw(frame), "1h", ImportPolicy(on_conflict="fail"))


def test_identical_duplicates_are_dropped_even_under_fail() -> None:
    df = candles(40)
    messy = shuffled_with_duplicates(df)
    result = validate_candles(_raw(messy), "1h", ImportPolicy(on_conflict="fail"))
    pd.testing.assert_frame_equal(result.candles, df)
    assert result.report.finding("duplicates").details["identical_dropped"] == len(messy) - len(df)
    assert result.report.finding("out-of-order") is not None


def test_gaps_are_reported_and_filled_only_on_request() -> None:
    df = candles(30).drop(index=[10, 11, 20]).reset_index(drop=True)
    plain = validate_candles(_raw(df), "1h")
    assert len(plain.candles) == 27 and not plain.filled.any()
    gaps = plain.report.finding("gaps")
    assert (gaps.count, gaps.details["missing_bars"]) == (2, 3)
    assert "2024-01-01 09:00 -> 2024-01-01 12:00: 2 missing bars" in gaps.examples
    filled = validate_candles(_raw(df), "1h", ImportPolicy(fill_gaps=True))
    assert len(filled.candles) == 30 and filled.filled.sum() == 3
    bar = filled.candles.iloc[10]
    assert bar["volume"] == 0 and bar["open"] == bar["close"] == filled.candles.iloc[9]["close"]
    check_candles(filled.candles)


def test_spikes_are_reported_and_dropped_on_request() -> None:
    df = candles(600)
    df.loc[300, "high"] = df.loc[300, "high"] * 2.5
    report = validate_candles(_raw(df), "1h").report
    assert report.finding("outliers").details["timestamps"] == [int(df["timestamp"].iloc[300])]
    dropped = validate_candles(_raw(df), "1h", ImportPolicy(drop_outliers=True))
    assert len(dropped.candles) == 599 and dropped.report.finding("gaps").count == 1
    # a genuine, lasting move of the same size is not a spike
    trend = candles(600)
    factor = np.where(np.arange(600) >= 300, 2.5, 1.0)
    for col in ("open", "high", "low", "close"):
        trend[col] = trend[col] * factor
    trend.loc[300, "open"] = trend.loc[299, "close"]
    trend.loc[300, "low"] = min(trend.loc[300, "low"], trend.loc[300, "open"])
    assert validate_candles(_raw(trend), "1h").report.finding("outliers") is None


def test_wrong_timeframe_and_wrong_symbol_are_refused() -> None:
    df = candles(50, timeframe="5m")
    with pytest.raises(ValidationError, match="mostly 5m apart but the timeframe is 1h"):
        validate_candles(_raw(df), "1h")
    raw = _raw(candles(10))
    raw = RawCandles(raw.source, raw.format, raw.frame, raw.columns, raw.rows, raw.row_label, symbol_in_file="ETH/USDT")
    with pytest.raises(ValidationError, match="symbol column says 'ETH/USDT'"):
        validate_candles(raw, "1h", symbol="BTC/USDT")


def test_timestamp_styles() -> None:
    values = pd.Series(
        [1704067200, 1704067200000, 1704067200000000, 1704067200000000000, "2024-01-01T00:00:00Z",
         "2024-01-01 01:00:00+01:00", "2024-01-01 12-AM", "2024/01/01 00:00", "1704067200.0", "01/02/2024", None, True],
        dtype=object,
    )
    ms, units = parse_timestamps(values)
    assert (ms[:9] == 1704067200000).all()
    assert np.isnan(ms[9:]).all()  # ambiguous day/month, empty, boolean: unreadable
    assert units == {"seconds": 2, "milliseconds": 1, "microseconds": 1, "nanoseconds": 1, "text": 4}


def test_failed_import_leaves_the_store_unchanged(tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = CandleStore(home)
    good = candles(100)
    store.write("imported", "BTC/USDT", "1h", good.iloc[:60].reset_index(drop=True))
    before = store.path_for("imported", "BTC/USDT", "1h").read_bytes()
    bad = good.copy()
    bad.loc[80, "low"] = bad.loc[80, "high"] * 1.5
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValidationError, match="bad.csv: line 82: low"):
        import_candle_file(home, tmp_path / "bad.csv", "BTC/USDT", "1h")
    assert store.path_for("imported", "BTC/USDT", "1h").read_bytes() == before


# ---------------------------------------------------------------------------- properties

_cell = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["2024-01-01", "2024-01-01 05-AM", "1704067200", "NULL", "", "1e400", "-0", "2024-13-45"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(_cell, min_size=6, max_size=6), min_size=1, max_size=25), st.sampled_from(["1m", "1h", "1d"]),
       st.sampled_from(["keep-last", "keep-first", "fail"]), st.sampled_from(["fail", "drop"]), st.booleans(), st.booleans())
def test_any_rows_give_a_valid_series_or_a_clear_error(rows, timeframe, on_conflict, on_invalid, fill, drop) -> None:
    policy = ImportPolicy(on_conflict=on_conflict, on_invalid=on_invalid, fill_gaps=fill, drop_outliers=drop)
    try:
        result = validate_candles(raw_from_rows(rows, "prop.json"), timeframe, policy)
    except TraderError as exc:
        assert str(exc).startswith("prop.json") and "\n" not in str(exc)
        return
    check_candles(result.candles)
    step = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[timeframe]
    assert (result.candles["timestamp"] % step == 0).all()
    assert len(result.filled) == len(result.candles)


_bar_frames = st.integers(min_value=2, max_value=80).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(min_value=0, max_value=10_000), st.randoms(use_true_random=False))
)


@settings(max_examples=40, deadline=None)
@given(_bar_frames)
def test_valid_candles_survive_shuffling_duplication_and_mixed_units(params) -> None:
    n, seed, rnd = params
    df = candles(n, seed=seed)
    messy = shuffled_with_duplicates(df, seed=seed).astype({"timestamp": object})
    for i in range(len(messy)):
        if rnd.random() < 0.5:
            messy.loc[i, "timestamp"] = messy.loc[i, "timestamp"] / 1000  # seconds
        elif rnd.random() < 0.3:
            messy.loc[i, "timestamp"] = pd.Timestamp(int(messy.loc[i, "timestamp"]), unit="ms").isoformat()
    result = validate_candles(_raw(messy), "1h", ImportPolicy(on_conflict="fail"))
    pd.testing.assert_frame_equal(result.candles, df)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.sampled_from(list("0123456789,.;-:\n TZabe")), max_size=300))
def test_any_csv_text_gives_a_valid_series_or_a_clear_error(tmp_path_factory, text) -> None:
    path = tmp_path_factory.mktemp("prop") / "in.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + text)
    try:
        result = validate_candles(read_candle_file(path), "1m", ImportPolicy(on_invalid="drop"))
    except TraderError as exc:
        assert str(path) in str(exc) and "\n" not in str(exc)
        return
    check_candles(result.candles)


def _spikes_by_the_book(data: np.ndarray, threshold: float = 80.0) -> np.ndarray:
    """The documented spike rule, computed the slow, obvious way."""
    logs = np.log(data[:, :4])
    closes = logs[:, 3]
    moves = np.abs(np.diff(closes))
    out = np.zeros(len(data), dtype=bool)
    for i in range(len(data)):
        before, after = closes[max(0, i - 10) : i], closes[i + 1 : i + 11]
        refs = [np.median(side) for side in (before, after) if len(side)]
        ref_before, ref_after = (refs[0], refs[-1]) if len(before) else (refs[-1], refs[-1])
        deviation = np.minimum(np.abs(logs[i] - ref_before), np.abs(logs[i] - ref_after)).max()
        window = moves[max(0, i - 250) : i + 250]
        typical = np.median(window if len(window) >= 20 else moves) / 0.6745
        out[i] = deviation > 0.05 and (typical <= 0 or deviation > threshold * typical)
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=5, max_value=400), st.integers(min_value=0, max_value=2**16),
       st.lists(st.tuples(st.floats(0, 1), st.floats(0.2, 6.0)), max_size=6))
def test_fast_spike_detection_matches_the_documented_rule(n, seed, planted) -> None:
    from trader.data.validate import _spikes

    df = candles(n, seed=seed)
    for where, factor in planted:
        i = min(n - 1, int(where * n))
        for col in ("open", "high", "low", "close"):
            df.loc[i, col] *= factor
    data = df[["open", "high", "low", "close", "volume"]].to_numpy()
    assert list(np.flatnonzero(_spikes(df["timestamp"].to_numpy(), data, 80.0))) == list(np.flatnonzero(_spikes_by_the_book(data)))
