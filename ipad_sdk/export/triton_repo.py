"""Write a Triton Inference Server model repository for an exported ipad model.

    ipad export triton-repo MODEL --out REPO [--name ipad] [--max-batch N] [--instances N]
        [--kind cpu|gpu] [--python-instances N] [--force]

(``python export/triton_repo.py`` in a checkout takes the same options.) MODEL is a TensorRT
plan with its sidecar ``<plan>.json`` (platform ``tensorrt_plan``; max batch from the engine's
profile) or an ONNX file from ``ipad export onnx`` (platform ``onnxruntime_onnx``; max batch 8
unless given). The repository::

    REPO/<name>/config.pbtxt              network: images [B,3,S,S] -> class_probs, pixel_probs
    REPO/<name>/1/model.plan | model.onnx a copy of MODEL
    REPO/<name>_detect/config.pbtxt       Python backend: encoded images -> JSON + mask PNG
    REPO/<name>_detect/1/model.py         ipad_sdk/integrations/triton_model.py (BLS)
    REPO/<name>_detect/1/ipad_model.json  the model's metadata (config, input format)

Tensor names, types and shapes come from the model's metadata (``ipad_sdk.metadata``) and are
checked against the file; both models batch dynamically (Triton's batcher), the network with
``--instances`` instances on ``--kind`` (default: GPU for a plan, CPU for ONNX), the Python model
with ``--python-instances`` CPU instances. Clients call ``<name>_detect`` (interface:
``ipad_sdk.integrations.triton``). The repository is written to a temporary folder and renamed
into place; a non-empty ``--out`` is refused unless ``--force``.

Triton's ``tensorrt_plan`` backend runs plans of full TensorRT built with the TensorRT version of
the Triton release: plans of TensorRT for RTX (``tensorrt_rtx``) are refused here.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import integrations
from ..errors import ModelError
from ..integrations.triton import INPUT, MAX_QUEUE_DELAY_US, METADATA_FILE, OUTPUTS
from ..metadata import (
    INPUT_NAME,
    ONNX_FORMAT_NAME,
    OUTPUT_NAMES,
    ModelConfig,
    read_engine_metadata,
    read_exported_metadata,
)

ONNX_SUFFIXES = (".onnx",)
PLAN_SUFFIXES = (".plan", ".engine")
DEFAULT_ONNX_MAX_BATCH = 8
#: Triton data types of ONNX element types and of TensorRT dtype names (as in the sidecar).
ONNX_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16"}
TRT_TYPES = {"FLOAT": "TYPE_FP32", "UINT8": "TYPE_UINT8", "HALF": "TYPE_FP16"}
INPUT_TYPES = {"float": "TYPE_FP32", "uint8": "TYPE_UINT8"}
BLS_SOURCE = Path(integrations.__file__).with_name("triton_model.py")


@dataclass(frozen=True)
class Network:
    """What the repository needs to know about the model file."""

    path: Path
    platform: str  # tensorrt_plan | onnxruntime_onnx
    file_name: str  # model.plan | model.onnx
    config: ModelConfig
    metadata: dict[str, str]  # the flat exported metadata (format, ipad_config, input_format...)
    types: dict[str, str]  # Triton data type per tensor name
    max_batch: int | None  # the engine profile's maximum (None: dynamic ONNX batch)
    opt_batch: int | None  # the engine profile's optimum
    tensorrt_version: str | None = None  # the TensorRT that built a plan

    def dims(self, name: str) -> list[int]:
        """Shape of tensor ``name`` without the batch dimension."""
        size, classes = self.config.image_size, self.config.num_classes
        return {INPUT_NAME: [3, size, size], OUTPUT_NAMES[0]: [classes],
                OUTPUT_NAMES[1]: [classes, size, size]}[name]  # fmt: skip


def inspect_model(path: str | os.PathLike[str]) -> Network:
    """Read and check ``path`` (an ``.onnx`` file or a ``.plan``/``.engine`` with its sidecar)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in ONNX_SUFFIXES + PLAN_SUFFIXES:
        raise ModelError(
            f"{file}: expected an .onnx file (ipad export onnx) or a TensorRT plan "
            f"(.plan/.engine with its .json sidecar, ipad export trt), got "
            f"{suffix or 'no suffix'!r}"
        )
    if not file.is_file():
        raise ModelError(f"{file}: model file not found" if not file.exists() else
                         f"{file}: is a directory, not a model file")  # fmt: skip
    return inspect_onnx(file) if suffix in ONNX_SUFFIXES else inspect_plan(file)


def inspect_onnx(file: Path) -> Network:
    """An ONNX export: metadata, names, types and a dynamic batch checked against the graph."""
    import onnx

    try:
        proto = onnx.load(str(file), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{file}: not a readable ONNX file: {exc}") from None
    meta = {e.key: e.value for e in proto.metadata_props}
    config, meta = read_exported_metadata(meta, str(file), ONNX_FORMAT_NAME)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        raise ModelError(f"{file}: weights in external files; export one self-contained .onnx "
                         "with ipad export onnx")  # fmt: skip
    weights = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in weights]
    tensors = {v.name: v.type.tensor_type for v in [*inputs, *proto.graph.output]}
    if list(tensors) != [INPUT_NAME, *OUTPUT_NAMES]:
        raise ModelError(f"{file}: expected input {INPUT_NAME!r} and outputs "
                         f"{list(OUTPUT_NAMES)}, found {list(tensors)}")  # fmt: skip
    types = {name: ONNX_TYPES.get(t.elem_type, f"unsupported ({t.elem_type})")
             for name, t in tensors.items()}  # fmt: skip
    batch = tensors[INPUT_NAME].shape.dim[0]
    if batch.HasField("dim_value"):
        raise ModelError(f"{file}: the batch is fixed at {batch.dim_value}; Triton's dynamic "
                         "batching needs a dynamic batch: export without --batch")  # fmt: skip
    network = Network(file, "onnxruntime_onnx", "model.onnx", config, meta, types, None, None)
    shape = [d.dim_value for d in tensors[INPUT_NAME].shape.dim[1:]]
    _check_input(network, shape, str(file))
    return network


def inspect_plan(file: Path) -> Network:
    """A TensorRT plan: its sidecar (plan size and hash checked), profile and I/O."""
    config, meta = read_engine_metadata(file)
    sidecar = f"{file}.json"
    info = meta["tensorrt"]
    if info.get("flavour") != "tensorrt":
        raise ModelError(
            f"{file}: built with {info.get('flavour')} {info.get('version')} (sidecar {sidecar}); "
            "Triton's tensorrt_plan backend runs full TensorRT plans built with the TensorRT "
            "version of the Triton release: rebuild with ipad export trt --flavour full in "
            "the matching NGC TensorRT container, or serve the ONNX model"
        )
    io = info.get("io", {})
    if set(io) != {INPUT_NAME, *OUTPUT_NAMES}:
        raise ModelError(f"{sidecar}: engine I/O is {sorted(io)}, expected "
                         f"{[INPUT_NAME, *OUTPUT_NAMES]}")  # fmt: skip
    profile = info.get("profile", {})
    if not all(isinstance(profile.get(k), int) and profile[k] >= 1 for k in ("opt", "max")):
        raise ModelError(f"{sidecar}: no valid optimisation profile (got {profile!r})")
    types = {n: TRT_TYPES.get(t["dtype"], f"unsupported ({t['dtype']})") for n, t in io.items()}
    flat = {k: v for k, v in meta.items() if isinstance(v, str)}
    network = Network(file, "tensorrt_plan", "model.plan", config, flat, types, profile["max"],
                      profile["opt"], info.get("version"))  # fmt: skip
    _check_input(network, io[INPUT_NAME]["shape"][1:], sidecar)
    return network


def _check_input(network: Network, shape: list[int], source: str) -> None:
    want = INPUT_TYPES[network.metadata["input_format"]]
    if network.types[INPUT_NAME] != want or list(shape) != network.dims(INPUT_NAME):
        raise ModelError(
            f"{source}: input {INPUT_NAME!r} is {network.types[INPUT_NAME]} {list(shape)}, but "
            f"the metadata says {want} {network.dims(INPUT_NAME)}"
        )
    bad = {n: t for n, t in network.types.items() if t.startswith("unsupported")}
    if bad:
        raise ModelError(f"{source}: unsupported tensor types {bad}")


# -- config.pbtxt ---------------------------------------------------------------------------------
def _tensor(name: str, data_type: str, dims: list[int]) -> str:
    return (f'  {{\n    name: "{name}"\n    data_type: {data_type}\n'
            f"    dims: [ {', '.join(map(str, dims))} ]\n  }}")  # fmt: skip


def _block(key: str, items: list[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _batching(preferred: list[int]) -> str:
    sizes = f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n" if preferred else ""
    return f"dynamic_batching {{\n{sizes}  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n}}\n"


def _instances(count: int, kind: str) -> str:
    group = f"  {{\n    count: {count}\n    kind: KIND_{kind.upper()}\n  }}"
    return _block("instance_group", [group])


def network_config(network: Network, name: str, max_batch: int, instances: int, kind: str) -> str:
    """``config.pbtxt`` of the network model."""
    half_or_opt = network.opt_batch or max(1, max_batch // 2)
    preferred = sorted({b for b in (half_or_opt, max_batch) if b <= max_batch})
    return (
        f'name: "{name}"\nplatform: "{network.platform}"\nmax_batch_size: {max_batch}\n'
        + _block("input", [_tensor(n, network.types[n], network.dims(n)) for n in [INPUT_NAME]])
        + _block("output", [_tensor(n, network.types[n], network.dims(n)) for n in OUTPUT_NAMES])
        + _batching(preferred)
        + _instances(instances, kind)
    )


def detect_config(name: str, core: str, max_batch: int, instances: int) -> str:
    """``config.pbtxt`` of the Python-backend model that clients call."""
    params = [f'  {{\n    key: "{k}"\n    value: {{ string_value: "{v}" }}\n  }}'
              for k, v in (("core_model", core), ("core_max_batch", max_batch))]  # fmt: skip
    return (
        f'name: "{name}"\nbackend: "python"\nmax_batch_size: {max_batch}\n'
        + _block("input", [_tensor(INPUT, "TYPE_STRING", [1])])
        + _block("output", [_tensor(n, "TYPE_STRING", [1]) for n in OUTPUTS])
        + _batching([])
        + _instances(instances, "cpu")
        + _block("parameters", params)
    )


# -- writing --------------------------------------------------------------------------------------
def write_repository(
    model: str | os.PathLike[str], out: str | os.PathLike[str], *, name: str = "ipad",
    max_batch: int | None = None, instances: int = 1, kind: str | None = None,
    python_instances: int = 2, force: bool = False,
) -> Network:  # fmt: skip
    """Write the repository for ``model`` at ``out`` (atomically); returns the checked model."""
    network = inspect_model(model)
    kind = kind or ("gpu" if network.platform == "tensorrt_plan" else "cpu")
    max_batch = _check_options(network, name, max_batch, instances, python_instances, kind)
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise ValueError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise ValueError(f"{target}: not empty; pass --force to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _fresh_name(target)
    tmp.mkdir()  # with the umask's permissions (mkdtemp would give 0700)
    try:
        _fill(tmp, network, name, max_batch, instances, kind, python_instances)
        _replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return network


def _check_options(
    network: Network, name: str, max_batch: int | None, instances: int, python_instances: int,
    kind: str,
) -> int:  # fmt: skip
    """Validated max batch (the profile's, or 8 for ONNX, unless given)."""
    if not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(f"--name must be letters, digits, '_' or '-', got {name!r}")
    if instances < 1 or python_instances < 1:
        raise ValueError("--instances and --python-instances must be >= 1")
    if kind not in ("cpu", "gpu"):
        raise ValueError(f"--kind must be 'cpu' or 'gpu', got {kind!r}")
    if network.platform == "tensorrt_plan" and kind == "cpu":
        raise ValueError(f"{network.path}: a TensorRT plan runs on a GPU only (--kind gpu)")
    limit = network.max_batch
    chosen = max_batch or limit or DEFAULT_ONNX_MAX_BATCH
    if chosen < 1 or (limit is not None and chosen > limit):
        bound = f"1..{limit} (the engine profile's maximum)" if limit else ">= 1"
        raise ValueError(f"{network.path}: --max-batch {chosen} must be {bound}")
    return chosen


def _fill(
    root: Path, network: Network, name: str, max_batch: int, instances: int, kind: str,
    python_instances: int,
) -> None:  # fmt: skip
    detect = f"{name}_detect"
    (root / name / "1").mkdir(parents=True)
    (root / detect / "1").mkdir(parents=True)
    shutil.copyfile(network.path, root / name / "1" / network.file_name)
    (root / name / "config.pbtxt").write_text(
        network_config(network, name, max_batch, instances, kind)
    )
    (root / detect / "config.pbtxt").write_text(
        detect_config(detect, name, max_batch, python_instances)
    )
    shutil.copyfile(BLS_SOURCE, root / detect / "1" / "model.py")
    (root / detect / "1" / METADATA_FILE).write_text(json.dumps(network.metadata, indent=1))


def _replace_folder(new: Path, target: Path) -> None:
    """Rename ``new`` onto ``target``; an old ``target`` is moved aside first, then deleted."""
    old = _fresh_name(target) if target.exists() else None
    if old is not None:
        os.replace(target, old)
    os.replace(new, target)
    if old is not None:
        shutil.rmtree(old)


def _fresh_name(target: Path) -> Path:
    """An unused hidden name beside ``target``."""
    while True:
        path = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        if not path.exists():
            return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad export triton-repo`` and ``python export/triton_repo.py``."""
    parser.add_argument("model", help="TensorRT plan (with its .json sidecar) or .onnx file")
    parser.add_argument("--out", required=True, help="repository folder to write")
    parser.add_argument("--name", default="ipad", help="network model (clients call NAME_detect)")
    parser.add_argument("--max-batch", type=int, help="default: the engine profile's max, or 8")
    parser.add_argument("--instances", type=int, default=1, help="network model instances")
    parser.add_argument("--kind", choices=("cpu", "gpu"), help="default: gpu (plan), cpu (onnx)")
    parser.add_argument("--python-instances", type=int, default=2,
                        help="CPU instances of the decoding Python model")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out")


def run(args: argparse.Namespace) -> int:
    """Write the repository ``args`` (of :func:`add_arguments`) describe; 0 when written. Raises
    ``ValueError`` (:class:`~ipad_sdk.errors.ModelError` among them) or ``OSError``."""
    network = write_repository(
        args.model, args.out, name=args.name, max_batch=args.max_batch,
        instances=args.instances, kind=args.kind, python_instances=args.python_instances,
        force=args.force,
    )  # fmt: skip
    print(f"wrote {args.out}: {args.name} ({network.platform}) and {args.name}_detect (Python "
          f"backend); serve it with: tritonserver --model-repository {args.out}")  # fmt: skip
    if network.tensorrt_version:
        print(f"the plan needs a Triton release built on TensorRT {network.tensorrt_version}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python export/triton_repo.py``: the options of :func:`add_arguments`; exit 2 with the
    message when the repository cannot be written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, OSError) as exc:  # ModelError is a ValueError
        print(f"triton_repo: {exc}")
        return 2
