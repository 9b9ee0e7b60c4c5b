"""`trader data synth --bounce-bps`: a bid-ask bounce planted around an unchanged mid path."""

from __future__ import annotations

import math

import numpy as np
import pytest
from cli_runner import run_trader

from trader.data.store import CandleStore
from trader.data.synth import synthetic_candles


def test_without_a_bounce_the_market_is_unchanged():
    assert synthetic_candles(bars=500, seed=7).equals(synthetic_candles(bars=500, seed=7, bounce_bps=0.0))


def test_opens_and_closes_trade_at_the_bid_or_the_ask_around_the_same_mid():
    mid = synthetic_candles(bars=3000, seed=7)
    traded = synthetic_candles(bars=3000, seed=7, bounce_bps=80)
    half = 80 / 20_000
    for key in ("open", "close"):
        offsets = np.log(traded[key].to_numpy() / mid[key].to_numpy())
        assert np.allclose(np.abs(offsets), half, rtol=1e-9)  # every trade at the bid or the ask ...
        assert 0.45 < (offsets > 0).mean() < 0.55  # ... each as likely
    assert np.allclose(np.log(traded["high"] / mid["high"]), half) and np.allclose(np.log(traded["low"] / mid["low"]), -half)
    assert (traded["high"] >= traded[["open", "close"]].max(axis=1)).all()
    assert (traded["low"] <= traded[["open", "close"]].min(axis=1)).all()


def test_the_bounce_makes_next_bar_returns_negatively_autocorrelated():
    def lag_one(frame):
        r = np.diff(np.log(frame["close"].to_numpy()))
        return float(np.corrcoef(r[:-1], r[1:])[0, 1])

    assert abs(lag_one(synthetic_candles(bars=20_000, seed=8))) < 0.03
    bounced = synthetic_candles(bars=20_000, seed=8, bounce_bps=100)
    r = np.diff(np.log(bounced["close"].to_numpy()))
    half = 100 / 20_000
    expected = -(half**2) / np.var(r)  # Roll (1984): cov(r_t, r_t+1) = -half^2
    assert lag_one(bounced) == pytest.approx(expected, abs=0.03)
    assert lag_one(bounced) == pytest.approx(-0.3, abs=0.05)  # docs/data.md: about -0.3 at 100 bps on 1h bars


@pytest.mark.parametrize("bad", [-1.0, math.nan, 5000.0, True])
def test_a_bad_bounce_is_refused(bad):
    from trader.errors import DataError

    with pytest.raises(DataError, match="bounce_bps"):
        synthetic_candles(bars=10, bounce_bps=bad)


def test_the_cli_stores_a_bounce_market(tmp_path):
    proc = run_trader("data", "synth", "--bounce-bps", "50", "--bars", "300", "--seed", "3", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bid-ask bounce 50 bps" in proc.stdout
    stored = CandleStore(tmp_path).read("synthetic", "SYN/USDT", "1h")
    assert np.allclose(stored["close"].to_numpy(), synthetic_candles(bars=300, seed=3, bounce_bps=50)["close"].to_numpy())
    bad = run_trader("data", "synth", "--bounce-bps", "-5", home=tmp_path)
    assert bad.returncode == 2 and "--bounce-bps" in bad.stderr and "Traceback" not in bad.stderr
