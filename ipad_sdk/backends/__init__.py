"""Runtimes behind one protocol, and the choice among them.

A ``.safetensors`` bundle runs on PyTorch, an ``.onnx`` export on ONNX Runtime, a
``.plan``/``.engine`` on TensorRT (:func:`backend_for`, :func:`open_backend`). Backends never
import each other; what they share lives here: the device-string rules (:func:`parse_device`) and
the chunking of a batch to what a runtime accepts (:func:`batch_chunks`, :func:`run_chunked`).
:class:`~ipad_sdk.Detector` runs the pipeline on any :class:`Backend`, one opened here or one of
the caller's (e.g. a call to a network served elsewhere).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..arrays import ArrayOrTensor
from ..errors import ModelError
from ..fileio import check_regular_file
from ..metadata import ModelConfig

BUNDLE_SUFFIXES = (".safetensors",)
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine")
BACKENDS = {"torch": BUNDLE_SUFFIXES, "onnxruntime": ONNX_SUFFIXES, "tensorrt": ENGINE_SUFFIXES}

Outputs = tuple[np.ndarray, np.ndarray]


class Backend(Protocol):
    """Runs preprocessed batches: ``[B,3,S,S]`` -> ``([B,K+1], [B,K+1,S,S])`` float32.

    A batch is a host numpy array or a torch tensor (on the model's GPU when the images were
    preprocessed there); a backend that runs from host memory copies a tensor to the host.

    ``input_format`` says which batch :func:`~ipad_sdk.preprocess.preprocess_batch` must make:
    ``"float"`` (normalised float32) or ``"uint8"`` (resized pixels, normalised by the model).
    ``precision`` is the one it runs at (``fp32``, ``fp16``, ``int8``). ``close`` frees what the
    runtime holds (GPU memory, sessions); ``run`` must not be called afterwards.
    """

    name: str
    device: str
    config: ModelConfig
    input_format: str
    precision: str

    def run(self, batch: ArrayOrTensor) -> Outputs: ...

    def close(self) -> None: ...


def backend_for(path: str | os.PathLike[str]) -> str:
    """The backend that runs ``path``, by its suffix: ``torch``, ``onnxruntime`` or
    ``tensorrt``."""
    name = os.fspath(path)
    suffix = Path(name).suffix.lower()
    for backend, suffixes in BACKENDS.items():
        if suffix in suffixes:
            return backend
    known = ", ".join(f"{'/'.join(s)} ({b})" for b, s in BACKENDS.items())
    raise ModelError(f"{name}: unsupported model file type {suffix!r}; expected {known}")


def open_backend(
    path: str | os.PathLike[str],
    device: str = "auto",
    providers: Sequence[str] | None = None,
    threads: int | None = None,
    backend: str = "auto",
    precision: str = "auto",
    compile_batch: int | None = None,
) -> Backend:
    """Open ``path`` on ``backend`` (``"auto"``: by file type): a ``.safetensors`` bundle runs on
    PyTorch, an ``.onnx`` file on ONNX Runtime (``providers``/``threads`` apply to it only), a
    ``.plan``/``.engine`` on TensorRT; ``precision`` (``auto``/``fp32``/``fp16``) and
    ``compile_batch`` (``torch.compile`` for that fixed batch size) apply to PyTorch (the other
    formats carry theirs). A missing runtime raises
    :class:`~ipad_sdk.errors.BackendUnavailable` saying what to install."""
    name = os.fspath(path)
    check_regular_file(name)
    kind = backend_for(name)
    if backend not in ("auto", kind):
        if backend not in BACKENDS:
            raise ValueError(
                f"backend must be 'auto' or one of {sorted(BACKENDS)}, got {backend!r}"
            )
        raise ValueError(f"{name} is a {kind} model; backend={backend!r} cannot run it")
    if kind != "onnxruntime" and (providers is not None or threads is not None):
        raise ValueError("providers/threads apply to .onnx models only")
    if kind != "torch" and precision != "auto":
        raise ValueError(f"precision applies to .safetensors bundles; {name} carries its own")
    if kind != "torch" and compile_batch is not None:
        raise ValueError(f"compile applies to .safetensors bundles; {name} is already compiled")
    if kind == "torch":
        from .torch_backend import TorchBackend

        return TorchBackend(name, device, precision, compile_batch)
    if kind == "onnxruntime":
        from .onnx_backend import OnnxBackend

        return OnnxBackend(name, device, providers=providers, threads=threads)
    from .trt_backend import TensorRTBackend

    return TensorRTBackend(name, device)


def parse_device(device: str) -> tuple[str, int | None]:
    """The one reading of a device string, for every backend: ``"auto"`` -> ``("auto", None)``,
    ``"cpu"`` -> ``("cpu", None)``, ``"cuda"`` -> ``("cuda", None)``, ``"cuda:N"`` ->
    ``("cuda", N)``; anything else is a ``ValueError``. Whether the device exists is the
    backend's question."""
    if device in ("auto", "cpu", "cuda"):
        return device, None
    kind, sep, index = device.partition(":")
    if kind == "cuda" and sep and index.isascii() and index.isdigit():
        return "cuda", int(index)
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")


def batch_chunks(n: int, size: int) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size`` items, in order (the last may be shorter)."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def pad_rows(chunk: ArrayOrTensor, rows: int) -> ArrayOrTensor:
    """``chunk`` (numpy array or torch tensor) with its last row repeated up to ``rows`` rows."""
    missing = rows - len(chunk)
    if missing <= 0:
        return chunk
    if isinstance(chunk, np.ndarray):
        return np.concatenate([chunk, np.repeat(chunk[-1:], missing, axis=0)])
    import torch

    return torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])


def run_chunked(
    run: Callable[[Any], Outputs], batch: ArrayOrTensor, size: int | None, pad_to: int = 1
) -> Outputs:
    """``run`` on ``batch`` at most ``size`` rows at a time (``None``: all at once), each chunk
    below ``pad_to`` rows padded with its last row (a graph with a fixed or minimum batch), the
    outputs trimmed to the real rows and concatenated in order."""
    n = len(batch)
    parts = []
    for rows in batch_chunks(n, size or max(n, 1)):
        count = rows.stop - rows.start
        class_probs, pixel_probs = run(pad_rows(batch[rows], pad_to))
        parts.append((class_probs[:count], pixel_probs[:count]))
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([c for c, _ in parts]), np.concatenate([p for _, p in parts])


__all__ = ["BACKENDS", "BUNDLE_SUFFIXES", "ENGINE_SUFFIXES", "ONNX_SUFFIXES", "Backend",
           "backend_for", "batch_chunks", "open_backend", "pad_rows", "parse_device",
           "run_chunked"]  # fmt: skip
