"""ModelPersistence with a small in-process strategy: versions, manifest, and every refusal."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from trader import StrategyInfo, TrainResult, hookimpl
from trader.errors import ArtifactError, ModelNotFoundError, PluginError
from trader.models import MANIFEST_SCHEMA_VERSION, ModelPersistence, sha256_file
from trader.plugins import TraderPluginManager


class JsonWeightsStrategy:
    """A strategy whose 'model' is a list of numbers stored as JSON."""

    def __init__(self, name: str = "fake_model", write=None) -> None:
        self.name = name
        self.loaded_from: list[Path] = []
        self.write = write

    @hookimpl
    def trader_strategy_info(self):
        return StrategyInfo(name=self.name, version="1.2.3", requires_model=True, feature_windows=(5, 10))

    @hookimpl
    def trader_save_model(self, model, directory):
        if self.write is not None:
            return self.write(model, directory)
        (directory / "weights.json").write_text(json.dumps(model))
        return ["weights.json"]

    @hookimpl
    def trader_load_model(self, directory, manifest):
        self.loaded_from.append(directory)
        return json.loads((directory / "weights.json").read_text())


def _strategy(plugin):
    pm = TraderPluginManager(load_entrypoints=False, disabled=())
    pm.register(plugin, plugin.name)
    return pm.strategy(plugin.name)


def _result(weights=(1.0, 2.0, 3.0)) -> TrainResult:
    return TrainResult(
        model=list(weights),
        metrics={"test": {"model": {"accuracy": 0.6}, "baseline": {"accuracy": 0.5}}},
        architecture={"class": "Toy", "input_size": 2},
        feature_names=("ret_5", "ret_10"),
        scaler={"kind": "zscore", "center": [0.0, 0.0], "scale": [1.0, 1.0]},
        label={"kind": "direction", "horizon": 1},
        history={"epoch": [1, 2], "val_loss": [0.7, 0.69]},
    )


def _save(store: ModelPersistence, strategy, weights=(1.0, 2.0, 3.0), **kw):
    return store.save(
        strategy, _result(weights), symbol="BTC/USDT", timeframe="1h",
        data_range={"start": 0, "end": 3_600_000, "rows": 2}, data_hash="sha256:" + "ab" * 32, seed=7, **kw,
    )


@pytest.fixture
def plugin():
    return JsonWeightsStrategy()


@pytest.fixture
def strategy(plugin):
    return _strategy(plugin)


@pytest.fixture
def store(tmp_path):
    return ModelPersistence(tmp_path / "models")


def test_save_writes_a_version_folder_with_a_complete_manifest(store, strategy, tmp_path):
    version = _save(store, strategy)
    assert version.version == "v1"
    assert version.directory == tmp_path / "models" / "fake_model" / "BTC-USDT_1h" / "v1"
    manifest = json.loads((version.directory / "manifest.json").read_text())
    assert manifest["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert manifest["plugin"] == {"name": "fake_model", "version": "1.2.3", "distribution": "<in-process>"}
    assert manifest["version"] == "v1"
    assert manifest["symbol"] == "BTC/USDT" and manifest["timeframe"] == "1h"
    assert manifest["architecture"] == {"class": "Toy", "input_size": 2}
    assert manifest["features"] == {"names": ["ret_5", "ret_10"], "count": 2, "windows": [5, 10]}
    assert manifest["scaler"]["kind"] == "zscore"
    assert manifest["label"] == {"kind": "direction", "horizon": 1}
    assert manifest["data"] == {"range": {"start": 0, "end": 3_600_000, "rows": 2}, "sha256": "sha256:" + "ab" * 32}
    assert manifest["metrics"]["test"]["model"]["accuracy"] == 0.6
    assert manifest["seed"] == 7
    assert manifest["torch_version"] and manifest["libraries"]["numpy"]
    assert manifest["created_at"].endswith("Z")
    [entry] = manifest["files"]
    assert entry["name"] == "weights.json"
    assert entry["sha256"] == sha256_file(version.directory / "weights.json")
    # nothing but the version is left behind (no temporary folders)
    assert [p.name for p in version.directory.parent.iterdir()] == ["v1"]


def test_versions_are_kept_side_by_side_and_latest_loads_by_default(store, strategy):
    _save(store, strategy, (1.0,))
    _save(store, strategy, (2.0,))
    assert [v.version for v in store.list(strategy)] == ["v1", "v2"]
    latest = store.load(strategy, "BTC/USDT", "1h")
    assert latest.version == "v2" and latest.model == [2.0]
    pinned = store.load(strategy, "BTC/USDT", "1h", version="v1")
    assert pinned.model == [1.0] and pinned.manifest["version"] == "v1"
    assert store.load(strategy, "BTC/USDT", "1h", version=1).model == [1.0]


def test_missing_model_gives_none_and_a_missing_pinned_version_names_those_that_exist(store, strategy):
    assert store.load(strategy, "BTC/USDT", "1h") is None
    assert store.list() == []
    _save(store, strategy)
    assert store.load(strategy, "ETH/USDT", "1h") is None
    with pytest.raises(ModelNotFoundError, match=r"no model version v5 .* \(available: v1\)"):
        store.load(strategy, "BTC/USDT", "1h", version="v5")


def test_list_covers_every_plugin_and_reports_unusable_manifests(store, strategy, tmp_path):
    _save(store, strategy)
    other = _strategy(JsonWeightsStrategy("other_model"))
    _save(store, other)
    listed = store.list()
    assert [(v.plugin, v.symbol, v.timeframe, v.version) for v in listed] == [
        ("fake_model", "BTC/USDT", "1h", "v1"),
        ("other_model", "BTC/USDT", "1h", "v1"),
    ]
    assert listed[0].metrics["test"]["model"]["accuracy"] == 0.6
    manifest = listed[1].directory / "manifest.json"
    manifest.write_text("{not json")
    broken = store.list("other_model")[0]
    assert broken.problem and "not valid JSON" in broken.problem


def test_tampered_weights_are_refused_before_the_plugin_reads_them(store, strategy, plugin):
    version = _save(store, strategy)
    (version.directory / "weights.json").write_text(json.dumps([1.0, 2.0, 3.5]))
    with pytest.raises(ArtifactError, match=r"weights.json: sha256 .* does not match the manifest"):
        store.load(strategy, "BTC/USDT", "1h")
    assert plugin.loaded_from == []


def _retarget_hash(directory: Path, name: str) -> None:
    """What an attacker who can replace a file can also do: fix the manifest's hash."""
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["sha256"] = sha256_file(directory / name)
    path.write_text(json.dumps(manifest))


class WritesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "payload ran"))


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_pickle_in_place_of_the_weights_is_refused_and_never_runs(store, strategy, plugin, tmp_path, protocol):
    marker = tmp_path / "pwned"
    version = _save(store, strategy)
    (version.directory / "weights.json").write_bytes(pickle.dumps(WritesMarker(str(marker)), protocol=protocol))
    _retarget_hash(version.directory, "weights.json")
    with pytest.raises(ArtifactError, match="is a pickle, which would run code when loaded"):
        store.load(strategy, "BTC/USDT", "1h")
    assert not marker.exists()
    assert plugin.loaded_from == []


def test_a_torch_save_archive_in_place_of_the_weights_is_refused_and_never_runs(store, strategy, plugin, tmp_path):
    marker = tmp_path / "pwned"
    version = _save(store, strategy)
    weights = version.directory / "weights.json"
    import torch

    torch.save({"w": WritesMarker(str(marker))}, weights)  # pickles the payload; nothing runs it
    assert not marker.exists()
    _retarget_hash(version.directory, "weights.json")
    with pytest.raises(ArtifactError, match=r"is a torch.save archive"):
        store.load(strategy, "BTC/USDT", "1h")
    assert not marker.exists()
    assert plugin.loaded_from == []


def test_an_unlisted_file_a_wrong_schema_or_another_plugins_manifest_is_refused(store, strategy, plugin):
    version = _save(store, strategy)
    extra = version.directory / "extra.bin"
    extra.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="unlisted file"):
        store.load(strategy, "BTC/USDT", "1h")
    extra.unlink()

    path = version.directory / "manifest.json"
    original = path.read_text()
    manifest = json.loads(original)
    manifest["schema_version"] = 99
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="schema version 99 is not supported"):
        store.load(strategy, "BTC/USDT", "1h")

    manifest = json.loads(original)
    manifest["plugin"]["name"] = "someone_else"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="manifest is for plugin 'someone_else', not 'fake_model'"):
        store.load(strategy, "BTC/USDT", "1h")

    manifest = json.loads(original)
    manifest["files"][0]["name"] = "../../etc/passwd"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="invalid model file name"):
        store.load(strategy, "BTC/USDT", "1h")
    assert plugin.loaded_from == []

    path.write_text(original)
    assert store.load(strategy, "BTC/USDT", "1h").model == [1.0, 2.0, 3.0]


def test_a_plugin_that_pickles_its_model_cannot_save_it(store, tmp_path):
    def pickles(model, directory):
        (directory / "model.pkl").write_bytes(pickle.dumps(model))
        return ["model.pkl"]

    strategy = _strategy(JsonWeightsStrategy("pickler", write=pickles))
    with pytest.raises(PluginError, match="model.pkl' is a pickle; trader stores weights as data only"):
        _save(store, strategy)
    assert list((tmp_path / "models" / "pickler" / "BTC-USDT_1h").iterdir()) == []


def test_a_failed_save_leaves_no_version_and_no_temporary_folder(store, tmp_path):
    def fails(model, directory):
        (directory / "weights.json").write_text("[1")
        raise RuntimeError("disk full")

    strategy = _strategy(JsonWeightsStrategy("flaky", write=fails))
    with pytest.raises(PluginError, match="disk full"):
        _save(store, strategy)
    assert list((tmp_path / "models" / "flaky" / "BTC-USDT_1h").iterdir()) == []
    assert store.list() == []


def test_a_plugin_that_writes_unreported_files_is_refused(store):
    def sneaky(model, directory):
        (directory / "weights.json").write_text("[1]")
        (directory / "other.bin").write_bytes(b"?")
        return ["weights.json"]

    with pytest.raises(PluginError, match="did not report: other.bin"):
        _save(store, _strategy(JsonWeightsStrategy("sneaky", write=sneaky)))


def test_extra_files_are_hashed_with_the_model(store, strategy):
    version = _save(store, strategy, extra_files={"training_report.png": b"\x89PNG fake"})
    manifest = json.loads((version.directory / "manifest.json").read_text())
    assert [e["name"] for e in manifest["files"]] == ["weights.json", "training_report.png"]
    (version.directory / "training_report.png").write_bytes(b"changed")
    with pytest.raises(ArtifactError, match="training_report.png: sha256"):
        store.load(strategy, "BTC/USDT", "1h")


def test_importing_trader_models_imports_no_heavy_library():
    code = (
        "import sys\nfrom trader.models import ModelPersistence\n"
        "print(','.join(m for m in ('torch', 'pandas', 'sklearn', 'numpy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""


def test_data_whose_first_bytes_look_like_opcodes_is_not_mistaken_for_a_pickle(tmp_path):
    from trader.models import code_format

    cases = {
        # safetensors-like: an 8-byte little-endian header length, then JSON
        "proto_like": (640).to_bytes(8, "little") + b'{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' + b"\0" * 4,
        "stop_first": (302).to_bytes(8, "little") + b"{}",
        "protocol_0_pickle_of_data": pickle.dumps([1.0, 2.0, {"a": (3, "x")}], protocol=0),  # names no code
        "json": b'{"weights": [1, 2, 3]}',
        "empty_tuple_then_stop": b")." + b"\0" * 6,
    }
    for name, payload in cases.items():
        path = tmp_path / name
        path.write_bytes(payload)
        assert code_format(path) is None, name
    big = tmp_path / "big.pkl"
    big.write_bytes(pickle.dumps({"pad": b"x" * 200_000, "run": WritesMarker(str(tmp_path / "m"))}, protocol=4))
    assert code_format(big) == "pickle"  # the payload after 200 kB of padding is still found
    assert not (tmp_path / "m").exists()
