"""GPU check of the PyTorch backend: eager FP32 vs the FP16 fast path on CUDA, side by side.

    python benchmarks/gpu_check.py [--out benchmarks/results] [--peak-card H100]
        [--compile-batches 16]

Random-weight bundles (speed does not depend on the weights) for the default model's backbone,
ViT-B-16@224 and the paper's ViT-L-14@518; batch sizes 1, 8, 16, 32; median of repeated runs after
warm-up; every FP16 row as a ratio to eager FP32 at the same batch, and the forward's TFLOP/s
(analytic FLOPs) as a share of the card's dense FP16 peak. Times `backend.run` (host batch in,
host probabilities out: H2D copy, forward, upsampled pixel map, D2H copy) and the bare model
forward (synchronised wall clock). ``fp16+compile`` rows: the FP16 path through ``torch.compile``
with CUDA graphs (``Detector(compile=True)``), ``backend.run`` only, compile time recorded.
Writes gpu_check.json and .md.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

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

from benchmarks.flops import FP16_TENSOR_PEAK_TFLOPS, ipad_flops
from ipad_sdk import Detector
from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.metadata import read_bundle_config
from ipad_sdk.model import build_ipad_clip, save_bundle

MODELS = [("IPAD-Small-ViT-16", 224), ("ViT-B-16", 224), ("ViT-L-14", 518)]
BATCHES = [1, 8, 16, 32]


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


def to_markdown(report: dict) -> str:
    peak, rows = report["fp16_peak_tflops"], report["rows"]
    lines = [
        f"# PyTorch backend on {report['device']} (torch {report['torch']})",
        "",
        f"{report['precision']}. FLOPs from benchmarks/flops.py (analytic); fp16+compile rows "
        "time backend.run only, so their TFLOP/s is a lower bound."
        + (f" Fraction of the dense FP16 peak ({peak} TFLOP/s)." if peak else ""),
        "",
        "| model | precision | batch | backend.run img/s | vs fp32 | forward img/s | forward "
        "TFLOP/s | % of FP16 peak | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        share = f"{100 * r['forward_tflops'] / peak:.0f} %" if peak else "-"
        forward = f"{r['forward_img_s']:.1f}" if r["forward_img_s"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['batch']} | {r['backend_run_img_s']:.1f} | "
            f"{r['speedup_vs_fp32']:.2f}x | {forward} | "
            f"{r['forward_tflops']:.1f} | {share} | {r['peak_mem_gib']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--peak-card", help="row of benchmarks/flops.py's peak table, e.g. H100")
    parser.add_argument(
        "--compile-batches",
        type=int,
        nargs="*",
        default=[16],
        help="batch sizes of the FP16 + torch.compile (CUDA graphs) rows",
    )
    args = parser.parse_args()
    if not set(args.compile_batches) <= set(BATCHES):
        parser.error(f"--compile-batches must be among {BATCHES} (their FP32 rows: the baseline)")
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    rows = []
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backbone, size in MODELS:
            path = save_bundle(
                build_ipad_clip(backbone, image_size=size), Path(tmp, "m.safetensors")
            )
            flops = ipad_flops(read_bundle_config(path))["total"]
            base: dict[int, float] = {}
            for precision in ("fp32", "fp16"):  # eager FP32 is every row's baseline
                det = Detector(path, device="cuda", precision=precision)
                for batch in BATCHES:
                    rng = np.random.default_rng(0)
                    shape = (batch, 3, size, size)
                    host = (rng.integers(0, 256, shape, dtype=np.uint8)
                            if det.backend.input_format == "uint8"
                            else rng.standard_normal(shape, np.float32))  # fmt: skip
                    dev = torch.from_numpy(host).cuda()
                    run_s = _median_s(functools.partial(det.backend.run, host), args.reps)
                    with torch.inference_mode():
                        fwd_s = _median_s(functools.partial(det.backend.model, dev), args.reps)
                    base.setdefault(batch, run_s)
                    rows.append({
                        "model": f"{backbone}@{size}", "precision": precision, "batch": batch,
                        "backend_run_img_s": batch / run_s, "forward_img_s": batch / fwd_s,
                        "backend_run_ms": run_s * 1e3, "forward_ms": fwd_s * 1e3,
                        "speedup_vs_fp32": base[batch] / run_s,
                        "forward_tflops": flops * batch / fwd_s / 1e12,
                        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                    })  # fmt: skip
                    print(json.dumps(rows[-1]), flush=True)
                det = None  # free the GPU copy before the next model
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            for batch in args.compile_batches:  # FP16 + torch.compile with CUDA graphs
                det = Detector(path, device="cuda", precision="fp16", batch_size=batch,
                               compile=True)  # fmt: skip
                host = np.random.default_rng(0).integers(0, 256, (batch, 3, size, size),
                                                         dtype=np.uint8)  # fmt: skip
                start = time.perf_counter()
                det.backend.run(host)  # compiles and captures
                compile_s = time.perf_counter() - start
                run_s = _median_s(functools.partial(det.backend.run, host), args.reps)
                rows.append({
                    "model": f"{backbone}@{size}", "precision": "fp16+compile", "batch": batch,
                    "backend_run_img_s": batch / run_s, "forward_img_s": None,
                    "backend_run_ms": run_s * 1e3, "forward_ms": None,
                    "speedup_vs_fp32": base[batch] / run_s,
                    # from backend.run (copies and map included): a lower bound on the forward's
                    "forward_tflops": flops * batch / run_s / 1e12, "compile_s": compile_s,
                    "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
                })  # fmt: skip
                print(json.dumps(rows[-1]), flush=True)
                det = None
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    peak = FP16_TENSOR_PEAK_TFLOPS.get(args.peak_card) if args.peak_card else None
    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "precision": "fp32: eager (TF32 matmul off); fp16: InferenceGraph (SDPA, FP32 norms)",
        "fp16_peak_tflops": peak,
        "rows": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "gpu_check.json", json.dumps(report, indent=2).encode())
    markdown = to_markdown(report)
    atomic_write_bytes(out / "gpu_check.md", markdown.encode())
    print(markdown)


if __name__ == "__main__":
    main()
