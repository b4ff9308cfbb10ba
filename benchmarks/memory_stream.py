"""Memory of the stream API over many images of mixed sizes: does resident memory stay flat?

    python benchmarks/memory_stream.py [--model M] [--images 10000] [--batch 8] [--name NAME]

Feeds ``Detector.iter_detect`` a generator of random images (sizes 16 px to 3000 px per side,
uint8, grayscale and RGB, arrays and encoded PNG/JPEG bytes), consumes each result (heatmap and
mask computed, then dropped) and samples the process's resident set size (``/proc/self/statm``)
every 250 images. Writes ``memory_stream_<name>.json`` and ``.md`` (RSS after the first 1,000
images vs at the end, and the peak). Without ``--model`` an untrained tiny bundle is used (the
memory behaviour does not depend on the weights).
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import io
import json
import os
import resource
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from ipad_sdk import Detector
from ipad_sdk.fileio import atomic_write_bytes


def rss_mib() -> float:
    """Current resident set size of this process in MiB (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def mixed_images(n: int, seed: int = 0) -> Iterator[Any]:
    """``n`` random inputs of mixed sizes and kinds (arrays, grayscale, PNG and JPEG bytes)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = (int(v) for v in np.exp(rng.uniform(np.log(16), np.log(3000), 2)))
        kind = i % 4
        if kind == 1:
            yield rng.integers(0, 256, (h, w), dtype=np.uint8)
            continue
        rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if kind in (0, 3):
            yield rgb
            continue
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, format="PNG" if kind == 2 else "JPEG")
        yield buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: an untrained tiny bundle)")
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--name", default="tiny")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # untrained-model warning
        model = args.model
        if model is None:
            from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

            model = save_bundle(build_ipad_clip(TINY_BACKBONE), Path(tmp) / "tiny.safetensors")
        det = Detector(model, device="cpu", batch_size=args.batch)
        samples: list[tuple[int, float]] = [(0, rss_mib())]
        tic = time.perf_counter()
        results = det.iter_detect(mixed_images(args.images))
        for i, res in enumerate(tqdm(results, total=args.images, unit="img"), start=1):
            assert res.mask.shape == res.heatmap.shape == res.image_size
            if i % 250 == 0:
                samples.append((i, rss_mib()))
        seconds = time.perf_counter() - tic
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    after_1k = next(m for i, m in samples if i >= min(1000, samples[-1][0]))
    report = {
        "model": str(args.model or "untrained IPAD-Tiny-ViT-16"), "images": args.images,
        "batch": args.batch, "seconds": seconds, "rss_mib_start": samples[0][1],
        "rss_mib_after_1000": after_1k, "rss_mib_end": samples[-1][1], "peak_rss_mib": peak,
        "growth_after_1000_mib": samples[-1][1] - after_1k, "samples": samples,
    }  # fmt: skip
    md = (
        f"# Stream memory: {report['model']}\n\n"
        f"{args.images:,} images (16-3000 px per side; arrays, grayscale, PNG and JPEG bytes) "
        f"through `Detector.iter_detect` (batch {args.batch}, CPU) in {seconds:.0f} s. Resident "
        "memory sampled every 250 images.\n\n"
        "| RSS at start | after 1,000 images | at the end | growth after 1,000 | peak RSS |\n"
        "|---|---|---|---|---|\n"
        f"| {samples[0][1]:.0f} MiB | {after_1k:.0f} MiB | {samples[-1][1]:.0f} MiB | "
        f"{report['growth_after_1000_mib']:+.1f} MiB | {peak:.0f} MiB |\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / f"memory_stream_{args.name}.json",
                       json.dumps(report, indent=1).encode())  # fmt: skip
    atomic_write_bytes(args.out / f"memory_stream_{args.name}.md", md.encode())
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
