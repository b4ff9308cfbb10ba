"""Runtimes behind one protocol. Backends never import each other; ``detector.py`` picks one."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..metadata import ModelConfig


class Backend(Protocol):
    """Runs preprocessed batches: ``[B,3,S,S]`` float32 -> ``([B,K+1], [B,K+1,S,S])`` float32."""

    name: str
    device: str
    config: ModelConfig

    def run(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
