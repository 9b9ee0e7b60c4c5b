"""Invalid values cannot be constructed, and the error names the field."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.types import (
    Candle,
    Fill,
    OrderRequest,
    RiskLimits,
    RiskVerdict,
    Side,
    Signal,
    SignalAction,
    StrategyInfo,
)

finite_positive = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False)
bad_numbers = st.one_of(st.just(math.nan), st.just(math.inf), st.just(-math.inf), st.floats(max_value=0.0))


def order(**overrides):
    values = dict(strategy="s", symbol="BTC/USDT", side="buy", quantity=1.0, price=100.0,
                  client_order_id="c1", timestamp=0)
    values.update(overrides)
    return OrderRequest(**values)


@given(price=bad_numbers)
def test_order_refuses_non_positive_or_nan_price(price):
    with pytest.raises(ValueError, match="price"):
        order(price=price)


@given(qty=bad_numbers)
def test_order_refuses_bad_quantity(qty):
    with pytest.raises(ValueError, match="quantity"):
        order(quantity=qty)


def test_unknown_side_is_refused_naming_choices():
    with pytest.raises(ValueError, match=r"unknown Side 'short'.*buy, sell"):
        order(side="short")


def test_side_accepts_strings_and_enums():
    assert order(side="BUY").side is Side.BUY
    assert order(side=Side.SELL).side is Side.SELL


@given(conf=st.one_of(st.floats(allow_nan=True), st.integers()))
def test_signal_confidence_must_be_in_unit_interval(conf):
    ok = isinstance(conf, (int, float)) and math.isfinite(conf) and 0 <= conf <= 1
    if ok:
        assert Signal(SignalAction.BUY, confidence=conf).confidence == conf
    else:
        with pytest.raises(ValueError, match="confidence"):
            Signal(SignalAction.BUY, confidence=conf)


def test_signal_size_out_of_range_refused():
    with pytest.raises(ValueError, match="size"):
        Signal("buy", size=1.5)
    with pytest.raises(ValueError, match="unknown SignalAction"):
        Signal("moon")


@given(o=finite_positive, c=finite_positive, spread=st.floats(0, 10), vol=st.floats(0, 1e9))
def test_valid_candles_construct(o, c, spread, vol):
    high = max(o, c) * (1 + spread)
    low = min(o, c) / (1 + spread)
    candle = Candle(0, o, high, low, c, vol)
    assert candle.low <= candle.open <= candle.high


def test_inconsistent_candle_refused():
    with pytest.raises(ValueError, match="high"):
        Candle(0, 10.0, 9.0, 8.0, 9.5, 1.0)
    with pytest.raises(ValueError, match="low"):
        Candle(0, 10.0, 12.0, 10.5, 11.0, 1.0)
    with pytest.raises(ValueError, match="volume"):
        Candle(0, 10.0, 12.0, 9.0, 11.0, -1.0)


def test_fill_refuses_negative_fee():
    with pytest.raises(ValueError, match="fee"):
        Fill("c1", "BTC/USDT", "buy", 1.0, 100.0, fee=-0.1)


def test_denial_needs_a_reason():
    with pytest.raises(ValueError, match="reasons"):
        RiskVerdict(False, "rule")
    verdict = RiskVerdict.deny("core", "NOTIONAL_EXCEEDS_MAX_PER_ORDER", "too big")
    assert verdict.reasons[0].code == "NOTIONAL_EXCEEDS_MAX_PER_ORDER"


@given(st.floats(0.01, 1.0), st.floats(0.01, 1.0))
def test_risk_limits_can_only_be_tightened(current, proposed):
    limits = RiskLimits(max_position_fraction=current)
    tightened = limits.tightened(max_position_fraction=proposed)
    assert tightened.max_position_fraction == min(current, proposed)


def test_risk_limit_overrides_are_validated():
    with pytest.raises(ValueError, match="max_drawdown"):
        RiskLimits().with_overrides({"max_drawdown": 1.5})
    with pytest.raises(ValueError, match="unknown risk limit 'max_fun'"):
        RiskLimits().with_overrides({"max_fun": 1})


def test_strategy_info_validates():
    with pytest.raises(ValueError, match="warmup_bars"):
        StrategyInfo(name="x", version="1", warmup_bars=-1)
    with pytest.raises(ValueError, match="name"):
        StrategyInfo(name=" ", version="1")
