"""Throughput estimates from the analytic FLOPs of one IPAD-CLIP forward pass and a card's peak.

    python benchmarks/flops.py [--card "RTX 3090"] [--efficiency 0.4]

The FLOPs are counted by :func:`ipad_sdk.model.flops.ipad_flops` (what they include is described
there); this module adds the cards' peak tables and the estimates.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import re
from typing import Any

from ipad_sdk.metadata import ModelConfig
from ipad_sdk.model.flops import ipad_flops

#: Dense FP16 tensor-core peaks in TFLOP/s (no sparsity; FP32 accumulate where GeForce cards run
#: it at half rate), from NVIDIA's architecture whitepapers and datasheets.
FP16_TENSOR_PEAK_TFLOPS: dict[str, float] = {
    "RTX 3090": 71.0,  # GA102, FP32 accumulate (142 with FP16 accumulate)
    "RTX 4090": 165.2,  # AD102, FP32 accumulate (330 with FP16 accumulate)
    "A100": 312.0,
    "L4": 121.0,
    "H100": 989.4,  # SXM
    "H100 PCIe": 756.5,
    "H100 NVL": 835.5,
    "H200": 989.4,  # SXM
    "H200 NVL": 835.5,
}
#: Dense FP32 peaks (CUDA cores, no TF32) in TFLOP/s: the roofline of eager FP32 rows.
FP32_PEAK_TFLOPS: dict[str, float] = {
    "RTX 3090": 35.6, "RTX 4090": 82.6, "A100": 19.5, "L4": 30.3, "H100": 66.9,
    "H100 PCIe": 51.2, "H100 NVL": 60.0, "H200": 66.9, "H200 NVL": 60.0,
}  # fmt: skip
#: ``torch.cuda.get_device_name()`` patterns -> peak-table rows, most specific first.
_CARD_NAMES = [
    (r"H200 NVL", "H200 NVL"), (r"H200", "H200"), (r"H100 NVL", "H100 NVL"),
    (r"H100 PCIe", "H100 PCIe"), (r"H100", "H100"), (r"RTX 3090", "RTX 3090"),
    (r"RTX 4090", "RTX 4090"), (r"A100", "A100"), (r"\bL4\b", "L4"),
]  # fmt: skip


def card_of(device_name: str) -> str | None:
    """The peak-table row of a GPU named as ``torch.cuda.get_device_name()`` does (e.g.
    ``NVIDIA H100 80GB HBM3`` -> ``H100``, the SXM card); None for a card not in the tables."""
    for pattern, card in _CARD_NAMES:
        if re.search(pattern, device_name):
            return card
    return None


def estimate_images_per_second(flops: float, card: str, efficiency: float) -> float:
    """Images/s if ``card`` sustained ``efficiency`` x its dense FP16 tensor peak (an estimate)."""
    return FP16_TENSOR_PEAK_TFLOPS[card] * 1e12 * efficiency / flops


def config_for(backbone: str, image_size: int | None = None) -> ModelConfig:
    """The ModelConfig of an open_clip backbone at ``image_size`` (no weights are built)."""
    from ipad_sdk.model.backbone import clip_config_for
    from ipad_sdk.model.network import model_config

    return model_config(backbone, clip_config_for(backbone, image_size))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", default="RTX 3090", choices=sorted(FP16_TENSOR_PEAK_TFLOPS))
    parser.add_argument("--efficiency", type=float, nargs="+", default=[0.3, 0.6],
                        help="fractions of the FP16 peak to estimate with")  # fmt: skip
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for backbone, size in (("IPAD-Small-ViT-16", 224), ("ViT-B-16", 224), ("ViT-L-14", 518)):
        flops = ipad_flops(config_for(backbone, size))["total"]
        rows.append({"model": f"{backbone}@{size}", "gflops": flops / 1e9} | {
            f"img/s at {e:.0%}": estimate_images_per_second(flops, args.card, e)
            for e in args.efficiency
        })  # fmt: skip
    peak = FP16_TENSOR_PEAK_TFLOPS[args.card]
    print(f"Estimated {args.card} FP16 throughput (peak {peak} TFLOP/s; estimates, not measured)")
    for row in rows:
        print("  " + ", ".join(f"{k}: {v:,.1f}" if isinstance(v, float) else f"{k}: {v}"
                               for k, v in row.items()))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
