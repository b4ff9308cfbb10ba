"""GPU check of the PyTorch backend: eager FP32 throughput of `Detector` backends on CUDA.

    python benchmarks/gpu_check.py [--out benchmarks/results]

Random-weight bundles (speed does not depend on the weights) for the tiny test model,
ViT-B-16@224 and the paper's ViT-L-14@518; batch sizes 1, 8, 16; median of repeated runs after
warm-up. Times `backend.run` (host batch in, host probabilities out: H2D copy, forward, upsampled
pixel map, D2H copy) and the bare model forward (CUDA events). Writes gpu_check.json and .md.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ipad_sdk import Detector
from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

MODELS = [(TINY_BACKBONE, 64), ("ViT-B-16", 224), ("ViT-L-14", 518)]
BATCHES = [1, 8, 16]


def _median_s(fn, reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backbone, size in MODELS:
            path = save_bundle(
                build_ipad_clip(backbone, image_size=size), Path(tmp, "m.safetensors")
            )
            det = Detector(path, device="cuda")
            for batch in BATCHES:
                host = np.random.default_rng(0).standard_normal((batch, 3, size, size), np.float32)
                dev = torch.from_numpy(host).cuda()
                run_s = _median_s(functools.partial(det.backend.run, host), args.reps)
                with torch.inference_mode():
                    fwd_s = _median_s(functools.partial(det.backend.model, dev), args.reps)
                rows.append({
                    "model": f"{backbone}@{size}", "batch": batch,
                    "backend_run_img_s": batch / run_s, "forward_img_s": batch / fwd_s,
                    "backend_run_ms": run_s * 1e3, "forward_ms": fwd_s * 1e3,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
            det = None  # free the GPU copy before the next model
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "precision": "fp32 eager (TF32 matmul off, cuDNN TF32 default)",
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2))
    lines = [
        f"# PyTorch backend on {report['device']} (torch {report['torch']}, {report['precision']})",
        "",
        "| model | batch | backend.run img/s | forward img/s | backend.run ms | peak GiB |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['model']} | {r['batch']} | {r['backend_run_img_s']:.1f} | {r['forward_img_s']:.1f} "
        f"| {r['backend_run_ms']:.2f} | {r['peak_mem_gib']:.2f} |"
        for r in rows
    ]
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
