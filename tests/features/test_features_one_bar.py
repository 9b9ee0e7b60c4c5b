"""``kernels.one_bar`` and ``kernels.one_row_windows`` (the live path's plain-float kernels) equal the array
kernels bit for bit."""

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


def _window_case(draw_sums, c, v, logc, logc_lag, high_max, low_min, windows=(5.0, 10.0, 20.0, 50.0)):
    sums = np.asarray(draw_sums, dtype=np.float64).reshape(kernels.N_SUM_SERIES, len(windows))
    out = np.empty((18, len(windows)))
    with np.errstate(all="ignore"):  # overflowing ratios of extreme drawn sums: the same inf both ways
        kernels.window_features(np.asarray(windows), np.array([c]), np.array([v]), np.array([logc]), np.asarray(logc_lag),
                                sums, np.asarray(high_max), np.asarray(low_min), out)
    got = kernels.one_row_windows(list(windows), c, v, logc, list(logc_lag), sums.tolist(), list(high_max), list(low_min))
    _same(got, out.ravel())


# no -0.0: a running-sum difference is never one, and numpy's maximum(-0.0, 0.0) depends on the CPU's loop
SUM = st.one_of(st.just(0.0), st.just(1.0),
                st.floats(min_value=-1e6, max_value=1e12, allow_nan=False, allow_infinity=False).map(lambda x: x + 0.0))


@given(sums=st.lists(SUM, min_size=4 * kernels.N_SUM_SERIES, max_size=4 * kernels.N_SUM_SERIES), c=PRICE, v=VOLUME,
       logc=st.floats(-10, 20), lags=st.lists(st.floats(-10, 20), min_size=4, max_size=4),
       extremes=st.lists(st.tuples(PRICE, PRICE), min_size=4, max_size=4))
def test_one_row_windows_equals_the_array_kernel(sums, c, v, logc, lags, extremes):
    high_max = [max(a, b) for a, b in extremes]
    low_min = [min(a, b) for a, b in extremes]
    _window_case(sums, c, v, logc, lags, high_max, low_min)


def test_one_row_windows_equals_the_array_kernel_on_flat_silent_windows():
    sums = np.zeros((kernels.N_SUM_SERIES, 4))
    sums[kernels.C] = [50.0, 100.0, 200.0, 500.0]  # ten at every bar: nothing moved, nothing traded
    _window_case(sums.ravel(), 10.0, 0.0, math.log(10.0), [math.log(10.0)] * 4, [10.0] * 4, [10.0] * 4)
    sums[kernels.R2] = [1e-320, 0.0, -1e-18, 2e-4]  # a subnormal, a rounded-negative sum
    sums[kernels.N_MOVED] = [1.0, 0.0, 3.0, 9.0]
    _window_case(sums.ravel(), 10.0, 0.0, math.log(10.0), [math.log(9.0)] * 4, [11.0] * 4, [9.0] * 4)
