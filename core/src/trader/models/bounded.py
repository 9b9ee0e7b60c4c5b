"""Reading model artifacts within bounds: JSON (size, depth, digits) and zip members (sizes, count).

Every limit is checked before the bytes it guards are decompressed or parsed, and every
failure is an :class:`ArtifactError` naming the file. The byte limits of zip archives and
weights files can be raised with ``TRADER_MAX_ARTIFACT_BYTES`` for very large models.
"""

from __future__ import annotations

import json
import os
import stat
import zipfile
from pathlib import Path
from typing import Any

from trader.errors import ArtifactError

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_ZIP_MEMBERS",
    "DEFAULT_MAX_ARTIFACT_BYTES",
    "max_artifact_bytes",
    "read_plain_file",
    "loads_bounded",
    "check_zip_members",
]

#: Nesting deeper than this is not a trader artifact (manifests nest four or five levels).
MAX_JSON_DEPTH = 64
#: Integers longer than this are not timestamps, counts or seeds.
MAX_INT_DIGITS = 40
#: A skops archive holds one member per array; a large ensemble has a few thousand.
MAX_ZIP_MEMBERS = 100_000
#: Default cap on the uncompressed bytes of one model archive or weights file (1 GiB).
DEFAULT_MAX_ARTIFACT_BYTES = 1 << 30
_LIMIT_VARIABLE = "TRADER_MAX_ARTIFACT_BYTES"


def max_artifact_bytes() -> int:
    """The cap on a model archive's uncompressed size (``TRADER_MAX_ARTIFACT_BYTES``, else 1 GiB)."""
    raw = os.environ.get(_LIMIT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_ARTIFACT_BYTES
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 1 << 48:
        raise ArtifactError(f"{_LIMIT_VARIABLE}={raw!r:.40} is not a byte count (a positive integer)")
    return int(raw)


def read_plain_file(path: Path, max_bytes: int, what: str, missing: str) -> bytes:
    """The bytes of ``path``, read once; refuses a missing file, a link, a non-file or more than ``max_bytes``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: {what} is missing; {missing}") from None
    except OSError as exc:
        if os.path.islink(path):
            raise ArtifactError(f"{path}: {what} is a symbolic link; trader never follows links in the models folder") from None
        raise ArtifactError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(f"{path}: {what} is not a plain file")
        if info.st_size > max_bytes:
            raise ArtifactError(f"{path}: {what} is {info.st_size} bytes, larger than any trader {what}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ArtifactError(f"{path}: {what} grew past {max_bytes} bytes while being read")
    return data


class _Refused(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text[:24]!r} is out of range")
    return value


def _parse_constant(text: str) -> Any:
    raise _Refused(f"{text} is not JSON data")


def _check_tree(data: Any) -> None:
    """Depth at most :data:`MAX_JSON_DEPTH`; strings valid Unicode (no lone surrogates). Iterative."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused("a string holds an unpaired surrogate escape") from None
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _Refused(f"nested deeper than {MAX_JSON_DEPTH} levels")
        children = [*value.keys(), *value.values()] if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children)


def loads_bounded(data: bytes, where: Path | str, what: str) -> Any:
    """Parse JSON bytes: UTF-8, no NaN or infinity, integers of at most :data:`MAX_INT_DIGITS` digits,
    nesting of at most :data:`MAX_JSON_DEPTH` levels; :class:`ArtifactError` naming ``where`` otherwise."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        _check_tree(value)
    except _Refused as exc:
        raise ArtifactError(f"{where}: {what} is refused: {exc}") from None
    except RecursionError:
        raise ArtifactError(f"{where}: {what} is refused: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ArtifactError(f"{where}: {what} is not valid JSON ({str(exc)[:200]})") from None
    return value


def check_zip_members(path: Path, what: str = "archive", max_bytes: int | None = None) -> list[zipfile.ZipInfo]:
    """Check a zip archive before anything in it is read; return its members.

    Refuses (naming the member) more than :data:`MAX_ZIP_MEMBERS` members, names that are
    not plain relative ASCII paths, duplicate names, and declared uncompressed sizes above
    ``max_bytes`` (one member or all together; default :func:`max_artifact_bytes`). Then each
    member is inflated in 1 MiB chunks and counted, so a member whose data inflates past its
    declared size, or fails its CRC, is refused too; nothing is kept in memory.
    """
    limit = max_artifact_bytes() if max_bytes is None else max_bytes
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise ArtifactError(f"{path}: {what} has {len(infos)} members, more than {MAX_ZIP_MEMBERS}")
            total, names = 0, set()
            for info in infos:
                name = info.filename
                if not name.isascii() or name.startswith("/") or ".." in name.split("/") or "\\" in name or name in names:
                    raise ArtifactError(f"{path}: {what} member {name!r:.80} has an unsafe or duplicate name")
                names.add(name)
                total += info.file_size
                if info.file_size > limit or total > limit:
                    raise ArtifactError(
                        f"{path}: {what} member {name!r} declares {info.file_size} bytes uncompressed "
                        f"({total} so far), more than the {limit}-byte limit ({_LIMIT_VARIABLE})"
                    )
            for info in infos:
                _inflate_counting(archive, info, path, what)
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise ArtifactError(f"{path}: unreadable {what} ({type(exc).__name__}: {str(exc)[:200]})") from None
    return infos


def _inflate_counting(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path, what: str) -> None:
    seen = 0
    with archive.open(info) as member:  # zipfile stops at the declared size and checks the CRC at the end
        while chunk := member.read(1 << 20):
            seen += len(chunk)
            if seen > info.file_size:
                raise ArtifactError(f"{path}: {what} member {info.filename!r} inflates past its declared size")
    if seen != info.file_size:
        raise ArtifactError(f"{path}: {what} member {info.filename!r} holds {seen} bytes, {info.file_size} declared")
