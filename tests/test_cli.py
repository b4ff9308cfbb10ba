"""The ``ipad`` command line (``ipad_sdk.cli.main``) and the batch helpers behind it."""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipad_sdk import Detector, __version__
from ipad_sdk.batch import JOURNAL_NAME, ResumeError, output_keys, run_batch
from ipad_sdk.cli import main
from ipad_sdk.discover import discover
from ipad_sdk.fileio import NAME_MAX, fit_name
from ipad_sdk.visualize import colorize

CLASSES = ("clean", "ghosting", "flare", "moire")


def _image(height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 5 + yy, yy * 9 + 2 * xx, (xx * yy) // 2], axis=-1) + seed * 31
    return ((base + rng.integers(0, 30, size=(height, width, 3))) % 256).astype(np.uint8)


def _jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]


@pytest.fixture
def image_dir(tmp_path: Path) -> dict[str, object]:
    """3 valid images (one in a subfolder), a truncated JPEG and a .txt file."""
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    a = root / "a.png"
    b = root / "b.jpg"
    c = root / "sub" / "c.png"
    bad = root / "broken.jpg"
    Image.fromarray(_image(37, 91, 1)).save(a)
    b.write_bytes(_jpeg_bytes(_image(40, 30, 2)))
    Image.fromarray(_image(20, 52, 3)).save(c)
    valid_jpeg = _jpeg_bytes(_image(64, 64, 4))
    bad.write_bytes(valid_jpeg[: len(valid_jpeg) // 2])
    (root / "notes.txt").write_text("not an image\n")
    return {
        "root": root,
        # os.walk order: the folder's own files (sorted), then its subfolders
        "order": [a, b, bad, c],
        "valid": [a, b, c],
        "bad": bad,
        "sizes": {a: (37, 91), b: (40, 30), c: (20, 52)},
    }


def _read_jsonl(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- detect -----------------------------------------------------------------------------------


def test_detect_folder_with_masks_and_overlays(image_dir, tiny_bundle, detector, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        ["detect", str(image_dir["root"]), "--model", str(tiny_bundle), "--out", str(out),
         "--save-masks", "--save-overlays", "--device", "cpu", "-q"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == ""  # -q: no progress, summary or warning

    records = _read_jsonl(out / "results.jsonl")
    assert len(records) == 4
    assert [r["source"] for r in records] == [str(p) for p in image_dir["order"]]

    reference = detector.detect_batch(image_dir["valid"], batch_size=8)
    by_source = dict(zip(map(str, image_dir["valid"]), reference, strict=True))
    for record in records:
        if record["source"] == str(image_dir["bad"]):
            assert record["error_type"] == "InputError"
            assert str(image_dir["bad"]) in record["error"]
            assert "mask" not in record and "label" not in record
            continue
        assert "error" not in record
        source = Path(record["source"])
        h, w = image_dir["sizes"][source]
        expected = by_source[record["source"]]
        assert record["label"] in CLASSES
        assert record["label"] == expected.label
        assert list(record["scores"]) == list(CLASSES)
        assert sum(record["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        for name in CLASSES:
            assert record["scores"][name] == pytest.approx(expected.scores[name], abs=1e-6)
        assert (record["height"], record["width"]) == (h, w)
        mask_path = out / record["mask"]
        overlay_path = out / record["overlay"]
        assert mask_path.is_file() and overlay_path.is_file()
        key = source.relative_to(image_dir["root"]).as_posix()
        assert record["mask"] == f"masks/{key}.png"
        assert record["overlay"] == f"overlays/{key}.png"
        with Image.open(mask_path) as mask_img:
            assert mask_img.format == "PNG"
            assert mask_img.mode == "L"
            assert mask_img.size == (w, h)
            mask = np.asarray(mask_img)
        assert set(np.unique(mask).tolist()) <= {0, 255}
        np.testing.assert_array_equal(mask == 255, expected.mask)
        assert record["mask_fraction"] == pytest.approx(float(expected.mask.mean()))
        with Image.open(overlay_path) as overlay_img:
            assert overlay_img.size == (w, h)
    assert not (out / "masks" / "broken.jpg.png").exists()
    assert _leftovers(out) == []


def test_detect_all_valid_returns_zero(image_dir, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    valid = [str(p) for p in image_dir["valid"]]
    code = main(["detect", *valid, "-m", str(tiny_bundle), "-o", str(out), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0
    assert "3/3 images ok, 0 failed" in captured.err
    assert "untrained" in captured.err  # the model warning is shown without -q
    records = _read_jsonl(out / "results.jsonl")
    assert [r["source"] for r in records] == valid
    assert all("error" not in r for r in records)
    assert _leftovers(out) == []


def test_detect_csv(image_dir, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    valid = [str(p) for p in image_dir["valid"]]
    code = main(["detect", *valid, "-m", str(tiny_bundle), "-o", str(out), "--format", "csv",
                 "--save-masks", "--device", "cpu", "-q"])  # fmt: skip
    capsys.readouterr()
    assert code == 0
    assert not (out / "results.jsonl").exists()
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames
        rows = list(reader)
    assert header is not None
    for column in ("source", "label", "artifact_score", "width", "height", "mask", "error"):
        assert column in header
    for name in CLASSES:
        assert f"score_{name}" in header
    assert "scores" not in header
    assert len(rows) == 3
    assert [row["source"] for row in rows] == valid
    for row in rows:
        assert row["label"] in CLASSES
        total = sum(float(row[f"score_{name}"]) for name in CLASSES)
        assert total == pytest.approx(1.0, abs=1e-5)
        assert (out / row["mask"]).is_file()
        assert row["error"] == "" and row["error_type"] == ""
    assert _leftovers(out) == []


def test_detect_thresholds_regions_timings_provenance_and_heatmaps(
    image_dir, tiny_bundle, tmp_path, capsys
):
    out = tmp_path / "out"
    valid = [str(p) for p in image_dir["valid"]]
    code = main(["detect", *valid, "-m", str(tiny_bundle), "-o", str(out), "--format", "csv",
                 "--image-threshold", "0", "--pixel-threshold", "0.25", "--class-threshold",
                 "flare=0.9", "--save-heatmaps", "--save-overlays", "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert "mean ms per image: decode " in capsys.readouterr().err
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", image_threshold=0.0, pixel_threshold=0.25,
                       class_thresholds={"flare": 0.9})  # fmt: skip
    sha = hashlib.sha256(tiny_bundle.read_bytes()).hexdigest()
    for row, path in zip(rows, image_dir["valid"], strict=True):
        expected = det.detect(path)
        assert row["label"] == expected.label
        assert json.loads(row["regions"]) == [r.to_dict() for r in expected.regions]
        assert json.loads(row["thresholds"]) == {"image": 0.0, "pixel": 0.25,
                                                 "classes": {"flare": 0.9}}  # fmt: skip
        timings = json.loads(row["timings_ms"])
        assert list(timings) == ["decode", "preprocess", "inference", "postprocess"]
        assert all(ms >= 0 for ms in timings.values()) and timings["inference"] > 0
        assert (row["model_sha256"], row["sdk_version"]) == (sha, __version__)
        assert (row["backend"], row["precision"], row["tiling"]) == ("torch", "fp32", "")
        h, w = image_dir["sizes"][path]
        with Image.open(out / row["heatmap"]) as image:
            assert image.size == (3 * w + 8, h)
            panel = np.asarray(image)
        np.testing.assert_array_equal(panel[:, :w], np.asarray(Image.open(path).convert("RGB")))
        np.testing.assert_array_equal(panel[:, w + 4 : 2 * w + 4], colorize(expected.heatmap))
        assert (panel[:, 2 * w + 8 :].any(axis=-1) == expected.mask).all()


@pytest.mark.parametrize(
    "flags",
    [["--image-threshold", "1.5"], ["--class-threshold", "dust=0.5"],
     ["--class-threshold", "clean=0.5"], ["--class-threshold", "flare"]],
)  # fmt: skip
def test_bad_thresholds_are_usage_errors(image_dir, tiny_bundle, tmp_path, flags, capsys):
    out = tmp_path / "out"
    argv = ["detect", str(image_dir["root"]), "-m", str(tiny_bundle), "-o", str(out), *flags]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses a malformed CLASS=T itself
        code = exc.code
    assert code == 2
    assert not out.exists()
    assert "threshold" in capsys.readouterr().err


def test_detect_csv_records_failures(image_dir, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["detect", str(image_dir["root"]), "-m", str(tiny_bundle), "-o", str(out),
                 "--format", "csv", "--device", "cpu", "-q"])  # fmt: skip
    capsys.readouterr()
    assert code == 1
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["source"] for row in rows] == [str(p) for p in image_dir["order"]]
    bad = [row for row in rows if row["error"]]
    assert len(bad) == 1
    assert bad[0]["error_type"] == "InputError"
    assert str(image_dir["bad"]) in bad[0]["error"]
    assert bad[0]["label"] == ""


def test_csv_cells_that_spreadsheets_would_run_are_escaped(tiny_bundle, tmp_path, monkeypatch):
    names = ["=HYPERLINK(x).png", "+cmd.png", "-a.png", "@a.png", "\tb.png", "ok.png"]
    for i, name in enumerate(names):
        Image.fromarray(_image(20, 24, i)).save(tmp_path / name, format="PNG")
    (tmp_path / "=bad.png").write_bytes(b"not an image")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    code = main(["detect", "-m", str(tiny_bundle), "-o", str(out), "--format", "csv",
                 "--device", "cpu", "-q", "--", *names, "=bad.png"])  # fmt: skip
    assert code == 1
    with open(out / "results.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["source"] for r in rows] == [f"'{n}" for n in names[:-1]] + ["ok.png", "'=bad.png"]
    assert rows[-1]["error"].startswith("'=bad.png: ")
    assert rows[0]["label"] in CLASSES  # other cells as they were


def test_detect_to_stdout(image_dir, tiny_bundle, capsys):
    valid = [str(p) for p in image_dir["valid"]]
    code = main(["detect", *valid, "-m", str(tiny_bundle), "--device", "cpu", "-q"])
    captured = capsys.readouterr()
    assert code == 0
    lines = captured.out.splitlines()
    assert len(lines) == 3
    records = [json.loads(line) for line in lines]
    assert [r["source"] for r in records] == valid
    for record in records:
        assert record["label"] in CLASSES
        assert "mask" not in record


def test_detect_to_stdout_batch_size_one(image_dir, tiny_bundle, capsys):
    code = main(["detect", str(image_dir["root"]), "-m", str(tiny_bundle), "--batch-size", "1",
                 "--device", "cpu"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 1
    records = [json.loads(line) for line in captured.out.splitlines()]
    assert [r["source"] for r in records] == [str(p) for p in image_dir["order"]]
    assert "3/4 images ok, 1 failed" in captured.err
    assert str(image_dir["bad"]) in captured.err


def test_save_masks_without_out_is_usage_error(image_dir, tiny_bundle, capsys):
    for flag in ("--save-masks", "--save-overlays"):
        code = main(["detect", str(image_dir["root"]), "-m", str(tiny_bundle), flag, "-q"])
        captured = capsys.readouterr()
        assert code == 2
        assert "--out" in captured.err
        assert "error" in captured.err
        assert captured.out == ""


def test_missing_model_is_usage_error(image_dir, tmp_path, capsys):
    missing = tmp_path / "missing.safetensors"
    out = tmp_path / "out"
    code = main(["detect", str(image_dir["root"]), "-m", str(missing), "-o", str(out), "-q"])
    captured = capsys.readouterr()
    assert code == 2
    assert str(missing) in captured.err
    assert not (out / "results.jsonl").exists()


def test_batch_size_zero_is_usage_error(image_dir, tiny_bundle, capsys):
    code = main(["detect", str(image_dir["root"]), "-m", str(tiny_bundle), "--batch-size", "0"])
    captured = capsys.readouterr()
    assert code == 2
    assert "--batch-size" in captured.err
    assert captured.out == ""


def test_missing_named_file_is_recorded_failure(image_dir, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    missing = tmp_path / "does-not-exist.png"
    a, b, _ = image_dir["valid"]
    code = main(["detect", str(a), str(missing), str(b), "-m", str(tiny_bundle), "-o", str(out),
                 "--save-masks", "--device", "cpu", "-q"])  # fmt: skip
    capsys.readouterr()
    assert code == 1
    records = _read_jsonl(out / "results.jsonl")
    assert [r["source"] for r in records] == [str(a), str(missing), str(b)]
    assert records[1]["error_type"] == "InputError"
    assert str(missing) in records[1]["error"]
    assert "not found" in records[1]["error"]
    for record in (records[0], records[2]):
        assert "error" not in record
        assert (out / record["mask"]).is_file()


def test_explicit_non_image_file_is_recorded_failure(image_dir, tiny_bundle, capsys):
    notes = image_dir["root"] / "notes.txt"
    code = main(["detect", str(notes), "-m", str(tiny_bundle), "--device", "cpu", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    (record,) = [json.loads(line) for line in captured.out.splitlines()]
    assert record["source"] == str(notes)
    assert record["error_type"] == "InputError"
    assert str(notes) in record["error"]


def test_detect_subprocess(image_dir, tiny_bundle, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "ipad_sdk.cli", "detect", str(image_dir["root"]),
         "--model", str(tiny_bundle), "--out", str(out), "--save-masks", "--device", "cpu", "-q"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    records = _read_jsonl(out / "results.jsonl")
    assert [r["source"] for r in records] == [str(p) for p in image_dir["order"]]
    assert sum("error" in r for r in records) == 1
    assert _leftovers(out) == []


def test_subprocess_usage_error_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "ipad_sdk.cli", "detect", str(tmp_path), "--save-masks"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--out" in proc.stderr


def test_console_script_if_installed(tiny_bundle, tmp_path):
    script = shutil.which("ipad") or shutil.which("ipad", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the ipad console script is not installed")
    proc = subprocess.run(
        [script, "--version"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert proc.returncode == 0
    assert __version__ in proc.stdout
    proc = subprocess.run(
        [script, "info", str(tiny_bundle)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["config"]["backbone"] == "IPAD-Tiny-ViT-16"


# -- info -------------------------------------------------------------------------------------


def test_info(tiny_bundle, capsys):
    code = main(["info", str(tiny_bundle)])
    captured = capsys.readouterr()
    assert code == 0
    info = json.loads(captured.out)
    assert info["file"] == str(tiny_bundle)
    assert info["config"]["backbone"] == "IPAD-Tiny-ViT-16"
    assert info["config"]["classes"] == list(CLASSES)
    assert info["config"]["image_size"] == 64
    assert info["config"]["trained"] is False
    assert info["bytes"] == tiny_bundle.stat().st_size
    assert info["sha256"] == hashlib.sha256(tiny_bundle.read_bytes()).hexdigest()


@pytest.mark.parametrize("content", [b"hello, not a model\n", b"", b"\xff" * 100])
def test_info_on_non_bundle_is_error(tmp_path, capsys, content):
    path = tmp_path / "model.safetensors"
    path.write_bytes(content)
    code = main(["info", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert str(path) in captured.err
    assert captured.out == ""


def test_info_on_image_and_missing_file_is_error(image_dir, tmp_path, capsys):
    for path in (image_dir["valid"][0], tmp_path / "missing.safetensors", tmp_path):
        code = main(["info", str(path)])
        captured = capsys.readouterr()
        assert code == 2, path
        assert str(path) in captured.err


def test_info_on_foreign_safetensors_is_error(tmp_path, capsys):
    from safetensors.torch import save_file

    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    code = main(["info", str(path)])
    captured = capsys.readouterr()
    assert code == 2
    assert "not an ipad-sdk model bundle" in captured.err


@pytest.fixture
def fail_if_blocked():
    """Turn a read that blocks (a FIFO with no writer) into a test failure after 30 s."""
    import signal

    def blocked(*_: object) -> None:
        raise TimeoutError("blocked opening the model file")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("m.safetensors", "named pipe (FIFO)"), ("m.plan", "named pipe (FIFO)"),
     ("m.onnx", "character device"), ("m.plan", "character device")],
)  # fmt: skip
def test_only_regular_files_are_opened_as_models(image_dir, tmp_path, capsys, fail_if_blocked,
                                                 name, kind):  # fmt: skip
    model = tmp_path / name
    if kind.startswith("named pipe"):
        os.mkfifo(model)
    else:
        model.symlink_to("/dev/zero")
    for args in (["info", str(model)], ["detect", str(image_dir["root"]), "-m", str(model), "-q"]):
        assert main(args) == 2
        assert f"{model}: is a {kind}, not a model file" in capsys.readouterr().err


def test_a_fifo_engine_sidecar_is_refused(tmp_path, fail_if_blocked):
    from ipad_sdk.errors import ModelError
    from ipad_sdk.metadata import read_engine_metadata

    plan = tmp_path / "m.plan"
    plan.write_bytes(b"plan")
    os.mkfifo(f"{plan}.json")
    with pytest.raises(ModelError, match="m.plan.json: is a named pipe"):
        read_engine_metadata(plan)


# -- create-bundle ----------------------------------------------------------------------------


def _bundle_contents(path: Path) -> tuple[dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        return fh.metadata(), tensors


def test_create_bundle(tmp_path, capsys):
    first = tmp_path / "one" / "m.safetensors"
    second = tmp_path / "two.safetensors"
    other_seed = tmp_path / "three.safetensors"
    assert main(["create-bundle", str(first)]) == 0
    assert main(["create-bundle", str(second)]) == 0
    assert main(["create-bundle", str(other_seed), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert f"wrote {first}" in captured.out
    assert _leftovers(tmp_path) == []

    # same seed: same metadata and weights; another seed: other weights
    meta1, tensors1 = _bundle_contents(first)
    meta2, tensors2 = _bundle_contents(second)
    meta3, tensors3 = _bundle_contents(other_seed)
    assert meta1 == meta2
    assert tensors1.keys() == tensors2.keys() == tensors3.keys()
    assert all(torch.equal(tensors1[k], tensors2[k]) for k in tensors1)
    assert not all(torch.equal(tensors1[k], tensors3[k]) for k in tensors1)
    assert first.stat().st_size == second.stat().st_size

    with pytest.warns(UserWarning, match="untrained"):
        det = Detector(first, device="cpu")
    assert det.config.backbone == "IPAD-Tiny-ViT-16"
    result = det.detect(_image(30, 45, 0))
    assert result.image_size == (30, 45)
    assert main(["info", str(first)]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["backbone"] == "IPAD-Tiny-ViT-16"


def test_create_bundle_refuses_a_pickle_checkpoint_clearly(tmp_path, capsys):
    checkpoint = tmp_path / "clip.pt"
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1)}, checkpoint)
    out = tmp_path / "m.safetensors"
    assert main(["create-bundle", str(out), "--pretrained", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert f"{checkpoint}: refused: this checkpoint holds pickled Python objects" in err
    assert "Traceback" not in err and not out.exists()


def test_create_bundle_same_seed_is_byte_identical(tmp_path, capsys):
    # safetensors writes its metadata map in a random order unless save_bundle canonicalises the
    # header; with 12 + 32 files an unordered header would show up with certainty (~1 - 2**-42).
    from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

    digests = set()
    for i in range(12):
        path = tmp_path / f"cli{i}.safetensors"
        assert main(["create-bundle", str(path), "--seed", "0"]) == 0
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
    capsys.readouterr()
    model = build_ipad_clip(TINY_BACKBONE, seed=0, description="same")
    for i in range(32):
        path = save_bundle(model, tmp_path / f"api{i}.safetensors")
        digests.add(("api", hashlib.sha256(path.read_bytes()).hexdigest()))
    assert len({d for d in digests if isinstance(d, str)}) == 1
    assert len({d for d in digests if isinstance(d, tuple)}) == 1


# -- batch helpers ----------------------------------------------------------------------------


def test_discover_and_output_keys(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden_dir").mkdir()
    (root / "Sub2").mkdir()
    for rel in ("b.png", "a.JPG", "sub/x.png", "Sub2/x.png", ".hidden.png", ".hidden_dir/h.png",
                "readme.txt", "noext"):  # fmt: skip
        (root / rel).write_bytes(b"x")
    extra = tmp_path / "other" / "x.png"
    extra.parent.mkdir()
    extra.write_bytes(b"x")
    named_txt = root / "readme.txt"

    files = discover([root, root / "b.png", str(root), named_txt, extra, extra])
    assert files == [
        root / "a.JPG",
        root / "b.png",
        root / "Sub2" / "x.png",
        root / "sub" / "x.png",
        named_txt,  # named explicitly: kept whatever its suffix
        extra,
    ]
    assert len(set(files)) == len(files)
    assert not any(part.startswith(".") for f in files for part in f.relative_to(tmp_path).parts)

    keys = output_keys(files)
    assert keys == [
        "data/a.JPG",
        "data/b.png",
        "data/Sub2/x.png",
        "data/sub/x.png",
        "data/readme.txt",
        "other/x.png",
    ]
    assert len(set(keys)) == len(keys)
    assert all(not k.startswith("/") and ".." not in k.split("/") for k in keys)

    assert output_keys([]) == []
    assert output_keys([root / "b.png"]) == ["b.png"]
    # same file names in different folders get distinct keys, in argument order
    assert output_keys(discover([root / "sub", root / "Sub2"])) == ["sub/x.png", "Sub2/x.png"]
    missing = tmp_path / "missing.png"
    assert discover([missing]) == [missing]


def test_discover_relative_paths(tmp_path, monkeypatch):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    files = discover(["d", "d/a.png", Path("d") / "a.png"])
    assert files == [Path("d/a.png")]
    assert output_keys(files) == ["a.png"]


def test_discover_same_file_two_spellings(tmp_path, monkeypatch):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.png").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    files = discover(["d", str(root)])
    keys = output_keys(files)
    assert len(set(keys)) == len(keys)


def test_out_folder_inside_an_input_folder_is_never_an_input(image_dir, tiny_bundle, tmp_path):
    root = image_dir["root"]
    out = root / "results"
    args = ["detect", str(root), "-m", str(tiny_bundle), "-o", str(out), "--save-masks",
            "--save-overlays", "--device", "cpu", "-q"]  # fmt: skip
    for _ in range(2):  # the second run finds the first run's masks and overlays in the folder
        assert main(args) == 1
        records = _read_jsonl(out / "results.jsonl")
        assert [r["source"] for r in records] == [str(p) for p in image_dir["order"]]
    assert discover([root], exclude=out) == image_dir["order"]
    assert discover([out / "masks"], exclude=out) == []


def test_an_input_folder_inside_the_out_folder_is_searched(tiny_bundle, tmp_path):
    project = tmp_path / "project"
    (project / "photos").mkdir(parents=True)
    for k in range(2):
        Image.fromarray(_image(40, 56, k)).save(project / "photos" / f"p{k}.png")
    args = ["detect", str(project / "photos"), "-m", str(tiny_bundle), "-o", str(project),
            "--save-masks", "--save-overlays", "--device", "cpu", "-q"]  # fmt: skip
    for _ in range(2):  # the second run does not take the first run's pictures for inputs
        assert main(args) == 0
        records = _read_jsonl(project / "results.jsonl")
        assert [Path(r["source"]).name for r in records] == ["p0.png", "p1.png"]
    assert discover([project], exclude=project) == [project / "photos" / "p0.png",
                                                    project / "photos" / "p1.png"]  # fmt: skip


# -- output-side failures -----------------------------------------------------------------------


def _detect_args(root: Path, bundle: Path, out: Path, *extra: str) -> list[str]:
    return ["detect", str(root), "-m", str(bundle), "-o", str(out), "--save-masks",
            "--device", "cpu", "-q", *extra]  # fmt: skip


def test_out_that_is_a_file_is_a_clear_error(image_dir, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "out"
    out.write_text("keep me")
    assert main(_detect_args(image_dir["root"], tiny_bundle, out)) == 2
    assert f"{out}: the output folder is a file" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_a_folder_in_the_way_of_one_output_fails_that_file_only(image_dir, tiny_bundle, tmp_path):
    out = tmp_path / "out"
    blocker = out / "masks" / "a.png.png"
    (blocker / "x").mkdir(parents=True)
    assert main(_detect_args(image_dir["root"], tiny_bundle, out)) == 1
    records = {r["source"]: r for r in _read_jsonl(out / "results.jsonl")}
    blocked = records[str(image_dir["root"] / "a.png")]
    assert blocked["error_type"] == "OutputError" and str(blocker) in blocked["error"]
    assert "mask" not in blocked
    assert (out / records[str(image_dir["root"] / "b.jpg")]["mask"]).is_file()
    assert _leftovers(out) == []


def test_disk_full_stops_cleanly_and_resume_finishes(image_dir, tiny_bundle, tmp_path, capsys,
                                                     monkeypatch):  # fmt: skip
    import errno

    import ipad_sdk.outputs as outputs

    reference = tmp_path / "reference"
    assert main(_detect_args(image_dir["root"], tiny_bundle, reference, "--batch-size", "2")) == 1
    writes: list[Path] = []
    real_write = outputs.atomic_write_bytes

    def disk_full_at_the_third_write(path: Path, data: bytes) -> Path:
        writes.append(path)
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_write(path, data)

    monkeypatch.setattr(outputs, "atomic_write_bytes", disk_full_at_the_third_write)
    out = tmp_path / "out"
    assert main(_detect_args(image_dir["root"], tiny_bundle, out, "--batch-size", "2")) == 2
    err = capsys.readouterr().err
    assert f"{writes[2]}: cannot write output: No space left on device" in err
    assert not (out / "results.jsonl").exists()
    assert _leftovers(out) == [out / JOURNAL_NAME]
    monkeypatch.setattr(outputs, "atomic_write_bytes", real_write)
    resumed = _detect_args(image_dir["root"], tiny_bundle, out, "--batch-size", "2", "--resume")
    assert main(resumed) == 1
    assert _outputs(out) == _outputs(reference)


# -- long file names ----------------------------------------------------------------------------


def test_fit_name_shortens_without_collisions():
    short = "photo.jpg"
    assert fit_name(short, ".png") == "photo.jpg.png"
    long_a, long_b = "写" * 84 + "a.jpg", "写" * 84 + "b.jpg"  # 257 bytes each, one prefix
    fitted = {fit_name(n, ".png") for n in (long_a, long_b)}
    assert len(fitted) == 2
    for name in fitted:
        assert len(name.encode()) <= NAME_MAX and name.endswith(".png")
        assert name.startswith("写" * 10)
    assert fit_name(long_a, ".png") == fit_name(long_a, ".png")  # the same name every run
    assert len(fit_name("写" * 90, limit=100).encode()) <= 100  # cut at a character boundary


@pytest.mark.parametrize("chars", [78, 83])  # the report's 234 bytes; 249 (name + .png > 255)
def test_long_file_names_are_written_under_a_name_that_fits(tiny_bundle, tmp_path, chars, capsys):
    root = tmp_path / "photos"
    root.mkdir()
    long = root / ("写" * chars + ".jpg")
    long.write_bytes(_jpeg_bytes(_image(30, 40, 1)))
    Image.fromarray(_image(20, 24, 2)).save(root / "a.png")
    out = tmp_path / "out"
    code = main(["detect", str(root), "-m", str(tiny_bundle), "-o", str(out), "--save-masks",
                 "--save-overlays", "--device", "cpu", "-q"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    records = _read_jsonl(out / "results.jsonl")
    assert [r["source"] for r in records] == [str(root / "a.png"), str(long)]
    for record in records:
        for kind in ("mask", "overlay"):
            written = out / record[kind]
            assert written.is_file() and len(os.fsencode(written.name)) <= NAME_MAX
    assert _leftovers(out) == []


def test_ray_outputs_use_the_same_shortened_names(tiny_bundle, tmp_path):
    from ipad_sdk.integrations.ray import write_outputs

    files = [tmp_path / ("写" * 84 + ".png"), tmp_path / "a.png"]
    rows = [{"source": str(f), "label": "clean", "score_clean": 1.0, "mask_png": b"png"}
            for f in files]  # fmt: skip
    write_outputs(rows, files, tmp_path / "out", "jsonl", ["clean"])
    records = _read_jsonl(tmp_path / "out" / "results.jsonl")
    assert records[1]["mask"] == "masks/a.png.png"
    assert records[0]["mask"] == "masks/" + fit_name(files[0].name, ".png")
    assert (tmp_path / "out" / records[0]["mask"]).read_bytes() == b"png"


def test_interrupted_run_leaves_no_results_file(image_dir, tiny_bundle, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=2)
    out = tmp_path / "out"
    files = discover([image_dir["root"]])
    calls: list[int] = []

    def progress(n: int) -> None:
        calls.append(n)
        raise KeyboardInterrupt

    for fmt in ("jsonl", "csv"):
        calls.clear()
        with pytest.raises(KeyboardInterrupt):
            run_batch(det, files, out, fmt, save_masks=True, save_overlays=True, progress=progress)
        assert calls == [2]
        assert not (out / f"results.{fmt}").exists()
        assert _leftovers(out) == [out / JOURNAL_NAME]  # kept for --resume
        assert len(_read_jsonl(out / JOURNAL_NAME)) == 1 + 2  # settings + the finished chunk
    # the completed chunk's masks were written whole, under their final names
    masks = sorted(p.relative_to(out).as_posix() for p in (out / "masks").rglob("*.png"))
    assert masks == ["masks/a.png.png", "masks/b.jpg.png"]


def test_run_batch_summary_and_progress(image_dir, tiny_bundle, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=3)
    out = tmp_path / "out"
    files = discover([image_dir["root"]])
    calls: list[int] = []
    summary = run_batch(det, files, out, "jsonl", save_masks=True, progress=calls.append)
    assert calls == [3, 1]
    assert summary.ok == 3
    assert summary.total == 4
    assert [source for source, _ in summary.failed] == [str(image_dir["bad"])]
    assert len(_read_jsonl(out / "results.jsonl")) == 4
    assert _leftovers(out) == []
    with pytest.raises(ValueError, match="output folder"):
        run_batch(det, files, None, save_masks=True)


# -- resume -------------------------------------------------------------------------------------
def _outputs(folder: Path) -> dict[str, object]:
    """Every file under ``folder``: its bytes, or for a results file its records without their
    timings (which differ from run to run)."""
    return {p.relative_to(folder).as_posix(): _untimed(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def _untimed(path: Path) -> object:
    if path.name == "results.jsonl":
        records = _read_jsonl(path)
    elif path.name == "results.csv":
        with open(path, newline="", encoding="utf-8") as fh:
            records = list(csv.DictReader(fh))
    else:
        return path.read_bytes()
    assert all("timings_ms" in r for r in records if not r.get("error"))
    return [{k: v for k, v in r.items() if k != "timings_ms"} for r in records]


def test_resume_after_an_interruption_gives_the_uninterrupted_outputs(
    image_dir, tiny_bundle, tmp_path
):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=1)
    files = discover([image_dir["root"]])
    reference = tmp_path / "reference"
    run_batch(det, files, reference, "csv", save_masks=True, save_overlays=True)

    out = tmp_path / "out"
    calls: list[int] = []

    def stop_after_two(n: int) -> None:
        calls.append(n)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(det, files, out, "csv", True, True, progress=stop_after_two)
    # a killed writer may leave half a line at the end of the journal and a half-written
    # temporary file: resume drops the one and deletes the other
    with open(out / JOURNAL_NAME, "a") as fh:
        fh.write('{"source": "half a reco')
    (out / "masks" / ".c.png.png.0123456789ab.tmp").write_bytes(b"\x89PNG half")
    seen: list[int] = []
    detected: list[str] = []
    original = det.stream

    def counted(images, *args, **kwargs):
        return original((detected.append(i.source) or i for i in images), *args, **kwargs)

    det.stream = counted
    summary = run_batch(det, files, out, "csv", True, True, progress=seen.append, resume=True)
    assert seen[0] == 2 and sum(seen) == len(files)  # the two finished files are skipped
    # only the files not yet done are read again, through the Detector's stream
    assert detected == [str(image_dir["bad"]), str(image_dir["root"] / "sub" / "c.png")]
    assert summary.ok == 3 and len(summary.failed) == 1
    assert _outputs(out) == _outputs(reference)  # same results file, masks and overlays


def _interrupt_after_one_batch(det: Detector, files: list[Path], out: Path, **options) -> None:
    """A JSONL run into ``out`` stopped (as by Ctrl-C) once its first batch is written."""

    def stop(n: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch(det, files, out, "jsonl", progress=stop, **options)


def test_resume_refuses_another_runs_journal(image_dir, tiny_bundle, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=2)
    files = discover([image_dir["root"]])
    out = tmp_path / "out"

    _interrupt_after_one_batch(det, files, out, save_masks=True)
    with pytest.raises(ResumeError, match="other settings"):
        run_batch(det, files, out, "jsonl", save_masks=False, resume=True)
    with pytest.raises(ValueError, match="output folder"):
        run_batch(det, files, None, resume=True)
    # without --resume the journal is simply started over
    assert run_batch(det, files, out, "jsonl").ok == 3
    assert not (out / JOURNAL_NAME).exists()


def test_resume_refuses_another_model_at_the_same_path(image_dir, tiny_bundle, tmp_path, capsys):
    from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

    model = tmp_path / "model.safetensors"
    shutil.copyfile(tiny_bundle, model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(model, device="cpu", batch_size=2)
    files = discover([image_dir["root"]])
    out = tmp_path / "out"

    _interrupt_after_one_batch(det, files, out)
    save_bundle(build_ipad_clip(TINY_BACKBONE, seed=1, description="another model"), model)
    code = main(["detect", str(image_dir["root"]), "-m", str(model), "-o", str(out), "--resume",
                 "--batch-size", "2", "--device", "cpu", "-q"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "model_sha256" in err
    assert not (out / "results.jsonl").exists()
    assert len(_read_jsonl(out / JOURNAL_NAME)) == 1 + 2  # kept as it was
    (out / JOURNAL_NAME).write_text("not json\n")
    with pytest.raises(ResumeError, match="not a journal"):
        run_batch(det, files, out, "jsonl", resume=True)


def test_resume_accepts_the_same_model_by_another_path(image_dir, tiny_bundle, tmp_path):
    model = tmp_path / "model.safetensors"
    shutil.copyfile(tiny_bundle, model)
    (tmp_path / "current.safetensors").symlink_to(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(model, device="cpu", batch_size=2)
        via_link = Detector(tmp_path / "current.safetensors", device="cpu", batch_size=2)
    files = discover([image_dir["root"]])
    out = tmp_path / "out"

    _interrupt_after_one_batch(det, files, out)
    summary = run_batch(via_link, files, out, "jsonl", resume=True)  # compared by SHA-256
    assert summary.ok == 3 and [Path(f).name for f, _ in summary.failed] == ["broken.jpg"]
    assert len(_read_jsonl(out / "results.jsonl")) == 4


@pytest.mark.parametrize("change", ["deleted", "resized"])
def test_an_input_gone_or_changed_before_its_overlay_is_one_failure(tiny_bundle, tmp_path, change):
    from ipad_sdk import runner

    folder = tmp_path / "in"
    folder.mkdir()
    for k in range(3):
        Image.fromarray(_image(40, 56, k)).save(folder / f"x{k}.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(tiny_bundle, device="cpu", batch_size=1)
    original = runner._save_outputs

    def alter_then_save(result, item, *args):  # x1 changes after detection, before its overlay
        if result.source.endswith("x1.png"):
            if change == "deleted":
                Path(result.source).unlink()
            else:
                Image.fromarray(_image(64, 80, 9)).save(result.source)
        return original(result, item, *args)

    runner._save_outputs = alter_then_save
    try:
        summary = run_batch(det, discover([folder]), tmp_path / "out", "jsonl", save_overlays=True)
    finally:
        runner._save_outputs = original
    assert summary.ok == 2 and [Path(f).name for f, _ in summary.failed] == ["x1.png"]
    records = {Path(r["source"]).name: r for r in _read_jsonl(tmp_path / "out" / "results.jsonl")}
    assert records["x1.png"]["error_type"] == "InputError"
    words = "file not found" if change == "deleted" else "changed while it was processed"
    assert words in records["x1.png"]["error"] and "overlay" in records["x1.png"]["error"]
    assert "error" not in records["x0.png"] and "error" not in records["x2.png"]
    overlays = sorted(p.name for p in (tmp_path / "out" / "overlays").iterdir())
    assert overlays == ["x0.png.png", "x2.png.png"]


def test_a_file_name_that_is_not_utf8_is_written_to_csv_as_its_bytes(tiny_bundle, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_image(40, 56, 1)).save(folder / "ok.png")
    Image.fromarray(_image(40, 56, 2)).save(os.fsencode(folder) + b"/caf\xe9.png")  # Latin-1 name
    out = tmp_path / "out"
    code = main(["detect", str(folder), "-m", str(tiny_bundle), "-o", str(out), "--format", "csv",
                 "--device", "cpu", "-q"])  # fmt: skip
    assert code == 0
    rows = (out / "results.csv").read_bytes().splitlines()[1:]
    names = sorted(os.path.basename(row.split(b",")[0]) for row in rows)
    assert names == [b"caf\xe9.png", b"ok.png"]  # the name as the file system holds it


def test_resume_after_killing_a_real_process(tiny_bundle, tmp_path):
    """SIGKILL an `ipad detect` subprocess mid-run, resume it, compare with a clean run."""
    import signal
    import subprocess
    import time

    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        Image.fromarray(_image(48 + i, 64, i)).save(images / f"{i:03d}.png")
    script = [sys.executable, "-m", "ipad_sdk.cli", "detect", str(images), "--model",
              str(tiny_bundle), "--device", "cpu", "--batch-size", "1", "--save-masks",
              "-q"]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    ref = subprocess.run([*script, "--out", str(tmp_path / "ref")], env=env, timeout=300)
    assert ref.returncode == 0
    out = tmp_path / "out"
    proc = subprocess.Popen([*script, "--out", str(out)], env=env)
    journal = out / JOURNAL_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some, not all, files are done
        if journal.exists() and len(journal.read_text().splitlines()) > 6:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done = len(journal.read_text().splitlines()) - 1
    assert 0 < done < 40, done
    assert not (out / "results.jsonl").exists()
    for mask in (out / "masks").glob("*.png"):  # whatever was written is whole
        assert Image.open(mask).size[0] == 64
    resumed = subprocess.run([*script, "--out", str(out), "--resume"], env=env, timeout=300)
    assert resumed.returncode == 0
    want, got = _outputs(tmp_path / "ref"), _outputs(out)
    assert [k for k in got if k.startswith(".") or ".tmp" in k] == []
    assert got == want


def test_repeated_ctrl_c_exits_quietly_with_130(tiny_bundle, tmp_path):
    """SIGINT, then more every 5 ms until the process ends (the second lands during the cleanup,
    the return or the interpreter's shutdown): always exit code 130, no traceback."""
    import signal
    import subprocess
    import time

    images = tmp_path / "images"
    images.mkdir()
    for i in range(40):
        Image.fromarray(_image(48, 64, i)).save(images / f"{i:03d}.png")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ipad_sdk.cli", "detect", str(images), "--model", str(tiny_bundle),
         "--device", "cpu", "--batch-size", "1", "--save-masks", "-q", "--out", str(out)],
        env=os.environ | {"OMP_NUM_THREADS": "1"}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    journal = out / JOURNAL_NAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (
        journal.exists() and len(journal.read_text().splitlines()) > 2
    ):
        time.sleep(0.02)
    while proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.005)
    stderr = proc.stderr.read()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert stderr.count("interrupted") <= 1, stderr
    assert not (out / "results.jsonl").exists()


def test_discover_follows_symlinked_folders_once(tmp_path):
    photos, other = tmp_path / "photos", tmp_path / "elsewhere"
    (photos / "sub").mkdir(parents=True)
    other.mkdir()
    for path in (photos / "a.png", photos / "sub" / "b.png", other / "c.png"):
        path.write_bytes(b"x")
    (photos / "linked").symlink_to(other, target_is_directory=True)
    (photos / "sub" / "loop").symlink_to(photos, target_is_directory=True)  # back up: a loop
    (photos / "again").symlink_to(photos / "sub", target_is_directory=True)  # a folder twice
    files = discover([photos])
    assert files == [photos / "a.png", photos / "again" / "b.png", photos / "linked" / "c.png"]
    assert output_keys(files) == ["a.png", "again/b.png", "linked/c.png"]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_records_to_a_full_stdout_are_an_output_error(image_dir, tiny_bundle, fmt):
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "ipad_sdk.cli", "detect", str(image_dir["root"]), "--model",
             str(tiny_bundle), "--device", "cpu", "--format", fmt],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "ipad detect: error: <stdout>: cannot write output: No space left" in proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
