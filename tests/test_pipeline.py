"""One pipeline under every front end: named inputs, a Detector on any Backend (closed by a ``with``
block), the one chunk/pad helper, the one device parser, and error records that name their input
without editing messages (``ipad detect``, Ray's actor, the Triton servers' shared code)."""

from __future__ import annotations

import io
import json
import platform
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from ipad_sdk import Detector, InputError, Named
from ipad_sdk.backends import batch_chunks, pad_rows, parse_device, run_chunked
from ipad_sdk.io import load_pixels
from ipad_sdk.runner import run_batch
from ipad_sdk.tiling import TilingSpec


def _quiet(*args, **kwargs) -> Detector:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-model warning
        return Detector(*args, **kwargs)


def _png(height: int, width: int, seed: int) -> bytes:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


class Remote:
    """A Backend instance of the caller's: the network behind a call (here: another backend's
    ``run``), counting the images it is sent."""

    name = "remote"
    device = "cpu"

    def __init__(self, inner) -> None:
        self.inner = inner
        self.config, self.input_format = inner.config, inner.input_format
        self.precision = inner.precision
        self.sent: list[int] = []
        self.closed = False

    def run(self, batch):
        self.sent.append(len(batch))
        return self.inner.run(batch)

    def close(self) -> None:
        self.closed = True


# -- chunk/pad helper -----------------------------------------------------------------------------
def _rowwise(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A stand-in network whose outputs identify their input rows."""
    rows = np.asarray(batch, dtype=np.float32)
    return rows[:, :1, 0, 0], rows.reshape(len(rows), -1)[:, None, :2]


def test_run_chunked_pads_short_chunks_with_their_last_row_and_trims():
    batch = np.arange(7, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 1, 1), np.float32)
    seen: list[list[float]] = []

    def network(chunk):
        seen.append([float(x) for x in chunk[:, 0, 0, 0]])
        return _rowwise(chunk)

    class_probs, pixel_probs = run_chunked(network, batch, 3, pad_to=3)
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 6, 6]]  # fixed batch 3: the last one padded
    np.testing.assert_array_equal(class_probs[:, 0], np.arange(7))
    np.testing.assert_array_equal(pixel_probs[:, 0, 0], np.arange(7))
    seen.clear()
    run_chunked(network, batch[:5], 4, pad_to=2)  # a profile of 2..4 images
    assert seen == [[0, 1, 2, 3], [4, 4]]
    seen.clear()
    run_chunked(network, batch[:5], None)  # no limit: one call, no padding
    assert seen == [[0, 1, 2, 3, 4]]
    assert [(s.start, s.stop) for s in batch_chunks(5, 2)] == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ValueError, match="chunk size must be >= 1"):
        list(batch_chunks(3, 0))


def test_pad_rows_on_torch_tensors():
    torch = pytest.importorskip("torch")
    padded = pad_rows(torch.tensor([[1, 2], [3, 4]]), 4)
    assert padded.tolist() == [[1, 2], [3, 4], [3, 4], [3, 4]]
    assert pad_rows(np.zeros((3, 1)), 2).shape == (3, 1)  # never cut


def test_compiled_torch_path_pads_through_the_helper(tiny_bundle):
    """The torch backend's fixed-batch path (``compile_batch``) runs exact chunks of it; its
    outputs equal the eager backend's (the padding rows are dropped)."""
    from ipad_sdk.backends.torch_backend import TorchBackend

    eager = TorchBackend(tiny_bundle, "cpu")
    fixed = TorchBackend(tiny_bundle, "cpu")
    fixed.compile_batch = 3  # the chunking of the compiled path, without compiling
    sizes: list[int] = []
    forward = fixed._forward
    fixed._forward = lambda images: sizes.append(len(images)) or forward(images)
    batch = np.random.default_rng(0).standard_normal((4, 3, 64, 64)).astype(np.float32)
    got, want = fixed.run(batch), eager.run(batch)
    assert sizes == [3, 3]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


# -- device strings -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("device", "parsed"),
    [("auto", ("auto", None)), ("cpu", ("cpu", None)), ("cuda", ("cuda", None)),
     ("cuda:0", ("cuda", 0)), ("cuda:12", ("cuda", 12))],
)  # fmt: skip
def test_parse_device_accepts(device, parsed):
    assert parse_device(device) == parsed


@pytest.mark.parametrize("device", ["", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cudax",
                                    "cuda:1:2", "cpu:0", "mps", " cuda", "cuda:١"])  # fmt: skip
def test_every_backend_refuses_the_same_device_strings(device):
    from ipad_sdk.backends.onnx_backend import choose_providers
    from ipad_sdk.backends.torch_backend import resolve_device
    from ipad_sdk.backends.trt_backend import cuda_device_index

    with pytest.raises(ValueError, match="device must be"):
        parse_device(device)
    with pytest.raises(ValueError, match="device must be"):
        choose_providers(device, ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="device must be"):
        cuda_device_index(device)
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="device must be"):
        resolve_device(device)


def test_device_rules_per_backend():
    from ipad_sdk.backends.onnx_backend import choose_providers
    from ipad_sdk.backends.trt_backend import cuda_device_index

    assert [cuda_device_index(d) for d in ("auto", "cuda", "cuda:3")] == [0, 0, 3]
    with pytest.raises(ValueError, match="runs on an NVIDIA GPU"):
        cuda_device_index("cpu")
    gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda:2", gpu)[0] == ("CUDAExecutionProvider", {"device_id": 2})
    assert choose_providers("cpu", gpu) == ["CPUExecutionProvider"]


# -- close and the context manager ----------------------------------------------------------------
def test_detector_is_a_context_manager_that_closes_its_backend(tiny_bundle, rgb_image):
    with _quiet(tiny_bundle, device="cpu") as det:
        assert det.detect(rgb_image).ok
    with pytest.raises(RuntimeError, match="torch backend is closed"):
        det.detect(rgb_image)
    det.close()  # twice: harmless


def test_onnx_backend_closes(tiny_bundle, tmp_path, rgb_image):
    pytest.importorskip("onnxslim")
    from ipad_sdk.export.onnx import export_onnx

    onnx = export_onnx(tiny_bundle, tmp_path / "tiny.onnx")
    det = _quiet(onnx, device="cpu")
    assert det.detect(rgb_image).ok
    det.close()
    assert det.backend.session is None
    with pytest.raises(RuntimeError, match="onnxruntime backend is closed"):
        det.detect(rgb_image)
    det.close()


# -- a Detector on a Backend instance -------------------------------------------------------------
def test_detector_on_a_backend_instance_is_the_same_pipeline(tiny_bundle, tmp_path):
    spec = TilingSpec(scale=0.5, overlap=0.25)
    local = _quiet(tiny_bundle, device="cpu", batch_size=2, tiling=spec)
    remote = Remote(local.backend)
    wrapped = _quiet(remote, batch_size=2, tiling=spec)
    assert wrapped.model_path == "<remote backend>" and wrapped.device == "cpu"
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    items = [_png(300, 280, 1), str(bad), Named("photo.png", _png(40, 50, 2)), _png(9, 130, 3)]
    got, want = list(wrapped.stream(items)), list(local.stream(items))
    assert [r.ok for r in got] == [True, False, True, True]
    assert got[1].to_dict() == want[1].to_dict()
    assert got[2].source == "photo.png"
    for g, w in zip([got[0], *got[2:]], [want[0], *want[2:]], strict=True):
        assert (g.label, g.source, g.image_size) == (w.label, w.source, w.image_size)
        np.testing.assert_allclose(g.pixel_probs, w.pixel_probs, atol=1e-6)
        assert g.scores == pytest.approx(w.scores, abs=1e-6)
    assert got[0].pixel_probs.shape == (4, 150, 140)  # tiled through the wrapped backend
    # the first image's whole view and its tiles, then the rest, never above the batch size
    assert max(remote.sent) <= 2 and sum(remote.sent) > 3
    with wrapped:
        pass
    assert remote.closed


def test_backend_instance_refuses_file_options(tiny_bundle):
    det = _quiet(tiny_bundle, device="cpu")
    with pytest.raises(ValueError, match="device, threads: these open a model file"):
        Detector(det.backend, device="cpu", threads=2)


# -- named inputs: errors carry their source ------------------------------------------------------
def test_named_inputs_name_results_and_errors(detector, tmp_path):
    blob = b"garbage, not an image"
    expected = str(pytest.raises(InputError, load_pixels, blob).value)  # names "<21 bytes>"
    assert expected.startswith("<21 bytes>: ")
    out = list(
        detector.stream([Named("shots/x.png", blob), blob, Named("ok.png", _png(20, 30, 0))])
    )
    named, unnamed, ok = out
    assert named.source == named.error.source == "shots/x.png"
    assert str(named.error) == "shots/x.png: " + expected.split(": ", 1)[1]
    assert unnamed.source is None and unnamed.error.source is None
    assert str(unnamed.error) == expected
    assert ok.ok and ok.source == "ok.png"
    missing = tmp_path / "missing.jpg"
    (failure,) = detector.stream([missing])
    assert failure.error.source == str(missing)
    assert str(failure.error) == f"{missing}: file not found"


def test_cli_error_records_are_the_detectors_failures(detector, tmp_path):
    """``ipad detect`` records a bad file with the error the Detector's stream gives for it."""
    (tmp_path / "a.png").write_bytes(_png(20, 30, 1))
    (tmp_path / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n cut")
    (tmp_path / "c.png").write_bytes(b"")
    out = tmp_path / "out"
    summary = run_batch(detector, sorted(tmp_path.glob("*.png")), out, "jsonl")
    records = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    for name in ("b.png", "c.png"):
        (failure,) = detector.stream([tmp_path / name])
        record = next(r for r in records if r["source"] == str(tmp_path / name))
        assert (record["error_type"], record["error"]) == ("InputError", str(failure.error))
        assert record["error"].startswith(f"{tmp_path / name}: ")
    assert summary.ok == 1 and len(summary.failed) == 2


def test_ray_actor_names_bytes_by_their_path(tiny_bundle, tmp_path):
    from ipad_sdk.integrations.ray import DetectBatch

    actor = DetectBatch(str(tiny_bundle), device="cpu", masks=True)
    blobs = [_png(20, 30, 1), b"not an image"]
    names = [str(tmp_path / "a.png"), str(tmp_path / "b.png")]
    column = np.empty(2, dtype=object)
    column[:] = blobs
    rows = actor({"bytes": column, "path": np.array(names)})
    assert rows["source"] == names
    assert rows["error"][0] is None
    assert rows["error"][1] == f"{names[1]}: not an image (format not recognised)"
    mask = np.asarray(Image.open(io.BytesIO(rows["mask_png"][0])))
    assert mask.shape == (20, 30) and rows["mask_png"][1] is None


def test_triton_requests_are_named_by_their_sources_parameter(detector):
    from ipad_sdk.integrations.triton import (
        SOURCES,
        NetworkBackend,
        bytes_column,
        detect_requests,
        network_detector,
    )

    backend = NetworkBackend(detector.config, detector.backend.input_format, detector.backend.run,
                             max_batch=2)  # fmt: skip
    served = network_detector(backend, 2)
    first = bytes_column([_png(20, 30, 1), b"junk"])
    second = bytes_column([_png(40, 40, 2)])
    named = {SOURCES: json.dumps(["a.png", "b.png"])}
    columns = detect_requests(served, [(first, named), (second, None)])
    records = [[json.loads(r) for r in c["result"][:, 0]] for c in columns]
    assert [r["source"] for r in records[0]] == ["a.png", "b.png"]
    assert records[0][1]["error"] == "b.png: not an image (format not recognised)"
    assert records[1][0]["source"] is None
    want = detector.detect(_png(40, 40, 2))
    assert records[1][0]["scores"] == pytest.approx(want.scores, abs=1e-6)
    assert columns[1]["mask_png"][0, 0] == _mask_png(want.mask)
    # a malformed parameter fails its own request's images only, not the batch's other requests
    columns = detect_requests(
        served, [(first, {SOURCES: '["a"]'}), (second, {SOURCES: '["c.png"]'})]
    )
    bad = [json.loads(r) for r in columns[0]["result"][:, 0]]
    assert [(r["source"], r["error_type"]) for r in bad] == [(None, "InputError")] * 2
    assert bad[0]["error"] == "request parameter 'sources': expected a JSON list of 2 names"
    assert list(columns[0]["mask_png"][:, 0]) == [b"", b""]
    good = json.loads(columns[1]["result"][0, 0])
    assert good["source"] == "c.png" and good["scores"] == pytest.approx(want.scores, abs=1e-6)


def _mask_png(mask: np.ndarray) -> bytes:
    from ipad_sdk.outputs import mask_png

    return mask_png(mask)


def test_old_import_paths_still_work():
    from ipad_sdk import batch, discover, outputs, runner

    assert batch.run_batch is runner.run_batch and batch.discover is discover.discover
    assert batch.output_keys is outputs.output_keys and batch.png_bytes is outputs.png_bytes


def test_results_writer_formats(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from ipad_sdk.outputs import write_records

    records = [{"source": "=a.png", "label": "clean", "scores": {"clean": 0.9, "flare": 0.1}},
               {"source": "b.png", "error_type": "InputError", "error": "b.png: bad"}]  # fmt: skip
    columns = ("source", "label", "*scores", "error")
    write_records(tmp_path / "r.parquet", records, "parquet", ["clean", "flare"], columns=columns)
    assert pq.read_table(tmp_path / "r.parquet").to_pylist() == [
        {"source": "=a.png", "label": "clean", "score_clean": 0.9, "score_flare": 0.1,
         "error": None},
        {"source": "b.png", "label": None, "score_clean": None, "score_flare": None,
         "error": "b.png: bad"},
    ]  # fmt: skip
    write_records(tmp_path / "r.csv", records, "csv", ["clean", "flare"], columns=columns)
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines == ["source,label,score_clean,score_flare,error", "'=a.png,clean,0.9,0.1,",
                     "b.png,,,,b.png: bad"]  # fmt: skip
    write_records(tmp_path / "r.jsonl", records, "jsonl", [])
    assert [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()] == records
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.jsonl", "r.parquet"]


def test_cli_workers_change_nothing_but_speed(tiny_bundle, tmp_path, capsys):
    from ipad_sdk.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        (photos / f"{i}.png").write_bytes(_png(30 + 20 * i, 40, i))
    (photos / "bad.png").write_bytes(b"junk")
    base = ["detect", str(photos), "-m", str(tiny_bundle), "--device", "cpu", "-q"]
    assert main([*base, "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    records = {}
    for workers in ("1", "3"):
        out = tmp_path / f"out{workers}"
        assert main([*base, "--workers", workers, "-o", str(out), "--batch-size", "2"]) == 1
        lines = (out / "results.jsonl").read_text().splitlines()
        records[workers] = [
            {k: v for k, v in json.loads(x).items() if k != "timings_ms"} for x in lines
        ]
    assert records["1"] == records["3"]
    names = ("0.png", "1.png", "2.png", "bad.png")
    assert [r["source"] for r in records["1"]] == [str(photos / n) for n in names]


def test_a_named_yuv_frame_keeps_its_name(tiny_bundle):
    """A Named YUV frame (the YUV hook of Detector.detect) is converted from its data, and its
    result and its errors are named by it."""
    det = _quiet(tiny_bundle, device="cpu")
    w, h = 64, 48
    frame = np.random.default_rng(0).integers(0, 256, w * h * 3 // 2, dtype=np.uint8)
    named = det.detect(Named("cam0/frame17", frame), pixel_format="nv12", size=(w, h))
    plain = det.detect(frame, pixel_format="nv12", size=(w, h))
    assert named.source == "cam0/frame17"
    np.testing.assert_array_equal(named.heatmap, plain.heatmap)
    with pytest.raises(InputError, match="^cam0/frame17: "):
        det.detect(Named("cam0/frame17", frame[:-2]), pixel_format="nv12", size=(w, h))


def test_the_cli_runner_caps_malloc_arenas_where_glibc_allows(tmp_path, monkeypatch):
    """``ipad detect`` caps glibc's malloc arenas (decode threads would each keep one holding
    freed full-resolution buffers); elsewhere the call is a no-op that says so."""
    from ipad_sdk import runner

    glibc = sys.platform == "linux" and platform.libc_ver()[0] == "glibc"
    assert runner.limit_malloc_arenas() is glibc
    calls = []
    monkeypatch.setattr(runner, "limit_malloc_arenas", lambda: calls.append(1) or glibc)
    with pytest.raises(ValueError, match="output folder"):
        runner.run_batch(None, [], None, save_masks=True)  # type: ignore[arg-type]
    assert calls == [1]
