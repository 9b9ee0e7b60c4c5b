"""The ``manifest.json`` written beside every model version, and its checks.

A manifest is plain JSON: it records what a model was trained on and how (plugin
and its version, architecture, ordered feature names and windows, scaler
parameters, label definition, training data range and content hash, metrics,
seed, library versions, creation time) and the sha256 of every file of the
version. It never holds code.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trader.errors import ArtifactError
from trader.models.bounded import loads_bounded, read_plain_file

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_SCHEMA_VERSION",
    "MAX_MANIFEST_BYTES",
    "sha256_file",
    "check_file_name",
    "read_json_artifact",
    "read_manifest",
    "validate_manifest",
    "library_versions",
]

MANIFEST_NAME = "manifest.json"
#: Bumped whenever a field changes meaning; loading refuses other versions.
MANIFEST_SCHEMA_VERSION = 1
#: Most markets a pooled model's manifest may name.
MAX_MARKETS = 1000
#: A manifest is a few kilobytes; anything much larger is not one of ours.
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

#: ASCII letters, digits, ``.``, ``_``, ``-``; matched in full (``$`` would let a trailing newline through).
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)

#: Top-level keys every manifest must have, with their JSON types.
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "schema_version": int,
    "plugin": dict,
    "version": str,
    "created_at": str,
    "symbol": str,
    "timeframe": str,
    "architecture": dict,
    "features": dict,
    "label": dict,
    "data": dict,
    "metrics": dict,
    "seed": int,
    "libraries": dict,
    "files": list,
}


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def check_file_name(name: Any, where: str = "") -> str:
    """A model file name must be a plain name inside the version folder (no paths, no ``..``)."""
    if not isinstance(name, str) or not _FILE_NAME.fullmatch(name) or name == MANIFEST_NAME:
        raise ArtifactError(f"{where}invalid model file name {name!r} (plain names only, no folders, not {MANIFEST_NAME})")
    return name


def library_versions(names: Iterable[str] = ("torch", "numpy", "scikit-learn", "safetensors", "skops")) -> dict[str, str]:
    """Installed versions of the libraries a model may depend on (read from metadata, nothing imported)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return found


def read_json_artifact(path: Path, max_bytes: int, what: str, missing: str) -> dict[str, Any]:
    """Parse a JSON object from a model artifact, refusing a missing, oversized or malformed file.

    The file is read once (never through a link) and parsed within the bounds of
    :func:`trader.models.bounded.loads_bounded` (depth, integer digits, no NaN). Every
    message starts with the path and ``what`` (e.g. ``"manifest"``); ``missing`` says
    what a missing file means. Raises :class:`ArtifactError`.
    """
    data = loads_bounded(read_plain_file(path, max_bytes, what, missing), path, what)
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: {what} must be a JSON object")
    return data


def read_manifest(directory: Path) -> dict[str, Any]:
    """Parse ``directory/manifest.json``; :class:`ArtifactError` naming the file when it is unusable."""
    return read_json_artifact(
        directory / MANIFEST_NAME, MAX_MANIFEST_BYTES, "manifest", "this model version is incomplete"
    )


def validate_manifest(manifest: Mapping[str, Any], where: str = "") -> None:
    """Check the schema version and the presence and types of every required field."""
    prefix = f"{where}: " if where else ""
    schema = manifest.get("schema_version")
    if schema != MANIFEST_SCHEMA_VERSION:
        raise ArtifactError(
            f"{prefix}manifest schema version {schema!r} is not supported "
            f"(this trader reads version {MANIFEST_SCHEMA_VERSION}); retrain the model with this version"
        )
    for key, kind in REQUIRED_FIELDS.items():
        if key not in manifest:
            raise ArtifactError(f"{prefix}manifest lacks the field {key!r}")
        value = manifest[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ArtifactError(f"{prefix}manifest field {key!r} has the wrong type ({type(value).__name__})")
    plugin = manifest["plugin"]
    if not isinstance(plugin.get("name"), str) or not isinstance(plugin.get("version"), str):
        raise ArtifactError(f"{prefix}manifest field 'plugin' must hold a name and a version")
    names = manifest["features"].get("names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ArtifactError(f"{prefix}manifest field 'features.names' must be a list of names")
    markets = manifest.get("markets")  # pooled models only
    if markets is not None and (not isinstance(markets, list) or not markets or len(markets) > MAX_MARKETS
                                or not all(isinstance(m, str) and m.isprintable() for m in markets)):
        raise ArtifactError(f"{prefix}manifest field 'markets' must be a list of at most {MAX_MARKETS} market symbols")
    if not manifest["files"]:
        raise ArtifactError(f"{prefix}manifest lists no model files")
    seen: set[str] = set()
    for entry in manifest["files"]:
        if not isinstance(entry, dict):
            raise ArtifactError(f"{prefix}manifest 'files' entries must be objects with name and sha256")
        name = check_file_name(entry.get("name"), prefix)
        digest = entry.get("sha256")
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ArtifactError(f"{prefix}manifest gives no valid sha256 for {name!r}")
        if name in seen:
            raise ArtifactError(f"{prefix}manifest lists {name!r} twice")
        seen.add(name)
