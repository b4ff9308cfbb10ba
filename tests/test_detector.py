"""ipad_sdk.Detector on the tiny random-init bundle, on CPU."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import ipad_sdk
from ipad_sdk import BackendUnavailable, Detector, Failure, InputError, ModelError


def _quiet_detector(model, **kwargs) -> Detector:
    """A Detector with the untrained-model warning silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(model, **kwargs)


def _textured(height: int, width: int, seed: int) -> np.ndarray:
    """A deterministic HxWx3 uint8 image with structure (not pure noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 7 + yy, yy * 11 + 3 * xx, (xx * yy) // 3], axis=-1) + seed * 17
    noise = rng.integers(0, 40, size=(height, width, 3))
    return ((base + noise) % 256).astype(np.uint8)


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def _assert_same_result(a, b, atol: float = 0.0) -> None:
    assert a.label == b.label
    assert list(a.scores) == list(b.scores)
    assert a.image_size == b.image_size
    if atol == 0.0:
        assert a.scores == b.scores
        np.testing.assert_array_equal(a.heatmap, b.heatmap)
        np.testing.assert_array_equal(a.mask, b.mask)
    else:
        np.testing.assert_allclose(
            [a.scores[c] for c in a.scores], [b.scores[c] for c in b.scores], atol=atol, rtol=0
        )
        np.testing.assert_allclose(a.heatmap, b.heatmap, atol=atol, rtol=0)
        np.testing.assert_allclose(a.pixel_probs, b.pixel_probs, atol=atol, rtol=0)


# -- input forms ------------------------------------------------------------------------------


def test_all_input_forms_give_identical_results(detector, rgb_image, tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(rgb_image).save(path)
    inputs = {
        "path_str": str(path),
        "path_obj": path,
        "bytes": _png_bytes(rgb_image),
        "pil": Image.fromarray(rgb_image),
        "numpy_uint8": rgb_image,
        "numpy_float64": rgb_image.astype(np.float64) / 255.0,
        "numpy_float32": (rgb_image.astype(np.float64) / 255.0).astype(np.float32),
        "torch_uint8_chw": torch.from_numpy(rgb_image).permute(2, 0, 1).contiguous(),
        "torch_float_chw": torch.from_numpy(rgb_image).permute(2, 0, 1).float() / 255.0,
    }
    reference = detector.detect(rgb_image)
    assert reference.image_size == rgb_image.shape[:2]
    for name, image in inputs.items():
        result = detector.detect(image)
        assert result.label == reference.label, name
        assert result.scores == reference.scores, name
        np.testing.assert_array_equal(result.heatmap, reference.heatmap, err_msg=name)
        np.testing.assert_array_equal(result.mask, reference.mask, err_msg=name)
        np.testing.assert_allclose(result.heatmap, reference.heatmap, atol=1e-6, rtol=0)


def test_source_is_recorded_for_paths_only(detector, rgb_image, tmp_path):
    path = tmp_path / "img.png"
    Image.fromarray(rgb_image).save(path)
    assert detector.detect(path).source == str(path)
    assert detector.detect(str(path)).source == str(path)
    assert detector.detect(rgb_image).source is None


# -- batching ---------------------------------------------------------------------------------

_SIZES = [(37, 91), (300, 20), (64, 64), (20, 33), (50, 50)]


@pytest.fixture(scope="module")
def batch_images() -> list[np.ndarray]:
    return [_textured(h, w, seed) for seed, (h, w) in enumerate(_SIZES)]


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_detect_batch_matches_detect_in_order(detector, batch_images, batch_size):
    singles = [detector.detect(img) for img in batch_images]
    batched = detector.detect_batch(batch_images, batch_size=batch_size)
    assert len(batched) == len(batch_images)
    for img, single, result in zip(batch_images, singles, batched, strict=True):
        assert result.image_size == img.shape[:2]
        _assert_same_result(single, result, atol=1e-5)


def test_detect_batch_uses_detector_batch_size_and_accepts_generators(tiny_bundle, batch_images):
    det = _quiet_detector(tiny_bundle, device="cpu", batch_size=2)
    assert det.batch_size == 2
    singles = [det.detect(img) for img in batch_images]
    batched = det.detect_batch(img for img in batch_images)
    for single, result in zip(singles, batched, strict=True):
        _assert_same_result(single, result, atol=1e-5)


def test_detect_batch_empty(detector):
    assert detector.detect_batch([]) == []
    assert list(detector.iter_detect(iter(()))) == []


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_iter_detect_is_lazy(detector, batch_images, batch_size):
    pulled: list[int] = []

    def gen():
        for i, img in enumerate(batch_images):
            pulled.append(i)
            yield img

    it = detector.iter_detect(gen(), batch_size=batch_size)
    assert pulled == []  # nothing happens before the first next()
    n = len(batch_images)
    seen_at: list[int] = []
    results = []
    for result in it:
        seen_at.append(len(pulled))
        results.append(result)
    # result i is yielded once its chunk is complete (or the input ended), never later
    expected = [min(n, (i // batch_size + 1) * batch_size) for i in range(n)]
    assert seen_at == expected
    assert seen_at[0] == min(batch_size, n) < n
    for img, result in zip(batch_images, results, strict=True):
        assert result.image_size == img.shape[:2]


def test_iter_detect_stops_pulling_when_consumer_stops(detector, batch_images):
    pulled: list[int] = []

    def gen():
        for i, img in enumerate(batch_images):
            pulled.append(i)
            yield img

    it = detector.iter_detect(gen(), batch_size=2)
    first = next(it)
    assert first.image_size == batch_images[0].shape[:2]
    assert len(pulled) == 2
    it.close()
    assert len(pulled) == 2


# -- result invariants -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(37, 91), (300, 20), (64, 64), (1, 1), (5, 200)])
def test_result_invariants(detector, size):
    h, w = size
    image = _textured(h, w, seed=h + w)
    result = detector.detect(image)
    assert tuple(result.scores) == detector.classes
    assert abs(sum(result.scores.values()) - 1.0) < 1e-5
    assert all(0.0 <= p <= 1.0 for p in result.scores.values())
    assert result.label in detector.classes
    assert result.artifact_score == pytest.approx(1.0 - result.scores["clean"], abs=1e-12)
    assert result.image_size == (h, w)
    assert result.heatmap.shape == (h, w)
    assert result.heatmap.dtype == np.float32
    assert np.all((result.heatmap >= 0.0) & (result.heatmap <= 1.0))
    assert result.mask.shape == (h, w)
    assert result.mask.dtype == np.bool_
    if result.is_artifact:
        np.testing.assert_array_equal(result.mask, result.heatmap >= result.pixel_threshold)
        artifact_scores = {c: result.scores[c] for c in detector.classes[1:]}
        assert result.label == max(artifact_scores, key=artifact_scores.get)
        assert result.artifact_score >= result.image_threshold
    else:
        assert result.label == "clean"
        assert not result.mask.any()
    for name in detector.classes:
        assert result.class_heatmap(name).shape == (h, w)
    record = result.to_dict()
    assert (record["height"], record["width"]) == (h, w)
    assert record["mask_fraction"] == pytest.approx(float(result.mask.mean()))


def test_outputs_equal_independent_computation(detector, tiny_bundle):
    from ipad_sdk.model import load_bundle
    from ipad_sdk.preprocess import preprocess_batch

    images = [_textured(37, 91, 1), _textured(300, 20, 2)]
    model = load_bundle(tiny_bundle, "cpu")
    assert model.config == detector.config
    batch = preprocess_batch(images, model.config)
    assert batch.shape == (2, 3, model.config.image_size, model.config.image_size)
    with torch.inference_mode():
        class_probs, pixel_probs = model(torch.from_numpy(batch))
    class_probs, pixel_probs = class_probs.numpy(), pixel_probs.numpy()
    for i, image in enumerate(images):
        result = detector.detect(image)
        got = np.array([result.scores[c] for c in model.config.classes])
        np.testing.assert_allclose(got, class_probs[i], atol=1e-5, rtol=0)
        np.testing.assert_allclose(result.pixel_probs, pixel_probs[i], atol=1e-5, rtol=0)
        h, w = image.shape[:2]
        plane = Image.fromarray(1.0 - pixel_probs[i, 0], mode="F").resize(
            (w, h), Image.Resampling.BILINEAR
        )
        np.testing.assert_allclose(result.heatmap, np.asarray(plane), atol=1e-5, rtol=0)


# -- construction and errors -------------------------------------------------------------------


def test_untrained_bundle_warns(tiny_bundle):
    with pytest.warns(UserWarning, match="untrained"):
        det = Detector(tiny_bundle, device="cpu")
    assert det.config.trained is False
    assert det.device == "cpu"


def test_missing_model_raises_model_error(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ModelError, match="not found") as info:
        Detector(missing, device="cpu")
    assert str(missing) in str(info.value)


def test_directory_model_raises_model_error(tmp_path):
    folder = tmp_path / "model.safetensors"
    folder.mkdir()
    with pytest.raises(ModelError, match="directory") as info:
        Detector(folder, device="cpu")
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("name", ["model.onnx", "model.bin", "model.pt", "model"])
def test_unknown_model_suffix_raises_model_error(tmp_path, tiny_bundle, name):
    path = tmp_path / name
    path.write_bytes(tiny_bundle.read_bytes())
    with pytest.raises(ModelError) as info:
        Detector(path, device="cpu")
    assert str(path) in str(info.value)


@pytest.mark.parametrize("data", [b"", b"not a model", b"\x00" * 64])
def test_corrupt_bundle_raises_model_error(tmp_path, data):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        Detector(path, device="cpu")
    assert str(path) in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_gpu_raises_backend_unavailable(tiny_bundle, device):
    with pytest.raises(BackendUnavailable):
        _quiet_detector(tiny_bundle, device=device)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_bad_batch_size_raises_value_error(tiny_bundle, batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        _quiet_detector(tiny_bundle, device="cpu", batch_size=batch_size)


def test_detect_missing_file_raises_input_error(detector, tmp_path):
    missing = tmp_path / "missing.png"
    with pytest.raises(InputError) as info:
        detector.detect(missing)
    assert str(missing) in str(info.value)


def test_detect_non_image_file_raises_input_error(detector, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("definitely not an image")
    with pytest.raises(InputError) as info:
        detector.detect(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        (b"garbage bytes", "<13 bytes>"),
        (np.full((8, 8, 3), 2.0), "numpy array"),
        (np.full((8, 8, 3), np.nan), "numpy array"),
        (np.zeros((3, 8, 8), np.uint8)[:, :, :2], "numpy array"),
        (np.zeros((8, 8, 3), np.int64), "numpy array"),
        (torch.zeros(5, 8, 8), "torch tensor"),
        (12345, "<int>"),
    ],
)
def test_detect_bad_input_raises_input_error_naming_it(detector, bad, named):
    with pytest.raises(InputError) as info:
        detector.detect(bad)
    assert str(info.value).startswith(ipad_sdk.io.describe(bad))
    assert named in str(info.value)


def test_detect_batch_bad_input_raises(detector, rgb_image, tmp_path):
    missing = tmp_path / "gone.jpg"
    with pytest.raises(InputError, match="gone.jpg"):
        detector.detect_batch([rgb_image, missing, rgb_image], batch_size=2)


_DEFAULT_WEIGHTS = Path(ipad_sdk.__file__).parent / "weights" / "ipad-default.safetensors"


def test_no_default_model_raises_model_error(tmp_path):
    from ipad_sdk.detector import default_model_path

    with pytest.raises(ModelError, match="no embedded default model"):
        default_model_path(tmp_path)


def test_embedded_default_model():
    """The shipped model: trained, calibrated, within the size budget, and its ONNX export (for
    installs without torch) gives the bundle's answers; the model card lists both files."""
    import hashlib

    weights = _DEFAULT_WEIGHTS.parent
    onnx_file = weights / "ipad-default.onnx"
    assert _DEFAULT_WEIGHTS.stat().st_size + onnx_file.stat().st_size <= 25 * 2**20
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a trained model does not warn
        det = Detector(device="cpu")
    assert Path(det.model_path) == _DEFAULT_WEIGHTS and det.config.trained
    assert det.classes == ("clean", "ghosting", "flare", "moire")
    assert 0.5 < det.config.image_threshold < 1  # calibrated, not the 0.5 default
    card = (weights / "MODEL_CARD.md").read_text()
    for path in (_DEFAULT_WEIGHTS, onnx_file):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert f"{path.stat().st_size:,} | `{digest[:16]}" in card
    pytest.importorskip("onnxruntime")
    on_onnx = Detector(onnx_file, device="cpu")
    assert on_onnx.config == det.config and on_onnx.backend.metadata["precision"] == "int8"
    example = Path(__file__).parents[1] / "examples" / "kodim03.jpg"
    rng = np.random.default_rng(0)
    images = [example, rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)]
    for want, got in zip(det.detect_batch(images), on_onnx.detect_batch(images), strict=True):
        assert got.label == want.label
        assert abs(got.artifact_score - want.artifact_score) < 0.02  # INT8 weights


def test_max_pixels(tiny_bundle):
    det = _quiet_detector(tiny_bundle, device="cpu", max_pixels=100)
    assert det.max_pixels == 100
    with pytest.raises(InputError, match="above the limit"):
        det.detect(np.zeros((10, 11, 3), np.uint8))
    with pytest.raises(InputError, match="above the limit"):
        det.detect(_png_bytes(np.zeros((11, 10, 3), np.uint8)))
    assert det.detect(np.zeros((10, 10, 3), np.uint8)).image_size == (10, 10)


def test_repr_mentions_backbone(detector, tiny_bundle):
    text = repr(detector)
    assert "IPAD-Tiny-ViT-16" in text
    assert detector.config.backbone in text
    assert str(tiny_bundle) in text
    assert "cpu" in text


def test_classes_and_config(detector):
    assert detector.classes == ("clean", "ghosting", "flare", "moire")
    assert detector.config.image_size == 64
    assert detector.config.backbone == "IPAD-Tiny-ViT-16"


def _backend_files(tiny_bundle, tmp_path):
    files = [tiny_bundle]
    try:
        from ipad_sdk.export.onnx import export_onnx

        files.append(export_onnx(tiny_bundle, tmp_path / "tiny.onnx"))
    except ImportError:  # the export extra is not installed: PyTorch only
        pass
    return files


def test_threads_sharing_one_detector_match_sequential_runs(tiny_bundle, tmp_path):
    """The documented contract: a Detector may be shared by threads; results do not change."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (40 + 7 * i, 60 + 5 * i, 3), dtype=np.uint8) for i in range(12)]
    for model in _backend_files(tiny_bundle, tmp_path):
        det = _quiet_detector(model, device="cpu", batch_size=3)
        sequential = det.detect_batch(images)
        with ThreadPoolExecutor(max_workers=4) as pool:
            shuffled = [images[i::4] for i in range(4)]
            parallel = list(pool.map(det.detect_batch, shuffled * 3))
        for k, results in enumerate(parallel):
            for j, got in enumerate(results):
                want = sequential[(k % 4) + 4 * j]
                assert got.label == want.label
                np.testing.assert_allclose(got.pixel_probs, want.pixel_probs, rtol=0, atol=1e-6)


def test_stream_keeps_no_decoded_images(tiny_bundle, monkeypatch):
    """iter_detect drops each decoded image once it is preprocessed (bounded batch memory)."""
    import weakref

    import ipad_sdk.detector as detector_module

    det = _quiet_detector(tiny_bundle, device="cpu", batch_size=4)
    alive: list[weakref.ref] = []
    real_load = detector_module.load_pixels

    def tracking_load(image, **kwargs):
        rgb = real_load(image, **kwargs)
        holder = np.ndarray(rgb.shape, rgb.dtype, buffer=rgb)  # a weak-referenceable view
        alive.append(weakref.ref(holder))
        return holder

    monkeypatch.setattr(detector_module, "load_pixels", tracking_load)
    live_while_reading = []

    def images():
        for i in range(6):
            live_while_reading.append(sum(ref() is not None for ref in alive))
            yield np.full((300, 400, 3), i, np.uint8)

    results = list(det.iter_detect(images()))
    assert len(results) == 6 and results[0].image_size == (300, 400)
    # when the next image is read, no earlier decoded image is still held by the batch
    assert live_while_reading == [0] * 6


def test_default_model_follows_the_installed_runtime(tmp_path, monkeypatch):
    import ipad_sdk.detector as detector_module
    from ipad_sdk.detector import default_model_path

    with pytest.raises(ModelError, match="no embedded default model"):
        default_model_path(tmp_path)
    (tmp_path / "ipad-default.safetensors").write_bytes(b"x")
    (tmp_path / "ipad-default.onnx").write_bytes(b"x")
    installed = {"torch": True, "onnxruntime": True}
    monkeypatch.setattr(detector_module, "_installed", lambda name: installed[name])
    assert default_model_path(tmp_path).name == "ipad-default.safetensors"
    installed["torch"] = False
    assert default_model_path(tmp_path).name == "ipad-default.onnx"
    installed["onnxruntime"] = False
    from ipad_sdk.errors import BackendUnavailable

    with pytest.raises(BackendUnavailable, match="ipad-sdk\\[onnx\\]"):
        default_model_path(tmp_path)


def test_non_finite_model_outputs_are_an_error_not_a_label(tiny_bundle, rgb_image, monkeypatch):
    det = _quiet_detector(tiny_bundle, device="cpu")
    real_run = det.backend.run

    def broken(batch):
        class_probs, pixel_probs = real_run(batch)
        return np.full_like(class_probs, np.nan), pixel_probs

    monkeypatch.setattr(det.backend, "run", broken)
    with pytest.raises(ModelError, match="non-finite"):
        det.detect(rgb_image)


def test_stream_keeps_order_reports_failures_and_bounds_lookahead(tiny_bundle, tmp_path):
    det = _quiet_detector(tiny_bundle, device="cpu", batch_size=3)
    rng = np.random.default_rng(5)
    images: list = [rng.integers(0, 256, (30 + i, 50, 3), dtype=np.uint8) for i in range(10)]
    images[2] = tmp_path / "missing.png"
    images[7] = b"not an image"
    images[8] = np.full((4, 4, 3), np.nan)
    want = {i: r for i, r in enumerate(det.detect_batch(images[:2] + images[3:7] + images[9:]))}
    order = [0, 1, None, 2, 3, 4, 5, None, None, 6]
    read: list[int] = []

    def source():
        for i, image in enumerate(images):
            read.append(i)
            yield image

    out = []
    for item in det.stream(source(), workers=2):
        assert len(read) - len(out) <= 2 * 3 + 2  # bounded look-ahead
        out.append(item)
    assert [item.ok for item in out] == [k is not None for k in order]
    for item, k in zip(out, order, strict=True):
        if k is None:
            assert isinstance(item, Failure) and isinstance(item.error, InputError)
        else:
            assert item.label == want[k].label
            np.testing.assert_allclose(item.pixel_probs, want[k].pixel_probs, atol=1e-6)
    assert out[2].source == str(tmp_path / "missing.png") and "missing.png" in str(out[2].error)
    assert out[7].to_dict()["error_type"] == "InputError"
    with pytest.raises(ValueError, match="workers"):
        next(det.stream(images, workers=0))
    assert list(det.stream([])) == []


@pytest.mark.parametrize("size", [0, -1, 2.5, True, "4"])
def test_a_batch_size_below_one_or_not_an_integer_is_refused(detector, rgb_image, size):
    # before: 0 meant the default, -1 yielded nothing from stream and -2 with 5 workers spun forever
    with pytest.raises(ValueError, match="batch_size must be"):
        detector.detect_batch([rgb_image], batch_size=size)
    with pytest.raises(ValueError, match="batch_size must be"):
        next(detector.stream([rgb_image], batch_size=size, workers=5))
    with pytest.raises(ValueError, match="batch_size must be"):
        Detector(detector.backend, batch_size=size)
    assert (
        detector.detect_batch([rgb_image], batch_size=np.int64(1))[0].label
        in detector.config.classes
    )


@pytest.mark.parametrize("api", ["stream", "iter_detect"])
def test_what_was_read_before_the_input_iterable_raised_is_yielded(tiny_bundle, api):
    det = _quiet_detector(tiny_bundle, device="cpu", batch_size=4)
    rng = np.random.default_rng(6)
    images = [rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8) for i in range(10)]

    def source():
        yield from images
        raise OSError("camera disconnected")  # the 11th item

    out = []
    with pytest.raises(OSError, match="camera disconnected"):
        for item in getattr(det, api)(source()):
            out.append(item)
    assert [item.image_size for item in out] == [(20 + i, 30) for i in range(10)]
    assert all(item.ok for item in out)


def test_fp16_path_agrees_with_fp32(tiny_bundle, rgb_image):
    """The FP16 path (what CUDA runs by default; checked here on the CPU) stays within FP16 error
    of eager FP32 and gives the same labels; precision is refused for non-bundle models."""
    fp32 = _quiet_detector(tiny_bundle, device="cpu", precision="fp32")
    fp16 = _quiet_detector(tiny_bundle, device="cpu", precision="fp16")
    assert fp32.backend.precision == "fp32" and fp16.backend.input_format == "uint8"
    assert _quiet_detector(tiny_bundle, device="cpu").backend.precision == "fp32"  # auto on CPU
    rng = np.random.default_rng(1)
    images = [rgb_image, *(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8) for _ in range(5))]
    for want, got in zip(fp32.detect_batch(images), fp16.detect_batch(images), strict=True):
        assert got.label == want.label
        assert max(abs(got.scores[c] - want.scores[c]) for c in want.scores) < 1e-2
        np.testing.assert_allclose(got.pixel_probs, want.pixel_probs, atol=1e-2)
    with pytest.raises(ValueError, match="precision must be"):
        _quiet_detector(tiny_bundle, device="cpu", precision="int4")


def test_compile_runs_fixed_size_padded_chunks(tiny_bundle, batch_images, monkeypatch):
    """``compile=True``: torch.compile (full graph, static shapes) sees only batches of exactly
    ``batch_size``; results equal eager. Dynamo traces for real; inductor's codegen is swapped for
    its eager backend to keep the test fast (the real one runs in tests/test_gpu.py)."""
    real_compile, calls, shapes = torch.compile, [], set()

    def eager_compile(model, **kwargs):
        calls.append(kwargs)
        compiled = real_compile(model, backend="eager", fullgraph=kwargs["fullgraph"],
                                dynamic=kwargs["dynamic"])  # fmt: skip

        def run(images):
            shapes.add(tuple(images.shape))
            return compiled(images)

        return run

    monkeypatch.setattr(torch, "compile", eager_compile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        eager = Detector(tiny_bundle, device="cpu", batch_size=3)
        compiled = Detector(tiny_bundle, device="cpu", batch_size=3, compile=True)
    assert calls == [{"mode": None, "fullgraph": True, "dynamic": False}]
    images = batch_images[:5]  # 3 + 2: the second chunk is padded to 3
    for a, b in zip(eager.detect_batch(images), compiled.detect_batch(images), strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(a.pixel_probs, b.pixel_probs, atol=1e-6)
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
    assert shapes == {(3, 3, 64, 64)}
    class_probs, pixel_probs = compiled.backend.run(np.zeros((7, 3, 64, 64), np.float32))
    assert class_probs.shape == (7, 4) and pixel_probs.shape == (7, 4, 64, 64)


def test_compiled_network_is_called_by_one_thread_at_a_time(tiny_bundle, monkeypatch):
    """A Detector is shareable across threads, but CUDA-graph trees assert when one compiled
    graph is replayed from several threads (pytorch#123177): compiled calls are serialised."""
    import threading
    import time

    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backend = Detector(tiny_bundle, device="cpu", batch_size=2, compile=True).backend
    network, inside, most = backend.model, [0], [0]
    count = threading.Lock()

    def one_at_a_time(images):
        with count:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.05)  # long enough for the other threads to arrive
        with count:
            inside[0] -= 1
        return network(images)

    backend.model = one_at_a_time
    batch = np.zeros((2, 3, 64, 64), np.float32)
    threads = [threading.Thread(target=backend.run, args=(batch,)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == [1]


def test_compile_applies_to_bundles_only(tiny_bundle, tmp_path):
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ValueError, match="compile"):
        Detector(onnx, compile=True)
