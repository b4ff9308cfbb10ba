"""A STAND-IN for a TensorRT engine — not TensorRT — for checking the TensorRT backend's own logic.

No TensorRT can run on the lent Hopper machines (TensorRT for RTX has no SM90 target and full
TensorRT is not carried there). This module mimics the few parts of the ``tensorrt`` module the
backend uses (``Runtime``, the engine's named I/O tensors and optimisation profile, an execution
context with ``set_tensor_address``/``set_input_shape``/``execute_async_v3``) and runs the FP16
inference graph (what the FP16 export traces) in torch, reading and writing the backend's own
device buffers on the backend's own CUDA stream. A run through it proves the backend's buffer,
stream, padding and profile handling — not TensorRT's kernels or numerics.

    plan = write_stand_in_engine(bundle, "stand_in.plan", profile=(2, 8, 16))
    with stand_in_tensorrt(StandInTensorRT(graph, device="cuda")):
        backend = TensorRTBackend(plan)

``device="cpu"`` reads "device" pointers as host memory (tests with a fake CUDA runtime).
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import torch

from ipad_sdk.backends import trt_backend
from ipad_sdk.fileio import atomic_write_bytes, file_sha256
from ipad_sdk.metadata import (
    ENGINE_FORMAT_NAME,
    INPUT_NAME,
    engine_sidecar_path,
    onnx_metadata,
    read_bundle_config,
)

STAND_IN_VERSION = "0.0.0-stand-in"
_MARK = "ipad-sdk TensorRT stand-in: not a TensorRT plan"
_TORCH = {"FLOAT": torch.float32, "UINT8": torch.uint8}


class DataType(enum.Enum):
    FLOAT = "FLOAT"
    UINT8 = "UINT8"


class TensorIOMode(enum.Enum):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"


class Logger:
    WARNING = 2

    def __init__(self, severity: int = WARNING) -> None:
        self.severity = severity


def write_stand_in_engine(
    bundle: str | Path, plan: str | Path, profile: tuple[int, int, int], input_format: str = "uint8"
) -> Path:
    """A stand-in plan for ``bundle`` (FP16; ``profile`` = min/opt/max batch; its I/O and profile
    as JSON) and its sidecar in the format of ``export/build_trt.py`` (flavour ``tensorrt``)."""
    config = read_bundle_config(bundle)
    size, k = config.image_size, config.num_classes
    io = {
        INPUT_NAME: {"mode": "input", "dtype": input_format.upper(), "shape": [-1, 3, size, size]},
        "class_probs": {"mode": "output", "dtype": "FLOAT", "shape": [-1, k]},
        "pixel_probs": {"mode": "output", "dtype": "FLOAT", "shape": [-1, k, size, size]},
    }
    data = json.dumps({"stand_in": _MARK, "io": io, "profile": list(profile)}).encode()
    sidecar: dict[str, Any] = onnx_metadata(config, "fp16", input_format, file_sha256(bundle))
    sidecar["format"] = ENGINE_FORMAT_NAME
    sidecar["tensorrt"] = {
        "flavour": "tensorrt", "version": STAND_IN_VERSION, "target_sm": "local",
        "strongly_typed": True, "profile": dict(zip(("min", "opt", "max"), profile, strict=True)),
        "io": io, "plan_bytes": len(data), "plan_sha256": hashlib.sha256(data).hexdigest(),
    }  # fmt: skip
    plan = Path(plan)
    atomic_write_bytes(plan, data)
    atomic_write_bytes(Path(engine_sidecar_path(plan)), json.dumps(sidecar).encode())
    return plan


@contextlib.contextmanager
def stand_in_tensorrt(trt: StandInTensorRT) -> Iterator[StandInTensorRT]:
    """The TensorRT backend loads engines through ``trt`` inside this block."""
    with mock.patch.object(trt_backend, "_import_trt", lambda flavour, name: trt):
        yield trt


class StandInTensorRT:
    """Module-like stand-in for ``tensorrt``: ``Runtime(logger).deserialize_cuda_engine(plan)``
    gives a :class:`StandInEngine` running ``graph`` on ``device``."""

    __version__ = STAND_IN_VERSION
    Logger = Logger
    TensorIOMode = TensorIOMode

    def __init__(self, graph: torch.nn.Module, device: str = "cuda") -> None:
        self.graph, self.device = graph, device

    def Runtime(self, logger: Logger) -> StandInTensorRT:  # noqa: N802 (TensorRT's name)
        return self

    def deserialize_cuda_engine(self, plan: bytes) -> StandInEngine | None:
        try:
            data = json.loads(plan)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("stand_in") != _MARK:
            return None
        return StandInEngine(self.graph, self.device, data["io"], tuple(data["profile"]))


class StandInEngine:
    """Named I/O tensors and one optimisation profile, as ``ICudaEngine`` reports them."""

    def __init__(
        self, graph: torch.nn.Module, device: str, io: dict[str, Any], profile: tuple[int, ...]
    ) -> None:
        self.graph, self.device, self.io, self.profile = graph, device, io, profile
        self.names = list(io)
        self.num_io_tensors = len(io)

    def get_tensor_name(self, i: int) -> str:
        return self.names[i]

    def get_tensor_mode(self, name: str) -> TensorIOMode:
        return TensorIOMode.INPUT if self.io[name]["mode"] == "input" else TensorIOMode.OUTPUT

    def get_tensor_dtype(self, name: str) -> DataType:
        return DataType(self.io[name]["dtype"])

    def get_tensor_shape(self, name: str) -> list[int]:
        return list(self.io[name]["shape"])

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[list[int]]:
        return [[b, *self.io[name]["shape"][1:]] for b in self.profile]

    def create_execution_context(self) -> StandInContext:
        return StandInContext(self)


class StandInContext:
    """``execute_async_v3`` runs the graph on the given CUDA stream, from and to the addresses
    bound with ``set_tensor_address``, for the shape ``set_input_shape`` accepted."""

    def __init__(self, engine: StandInEngine) -> None:
        self.engine = engine
        self.address: dict[str, int] = {}
        self.batch: int | None = None

    def set_tensor_address(self, name: str, ptr: int) -> bool:
        self.address[name] = ptr
        return True

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        low, _, high = self.engine.profile
        ok = low <= shape[0] <= high and list(shape[1:]) == self.engine.io[name]["shape"][1:]
        self.batch = shape[0] if ok else None
        return ok

    def execute_async_v3(self, stream: int) -> bool:
        if self.batch is None or set(self.address) != set(self.engine.io):
            return False  # as TensorRT: no valid input shape or an unbound tensor
        with self._on_stream(stream), torch.inference_mode():
            outputs = self.engine.graph(self._tensor(INPUT_NAME))
            for name, value in zip(self.engine.names[1:], outputs, strict=True):
                self._tensor(name).copy_(value)
        return True

    def _on_stream(self, stream: int) -> contextlib.AbstractContextManager:
        if self.engine.device == "cpu":
            return contextlib.nullcontext()
        return torch.cuda.stream(torch.cuda.ExternalStream(stream))

    def _tensor(self, name: str) -> torch.Tensor:
        """The bound buffer of ``name`` at the current batch, as a torch tensor (no copy)."""
        info = self.engine.io[name]
        shape = (self.batch, *info["shape"][1:])
        dtype = _TORCH[info["dtype"]]
        if self.engine.device == "cpu":
            nbytes = int(np.prod(shape)) * torch.empty((), dtype=dtype).element_size()
            raw = (ctypes.c_byte * nbytes).from_address(self.address[name])
            return torch.frombuffer(raw, dtype=dtype).view(shape)
        return torch.as_tensor(_CudaArray(self.address[name], shape, dtype), device="cuda")


class _CudaArray:
    """A device pointer as a ``__cuda_array_interface__`` (version 3) for ``torch.as_tensor``."""

    _TYPESTR = {torch.float32: "<f4", torch.uint8: "|u1"}

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: torch.dtype) -> None:
        self.__cuda_array_interface__ = {
            "shape": shape, "typestr": self._TYPESTR[dtype], "data": (ptr, False),
            "version": 3, "strides": None, "stream": None,
        }  # fmt: skip
