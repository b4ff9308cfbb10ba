"""Host arrays and device tensors: the types of the values between preprocessing and a backend.

A preprocessed batch is a numpy array on the host, or a torch tensor where the images were
preprocessed on the model's GPU (:mod:`ipad_sdk.device_preprocess`). torch is imported for type
checkers only, so ``import ipad_sdk`` does not load it: at run time the aliases below are strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import numpy as np

from .io import is_torch_tensor

if TYPE_CHECKING:
    import torch

#: A torch tensor, on the host or on a GPU.
Tensor: TypeAlias = "torch.Tensor"
#: A numpy array on the host, or a torch tensor (on any device): what
#: :meth:`Backend.run <ipad_sdk.backends.Backend.run>` takes.
ArrayOrTensor: TypeAlias = "np.ndarray | torch.Tensor"


def to_host(batch: ArrayOrTensor, dtype: type[np.generic]) -> np.ndarray:
    """``batch`` as a C-contiguous numpy array of ``dtype`` (a tensor on a GPU is copied to the
    host; a C-contiguous array of that dtype is returned as is)."""
    if is_torch_tensor(batch):
        return np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=dtype)
    return np.ascontiguousarray(batch, dtype=dtype)
