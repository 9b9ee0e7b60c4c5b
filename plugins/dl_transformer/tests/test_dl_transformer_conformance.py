"""trader's conformance suite for dl_transformer, with a tiny network trained for one epoch so it stays fast."""

from trader.testing import conformance_tests

TestConformance = conformance_tests(
    "dl_transformer",
    bars=500,
    train_params={"epochs": 1, "d_model": 8, "nhead": 2, "num_layers": 1, "dim_feedforward": 16, "sequence_length": 16, "batch_size": 64, "threads": 1},
)
