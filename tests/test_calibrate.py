"""``ipad calibrate``: thresholds from plain folders, written into model files in place."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ipad_sdk import Detector
from ipad_sdk.calibrate import Calibration, write_thresholds
from ipad_sdk.cli import main
from ipad_sdk.metadata import read_bundle_config, read_engine_metadata, read_safetensors_header


def _photos(folder: Path, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = folder / f"{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (40 + 3 * i, 56, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def _detector(model: Path, **options) -> Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(model, device="cpu", **options)


def _tensor_bytes(bundle: Path) -> bytes:
    """Everything after the safetensors header: the weights."""
    data = bundle.read_bytes()
    return data[8 + int.from_bytes(data[:8], "little") :]


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, object]:
    clean = _photos(tmp_path / "clean", 12, seed=1)
    (tmp_path / "clean" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    artifacts = _photos(tmp_path / "artifacts", 6, seed=2)
    return {"clean": clean, "artifacts": artifacts, "root": tmp_path}


def test_calibrates_a_bundle_in_place(tiny_bundle, folders, tmp_path, capsys):
    model = shutil.copy(tiny_bundle, tmp_path / "m.safetensors")
    before = read_bundle_config(model)
    code = main(["calibrate", str(model), "--clean", str(tmp_path / "clean"), "--artifacts",
                 str(tmp_path / "artifacts"), "--fpr", "0.25", "--pixel-fpr", "0.05",
                 "--device", "cpu"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    assert "skipped: " in err and "broken.jpg" in err  # reported, and the run went on
    assert "of 12 clean images flagged" in out and "of 6 artifact images caught" in out
    assert "of clean pixels in the mask" in out
    after = read_bundle_config(model)
    assert after.replace(image_threshold=0.5, pixel_threshold=0.5) == before.replace(
        image_threshold=0.5, pixel_threshold=0.5
    )  # only the thresholds changed ...
    assert _tensor_bytes(model) == _tensor_bytes(tiny_bundle)  # ... and not one weight
    assert read_safetensors_header(model)["__metadata__"]["format"] == "ipad-bundle"
    flagged = [r.is_artifact for r in _detector(model).detect_batch(folders["clean"])]
    assert 0 < np.mean(flagged) <= 0.25
    assert f"{np.mean(flagged):.1%} of 12 clean images flagged" in out
    plot = tmp_path / "m.calibration.png"
    assert f"plot -> {plot}" in out
    with Image.open(plot) as image:
        assert image.format == "PNG"


def test_a_linked_model_is_calibrated_through_its_link_keeping_its_mode(tiny_bundle, folders,
                                                                       tmp_path):  # fmt: skip
    real = shutil.copy(tiny_bundle, tmp_path / "v3.safetensors")
    Path(real).chmod(0o640)
    link = tmp_path / "current.safetensors"
    link.symlink_to("v3.safetensors")
    code = main(["calibrate", str(link), "--clean", str(tmp_path / "clean"), "--fpr", "0.25",
                 "--device", "cpu"])  # fmt: skip
    assert code == 0
    assert link.is_symlink() and link.resolve() == Path(real).resolve()
    assert (
        read_bundle_config(real).image_threshold != read_bundle_config(tiny_bundle).image_threshold
    )
    assert Path(real).stat().st_mode & 0o777 == 0o640


def test_an_unwritable_plot_is_an_output_error_that_leaves_the_model(tiny_bundle, folders,
                                                                     tmp_path, capsys):  # fmt: skip
    model = shutil.copy(tiny_bundle, tmp_path / "m.safetensors")
    (tmp_path / "plots").mkdir()
    code = main(["calibrate", str(model), "--clean", str(tmp_path / "clean"), "--plot",
                 str(tmp_path / "plots"), "--device", "cpu"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'plots'}: cannot write output" in err and "model was not changed" in err
    assert Path(model).read_bytes() == Path(tiny_bundle).read_bytes()


def test_same_flags_whatever_the_batch_size_and_thread_count(tiny_bundle, folders, tmp_path):
    """The fresh-clone failure of issue 20, end to end: calibrated with one batch size and thread
    count, applied with others, the same photos are flagged."""
    threads = torch.get_num_threads()
    flags = []
    try:
        for batch, n_threads, apply_batch in ((1, 1, 5), (5, 2, 1), (12, 1, 3)):
            torch.set_num_threads(n_threads)
            model = shutil.copy(tiny_bundle, tmp_path / f"m{batch}.safetensors")
            assert main(["calibrate", str(model), "--clean", str(tmp_path / "clean"), "--fpr",
                         "0.25", "--batch-size", str(batch), "--device", "cpu",
                         "--plot", str(tmp_path / "plot.png")]) == 0  # fmt: skip
            torch.set_num_threads(3 - n_threads)
            results = _detector(model, batch_size=apply_batch).detect_batch(folders["clean"])
            flags.append([r.is_artifact for r in results])
    finally:
        torch.set_num_threads(threads)
    assert flags[0] == flags[1] == flags[2]
    assert 0 < sum(flags[0]) <= 3  # 25 % of 12


def test_calibrates_an_onnx_file_in_place(tiny_bundle, folders, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from ipad_sdk.export.onnx import export_onnx

    model = export_onnx(tiny_bundle, tmp_path / "m.onnx")
    assert main(["calibrate", str(model), "--clean", str(tmp_path / "clean"), "--fpr", "0.25",
                 "--device", "cpu"]) == 0  # fmt: skip
    det = _detector(model)
    assert det.config.image_threshold != 0.5
    assert 0 < np.mean([r.is_artifact for r in det.detect_batch(folders["clean"])]) <= 0.25


def test_writes_an_engines_sidecar_and_leaves_the_plan_alone(tiny_bundle, tmp_path):
    from benchmarks.trt_stand_in import write_stand_in_engine

    plan = write_stand_in_engine(tiny_bundle, tmp_path / "m.plan", (1, 4, 8))
    blob = plan.read_bytes()
    config, _ = read_engine_metadata(plan)
    write_thresholds(plan, config, Calibration(0.625, 0.375, clean_images=4, clean_flagged=0.25))
    new, meta = read_engine_metadata(plan)  # the plan's size and SHA-256 check still pass
    assert (new.image_threshold, new.pixel_threshold) == (0.625, 0.375)
    assert new.replace(image_threshold=config.image_threshold,
                       pixel_threshold=config.pixel_threshold) == config  # fmt: skip
    assert plan.read_bytes() == blob and meta["tensorrt"]["plan_bytes"] == len(blob)


@pytest.mark.parametrize(
    "case",
    ["empty folder", "only unreadable", "fpr 0", "fpr 1", "fpr 1.5", "pixel fpr 1", "no --clean",
     "same files", "not a folder"],
)  # fmt: skip
def test_bad_input_is_a_usage_error_that_writes_nothing(tiny_bundle, folders, tmp_path, case):
    model = shutil.copy(tiny_bundle, tmp_path / "m.safetensors")
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"not a png")
    clean, artifacts = str(tmp_path / "clean"), str(tmp_path / "artifacts")
    extra = {
        "empty folder": ["--clean", str(tmp_path / "empty")],
        "only unreadable": ["--clean", str(tmp_path / "junk")],
        "fpr 0": ["--clean", clean, "--fpr", "0"],
        "fpr 1": ["--clean", clean, "--fpr", "1"],
        "fpr 1.5": ["--clean", clean, "--fpr", "1.5"],
        "pixel fpr 1": ["--clean", clean, "--pixel-fpr", "1"],
        "no --clean": ["--artifacts", artifacts],
        "same files": ["--clean", clean, "--artifacts", clean],
        "not a folder": ["--clean", str(folders["clean"][0])],
    }[case]
    before = sorted(p for p in tmp_path.rglob("*"))
    try:
        code = main(["calibrate", str(model), *extra, "--device", "cpu"])
    except SystemExit as exc:  # argparse: a required option missing
        code = exc.code
    assert code == 2
    assert Path(model).read_bytes() == Path(tiny_bundle).read_bytes()
    assert sorted(p for p in tmp_path.rglob("*")) == before  # no plot, no temporary file
