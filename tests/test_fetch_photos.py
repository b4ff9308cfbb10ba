"""train/fetch_photos.py: the committed list is complete and consistent, photos are kept only when
their SHA-256 matches, reruns skip what is there, and SOURCES.md names every author and licence.
The package download itself (apt-get) is replaced by a folder made here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import train.fetch_photos as fp


def test_committed_list_is_complete_and_leaves_out_the_reserved_photos():
    entries = fp.load_list()
    assert len(entries) >= 20
    names = [fp.output_name(e) for e in entries]
    assert len(set(names)) == len(names)
    for e in entries:
        assert len(e["sha256"]) == 64 and int(e["sha256"], 16) >= 0
        assert e["package"] != "plasma-workspace-wallpapers"
        assert "sunset_by_Aitzol_Berasategi" not in e["path"]  # shows real flare


def test_list_entries_missing_fields_are_refused(tmp_path):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"package": "p", "path": "a.jpg"}]))
    with pytest.raises(ValueError, match="lacks"):
        fp.load_list(path)


def _entries(files: dict[str, bytes]) -> list[dict[str, str]]:
    return [{"package": "pkg", "version": "1.0", "path": f"usr/share/{name}",
             "sha256": hashlib.sha256(data).hexdigest(), "licence": "CC0-1.0", "author": "A. B."}
            for name, data in files.items()]  # fmt: skip


def test_fetch_keeps_matching_files_rejects_tampered_ones_and_resumes(tmp_path, monkeypatch):
    files = {"good.jpg": b"good bytes", "bad.jpg": b"expected bytes"}
    entries = _entries(files)
    unpacked = []

    def fake_unpack(package: str, version: str, work: Path) -> Path:
        unpacked.append((package, version))
        root = work / package
        (root / "usr/share").mkdir(parents=True)
        (root / "usr/share/good.jpg").write_bytes(files["good.jpg"])
        (root / "usr/share/bad.jpg").write_bytes(b"tampered bytes")
        return root

    monkeypatch.setattr(fp, "_unpack", fake_unpack)
    out = tmp_path / "photos"
    assert fp.fetch(out, entries) == ["pkg__bad.jpg"]
    assert (out / "pkg__good.jpg").read_bytes() == files["good.jpg"]
    assert not (out / "pkg__bad.jpg").exists() and not list(out.glob(".*.tmp"))
    sources = (out / "SOURCES.md").read_text()
    assert "| pkg__good.jpg | pkg (1.0) | A. B. | CC0-1.0 |" in sources
    fp.fetch(out, entries[:1])  # everything listed is present: nothing is downloaded again
    assert unpacked == [("pkg", "1.0")]
