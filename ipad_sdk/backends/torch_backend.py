"""PyTorch backend: runs a ``.safetensors`` model bundle (CPU or CUDA).

``precision="fp32"`` runs the network as built (eager FP32). ``"fp16"`` runs
:class:`~ipad_sdk.model.mixed_precision.InferenceGraph`: FP16 weights and matmuls, fused
``scaled_dot_product_attention``, LayerNorm / softmax / L2 normalisation / cosine head in FP32,
and the normalisation of uint8 pixels on the device. ``"auto"`` is FP16 on CUDA, FP32 on the CPU
(where PyTorch has no fast FP16 kernels).

``compile_batch=N`` wraps the network in ``torch.compile`` (full graph, static shapes; on CUDA
``mode="reduce-overhead"``, which captures and replays CUDA graphs) and runs every batch as chunks
of exactly ``N`` images, the last one padded, so one graph serves every call. Calls into a compiled
network are serialised by a lock (CUDA-graph trees assert when replayed from several threads,
pytorch#123177, and a replay reuses its output buffers); eager calls run concurrently.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..arrays import ArrayOrTensor
from ..errors import BackendUnavailable
from . import parse_device, run_chunked

if TYPE_CHECKING:
    import torch


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"`` (the rules of
    :func:`~ipad_sdk.backends.parse_device`); an unavailable CUDA device is an error."""
    import torch

    kind, index = parse_device(device)
    if kind == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
    if index is not None and index >= torch.cuda.device_count():
        raise BackendUnavailable(
            f"device {device!r} requested but torch sees {torch.cuda.device_count()} CUDA GPU(s)"
        )
    return device


class TorchBackend:
    """Eager PyTorch inference of an :class:`~ipad_sdk.model.IpadClip` bundle."""

    name = "torch"

    def __init__(
        self,
        path: str | os.PathLike[str],
        device: str = "auto",
        precision: str = "auto",
        compile_batch: int | None = None,
    ) -> None:
        try:
            import torch
        except ImportError:
            raise BackendUnavailable(
                f"{os.fspath(path)}: a .safetensors bundle needs the PyTorch backend; "
                "install it with: pip install 'ipad-sdk[torch]'"
            ) from None
        from ..model import load_bundle

        if precision not in ("auto", "fp32", "fp16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'fp16', got {precision!r}")
        self.device = resolve_device(device)
        bundle = load_bundle(path, self.device)
        self.config = bundle.config
        model: torch.nn.Module = bundle
        if precision == "auto":
            precision = "fp16" if self.device.startswith("cuda") else "fp32"
        self.precision = precision
        if precision == "fp16":
            from ..model.mixed_precision import InferenceGraph

            model = InferenceGraph(bundle, fp16=True, uint8_input=True, fused_attention=True)
        # the network, or its torch.compile wrapper: images -> (class_probs, pixel_probs)
        # (None once closed)
        self.model: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None
        network = model.to(self.device).eval()
        self.model = network
        self.input_format = "uint8" if precision == "fp16" else "float"
        if compile_batch is not None and compile_batch < 1:
            raise ValueError(f"compile_batch must be >= 1, got {compile_batch}")
        self.compile_batch = compile_batch
        self._lock: contextlib.AbstractContextManager = (
            threading.Lock() if compile_batch is not None else contextlib.nullcontext()
        )
        if compile_batch is not None:
            mode = "reduce-overhead" if self.device.startswith("cuda") else None
            self.model = torch.compile(network, mode=mode, fullgraph=True, dynamic=False)

    def run(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        """``batch``: a numpy array, or a torch tensor already preprocessed on the device."""
        import torch

        if self.model is None:
            raise RuntimeError(f"{self.name} backend is closed")
        with torch.inference_mode():
            if isinstance(batch, torch.Tensor):
                dtype = torch.uint8 if self.input_format == "uint8" else torch.float32
                images = batch.to(self.device, dtype)
            else:
                host_dtype = np.uint8 if self.input_format == "uint8" else np.float32
                host = torch.from_numpy(np.ascontiguousarray(batch, dtype=host_dtype))
                if self.device.startswith("cuda"):
                    host = host.pin_memory()
                images = host.to(self.device, non_blocking=True)
            if self.compile_batch is None:
                return self._forward(images)
            # the compiled graph has one static batch size: chunks of it, the last one padded
            return run_chunked(self._forward_locked, images, self.compile_batch,
                               pad_to=self.compile_batch)  # fmt: skip

    def _forward_locked(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._forward(images)

    def _forward(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        if self.model is None:
            raise RuntimeError(f"{self.name} backend is closed")
        # copied to the host at once: a replayed CUDA graph reuses its output buffers
        class_probs, pixel_probs = self.model(images)
        return class_probs.float().cpu().numpy(), pixel_probs.float().cpu().numpy()

    def close(self) -> None:
        """Drop the network and return PyTorch's cached GPU memory; ``run`` raises after."""
        if self.model is None:
            return
        self.model = None
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
