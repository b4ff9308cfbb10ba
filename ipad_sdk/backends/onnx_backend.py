"""ONNX Runtime backend: runs an ``.onnx`` file written by ``ipad export onnx``.

Execution providers are tried in the order TensorRT -> CUDA -> CPU among those installed (or as
given). ``onnxruntime-gpu`` lists GPU providers even where they cannot load and then silently runs
on the CPU, so the providers the session really got are compared with those asked for and a
fallback is warned about loudly. When a provider fails to load, ONNX Runtime retries with the
others but drops their options (``cuda:N`` would become device 0; onnxruntime#17394, #18597): the
session is then recreated with the options of the providers that did load. The TensorRT provider
keeps its engine and timing caches in :func:`tensorrt_cache_dir`, so engines are built once per
model and GPU, not per session. GPU providers use IOBinding (outputs copied back once per batch).

The metadata's ``precision`` is checked against the graph at load. ONNX Runtime exposes no weight
types, and the graph's inputs and outputs are the same for every precision (float32 or uint8 in,
float32 out), so the element types of the graph's initializers (weights) are read from the file's
protobuf wire format directly (no ``onnx`` package needed; only the few bytes before each weight's
data are visited): INT8 weights mean ``int8``, else FP16 weights mean ``fp16``, else ``fp32``.
"""

from __future__ import annotations

import logging
import mmap
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import ArrayOrTensor, to_host
from ..errors import BackendUnavailable, ModelError
from ..metadata import INPUT_NAME, ONNX_FORMAT_NAME, OUTPUT_NAMES, read_exported_metadata
from . import parse_device, run_chunked

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
_ORT_TYPES = {"float": "tensor(float)", "uint8": "tensor(uint8)"}
#: ONNX ``TensorProto.DataType`` codes that tell the precisions apart, and the protobuf field
#: numbers leading to them: ``ModelProto.graph`` -> ``GraphProto.initializer`` ->
#: ``TensorProto.data_type``.
_UINT8, _INT8, _FLOAT16 = 2, 3, 10
_GRAPH, _INITIALIZER, _DATA_TYPE = 7, 5, 2


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise BackendUnavailable(
            "an .onnx model needs ONNX Runtime; install it with: pip install 'ipad-sdk[onnx]' "
            "(CPU) or 'ipad-sdk[gpu]' (CUDA/TensorRT; never both in one environment)"
        ) from None
    return onnxruntime


def tensorrt_cache_dir() -> Path:
    """Where ONNX Runtime's TensorRT provider keeps built engines and timings:
    ``$IPAD_ORT_TRT_CACHE``, else ``$XDG_CACHE_HOME/ipad-sdk/ort-tensorrt`` (``~/.cache``)."""
    if os.environ.get("IPAD_ORT_TRT_CACHE"):
        return Path(os.environ["IPAD_ORT_TRT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base, "ipad-sdk", "ort-tensorrt")


def _provider_options(provider: str, index: int) -> dict[str, Any]:
    if provider != "TensorrtExecutionProvider":
        return {"device_id": index}
    cache = str(tensorrt_cache_dir())
    return {"device_id": index, "trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
            "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}  # fmt: skip


def choose_providers(device: str, available: Sequence[str]) -> list[str | tuple[str, dict]]:
    """Providers for ``device`` (``auto``/``cpu``/``cuda[:N]``, read by
    :func:`~ipad_sdk.backends.parse_device`) among ``available``, best first."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return [CPU_PROVIDER]
    index = index or 0
    gpu = [(p, _provider_options(p, index)) for p in GPU_PROVIDERS if p in available]
    if kind == "cuda" and not gpu:
        raise BackendUnavailable(
            f"device {device!r} requested but ONNX Runtime offers no GPU provider "
            f"(available: {list(available)}); install 'ipad-sdk[gpu]'"
        )
    return [*gpu, CPU_PROVIDER]


def _varint(data: mmap.mmap, pos: int) -> tuple[int, int]:
    """The protobuf varint at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``(field number, value, end)`` of each field of the protobuf message ``data[start:end]``:
    for a length-delimited field ``value`` is where its payload starts and ``end`` where it ends;
    for a varint, ``value`` is the number."""
    pos = start
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value, pos
        elif wire == 2:
            length, begin = _varint(data, pos)
            pos = begin + length
            yield number, begin, pos
        elif wire in (1, 5):  # fixed 64 / 32 bits
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {pos}")
    if pos != end:
        raise ValueError(f"protobuf field overruns its message at byte {end}")


def graph_precision(path: str) -> str:
    """``int8``, ``fp16`` or ``fp32``: the precision of the ONNX graph in ``path``, from the
    element types of its initializers (see the module docstring)."""
    types: set[int] = set()
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for number, begin, end in _fields(data, 0, len(data)):
            if number != _GRAPH:
                continue
            for field, start, stop in _fields(data, begin, end):
                if field == _INITIALIZER:
                    types |= {v for n, v, _ in _fields(data, start, stop) if n == _DATA_TYPE}
    if types & {_INT8, _UINT8}:
        return "int8"
    return "fp16" if _FLOAT16 in types else "fp32"


def _provider_name(provider: str | tuple[str, dict]) -> str:
    return provider if isinstance(provider, str) else provider[0]


def open_session(ort: Any, name: str, options: Any, asked: Sequence[str | tuple[str, dict]]) -> Any:
    """An InferenceSession with ``asked`` providers; when some failed to load, recreated with
    the asked options of those that did (ONNX Runtime's own retry drops them)."""
    session = ort.InferenceSession(name, options, providers=list(asked))
    loaded = session.get_providers()
    kept = [p for p in asked if _provider_name(p) in loaded]
    if len(kept) < len(asked) and any(not isinstance(p, str) for p in kept):
        session = ort.InferenceSession(name, options, providers=kept)
    return session


class OnnxBackend:
    """ONNX Runtime inference of an exported IPAD-CLIP graph."""

    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "auto",
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        ort = _import_ort()
        name = os.fspath(path)
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        asked = (
            list(providers)
            if providers
            else choose_providers(device, ort.get_available_providers())
        )
        try:
            session = open_session(ort, name, options, asked)
        except Exception as exc:  # ORT raises its own pybind error types for every bad file
            raise ModelError(f"{name}: ONNX Runtime cannot load this file: {exc}") from None
        self.config, self.metadata = read_exported_metadata(
            session.get_modelmeta().custom_metadata_map, name, ONNX_FORMAT_NAME
        )
        self.input_format = self.metadata["input_format"]
        self.precision = self.metadata["precision"]
        self._check_precision(name)
        if self.metadata["precision"] == "fp16" and session.get_providers() == [CPU_PROVIDER]:
            # ORT's CPU graph optimiser has crashed (segfault creating the session) on an FP16
            # ViT-B-16 graph at ORT_ENABLE_ALL, onnxruntime 1.32; BASIC and EXTENDED worked
            # (docs/deployment/onnx.md, "FP16 on the CPU"). EXTENDED keeps the fusions that matter.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
            session = ort.InferenceSession(name, options, providers=[CPU_PROVIDER])
        self.session = session
        self.batch = self._check_io(name)
        self.providers = session.get_providers()
        self.device = "cpu" if self.providers[0] == CPU_PROVIDER else "cuda"
        options_used = session.get_provider_options().get(self.providers[0], {})
        self._device_id = int(options_used.get("device_id", 0))
        self._warn_on_fallback(name, asked)

    def _check_precision(self, name: str) -> None:
        """Refuse a ``precision`` field that the graph's weights contradict."""
        try:
            found = graph_precision(name)
        except (OSError, ValueError, IndexError) as exc:  # ORT read it; a file changed since
            raise ModelError(f"{name}: cannot read the graph's weight types: {exc}") from None
        if found != self.metadata["precision"]:
            raise ModelError(
                f"{name}: metadata 'precision' is {self.metadata['precision']!r}, but the graph's "
                f"weights are {found}"
            )

    def _check_io(self, name: str) -> int | None:
        """Validate names, dtypes and shapes against the metadata; the fixed batch size or None."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        size = self.config.image_size
        if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != list(
            OUTPUT_NAMES
        ):
            raise ModelError(
                f"{name}: expected input {INPUT_NAME!r} and outputs {list(OUTPUT_NAMES)}, found "
                f"{[i.name for i in inputs]} -> {[o.name for o in outputs]}"
            )
        shape, kind = inputs[0].shape, inputs[0].type
        if kind != _ORT_TYPES[self.input_format] or list(shape[1:]) != [3, size, size]:
            raise ModelError(
                f"{name}: input is {kind} {shape}, but the metadata says {self.input_format} "
                f"[B,3,{size},{size}]"
            )
        classes = self.config.num_classes
        for output in outputs:
            if isinstance(output.shape[1], int) and output.shape[1] != classes:
                raise ModelError(
                    f"{name}: output {output.name!r} has {output.shape[1]} classes, but the "
                    f"metadata names {classes} ({', '.join(self.config.classes)})"
                )
        return shape[0] if isinstance(shape[0], int) else None

    def _warn_on_fallback(self, name: str, asked: Sequence[str | tuple[str, dict]]) -> None:
        wanted = [_provider_name(p) for p in asked]
        missing = [p for p in wanted if p not in self.providers]
        if missing and any(p in GPU_PROVIDERS for p in missing):
            message = (
                f"{name}: ONNX Runtime could not start {missing} and runs on {self.providers} "
                "instead (a GPU provider failed to load: check CUDA/cuDNN/TensorRT libraries)"
            )
            log.warning(message)
            warnings.warn(message, RuntimeWarning, stacklevel=3)

    def run(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        """Outputs of ``batch`` (a numpy array, or a torch tensor copied to the host); a graph
        with a fixed batch runs chunks of it, a short one padded by repeating its last image; an
        INT8 graph runs one image at a time."""
        if self.session is None:
            raise RuntimeError(f"{self.name} backend is closed")
        host = to_host(batch, np.uint8 if self.input_format == "uint8" else np.float32)
        if self.precision == "int8":
            # Dynamic INT8 quantisation (`quantize_int8`) takes each activation's scale from the
            # whole input tensor, so in a batch an image's outputs would depend on its companions
            # (a label flipped, measured on the embedded model): one image per call. A fixed-batch
            # graph gets copies of the image as padding, which leave its scales unchanged.
            return run_chunked(self._run, host, 1, pad_to=self.batch or 1)
        if self.batch is None:
            return self._run(host)
        return run_chunked(self._run, host, self.batch, pad_to=self.batch)

    def close(self) -> None:
        """Release the ONNX Runtime session (and the GPU memory of its providers)."""
        self.session = None

    def _run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.device == "cpu":
            class_probs, pixel_probs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
            return class_probs, pixel_probs
        binding = self.session.io_binding()
        binding.bind_cpu_input(INPUT_NAME, batch)
        for output in OUTPUT_NAMES:
            binding.bind_output(output, "cuda", self._device_id)
        self.session.run_with_iobinding(binding)
        class_probs, pixel_probs = binding.copy_outputs_to_cpu()
        return class_probs, pixel_probs
