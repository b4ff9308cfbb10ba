"""``to_host``: how the backends that run from host memory (ONNX Runtime, TensorRT) take a batch
that is a torch tensor, as the ``Backend`` protocol allows."""

from __future__ import annotations

import numpy as np
import pytest

from ipad_sdk.arrays import to_host


def test_a_host_array_of_the_dtype_is_used_as_is() -> None:
    batch = np.zeros((2, 3, 4, 4), np.float32)
    assert to_host(batch, np.float32) is batch
    converted = to_host(batch, np.uint8)
    assert converted.dtype == np.uint8 and converted.flags.c_contiguous


def test_a_tensor_is_copied_to_the_host_in_the_dtype_asked_for() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.linspace(0, 1, 2 * 3 * 4 * 4, dtype=torch.float64).reshape(2, 3, 4, 4)
    tensor.requires_grad_(True)  # numpy's own conversion refuses a tensor that requires grad
    host = to_host(tensor.transpose(2, 3), np.float32)
    assert isinstance(host, np.ndarray) and host.dtype == np.float32 and host.flags.c_contiguous
    want = tensor.detach().transpose(2, 3).numpy().astype(np.float32)
    np.testing.assert_array_equal(host, want)
