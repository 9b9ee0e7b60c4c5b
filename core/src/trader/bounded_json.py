"""JSON read once, within limits: size, nesting depth and integer digits checked, every failure
one error naming the source.

``json.loads`` alone fails on deep nesting with ``RecursionError`` and on a 5,000-digit
integer with ``ValueError``, and reads a file of any size; :func:`read_json_bytes` reads at most
``max_bytes`` (decompressing ``.gz`` within the same bound) and :func:`loads_bounded` checks the
nesting before parsing, with strings skipped, so a crafted file is refused before it is parsed.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from pathlib import Path
from typing import Any

from trader.errors import TraderError

__all__ = ["loads_bounded", "read_json_bytes", "json_depth"]

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_CHUNK = 1 << 24


def read_json_bytes(path: Path, max_bytes: int, *, gzip_compressed: bool, error: type[TraderError]) -> bytes:
    """The file's bytes (decompressed when *gzip_compressed*), refused past *max_bytes*."""
    try:
        if gzip_compressed:
            with gzip.open(path, "rb") as fh:
                data = fh.read(max_bytes + 1)
        else:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        kind = "not a readable gzip file" if gzip_compressed else "cannot read"
        raise error(f"{path}: {kind}: {getattr(exc, 'strerror', None) or exc or type(exc).__name__}") from None
    if len(data) > max_bytes:
        what = "decompresses to more than" if gzip_compressed else "is larger than"
        raise error(f"{path}: {what} {_size(max_bytes)} of JSON (the limit; [data] max_json_bytes raises it)")
    return data


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in *data*, brackets inside strings not counted."""
    import numpy as np

    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for start in range(0, len(brackets), _CHUNK):
        steps = np.frombuffer(brackets, dtype=np.uint8, count=min(_CHUNK, len(brackets) - start), offset=start)
        levels = depth + np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1))
        deepest = max(deepest, int(levels.max()))
        depth = int(levels[-1])
    return deepest


def loads_bounded(data: bytes, source: str, *, max_depth: int, max_int_digits: int, error: type[TraderError]) -> Any:
    """Parse *data*; *error* naming *source* when it is not JSON, nests deeper than *max_depth* or
    has an integer of more than *max_int_digits* digits."""
    depth = json_depth(data)
    if depth > max_depth:
        raise error(f"{source}: JSON nested {depth} levels deep (at most {max_depth} allowed)")

    def parse_int(text: str) -> int:
        if len(text.lstrip("-")) > max_int_digits:
            raise _TooLong(len(text.lstrip("-")))
        return int(text)

    try:
        return json.loads(data, parse_int=parse_int)
    except _TooLong as exc:
        raise error(f"{source}: a JSON integer has {exc.args[0]:,} digits (at most {max_int_digits} allowed)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:  # pragma: no cover - the depth check comes first
        raise error(f"{source}: JSON nested too deeply") from None


class _TooLong(Exception):
    pass


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"
