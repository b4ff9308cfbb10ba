"""Inference throughput of one model on several backends, side by side in one run.

    python benchmarks/throughput.py MODEL.safetensors [--onnx DIR] [--batch 1 8] [--repeats 7]
        [--threads 2] [--device cpu] [--e2e FOLDER [--e2e-images N]] [--name NAME]
        [--out benchmarks/results]

The baseline is PyTorch eager FP32 on the same device (the bundle); every other row is an export of
the same bundle (``--onnx DIR`` holds ``<stem>.onnx``, ``.fp16.onnx``, ``.int8.onnx`` from
export/export_onnx.py, whichever exist) and is reported as a ratio to that baseline. Timing covers
``backend.run`` on a preprocessed batch (inference only, full-resolution probability maps
included). Backends are measured round-robin after a warm-up, so slow phases of a noisy machine
hit all of them alike; medians are reported, with p95 per-batch latency; peak memory at the
largest batch is measured per backend in a fresh process. Writes
``throughput_<name>.json`` and ``.md``.

``--e2e FOLDER`` adds the end-to-end figure for every backend at the largest batch: JPEG/PNG
decoding + preprocessing + inference + the full-resolution heatmap and mask of every result, over
the folder's photos, once through ``Detector.iter_detect`` (sequential) and once through
``Detector.stream`` (decoding in worker threads), next to the inference-only images/s.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from ipad_sdk.backends import open_backend
from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.model.flops import ipad_flops
from ipad_sdk.preprocess import preprocess_batch


def model_files(model: Path, onnx_dir: Path | None) -> dict[str, Path]:
    """label -> file: the bundle (the baseline) first, then whichever ONNX exports exist."""
    files = {"pytorch eager fp32": model}
    for suffix, label in ((".onnx", "onnxruntime fp32"), (".fp16.onnx", "onnxruntime fp16"),
                          (".int8.onnx", "onnxruntime int8")):  # fmt: skip
        path = onnx_dir / f"{model.stem}{suffix}" if onnx_dir is not None else None
        if path is not None and path.exists():
            files[label] = path
    return files


def _backends(files: dict[str, Path], device: str, threads: int) -> dict[str, Any]:
    """label -> opened backend for every model file (PyTorch eager FP32 for the bundle)."""
    import torch

    torch.set_num_threads(threads)
    return {
        label: open_backend(path, device, precision="fp32")
        if path.suffix == ".safetensors"
        else open_backend(path, device, threads=threads)
        for label, path in files.items()
    }


def measure(
    backends: dict[str, Any], batch_sizes: list[int], repeats: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Round-robin timing of ``backend.run`` for every batch size; one row per backend x batch."""
    rng = np.random.default_rng(seed)
    config = next(iter(backends.values())).config
    size = config.image_size
    rows = []
    for batch in batch_sizes:
        rgbs = list(rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
        inputs = {
            name: preprocess_batch(rgbs, config, b.input_format) for name, b in backends.items()
        }
        times: dict[str, list[float]] = {name: [] for name in backends}
        for name, backend in backends.items():  # warm-up
            backend.run(inputs[name])
        for _ in range(repeats):
            for name, backend in backends.items():
                tic = time.perf_counter()
                backend.run(inputs[name])
                times[name].append(time.perf_counter() - tic)
        base = float(np.median(times[next(iter(backends))]))
        for name, samples in times.items():
            median = float(np.median(samples))
            rows.append({
                "backend": name, "batch": batch, "images_per_s": batch / median,
                "latency_ms_p50": 1e3 * median,
                "latency_ms_p95": 1e3 * float(np.percentile(samples, 95)),
                "speedup_vs_baseline": base / median, "repeats": repeats,
            })  # fmt: skip
    return rows


def _status_kib(field: str) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        line = next(x for x in fh if x.startswith(field + ":"))
    return int(line.split()[1])


def _peak_rss_growth_mib(path: str, device: str, threads: int, batch: int) -> float:
    """In a fresh process: the resident-set peak while opening the model and running a warm-up
    and one batch, above the resident set just before (Linux: the peak is reset through
    ``/proc/self/clear_refs`` so that the imports' own peak does not count)."""
    import torch

    from ipad_sdk.backends import open_backend

    torch.set_num_threads(threads)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
        fh.write("5")  # reset VmHWM to the current VmRSS
    before = _status_kib("VmRSS")
    options = {"precision": "fp32"} if path.endswith(".safetensors") else {"threads": threads}
    backend = open_backend(path, device, **options)
    size = backend.config.image_size
    rgbs = list(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), np.uint8))
    inputs = preprocess_batch(rgbs, backend.config, backend.input_format)
    for _ in range(2):
        backend.run(inputs)
    return (_status_kib("VmHWM") - before) / 1024


def measure_memory(
    files: dict[str, Path], batch: int, device: str, threads: int
) -> dict[str, float]:
    """label -> peak RSS growth (MiB) of opening the model and running ``batch`` images, each
    backend in its own fresh process (one process cannot separate them)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("spawn")
    out = {}
    for label, path in files.items():
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            out[label] = pool.submit(_peak_rss_growth_mib, str(path), device, threads,
                                     batch).result()  # fmt: skip
    return out


def measure_e2e(
    model_paths: dict[str, Path], photos: list[Path], batch: int, device: str, threads: int
) -> list[dict[str, Any]]:
    """End-to-end images/s over ``photos`` per model file: sequential and threaded decoding."""
    import warnings

    from ipad_sdk import Detector

    rows = []
    for name, path in model_paths.items():
        onnx = path.suffix == ".onnx"
        options = {"threads": threads} if onnx else {"precision": "fp32"}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            det = Detector(path, device, batch_size=batch, **options)
        runs = {
            "iter_detect": lambda det=det: det.iter_detect(photos),
            "stream (2 decode threads)": lambda det=det: det.stream(photos, workers=2),
        }
        for mode, run in runs.items():
            for result in run():  # warm-up pass (file cache, allocator)
                assert result.mask.shape == result.image_size
            tic = time.perf_counter()
            count = sum(result.mask.shape == result.image_size for result in run())
            seconds = time.perf_counter() - tic
            rows.append({"backend": name, "mode": mode, "batch": batch, "images": count,
                         "images_per_s": count / seconds})  # fmt: skip
    return rows


def to_markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Throughput: {report['model']} ({report['backbone']} @ {report['image_size']})",
        "",
        f"Device {report['device']} ({report['machine']}), {report['threads']} threads, "
        f"{report['gflops_per_image']:.1f} GFLOP/image (analytic), median of {report['repeats']} "
        "round-robin repeats after a warm-up. Inference only (`backend.run` on a preprocessed "
        "batch). Ratio = images/s over PyTorch eager FP32 at the same batch, same run.",
        "",
        "| backend | batch | images/s | p50 ms/batch | p95 ms/batch | vs eager FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        lines.append(f"| {r['backend']} | {r['batch']} | {r['images_per_s']:.1f} | "
                     f"{r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} | "
                     f"{r['speedup_vs_baseline']:.2f}x |")  # fmt: skip
    if report.get("peak_rss_mib"):
        lines += ["", f"Peak memory at batch {report['memory_batch']}: the resident set's peak "
                  "while opening the model and running a warm-up and one batch, above the resident "
                  "set just before, each backend in its own fresh process (Linux `VmHWM`, reset "
                  "through `/proc/self/clear_refs`).", "",
                  "| backend | peak RSS growth MiB |", "|---|---|"]  # fmt: skip
        lines += [f"| {k} | {v:.0f} |" for k, v in report["peak_rss_mib"].items()]
    if report.get("e2e"):
        inference = {(r["backend"], r["batch"]): r["images_per_s"] for r in report["rows"]}
        lines += [
            "",
            f"End to end over {report['e2e_folder']} ({report['e2e'][0]['images']} photos): "
            "decode + preprocess + inference + full-resolution heatmap and mask per image.",
            "",
            "| backend | mode | batch | end-to-end images/s | inference-only images/s | overhead |",
            "|---|---|---|---|---|---|",
        ]
        for r in report["e2e"]:
            only = inference[(r["backend"], r["batch"])]
            overhead = only / r["images_per_s"] - 1
            lines.append(f"| {r['backend']} | {r['mode']} | {r['batch']} | "
                         f"{r['images_per_s']:.1f} | {only:.1f} | {overhead:+.0%} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model bundle (.safetensors): the baseline")
    parser.add_argument("--onnx", type=Path, help="folder with its ONNX exports")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--e2e", type=Path, help="folder of photos for the end-to-end figure")
    parser.add_argument("--e2e-images", type=int, default=64)
    parser.add_argument("--name", help="report name (default: the model's stem)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    files = model_files(args.model, args.onnx)
    backends = _backends(files, args.device, args.threads)
    config = next(iter(backends.values())).config
    rows = measure(backends, args.batch, args.repeats)
    memory = measure_memory(files, max(args.batch), args.device, args.threads)
    e2e = []
    if args.e2e is not None:
        from ipad_sdk.discover import discover

        photos = discover([args.e2e])[: args.e2e_images]
        e2e = measure_e2e(files, photos, max(args.batch), args.device, args.threads)
    report = {
        "model": args.model.name, "backbone": config.backbone, "image_size": config.image_size,
        "device": args.device, "machine": f"{platform.machine()}, {platform.processor() or '?'}",
        "threads": args.threads, "repeats": args.repeats,
        "gflops_per_image": ipad_flops(config)["total"] / 1e9, "rows": rows,
        "e2e": e2e, "e2e_folder": str(args.e2e) if args.e2e else None,
        "memory_batch": max(args.batch), "peak_rss_mib": memory,
    }  # fmt: skip
    name = args.name or args.model.stem
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"throughput_{name}.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(args.out / f"throughput_{name}.md", to_markdown(report).encode())
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
