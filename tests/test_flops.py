"""The analytic FLOP count (ipad_sdk.model.flops) against PyTorch's FlopCounterMode, real models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from benchmarks.flops import FP16_TENSOR_PEAK_TFLOPS, estimate_images_per_second  # noqa: E402
from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip  # noqa: E402
from ipad_sdk.model.flops import ipad_flops  # noqa: E402


def _counted(model, size: int) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    torch.backends.mha.set_fastpath_enabled(False)  # count the plain matmul path
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, 3, size, size))
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    return counter.get_total_flops()


@pytest.mark.parametrize(
    ("backbone", "size", "n_adapt", "stem"),
    [(TINY_BACKBONE, 64, 6, "patch"), (TINY_BACKBONE, 96, 2, "patch"),
     ("IPAD-Small-ViT-16", 64, 0, "patch"), (TINY_BACKBONE, 96, 2, "conv"),
     ("IPAD-Small-ViT-16", 64, 6, "conv")],
)  # fmt: skip
def test_matches_pytorch_flop_counter(backbone, size, n_adapt, stem):
    from ipad_sdk.model.mixed_precision import InferenceGraph

    model = build_ipad_clip(backbone, image_size=size, n_adapt=n_adapt, stem=stem)
    analytic = ipad_flops(model.config)
    assert analytic["total"] == sum(v for k, v in analytic.items() if k != "total")
    # the fused attention kernel is invisible to the counter: everything else is counted
    assert analytic["total"] - analytic["attention_scores"] == _counted(model, size)
    # the export graph spells attention out as matmuls: all of it is counted
    assert analytic["total"] == _counted(InferenceGraph(model), size)


def test_vit_l14_at_518_and_estimates():
    from benchmarks.flops import config_for

    flops = ipad_flops(config_for("ViT-L-14", 518))
    # ViT-L/14 at 518: 1370 tokens, 24 blocks of width 1024: 24 (24 N W^2 + 4 N^2 W) ~ 1.0 TFLOP
    assert 0.95e12 < flops["total"] < 1.1e12
    assert estimate_images_per_second(1e12, "RTX 3090", 0.5) == pytest.approx(35.5)
    assert set(FP16_TENSOR_PEAK_TFLOPS) >= {"RTX 3090", "RTX 4090", "A100", "L4", "H100", "H200"}


@pytest.mark.parametrize(
    ("name", "card"),
    [
        ("NVIDIA H100 80GB HBM3", "H100"),  # the SXM card
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H100 NVL", "H100 NVL"),
        ("NVIDIA H200", "H200"),
        ("NVIDIA H200 NVL", "H200 NVL"),
        ("NVIDIA GeForce RTX 3090", "RTX 3090"),
        ("NVIDIA L40S", None),  # not the L4
        ("Tesla T4", None),
    ],
)
def test_card_of_device_name(name, card):
    from benchmarks.flops import FP32_PEAK_TFLOPS, card_of

    assert card_of(name) == card
    if card is not None:
        assert card in FP16_TENSOR_PEAK_TFLOPS and card in FP32_PEAK_TFLOPS
