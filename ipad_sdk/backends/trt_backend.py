"""TensorRT backend: runs an engine plan built by ``ipad export trt`` (TensorRT for RTX or full
TensorRT 10/11), with buffers from cuda-bindings (``cuda.bindings``; no torch needed).

Before anything touches the GPU, the plan is checked against its sidecar (size, SHA-256, TensorRT
flavour and version) and the GPU against the engine's target architecture, so a plan for another
GPU or TensorRT version, or a truncated plan, gives a "rebuild the engine" error instead of a crash.

Execution uses named I/O tensors (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``) on one CUDA stream per backend. Device buffers and pinned host buffers are
allocated once at the profile's maximum batch and reused; larger batches are split, and a chunk
below the profile's minimum is padded with its last image (as ``cpp_example`` does). TensorRT for
RTX compiles kernels at run time: its runtime cache is loaded from and saved to
``<plan>.runtime_cache`` (an entry for another GPU or driver is ignored and rebuilt).

Thread safety: one execution context per backend, so :meth:`TensorRTBackend.run` holds a lock
(and makes the backend's GPU current in the calling thread); a Detector may be shared by threads
(calls are serialised). For concurrent GPU work, create one Detector per thread (each gets its own
context, stream and buffers). After :meth:`TensorRTBackend.close`, ``run`` raises.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import ArrayOrTensor, to_host
from ..errors import BackendUnavailable, ModelError
from ..fileio import atomic_write_bytes
from ..metadata import INPUT_NAME, OUTPUT_NAMES, ModelConfig, read_engine_metadata
from . import batch_chunks, parse_device, run_chunked

__all__ = ["TensorRTBackend", "batch_chunks", "cuda_device_index"]

log = logging.getLogger(__name__)

_MODULES = {
    "tensorrt-rtx": ("tensorrt_rtx", "pip install 'ipad-sdk[trt]'"),
    "tensorrt": ("tensorrt", "pip install tensorrt --extra-index-url https://pypi.nvidia.com"),
}
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "UINT8": np.uint8}
RUNTIME_CACHE_SUFFIX = ".runtime_cache"
#: Oldest NVIDIA driver for each CUDA major that cuda-bindings (and TensorRT builds) target.
CUDA_DRIVER_MINIMUM = {12: "525", 13: "580"}


def cuda_device_index(device: str) -> int:
    """``auto``/``cuda``/``cuda:N`` -> N (the rules of :func:`~ipad_sdk.backends.parse_device`);
    a TensorRT engine never runs on the CPU."""
    kind, index = parse_device(device)
    if kind == "cpu":
        raise ValueError(f"a TensorRT engine runs on an NVIDIA GPU: device must be 'auto', "
                         f"'cuda' or 'cuda:N', got {device!r}")  # fmt: skip
    return index or 0


def binding_problems(
    engine_io: dict[str, dict[str, Any]], sidecar_io: dict[str, dict[str, Any]], config: ModelConfig
) -> list[str]:
    """Differences between the engine's I/O tensors and what its sidecar and config promise."""
    problems = []
    if set(engine_io) != {INPUT_NAME, *OUTPUT_NAMES}:
        problems.append(f"tensors {sorted(engine_io)}, expected {[INPUT_NAME, *OUTPUT_NAMES]}")
        return problems
    size, k = config.image_size, config.num_classes
    expected = {INPUT_NAME: [3, size, size], "class_probs": [k], "pixel_probs": [k, size, size]}
    for name, info in engine_io.items():
        promised = sidecar_io.get(name, {})
        for key in ("mode", "dtype"):
            if info[key] != promised.get(key):
                problems.append(
                    f"{name}: {key} {info[key]} but the sidecar says {promised.get(key)}"
                )
        if list(info["shape"][1:]) != expected[name]:
            problems.append(
                f"{name}: shape {info['shape']} but the config needs [B,*{expected[name]}]"
            )
    return problems


def _import_trt(flavour: str, name: str) -> Any:
    module, install = _MODULES.get(flavour, (None, None))
    if module is None:
        raise ModelError(f"{name}: unknown TensorRT flavour {flavour!r} in the sidecar")
    try:
        return __import__(module)
    except ImportError:
        raise BackendUnavailable(
            f"{name}: this engine was built with {flavour}, which is not installed; {install}"
        ) from None


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime
    except ImportError:
        raise BackendUnavailable(
            "the TensorRT backend needs cuda-bindings: pip install 'ipad-sdk[trt]'"
        ) from None
    return runtime


def _cuda_bindings_version() -> str:
    from cuda import bindings

    return str(bindings.__version__)


def _no_gpu_reason(rt: Any, err: Any) -> str:
    """Why CUDA sees no GPU, with the driver cuda-bindings needs where the driver is too old."""
    if err == rt.cudaError_t.cudaSuccess:
        return "no CUDA device"
    if err != rt.cudaError_t.cudaErrorInsufficientDriver:
        return str(err.name)
    version = _cuda_bindings_version()
    major = int(version.split(".")[0])
    minimum = CUDA_DRIVER_MINIMUM.get(major, "?")
    return (f"{err.name}: no NVIDIA driver, or one older than cuda-bindings {version} needs: a "
            f"CUDA {major} driver, >= {minimum}; a CUDA 12 build of TensorRT pairs with "
            "cuda-bindings 12.x (driver >= 525)")  # fmt: skip


class _Cuda:
    """The few CUDA runtime calls the backend makes, with errors turned into exceptions."""

    def __init__(self, cudart: Any) -> None:
        self.rt = cudart

    def __call__(self, what: str, result: tuple) -> Any:
        err = result[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            _, text = self.rt.cudaGetErrorString(err)
            raise RuntimeError(f"CUDA {what} failed: {err.name}: {text.decode(errors='replace')}")
        rest = result[1:]
        return rest[0] if len(rest) == 1 else (rest or None)


class TensorRTBackend:
    """TensorRT inference of an engine plan with its ``.json`` sidecar."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        name = os.fspath(path)
        self._buffers: list[tuple[str, int]] = []
        self.stream: Any = None  # a cudaStream_t once created
        self._runtime_cache: Any = None
        self.config, self.metadata = read_engine_metadata(name)
        info = self.metadata["tensorrt"]
        self.input_format = self.metadata["input_format"]
        self.precision = self.metadata["precision"]
        trt = _import_trt(info["flavour"], name)
        if trt.__version__ != info["version"]:
            raise ModelError(
                f"{name}: built with {info['flavour']} {info['version']} but {trt.__version__} "
                "is installed; engines are tied to the TensorRT version: rebuild the engine with "
                "ipad export trt"
            )
        index = cuda_device_index(device)
        cuda = _Cuda(_import_cudart())
        self._check_gpu(cuda, trt, index, info, name)
        self.device, self._index = f"cuda:{index}", index
        self._cuda, self._trt = cuda, trt
        self._lock = threading.Lock()
        engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(
            Path(name).read_bytes()
        )
        if engine is None:
            raise ModelError(
                f"{name}: TensorRT could not deserialise the plan (see its log above); rebuild "
                "the engine for this GPU and TensorRT version with ipad export trt"
            )
        self.engine = engine
        problems = binding_problems(self._engine_io(), info.get("io", {}), self.config)
        if problems:
            raise ModelError(f"{name}: engine and metadata disagree: " + "; ".join(problems))
        low, _, high = engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_batch, self.max_batch = int(low[0]), int(high[0])
        self._cache_path = Path(name + RUNTIME_CACHE_SUFFIX)
        self.context = self._create_context(info["flavour"])
        self.stream = cuda("cudaStreamCreate", cuda.rt.cudaStreamCreate())
        self._allocate()

    @staticmethod
    def _check_gpu(cuda: _Cuda, trt: Any, index: int, info: dict[str, Any], name: str) -> None:
        rt = cuda.rt
        err, count = rt.cudaGetDeviceCount()
        if err != rt.cudaError_t.cudaSuccess or count == 0:
            raise BackendUnavailable(
                f"{name}: no usable NVIDIA GPU here ({_no_gpu_reason(rt, err)}); a TensorRT "
                "engine runs only on the GPU it was built for. Use the .onnx or .safetensors "
                "model on this machine"
            )
        if index >= count:
            raise BackendUnavailable(f"{name}: cuda:{index} requested but {count} GPU(s) found")
        cuda("cudaSetDevice", rt.cudaSetDevice(index))
        props = cuda("cudaGetDeviceProperties", rt.cudaGetDeviceProperties(index))
        here = f"{props.major}{props.minor}"
        target = info.get("target_sm")
        if target not in (None, "local", here):
            gpu = props.name.decode(errors="replace").strip(chr(0))
            rtx = info["flavour"] == "tensorrt-rtx"
            if rtx and not hasattr(trt.ComputeCapability, f"SM{here}"):
                fix = (f"TensorRT for RTX has no SM{here} target (Hopper and other datacenter GPUs "
                       "are not RTX targets): build with full TensorRT on this GPU: "
                       "ipad export trt MODEL.fp16.onnx --flavour full")  # fmt: skip
            else:
                fix = ("rebuild the engine for this GPU: ipad export trt "
                       f"MODEL.fp16.onnx --sm {here}")  # fmt: skip
            raise ModelError(
                f"{name}: engine built for SM{target}, but cuda:{index} ({gpu}) is SM{here}; {fix}"
            )

    def _create_context(self, flavour: str) -> Any:
        """The execution context; TensorRT for RTX's gets a runtime cache for the kernels it
        compiles at run time, loaded from ``<plan>.runtime_cache`` when present."""
        if flavour != "tensorrt-rtx":
            return self.engine.create_execution_context()
        config = self.engine.create_runtime_config()
        self._runtime_cache = config.create_runtime_cache()
        if self._cache_path.is_file() and not self._runtime_cache.deserialize(
            self._cache_path.read_bytes()
        ):
            log.info(
                "%s: runtime cache for another GPU, driver or version; rebuilt", self._cache_path
            )
        config.set_runtime_cache(self._runtime_cache)
        return self.engine.create_execution_context(config)

    def _save_runtime_cache(self) -> None:
        """Write TensorRT for RTX's runtime cache beside the plan (a read-only folder is logged)."""
        try:
            atomic_write_bytes(self._cache_path, bytes(memoryview(self._runtime_cache.serialize())))
        except OSError as exc:
            log.warning("%s: runtime cache not saved: %s", self._cache_path, exc)

    def _engine_io(self) -> dict[str, dict[str, Any]]:
        trt, engine = self._trt, self.engine
        out = {}
        for i in range(engine.num_io_tensors):
            tensor = engine.get_tensor_name(i)
            mode = engine.get_tensor_mode(tensor)
            out[tensor] = {
                "mode": "input" if mode == trt.TensorIOMode.INPUT else "output",
                "dtype": str(engine.get_tensor_dtype(tensor)).rsplit(".", 1)[-1],
                "shape": list(engine.get_tensor_shape(tensor)),
            }
        return out

    def _allocate(self) -> None:
        """Device and pinned host buffers for every I/O tensor at the profile's max batch."""
        cuda, rt = self._cuda, self._cuda.rt
        self.host: dict[str, np.ndarray] = {}
        self.device_ptr: dict[str, int] = {}
        for tensor, info in self._engine_io().items():
            shape = (self.max_batch, *info["shape"][1:])
            dtype = np.dtype(_NUMPY[info["dtype"]])
            nbytes = int(np.prod(shape)) * dtype.itemsize
            dev = cuda("cudaMalloc", rt.cudaMalloc(nbytes))
            self._buffers.append(("device", int(dev)))
            host = cuda("cudaMallocHost", rt.cudaMallocHost(nbytes))
            self._buffers.append(("host", int(host)))
            raw = (ctypes.c_byte * nbytes).from_address(int(host))
            self.host[tensor] = np.frombuffer(memoryview(raw), dtype=dtype).reshape(shape)
            self.device_ptr[tensor] = int(dev)
            self.context.set_tensor_address(tensor, int(dev))

    def run(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of ``batch`` (a numpy array, or a torch tensor copied to the host), in chunks
        of at most the profile's maximum batch, a chunk below its minimum padded with its last
        image."""
        host = to_host(batch, np.uint8 if self.input_format == "uint8" else np.float32)
        with self._lock:
            if not self._buffers:
                raise RuntimeError(f"{self.name} backend is closed")
            self._cuda("cudaSetDevice", self._cuda.rt.cudaSetDevice(self._index))
            return run_chunked(self._run_chunk, host, self.max_batch, pad_to=self.min_batch)

    def _run_chunk(self, chunk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cuda, rt, n = self._cuda, self._cuda.rt, len(chunk)
        h2d, d2h = (
            rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        host_in = self.host[INPUT_NAME]
        host_in[:n] = chunk
        nbytes = host_in[:n].nbytes
        cuda("cudaMemcpyAsync", rt.cudaMemcpyAsync(self.device_ptr[INPUT_NAME], host_in.ctypes.data,
                                                   nbytes, h2d, self.stream))  # fmt: skip
        shape = (n, *chunk.shape[1:])
        if not self.context.set_input_shape(INPUT_NAME, shape):
            raise ModelError(
                f"TensorRT rejected input shape {shape} (profile batch {self.min_batch}.."
                f"{self.max_batch}; see its log): the engine and its sidecar disagree, rebuild it"
            )
        if not self.context.execute_async_v3(int(self.stream)):
            raise RuntimeError("TensorRT execute_async_v3 failed (see its log)")
        for tensor in OUTPUT_NAMES:
            out = self.host[tensor]
            nbytes = out[:n].nbytes
            cuda("cudaMemcpyAsync", rt.cudaMemcpyAsync(out.ctypes.data, self.device_ptr[tensor],
                                                       nbytes, d2h, self.stream))  # fmt: skip
        cuda("cudaStreamSynchronize", rt.cudaStreamSynchronize(self.stream))
        return (self.host["class_probs"][:n].astype(np.float32),
                self.host["pixel_probs"][:n].astype(np.float32))  # fmt: skip

    def close(self) -> None:
        """Save the runtime cache (TensorRT for RTX), free the CUDA buffers and stream and drop the
        execution context and engine (their device memory); also done when the backend is
        garbage-collected. ``run`` raises afterwards; closing twice is harmless."""
        cuda, lock = getattr(self, "_cuda", None), getattr(self, "_lock", None)
        if cuda is None or lock is None:
            return
        with lock:
            if self._runtime_cache is not None:
                self._save_runtime_cache()
                self._runtime_cache = None
            self.host, self.device_ptr = {}, {}  # no view may outlive the pinned memory
            for kind, ptr in self._buffers:
                (cuda.rt.cudaFree if kind == "device" else cuda.rt.cudaFreeHost)(ptr)
            self._buffers = []
            if self.stream is not None:
                cuda.rt.cudaStreamDestroy(self.stream)
                self.stream = None
            self.context = self.engine = None

    def __del__(self) -> None:
        self.close()
