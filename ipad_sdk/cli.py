"""The ``ipad`` command line.

Exit codes: 0 every input succeeded; 1 some inputs failed (each is recorded with its error);
2 usage, model or output error (bad arguments, missing/corrupt model, missing runtime, an output
that cannot be written); 130 interrupted (Ctrl-C stops the command, which cleans up; a second Ctrl-C
exits at once, quietly, with the same code: outputs are written atomically, so nothing is torn).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._version import __version__
from .errors import BackendUnavailable, IpadError, ModelError

if TYPE_CHECKING:
    from tqdm import tqdm

    from .detector import Detector

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(IpadError):
    """Arguments that cannot work together."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipad",
        description="Image Perceptual Artifact Detection: clean / ghosting / lens flare / moire.",
    )
    parser.add_argument("--version", action="version", version=f"ipad-sdk {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    det = sub.add_parser("detect", help="detect artifacts in images and folders")
    det.add_argument(
        "paths", nargs="+", help="image/video files and/or folders (searched recursively)"
    )
    det.add_argument("--model", "-m", help="model file (default: the embedded default model)")
    det.add_argument(
        "--out", "-o", type=Path,
        help="output folder (default: records to stdout); never searched for inputs",
    )  # fmt: skip
    det.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    det.add_argument("--save-masks", action="store_true", help="write masks/<name>.png (0/255)")
    det.add_argument(
        "--save-overlays", action="store_true",
        help="write overlays/<name>.png (mask tinted, regions boxed and labelled)",
    )  # fmt: skip
    det.add_argument(
        "--save-heatmaps", action="store_true",
        help="write heatmaps/<name>.png: photo | colour-mapped artifact heatmap | mask",
    )  # fmt: skip
    det.add_argument("--image-threshold", type=float, help="threshold on 1 - P(clean)")
    det.add_argument("--pixel-threshold", type=float, help="threshold of the mask")
    det.add_argument(
        "--class-threshold", action="append", default=[], metavar="CLASS=T",
        type=_class_threshold,
        help="an artifact class's own threshold on its probability (repeatable)",
    )  # fmt: skip
    det.add_argument("--batch-size", type=int, default=8)
    det.add_argument(
        "--frame-stride", type=int, default=1, metavar="N",
        help="videos: one record per N-th frame (needs the 'video' extra)",
    )  # fmt: skip
    det.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    det.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="threads decoding ahead of the model, each holding one full-resolution image "
        "(default 1)",
    )  # fmt: skip
    det.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    det.add_argument(
        "--tiling", default="off",
        help="off (default), auto, or key=value pairs such as scale=0.5,overlap=0.25: "
        "native-resolution tiles for the mask of large photos",
    )  # fmt: skip
    det.add_argument(
        "--resume", action="store_true",
        help="continue an interrupted run into the same --out (finished files are skipped)",
    )  # fmt: skip

    cal = sub.add_parser(
        "calibrate",
        help="set a model's thresholds in place from folders of clean (and artifact) photos",
    )
    cal.add_argument("model", help="model file (.safetensors, .onnx, .plan/.engine): rewritten")
    cal.add_argument("--clean", type=Path, required=True, help="folder of clean photos")
    cal.add_argument("--artifacts", type=Path, help="folder of photos with artifacts (reported)")
    cal.add_argument("--fpr", type=float, default=0.01,
                     help="share of clean photos that may be flagged, in (0, 1)")  # fmt: skip
    cal.add_argument("--pixel-fpr", type=float,
                     help="share of clean pixels that may enter the mask, in (0, 1) "
                     "(default: keep the model's pixel threshold)")  # fmt: skip
    cal.add_argument("--plot", type=Path, help="plot file (default: MODEL-STEM.calibration.png)")
    cal.add_argument("--batch-size", type=int, default=8)
    cal.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")

    info = sub.add_parser("info", help="print a model file's configuration")
    info.add_argument("model")

    create = sub.add_parser(
        "create-bundle",
        help="write an untrained model bundle (random or pretrained backbone, random anchors)",
    )
    create.add_argument("out", type=Path)
    create.add_argument("--backbone", default="IPAD-Tiny-ViT-16", help="open_clip ViT name")
    create.add_argument("--pretrained", help="open_clip tag or local CLIP checkpoint file")
    create.add_argument("--image-size", type=int, help="input size (multiple of the patch size)")
    create.add_argument("--seed", type=int, default=0)
    _add_tool_parsers(sub)
    return parser


def _add_tool_parsers(sub: Any) -> None:
    """``ipad export onnx|trt|triton-repo``, ``ipad serve`` and ``ipad ray``: each runs its
    module's run function, which imports the heavy runtime (torch, onnx, TensorRT, Ray, PyTriton)
    itself."""
    from .export import onnx, triton_repo, trt
    from .integrations import commands

    export = sub.add_parser(
        "export", help="export a model: ONNX, TensorRT engine, Triton model repository",
        description="Export a model for other runtimes and servers (needs the 'export' extra; "
        "'trt' needs TensorRT: the 'trt' extra or full TensorRT).",
    )  # fmt: skip
    formats = export.add_subparsers(dest="format", required=True)
    tools = [
        ("onnx", onnx, "export a .safetensors bundle to ONNX (FP32, FP16, INT8), checked against "
         "the PyTorch model"),
        ("trt", trt, "build a TensorRT engine plan and its .json sidecar from an ONNX export"),
        ("triton-repo", triton_repo, "write a Triton Inference Server model repository for an "
         ".onnx file or a TensorRT plan"),
    ]  # fmt: skip
    for name, module, summary in tools:
        first_line = (module.__doc__ or "").split("\n")[0]
        tool = formats.add_parser(name, help=summary, description=first_line)
        module.add_arguments(tool)
        tool.set_defaults(run=module.run)
    for name, summary, description, add, run in commands.SUBCOMMANDS:
        tool = sub.add_parser(name, help=summary, description=description)
        add(tool)
        tool.set_defaults(run=run)


def _cmd_detect(args: argparse.Namespace) -> int:
    from .detector import default_model_path
    from .discover import discover
    from .runner import run_batch

    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    if args.frame_stride < 1:
        raise UsageError("--frame-stride must be >= 1")
    if args.workers < 1:
        raise UsageError("--workers must be >= 1")
    if (args.save_masks or args.save_overlays or args.save_heatmaps) and args.out is None:
        raise UsageError("--save-masks/--save-overlays/--save-heatmaps need --out DIR")
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out DIR (the folder of the interrupted run)")
    from .tiling import TilingSpec

    try:
        tiling = TilingSpec.parse(args.tiling)
    except ValueError as exc:
        raise UsageError(f"--tiling: {exc}") from None
    detector = _open_detector(
        args, args.model or default_model_path(), tiling=tiling,
        image_threshold=args.image_threshold, pixel_threshold=args.pixel_threshold,
        class_thresholds=dict(args.class_threshold),
    )  # fmt: skip
    files = discover(args.paths, exclude=args.out)
    bar = _progress_bar(len(files), disabled=args.quiet)
    try:
        with detector:
            summary = run_batch(
                detector, files, args.out, args.format, args.save_masks, args.save_overlays,
                progress=bar.update if bar is not None else None, resume=args.resume,
                save_heatmaps=args.save_heatmaps, frame_stride=args.frame_stride,
                workers=args.workers,
            )  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    if not args.quiet:
        where = f" -> {args.out}" if args.out is not None else ""
        print(f"{summary.ok}/{summary.total} images ok, {len(summary.failed)} failed{where}",
              file=sys.stderr)  # fmt: skip
        print(summary.timing_line(), file=sys.stderr)
        for source, error in summary.failed[:20]:
            print(f"  failed: {error}" if error.startswith(source) else f"  {source}: {error}",
                  file=sys.stderr)  # fmt: skip
    return EXIT_SOME_FAILED if summary.failed else EXIT_OK


def _open_detector(
    args: argparse.Namespace, model: str | os.PathLike[str], **options: Any
) -> Detector:
    """A :class:`~ipad_sdk.Detector` on ``args``' device and batch size, its warnings printed
    unless ``--quiet``; options that do not fit the model are a usage error."""
    from .detector import Detector

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            detector = Detector(model, args.device, args.batch_size, **options)
        except ModelError:  # a ValueError too, but not the user's arguments
            raise
        except ValueError as exc:  # e.g. thresholds that do not fit this model
            raise UsageError(str(exc)) from None
    for warning in caught if not getattr(args, "quiet", False) else ():
        print(f"ipad {args.command}: warning: {warning.message}", file=sys.stderr)
    return detector


def _image_folder(folder: Path, option: str) -> list[Path]:
    """The image files below ``folder`` (``--clean``/``--artifacts``); none is a usage error."""
    from .discover import discover

    if not folder.is_dir():
        raise UsageError(f"{option} {folder}: not a folder")
    files = discover([folder])
    if not files:
        raise UsageError(f"{option} {folder}: no image files in it")
    return files


def _check_rate(value: float | None, option: str) -> None:
    if value is not None and not 0.0 < value < 1.0:
        raise UsageError(f"{option} must be in (0, 1), got {value}")


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate, score_files, write_plot, write_thresholds
    from .outputs import output_error

    _check_rate(args.fpr, "--fpr")
    _check_rate(args.pixel_fpr, "--pixel-fpr")
    if args.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")
    clean_files = _image_folder(args.clean, "--clean")
    artifact_files = _image_folder(args.artifacts, "--artifacts") if args.artifacts else []
    shared = {p.resolve() for p in clean_files} & {p.resolve() for p in artifact_files}
    if shared:
        raise UsageError(f"--clean and --artifacts share {len(shared)} file(s), e.g. {min(shared)}")
    detector = _open_detector(args, args.model)
    clean = score_files(detector, clean_files, keep_pixels=args.pixel_fpr is not None)
    artifacts = score_files(detector, artifact_files) if artifact_files else None
    for failure in clean.failed + (artifacts.failed if artifacts else []):
        print(f"ipad calibrate: skipped: {failure.error}", file=sys.stderr)
    if clean.scores.size == 0:
        raise UsageError(f"--clean {args.clean}: none of its images could be read")
    cal = calibrate(detector.config, clean, artifacts, args.fpr, args.pixel_fpr)
    plot = args.plot or Path(args.model).with_name(Path(args.model).stem + ".calibration.png")
    try:  # the plot first: a plot that cannot be written leaves the model as it was
        plotted = write_plot(plot, cal, clean, artifacts)
    except OSError as exc:
        raise output_error(exc, plot, "; the model was not changed") from None
    try:
        write_thresholds(args.model, detector.config, cal)
    except OSError as exc:
        raise output_error(exc, args.model, "; the model is unchanged") from None
    for line in cal.summary():
        print(line)
    print(f"wrote the thresholds into {args.model}")
    print(plotted)
    return EXIT_OK


def _class_threshold(text: str) -> tuple[str, float]:
    """The argparse type of ``--class-threshold CLASS=T``."""
    name, _, value = text.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected CLASS=THRESHOLD") from None


def _progress_bar(total: int, disabled: bool) -> tqdm[NoReturn] | None:
    if disabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)


def _read_onnx_metadata(path: str) -> dict[str, str]:
    try:
        import onnx
    except ImportError:
        raise BackendUnavailable("ipad info on .onnx files needs: pip install onnx") from None
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{path}: not a readable ONNX file: {exc}") from None
    return {e.key: e.value for e in proto.metadata_props}


def _cmd_info(args: argparse.Namespace) -> int:
    from .backends import backend_for
    from .fileio import check_regular_file, file_sha256
    from .metadata import (
        ONNX_FORMAT_NAME,
        read_bundle_config,
        read_engine_metadata,
        read_exported_metadata,
    )

    path = os.fspath(args.model)
    check_regular_file(path)
    kind = backend_for(path)
    extra: dict[str, object] = {}
    if kind == "torch":
        config = read_bundle_config(path)
    elif kind == "onnxruntime":
        config, meta = read_exported_metadata(_read_onnx_metadata(path), path, ONNX_FORMAT_NAME)
        extra = {k: v for k, v in meta.items() if k != "ipad_config"}
    else:
        config, meta = read_engine_metadata(path)
        extra = {k: v for k, v in meta.items() if k != "ipad_config"}
    info = {
        "file": path,
        "runtime": kind,
        "bytes": os.path.getsize(path),
        "sha256": file_sha256(path),
        "config": config.to_dict(),
    } | extra
    print(json.dumps(info, indent=2))
    return EXIT_OK


def _cmd_create_bundle(args: argparse.Namespace) -> int:
    from .model import build_ipad_clip, save_bundle

    weights = args.pretrained or f"random (seed {args.seed})"
    model = build_ipad_clip(
        args.backbone,
        pretrained=args.pretrained,
        image_size=args.image_size,
        seed=args.seed,
        description=f"{args.backbone} backbone {weights}, random adapters and anchors",
    )
    path = save_bundle(model, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {model.config.description}")
    return EXIT_OK


def _cmd_tool(args: argparse.Namespace) -> int:
    """A tool subcommand (``args.run``); files it cannot read or write and values it refuses are
    errors (exit 2), reported with the message naming them."""
    try:
        status: int = args.run(args)
        return status
    except IpadError:
        raise
    except (OSError, ValueError) as exc:
        print(f"ipad {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


_COMMANDS = {"detect": _cmd_detect, "calibrate": _cmd_calibrate, "info": _cmd_info,
             "create-bundle": _cmd_create_bundle, "export": _cmd_tool, "serve": _cmd_tool,
             "query": _cmd_tool, "ray": _cmd_tool}  # fmt: skip


def _interrupt(signum: int, frame: Any) -> NoReturn:
    """The first Ctrl-C: stop the command (``KeyboardInterrupt``); the next ones exit at once."""
    signal.signal(signal.SIGINT, _exit_interrupted)
    raise KeyboardInterrupt


def _exit_interrupted(signum: int, frame: Any) -> NoReturn:
    """A second Ctrl-C during the cleanup of the first: leave now, quietly."""
    os._exit(EXIT_INTERRUPTED)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``ipad`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _interrupt) if in_main_thread else None
    try:
        code = _run(args)
    except KeyboardInterrupt:
        # ignored from here on: interpreter shutdown resets Python handlers, and a Ctrl-C during
        # its thread joins would print a traceback or die of the signal instead of exiting 130
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print(f"ipad {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if previous is not None:
        signal.signal(signal.SIGINT, previous)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        return _COMMANDS[args.command](args)
    except IpadError as exc:  # model, runtime and usage errors; input errors are per file
        print(f"ipad {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `ipad info m | head`
        sys.stderr.close()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
