"""trader's conformance suite for ensemble, with small trees and few boosting rounds so it stays fast."""

from trader.testing import conformance_tests

TestConformance = conformance_tests(
    "ensemble",
    bars=600,
    train_params={"hgb_max_iter": 10, "trees": 10, "tree_min_samples_leaf": 20, "hgb_min_samples_leaf": 20, "threads": 1},
)
