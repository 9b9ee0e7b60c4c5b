"""``kernels.one_bar`` (the live path's plain-float kernel) equals the array kernels bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.features import kernels
from trader.features.specs import BAR_FEATURES

PRICE = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
VOLUME = st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e12, allow_nan=False, allow_infinity=False))


def _array_kernels(ts, o, h, low, c, v, cp, tpp, r_lag1, r_lag2):
    one = lambda x, dtype=np.float64: np.array([x], dtype=dtype)  # noqa: E731
    series = np.empty((kernels.N_SUM_SERIES, 1))
    bar = kernels.bar_series(one(o), one(h), one(low), one(c), one(v), one(cp), one(tpp), series)
    out = np.empty((len(BAR_FEATURES), 1))
    kernels.bar_features(one(ts, np.int64), one(o), one(h), one(low), one(c), one(cp), bar["r"], one(r_lag1), one(r_lag2),
                         bar["hl"], bar["clv"], bar["tr"], out)
    return series[:, 0], bar["r"][0], np.log(one(c))[0], out[:, 0]


def _same(got, want) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.tobytes() == want.tobytes(), np.flatnonzero(got.view(np.int64) != want.view(np.int64))


def _check(ts, o, h, low, c, v, cp, tpp, r_lag1=0.01, r_lag2=math.nan):
    h, low = max(h, o, c, low), min(low, o, c, h)
    got = kernels.one_bar(ts, o, h, low, c, v, cp, tpp, r_lag1, r_lag2)
    want = _array_kernels(ts, o, h, low, c, v, cp, tpp, r_lag1, r_lag2)
    for g, w in zip(got, want, strict=True):
        _same(g, w)


@given(ts=st.integers(0, 4_102_444_800_000), o=PRICE, h=PRICE, low=PRICE, c=PRICE, v=VOLUME, cp=PRICE,
       tpp=st.one_of(PRICE, st.just(math.nan)))
def test_one_bar_equals_the_array_kernels(ts, o, h, low, c, v, cp, tpp):
    _check(ts, o, h, low, c, v, cp, tpp)


@pytest.mark.parametrize("bar", [
    (0, 10.0, 10.0, 10.0, 10.0, 0.0, math.nan, math.nan),  # a first bar: no previous close
    (3_600_000, 10.0, 12.0, 9.0, 11.0, 5.0, math.nan, math.nan),
    (7_200_000, 10.0, 10.0, 10.0, 10.0, 0.0, 10.0, 10.0),  # a filled bar: flat, no volume, no move
    (7_200_000, 10.0, 11.0, 9.0, 10.0, 3.0, 10.0, 10.0),  # same close, same typical price
    (86_400_000 * 20_000 + 1, 5.0, 6.0, 4.0, 4.5, 1e12, 5.5, 4.0),  # a fall on heavy volume
])
def test_one_bar_equals_the_array_kernels_on_edge_bars(bar):
    _check(*bar)
