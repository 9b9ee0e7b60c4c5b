"""Crafted, re-signed ensemble files: refused before a tree predicts or a member is inflated.

Each file is a real skops archive of the trained ensemble with one tree's node arrays changed
(or one member inflated to 4 GiB), and its sha256 updated in the manifest as an attacker would.
Commands run in subprocesses: a segfault shows as a negative return code, not a dead pytest.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from ensemble_helpers import candles, ensemble_strategy, train_request
from limited_runner import GiB, run_limited, tree_digest

from trader.errors import ArtifactError
from trader.models import ModelPersistence, candles_hash, candles_range, sha256_file
from trader_ensemble.persistence import MODEL_FILE, TRUSTED_TYPES
from trader_ensemble.trees import iter_trees

SYMBOL, TF, KEY = "SYN/USDT", "1h", "SYN-USDT_1h"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A home holding one trained ensemble and the synthetic candles it trades on."""
    home = tmp_path_factory.mktemp("pristine") / "home"
    data = candles(bars=1500, seed=5)
    strategy = ensemble_strategy()
    ModelPersistence(home / "models").save(
        strategy, strategy.train(train_request(data)), symbol=SYMBOL, timeframe=TF,
        data_range=candles_range(data), data_hash=candles_hash(data), seed=0,
    )
    return home


@pytest.fixture
def home(tmp_path, pristine) -> Path:
    shutil.copytree(pristine, tmp_path / "home")
    return tmp_path / "home"


def version_dir(home: Path) -> Path:
    return home / "models" / "ensemble" / KEY / "v1"


def resign(directory: Path, name: str = MODEL_FILE) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["sha256"] = sha256_file(directory / name)
            entry["bytes"] = (directory / name).stat().st_size
    (directory / "manifest.json").write_text(json.dumps(manifest))


def craft(home: Path, kind: str, mutate) -> None:
    """Change the first tree of ``kind`` (``"Tree"`` or ``"TreePredictor"``) in place, dump, re-sign."""
    import skops.io as sio

    path = version_dir(home) / MODEL_FILE
    estimator = sio.load(path, trusted=sorted(TRUSTED_TYPES))
    tree = next(t for _, t, _ in iter_trees(estimator) if type(t).__name__ == kind)
    if kind == "Tree":
        nodes, values = tree.__getstate__()["nodes"], tree.__getstate__()["values"]  # views of the tree's memory
        mutate(nodes, values)
    else:
        mutate(tree.nodes, None)
    sio.dump(estimator, path, compression=zipfile.ZIP_DEFLATED)
    resign(version_dir(home))


def first_split(left: np.ndarray) -> int:
    return int(np.flatnonzero(left != -1)[0]) if (left == -1).any() else 0


def _set(field: str, value, node: str = "split"):
    def mutate(nodes, values):
        leaf = (nodes["left_child"] == -1) if "left_child" in nodes.dtype.names else nodes["is_leaf"] != 0
        i = int(np.flatnonzero(~leaf if node == "split" else leaf)[0])
        if field == "values":
            values[i, 0, 0] = value
        else:
            nodes[field][i] = value
    return mutate


SKLEARN_CASES = {
    "left child out of range": (_set("left_child", 10**9), "has left child 1000000000 outside 1.."),
    "right child out of range": (_set("right_child", -7), "has right child -7 outside 1.."),
    "feature past the inputs": (_set("feature", 10**6), "splits on feature 1000000, the model has"),
    "negative feature": (_set("feature", -3), "splits on feature -3"),
    "child pointing at the root": (_set("left_child", 0), "has left child 0 outside 1.."),
    "NaN threshold": (_set("threshold", float("nan")), "has threshold nan"),
    "NaN leaf value": (_set("values", float("nan"), "leaf"), "holds a NaN or infinite value"),
    "leaf with a right child": (_set("right_child", 1, "leaf"), "a leaf has none"),
}


def _cycle(nodes, values):
    """The second split node's left child points back at the first split node: a cycle."""
    split = np.flatnonzero(nodes["left_child"] != -1)
    nodes["left_child"][split[1]] = split[0] if split[0] != 0 else split[1]


def _shared(nodes, values):
    """Both children of the root are the same node."""
    nodes["right_child"][0] = nodes["left_child"][0]


SKLEARN_CASES["cycle"] = (_cycle, "twice from the root")
SKLEARN_CASES["shared child"] = (_shared, "twice from the root")

HGB_CASES = {
    "left child out of range": (_set("left", 4_000_000_000), "has left child 4000000000 outside 1.."),
    "feature past the inputs": (_set("feature_idx", 10**6), "splits on feature 1000000"),
    "categorical split": (_set("is_categorical", 1), "is a categorical split"),
    "NaN leaf value": (_set("value", float("nan"), "leaf"), "has value nan"),
    "NaN threshold": (_set("num_threshold", float("nan")), "has threshold nan"),
}


@pytest.mark.parametrize(("kind", "case"), [("Tree", c) for c in SKLEARN_CASES] + [("TreePredictor", c) for c in HGB_CASES])
def test_a_crafted_tree_is_refused_at_load_naming_the_tree(home, kind, case):
    mutate, message = (SKLEARN_CASES if kind == "Tree" else HGB_CASES)[case]
    craft(home, kind, mutate)
    before = tree_digest(home / "models")
    with pytest.raises(ArtifactError) as refused:
        ModelPersistence(home / "models").load(ensemble_strategy(), SYMBOL, TF)
    text = str(refused.value)
    assert text.startswith(f"{version_dir(home) / MODEL_FILE}: refusing to load it: tree estimator.")
    assert message in text and "\n" not in text
    assert ("_predictors[" in text) == (kind == "TreePredictor") and (".tree_: node" in text or ".tree_: leaf" in text or ".tree_: the tree" in text) == (kind == "Tree")
    assert tree_digest(home / "models") == before


@pytest.mark.slow
def test_the_out_of_range_child_that_segfaults_scikit_learn_is_one_line_from_verify_and_backtest(home):
    craft(home, "Tree", SKLEARN_CASES["left child out of range"][0])
    before = tree_digest(home / "models")
    # the control: with the checks bypassed, scikit-learn walks off the node array (signal 11)
    control = subprocess.run([sys.executable, "-c", (
        "import sys, numpy as np, skops.io as sio\n"
        "from trader_ensemble.persistence import TRUSTED_TYPES\n"
        "est = sio.load(sys.argv[1], trusted=sorted(TRUSTED_TYPES))\n"
        "est.predict_proba(np.zeros((4, est.n_features_in_)))\n"
    ), str(version_dir(home) / MODEL_FILE)], capture_output=True, text=True, timeout=120)
    assert control.returncode == -11, control.stderr[-500:]

    for args, limit in ((("models", "verify"), 2 * GiB), (("backtest",), 3 * GiB)):
        result, _ = run_limited(*args, "--plugin", "ensemble", "--symbol", SYMBOL, home=home, limit=limit)
        assert result.returncode == 1, (args, result.returncode, result.stderr[-800:])
        line = result.stderr.strip()
        assert "\n" not in line and "refusing to load it: tree estimator." in line and "left child 1000000000" in line
    assert tree_digest(home / "models") == before


class _RepeatingDeflate:
    """Stands in for zipfile's compressor: 1 MiB of zeros becomes one precomputed, fully flushed block
    (a flush resets the dictionary, so repeated blocks form a valid stream); other data is compressed."""

    CHUNK = bytes(1 << 20)

    def __init__(self) -> None:
        packer = zlib.compressobj(6, zlib.DEFLATED, -15)
        self.block = packer.compress(self.CHUNK) + packer.flush(zlib.Z_FULL_FLUSH)
        self.final = packer.flush()
        self.other = zlib.compressobj(6, zlib.DEFLATED, -15)

    def compress(self, data: bytes) -> bytes:
        return self.block if data == self.CHUNK else self.other.compress(data) + self.other.flush(zlib.Z_FULL_FLUSH)

    def flush(self) -> bytes:
        return self.final


def inflate_member(path: Path, size: int) -> str:
    """Replace the archive's largest array member by a ``size``-byte ``.npy`` of zeros (a few MB compressed;
    crafting costs a CRC pass over the zeros, not a 4 GiB compression)."""
    source = zipfile.ZipFile(path)
    infos = source.infolist()
    big = max((i for i in infos if i.filename.endswith(".npy")), key=lambda i: i.file_size)
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': ({size // 8},), }}"
    header += " " * (117 - len(header)) + "\n"
    out = path.with_suffix(".crafted")
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in infos:
            if info.filename != big.filename:
                target.writestr(info, source.read(info.filename))
                continue
            with target.open(info.filename, "w", force_zip64=True) as member:
                member._compressor = _RepeatingDeflate()
                member.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode())
                for _ in range(size >> 20):
                    member.write(_RepeatingDeflate.CHUNK)
    out.replace(path)
    return big.filename


@pytest.mark.slow
def test_a_small_archive_holding_a_4_gib_member_is_refused_before_it_is_inflated(home):
    path = version_dir(home) / MODEL_FILE
    member = inflate_member(path, 4 * GiB)
    resign(version_dir(home))
    assert path.stat().st_size < 16 << 20
    before = tree_digest(home / "models")
    result, seconds = run_limited("models", "verify", "--plugin", "ensemble", "--symbol", SYMBOL, home=home, limit=2 * GiB)
    line = result.stderr.strip()
    assert result.returncode == 1 and "\n" not in line, result.stderr[-800:]
    assert f"member {member!r} declares {4 * GiB + 128} bytes uncompressed" in line and "TRADER_MAX_ARTIFACT_BYTES" in line
    assert seconds < 30
    assert tree_digest(home / "models") == before


@pytest.mark.slow
def test_the_archive_limit_can_be_lowered_and_raised(home):
    limited = run_trader("models", "verify", "--plugin", "ensemble", "--symbol", SYMBOL, home=home,
                         env={"TRADER_MAX_ARTIFACT_BYTES": "100000"})
    assert limited.returncode == 1 and "more than the 100000-byte limit (TRADER_MAX_ARTIFACT_BYTES)" in limited.stderr
    bad = run_trader("models", "verify", "--plugin", "ensemble", "--symbol", SYMBOL, home=home,
                     env={"TRADER_MAX_ARTIFACT_BYTES": "lots"})
    assert bad.returncode == 1 and "TRADER_MAX_ARTIFACT_BYTES='lots' is not a byte count" in bad.stderr.strip()
    ok = run_trader("models", "verify", "--plugin", "ensemble", "--symbol", SYMBOL, home=home,
                    env={"TRADER_MAX_ARTIFACT_BYTES": str(2 * GiB)})
    assert ok.returncode == 0 and ok.stdout.startswith("ok: ensemble v1")


def _objects(root):
    """Every object with a ``__dict__`` under ``root`` (lists and dicts followed), each once."""
    stack, seen = [root], set()
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, (list, tuple)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("sklearn"):
            yield obj
            stack.extend(vars(obj).values())


@pytest.mark.parametrize(("attribute", "value", "message"), [
    ("n_classes_", 1000, "n_classes_ is 1000 (at most 64 allowed)"),
    ("n_trees_per_iteration_", 10**6, "n_trees_per_iteration_ is 1000000 (at most 64 allowed)"),
    ("is_categorical_", "categorical", "has categorical features, which a trader ensemble never has"),
])
def test_crafted_estimator_counts_and_categorical_features_are_refused(home, attribute, value, message):
    import skops.io as sio

    path = version_dir(home) / MODEL_FILE
    estimator = sio.load(path, trusted=sorted(TRUSTED_TYPES))
    objects = [o for o in _objects(estimator) if attribute in vars(o) or (attribute == "is_categorical_" and "_bin_mapper" in vars(o))]
    setattr(objects[0], attribute, np.ones(3, dtype=bool) if value == "categorical" else value)
    sio.dump(estimator, path, compression=zipfile.ZIP_DEFLATED)
    resign(version_dir(home))
    with pytest.raises(ArtifactError, match=f"refusing to load it: estimator.*{re.escape(message)}"):
        ModelPersistence(home / "models").load(ensemble_strategy(), SYMBOL, TF)
