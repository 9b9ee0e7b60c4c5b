"""Zip archives checked member by member before anything in them is read."""

from __future__ import annotations

import zipfile

import pytest

from trader.errors import ArtifactError
from trader.models import bounded
from trader.models.bounded import check_zip_members


def test_a_sound_archive_passes_and_its_members_are_listed(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", "{}")
        archive.writestr("1.npy", bytes(1000))
    assert [i.filename for i in check_zip_members(path)] == ["schema.json", "1.npy"]


@pytest.mark.parametrize("name", ["../evil.npy", "/abs.npy", "dir\\x.npy", "caf\u00e9.npy"])
def test_unsafe_member_names_are_refused(tmp_path, name):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, b"x")
    with pytest.raises(ArtifactError, match="has an unsafe or duplicate name"):
        check_zip_members(path, "skops archive")


def test_a_member_whose_data_does_not_match_its_crc_is_refused(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("1.npy", b"A" * 4096)
    data = bytearray(path.read_bytes())
    data[data.index(b"A" * 64) + 100] = ord("B")
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"unreadable skops archive \(BadZipFile: Bad CRC-32"):
        check_zip_members(path, "skops archive")


def test_too_many_members_or_bytes_are_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for i in range(4):
            archive.writestr(f"{i}.npy", bytes(1000))
    monkeypatch.setattr(bounded, "MAX_ZIP_MEMBERS", 3)
    with pytest.raises(ArtifactError, match="has 4 members, more than 3"):
        check_zip_members(path)
    monkeypatch.setattr(bounded, "MAX_ZIP_MEMBERS", 100)
    with pytest.raises(ArtifactError, match=r"member '2.npy' declares 1000 bytes uncompressed \(3000 so far\)"):
        check_zip_members(path, max_bytes=2500)
