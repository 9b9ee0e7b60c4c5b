"""The models folder against crafted names, links and JSON: refused, named, one line, nothing changed.

Versions are written by hand here (a manifest and one file): listing, choosing the latest and
the checks before any plugin code need nothing else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
from cli_runner import run_trader
from hypothesis import example, given, settings
from hypothesis import strategies as st
from limited_runner import tree_digest

from trader.errors import ArtifactError, ModelError
from trader.models import ModelPersistence, parse_version, read_json_artifact
from trader.models.bounded import MAX_INT_DIGITS, MAX_JSON_DEPTH
from trader.models.manifest import check_file_name

PLUGIN, SYMBOL, TF, KEY = "ensemble", "SYN/USDT", "1h", "SYN-USDT_1h"


def write_version(models: Path, name: str, *, manifest_text: str | None = None, plugin: str = PLUGIN) -> Path:
    """A version folder ``models/PLUGIN/SYN-USDT_1h/NAME`` with a valid manifest (unless one is given)."""
    directory = models / plugin / KEY / name
    directory.mkdir(parents=True)
    (directory / "weights.json").write_text("[1.0]\n")
    manifest = {
        "schema_version": 1, "plugin": {"name": plugin, "version": "0.1.0"}, "version": name,
        "created_at": "2024-01-01T00:00:00Z", "symbol": SYMBOL, "timeframe": TF, "architecture": {},
        "features": {"names": []}, "label": {}, "data": {}, "metrics": {}, "seed": 0, "libraries": {},
        "files": [{"name": "weights.json", "sha256": hashlib.sha256(b"[1.0]\n").hexdigest()}],
    }
    (directory / "manifest.json").write_text(manifest_text if manifest_text is not None else json.dumps(manifest))
    return directory


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    write_version(home / "models", "v1")
    return home


def _one_line(result) -> str:
    text = (result.stdout + result.stderr).strip()
    assert "\n" not in text and "Traceback" not in text and "Internal error" not in text, text
    return text


# ---------------------------------------------------------------------- names


_CANONICAL = re.compile(r"v[1-9][0-9]{0,8}", re.ASCII)
_names = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=12)


@settings(max_examples=60)
@given(name=_names)
@example("v\u0663")
@example("v1\n")
@example("v01")
@example("v0")
@example(" v2")
@example("v2 ")
@example("V2")
@example("v\uff12")
def test_only_ascii_v_number_folders_are_versions_others_are_listed_as_refused(tmp_path_factory, name):
    models = tmp_path_factory.mktemp("names") / "models"
    write_version(models, "v1")
    if name in (".", "..") or name.startswith(".") or len(name.encode()) > 200:
        return  # not a folder name (or a hidden one, skipped like a save in progress)
    if name == "v1":
        return
    write_version(models, name)
    store = ModelPersistence(models)
    listed = {v.directory.name: v for v in store.list()}
    canonical = _CANONICAL.fullmatch(name) is not None
    assert (listed[name].problem is None) == canonical
    latest = store.latest(PLUGIN, SYMBOL, TF)
    assert latest.directory.name == (name if canonical and parse_version(name) > 1 else "v1")
    if not canonical:
        assert "is not a version folder name" in listed[name].problem and "\n" not in listed[name].problem


def test_a_version_folder_with_a_unicode_digit_or_a_newline_never_becomes_latest(home):
    for name in ("v\u0663", "v9\n"):
        write_version(home / "models", name)
    before = tree_digest(home / "models")
    result = run_trader("models", "list", home=home)
    assert result.returncode == 0, result.stderr
    rows = result.stdout.splitlines()
    assert any(" v1 " in row and "REFUSED" not in row for row in rows)
    assert any("REFUSED" in row and "\\u0663" in row for row in rows)
    assert any("REFUSED" in row and "v9\\n" in row for row in rows)
    assert ModelPersistence(home / "models").latest(PLUGIN, SYMBOL, TF).version == "v1"
    assert tree_digest(home / "models") == before


@given(name=st.text(min_size=1, max_size=20))
@example("weights.json\n")
@example("../x")
@example("w\u0663.json")
@example("manifest.json")
@example(".hidden")
def test_manifest_file_names_are_ascii_plain_names_matched_in_full(name):
    plain = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", name, re.ASCII) is not None and name != "manifest.json"
    if plain:
        assert check_file_name(name) == name
    else:
        with pytest.raises(ArtifactError, match="invalid model file name"):
            check_file_name(name)


def test_a_manifest_listing_a_file_name_with_a_newline_is_refused(home):
    directory = home / "models" / PLUGIN / KEY / "v1"
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"][0]["name"] = "weights.json\n"
    (directory / "manifest.json").write_text(json.dumps(manifest))
    listed = ModelPersistence(home / "models").list()
    assert len(listed) == 1 and "invalid model file name 'weights.json\\n'" in listed[0].problem


@pytest.mark.parametrize("level", ["version", "key", "plugin", "manifest"])
def test_links_inside_the_models_folder_are_refused_and_named(tmp_path, level):
    outside = tmp_path / "outside"
    source = write_version(outside / "models", "v1")
    home = tmp_path / "home"
    models = home / "models"
    if level == "version":
        write_version(models, "v1")
        (models / PLUGIN / KEY / "v2").symlink_to(source, target_is_directory=True)
    elif level == "key":
        (models / PLUGIN).mkdir(parents=True)
        (models / PLUGIN / KEY).symlink_to(source.parent, target_is_directory=True)
    elif level == "plugin":
        models.mkdir(parents=True)
        (models / PLUGIN).symlink_to(source.parent.parent, target_is_directory=True)
    else:
        directory = write_version(models, "v1")
        (directory / "manifest.json").unlink()
        (directory / "manifest.json").symlink_to(source / "manifest.json")
    before = tree_digest(home / "models")
    store = ModelPersistence(models)
    refused = [v for v in store.list() if v.problem]
    assert len(refused) == 1
    assert "symbolic link" in refused[0].problem
    latest = store.latest(PLUGIN, SYMBOL, TF)
    assert latest is None if level != "version" else latest.version == "v1"
    listed = run_trader("models", "list", home=home)
    assert listed.returncode == 0 and "REFUSED" in listed.stdout and "symbolic link" in listed.stdout
    pinned = run_trader("models", "verify", "--plugin", PLUGIN, "--symbol", SYMBOL, "--model-version",
                        "v2" if level == "version" else "v1", home=home)
    assert pinned.returncode != 0 and "symbolic link" in _one_line(pinned)
    assert tree_digest(home / "models") == before


# ---------------------------------------------------------------------- JSON


CRAFTED_JSON = {
    "deep nesting": ("[" * 100_000 + "]" * 100_000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
    "nesting past the depth limit": ('{"a": ' + "[" * (MAX_JSON_DEPTH + 5) + "]" * (MAX_JSON_DEPTH + 5) + "}",
                                     f"nested deeper than {MAX_JSON_DEPTH} levels"),
    "huge integer": ('{"seed": ' + "9" * 100_000 + "}", f"at most {MAX_INT_DIGITS}"),
    "NaN": ('{"seed": NaN}', "NaN is not JSON data"),
    "overflowing float": ('{"seed": 1e999}', "out of range"),
    "lone surrogate": ('{"symbol": "\\ud800"}', "unpaired surrogate"),
    "not UTF-8": (b'{"symbol": "\xff"}', "not valid JSON"),
    "truncated": ('{"schema_version": 1', "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED_JSON))
def test_crafted_json_is_an_artifact_error_naming_the_file(tmp_path, case):
    text, message = CRAFTED_JSON[case]
    path = tmp_path / "manifest.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ArtifactError) as refused:
        read_json_artifact(path, 16 << 20, "manifest", "incomplete")
    assert str(refused.value).startswith(f"{path}: ") and message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_json_file_is_read_once_and_never_through_a_fifo_or_past_its_limit(tmp_path):
    fifo = tmp_path / "manifest.json"
    os.mkfifo(fifo)
    with pytest.raises(ArtifactError, match="not a plain file"):
        read_json_artifact(fifo, 1 << 20, "manifest", "incomplete")
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 1000 + "0]")
    with pytest.raises(ArtifactError, match="larger than any trader manifest"):
        read_json_artifact(big, 100, "manifest", "incomplete")


@pytest.mark.parametrize("case", ["deep nesting", "huge integer", "not UTF-8"])
def test_one_bad_version_is_listed_as_refused_and_skipped_while_the_others_still_work(home, case):
    text, message = CRAFTED_JSON[case]
    bad = write_version(home / "models", "v2", manifest_text="")
    (bad / "manifest.json").write_bytes(text if isinstance(text, bytes) else text.encode())
    write_version(home / "models", "v1", plugin="dl_lstm")  # another strategy's model
    before = tree_digest(home / "models")

    listed = run_trader("models", "list", home=home)
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()[1:]
    assert [row.split()[0] for row in rows] == ["dl_lstm", PLUGIN, PLUGIN]
    assert "REFUSED" not in rows[0] + rows[1] and "REFUSED" in rows[2] and message in rows[2]
    assert ModelPersistence(home / "models").latest(PLUGIN, SYMBOL, TF).version == "v1"
    shown = run_trader("models", "show", "--plugin", PLUGIN, "--symbol", SYMBOL, home=home)
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == "v1"
    pinned = run_trader("models", "verify", "--plugin", PLUGIN, "--symbol", SYMBOL, "--model-version", "v2", home=home)
    assert pinned.returncode == 1 and message in _one_line(pinned) and str(bad / "manifest.json") in pinned.stderr
    assert tree_digest(home / "models") == before


# ---------------------------------------------------------------------- the world


def test_an_unwritable_models_folder_is_one_line_before_training_starts(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").write_text("a file where the models folder should be\n")
    result = run_trader("train", "--plugin", "ensemble", "--symbol", SYMBOL, "--synthetic-bars", "500", home=home)
    line = _one_line(result)
    assert result.returncode == 1 and "cannot write the model to" in line and "make the models folder writable" in line
    assert "training" not in result.stderr.lower().replace("cannot write", "")  # refused before training began
    with pytest.raises(ModelError, match="cannot write the model"):
        ModelPersistence(home / "models").check_writable(PLUGIN, SYMBOL, TF)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_a_read_only_models_folder_is_one_line(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    models.chmod(0o555)
    try:
        with pytest.raises(ModelError, match="cannot write the model .*Permission denied"):
            ModelPersistence(models).check_writable(PLUGIN, SYMBOL, TF)
    finally:
        models.chmod(0o755)


def test_a_model_file_that_cannot_be_read_is_one_line(home):
    directory = home / "models" / PLUGIN / KEY / "v1"
    (directory / "weights.json").unlink()
    (directory / "weights.json").mkdir()  # a folder where a file belongs: reading it fails with an OSError
    with pytest.raises(ArtifactError, match="weights.json: model file is missing .or not a plain file."):
        ModelPersistence(home / "models").verify(directory)
    result = run_trader("models", "verify", "--plugin", PLUGIN, "--symbol", SYMBOL, home=home)
    assert result.returncode == 1 and "weights.json" in _one_line(result)


def test_a_symbol_too_long_for_a_folder_name_is_one_line(tmp_path):
    with pytest.raises(ModelError, match="cannot name a model folder"):
        ModelPersistence(tmp_path).model_dir(PLUGIN, "A" * 300 + "/USDT", TF)
