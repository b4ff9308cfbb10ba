"""A fake ``cuda.bindings.runtime`` for CPU tests of the TensorRT backend: "device" memory is host
memory, copies happen at once, and it records the device each thread had current at every copy.
Freed memory stays allocated (so a use after free cannot crash the test) but a copy from or to it
fails as CUDA would with an invalid pointer."""

from __future__ import annotations

import ctypes
import enum
import threading
from types import SimpleNamespace


class cudaError_t(enum.IntEnum):  # noqa: N801 (cuda-python's name)
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorInsufficientDriver = 35


class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2


_OK = cudaError_t.cudaSuccess


class FakeCudart:
    """``count`` GPUs of compute capability ``sm`` (major, minor); ``error``: what
    ``cudaGetDeviceCount`` fails with instead."""

    cudaError_t = cudaError_t
    cudaMemcpyKind = cudaMemcpyKind

    def __init__(
        self, count: int = 1, sm: tuple[int, int] = (8, 6), error: cudaError_t = _OK
    ) -> None:
        self.count, self.sm, self.error = count, sm, error
        self.live: dict[int, ctypes.Array] = {}
        self.freed: dict[int, ctypes.Array] = {}
        self.copy_devices: list[int] = []
        self._thread = threading.local()

    def cudaGetDeviceCount(self) -> tuple:  # noqa: N802
        return (self.error, self.count) if self.error == _OK else (self.error, None)

    def cudaSetDevice(self, index: int) -> tuple:  # noqa: N802
        self._thread.device = index
        return (_OK,)

    def cudaGetDeviceProperties(self, index: int) -> tuple:  # noqa: N802
        return _OK, SimpleNamespace(major=self.sm[0], minor=self.sm[1], name=b"Fake GPU\0")

    def cudaGetErrorString(self, err: cudaError_t) -> tuple:  # noqa: N802
        return _OK, b"invalid argument"

    def cudaMalloc(self, nbytes: int) -> tuple:  # noqa: N802
        buffer = ctypes.create_string_buffer(nbytes)
        self.live[ctypes.addressof(buffer)] = buffer
        return _OK, ctypes.addressof(buffer)

    cudaMallocHost = cudaMalloc

    def cudaFree(self, ptr: int) -> tuple:  # noqa: N802
        self.freed[ptr] = self.live.pop(ptr)
        return (_OK,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind, stream) -> tuple:  # noqa: N802
        if self._freed(dst, nbytes) or self._freed(src, nbytes):
            return (cudaError_t.cudaErrorInvalidValue,)
        self.copy_devices.append(getattr(self._thread, "device", 0))
        ctypes.memmove(dst, src, nbytes)
        return (_OK,)

    def _freed(self, ptr: int, nbytes: int) -> bool:
        return any(base <= ptr and ptr + nbytes <= base + len(b) for base, b in self.freed.items())

    def cudaStreamCreate(self) -> tuple:  # noqa: N802
        return _OK, 7

    def cudaStreamSynchronize(self, stream: int) -> tuple:  # noqa: N802
        return (_OK,)

    def cudaStreamDestroy(self, stream: int) -> tuple:  # noqa: N802
        return (_OK,)
