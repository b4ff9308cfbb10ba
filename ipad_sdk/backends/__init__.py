"""Runtimes behind one protocol. Backends never import each other; ``detector.py`` picks one."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..arrays import ArrayOrTensor
from ..metadata import ModelConfig


class Backend(Protocol):
    """Runs preprocessed batches: ``[B,3,S,S]`` -> ``([B,K+1], [B,K+1,S,S])`` float32.

    A batch is a host numpy array or a torch tensor (on the model's GPU when the images were
    preprocessed there); a backend that runs from host memory copies a tensor to the host.

    ``input_format`` says which batch :func:`~ipad_sdk.preprocess.preprocess_batch` must make:
    ``"float"`` (normalised float32) or ``"uint8"`` (resized pixels, normalised by the model).
    ``precision`` is the one it runs at (``fp32``, ``fp16``, ``int8``).
    """

    name: str
    device: str
    config: ModelConfig
    input_format: str
    precision: str

    def run(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]: ...
