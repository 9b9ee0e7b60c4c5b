"""Crafted deep-learning manifests: refused from the bounds and the weights' header, before any network is built.

Whoever can edit a manifest can ask for ``num_layers=10000``; building that network first cost
15.8 GB and 77 s. Here the refusal must come fast and under a 2 GiB address-space limit.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from dl_helpers import manager, train
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limited_runner import GiB, run_limited, tree_digest

from trader.data import synthetic_candles
from trader.errors import ArtifactError
from trader.models import ModelPersistence, candles_hash, candles_range

torch.set_num_threads(1)
SYMBOL, TF, KEY = "SYN/USDT", "1h", "SYN-USDT_1h"
NAMES = ("dl_lstm", "dl_transformer")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("dl-pristine") / "home"
    plugins = manager()
    data = synthetic_candles(SYMBOL, TF, bars=600, seed=4)
    for name in NAMES:
        ModelPersistence(home / "models").save(
            plugins.strategy(name), train(plugins.strategy(name), data, epochs=1), symbol=SYMBOL, timeframe=TF,
            data_range=candles_range(data), data_hash=candles_hash(data), seed=0,
        )
    return home


@pytest.fixture
def home(tmp_path, pristine) -> Path:
    shutil.copytree(pristine, tmp_path / "home")
    return tmp_path / "home"


def edit_architecture(home: Path, name: str, **changes) -> Path:
    directory = home / "models" / name / KEY / "v1"
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["architecture"].update(changes)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


CASES = {
    # out of bounds: refused before anything is built
    "lstm 10000 layers": ("dl_lstm", {"num_layers": 10_000}, "num_layers must be an integer from 1 to 16, got 10000"),
    "transformer 10000 layers": ("dl_transformer", {"num_layers": 10_000}, "num_layers must be an integer from 1 to 32"),
    "transformer huge max_len": ("dl_transformer", {"max_len": 10**9}, "max_len must be an integer from 1 to 10000"),
    "float hidden size": ("dl_lstm", {"hidden_size": 12.5}, "hidden_size must be an integer"),
    # within bounds but tens of GB of tensors: refused from the meta-device skeleton's size
    "lstm wide and deep": ("dl_lstm", {"num_layers": 16, "hidden_size": 4096},
                           "needs 24711659528 bytes of tensors, more than the 1073741824-byte limit (TRADER_MAX_ARTIFACT_BYTES)"),
    "transformer wide": ("dl_transformer", {"d_model": 4096, "nhead": 64, "num_layers": 4, "dim_feedforward": 16384,
                                            "max_len": 10_000},
                         "bytes of tensors, more than the 1073741824-byte limit"),
    # within every limit, but not what the weights file holds: refused from its header before building
    "lstm deeper than its weights": ("dl_lstm", {"num_layers": 4, "hidden_size": 256},
                                     "weights do not fit the architecture in the manifest (missing lstm.bias_hh_l1"),
    "transformer wider than its weights": ("dl_transformer", {"d_model": 512, "nhead": 8, "dim_feedforward": 2048},
                                           "tensor 'input_projection.weight' has shape (16, 86), the architecture expects (512, 86)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_crafted_architecture_is_refused_in_well_under_a_second(home, case):
    name, changes, message = CASES[case]
    directory = edit_architecture(home, name, **changes)
    before = tree_digest(home / "models")
    started = time.perf_counter()
    with pytest.raises(ArtifactError) as refused:
        ModelPersistence(home / "models").load(manager().strategy(name), SYMBOL, TF)
    assert time.perf_counter() - started < 0.5
    assert str(refused.value).startswith(str(directory)) and message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert tree_digest(home / "models") == before


@pytest.mark.slow
@pytest.mark.parametrize("case", ["lstm 10000 layers", "lstm wide and deep", "transformer wide", "lstm deeper than its weights"])
def test_the_refusal_comes_before_the_allocation_under_a_2_gib_limit(home, case):
    name, changes, message = CASES[case]
    edit_architecture(home, name, **changes)
    result, seconds = run_limited("models", "verify", "--plugin", name, "--symbol", SYMBOL, home=home, limit=2 * GiB)
    line = result.stderr.strip()
    assert result.returncode == 1 and "\n" not in line and message in line, result.stderr[-800:]
    assert "MemoryError" not in line and seconds < 20


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(["num_layers", "hidden_size", "head_hidden", "input_size", "num_classes", "sequence_length"]),
       value=st.one_of(st.integers(max_value=-1), st.integers(min_value=10_001, max_value=10**30), st.booleans(),
                       st.floats(allow_nan=True), st.text(max_size=5), st.none()))
def test_any_out_of_bounds_lstm_argument_is_refused_naming_it(pristine, tmp_path_factory, key, value):
    home = tmp_path_factory.mktemp("prop") / "home"
    shutil.copytree(pristine / "models", home / "models")
    edit_architecture(home, "dl_lstm", **{key: value})
    # a non-finite float is written as Infinity or NaN, which the manifest's JSON reader refuses first
    refused = f"architecture in the manifest is refused: {key} must be an integer|manifest is refused: -?(Infinity|NaN) is not JSON data"
    with pytest.raises(ArtifactError, match=refused):
        ModelPersistence(home / "models").load(manager().strategy("dl_lstm"), SYMBOL, TF)


def test_training_refuses_an_architecture_it_could_not_load(tmp_path):
    from trader.errors import ConfigError

    plugins = manager()
    data = synthetic_candles(SYMBOL, TF, bars=600, seed=4)
    with pytest.raises(ConfigError, match="num_layers must be an integer from 1 to 16, got 17"):
        train(plugins.strategy("dl_lstm"), data, epochs=1, num_layers=17)


def test_a_header_declaring_more_bytes_than_the_file_holds_is_refused(home):
    from trader.models import sha256_file

    directory = home / "models" / "dl_lstm" / KEY / "v1"
    weights = directory / "weights.safetensors"
    raw = weights.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    header["lstm.weight_ih_l0"]["shape"] = [10**9, 86]  # 344 GB declared; the byte range still says a few KB
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + length:])
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][0]["sha256"] = sha256_file(weights)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="tensor 'lstm.weight_ih_l0' has an invalid header entry"):
        ModelPersistence(home / "models").load(manager().strategy("dl_lstm"), SYMBOL, TF)
