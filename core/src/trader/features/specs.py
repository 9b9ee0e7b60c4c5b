"""The feature catalogue: ordered names, formulas and look-backs of every engineered feature.

The count is ``18 * len(windows) + 14``: 14 single-bar features followed by 18
features per window, grouped by kind (``ret_5, ret_10, ..., sma_ratio_5, ...``).
``docs/features.md`` shows this table for the default windows; a test keeps both equal.
"""

from __future__ import annotations

from attrs import frozen

from trader.feature_windows import DEFAULT_WINDOWS, check_windows

__all__ = [
    "FeatureSpec",
    "BAR_FEATURES",
    "WINDOW_FEATURES",
    "DEFAULT_WINDOWS",
    "check_windows",
    "feature_specs",
    "feature_names",
    "feature_count",
    "warmup_bars_for",
]



@frozen
class FeatureSpec:
    """One feature: its column name, its formula (documentation) and how many past bars it reads.

    ``lookback`` bars before row ``t`` are needed, so the feature is first valid at row ``lookback``
    of a segment.
    """

    name: str
    formula: str
    lookback: int


# name, formula, lookback: ``c, o, h, l, v`` are this bar's prices and volume, ``c[-1]`` the previous
# close, ``r = ln(c / c[-1])``, ``tr = max(h, c[-1]) - min(l, c[-1])``, ``tp = (h + l + c) / 3``.
BAR_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("ret_1", "r = ln(c / c[-1])", 1),
    FeatureSpec("ret_1_lag1", "r[-1]", 2),
    FeatureSpec("ret_1_lag2", "r[-2]", 3),
    FeatureSpec("body", "ln(c / o)", 0),
    FeatureSpec("hl_range", "ln(h / l)", 0),
    FeatureSpec("upper_wick", "ln(h / max(o, c))", 0),
    FeatureSpec("lower_wick", "ln(min(o, c) / l)", 0),
    FeatureSpec("gap", "ln(o / c[-1])", 1),
    FeatureSpec("clv", "((c - l) - (h - c)) / (h - l); 0 when h = l", 0),
    FeatureSpec("tr_ratio", "tr / c[-1]", 1),
    FeatureSpec("hour_sin", "sin(2 pi * time of day / 24 h) of the bar's open time (UTC)", 0),
    FeatureSpec("hour_cos", "cos(2 pi * time of day / 24 h)", 0),
    FeatureSpec("dow_sin", "sin(2 pi * (weekday + time of day) / 7), Monday = 0", 0),
    FeatureSpec("dow_cos", "cos(2 pi * (weekday + time of day) / 7)", 0),
)

# Per window W; ``sum_W``, ``mean_W``, ``max_W``, ``min_W`` run over the W bars ending at (and
# including) this bar; "flat" means no close changed in the window. ``offset`` is the look-back
# minus W: 0 for features reading c[-W] or r over W bars, -1 for those reading only the W bars.
_WINDOW_TEMPLATES: tuple[tuple[str, str, int], ...] = (
    ("ret", "ln(c / c[-W])", 0),
    ("sma_ratio", "c / mean_W(c) - 1", -1),
    ("rvol", "sqrt(mean_W(r^2))", 0),
    ("parkinson", "sqrt(mean_W(ln(h / l)^2) / (4 ln 2))", -1),
    ("atr", "mean_W(tr) / c", 0),
    ("rsi", "sum_W(max(dc, 0)) / sum_W(abs(dc)) - 0.5, dc = c - c[-1]; 0 when flat", 0),
    ("stoch", "(c - min_W(l)) / (max_W(h) - min_W(l)) - 0.5; 0 when max_W(h) = min_W(l)", -1),
    ("range", "ln(max_W(h) / min_W(l))", -1),
    ("volume_ratio", "v / mean_W(v); 1 when sum_W(v) = 0", -1),
    ("obv_ratio", "sum_W(v * sign(dc)) / sum_W(v); 0 when sum_W(v) = 0", 0),
    ("mfi", "sum_W(tp v if tp > tp[-1]) / sum_W(tp v if tp != tp[-1]) - 0.5; 0 when none", 0),
    ("vwap_ratio", "c sum_W(v) / sum_W(tp v) - 1; 0 when sum_W(v) = 0", -1),
    ("clv_mean", "mean_W(clv)", -1),
    ("up_ratio", "mean_W(dc > 0) - 0.5", 0),
    ("ret_z", "ret_W / sqrt(sum_W(r^2)); 0 when flat", 0),
    ("efficiency", "abs(ret_W) / sum_W(abs(r)); 0 when flat", 0),
    ("skew", "mean_W(r^3) / mean_W(r^2)^1.5; 0 when flat", 0),
    ("downside", "sum_W(r^2 if r < 0) / sum_W(r^2) - 0.5; 0 when flat", 0),
)

WINDOW_FEATURES: tuple[str, ...] = tuple(kind for kind, _, _ in _WINDOW_TEMPLATES)


def feature_specs(windows: tuple[int, ...] = DEFAULT_WINDOWS) -> tuple[FeatureSpec, ...]:
    """All features in column order for *windows* (bar features first, then per-window kinds)."""
    windows = tuple(windows)
    check_windows(windows)
    per_window = tuple(
        FeatureSpec(f"{kind}_{w}", formula.replace("W", str(w)), w + offset)
        for kind, formula, offset in _WINDOW_TEMPLATES
        for w in windows
    )
    return BAR_FEATURES + per_window


def feature_names(windows: tuple[int, ...] = DEFAULT_WINDOWS) -> list[str]:
    """The ordered feature column names for *windows*."""
    return [spec.name for spec in feature_specs(windows)]


def feature_count(n_windows: int) -> int:
    """``18 * n_windows + 14`` (86 for the four default windows)."""
    return len(WINDOW_FEATURES) * n_windows + len(BAR_FEATURES)


def warmup_bars_for(windows: tuple[int, ...]) -> int:
    """Index of the first row of a segment at which every feature is valid."""
    return max(spec.lookback for spec in feature_specs(windows))
