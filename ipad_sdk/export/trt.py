"""Build a TensorRT engine (FP16 from the FP16 ONNX) and its metadata sidecar.

    ipad export trt MODEL.onnx --out engine.plan [--sm 86] [--batch 1:8:32]
        [--workspace-gib N] [--timing-cache FILE] [--flavour auto|rtx|full] [--fp16-flag]

(``python export/build_trt.py`` in a checkout takes the same options.)

Works with TensorRT for RTX (``tensorrt_rtx``, pip-installable, builds ahead of time for a named GPU
architecture without a GPU: ``--sm 86`` for an RTX 3090) and with full TensorRT 10 and 11
(``tensorrt``, builds for the local GPU; other majors are refused). Networks are strongly typed:
the precision of every layer comes from the ONNX types, so the FP16 export gives FP16 matmuls with
LayerNorm, Softmax, the L2 normalisation and the cosine head in FP32. With full TensorRT 10,
``--fp16-flag`` instead builds the FP32 ONNX with the FP16 builder flag and pins those layers to
FP32 (TensorRT 11 removed that flag: strongly typed is its only route). The sidecar's
``precision`` is the engine's on every route.

The batch is dynamic within one optimisation profile (``min:opt:max``); H and W are fixed by the
model. Engines are built with detailed profiling verbosity; where a GPU can deserialise the plan,
the built engine's layers (EngineInspector: per-layer precisions and kernels) go to
``<plan>.layers.json``; the sidecar always lists the network's layer output types. Full
TensorRT loads and saves ``--timing-cache`` (TensorRT for RTX has none). The plan and its sidecar
``<plan>.json`` (the ONNX metadata plus TensorRT flavour/version, target SM, profile, I/O, the
network's layer precisions, plan size and SHA-256) are written atomically; the SDK needs nothing
else: ``ipad_sdk.Detector("engine.plan")``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import IpadError
from ..fileio import atomic_write_bytes, file_sha256
from ..metadata import (
    ENGINE_FORMAT_NAME,
    INPUT_NAME,
    ONNX_FORMAT_NAME,
    engine_sidecar_path,
    read_exported_metadata,
)

FLAVOURS = {"rtx": ("tensorrt_rtx", "tensorrt-rtx"), "full": ("tensorrt", "tensorrt")}
FULL_TENSORRT_MAJORS = (10, 11)


class BuildError(IpadError, RuntimeError):
    """The ONNX file could not be parsed or the engine could not be built."""


def import_tensorrt(flavour: str = "auto") -> tuple[ModuleType, str]:
    """The TensorRT Python module and its flavour name (``tensorrt-rtx`` or ``tensorrt``)."""
    order = ["rtx", "full"] if flavour == "auto" else [flavour]
    for key in order:
        module_name, label = FLAVOURS[key]
        try:
            return __import__(module_name), label
        except ImportError:
            continue
    raise BuildError(
        "no TensorRT found: pip install 'ipad-sdk[trt]' (TensorRT for RTX) or install full "
        "TensorRT from NVIDIA's package index (pip install tensorrt --extra-index-url "
        "https://pypi.nvidia.com)"
    )


@dataclass(frozen=True)
class Route:
    """How the network is built: strongly typed (precision from the ONNX types) or, on full
    TensorRT 10 only, with the FP16 builder flag; ``precision`` is what the engine computes in."""

    strongly_typed: bool
    precision: str


def build_route(
    trt: ModuleType, label: str, *, sm: str | None, fp16_flag: bool, onnx_precision: str
) -> Route:
    """Check the requested build against the installed TensorRT and choose its route."""
    if label == "tensorrt-rtx":
        if fp16_flag:
            raise BuildError(
                "--fp16-flag needs full TensorRT 10: TensorRT for RTX is strongly typed"
            )
        if sm is None:
            raise BuildError("TensorRT for RTX builds ahead of time: name the target, e.g. --sm 86")
        if not hasattr(trt.ComputeCapability, f"SM{sm}"):
            known = [c for c in trt.ComputeCapability.__members__ if c.startswith("SM")]
            raise BuildError(
                f"TensorRT for RTX {trt.__version__} cannot target SM{sm}; it knows {known}"
            )
        return Route(strongly_typed=True, precision=onnx_precision)
    if sm is not None:
        raise BuildError("--sm needs TensorRT for RTX; full TensorRT builds for the local GPU")
    major = int(trt.__version__.split(".")[0])
    if major not in FULL_TENSORRT_MAJORS:
        raise BuildError(
            f"TensorRT {trt.__version__} is not supported: ipad export trt supports full TensorRT "
            f"{' and '.join(map(str, FULL_TENSORRT_MAJORS))} and TensorRT for RTX"
        )
    if fp16_flag and major >= 11:
        raise BuildError(
            f"--fp16-flag needs TensorRT 10: TensorRT {trt.__version__} removed BuilderFlag.FP16 "
            "and per-layer precisions; build the FP16 ONNX (ipad export onnx --fp16) without "
            "--fp16-flag (strongly typed)"
        )
    return Route(strongly_typed=not fp16_flag, precision="fp16" if fp16_flag else onnx_precision)


def parse_batch(spec: str) -> tuple[int, int, int]:
    """``"1:8:32"`` -> (min, opt, max); ``"8"`` -> (8, 8, 8)."""
    parts = spec.split(":")
    if len(parts) not in (1, 3) or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--batch must be N or MIN:OPT:MAX positive integers, got {spec!r}")
    values = [int(p) for p in parts] * (3 if len(parts) == 1 else 1)
    low, opt, high = values
    if not low <= opt <= high:
        raise ValueError(f"--batch needs MIN <= OPT <= MAX, got {spec!r}")
    return low, opt, high


def onnx_metadata_of(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ipad-onnx metadata of an exported ONNX file (validated)."""
    import onnx

    proto = onnx.load(os.fspath(path), load_external_data=False)
    meta = {e.key: e.value for e in proto.metadata_props}
    read_exported_metadata(meta, os.fspath(path), ONNX_FORMAT_NAME)
    return meta


def parse_network(
    trt: ModuleType, builder: Any, onnx_path: str, strongly_typed: bool
) -> tuple[Any, Any]:
    """Parse the ONNX file into a network; every parser error is reported with its node.
    Returns the network and its parser (which owns weights the network refers to)."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if strongly_typed else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, _logger(trt))
    if not parser.parse_from_file(onnx_path):
        lines = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            lines.append(
                f"  node {err.node()} '{err.node_name()}' ({err.node_operator()}): {err.desc()}"
            )
        raise BuildError(f"{onnx_path}: TensorRT's ONNX parser failed:\n" + "\n".join(lines))
    return network, parser


def network_precisions(trt: ModuleType, network: Any) -> dict[str, dict[str, int]]:
    """Output data types of the compute layers that matter for FP16 accuracy, counted by type."""
    watched = {
        "MATRIX_MULTIPLY": "matmul", "NORMALIZATION": "layernorm", "SOFTMAX": "softmax",
        "REDUCE": "reduce (L2 norm)", "CONVOLUTION": "conv", "RESIZE": "resize",
    }  # fmt: skip
    counts: dict[str, Counter[str]] = {label: Counter() for label in watched.values()}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        label = watched.get(str(layer.type).rsplit(".", 1)[-1])
        if label is not None:
            counts[label][str(layer.get_output(0).dtype).rsplit(".", 1)[-1]] += 1
    return {label: dict(c) for label, c in counts.items() if c}


def precision_problems(precisions: dict[str, dict[str, int]], precision: str) -> list[str]:
    """What is off with an engine meant to be ``precision`` (empty when all is as intended):
    FP16 needs FP16 matmuls except the two of the cosine head, and FP32 norms/softmax/L2."""
    problems = []
    for label in ("layernorm", "softmax", "reduce (L2 norm)"):
        other = {k: v for k, v in precisions.get(label, {}).items() if k != "FLOAT"}
        if other:
            problems.append(f"{label} layers not in FP32: {other}")
    if precision == "fp16":
        matmul = precisions.get("matmul", {})
        if matmul.get("FLOAT", 0) > 2:
            problems.append(f"{matmul['FLOAT']} FP32 matmuls (expected only the 2 of the head)")
        if not matmul.get("HALF"):
            problems.append("no FP16 matmul: is this the FP16 ONNX?")
    return problems


def _pin_fp32(trt: ModuleType, network: Any, num_classes: int) -> None:
    """For the FP16-flag route: LayerNorm, Softmax, reductions and the cosine head in FP32."""
    pinned = {trt.LayerType.NORMALIZATION, trt.LayerType.SOFTMAX, trt.LayerType.REDUCE}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        head = (
            layer.type == trt.LayerType.MATRIX_MULTIPLY
            and layer.get_output(0).shape[-1] == num_classes
        )
        if layer.type in pinned or head:
            layer.precision = trt.float32
            layer.set_output_type(0, trt.float32)


@functools.cache
def _logger(trt: ModuleType) -> Any:
    """One TensorRT logger per flavour (warnings and errors)."""
    return trt.Logger(trt.Logger.WARNING)


def _progress_monitor(trt: ModuleType) -> Any:
    """A TensorRT build progress monitor: one tqdm bar over the top-level build phases (the
    nested phases report thousands of tiny steps and are left out)."""
    from tqdm import tqdm

    base: Any = trt.IProgressMonitor  # the module is passed in: its classes are untyped

    class Monitor(base):
        def __init__(self) -> None:
            base.__init__(self)
            self.bar: Any = None
            self.top: str | None = None

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            if parent_phase is None and self.bar is None:
                self.top = phase_name
                self.bar = tqdm(total=num_steps, desc=phase_name, unit="phase", leave=False)

        def step_complete(self, phase_name: str, step: int) -> bool:
            if phase_name == self.top and self.bar is not None:
                self.bar.update(step + 1 - self.bar.n)
            return True  # never cancel

        def phase_finish(self, phase_name: str) -> None:
            if phase_name == self.top and self.bar is not None:
                self.bar.close()
                self.bar, self.top = None, None

    return Monitor()


def inspect_engine(trt: ModuleType, plan: bytes) -> str | None:
    """The built engine's per-layer information (EngineInspector JSON), where a GPU can
    deserialise the plan; None without one (a TensorRT-RTX plan cannot be read without a GPU)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        return None
    err, count = runtime.cudaGetDeviceCount()
    if err != runtime.cudaError_t.cudaSuccess or count == 0:
        return None
    engine = trt.Runtime(_logger(trt)).deserialize_cuda_engine(plan)
    if engine is None:  # built for another GPU architecture than the local one
        return None
    inspector = engine.create_engine_inspector()
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


def builder_config(
    trt: ModuleType,
    builder: Any,
    route: Route,
    *,
    sm: str | None,
    size: int,
    batch: tuple[int, int, int],
    workspace_gib: float | None,
) -> Any:
    """The builder configuration: one batch profile, detailed profiling verbosity (per-layer
    precisions and kernels in ``.layers.json``), the RTX target or the FP16 flag of the route."""
    build_config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, *((b, 3, size, size) for b in batch))
    build_config.add_optimization_profile(profile)
    build_config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    if workspace_gib is not None:
        build_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 2**30))
    if sm is not None:
        build_config.num_compute_capabilities = 1
        build_config.set_compute_capability(getattr(trt.ComputeCapability, f"SM{sm}"), 0)
    if not route.strongly_typed:
        build_config.set_flag(trt.BuilderFlag.FP16)
        build_config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return build_config


def build_engine(
    onnx_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    sm: str | None = None,
    batch: tuple[int, int, int] = (1, 8, 32),
    workspace_gib: float | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    flavour: str = "auto",
    fp16_flag: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Build ``onnx_path`` into the plan ``out`` and its sidecar; returns the sidecar dict."""
    trt, label = import_tensorrt(flavour)
    onnx_path = os.fspath(onnx_path)
    meta = onnx_metadata_of(onnx_path)
    config, _ = read_exported_metadata(meta, onnx_path, ONNX_FORMAT_NAME)
    rtx = label == "tensorrt-rtx"
    route = build_route(trt, label, sm=sm, fp16_flag=fp16_flag, onnx_precision=meta["precision"])
    builder = trt.Builder(_logger(trt))
    network, _parser = parse_network(trt, builder, onnx_path, route.strongly_typed)
    size = config.image_size
    net_input = network.get_input(0)
    if net_input.name != INPUT_NAME or tuple(net_input.shape[1:]) != (3, size, size):
        raise BuildError(f"{onnx_path}: input {net_input.name} {tuple(net_input.shape)} is not "
                         f"{INPUT_NAME} [B,3,{size},{size}]")  # fmt: skip
    fixed = net_input.shape[0]
    if fixed != -1 and batch != (fixed, fixed, fixed):
        raise BuildError(f"{onnx_path}: the ONNX batch is fixed at {fixed}; use --batch {fixed}")
    build_config = builder_config(
        trt, builder, route, sm=sm, size=size, batch=batch, workspace_gib=workspace_gib
    )
    if not route.strongly_typed:
        _pin_fp32(trt, network, config.num_classes)
    cache_path = Path(timing_cache) if timing_cache and not rtx else None
    if timing_cache and rtx:
        print("build_trt: --timing-cache ignored: TensorRT for RTX has no builder timing cache")
    if cache_path is not None:  # full TensorRT: reuse kernel timings across builds
        cache_bytes = cache_path.read_bytes() if cache_path.exists() else b""
        build_config.set_timing_cache(build_config.create_timing_cache(cache_bytes), False)
    if progress:
        build_config.progress_monitor = _progress_monitor(trt)
    precisions = network_precisions(trt, network)
    tic = time.perf_counter()
    plan = builder.build_serialized_network(network, build_config)
    seconds = time.perf_counter() - tic
    if plan is None:
        raise BuildError(f"{onnx_path}: TensorRT failed to build the engine (see the log above)")
    plan_bytes = memoryview(plan)
    if cache_path is not None:
        atomic_write_bytes(
            cache_path, bytes(memoryview(build_config.get_timing_cache().serialize()))
        )
    tensors = [network.get_input(i) for i in range(network.num_inputs)]
    tensors += [network.get_output(i) for i in range(network.num_outputs)]
    sidecar: dict[str, Any] = dict(meta) | {
        "format": ENGINE_FORMAT_NAME,
        "precision": route.precision,
    }
    sidecar["tensorrt"] = {
        "flavour": label,
        "version": trt.__version__,
        "target_sm": sm if rtx else "local",
        "strongly_typed": route.strongly_typed,
        "profile": dict(zip(("min", "opt", "max"), batch, strict=True)),
        "io": {
            t.name: {
                "mode": "input" if t.is_network_input else "output",
                "dtype": str(t.dtype).rsplit(".", 1)[-1],
                "shape": list(t.shape),
            }
            for t in tensors
        },  # fmt: skip
        "network_precisions": precisions,
        "source_onnx_sha256": file_sha256(onnx_path),
        "plan_bytes": plan_bytes.nbytes,
        "plan_sha256": hashlib.sha256(plan_bytes).hexdigest(),
        "build_seconds": round(seconds, 2),
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, bytes(plan_bytes))
    layers = inspect_engine(trt, bytes(plan_bytes))
    if layers is not None:
        atomic_write_bytes(Path(f"{out}.layers.json"), layers.encode())
    sidecar_text = json.dumps(sidecar, indent=1, sort_keys=True).encode()
    atomic_write_bytes(Path(engine_sidecar_path(out)), sidecar_text)
    return sidecar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad export trt`` and ``python export/build_trt.py``."""
    parser.add_argument("onnx", help="ONNX file from ipad export onnx (the .fp16.onnx of --fp16)")
    parser.add_argument("--out", required=True, help="engine plan to write")
    parser.add_argument("--sm", type=_sm_option,
                        help="TensorRT for RTX target, e.g. 86 (RTX 3090), 89, 120")  # fmt: skip
    parser.add_argument("--batch", default="1:8:32", type=_batch_option,
                        help="MIN:OPT:MAX batch profile, or N")  # fmt: skip
    parser.add_argument("--workspace-gib", type=float,
                        help="builder workspace limit in GiB (default: TensorRT's)")  # fmt: skip
    parser.add_argument("--timing-cache", help="timing cache file (read if present, then saved)")
    parser.add_argument("--flavour", choices=["auto", "rtx", "full"], default="auto",
                        help="TensorRT for RTX (rtx), full TensorRT (full), or the first "
                        "installed (auto)")  # fmt: skip
    parser.add_argument(
        "--fp16-flag", action="store_true",
        help="full TensorRT 10: FP32 ONNX + FP16 builder flag, norms pinned to FP32",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _batch_option(text: str) -> tuple[int, int, int]:
    """The argparse type of ``--batch`` (:func:`parse_batch`)."""
    try:
        return parse_batch(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _sm_option(text: str) -> str:
    """The argparse type of ``--sm``: digits such as 86."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be digits such as 86, got {text!r}")
    return text


def run(args: argparse.Namespace) -> int:
    """Build the engine ``args`` (of :func:`add_arguments`) describe and print its summary; 0 when
    its layer precisions are as intended, 1 (after the warnings) when not. Raises
    :class:`BuildError` or ``OSError`` when it cannot be built or written."""
    sidecar = build_engine(
        args.onnx, args.out, sm=args.sm, batch=args.batch, workspace_gib=args.workspace_gib,
        timing_cache=args.timing_cache, flavour=args.flavour, fp16_flag=args.fp16_flag,
        progress=not args.quiet,
    )  # fmt: skip
    info = sidecar["tensorrt"]
    print(f"wrote {args.out} ({info['plan_bytes'] / 2**20:.1f} MiB, {info['flavour']} "
          f"{info['version']}, target SM {info['target_sm']}, batch {info['profile']}, "
          f"{info['build_seconds']} s) and {engine_sidecar_path(args.out)}")  # fmt: skip
    print("layer output types (network, before building):")
    for label, counts in info["network_precisions"].items():
        print(f"  {label:18s} {counts}")
    # the FP16-flag route's network is FP32 until the builder picks kernels (see .layers.json):
    # only its pinned FP32 layers can be checked here
    checked = sidecar["precision"] if info["strongly_typed"] else "fp32"
    problems = precision_problems(info["network_precisions"], checked)
    for problem in problems:
        print(f"WARNING: {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    """``python export/build_trt.py``: the options of :func:`add_arguments`; exit 2 with the
    message when the engine cannot be built."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (BuildError, OSError) as exc:
        print(f"build_trt: {exc}")
        return 2
