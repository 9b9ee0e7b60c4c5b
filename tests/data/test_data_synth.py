"""The synthetic market: reproducible, valid, realistic, and with a learnable planted pattern on demand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from data_fixtures import candles

from trader.data import CANDLE_COLUMNS, CandleStore, check_candles, resolve_candles, synthetic_candles
from trader.errors import DataError


def test_same_seed_gives_byte_identical_data_and_other_seeds_differ() -> None:
    a = synthetic_candles(bars=3000, seed=7)
    b = synthetic_candles(bars=3000, seed=7)
    assert a.to_numpy().tobytes() == b.to_numpy().tobytes()
    assert a.to_csv().encode() == b.to_csv().encode()
    assert not np.array_equal(a["close"], synthetic_candles(bars=3000, seed=8)["close"])
    assert not np.array_equal(a["close"], synthetic_candles(symbol="ETH/USDT", bars=3000, seed=7)["close"])


@pytest.mark.parametrize("timeframe", ["1m", "1h", "1d"])
def test_candles_are_valid_and_on_the_grid(timeframe: str) -> None:
    df = synthetic_candles(timeframe=timeframe, bars=2000, start="2024-01-01T00:30")
    check_candles(df)
    assert list(df.columns) == list(CANDLE_COLUMNS)
    step = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[timeframe]
    assert (np.diff(df["timestamp"]) == step).all() and df["timestamp"].iloc[0] % step == 0
    assert (df["open"].iloc[1:].to_numpy() == df["close"].iloc[:-1].to_numpy()).all()


def test_market_looks_real_clustering_fat_tails_seasonality_regimes() -> None:
    df = synthetic_candles(bars=40_000, seed=3)
    r = np.diff(np.log(df["close"].to_numpy()))
    absr = np.abs(r - r.mean())
    clustering = np.corrcoef(absr[:-1], absr[1:])[0, 1]
    assert clustering > 0.1  # volatility clusters
    excess_kurtosis = pd.Series(r).kurt()
    assert excess_kurtosis > 1.0  # fat tails
    hours = (df["timestamp"] // 3_600_000) % 24
    by_hour = df["volume"].groupby(hours).mean()
    assert by_hour.loc[15] > 1.5 * by_hour.loc[3]  # intraday volume seasonality
    assert 0.45 < np.mean(r > 0) < 0.55  # unpredictable on its own
    drift_by_month = pd.Series(r).groupby(np.arange(len(r)) // 720).sum()
    assert drift_by_month.std() > 0.02  # months with different drifts


def _reversal_hit_rate(df: pd.DataFrame) -> float:
    r = np.diff(np.log(df["close"].to_numpy()))
    past = r[:-3] + r[1:-2] + r[2:-1]
    nxt = r[3:]
    predicted = np.where(past > 0, -1.0, 1.0)
    return float(np.mean(np.sign(nxt) == predicted))


def test_planted_signal_is_learnable_and_absent_at_zero() -> None:
    assert abs(_reversal_hit_rate(synthetic_candles(bars=20_000, planted_signal=0.0)) - 0.5) < 0.02
    assert _reversal_hit_rate(synthetic_candles(bars=20_000, planted_signal=0.3)) > 0.62
    assert _reversal_hit_rate(synthetic_candles(bars=20_000, planted_signal=0.6)) > 0.8


def test_bad_arguments_are_refused() -> None:
    for kwargs in ({"bars": 0}, {"seed": -1}, {"planted_signal": 1.5}, {"timeframe": "7x"}, {"symbol": "BTCUSDT"}):
        with pytest.raises(DataError):
            synthetic_candles(**kwargs)


def test_resolve_prefers_stored_data_then_synthetic(tmp_path: Path) -> None:
    df, source = resolve_candles(tmp_path, "BTC/USDT", "1h", synthetic_bars=300, seed=4)
    assert source == "synthetic market (seed 4)"
    pd.testing.assert_frame_equal(df, synthetic_candles("BTC/USDT", "1h", bars=300, seed=4))
    stored = candles(50)
    CandleStore(tmp_path).write("binance", "BTC/USDT", "1h", stored)
    df, source = resolve_candles(tmp_path, "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(df, stored)
    assert "binance" in source and "50 bars" in source
    # another timeframe is still synthetic
    assert resolve_candles(tmp_path, "BTC/USDT", "4h", synthetic_bars=10)[1].startswith("synthetic")
    CandleStore(tmp_path).write("kraken", "BTC/USDT", "1h", stored.iloc[:10].reset_index(drop=True))
    with pytest.raises(DataError, match="several exchanges.*binance, kraken"):
        resolve_candles(tmp_path, "BTC/USDT", "1h")
    assert len(resolve_candles(tmp_path, "BTC/USDT", "1h", exchange="kraken")[0]) == 10


def test_a_named_exchange_without_data_is_an_error_not_synthetic(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no stored binance BTC/USDT 1h candles \\(nothing is stored for it\\)"):
        resolve_candles(tmp_path, "BTC/USDT", "1h", exchange="binance")
    CandleStore(tmp_path).write("kraken", "BTC/USDT", "1h", candles(20))
    with pytest.raises(DataError, match="stored for: kraken"):
        resolve_candles(tmp_path, "BTC/USDT", "1h", exchange="binance")


def test_a_market_missing_from_a_store_that_holds_others_is_named_before_the_synthetic_market_stands_in(tmp_path: Path) -> None:
    from cli_runner import run_trader

    assert run_trader("data", "synth", "--symbol", "BTC/USDT", "--timeframe", "1h", "--bars", "300", home=tmp_path).returncode == 0
    typo = run_trader("backtest", "--plugin", "buy_and_hold", "--symbol", "BTC/USTD", "--timeframe", "1h", home=tmp_path)
    assert typo.returncode == 0 and "on synthetic market (seed 0)" in typo.stdout
    assert "no stored BTC/USTD 1h candles (the store holds BTC/USDT 1h): using the synthetic market (seed 0)" in typo.stderr
    stored = run_trader("backtest", "--plugin", "buy_and_hold", "--symbol", "BTC/USDT", "--timeframe", "1h", home=tmp_path)
    assert stored.returncode == 0 and "on stored synthetic BTC/USDT 1h (300 bars)" in stored.stdout and "no stored" not in stored.stderr
    empty = run_trader("backtest", "--plugin", "buy_and_hold", "--symbol", "BTC/USDT", "--timeframe", "1h", home=tmp_path / "empty")
    assert empty.returncode == 0 and "no stored" not in empty.stderr  # an empty store: the tour's synthetic market
