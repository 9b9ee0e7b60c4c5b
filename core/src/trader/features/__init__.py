"""Engineered features, labels, scaling and windowed datasets for the learning strategies.

``import trader.features`` loads numpy and attrs only; pandas loads when a frame is made and torch
only when :class:`TimeSeriesDataset` is first used (lazy attribute).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trader.features.engineer import FEATURE_SET_VERSION, FeatureEngineer
from trader.features.incremental import IncrementalFeatures
from trader.features.labels import DEFAULT_THRESHOLD, LabelDefinition, make_labels, round_trip_threshold
from trader.features.preprocessing import DataPreprocessor, DataSplit, PreparedData
from trader.features.scaler import FeatureScaler
from trader.features.segments import DEFAULT_MAX_FILL_BARS, infer_bar_ms, segment_ids
from trader.features.specs import DEFAULT_WINDOWS, FeatureSpec, feature_count, feature_names, feature_specs
from trader.features.windows import valid_window_ends, windows

if TYPE_CHECKING:  # the lazy attribute below, for type checkers and IDEs
    from trader.features.dataset import TimeSeriesDataset

__all__ = [
    "FeatureEngineer",
    "FEATURE_SET_VERSION",
    "FeatureSpec",
    "DEFAULT_WINDOWS",
    "feature_count",
    "feature_names",
    "feature_specs",
    "IncrementalFeatures",
    "LabelDefinition",
    "make_labels",
    "round_trip_threshold",
    "DEFAULT_THRESHOLD",
    "DEFAULT_MAX_FILL_BARS",
    "infer_bar_ms",
    "segment_ids",
    "FeatureScaler",
    "DataPreprocessor",
    "DataSplit",
    "PreparedData",
    "windows",
    "valid_window_ends",
    "TimeSeriesDataset",
]


def __getattr__(name: str) -> Any:
    # TimeSeriesDataset subclasses torch's Dataset: import torch only when it is asked for.
    if name == "TimeSeriesDataset":
        from trader.features.dataset import TimeSeriesDataset

        return TimeSeriesDataset
    raise AttributeError(f"module 'trader.features' has no attribute {name!r}")
