"""``ipad detect`` on many mixed-size photos: peak memory vs the number of photos, and throughput,
of this checkout's runner (every file through ``Detector.stream``: one decode thread ahead of the
model by default, one full-resolution image at a time) against the runner before issue 19 (files
decoded by the CLI itself, ``batch_size`` full-resolution images held at once), in the same run, on
the same photos and model.

    python benchmarks/cli_memory.py [--photos 2000] [--counts 100,500,1000,2000] [--old-ref REF]
        [--model M] [--batch-size 8] [--name NAME]

Photos are generated once into ``data/cli_memory/`` (ignored by git): JPEGs of camera-like
sizes from 0.3 to 12 MP (4000x3000), smooth gradients with texture and noise, so decoding costs
what a photo's does. ``REF`` (default: the last commit before the change) is extracted with
``git archive`` and run as the old package. Each run is ``python -m ipad_sdk.cli detect PHOTOS
--out DIR --device cpu -q`` in a fresh process; its peak resident memory is the kernel's
``ru_maxrss`` of that process (``os.wait4``), its throughput photos per second of wall time
(model loading included). Old and new alternate, the order flipped per count, so that load from
other processes on a shared machine falls on both. Writes ``cli_memory[_NAME].json`` and ``.md``
to ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PHOTO_DIR = ROOT / "data" / "cli_memory"
RESULTS = ROOT / "benchmarks" / "results"
#: The runner before issue 19 (the CLI decoded files itself, then ``detect_batch`` on arrays).
OLD_REF = "7c28054"
#: Camera-like sizes (width, height), 0.3 to 12 MP, drawn in turn.
SIZES = [(640, 480), (1024, 768), (1600, 1200), (2048, 1536), (1920, 1080), (3264, 2448),
         (3000, 4000), (4000, 3000), (2448, 3264), (1280, 960)]  # fmt: skip


def make_photos(count: int, folder: Path = PHOTO_DIR, seed: int = 0) -> list[Path]:
    """``count`` JPEG photos in ``folder`` (made once; existing ones are kept), sizes in turn
    from :data:`SIZES`, shuffled so that any prefix mixes them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(count)
    paths = []
    for i in range(count):
        path = folder / f"photo_{i:05d}.jpg"
        paths.append(path)
        if path.exists():
            continue
        width, height = SIZES[int(order[i]) % len(SIZES)]
        _photo(width, height, np.random.default_rng(seed + 1 + i)).save(path, quality=90)
    return paths


def _photo(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A smooth colour field with mid-frequency texture and sensor-like noise."""
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC))
    texture = rng.integers(0, 256, (max(1, height // 16), max(1, width // 16)), dtype=np.uint8)
    detail = np.asarray(Image.fromarray(texture).resize((width, height), Image.Resampling.BILINEAR))
    noise = rng.normal(0.0, 6.0, (height, width, 1)).astype(np.float32)
    pixels = base * 0.7 + detail[..., None] * 0.3 + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def extract(ref: str, dest: Path) -> Path:
    """The ``ipad_sdk`` package of commit ``ref``, extracted under ``dest`` (a PYTHONPATH root)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "ipad_sdk"], check=True,
                             capture_output=True).stdout  # fmt: skip
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _vm_rss_mib(pid: int) -> float | None:
    """The process's resident memory now (``VmRSS``), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _sample_rss(pid: int, start: float, samples: list[tuple[float, float]], stop: threading.Event,
                every_s: float = 0.25) -> None:  # fmt: skip
    """Append ``(seconds since start, RSS MiB)`` of ``pid`` every ``every_s`` until ``stop``."""
    while not stop.wait(every_s):
        rss = _vm_rss_mib(pid)
        if rss is not None:
            samples.append((time.perf_counter() - start, rss))


def rss_by_progress(samples: list[tuple[float, float]], wall: float, parts: int = 4) -> list[float]:
    """The largest sampled RSS in each of ``parts`` equal slices of the run's wall time (a flat
    profile: memory does not grow with the images done; model loading falls in the first)."""
    peaks = [0.0] * parts
    for t, rss in samples:
        k = min(parts - 1, int(parts * t / wall))
        peaks[k] = max(peaks[k], rss)
    return [round(p, 1) for p in peaks]


def run_detect(code: Path, files: list[Path], model: str, batch: int, out: Path) -> dict:
    """One ``ipad detect`` process with ``code`` first on its path: wall seconds, peak RSS (the
    kernel's ``ru_maxrss``) and its resident memory sampled every 0.25 s."""
    argv = [sys.executable, "-c", "import sys; from ipad_sdk.cli import main; sys.exit(main())",
            "detect", *map(str, files), "--out", str(out), "--model", model, "--device", "cpu",
            "--batch-size", str(batch), "-q"]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(code)}
    log = out.with_suffix(".log")
    with open(log, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=code, stdout=subprocess.DEVNULL, stderr=err)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_sample_rss, args=(proc.pid, start, samples, stop))
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stop.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"ipad detect ({code}) exited {proc.returncode}: {tail}")
    records = (out / "results.jsonl").read_text().splitlines()
    if len(records) != len(files):
        raise RuntimeError(f"{out}: {len(records)} records for {len(files)} photos")
    return {"wall_s": wall, "peak_rss_mib": usage.ru_maxrss / 1024, "photos_per_s":
            len(files) / wall, "records": [json.loads(r) for r in records],
            "rss_quarters_mib": rss_by_progress(samples, wall),
            "rss_samples": [(round(t, 2), round(r, 1)) for t, r in samples]}  # fmt: skip


def same_records(old: list[dict], new: list[dict]) -> bool:
    """Whether the two runs' records agree on everything but timings and provenance."""
    skip = {"timings_ms", "sdk_version"}
    return [{k: v for k, v in r.items() if k not in skip} for r in old] == [
        {k: v for k, v in r.items() if k not in skip} for r in new
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000, help="photos generated")
    parser.add_argument("--counts", default="100,500,1000,2000",
                        help="comma-separated numbers of photos per run (prefixes)")  # fmt: skip
    parser.add_argument("--old-ref", default=OLD_REF, help="git commit of the old runner")
    parser.add_argument("--model", default=str(ROOT / "ipad_sdk/weights/ipad-default.safetensors"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--name", default="", help="suffix of the result files")
    parser.add_argument("--note", default="", help="a remark on the run, kept in the results")
    args = parser.parse_args(argv)
    counts = sorted({int(c) for c in args.counts.split(",")})
    if counts[-1] > args.photos or counts[0] < 1:
        parser.error(f"--counts must lie in 1..--photos ({args.photos})")
    start = time.perf_counter()
    files = make_photos(args.photos)
    made_s = time.perf_counter() - start
    megapixels = []
    for path in files[: counts[-1]]:
        with Image.open(path) as img:
            megapixels.append(img.width * img.height / 1e6)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ipad-cli-memory-") as tmp:
        old_code = extract(args.old_ref, Path(tmp, "old"))
        for i, n in enumerate(counts):
            runs = {}
            for which in ("old", "new") if i % 2 == 0 else ("new", "old"):
                code = old_code if which == "old" else ROOT
                out = Path(tmp, f"{which}-{n}")
                runs[which] = run_detect(code, files[:n], args.model, args.batch_size, out)
                print(f"{n} photos, {which}: {runs[which]['wall_s']:.1f} s, "
                      f"peak RSS {runs[which]['peak_rss_mib']:.0f} MiB", flush=True)  # fmt: skip
            old, new = runs["old"], runs["new"]
            rows.append({
                "photos": n,
                "megapixels": round(sum(megapixels[:n]), 1),
                "old": {k: round(old[k], 3) for k in ("wall_s", "peak_rss_mib", "photos_per_s")},
                "new": {k: round(new[k], 3) for k in ("wall_s", "peak_rss_mib", "photos_per_s")},
                "rss_ratio_new_over_old": round(new["peak_rss_mib"] / old["peak_rss_mib"], 3),
                "throughput_ratio_new_over_old": round(new["photos_per_s"] / old["photos_per_s"],
                                                       3),
                "same_records": same_records(old["records"], new["records"]),
                "rss_quarters_mib": {k: runs[k]["rss_quarters_mib"] for k in ("old", "new")},
            })  # fmt: skip
            samples = {k: runs[k]["rss_samples"] for k in ("old", "new")}
    report = {
        "photos_generated": args.photos,
        "photos_requested_by_issue": 2000,
        "counts": counts,
        "sizes": [f"{w}x{h}" for w, h in SIZES],
        "megapixels_total": round(sum(megapixels), 1),
        "largest_megapixels": round(max(megapixels), 1),
        "old_ref": args.old_ref,
        "model": os.path.relpath(args.model, ROOT),
        "batch_size": args.batch_size,
        "device": "cpu",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        },  # fmt: skip
        "photo_generation_s": round(made_s, 1),
        "rows": rows,
        "note": args.note,
    }
    suffix = f"_{args.name}" if args.name else ""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"cli_memory{suffix}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"cli_memory{suffix}.md").write_text(markdown(report, f"cli_memory{suffix}.png"))
    plot(samples, rows[-1], RESULTS / f"cli_memory{suffix}.png")
    print(markdown(report))
    return 0


def plot(samples: dict[str, list[tuple[float, float]]], row: dict, path: Path) -> None:
    """Resident memory over the largest run, old and new runner, against the share of its photos
    done (wall time as a fraction of the run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for which, colour in (("old", "tab:grey"), ("new", "tab:blue")):
        points = samples[which]
        wall = row[which]["wall_s"]
        label = f"{which} runner (peak {row[which]['peak_rss_mib']:.0f} MiB)"
        xs = [row["photos"] * t / wall for t, _ in points]
        ax.plot(xs, [r for _, r in points], colour, lw=1, label=label)
    ax.set_xlabel("photos done (wall-time share of the run)")
    ax.set_ylabel("resident memory (MiB)")
    ax.set_title(f"ipad detect on {row['photos']} photos up to 12 MP, CPU")
    ax.set_ylim(bottom=0)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, figure: str | None = None) -> str:
    rows = report["rows"]
    lines = [
        "# `ipad detect` memory and throughput: one pipeline (new) vs the old runner",
        "",
        f"{report['photos_generated']} generated JPEG photos (the issue asks 2,000; "
        f"{report['photos_generated']} here: 2 CPU cores shared with other jobs), "
        f"{report['megapixels_total']} MP in the largest run, sizes "
        f"{', '.join(report['sizes'])} (up to {report['largest_megapixels']} MP). Model "
        f"`{report['model']}` on the CPU, batch {report['batch_size']}; old runner: commit "
        f"`{report['old_ref']}`; new runner: `Detector.stream`, one decode thread (the default "
        "`--workers 1`). One `ipad detect` process per run; peak RSS is the process's "
        "`ru_maxrss`, throughput is photos per second of wall time (model loading included). "
        f"Machine: {report['machine']['cpus']} CPUs, load average "
        f"{report['machine']['load_avg_at_end'][0]} at the end (shared: compare the ratios).",
        "",
        "| photos | MP | old peak RSS | new peak RSS | new/old RSS | old photos/s | new photos/s "
        "| new/old throughput | same records |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['photos']} | {r['megapixels']} | {r['old']['peak_rss_mib']:.0f} MiB | "
            f"{r['new']['peak_rss_mib']:.0f} MiB | {r['rss_ratio_new_over_old']:.2f} | "
            f"{r['old']['photos_per_s']:.2f} | {r['new']['photos_per_s']:.2f} | "
            f"{r['throughput_ratio_new_over_old']:.2f} | {'yes' if r['same_records'] else 'NO'} |"
        )
    lines.append("")
    first, last = rows[0], rows[-1]
    if len(rows) > 1:
        growth = {k: last[k]["peak_rss_mib"] - first[k]["peak_rss_mib"] for k in ("old", "new")}
        lines += [f"Peak RSS from {first['photos']} to {last['photos']} photos: old "
                  f"{growth['old']:+.0f} MiB, new {growth['new']:+.0f} MiB.", ""]  # fmt: skip
    lines += ["Resident memory by quarter of each run's wall time (largest sample per quarter, "
              "MiB; flat: the memory does not grow with the photos done):", "",
              "| photos | old | new |", "|---|---|---|"]  # fmt: skip
    for r in rows:
        quarters = r.get("rss_quarters_mib")
        if quarters:
            lines.append(f"| {r['photos']} | {' / '.join(f'{q:.0f}' for q in quarters['old'])} | "
                         f"{' / '.join(f'{q:.0f}' for q in quarters['new'])} |")  # fmt: skip
    lines.append("")
    if figure:
        lines += [f"![resident memory over the largest run]({figure})", ""]
    if report.get("note"):
        lines += [f"Note: {report['note']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
