"""PyTorch backend: runs a ``.safetensors`` model bundle (CPU or CUDA)."""

from __future__ import annotations

import os

import numpy as np

from ..errors import BackendUnavailable


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when available else ``"cpu"``; an unavailable CUDA is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailable(f"device {device!r} requested but torch sees no CUDA GPU")
    return device


class TorchBackend:
    """Eager PyTorch inference of an :class:`~ipad_sdk.model.IpadClip` bundle."""

    name = "torch"
    input_format = "float"

    def __init__(self, path: str | os.PathLike[str], device: str = "auto") -> None:
        try:
            import torch  # noqa: F401
        except ImportError:
            raise BackendUnavailable(
                f"{os.fspath(path)}: a .safetensors bundle needs the PyTorch backend; "
                "install it with: pip install 'ipad-sdk[torch]'"
            ) from None
        from ..model import load_bundle

        self.device = resolve_device(device)
        self.model = load_bundle(path, self.device)
        self.config = self.model.config

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        with torch.inference_mode():
            images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
            class_probs, pixel_probs = self.model(images)
            return class_probs.float().cpu().numpy(), pixel_probs.float().cpu().numpy()
