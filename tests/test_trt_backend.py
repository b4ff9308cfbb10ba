"""The TensorRT backend's buffer, stream, padding, device and lifetime logic on the CPU: a fake CUDA
runtime (host memory as "device" memory) and the stand-in engine of benchmarks/trt_stand_in.py,
which runs the FP16 graph in torch from the backend's own buffers. Neither is TensorRT; the same
stand-in runs on a real GPU in benchmarks/gpu_check.sh."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from benchmarks.trt_stand_in import (  # noqa: E402
    StandInTensorRT,
    stand_in_tensorrt,
    write_stand_in_engine,
)
from ipad_sdk import Detector  # noqa: E402
from ipad_sdk.backends import trt_backend  # noqa: E402
from ipad_sdk.errors import BackendUnavailable, ModelError  # noqa: E402
from ipad_sdk.model import load_bundle  # noqa: E402
from ipad_sdk.model.mixed_precision import InferenceGraph  # noqa: E402
from tests.fake_cudart import FakeCudart  # noqa: E402


@pytest.fixture(scope="module")
def graph(tiny_bundle):
    model = load_bundle(tiny_bundle, "cpu")
    return InferenceGraph(model, fp16=True, uint8_input=True, fused_attention=True).eval()


@pytest.fixture
def cudart(monkeypatch) -> FakeCudart:
    fake = FakeCudart(count=2)
    monkeypatch.setattr(trt_backend, "_import_cudart", lambda: fake)
    return fake


def _backend(graph, tiny_bundle, tmp_path, profile, device="cuda"):
    plan = write_stand_in_engine(tiny_bundle, tmp_path / "stand_in.plan", profile)
    with stand_in_tensorrt(StandInTensorRT(graph, device="cpu")):
        return trt_backend.TensorRTBackend(plan, device)


def _batch(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, 64, 64), dtype=np.uint8)


def _expected(graph, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.inference_mode():
        class_probs, pixel_probs = graph(torch.from_numpy(batch))
    return class_probs.numpy(), pixel_probs.numpy()


def test_stand_in_runs_through_the_backend_with_splitting(graph, tiny_bundle, tmp_path, cudart):
    backend = _backend(graph, tiny_bundle, tmp_path, (1, 2, 4))
    batch = _batch(10)  # 4 + 4 + 2
    got, want = backend.run(batch), _expected(graph, batch)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5)


@pytest.mark.parametrize("profile", [(4, 4, 8), (3, 3, 3)])
def test_chunks_below_the_profile_minimum_are_padded(graph, tiny_bundle, tmp_path, cudart, profile):
    backend = _backend(graph, tiny_bundle, tmp_path, profile)
    for n in (1, 2, 5):  # 5 with a fixed batch of 3: 3 + 2 (padded to 3)
        batch = _batch(n, seed=n)
        got, want = backend.run(batch), _expected(graph, batch)
        assert got[0].shape == (n, 4) and got[1].shape == (n, 4, 64, 64)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, atol=1e-5)


def test_a_rejected_input_shape_is_a_clear_error(graph, tiny_bundle, tmp_path, cudart):
    backend = _backend(graph, tiny_bundle, tmp_path, (1, 2, 4))
    backend.context.set_input_shape = lambda name, shape: False
    with pytest.raises(ModelError, match=r"rejected input shape \(2, 3, 64, 64\) .* batch 1..4"):
        backend.run(_batch(2))


def test_run_makes_the_backends_gpu_current_in_the_calling_thread(
    graph, tiny_bundle, tmp_path, cudart
):
    backend = _backend(graph, tiny_bundle, tmp_path, (1, 2, 4), device="cuda:1")
    cudart.copy_devices.clear()
    worker = threading.Thread(target=backend.run, args=(_batch(2),))
    worker.start()
    worker.join()
    assert cudart.copy_devices and set(cudart.copy_devices) == {1}


def test_run_after_close_raises_and_close_twice_is_harmless(graph, tiny_bundle, tmp_path, cudart):
    backend = _backend(graph, tiny_bundle, tmp_path, (1, 2, 4))
    views = dict(backend.host)
    backend.close()
    assert backend.host == {} and not cudart.live and len(cudart.freed) == 2 * len(views)
    with pytest.raises(RuntimeError, match="backend is closed"):
        backend.run(_batch(1))
    backend.close()


def test_detector_on_the_stand_in_engine(graph, tiny_bundle, tmp_path, cudart, rgb_image):
    plan = write_stand_in_engine(tiny_bundle, tmp_path / "stand_in.plan", (2, 2, 4))
    with stand_in_tensorrt(StandInTensorRT(graph, device="cpu")), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(plan)
        fp16 = Detector(tiny_bundle, device="cpu", precision="fp16")
    assert det.backend.name == "tensorrt" and det.device == "cuda:0"
    for got, want in zip(det.detect_batch([rgb_image] * 5), fp16.detect_batch([rgb_image] * 5),
                         strict=True):  # fmt: skip
        assert got.label == want.label
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-5)


class _RuntimeCache:
    """TensorRT for RTX's runtime cache, as far as the backend uses it."""

    def __init__(self) -> None:
        self.loaded: bytes | None = None

    def deserialize(self, blob: bytes) -> bool:
        self.loaded = bytes(blob)
        return True

    def serialize(self) -> bytes:
        return b"compiled kernels"


def test_rtx_engines_load_and_save_their_runtime_cache(graph, tiny_bundle, tmp_path, cudart):
    caches: list[_RuntimeCache] = []

    class RtxEngine:  # the stand-in engine with TensorRT for RTX's runtime configuration
        def __init__(self, engine) -> None:
            self.engine = engine

        def __getattr__(self, name):
            return getattr(self.engine, name)

        def create_runtime_config(self):
            config = self

            def create_runtime_cache():
                caches.append(_RuntimeCache())
                return caches[-1]

            config.create_runtime_cache = create_runtime_cache
            config.set_runtime_cache = lambda cache: setattr(config, "cache", cache)
            return config

        def create_execution_context(self, runtime_config):
            assert runtime_config.cache is caches[-1]
            return self.engine.create_execution_context()

    trt = StandInTensorRT(graph, device="cpu")
    deserialize = trt.deserialize_cuda_engine
    trt.deserialize_cuda_engine = lambda plan: RtxEngine(deserialize(plan))
    plan = write_stand_in_engine(tiny_bundle, tmp_path / "rtx.plan", (1, 2, 4))
    sidecar = tmp_path / "rtx.plan.json"
    sidecar.write_text(
        sidecar.read_text().replace('"flavour": "tensorrt"', '"flavour": "tensorrt-rtx"')
    )
    cache_file = tmp_path / "rtx.plan.runtime_cache"
    cache_file.write_bytes(b"earlier kernels")
    with stand_in_tensorrt(trt):
        backend = trt_backend.TensorRTBackend(plan)
    assert caches[-1].loaded == b"earlier kernels"
    backend.run(_batch(1))
    backend.close()
    assert cache_file.read_bytes() == b"compiled kernels"


def test_an_old_driver_is_named_with_the_driver_needed(tiny_bundle, tmp_path, graph, monkeypatch):
    from tests.fake_cudart import cudaError_t

    fake = FakeCudart(error=cudaError_t.cudaErrorInsufficientDriver)
    monkeypatch.setattr(trt_backend, "_import_cudart", lambda: fake)
    monkeypatch.setattr(trt_backend, "_cuda_bindings_version", lambda: "13.4.4")
    plan = write_stand_in_engine(tiny_bundle, tmp_path / "stand_in.plan", (1, 2, 4))
    with stand_in_tensorrt(StandInTensorRT(graph, device="cpu")):
        with pytest.raises(BackendUnavailable, match="no usable NVIDIA GPU here .* cuda-bindings "
                           "13.4.4 needs: a CUDA 13 driver, >= 580"):  # fmt: skip
            trt_backend.TensorRTBackend(plan)


def test_a_torch_tensor_batch_gives_what_its_numpy_array_gives(
    graph, tiny_bundle, tmp_path, cudart
):
    backend = _backend(graph, tiny_bundle, tmp_path, (1, 2, 4))
    batch = _batch(3)
    for got, want in zip(backend.run(torch.from_numpy(batch)), backend.run(batch), strict=True):
        np.testing.assert_array_equal(got, want)
