"""Downloads through real ccxt against the loopback Binance server, configured only by ccxt options."""

from __future__ import annotations

from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest
from data_fixtures import candles

from trader.config import TraderConfig
from trader.data.download import RetryPolicy, download_candles, make_exchange
from trader.data.store import CandleStore
from trader.errors import ConfigError, ExchangeError
from trader.testing.fake_binance import FakeBinance, Fault

HOUR = 3_600_000


@pytest.fixture
def market() -> pd.DataFrame:
    return candles(2500, seed=5)


@pytest.fixture
def server(market: pd.DataFrame):
    with FakeBinance({"BTC/USDT": market, "ETH/USDT": candles(10, seed=2), "BTC/USDC": candles(10, seed=3)}) as fake:
        yield fake


def _exchange(server: FakeBinance, tmp_path: Path, timeout_ms: int = 2000):
    config = TraderConfig(home=tmp_path, data={"exchange": {"id": "binance", "ccxt": server.ccxt_options(timeout=timeout_ms)}})
    return make_exchange(config)


def _download(server, tmp_path, market, *, sleeps=None, **kwargs):
    exchange = kwargs.pop("exchange", None) or _exchange(server, tmp_path)
    store = CandleStore(tmp_path)
    since = int(market["timestamp"].iloc[0])
    return download_candles(exchange, store, "BTC/USDT", "1h", since, sleep=(sleeps.append if sleeps is not None else lambda s: None), **kwargs)


def test_paginates_across_many_pages(server, tmp_path, market) -> None:
    seen: list[tuple[int, int]] = []
    result = _download(server, tmp_path, market, page_limit=100, progress=lambda done, total: seen.append((done, total)))
    stored = CandleStore(tmp_path).read("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(stored, market)
    starts = [int(r.params["startTime"]) for r in server.requests_to("/api/v3/klines")]
    assert len(starts) == 26 and starts[:3] == [int(market["timestamp"].iloc[i]) for i in (0, 100, 200)]
    assert all(r.params["limit"] == "100" for r in server.requests_to("/api/v3/klines"))
    assert (result.pages, result.fetched, result.added) == (26, 2500, 2500)
    assert seen[-1][0] == 2500 and [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_network_faults_are_retried_with_capped_backoff_and_retry_after(server, tmp_path, market) -> None:
    server.inject(
        "/api/v3/klines",
        Fault.rate_limited(retry_after=7),
        Fault.server_error(502),
        Fault.slow(1.5),
        Fault.malformed(),
        Fault.disconnect(),
    )
    sleeps: list[float] = []
    exchange = _exchange(server, tmp_path, timeout_ms=400)
    result = _download(server, tmp_path, market, sleeps=sleeps, exchange=exchange,
                       retry=RetryPolicy(max_retries=5, backoff=0.1, backoff_cap=0.3))
    assert sleeps == [7.0, 0.2, 0.3, 0.3, 0.3]
    assert result.retries == {"DDoSProtection": 1, "ExchangeNotAvailable": 1, "RequestTimeout": 1, "Malformed": 1, "NetworkError": 1}
    pd.testing.assert_frame_equal(CandleStore(tmp_path).read("binance", "BTC/USDT", "1h"), market)
    assert [r.fault for r in server.requests_to("/api/v3/klines")][:4] == ["status", "status", "malformed", "disconnect"]


def test_gives_up_keeps_what_arrived_and_resumes_without_gaps_or_duplicates(server, tmp_path, market) -> None:
    def fail_after_three_pages(done: int, total: int) -> None:
        if done == 300:
            server.inject("/api/v3/klines", *[Fault.server_error(503)] * 3)

    with pytest.raises(ExchangeError, match="giving up after 2 retries .*ExchangeNotAvailable.*run the same command again"):
        _download(server, tmp_path, market, page_limit=100, progress=fail_after_three_pages, retry=RetryPolicy(max_retries=2, backoff=0))
    store = CandleStore(tmp_path)
    partial = store.read("binance", "BTC/USDT", "1h")
    pd.testing.assert_frame_equal(partial, market.iloc[:300])
    server.requests.clear()
    result = _download(server, tmp_path, market, page_limit=1000)
    first_request = server.requests_to("/api/v3/klines")[0]
    assert int(first_request.params["startTime"]) == int(market["timestamp"].iloc[299])  # the last stored bar, again
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), market)
    assert (result.added, result.replaced) == (2200, 0)
    assert store.list()[0].gaps == 0


def test_missing_beginning_is_fetched_and_stored_middle_is_not(server, tmp_path, market) -> None:
    store = CandleStore(tmp_path)
    store.write("binance", "BTC/USDT", "1h", market.iloc[1000:2000].reset_index(drop=True))
    _download(server, tmp_path, market)
    starts = [int(r.params["startTime"]) for r in server.requests_to("/api/v3/klines")]
    assert starts[0] == int(market["timestamp"].iloc[0])
    assert int(market["timestamp"].iloc[1999]) in starts
    assert not any(int(market["timestamp"].iloc[1000]) < s < int(market["timestamp"].iloc[1999]) for s in starts)
    pd.testing.assert_frame_equal(store.read("binance", "BTC/USDT", "1h"), market)


def test_until_is_exclusive_and_the_bar_in_progress_is_left_out(tmp_path) -> None:
    now = pd.Timestamp.now(tz="UTC").floor("h")
    live = candles(30, start=str((now - pd.Timedelta(hours=25)).tz_localize(None)))
    with FakeBinance({"BTC/USDT": live}) as server:
        result = _download(server, tmp_path, live)
        stored = CandleStore(tmp_path).read("binance", "BTC/USDT", "1h")
        assert stored["timestamp"].iloc[-1] < now.value // 1_000_000  # the current hour is still open
        assert len(stored) in (24, 25) and result.end <= now.value // 1_000_000
        home2 = tmp_path / "other"
        exchange = _exchange(server, home2)
        until = int(live["timestamp"].iloc[10])
        download_candles(exchange, CandleStore(home2), "BTC/USDT", "1h", int(live["timestamp"].iloc[0]), until)
        assert CandleStore(home2).read("binance", "BTC/USDT", "1h")["timestamp"].iloc[-1] == live["timestamp"].iloc[9]


def test_refusals_stop_with_the_valid_choices(server, tmp_path, market) -> None:
    exchange = _exchange(server, tmp_path)
    store = CandleStore(tmp_path)
    with pytest.raises(ExchangeError, match=r"binance has no market BTC/USDX \(3 markets; similar: BTC/USDT, BTC/USDC"):
        download_candles(exchange, store, "BTC/USDX", "1h", 0, sleep=lambda s: None)
    with pytest.raises(ExchangeError, match="does not offer 7h candles; valid timeframes: 1s, 1m, .*1w"):
        download_candles(exchange, store, "BTC/USDT", "7h", 0, sleep=lambda s: None)
    server.inject("/api/v3/klines", Fault.binance_error(-1121, "Invalid symbol."))
    with pytest.raises(ExchangeError, match="binance has no market BTC/USDT"):
        download_candles(exchange, store, "BTC/USDT", "1h", 0, sleep=lambda s: None)
    server.inject("/api/v3/klines", Fault.binance_error(-1100, "Illegal characters found in a parameter."))
    with pytest.raises(ExchangeError, match="binance refused the request: .*Illegal characters"):
        download_candles(exchange, store, "BTC/USDT", "1h", 0, sleep=lambda s: None)
    assert not store.exists("binance", "BTC/USDT", "1h")


def test_invalid_bars_from_the_exchange_are_validated(tmp_path) -> None:
    bad = candles(50)
    bad.loc[20, "low"] = bad.loc[20, "high"] * 1.1
    with FakeBinance({"BTC/USDT": bad}) as server:
        with pytest.raises(Exception, match="row 21: low: low above open or close"):
            _download(server, tmp_path, bad)
        from trader.data.validate import ImportPolicy

        result = _download(server, tmp_path, bad, policy=ImportPolicy(on_invalid="drop"))
    assert result.findings[0].code == "invalid" and len(CandleStore(tmp_path).read("binance", "BTC/USDT", "1h")) == 49


def test_make_exchange_uses_config_and_environment_only(tmp_path, monkeypatch) -> None:
    options = {"urls": {"api": {"public": "http://127.0.0.1:9/api/v3"}}, "timeout": 1234}
    config = TraderConfig(home=tmp_path, data={"exchange": {"id": "binance", "ccxt": options}})
    monkeypatch.setenv("TRADER_API_KEY", "key-from-env")
    monkeypatch.setenv("TRADER_API_SECRET", "secret-from-env")
    exchange = make_exchange(config)
    assert isinstance(exchange, ccxt.binance) and exchange.timeout == 1234
    assert exchange.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
    assert exchange.urls["api"]["sapi"].startswith("https://")  # the rest of ccxt's defaults stay
    assert exchange.apiKey == "key-from-env" and exchange.enableRateLimit is True
    assert make_exchange(config, credentials=False).apiKey in ("", None)
    kraken = make_exchange(config, "kraken")  # options for binance are not applied to kraken
    assert kraken.timeout != 1234
    with pytest.raises(ConfigError, match="unknown exchange 'binanse'; did you mean binance"):
        make_exchange(config, "binanse")
    with pytest.raises(ConfigError, match="no exchange given"):
        make_exchange(TraderConfig(home=tmp_path))
    leaky = TraderConfig(home=tmp_path, data={"exchange": {"id": "binance", "ccxt": {"apiKey": "x"}}})
    with pytest.raises(ConfigError, match="must not hold credentials"):
        make_exchange(leaky)
    assert np.isfinite(exchange.rateLimit)
