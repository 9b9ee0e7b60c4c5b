"""validate_candles takes a candle frame in any of the three forms, and a file as read."""

from __future__ import annotations

import pandas as pd
import pytest

from trader.data import synthetic_candles
from trader.data.validate import validate_candles
from trader.errors import ValidationError


def _forms() -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    candles = synthetic_candles("SYN/USDT", "1h", bars=200, seed=1)
    dates = pd.to_datetime(candles["timestamp"], unit="ms", utc=True)
    return candles, {
        "timestamp": candles,
        "date": candles.drop(columns="timestamp").assign(date=dates.dt.tz_convert("Europe/Berlin")),
        "index": candles.drop(columns="timestamp").set_index(pd.DatetimeIndex(dates)),
    }


@pytest.mark.parametrize("form", ["timestamp", "date", "index"])
def test_every_candle_form_gives_the_same_clean_candles(form: str) -> None:
    candles, forms = _forms()
    # newest first and one duplicate row: the stages still sort and dedupe a frame
    frame = pd.concat([forms[form].iloc[::-1], forms[form].iloc[[5]]])
    clean = validate_candles(frame, "1h")
    pd.testing.assert_frame_equal(clean.candles, candles[["timestamp", "open", "high", "low", "close", "volume"]])
    found = {f.code: f.count for f in clean.report.findings}
    assert found["reverse-order"] == 201 and found["duplicates"] == 1


def test_naive_dates_are_refused_in_one_line() -> None:
    candles, _ = _forms()
    naive = candles.drop(columns="timestamp").assign(date=pd.to_datetime(candles["timestamp"], unit="ms"))
    with pytest.raises(ValidationError) as info:
        validate_candles(naive, "1h")
    assert "\n" not in str(info.value) and "time zone" in str(info.value)


def test_a_frame_without_a_price_column_is_refused() -> None:
    candles, _ = _forms()
    with pytest.raises(ValidationError, match="no close column"):
        validate_candles(candles.drop(columns="close"), "1h")
