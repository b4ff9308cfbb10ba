"""GPU check steps (run by ``benchmarks/gpu_check.sh``, each as its own process):

    python benchmarks/gpu_check.py parity [--out benchmarks/results]
    python benchmarks/gpu_check.py stand-in [--out ...]
    python benchmarks/gpu_check.py throughput [--out ...] [--reps 10] [--compile-models ...]

``parity``: the default model on CUDA (eager FP32 and the FP16 fast path) against eager FP32 on the
CPU; exits 1 beyond 2e-3 (FP32) / 1e-2 (FP16) or on any differing label.

``stand-in``: the TensorRT backend (real cuda-bindings buffers, stream and profile logic) on the
STAND-IN engine of ``benchmarks/trt_stand_in.py`` (the FP16 graph in torch — not TensorRT, which
cannot run on a Hopper lent machine): split and padded batches, a second thread, close; exits 1 if
its outputs differ from the PyTorch FP16 backend's by more than 1e-3.

``throughput``: random-weight bundles (speed does not depend on the weights) of the default
model's backbone, ViT-B-16@224 and ViT-L-14@518; eager FP32 vs the FP16 fast path, batch
1/8/16/32; ``backend.run`` end to end (host batch in, host probabilities out; wall clock, median)
beside the bare forward timed with CUDA events (median); the forward's TFLOP/s (analytic FLOPs)
as a share of the detected card's peak (FP16 tensor peak for FP16 rows, FP32 peak for FP32 rows);
memory peak reset per row, measured over that row's inference only. Each batch size is warmed up
before it is timed (TensorRT for RTX and torch.compile compile per shape). ``fp16+compile`` rows
(``torch.compile`` with CUDA graphs) need a C compiler: without ``cc`` they are recorded as
skipped with the reason. The report is rewritten after every row, so a timed-out step still
leaves its rows.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.flops import FP16_TENSOR_PEAK_TFLOPS, FP32_PEAK_TFLOPS, card_of
from ipad_sdk.fileio import atomic_write_bytes

MODELS = [("IPAD-Small-ViT-16", 224), ("ViT-B-16", 224), ("ViT-L-14", 518)]
BATCHES = [1, 8, 16, 32]
PARITY_ATOL = {"fp32": 2e-3, "fp16": 1e-2}
STAND_IN_ATOL = 1e-3


def compile_skip_reason() -> str | None:
    """Why ``torch.compile`` cannot run here (inductor builds C code with ``cc``), or None."""
    compiler = os.environ.get("CC", "cc")
    if shutil.which(compiler) is None:
        return f"no C compiler ({compiler}) on this machine: torch.compile (inductor) needs one"
    try:
        subprocess.run([compiler, "--version"], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"the C compiler {compiler} does not run: {exc}"
    return None


def peaks_for(device_name: str) -> dict[str, float | None]:
    """The card's dense peaks (TFLOP/s) by row precision; None where the card is unknown."""
    card = card_of(device_name)
    return {"card": card, "fp16": FP16_TENSOR_PEAK_TFLOPS.get(card or ""),
            "fp32": FP32_PEAK_TFLOPS.get(card or "")}  # fmt: skip


def parity_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of the parity step beyond their precision's tolerance or with a differing label."""
    problems = []
    for r in rows:
        limit, worst = PARITY_ATOL[r["precision"]], max(r["max_d_score"], r["max_d_heatmap"])
        if not worst <= limit:
            problems.append(f"cuda {r['precision']}: max |d| {worst:.2e} > {limit}")
        if r["labels_equal"] != r["images"]:
            differ = r["images"] - r["labels_equal"]
            problems.append(f"cuda {r['precision']}: {differ} labels differ")
    return problems


def _max_diff(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> float:
    return max(float(np.abs(g - w).max()) for g, w in zip(got, want, strict=True))


def to_markdown(report: dict[str, Any]) -> str:
    peaks, rows = report["peaks_tflops"], report["rows"]
    lines = [
        f"# PyTorch backend on {report['device']} (torch {report['torch']})",
        "",
        f"{report['precision']}. backend.run: wall clock, end to end; forward: CUDA events. "
        f"Share of the card's dense peak ({peaks['card'] or 'unknown card'}: FP16 "
        f"{peaks['fp16']}, FP32 {peaks['fp32']} TFLOP/s) by the row's precision; fp16+compile "
        "rows time backend.run only (a lower bound). Peak memory: per row, inference only.",
        "",
        "| model | precision | batch | backend.run img/s | vs fp32 | forward img/s | forward "
        "TFLOP/s | % of peak | peak GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r.get("skipped"):
            lines.append(f"| {r['model']} | {r['precision']} | {r['batch']} | skipped: "
                         f"{r['skipped']} | | | | | |")  # fmt: skip
            continue
        peak = peaks["fp32" if r["precision"] == "fp32" else "fp16"]
        share = f"{100 * r['forward_tflops'] / peak:.0f} %" if peak else "-"
        forward = f"{r['forward_img_s']:.1f}" if r["forward_img_s"] is not None else "-"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['batch']} | {r['backend_run_img_s']:.1f} | "
            f"{r['speedup_vs_fp32']:.2f}x | {forward} | {r['forward_tflops']:.1f} | {share} | "
            f"{r['peak_mem_gib']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _write(out: Path, stem: str, report: dict[str, Any], markdown: str | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / f"{stem}.json", json.dumps(report, indent=2).encode())
    if markdown is not None:
        atomic_write_bytes(out / f"{stem}.md", markdown.encode())


# -- on the GPU -----------------------------------------------------------------------------------
def _wall_ms(fn: Callable[[], Any], reps: int, warmup: int = 3) -> float:
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times)


def _event_ms(fn: Callable[[], Any], reps: int, warmup: int = 3) -> float:
    """Median GPU time of ``fn`` between CUDA events on the current stream."""
    import torch

    for _ in range(warmup):
        fn()
    pairs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
             for _ in range(reps)]  # fmt: skip
    for start, end in pairs:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return statistics.median(start.elapsed_time(end) for start, end in pairs)


def _quiet_detector(*args: Any, **kwargs: Any) -> Any:
    from ipad_sdk import Detector

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Detector(*args, **kwargs)


def parity(out: Path) -> int:
    images: list[Any] = ["examples/kodim03.jpg"]
    rng = np.random.default_rng(0)
    images += [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(15)]
    cpu = _quiet_detector(device="cpu", precision="fp32").detect_batch(images)
    rows = []
    for precision in ("fp32", "fp16"):
        got = _quiet_detector(device="cuda", precision=precision).detect_batch(images)
        pairs = list(zip(cpu, got, strict=True))
        rows.append({
            "precision": precision, "images": len(images),
            "max_d_score": max(abs(a.scores[c] - b.scores[c]) for a, b in pairs for c in a.scores),
            "max_d_heatmap": max(float(np.abs(a.heatmap - b.heatmap).max()) for a, b in pairs),
            "labels_equal": sum(a.label == b.label for a, b in pairs),
        })  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    problems = parity_problems(rows)
    _write(out, "gpu_parity", {"rows": rows, "tolerance": PARITY_ATOL, "problems": problems})
    for problem in problems:
        print(f"PARITY FAILED: {problem}")
    return 1 if problems else 0


def stand_in(out: Path) -> int:
    """The TensorRT backend on the stand-in engine (not TensorRT) with real cuda-bindings."""
    from benchmarks.trt_stand_in import StandInTensorRT, stand_in_tensorrt, write_stand_in_engine
    from ipad_sdk.backends.trt_backend import TensorRTBackend
    from ipad_sdk.detector import default_model_path
    from ipad_sdk.model import load_bundle
    from ipad_sdk.model.mixed_precision import InferenceGraph

    bundle = default_model_path()
    torch_fp16 = _quiet_detector(bundle, device="cuda", precision="fp16").backend
    graph = InferenceGraph(load_bundle(bundle, "cuda"), fp16=True, uint8_input=True,
                           fused_attention=True).to("cuda").eval()  # fmt: skip
    report: dict[str, Any] = {"engine": "STAND-IN (FP16 graph in torch), not TensorRT",
                              "profile": [2, 8, 16], "checks": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        plan = write_stand_in_engine(bundle, Path(tmp, "stand_in.plan"), (2, 8, 16))
        with stand_in_tensorrt(StandInTensorRT(graph, device="cuda")):
            backend = TensorRTBackend(plan)
        size = backend.config.image_size
        rng = np.random.default_rng(0)
        for n in (1, 5, 16, 37):  # padded to the minimum 2; within; the maximum; split 16+16+5
            batch = rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8)
            report["checks"][f"batch {n}"] = _max_diff(backend.run(batch), torch_fp16.run(batch))
        batch = rng.integers(0, 256, (3, 3, size, size), dtype=np.uint8)
        box: list[Any] = []
        worker = threading.Thread(target=lambda: box.append(backend.run(batch)))
        worker.start()
        worker.join()
        report["checks"]["other thread"] = _max_diff(box[0], torch_fp16.run(batch))
        backend.close()
        try:
            backend.run(batch)
            report["run_after_close"] = "did not raise"
        except RuntimeError as exc:
            report["run_after_close"] = f"raised: {exc}"
    bad = {k: v for k, v in report["checks"].items() if not v <= STAND_IN_ATOL}
    report["ok"] = not bad and report["run_after_close"].startswith("raised")
    _write(out, "gpu_stand_in", report)
    print(json.dumps(report, indent=1))
    return 0 if report["ok"] else 1


def _random_input(det: Any, batch: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (batch, 3, size, size)
    if det.backend.input_format == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape, np.float32)


def _row(det: Any, model: str, precision: str, batch: int, size: int, flops: float,
         reps: int) -> dict[str, Any]:  # fmt: skip
    """One timed row: memory peak reset first, so it covers this row's inference only."""
    import torch

    host = _random_input(det, batch, size)
    dev = torch.from_numpy(host).cuda()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    run_ms = _wall_ms(lambda: det.backend.run(host), reps)
    forward_ms = None
    if precision != "fp16+compile":
        with torch.inference_mode():
            forward_ms = _event_ms(lambda: det.backend.model(dev), reps)
    seconds = (forward_ms or run_ms) / 1e3
    return {
        "model": model, "precision": precision, "batch": batch,
        "backend_run_img_s": batch / (run_ms / 1e3), "backend_run_ms": run_ms,
        "forward_img_s": batch / seconds if forward_ms else None, "forward_ms": forward_ms,
        "forward_tflops": flops * batch / seconds / 1e12,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
    }  # fmt: skip


def throughput(out: Path, reps: int, compile_models: list[str], compile_batch: int) -> int:
    import torch

    from ipad_sdk.metadata import read_bundle_config
    from ipad_sdk.model import build_ipad_clip, save_bundle
    from ipad_sdk.model.flops import ipad_flops

    name = torch.cuda.get_device_name()
    skip_compile = compile_skip_reason()
    report: dict[str, Any] = {
        "device": name, "torch": torch.__version__, "peaks_tflops": peaks_for(name),
        "precision": "fp32: eager (TF32 matmul off); fp16: InferenceGraph (SDPA, FP32 norms)",
        "compile_skipped": skip_compile, "rows": [],
    }  # fmt: skip

    def add(row: dict[str, Any]) -> None:
        report["rows"].append(row)
        print(json.dumps(row), flush=True)
        _write(out, "gpu_check", report, to_markdown(report))

    with tempfile.TemporaryDirectory() as tmp:
        for backbone, size in MODELS:
            model = f"{backbone}@{size}"
            path = save_bundle(
                build_ipad_clip(backbone, image_size=size), Path(tmp, "m.safetensors")
            )
            flops = ipad_flops(read_bundle_config(path))["total"]
            base: dict[int, float] = {}
            for precision in ("fp32", "fp16"):
                det = _quiet_detector(path, device="cuda", precision=precision)
                for batch in BATCHES:
                    row = _row(det, model, precision, batch, size, flops, reps)
                    base.setdefault(batch, row["backend_run_ms"])
                    add(row | {"speedup_vs_fp32": base[batch] / row["backend_run_ms"]})
                del det
                torch.cuda.empty_cache()
            if backbone not in compile_models:
                continue
            if skip_compile:
                add({"model": model, "precision": "fp16+compile", "batch": compile_batch,
                     "skipped": skip_compile})  # fmt: skip
                continue
            start = time.perf_counter()
            det = _quiet_detector(path, device="cuda", precision="fp16", batch_size=compile_batch,
                                  compile=True)  # fmt: skip
            det.backend.run(_random_input(det, compile_batch, size))  # compiles and captures
            compile_s = time.perf_counter() - start
            row = _row(det, model, "fp16+compile", compile_batch, size, flops, reps)
            add(row | {"speedup_vs_fp32": base[compile_batch] / row["backend_run_ms"],
                       "compile_s": compile_s})  # fmt: skip
            del det
            torch.cuda.empty_cache()
    print(to_markdown(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["parity", "stand-in", "throughput"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--compile-models", nargs="*", default=["IPAD-Small-ViT-16", "ViT-B-16"],
                        help="backbones that get an fp16+compile row (compiling ViT-L takes "
                        "minutes)")  # fmt: skip
    parser.add_argument("--compile-batch", type=int, default=16, choices=BATCHES)
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("gpu_check.py: needs a CUDA GPU (torch sees none)")
        return 2
    if args.step == "parity":
        return parity(args.out)
    if args.step == "stand-in":
        return stand_in(args.out)
    return throughput(args.out, args.reps, args.compile_models, args.compile_batch)


if __name__ == "__main__":
    raise SystemExit(main())
