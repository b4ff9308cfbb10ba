"""The ``ipad serve`` (PyTriton), ``ipad query`` (a Triton client) and ``ipad ray`` (Ray Data)
subcommands: their options and runs, the one definition that ``ipad`` and the modules'
``python -m`` entry points both use.

Only the standard library is imported here; Ray and PyTriton are imported when a command runs.
The library interfaces are :mod:`ipad_sdk.integrations.triton` and :mod:`ipad_sdk.integrations.ray`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import BackendUnavailable, IpadError


class OptionError(IpadError, ValueError):
    """An option value the command cannot run with (``ipad`` exits 2 with the message)."""


SERVE_DESCRIPTION = (
    "Serve a model with PyTriton (a Triton Inference Server started from Python) until Ctrl-C or "
    "SIGTERM. Clients send encoded images to the model NAME (input 'image', outputs 'result' and "
    "'mask_png'; see ipad_sdk.integrations.triton). Needs nvidia-pytriton in this environment."
)
QUERY_DESCRIPTION = (
    "Detect on files through a running Triton server (ipad serve, or a repository from ipad "
    "export triton-repo) and write results.jsonl (and masks/) into --out like ipad detect; "
    "records go to stdout without --out. Needs tritonclient (it comes with nvidia-pytriton)."
)
RAY_DESCRIPTION = (
    "Run detection over files and folders on a Ray cluster (Ray Data, one Detector per actor) and "
    "write results.jsonl or results.parquet (and masks/) into --out, like ipad detect. Needs the "
    "'ray' extra."
)


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad serve``."""
    from .triton import DETECT_MODEL

    parser.add_argument("--model", "-m", help="model file (default: the embedded default model)")
    parser.add_argument("--host", default="127.0.0.1", help="address the server listens on")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP (KServe v2) port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port")
    parser.add_argument("--max-batch", type=int, default=8,
                        help="largest batch Triton's dynamic batcher forms")  # fmt: skip
    parser.add_argument("--instances", type=int, default=1, help="model instances (Detectors)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads per instance")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--name", default=DETECT_MODEL, help="model name clients ask for")
    parser.add_argument("--tiling", default="off", help="the Detector's tiling (off, auto, spec)")


def run_serve(args: argparse.Namespace) -> int:
    """Serve as ``args`` (of :func:`add_serve_arguments`) say, until interrupted."""
    if args.max_batch < 1 or args.instances < 1:
        raise OptionError("--max-batch and --instances must be >= 1")
    _require_pytriton()
    from .triton import serve

    serve(args.model, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
          max_batch=args.max_batch, instances=args.instances, threads=args.threads,
          device=args.device, name=args.name, tiling=args.tiling)  # fmt: skip
    return 0


def _require_pytriton() -> None:
    if importlib.util.find_spec("pytriton") is None:
        raise BackendUnavailable(
            "ipad serve needs PyTriton: pip install nvidia-pytriton==0.7.0 (it pins numpy<2: use "
            "its own environment, see the README's 'Scaling out: Triton Inference Server')"
        )


def add_query_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad query``."""
    from .triton import DETECT_MODEL

    parser.add_argument(
        "paths", nargs="+", help="image files and/or folders (searched recursively)"
    )
    parser.add_argument("--url", default="127.0.0.1:8000", help="host:port (HTTP or gRPC port)")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    parser.add_argument("--model", "-m", default=DETECT_MODEL, help="model name on the server")
    parser.add_argument("--batch-size", type=int, default=8, help="images per request")
    parser.add_argument("--out", "-o", type=Path, help="write results.jsonl (and masks/) here")
    parser.add_argument("--save-masks", action="store_true", help="write masks/<name>.png (0/255)")


def run_query(args: argparse.Namespace) -> int:
    """Query as ``args`` (of :func:`add_query_arguments`) say: 0 all ok, 1 some inputs failed."""
    if args.batch_size < 1:
        raise OptionError("--batch-size must be >= 1")
    from ..discover import discover
    from .triton import query, write_query_outputs

    files = discover(args.paths, exclude=args.out)
    answers = query(files, args.url, args.protocol, args.model, args.batch_size)
    write_query_outputs(answers, files, args.out, args.save_masks)
    return 1 if any("error" in record for record, _ in answers) else 0


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad ray``."""
    parser.add_argument(
        "paths", nargs="+", help="image files and/or folders (searched recursively)"
    )
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--model", "-m", help="model file (default: the embedded default model)")
    parser.add_argument(
        "--address", default="local", help="'local' (a local cluster), 'auto' or a Ray address"
    )
    parser.add_argument("--actors", type=int, default=2, help="Detector actors")
    parser.add_argument("--batch-size", type=int, default=8, help="images per actor call")
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl",
                        help="results file format")  # fmt: skip
    parser.add_argument("--save-masks", action="store_true", help="write masks/<name>.png (0/255)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--tiling", default="off", help="the Detector's tiling (off, auto, spec)")


def run_ray(args: argparse.Namespace) -> int:
    """Detect as ``args`` (of :func:`add_ray_arguments`) say: 0 all ok, 1 some inputs failed."""
    if args.actors < 1 or args.batch_size < 1:
        raise OptionError("--actors and --batch-size must be >= 1")
    from .ray import run

    return run(args)


def module_main(
    description: str,
    commands: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None],
                              Callable[[argparse.Namespace], int]]],
    argv: list[str] | None = None,
) -> int:  # fmt: skip
    """A ``python -m`` entry point over ``commands`` (name -> help, add-arguments, run; the name
    ``""`` alone: no subcommand), with ``ipad``'s options and exit codes (2: error, message)."""
    parser = argparse.ArgumentParser(description=description)
    if set(commands) == {""}:
        _, add, run = commands[""]
        add(parser)
        parser.set_defaults(run=run)
    else:
        sub = parser.add_subparsers(dest="command", required=True)
        for name, (summary, add, run) in commands.items():
            tool = sub.add_parser(name, help=summary)
            add(tool)
            tool.set_defaults(run=run)
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except IpadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return code


#: ``ipad``'s subcommands defined here: (name, help, description, add-arguments, run)
SUBCOMMANDS: tuple[tuple[str, str, str, Callable[[argparse.ArgumentParser], None],
                         Callable[[argparse.Namespace], int]], ...] = (
    ("serve", "serve a model over HTTP/gRPC with PyTriton (Triton Inference Server)",
     SERVE_DESCRIPTION, add_serve_arguments, run_serve),
    ("query", "detect artifacts in images and folders through a running Triton server",
     QUERY_DESCRIPTION, add_query_arguments, run_query),
    ("ray", "detect artifacts in images and folders on a Ray cluster", RAY_DESCRIPTION,
     add_ray_arguments, run_ray),
)  # fmt: skip
