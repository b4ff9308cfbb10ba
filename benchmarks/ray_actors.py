"""Ray Data throughput with 1 vs 2 detector actors on a local cluster, same run.

    python benchmarks/ray_actors.py [FOLDER] [--model M] [--times 4] [--repeats 3]
        [--out benchmarks/results]

Every actor runs one thread (``OMP_NUM_THREADS=1`` through the runtime environment), so on this
2-core machine the second actor can only use the core the first one leaves idle. Wall time of
``detect_files`` (read, decode, detect, collect) over the folder's photos, median of the repeats
after a warm-up; ``--times N`` feeds the photos N times, so that the fixed cost of starting the
actors and loading the model (a few seconds) does not hide the scaling. Writes ``ray_actors.json``
and ``.md``.
"""

from __future__ import annotations

if __package__ in (None, ""):  # run as a script: make the repo importable
    import sys
    from pathlib import Path as _Path

    sys.path.insert(0, str(_Path(__file__).resolve().parents[1]))

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import ray

from ipad_sdk.discover import discover
from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.integrations.ray import detect_files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/data/clean")
    parser.add_argument("--model", help="model file (default: the embedded default model)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--times", type=int, default=4, help="feed the photos this many times")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    files = discover([args.folder]) * args.times
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})  # fmt: skip
    rows = []
    try:
        for actors in (1, 2):
            detect_files(files, args.model, actors=actors, device="cpu")  # warm-up
            times = []
            for _ in range(args.repeats):
                tic = time.perf_counter()
                results = detect_files(files, args.model, actors=actors, device="cpu")
                times.append(time.perf_counter() - tic)
            seconds = statistics.median(times)
            rows.append({"actors": actors, "images": len(results), "seconds": seconds,
                         "images_per_s": len(results) / seconds})  # fmt: skip
    finally:
        ray.shutdown()
    for row in rows:
        row["speedup_vs_1"] = rows[0]["seconds"] / row["seconds"]
    report = {"folder": str(args.folder), "model": args.model or "embedded default",
              "cpus": os.cpu_count(), "repeats": args.repeats, "rows": rows}  # fmt: skip
    lines = [
        "# Ray Data: 1 vs 2 detector actors (local cluster, 2 CPUs, one thread per actor)",
        "",
        f"{rows[0]['images']} images ({args.times} x the photos of `{args.folder}`), model: "
        f"{report['model']}, median of "
        f"{args.repeats} runs after a warm-up (read + decode + detect + collect).",
        "",
        "| actors | seconds | images/s | vs 1 actor |",
        "|---|---|---|---|",
        *[f"| {r['actors']} | {r['seconds']:.1f} | {r['images_per_s']:.1f} | "
          f"{r['speedup_vs_1']:.2f}x |" for r in rows],
    ]  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "ray_actors.json", json.dumps(report, indent=1).encode())
    atomic_write_bytes(args.out / "ray_actors.md", ("\n".join(lines) + "\n").encode())
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
