"""Recognise files that would run code when loaded (pickle, ``torch.save`` archives).

trader stores weights as data only. Whatever the plugin's loader, the core refuses
a model file that is a pickle stream or a ``torch.save`` zip archive (which holds a
pickle) before any plugin code sees it, so a payload in such a file never runs.
Detection only reads bytes: nothing is unpickled.
"""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path

__all__ = ["code_format", "SNIFF_BYTES"]

#: How much of a file the pickle scan reads.
SNIFF_BYTES = 1 << 16


def _is_pickle_stream(head: bytes) -> bool:
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:  # PROTO opcode, protocols 2-5
        return True
    # Protocols 0 and 1 have no header: a pickle is a stream of valid opcodes ending in STOP.
    try:
        for opcode, _arg, _pos in pickletools.genops(head):
            if opcode.name == "STOP":
                return True
    except Exception:  # not a valid opcode stream (or cut off): not a complete pickle
        return False
    return False


def code_format(path: Path) -> str | None:
    """``"pickle"`` or ``"torch.save archive"`` when ``path`` would execute code on load, else ``None``."""
    with open(path, "rb") as fh:
        head = fh.read(SNIFF_BYTES)
    if _is_pickle_stream(head):
        return "pickle"
    if head[:4] == b"PK\x03\x04" or zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if any(name.endswith(".pkl") or name.endswith("/data.pkl") for name in names):
            return "torch.save archive"
    return None
