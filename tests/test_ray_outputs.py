"""The Ray integration's output side, without Ray: ``write_outputs`` and the command line's
handling of output errors are those of ``ipad detect`` (per-file records, OutputError, exit 2)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ipad_sdk.errors import OutputError
from ipad_sdk.integrations import ray as ipad_ray


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    files = []
    for i in range(3):
        path = tmp_path / "photos" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((20, 30, 3), 60 * i, np.uint8)).save(path)
        files.append(path)
    return files


@pytest.fixture
def rows(tiny_bundle: Path, photos: list[Path]) -> list[dict]:
    """What ``detect_files`` returns for ``photos``: one DetectBatch actor, in-process."""
    batch = ipad_ray.DetectBatch(str(tiny_bundle), device="cpu", masks=True)
    columns = batch({"path": np.array([str(p) for p in photos]), "index": np.arange(3)})
    return [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]


def test_a_folder_in_the_way_of_one_mask_fails_that_row_only(rows, photos, tmp_path):
    out = tmp_path / "out"
    (out / "masks" / "1.png.png").mkdir(parents=True)
    ipad_ray.write_outputs(rows, photos, out, "jsonl", ["clean", "ghosting", "flare", "moire"])
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r.get("mask") for r in records] == ["masks/0.png.png", None, "masks/2.png.png"]
    assert records[1]["error_type"] == "OutputError"
    assert str(out / "masks" / "1.png.png") in records[1]["error"]


@pytest.mark.parametrize("blocked", ["out", "results"])
def test_other_write_errors_are_output_errors_naming_the_path(rows, photos, tmp_path, blocked):
    out = tmp_path / "out"
    if blocked == "out":
        out.write_text("a file")
        where = out
    else:
        where = out / "results.jsonl"
        where.mkdir(parents=True)  # a folder where the results file goes
    with pytest.raises(OutputError, match=f"^{where}: "):
        ipad_ray.write_outputs(rows, photos, out, "jsonl", ["clean", "ghosting", "flare", "moire"])


def test_command_line_output_error_exits_2(rows, photos, tmp_path, monkeypatch, capsys):
    fake_ray = types.SimpleNamespace(init=lambda **kwargs: None, shutdown=lambda: None)
    monkeypatch.setattr(ipad_ray, "_import_ray", lambda: fake_ray)
    monkeypatch.setattr(ipad_ray, "detect_files", lambda *args, **kwargs: rows)
    out = tmp_path / "out"
    (out / "results.jsonl").mkdir(parents=True)
    assert ipad_ray.main([str(p) for p in photos] + ["--out", str(out), "--save-masks"]) == 2
    assert f"error: {out / 'results.jsonl'}: cannot write output" in capsys.readouterr().err


def test_command_line_refuses_an_out_file_before_starting_ray(photos, tmp_path, monkeypatch):
    def no_ray():
        raise AssertionError("Ray started before the output folder was checked")

    monkeypatch.setattr(ipad_ray, "_import_ray", no_ray)
    out = tmp_path / "out"
    out.write_text("a file")
    assert ipad_ray.main([str(photos[0]), "--out", str(out)]) == 2
