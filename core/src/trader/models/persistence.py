"""Versioned, verified model artifacts: ``MODELS_DIR/NAME/SYMBOL_TF/VERSION/``.

A version folder holds the files the plugin's ``trader_save_model`` wrote and a
``manifest.json`` (see :mod:`trader.models.manifest`). Versions are written to a
temporary folder and renamed into place, so a crash never leaves a half-written
version behind, and they are kept side by side (``v1``, ``v2``, ...).

Loading checks, before any plugin code runs: the manifest's schema version, that
it belongs to the plugin, symbol and timeframe asked for, that every listed file
exists with its recorded sha256, that no unlisted file sits beside them, and that
no file is a pickle or ``torch.save`` archive. Then the plugin's
``trader_load_model`` rebuilds the model and checks architecture and features.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trader.errors import ArtifactError, ModelError, ModelNotFoundError, PluginError, TraderError
from trader.models.formats import code_format
from trader.models.manifest import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    check_file_name,
    library_versions,
    read_manifest,
    sha256_file,
    validate_manifest,
)

if TYPE_CHECKING:
    from trader.strategy import Strategy
    from trader.types import TrainResult

__all__ = ["ModelPersistence", "ModelVersion", "LoadedModel", "model_key", "parse_version", "basket_symbol",
           "BASKET_SEPARATOR"]

log = logging.getLogger("trader.models")

#: Version folder names: ASCII, matched in full (``\d`` would take Unicode digits, ``$`` a trailing newline).
_VERSION = re.compile(r"v([1-9][0-9]{0,8})", re.ASCII)
_NUMBER = re.compile(r"[1-9][0-9]{0,8}", re.ASCII)
_KEY_PART = re.compile(r"[A-Za-z0-9._-]{1,200}", re.ASCII)
#: A pooled model's symbol part may also hold the separator of its markets.
_BASKET_KEY_PART = re.compile(r"[A-Za-z0-9._+-]{1,200}", re.ASCII)
#: Joins the markets of a pooled model into its symbol: ``AAA/USDT+BBB/USDT`` (a market symbol never holds it).
BASKET_SEPARATOR = "+"
_TMP_PREFIX = ".tmp-"
_LINK = "is a symbolic link; trader never follows links inside the models folder"


def basket_symbol(symbols: Any) -> str:
    """The symbol a pooled model is stored under: its markets, sorted, joined by ``+`` (``AAA/USDT+BBB/USDT``)."""
    return BASKET_SEPARATOR.join(sorted({str(s) for s in symbols}))


def model_key(symbol: str, timeframe: str) -> str:
    """Folder name for a symbol and timeframe: ``BTC/USDT`` + ``1h`` -> ``BTC-USDT_1h``; a pooled model's
    ``AAA/USDT+BBB/USDT`` -> ``AAA-USDT+BBB-USDT_1h`` (``basket-<digest>`` when that passes 200 characters)."""
    safe_symbol = symbol.strip().replace("/", "-").replace(":", "-") if isinstance(symbol, str) else ""
    pattern = _KEY_PART
    if BASKET_SEPARATOR in safe_symbol:
        pattern = _BASKET_KEY_PART
        parts = safe_symbol.split(BASKET_SEPARATOR)
        if all(_KEY_PART.fullmatch(p) and not p.startswith(".") for p in parts) and len(safe_symbol) > 200:
            import hashlib

            safe_symbol = f"basket-{len(parts)}-{hashlib.sha256(safe_symbol.encode()).hexdigest()[:16]}"
        elif not all(p and not p.startswith(".") for p in parts):
            safe_symbol = ""
    if not pattern.fullmatch(safe_symbol) or safe_symbol.startswith("."):
        raise ModelError(f"symbol {symbol!r:.80} cannot name a model folder (letters, digits, '/', ':', '.', '-', '_' only)")
    if not isinstance(timeframe, str) or not _KEY_PART.fullmatch(timeframe) or timeframe.startswith("."):
        raise ModelError(f"timeframe {timeframe!r} cannot name a model folder")
    return f"{safe_symbol}_{timeframe}"


def parse_version(version: str | int) -> int:
    """``"v3"``, ``"3"`` or ``3`` -> ``3``; :class:`ModelError` otherwise."""
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        return version
    text = str(version).strip()
    match = _VERSION.fullmatch(text)
    number = match.group(1) if match else text if _NUMBER.fullmatch(text) else None
    if number is None:
        raise ModelError(f"invalid model version {version!r:.40} (expected v1, v2, ... or latest)")
    return int(number)


@attrs.frozen
class ModelVersion:
    """One stored model version, as listed (files not yet verified)."""

    plugin: str
    symbol: str
    timeframe: str
    version: str
    directory: Path
    created_at: str = ""
    plugin_version: str = ""
    metrics: Mapping[str, Any] = attrs.field(factory=dict)
    data: Mapping[str, Any] = attrs.field(factory=dict)
    problem: str | None = None
    #: The markets a pooled model was trained on (sorted); empty for a single market's model.
    markets: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def number(self) -> int:
        """The version number; 0 for a refused entry whose name is not a version."""
        match = _VERSION.fullmatch(self.version)
        return int(match.group(1)) if match else 0

    def as_dict(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["directory"] = str(self.directory)
        return data


@attrs.frozen
class LoadedModel:
    """A verified model: the plugin's model object, its manifest and where it came from."""

    model: Any
    manifest: Mapping[str, Any]
    version: str
    directory: Path


class ModelPersistence:
    """Save, list and load model versions under ``models_dir`` (``TRADER_HOME/models``)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = Path(models_dir)

    # ------------------------------------------------------------------ paths

    def model_dir(self, plugin: str, symbol: str, timeframe: str) -> Path:
        return self.models_dir / plugin / model_key(symbol, timeframe)

    def _entries(self, base: Path) -> tuple[list[tuple[int, Path]], list[tuple[Path, str]]]:
        """The version folders of ``base`` (number, path; oldest first) and the entries refused there.

        Hidden entries (``.tmp-*`` folders of a save in progress) are skipped; anything else that
        is not a real folder named ``vN`` (ASCII, in full, no leading zero) is refused with a reason.
        """
        try:
            for folder in (base, *base.parents):  # no link between the models folder and the versions
                if folder == self.models_dir or self.models_dir not in folder.parents:
                    break
                if folder.is_symlink():
                    return [], [(folder, _LINK)]
            if not base.is_dir():
                return [], []
            children = sorted(base.iterdir())
        except OSError as exc:
            raise ArtifactError(f"{_shown(base)}: cannot list the model versions ({exc.strerror or exc})") from None
        versions: list[tuple[int, Path]] = []
        refused: list[tuple[Path, str]] = []
        for child in children:
            if child.name.startswith("."):
                continue
            match = _VERSION.fullmatch(child.name)
            if child.is_symlink():
                refused.append((child, _LINK))
            elif not match:
                refused.append((child, "is not a version folder name (v1, v2, ...); refused"))
            elif not child.is_dir():
                refused.append((child, "is not a folder; refused"))
            else:
                versions.append((int(match.group(1)), child))
        return sorted(versions), refused

    def _version_dirs(self, base: Path) -> list[tuple[int, Path]]:
        return self._entries(base)[0]

    # ------------------------------------------------------------------ save

    def save(
        self,
        strategy: Strategy,
        train_result: TrainResult,
        *,
        symbol: str,
        timeframe: str,
        data_range: Mapping[str, Any] | tuple[Any, Any],
        data_hash: str,
        seed: int,
        extra_files: Mapping[str, bytes] | None = None,
        extra: Mapping[str, Any] | None = None,
        markets: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> ModelVersion:
        """Write a new version with the plugin's files and a manifest; return it.

        ``extra_files`` (name -> bytes, e.g. a training report PNG) are stored and
        hashed beside the model files; ``extra`` is merged into the manifest's
        ``extra`` field. A pooled model gives ``markets`` (symbol -> its data: rows,
        range, sha256); the manifest then records ``markets`` (the sorted symbols) and
        ``data.markets``, and ``symbol`` must be :func:`basket_symbol` of them.
        """
        if markets is not None and symbol != basket_symbol(markets):
            raise ModelError(f"a pooled model of {', '.join(sorted(markets))} is stored as {basket_symbol(markets)!r}, not {symbol!r}")
        base = self.model_dir(strategy.name, symbol, timeframe)
        tmp = base / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            base.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
        except OSError as exc:
            raise ModelError(_unwritable(base, exc)) from None
        try:
            files = self._write_files(strategy, train_result, tmp, extra_files or {})
            manifest = self._manifest(strategy, train_result, symbol, timeframe, data_range, data_hash, seed, files, extra)
            if markets is not None:
                manifest["markets"] = sorted(markets)
                manifest["data"]["markets"] = _jsonable({s: dict(markets[s]) for s in sorted(markets)})
            final = self._publish(base, tmp, manifest)
        except OSError as exc:  # a full or read-only disk while writing: nothing is published
            shutil.rmtree(tmp, ignore_errors=True)
            raise ModelError(_unwritable(base, exc)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info("saved model %s %s %s %s to %s", strategy.name, symbol, timeframe, final.name, final)
        return self._describe(strategy.name, symbol, timeframe, final, read_manifest(final))

    def check_writable(self, plugin: str, symbol: str, timeframe: str) -> Path:
        """Make sure a version can be written for ``plugin``, ``symbol`` and ``timeframe`` (before a long
        training): creates the folder and a probe file, removes the probe; :class:`ModelError` if it fails."""
        base = self.model_dir(plugin, symbol, timeframe)
        probe = base / f"{_TMP_PREFIX}probe-{uuid.uuid4().hex}"
        try:
            base.mkdir(parents=True, exist_ok=True)
            probe.mkdir()
            (probe / "probe").write_bytes(b"trader")
        except OSError as exc:
            raise ModelError(_unwritable(base, exc)) from None
        finally:
            shutil.rmtree(probe, ignore_errors=True)
        return base

    def _write_files(
        self, strategy: Strategy, train_result: TrainResult, tmp: Path, extra_files: Mapping[str, bytes]
    ) -> list[dict[str, Any]]:
        names = [check_file_name(name, f"plugin {strategy.name!r}: ") for name in strategy.save_model(train_result.model, tmp)]
        for name, payload in extra_files.items():
            check_file_name(name, "extra file: ")
            if name in names:
                raise ModelError(f"extra file {name!r} clashes with a model file of the same name")
            (tmp / name).write_bytes(payload)
            names.append(name)
        on_disk = {p.name for p in tmp.iterdir()}
        missing = [n for n in names if n not in on_disk]
        if missing:
            raise PluginError(f"plugin {strategy.name!r}: trader_save_model reported files it did not write: {', '.join(missing)}")
        unlisted = sorted(on_disk - set(names))
        if unlisted:
            raise PluginError(f"plugin {strategy.name!r}: trader_save_model wrote files it did not report: {', '.join(unlisted)}")
        entries = []
        for name in names:
            path = tmp / name
            if not path.is_file() or path.is_symlink():
                raise PluginError(f"plugin {strategy.name!r}: model file {name!r} is not a plain file")
            kind = code_format(path)
            if kind is not None:
                raise PluginError(
                    f"plugin {strategy.name!r}: model file {name!r} is a {kind}; trader stores weights as data only "
                    "(safetensors, JSON, skops)"
                )
            _fsync(path)
            entries.append({"name": name, "sha256": sha256_file(path), "bytes": path.stat().st_size})
        return entries

    def _manifest(
        self,
        strategy: Strategy,
        result: TrainResult,
        symbol: str,
        timeframe: str,
        data_range: Mapping[str, Any] | tuple[Any, Any],
        data_hash: str,
        seed: int,
        files: list[dict[str, Any]],
        extra: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        if not isinstance(data_range, Mapping):
            start, end = data_range
            data_range = {"start": start, "end": end}
        info = strategy.info
        libraries = library_versions()
        return _jsonable(
            {
                "schema_version": MANIFEST_SCHEMA_VERSION,
                "plugin": {"name": strategy.name, "version": info.version, "distribution": strategy.record.distribution},
                "version": "",  # filled in when the folder gets its name
                "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "symbol": symbol,
                "timeframe": timeframe,
                "architecture": dict(result.architecture),
                "features": {
                    "names": list(result.feature_names),
                    "count": len(result.feature_names),
                    "windows": list(result.feature_windows or info.feature_windows),
                },
                "scaler": dict(result.scaler) if result.scaler is not None else None,
                "label": dict(result.label),
                "data": {"range": dict(data_range), "sha256": data_hash},
                "metrics": dict(result.metrics),
                "history": dict(result.history),
                "seed": int(seed),
                "torch_version": libraries.get("torch"),
                "libraries": libraries,
                "files": files,
                "extra": {**dict(result.extra), **dict(extra or {})},
            }
        )

    def _publish(self, base: Path, tmp: Path, manifest: dict[str, Any]) -> Path:
        """Give the temporary folder the next free version name, atomically."""
        for _attempt in range(1000):
            existing = [n for n, _ in self._version_dirs(base)]
            taken = {int(m.group(1)) for c in base.iterdir() if (m := _VERSION.fullmatch(c.name))}
            number = max([*existing, *taken, 0]) + 1
            manifest["version"] = f"v{number}"
            _write_json_atomic(tmp / MANIFEST_NAME, manifest)
            final = base / f"v{number}"
            try:
                os.rename(tmp, final)  # fails if another writer took the name meanwhile
            except OSError:
                if final.exists():
                    continue
                raise
            _fsync_dir(base)
            return final
        raise ModelError(f"{base}: could not find a free version name")

    # ------------------------------------------------------------------ list

    def list(self, strategy: Strategy | str | None = None, symbol: str | None = None, timeframe: str | None = None) -> list[ModelVersion]:
        """Every stored version (optionally of one strategy, symbol, timeframe), oldest first.

        Listing reads manifests only; a version whose manifest is unusable, and any entry of
        the models folder that is a link or not a version folder, is listed with ``problem``
        set (and never loaded).
        """
        if not self.models_dir.is_dir():
            return []
        name = strategy if strategy is None or isinstance(strategy, str) else strategy.name
        wanted_key = model_key(symbol, timeframe) if symbol and timeframe else None
        versions: list[ModelVersion] = []
        try:
            plugins = [self.models_dir / name] if name else sorted(self.models_dir.iterdir())
            for plugin_dir in plugins:
                if plugin_dir.name.startswith(".") or not (plugin_dir.is_dir() or plugin_dir.is_symlink()):
                    continue
                if plugin_dir.is_symlink():
                    versions.append(_refused(plugin_dir.name, "", plugin_dir, _LINK, "-"))
                    continue
                for key_dir in sorted(plugin_dir.iterdir()):
                    if key_dir.name.startswith(".") or (wanted_key and key_dir.name != wanted_key):
                        continue
                    if key_dir.is_symlink() or not key_dir.is_dir():
                        why = _LINK if key_dir.is_symlink() else "is not a folder; refused"
                        versions.append(_refused(plugin_dir.name, key_dir.name, key_dir, why, "-"))
                        continue
                    found, refused = self._entries(key_dir)
                    versions.extend(self._describe_dir(plugin_dir.name, key_dir.name, vdir) for _, vdir in found)
                    versions.extend(_refused(plugin_dir.name, key_dir.name, path, why) for path, why in refused)
        except OSError as exc:
            raise ArtifactError(f"{_shown(self.models_dir)}: cannot list the models folder ({exc.strerror or exc})") from None
        if symbol and not timeframe:
            versions = [v for v in versions if v.symbol == symbol]
        if timeframe and not symbol:
            versions = [v for v in versions if v.timeframe == timeframe]
        return versions

    def latest(self, strategy: Strategy | str, symbol: str, timeframe: str) -> ModelVersion | None:
        """The newest version whose manifest is usable; newer refused ones are skipped with a warning."""
        name = strategy if isinstance(strategy, str) else strategy.name
        key = model_key(symbol, timeframe)
        for _, vdir in reversed(self._version_dirs(self.model_dir(name, symbol, timeframe))):
            described = self._describe_dir(name, key, vdir)
            if described.problem is None:
                return described
            log.warning("skipping model version %s: %s", vdir.name, described.problem)
        return None

    def _describe_dir(self, plugin: str, key: str, vdir: Path) -> ModelVersion:
        try:
            manifest = read_manifest(vdir)
            validate_manifest(manifest, _shown(vdir))
            for field_name in ("symbol", "timeframe"):
                if not manifest[field_name].isprintable():
                    raise ArtifactError(f"{_shown(vdir)}: manifest field {field_name!r} is not printable text")
        except ArtifactError as exc:
            symbol, _, timeframe = key.rpartition("_")
            return ModelVersion(plugin, symbol, timeframe, vdir.name, vdir, problem=str(exc))
        return self._describe(plugin, manifest["symbol"], manifest["timeframe"], vdir, manifest)

    @staticmethod
    def _describe(plugin: str, symbol: str, timeframe: str, vdir: Path, manifest: Mapping[str, Any]) -> ModelVersion:
        return ModelVersion(
            plugin=plugin,
            symbol=symbol,
            timeframe=timeframe,
            version=vdir.name,
            directory=vdir,
            created_at=str(manifest.get("created_at", "")),
            plugin_version=str(manifest.get("plugin", {}).get("version", "")),
            metrics=dict(manifest.get("metrics", {})),
            data=dict(manifest.get("data", {})),
            markets=tuple(manifest.get("markets") or ()),
        )

    # ------------------------------------------------------------------ load

    def load(self, strategy: Strategy, symbol: str, timeframe: str, version: str | int | None = None) -> LoadedModel | None:
        """The verified model of ``version`` (latest when ``None``); ``None`` when no model exists.

        A pinned version that does not exist raises :class:`ModelNotFoundError`
        naming the versions that do; a version that fails any check raises
        :class:`ArtifactError` and no plugin code runs on its files.
        """
        base = self.model_dir(strategy.name, symbol, timeframe)
        if version is None or str(version).strip().lower() == "latest":
            newest = self.latest(strategy.name, symbol, timeframe)
            if newest is None:
                found, refused = self._entries(base)
                if found or refused:  # versions exist, none usable: say why rather than "no model"
                    problem = self._describe_dir(strategy.name, base.name, found[-1][1]).problem if found else None
                    raise ArtifactError(problem or f"{_shown(refused[-1][0])}: {refused[-1][1]}")
                return None
            vdir = newest.directory
        else:
            number = parse_version(version)
            found, refused = self._entries(base)
            matches = [d for n, d in found if n == number]
            named = [f"{_shown(path)}: {why}" for path, why in refused if path.name == f"v{number}"]
            if named:
                raise ArtifactError(named[0])
            if not matches:
                available = ", ".join(d.name for _, d in found) or "none"
                raise ModelNotFoundError(
                    f"no model version v{number} of {strategy.name} for {symbol} {timeframe} (available: {available})"
                )
            vdir = matches[0]
        manifest = self.verify(vdir, plugin=strategy.name, symbol=symbol, timeframe=timeframe)
        if manifest["plugin"]["version"] != strategy.info.version:
            log.warning(
                "model %s was trained by %s %s; %s %s is installed",
                vdir, strategy.name, manifest["plugin"]["version"], strategy.name, strategy.info.version,
            )
        try:
            model = strategy.load_model(vdir, manifest)
        except TraderError as exc:
            if isinstance(exc, ArtifactError):
                raise
            raise ArtifactError(f"{vdir}: {exc}") from exc
        except Exception as exc:  # the plugin's loader choked on files that passed the hash check
            raise ArtifactError(f"{vdir}: plugin {strategy.name!r} could not load the model: {type(exc).__name__}: {exc}") from exc
        return LoadedModel(model=model, manifest=manifest, version=vdir.name, directory=vdir)

    def verify(
        self,
        directory: Path,
        *,
        plugin: str | None = None,
        symbol: str | None = None,
        timeframe: str | None = None,
    ) -> dict[str, Any]:
        """Run every check that needs no plugin code; return the manifest or raise :class:`ArtifactError`."""
        directory = Path(directory)
        if directory.is_symlink():
            raise ArtifactError(f"{_shown(directory)}: {_LINK}")
        try:
            return self._verify(directory, plugin, symbol, timeframe)
        except OSError as exc:  # unreadable files or folders: the world, not a bug
            raise ArtifactError(f"{_shown(directory)}: cannot read the model ({exc.strerror or exc})") from None

    def _verify(self, directory: Path, plugin: str | None, symbol: str | None, timeframe: str | None) -> dict[str, Any]:
        manifest = read_manifest(directory)
        validate_manifest(manifest, str(directory))
        expected = {"plugin": plugin, "symbol": symbol, "timeframe": timeframe}
        actual = {"plugin": manifest["plugin"]["name"], "symbol": manifest["symbol"], "timeframe": manifest["timeframe"]}
        for field_name, want in expected.items():
            if want is not None and actual[field_name] != want:
                raise ArtifactError(
                    f"{directory}: manifest is for {field_name} {actual[field_name]!r}, not {want!r}; refusing to load it"
                )
        markets = manifest.get("markets")
        if markets is not None and basket_symbol(markets) != manifest["symbol"]:
            raise ArtifactError(f"{directory}: manifest markets {markets} do not make its symbol {manifest['symbol']!r}; "
                                "refusing to load it")
        if manifest["version"] != directory.name:
            raise ArtifactError(f"{directory}: manifest names version {manifest['version']!r}, the folder is {directory.name!r}")
        listed = {entry["name"] for entry in manifest["files"]}
        on_disk = {p.name for p in directory.iterdir()} - {MANIFEST_NAME}
        unlisted = sorted(on_disk - listed)
        if unlisted:
            raise ArtifactError(f"{directory}: unlisted file(s) beside the model: {', '.join(unlisted)}; refusing to load it")
        for entry in manifest["files"]:
            path = directory / entry["name"]
            if not path.is_file() or path.is_symlink():
                raise ArtifactError(f"{path}: model file is missing (or not a plain file)")
            digest = sha256_file(path)
            if digest != entry["sha256"]:
                raise ArtifactError(
                    f"{path}: sha256 {digest[:16]}... does not match the manifest ({entry['sha256'][:16]}...); "
                    "the file was changed after training, refusing to load it"
                )
            kind = code_format(path)
            if kind is not None:
                raise ArtifactError(
                    f"{path}: file is a {kind}, which would run code when loaded; trader loads weights as data only"
                )
        return manifest


# ---------------------------------------------------------------------- helpers


def _shown(path: Path | str) -> str:
    """A path for a one-line message: as is when printable, else escaped (a newline in a name stays visible)."""
    text = str(path)
    return text if text.isprintable() else ascii(text)


def _refused(plugin: str, key: str, path: Path, why: str, version: str | None = None) -> ModelVersion:
    """A listing row for an entry of the models folder that is never loaded (``version`` "-" above version level)."""
    symbol, _, timeframe = key.rpartition("_")
    plugin, symbol, timeframe, name = (
        t if t.isprintable() and t.isascii() else ascii(t) for t in (plugin, symbol, timeframe, version or path.name)
    )
    return ModelVersion(plugin, symbol, timeframe, name, path, problem=f"{_shown(path)}: {why}")


def _unwritable(base: Path, exc: OSError) -> str:
    return (
        f"cannot write the model to {_shown(base)} ({exc.strerror or exc}); "
        "make the models folder writable (or free disk space) and try again"
    )


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples and paths so the manifest is plain JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN and infinity are not JSON
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise ModelError(f"manifest value of type {type(value).__name__} is not JSON data: {value!r:.80}")


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

