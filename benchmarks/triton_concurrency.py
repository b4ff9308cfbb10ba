"""Triton (PyTriton) requests/s and latency with 1, 2, 4, 8 concurrent clients, HTTP and gRPC,
against a local Detector in the same run.

    .venv-triton/bin/python benchmarks/triton_concurrency.py [FOLDER] [--model M] [--repeats 3]
        [--instances 2] [--threads 1] [--max-batch 8] [--out benchmarks/results]

Runs in the Triton venv (nvidia-pytriton, onnxruntime; docs/serving/triton.md). The server is
``python -m ipad_sdk.integrations.triton serve`` on loopback (a subprocess); each client thread has
its own tritonclient client and sends one encoded photo per request (online serving). A pass sends
every photo of FOLDER once, shared among the clients; requests/s = photos / wall time of the pass,
latency = round trip of one request. Median over ``--repeats`` passes after a warm-up pass. The
baselines are ``Detector.detect`` on the same bytes, one photo at a time in this process, before
the server starts (and ``detect_batch`` with batch 8): with ONNX Runtime's default threads (all
cores) and with the threads of one server instance. Clients and server share the machine's cores.
Writes ``triton_concurrency.json`` and ``.md``.
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
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ipad_sdk import Detector
from ipad_sdk.discover import discover
from ipad_sdk.fileio import atomic_write_bytes
from ipad_sdk.integrations.triton import connect, infer

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "ipad_sdk/weights/ipad-default.onnx"
CLIENTS = (1, 2, 4, 8)
BASELINES = {"instance": "ONNX Runtime threads of one server instance",
             "default": "ONNX Runtime's default threads (all cores)"}  # fmt: skip


def _timed(fn: Callable[[], object]) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def _stats(seconds: float, latencies: Sequence[float], count: int) -> dict[str, float]:
    ms = np.asarray(latencies) * 1e3
    p50, p95 = (float(np.percentile(ms, q)) for q in (50, 95))
    return {"seconds": seconds, "requests_per_s": count / seconds, "p50_ms": p50, "p95_ms": p95}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def local_baseline(model: Path, blobs: list[bytes], repeats: int, threads: int | None) -> dict:
    """Sequential ``detect`` (img/s, latency) and ``detect_batch(8)`` (img/s) in this process,
    with ``threads`` ONNX Runtime threads (None: its default, all cores)."""
    options = {} if threads is None else {"threads": threads}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        det = Detector(model, device="cpu", **options)
    det.detect_batch(blobs[:8])  # warm-up
    single, batched = [], []
    for _ in range(repeats):
        latencies = [_timed(lambda b=b: det.detect(b)) for b in blobs]
        single.append(_stats(sum(latencies), latencies, len(blobs)))
        batched.append(len(blobs) / _timed(lambda: det.detect_batch(blobs, batch_size=8)))
    return {"detect": _median(single), "detect_batch8_images_per_s": statistics.median(batched)}


def one_pass(url: str, protocol: str, blobs: list[bytes], clients: int) -> dict[str, float]:
    """Every photo once, ``clients`` threads each with its own client, one photo per request."""
    lock, latencies, errors = threading.Lock(), [], []
    todo = iter(range(len(blobs)))
    conns = [connect(url, protocol) for _ in range(clients)]

    def work(client, module) -> None:
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            tic = time.perf_counter()
            ((record, _mask),) = infer(client, module, [blobs[i]])
            took = time.perf_counter() - tic
            with lock:
                latencies.append(took)
                if "error" in record:
                    errors.append(record["error"])

    threads = [threading.Thread(target=work, args=conn) for conn in conns]
    tic = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - tic
    for client, _ in conns:
        client.close()
    if errors or len(latencies) != len(blobs):
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[:1]}")
    return _stats(seconds, latencies, len(blobs))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, str, str]:
    """The PyTriton server in its own process group; returns it with its HTTP and gRPC URLs."""
    http, grpc = _free_port(), _free_port()
    threads = ["--threads", str(args.threads)] if args.threads else []
    argv = [sys.executable, "-m", "ipad_sdk.integrations.triton", "serve", "--model",
            str(args.model), "--http-port", str(http), "--grpc-port", str(grpc),
            "--max-batch", str(args.max_batch), "--instances", str(args.instances),
            "--device", "cpu", *threads]  # fmt: skip
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(argv, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{http}/v2/models/ipad_detect/ready"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return proc, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}"
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(proc)
            raise RuntimeError(f"the server did not start; see {log}")
        time.sleep(0.3)


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def markdown(report: dict) -> str:
    rows = [
        f"| {r['protocol']} | {r['clients']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.0f} | "
        f"{r['p95_ms']:.0f} | {r['vs_local_instance']:.2f}x | {r['vs_local_default']:.2f}x |"
        for r in report["rows"]
    ]
    server = report["server"]
    threads = server["threads"] or "ORT default"
    load, local = report["load_average_1min"], report["local"]
    return "\n".join([
        "# Triton (PyTriton) serving: concurrent clients vs a local Detector",
        "",
        f"Machine: {report['cpus']} CPU cores, no GPU ({report['machine']}); clients and server "
        f"share the cores (1-min load average {load['start']:.1f} at the start, {load['end']:.1f} "
        "at the end; the machine is shared). Model: "
        f"`{report['model']}`; server: {server['instances']} instance(s), ONNX Runtime threads "
        f"{threads}, dynamic batching up to {server['max_batch']}. {report['images']} JPEG photos "
        f"of `{report['folder']}` (encoded bytes), one photo per request; median of "
        f"{report['repeats']} passes after a warm-up pass.",
        "",
        "Local baselines (same bytes, this process, before the server started):",
        "",
        *[f"- {label}: `detect` one at a time {b['detect']['requests_per_s']:.1f} img/s (p50 "
          f"{b['detect']['p50_ms']:.0f} ms, p95 {b['detect']['p95_ms']:.0f} ms); `detect_batch` "
          f"(batch 8) {b['detect_batch8_images_per_s']:.1f} img/s"
          for label, b in ((text, local[key]) for key, text in BASELINES.items())],
        "",
        "| protocol | clients | requests/s | p50 ms | p95 ms | vs local `detect`, instance threads "
        "| vs local `detect`, default threads |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ]) + "\n"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default="../shared/data/clean")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--instances", type=int, default=2, help="server model instances")
    parser.add_argument("--threads", type=int, default=1, help="ORT threads each (0: default)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    blobs = [f.read_bytes() for f in discover([args.folder])]
    load_before = os.getloadavg()[0]
    threads = args.threads or None
    local = {"default": local_baseline(args.model, blobs, args.repeats, None)}
    local["instance"] = (local_baseline(args.model, blobs, args.repeats, threads) if threads
                         else local["default"])  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory(prefix="ipad-bench-") as tmp:
        proc, http, grpc = start_server(args, Path(tmp, "server.log"))
        try:
            for protocol, url in (("http", http), ("grpc", grpc)):
                for clients in CLIENTS:
                    one_pass(url, protocol, blobs, clients)  # warm-up
                    runs = [one_pass(url, protocol, blobs, clients) for _ in range(args.repeats)]
                    row = {"protocol": protocol, "clients": clients} | _median(runs)
                    for key in ("instance", "default"):
                        base = local[key]["detect"]["requests_per_s"]
                        row[f"vs_local_{key}"] = row["requests_per_s"] / base
                    rows.append(row)
                    print(f"{protocol} x{clients}: {row['requests_per_s']:.1f} req/s", flush=True)
        finally:
            stop_server(proc)
    report = {
        "folder": str(args.folder), "model": os.path.relpath(args.model), "images": len(blobs),
        "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine(),
        "repeats": args.repeats, "local": local, "rows": rows,
        "load_average_1min": {"start": load_before, "end": os.getloadavg()[0]},
        "server": {"instances": args.instances, "threads": args.threads,
                   "max_batch": args.max_batch},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out / "triton_concurrency.json", json.dumps(report, indent=1).encode())
    text = markdown(report)
    atomic_write_bytes(args.out / "triton_concurrency.md", text.encode())
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
