"""End-to-end latency of one large photo (12 MP by default) through ``Detector.detect``: JPEG
decoding, preprocessing, inference, and the full-resolution heatmap and mask, for several models
side by side in one run (interleaved, medians; ratios to the first model).

    python benchmarks/photo_latency.py MODEL [MODEL ...] [--megapixels 12] [--repeats 7]
        [--threads 2] [--tiling off] [--name NAME] [--out benchmarks/results]

A model given as ``git:REV:PATH`` is read from the repository history (e.g. the previous embedded
model, ``git:81c4f2c:ipad_sdk/weights/ipad-default.onnx``), so today's model and an earlier one are
timed on the same machine in the same run. The photo is a procedural scene (``train/synth``)
upscaled to the requested size and saved as a quality-90 JPEG, so nothing outside the repository
is needed. Writes ``photo_latency_<name>.json`` and ``.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import platform
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ipad_sdk import Detector
from ipad_sdk.fileio import atomic_write_bytes


def make_photo(path: Path, megapixels: float, seed: int = 0) -> tuple[int, int]:
    """A procedural 4:3 scene of about ``megapixels`` saved as a JPEG; returns (width, height)."""
    from train.synth.scenes import procedural_scene

    height = int(round((megapixels * 1e6 * 3 / 4) ** 0.5))
    width = int(round(height * 4 / 3))
    scene = procedural_scene(480, 640, np.random.default_rng(seed))
    big = Image.fromarray(scene).resize((width, height), Image.Resampling.BICUBIC)
    noise = np.random.default_rng(seed + 1).normal(0, 4, (height, width, 1))
    pixels = np.clip(np.asarray(big, np.float32) + noise, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return width, height


def resolve_model(spec: str, work: Path) -> Path:
    """A model path, or ``git:REV:PATH`` extracted from the repository into ``work``."""
    if not spec.startswith("git:"):
        return Path(spec)
    _, rev, path = spec.split(":", 2)
    data = subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True).stdout
    out = work / f"{rev}-{Path(path).name}"
    out.write_bytes(data)
    return out


def _detector(path: Path, threads: int, tiling: str) -> Detector:
    """A CPU Detector with ``threads`` (ONNX Runtime's option; torch's global thread count)."""
    if path.suffix == ".onnx":
        return Detector(path, device="cpu", threads=threads, tiling=tiling)
    import torch

    torch.set_num_threads(threads)
    return Detector(path, device="cpu", tiling=tiling)


def time_models(
    models: dict[str, Path], photo: Path, repeats: int, threads: int, tiling: str
) -> dict[str, list[float]]:
    """Seconds per ``detect`` (mask and heatmap materialised) of every model, interleaved."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        detectors = {name: _detector(path, threads, tiling) for name, path in models.items()}
    times: dict[str, list[float]] = {name: [] for name in models}
    for round_ in range(repeats + 1):  # the first round warms up and is dropped
        for name, detector in detectors.items():
            tic = time.perf_counter()
            result = detector.detect(photo)
            _ = result.mask, result.heatmap
            if round_:
                times[name].append(time.perf_counter() - tic)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files or git:REV:PATH; first = baseline")
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tiling", default="off")
    parser.add_argument("--name", default="default")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ipad-latency-") as tmp:
        work = Path(tmp)
        photo = work / "photo.jpg"
        width, height = make_photo(photo, args.megapixels)
        models = {spec: resolve_model(spec, work) for spec in args.models}
        times = time_models(models, photo, args.repeats, args.threads, args.tiling)
    base = float(np.median(times[args.models[0]]))
    rows: list[dict[str, Any]] = [
        {"model": spec, "median_s": float(np.median(t)), "min_s": float(np.min(t)),
         "max_s": float(np.max(t)), "ratio_to_first": float(np.median(t)) / base}
        for spec, t in times.items()
    ]  # fmt: skip
    report = {
        "photo": {"width": width, "height": height, "megapixels": width * height / 1e6},
        "threads": args.threads, "tiling": args.tiling, "repeats": args.repeats,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "rows": rows,
    }  # fmt: skip
    lines = [
        f"# End-to-end latency of one {width}x{height} JPEG ({width * height / 1e6:.1f} MP)",
        "",
        f"`Detector.detect` on CPU, {args.threads} threads, tiling {args.tiling}: decode, "
        f"preprocess, inference, full-resolution heatmap and mask; median of {args.repeats} "
        "interleaved runs after a warm-up.",
        "",
        "| model | median s | min s | max s | ratio to first |",
        "|---|---|---|---|---|",
    ] + [
        f"| `{r['model']}` | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | "
        f"{r['ratio_to_first']:.2f} |"
        for r in rows
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"photo_latency_{args.name}"
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(report, indent=1).encode())
    atomic_write_bytes(stem.with_suffix(".md"), ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
