"""docs/features.md documents exactly the features the code computes, and the public surface is explicit."""

from __future__ import annotations

import re
from pathlib import Path

import trader.features
from trader.features import DEFAULT_WINDOWS, FeatureEngineer, feature_specs

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"
ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|(.+)\|\s*(\d+)\s*\|\s*$")


def documented_rows() -> list[tuple[str, str, int]]:
    rows = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = ROW.match(line)
        if match:
            rows.append((match.group(1), match.group(2).strip(), int(match.group(3))))
    return rows


def test_the_feature_table_matches_the_code():
    rows = documented_rows()
    specs = feature_specs(DEFAULT_WINDOWS)
    assert [name for name, _, _ in rows] == FeatureEngineer().get_feature_names()
    assert [(name, formula, warm) for name, formula, warm in rows] == [(s.name, s.formula, s.lookback) for s in specs]
    assert len(rows) == 86


def test_the_count_formula_and_warm_up_rule_are_documented():
    text = DOC.read_text(encoding="utf-8")
    assert "18 * len(windows) + 14" in text
    assert "max(3, max(windows))" in text
    assert FeatureEngineer(windows=(7, 30, 90)).warmup_bars == max(3, 90)


def test_public_names_are_exported_explicitly():
    public = {name for name in dir(trader.features) if not name.startswith("_")}
    for name in trader.features.__all__:
        assert name == "TimeSeriesDataset" or name in public, name
    assert {"FeatureEngineer", "make_labels", "LabelDefinition", "DataPreprocessor", "FeatureScaler",
            "TimeSeriesDataset", "IncrementalFeatures", "windows"} <= set(trader.features.__all__)
