"""trader's conformance suite for dl_lstm, with a tiny network trained for one epoch so it stays fast."""

from trader.testing import conformance_tests

TestConformance = conformance_tests(
    "dl_lstm",
    bars=500,
    train_params={"epochs": 1, "hidden_size": 8, "head_hidden": 8, "sequence_length": 16, "batch_size": 64, "threads": 1},
)
