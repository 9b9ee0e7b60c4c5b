"""Which model files would run code when loaded: real pickles and torch.save archives are recognised;
a zip archive (a skops file) is never taken for a pickle stream because its bytes happen to parse."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

from trader.models.formats import code_format


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo never",))


def test_a_zip_whose_bytes_happen_to_read_as_opcodes_is_not_a_pickle(tmp_path):
    # "P" is PERSID (a line), then "." is STOP: read as opcodes this is a complete stream
    crafted = tmp_path / "crafted.skops"
    crafted.write_bytes(b"PK\x03\x04 a persistent id\n.")
    assert code_format(crafted) is None
    archive = tmp_path / "model.skops"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("schema.json", '{"a": 1}\n.')
    assert code_format(archive) is None


def test_real_pickles_and_torch_save_archives_are_still_recognised(tmp_path):
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"weights{protocol}.bin"
        path.write_bytes(pickle.dumps(_Payload(), protocol=protocol))
        assert code_format(path) == "pickle", protocol
    archive = tmp_path / "model.pt"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    archive.write_bytes(buffer.getvalue())
    assert code_format(archive) == "torch.save archive"
