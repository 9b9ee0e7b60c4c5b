"""Numeric kernels shared by the batch and the incremental feature computations.

Both paths call the same functions (the batch one on whole columns, the incremental one on
arrays of one element per window), so a formula exists exactly once. Rolling sums are
differences of running sums (``cumsum``): exact up to float rounding and truncation
invariant, because a running sum at row t reads rows ``<= t`` only. An all-zero window is
recognised by an exact count of non-zero entries, never by comparing a rounded sum with 0.

One exception, for speed: :func:`one_bar` and :func:`one_row_windows` restate the formulas on
plain floats for the live path (a numpy call per operation on one-element arrays costs more than
the arithmetic); ``tests/features/test_features_one_bar.py`` holds them to the array kernels bit
for bit, so a formula changed in one place and not the other fails there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from trader.timeframes import DAY_MS as _DAY_MS

__all__ = [
    "SUM_SERIES",
    "N_SUM_SERIES",
    "bar_series",
    "bar_features",
    "window_features",
    "rolling_extreme",
    "one_bar",
    "one_row_windows",
]

# Per-bar series whose rolling sums the window features read (row order of the sums matrix).
SUM_SERIES: tuple[str, ...] = (
    "c", "r2", "r3", "rneg2", "absr", "dpos", "dabs", "up", "hl2", "tr", "v", "sv", "tpv", "mfpos", "mfabs", "clv",
    # exact counts of non-zero entries, used to recognise all-zero windows
    "n_moved", "n_traded", "n_mf", "n_ranged", "n_tr",
)
N_SUM_SERIES = len(SUM_SERIES)
(C, R2, R3, RNEG2, ABSR, DPOS, DABS, UP, HL2, TR, V, SV, TPV, MFPOS, MFABS, CLV,
 N_MOVED, N_TRADED, N_MF, N_RANGED, N_TR) = range(N_SUM_SERIES)

_TWO_PI = 2.0 * math.pi
_FOUR_LN2 = 4.0 * math.log(2.0)


def bar_series(o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, v: np.ndarray, cp: np.ndarray,
               tpp: np.ndarray, out: np.ndarray) -> dict[str, np.ndarray]:
    """Fill *out* (``N_SUM_SERIES x n``) with the per-bar series; return the bar values features need.

    *cp* and *tpp* are the previous bar's close and typical price (NaN where there is none: those
    bars contribute 0 to every series). Returns ``r, hl, clv, tr, tp``.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        has_prev = ~np.isnan(cp)
        r = np.log(c / cp)
        d = c - cp
        hl = np.log(h / low)
        rng = h - low
        clv = np.zeros_like(c)
        np.divide((c - low) - (h - c), rng, out=clv, where=rng > 0)
        tr = np.maximum(h, cp) - np.minimum(low, cp)
        tp = (h + low + c) / 3.0
        tpv = tp * v
        out[C] = c
        np.multiply(r, r, out=out[R2])
        np.multiply(out[R2], r, out=out[R3])
        np.multiply(out[R2], r < 0, out=out[RNEG2])
        np.abs(r, out=out[ABSR])
        np.maximum(d, 0.0, out=out[DPOS])
        np.abs(d, out=out[DABS])
        out[UP] = d > 0
        np.multiply(hl, hl, out=out[HL2])
        out[TR] = tr
        out[V] = v
        np.multiply(v, np.sign(d), out=out[SV])
        out[TPV] = tpv
        np.multiply(tpv, tp > tpp, out=out[MFPOS])
        np.multiply(tpv, tp != tpp, out=out[MFABS])
        out[CLV] = clv
        np.logical_and(d != 0, has_prev, out=out[N_MOVED], casting="unsafe")
        out[N_TRADED] = v > 0
        np.logical_and(out[MFABS] > 0, has_prev, out=out[N_MF], casting="unsafe")
        out[N_RANGED] = rng > 0
        np.logical_and(tr > 0, has_prev, out=out[N_TR], casting="unsafe")
        if not has_prev.all():
            out[:, ~has_prev] = np.nan_to_num(out[:, ~has_prev], nan=0.0)
            out[MFPOS:MFABS + 1, ~has_prev] = 0.0
    return {"r": r, "hl": hl, "clv": clv, "tr": tr, "tp": tp}


def bar_features(ts: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray, c: np.ndarray, cp: np.ndarray,
                 r: np.ndarray, r_lag1: np.ndarray, r_lag2: np.ndarray, hl: np.ndarray, clv: np.ndarray,
                 tr: np.ndarray, out: np.ndarray) -> None:
    """Write the 14 single-bar features (``specs.BAR_FEATURES`` order) into the rows of *out*."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out[0] = r
        out[1] = r_lag1
        out[2] = r_lag2
        np.log(c / o, out=out[3])
        out[4] = hl
        np.log(h / np.maximum(o, c), out=out[5])
        np.log(np.minimum(o, c) / low, out=out[6])
        np.log(o / cp, out=out[7])
        out[8] = clv
        np.divide(tr, cp, out=out[9])
        day = (ts % _DAY_MS).astype(np.float64) / _DAY_MS
        angle = _TWO_PI * day
        np.sin(angle, out=out[10])
        np.cos(angle, out=out[11])
        week_angle = (_TWO_PI / 7.0) * (((ts // _DAY_MS) + 3) % 7 + day)
        np.sin(week_angle, out=out[12])
        np.cos(week_angle, out=out[13])


_MAX_FLOAT = float(np.finfo(np.float64).max)


def _nan_to_num(x: float) -> float:
    """``np.nan_to_num`` of one float."""
    if x != x:
        return 0.0
    if x == math.inf:
        return _MAX_FLOAT
    return -_MAX_FLOAT if x == -math.inf else x


def one_bar(ts: int, o: float, h: float, low: float, c: float, v: float, cp: float, tpp: float,
            r_lag1: float, r_lag2: float) -> tuple[list[float], float, float, list[float]]:
    """:func:`bar_series` and :func:`bar_features` of one bar on plain floats (the live path, ~4x cheaper).

    Returns ``(series, r, ln c, bar features)``, equal bit for bit to the array kernels' values: the
    same IEEE operations in the same order, NaN handled as numpy does, and the logarithms, sines and
    cosines through numpy's ufuncs (one call each; their results do not depend on the array's length).
    A change to a formula above must be made here too: ``tests/features`` compares the two bitwise.
    """
    has_prev = cp == cp
    high_oc = o if o >= c else c  # np.maximum / np.minimum of two finite floats
    low_oc = o if o <= c else c
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        logs = np.log(np.array((c / cp, h / low, c / o, h / high_oc, low_oc / low, o / cp, c))).tolist()
    r, hl = logs[0], logs[1]
    d = c - cp
    rng = h - low
    clv = ((c - low) - (h - c)) / rng if rng > 0 else 0.0
    tr = (h if h >= cp else cp) - (low if low <= cp else cp) if has_prev else math.nan
    tp = (h + low + c) / 3.0
    tpv = tp * v
    r2 = r * r
    sign = 1.0 if d > 0 else -1.0 if d < 0 else 0.0 if d == 0 else d
    mfabs = tpv * (1.0 if tp != tpp else 0.0)
    series = [
        c, r2, r2 * r, r2 * (1.0 if r < 0 else 0.0), abs(r), d if (d >= 0.0 or d != d) else 0.0, abs(d),
        1.0 if d > 0 else 0.0, hl * hl, tr, v, v * sign, tpv, tpv * (1.0 if tp > tpp else 0.0), mfabs, clv,
        1.0 if (d != 0 and has_prev) else 0.0, 1.0 if v > 0 else 0.0, 1.0 if (mfabs > 0 and has_prev) else 0.0,
        1.0 if rng > 0 else 0.0, 1.0 if (tr > 0 and has_prev) else 0.0,
    ]
    if not has_prev:
        series = [_nan_to_num(x) for x in series]
        series[MFPOS] = series[MFABS] = 0.0
    day = float(ts % _DAY_MS) / _DAY_MS
    angles = np.array((_TWO_PI * day, (_TWO_PI / 7.0) * (((ts // _DAY_MS) + 3) % 7 + day)))
    sines, cosines = np.sin(angles).tolist(), np.cos(angles).tolist()
    features = [r, r_lag1, r_lag2, logs[2], hl, logs[3], logs[4], logs[5], clv, tr / cp,
                sines[0], cosines[0], sines[1], cosines[1]]
    return series, r, logs[6], features


def _ratio(num: np.ndarray, den: np.ndarray, ok: np.ndarray, default: float, out: np.ndarray,
           shift: float = 0.0) -> None:
    """``out = num / den - shift`` where *ok*, else ``default``."""
    out[...] = default + shift
    np.divide(num, den, out=out, where=ok)
    if shift:
        out -= shift


def window_features(window: np.ndarray | int, c: np.ndarray, v: np.ndarray, logc: np.ndarray,
                    logc_lag: np.ndarray, sums: np.ndarray, high_max: np.ndarray, low_min: np.ndarray,
                    out: np.ndarray) -> None:
    """Write the 18 features of one window (``specs.WINDOW_FEATURES`` order) into the rows of *out*.

    *sums* holds the rolling sums of ``SUM_SERIES`` over the window ending at each row;
    *high_max* / *low_min* the window's highest high and lowest low; *logc_lag* is ``ln c[-W]``.
    """
    w = window if isinstance(window, int) else np.asarray(window, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = sums[N_MOVED] > 0.5
        traded = sums[N_TRADED] > 0.5
        r2 = np.where(moved, np.maximum(sums[R2], 0.0), 0.0)
        ok_r2 = moved & (r2 > 0)
        ret = out[0]
        np.subtract(logc, logc_lag, out=ret)
        np.divide(c * w, sums[C], out=out[1])
        out[1] -= 1.0
        np.sqrt(r2 / w, out=out[2])
        hl2 = np.where(sums[N_RANGED] > 0.5, np.maximum(sums[HL2], 0.0), 0.0)
        np.sqrt(hl2 / (w * _FOUR_LN2), out=out[3])
        atr = np.where(sums[N_TR] > 0.5, np.maximum(sums[TR], 0.0), 0.0)
        np.divide(atr, c * w, out=out[4])
        _ratio(sums[DPOS], sums[DABS], moved & (sums[DABS] > 0), 0.0, out[5], shift=0.5)
        span = high_max - low_min
        _ratio(c - low_min, span, span > 0, 0.0, out[6], shift=0.5)
        np.log(high_max / low_min, out=out[7])
        vol_ok = traded & (sums[V] > 0)
        _ratio(v * w, sums[V], vol_ok, 1.0, out[8])
        _ratio(sums[SV], sums[V], vol_ok, 0.0, out[9])
        _ratio(sums[MFPOS], sums[MFABS], (sums[N_MF] > 0.5) & (sums[MFABS] > 0), 0.0, out[10], shift=0.5)
        _ratio(c * sums[V], sums[TPV], vol_ok & (sums[TPV] > 0), 0.0, out[11], shift=1.0)
        np.divide(sums[CLV], w, out=out[12])
        np.divide(sums[UP], w, out=out[13])
        out[13] -= 0.5
        _ratio(ret, np.sqrt(r2), ok_r2, 0.0, out[14])
        _ratio(np.abs(ret), sums[ABSR], moved & (sums[ABSR] > 0), 0.0, out[15])
        _ratio(sums[R3] / w, (r2 / w) ** 1.5, ok_r2, 0.0, out[16])
        _ratio(np.maximum(sums[RNEG2], 0.0), r2, ok_r2, 0.0, out[17], shift=0.5)


def _div(num: float, den: float) -> float:
    """``num / den``; for a zero denominator numpy's inf or NaN (sign bits included), where Python raises."""
    if den == 0.0:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.divide(num, den))
    return num / den


def _non_negative_or_nan(x: float) -> float:
    """``np.maximum(x, 0.0)`` of one float (-0.0 gives 0.0, as numpy's SIMD loops do; running-sum
    differences of non-negative series are never -0.0 anyway)."""
    return x if (x > 0.0 or x != x) else 0.0


def one_row_windows(windows: Sequence[float], c: float, v: float, logc: float, logc_lag: Sequence[float],
                    sums: Sequence[Sequence[float]], high_max: Sequence[float], low_min: Sequence[float]) -> list[float]:
    """:func:`window_features` of one row on plain floats, every window: feature-major, as
    ``out.ravel()`` of that function's ``(18, len(windows))`` output (the live path).

    Bit for bit the array kernel (see :func:`one_bar`; logarithms and powers through numpy).
    """
    n = len(windows)
    r2s = [_non_negative_or_nan(sums[R2][k]) if sums[N_MOVED][k] > 0.5 else 0.0 for k in range(n)]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        logs = np.log(np.array([high_max[k] / low_min[k] for k in range(n)])).tolist()
        powers = np.power(np.array([r2s[k] / windows[k] for k in range(n)]), 1.5).tolist()
    out = [[0.0] * n for _ in range(18)]
    for k in range(n):
        w = windows[k]
        sc, sv, stpv = sums[C][k], sums[V][k], sums[TPV][k]
        moved = sums[N_MOVED][k] > 0.5
        traded = sums[N_TRADED][k] > 0.5
        r2 = r2s[k]
        ok_r2 = moved and r2 > 0
        ret = logc - logc_lag[k]
        out[0][k] = ret
        out[1][k] = _div(c * w, sc) - 1.0
        out[2][k] = math.sqrt(r2 / w)
        hl2 = _non_negative_or_nan(sums[HL2][k]) if sums[N_RANGED][k] > 0.5 else 0.0
        out[3][k] = math.sqrt(hl2 / (w * _FOUR_LN2))
        atr = _non_negative_or_nan(sums[TR][k]) if sums[N_TR][k] > 0.5 else 0.0
        out[4][k] = atr / (c * w)
        dabs = sums[DABS][k]
        out[5][k] = (sums[DPOS][k] / dabs if moved and dabs > 0 else 0.5) - 0.5
        span = high_max[k] - low_min[k]
        out[6][k] = ((c - low_min[k]) / span if span > 0 else 0.5) - 0.5
        out[7][k] = logs[k]
        vol_ok = traded and sv > 0
        out[8][k] = (v * w) / sv if vol_ok else 1.0
        out[9][k] = sums[SV][k] / sv if vol_ok else 0.0
        mfabs = sums[MFABS][k]
        out[10][k] = (sums[MFPOS][k] / mfabs if sums[N_MF][k] > 0.5 and mfabs > 0 else 0.5) - 0.5
        out[11][k] = ((c * sv) / stpv if vol_ok and stpv > 0 else 1.0) - 1.0
        out[12][k] = sums[CLV][k] / w
        out[13][k] = sums[UP][k] / w - 0.5
        out[14][k] = ret / math.sqrt(r2) if ok_r2 else 0.0
        absr = sums[ABSR][k]
        out[15][k] = abs(ret) / absr if moved and absr > 0 else 0.0
        out[16][k] = _div(sums[R3][k] / w, powers[k]) if ok_r2 else 0.0
        out[17][k] = (_non_negative_or_nan(sums[RNEG2][k]) / r2 if ok_r2 else 0.5) - 0.5
    return [value for feature in out for value in feature]


def rolling_extreme(x: np.ndarray, windows: tuple[int, ...], kind: str) -> dict[int, np.ndarray]:
    """Trailing rolling max (``kind="max"``) or min over each window, by a sparse table.

    Row ``t`` covers rows ``t-W+1 .. t``; rows before ``W-1`` hold partial results (callers mask them).
    Exact (no rounding): ``O(n log W)``.
    """
    op = np.maximum if kind == "max" else np.minimum
    levels = {1: x}
    span, current = 1, x
    while span * 2 <= max(windows):
        nxt = current.copy()
        op(current[span:], current[:-span], out=nxt[span:])
        span *= 2
        levels[span] = current = nxt
    result: dict[int, np.ndarray] = {}
    for w in windows:
        k = 1 << (w.bit_length() - 1)
        table = levels[k]
        shift = w - k
        if shift == 0:
            result[w] = table
        else:
            res = table.copy()
            op(table[shift:], table[:-shift], out=res[shift:])
            result[w] = res
    return result
