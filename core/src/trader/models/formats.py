"""Recognise files that would run code when loaded (pickle, ``torch.save`` archives).

trader stores weights as data only. Whatever the plugin's loader, the core refuses
a model file that is a pickle stream able to call code, or a ``torch.save`` zip
archive (which holds one), before any plugin code sees it, so a payload in such a
file never runs. Detection only reads opcodes (``pickletools.genops``): nothing is
unpickled.

A pickle "calls code" when it names a callable or object to build (``GLOBAL``,
``STACK_GLOBAL``, ``INST``, ``OBJ``, ``NEWOBJ``, ``REDUCE``, ``BUILD``, extension codes,
persistent ids), and any stream that opens with a protocol-2+ header is a pickle by
declaration. Requiring one of those and a complete stream up to ``STOP`` keeps data
files whose first bytes happen to be valid opcodes (a safetensors header length can
start with ``0x80 0x02`` or ``.``) from being mistaken for pickles.
"""

from __future__ import annotations

import pickletools
import warnings
import zipfile
from pathlib import Path

__all__ = ["code_format", "CODE_OPCODES"]

CODE_OPCODES = frozenset({
    "GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "REDUCE", "BUILD",
    "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID",
})


#: The first bytes of a zip archive's local file header (skops files, ``torch.save`` archives).
ZIP_MAGIC = b"PK\x03\x04"


def _is_code_pickle(path: Path) -> bool:
    """Whether the file is a complete pickle stream that names code or declares a protocol (streams the
    file; stops at the first byte that is not a valid opcode, so data files are rejected after a few bytes).

    A file that opens with a zip header is judged as an archive (:func:`code_format`), not as a stream:
    read as opcodes, ``P`` is ``PERSID``, so whether a zip "parses" up to a ``.`` depends on bytes such as
    its members' timestamps; and unpickled, its first opcode asks for a persistent id, which the standard
    unpickler refuses before anything else runs.
    """
    calls_code = False
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            if fh.read(len(ZIP_MAGIC)) == ZIP_MAGIC:
                return False
            fh.seek(0)
            warnings.simplefilter("ignore", DeprecationWarning)  # genops decoding arbitrary bytes as strings
            for opcode, _arg, pos in pickletools.genops(fh):
                if opcode.name in CODE_OPCODES or (pos == 0 and opcode.name == "PROTO"):
                    calls_code = True  # a protocol-2+ header is a pickle by declaration
                elif opcode.name == "STOP":
                    return calls_code
    except Exception:  # not a valid opcode stream (or cut off): not a loadable pickle
        return False
    return False


def code_format(path: Path) -> str | None:
    """``"pickle"`` or ``"torch.save archive"`` when ``path`` would execute code on load, else ``None``."""
    if _is_code_pickle(path):
        return "pickle"
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return None
        if any(name.endswith(".pkl") for name in names):
            return "torch.save archive"
    return None
