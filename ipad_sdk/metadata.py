"""The one model-metadata schema, shared by the bundle, the ONNX file and the engine sidecar.

A :class:`ModelConfig` is everything a runtime needs besides the weights: the backbone and its
open_clip config, the input size and normalisation, the class names, the adapter/feature layout
and the decision thresholds. It is stored as one JSON string under the key :data:`CONFIG_KEY`
(safetensors ``__metadata__`` in a bundle; ``metadata_props`` in ONNX; the engine sidecar).

This module imports neither torch nor safetensors, so ``ipad info`` and every backend can read a
bundle's config with numpy + pillow installed only.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ModelError
from .fileio import file_sha256

FORMAT_NAME = "ipad-bundle"
ONNX_FORMAT_NAME = "ipad-onnx"
ENGINE_FORMAT_NAME = "ipad-engine"
#: An engine's metadata lives in a JSON sidecar beside the plan (``engine.plan`` ->
#: ``engine.plan.json``): a header inside the plan would break trtexec, Polygraphy and C++ loaders.
ENGINE_SIDECAR_SUFFIX = ".json"
FORMAT_VERSION = 1
CONFIG_KEY = "ipad_config"
FORMAT_KEY = "format"
#: Tensor names of every exported graph (ONNX file, engine): ``images [B,3,S,S]`` in,
#: ``class_probs [B,K+1]`` and ``pixel_probs [B,K+1,S,S]`` out.
INPUT_NAME = "images"
OUTPUT_NAMES = ("class_probs", "pixel_probs")
#: Exported files (ONNX, engines) add these keys beside the config.
PRECISIONS = ("fp32", "fp16", "int8")
INPUT_FORMATS = ("float", "uint8")  # normalised float32, or resized uint8 normalised in-graph

DEFAULT_CLASSES = ("clean", "ghosting", "flare", "moire")
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ADAPTER_ACTIVATIONS = ("gelu", "relu", "quick_gelu")

#: safetensors headers larger than this are rejected before they are read (a corrupt length field
#: must not make us allocate gigabytes); real bundle headers are tens of kilobytes.
_MAX_HEADER_BYTES = 64 * 2**20


def default_feature_layers(depth: int, count: int = 4) -> tuple[int, ...]:
    """``count`` evenly spaced 1-based block numbers ending at the last (6/12/18/24 for 24)."""
    if depth < count:
        return tuple(range(1, depth + 1))
    return tuple(depth * k // count for k in range(1, count + 1))


@dataclass(frozen=True)
class ModelConfig:
    """Inference configuration of an IPAD-CLIP model (see the module docstring).

    ``clip_config`` is the open_clip model config (``embed_dim``, ``vision_cfg``, ``quick_gelu``)
    with ``vision_cfg.image_size`` equal to ``image_size``, so a bundle rebuilds its backbone
    without the open_clip model registry. ``feature_layers`` are 1-based block numbers; adapters
    sit after blocks ``1..n_adapt``. Probabilities are ``softmax(cos(feature, anchor) / tau)``.
    ``image_threshold`` applies to ``artifact_score = 1 - P(clean)``; ``pixel_threshold`` to the
    per-pixel artifact probability.
    """

    backbone: str
    clip_config: dict[str, Any]
    image_size: int
    feature_layers: tuple[int, ...]
    n_adapt: int = 6
    beta: float = 0.1
    tau: float = 0.07
    adapter_act: str = "gelu"
    classes: tuple[str, ...] = DEFAULT_CLASSES
    mean: tuple[float, float, float] = OPENAI_CLIP_MEAN
    std: tuple[float, float, float] = OPENAI_CLIP_STD
    image_threshold: float = 0.5
    pixel_threshold: float = 0.5
    trained: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    # -- derived -------------------------------------------------------------------------------
    @property
    def vision_cfg(self) -> dict[str, Any]:
        return self.clip_config["vision_cfg"]

    @property
    def patch_size(self) -> int:
        return int(self.vision_cfg["patch_size"])

    @property
    def depth(self) -> int:
        return int(self.vision_cfg["layers"])

    @property
    def width(self) -> int:
        return int(self.vision_cfg["width"])

    @property
    def embed_dim(self) -> int:
        return int(self.clip_config["embed_dim"])

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    # -- validation and (de)serialisation --------------------------------------------------------
    def validate(self, source: str = "model config") -> ModelConfig:
        """Raise :class:`ModelError` naming ``source`` if any field is inconsistent."""

        def fail(msg: str) -> None:
            raise ModelError(f"{source}: invalid model config: {msg}")

        if self.format_version > FORMAT_VERSION:
            fail(
                f"format version {self.format_version} is newer than this SDK supports "
                f"({FORMAT_VERSION}); upgrade ipad-sdk"
            )
        vc = self.clip_config.get("vision_cfg") if isinstance(self.clip_config, dict) else None
        if not isinstance(vc, dict) or "embed_dim" not in self.clip_config:
            fail("clip_config needs 'embed_dim' and 'vision_cfg'")
        for key in ("layers", "width", "patch_size"):
            if not isinstance(vc.get(key), int) or vc[key] <= 0:
                fail(f"clip_config.vision_cfg.{key} must be a positive int, got {vc.get(key)!r}")
        if self.clip_config.get("stem", "patch") not in ("patch", "conv"):
            fail(f"clip_config.stem must be 'patch' or 'conv', got {self.clip_config['stem']!r}")
        if self.image_size <= 0 or self.image_size % self.patch_size:
            fail(f"image_size {self.image_size} is not a multiple of patch size {self.patch_size}")
        if vc.get("image_size") not in (None, self.image_size):
            fail(f"vision_cfg.image_size {vc.get('image_size')} != image_size {self.image_size}")
        if (
            not self.feature_layers
            or any(not 1 <= b <= self.depth for b in self.feature_layers)
            or list(self.feature_layers) != sorted(set(self.feature_layers))
        ):
            fail(f"feature_layers {self.feature_layers} must be increasing in 1..{self.depth}")
        if not 0 <= self.n_adapt <= self.depth:
            fail(f"n_adapt {self.n_adapt} must be in 0..{self.depth}")
        if not 0.0 <= self.beta <= 1.0:
            fail(f"beta {self.beta} must be in [0, 1]")
        if not self.tau > 0:
            fail(f"tau {self.tau} must be > 0")
        if self.adapter_act not in ADAPTER_ACTIVATIONS:
            fail(f"adapter_act {self.adapter_act!r} not in {ADAPTER_ACTIVATIONS}")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            fail(f"classes {self.classes} must be >= 2 distinct names (the first is 'clean')")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            fail("mean and std need 3 values each, std > 0")
        for name in ("image_threshold", "pixel_threshold"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                fail(f"{name} must be in [0, 1]")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> ModelConfig:
        if not isinstance(data, dict):
            raise ModelError(f"{source}: model config is not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(
                f"{source}: unknown model config keys {unknown} (written by a newer ipad-sdk?)"
            )
        kwargs = dict(data)
        for key in ("feature_layers", "classes", "mean", "std"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        try:
            config = cls(**kwargs)
        except TypeError as exc:  # a required field is missing
            raise ModelError(f"{source}: incomplete model config: {exc}") from None
        return config.validate(source)

    @classmethod
    def from_json(cls, text: str, source: str = "model config") -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"{source}: model config is not valid JSON: {exc}") from None
        return cls.from_dict(data, source)

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with ``changes`` applied and validated."""
        data = self.to_dict()
        data.update(changes)
        return ModelConfig.from_dict(data)


def bundle_metadata(config: ModelConfig) -> dict[str, str]:
    """The safetensors ``__metadata__`` of a bundle holding ``config``."""
    return {FORMAT_KEY: FORMAT_NAME, CONFIG_KEY: config.to_json()}


def onnx_metadata(
    config: ModelConfig, precision: str, input_format: str, source_sha256: str
) -> dict[str, str]:
    """The ``metadata_props`` of an exported ONNX file: the bundle's keys plus the export's
    precision, input format, format version and the SHA-256 of the source bundle."""
    meta = exported_metadata_fields(precision, input_format)
    return (
        bundle_metadata(config)
        | meta
        | {FORMAT_KEY: ONNX_FORMAT_NAME, "source_sha256": source_sha256}
    )


def exported_metadata_fields(precision: str, input_format: str) -> dict[str, str]:
    """Validated ``precision``/``input_format``/``format_version`` entries of an exported file."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    return {"precision": precision, "input_format": input_format,
            "format_version": str(FORMAT_VERSION)}  # fmt: skip


def read_exported_metadata(
    meta: dict[str, str], source: str, format_name: str
) -> tuple[ModelConfig, dict[str, str]]:
    """Check the metadata of an exported file (``format_name``) and return its config and the
    metadata dict; a foreign or newer file gives a :class:`ModelError` naming ``source``."""
    if meta.get(FORMAT_KEY) != format_name or CONFIG_KEY not in meta:
        raise ModelError(
            f"{source}: not an ipad-sdk {format_name} file (metadata '{FORMAT_KEY}' is "
            f"{meta.get(FORMAT_KEY)!r}); export one with export/export_onnx.py"
        )
    version = meta.get("format_version", "")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise ModelError(
            f"{source}: format version {version!r} is not supported by this ipad-sdk "
            f"(reads <= {FORMAT_VERSION}); upgrade ipad-sdk or re-export"
        )
    if meta.get("precision") not in PRECISIONS or meta.get("input_format") not in INPUT_FORMATS:
        raise ModelError(
            f"{source}: bad precision/input_format metadata "
            f"({meta.get('precision')!r}, {meta.get('input_format')!r})"
        )
    return ModelConfig.from_json(meta[CONFIG_KEY], source=source), meta


def engine_sidecar_path(plan: str | os.PathLike[str]) -> str:
    """Where the metadata of the engine ``plan`` lives (``<plan>.json``)."""
    return os.fspath(plan) + ENGINE_SIDECAR_SUFFIX


def read_engine_metadata(plan: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any]]:
    """Read and check an engine's sidecar: the ONNX file's keys (format ``ipad-engine``) plus a
    ``tensorrt`` object (flavour, version, target SM, profile, I/O, plan size and SHA-256).

    A missing plan or sidecar, a foreign sidecar, or a plan whose size or hash differs from the
    sidecar's (truncated, corrupt, or rebuilt without its sidecar) is a :class:`ModelError`.
    """
    name, sidecar = os.fspath(plan), engine_sidecar_path(plan)
    if not os.path.isfile(name):
        raise ModelError(f"{name}: engine file not found")
    try:
        with open(sidecar, encoding="utf-8") as fh:
            meta = json.load(fh)
    except FileNotFoundError:
        raise ModelError(
            f"{name}: its metadata sidecar {sidecar} is missing; keep the .json written by "
            "export/build_trt.py beside the plan (or rebuild the engine)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{sidecar}: unreadable engine metadata: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("tensorrt"), dict):
        raise ModelError(f"{sidecar}: not an ipad-sdk engine sidecar (no 'tensorrt' object)")
    flat = {k: v for k, v in meta.items() if isinstance(v, str)}
    config, _ = read_exported_metadata(flat, sidecar, ENGINE_FORMAT_NAME)
    info = meta["tensorrt"]
    size = os.path.getsize(name)
    if size != info.get("plan_bytes"):
        raise ModelError(
            f"{name}: the plan is {size} bytes but was built as {info.get('plan_bytes')} "
            "(truncated or replaced); rebuild the engine with export/build_trt.py"
        )
    if file_sha256(name) != info.get("plan_sha256"):
        raise ModelError(
            f"{name}: the plan's SHA-256 does not match its sidecar (corrupt or replaced); "
            "rebuild the engine with export/build_trt.py"
        )
    return config, meta


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a safetensors header (8-byte little-endian length, then JSON) without safetensors.

    Hand-written on purpose: the format is a documented 8-byte length plus JSON, and reading it here
    keeps ``ipad info`` and config checks free of the torch/safetensors dependencies.
    """
    name = os.fspath(path)
    try:
        size = os.path.getsize(name)
        with open(name, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) < 8:
                raise ModelError(f"{name}: not a model bundle (file too short: {size} bytes)")
            (header_len,) = struct.unpack("<Q", raw_len)
            if header_len > min(_MAX_HEADER_BYTES, size - 8):
                raise ModelError(
                    f"{name}: not a model bundle (no valid safetensors header; corrupt or "
                    "another format)"
                )
            raw = fh.read(header_len)
    except FileNotFoundError:
        raise ModelError(f"{name}: model file not found") from None
    except IsADirectoryError:
        raise ModelError(f"{name}: is a directory, not a model file") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ModelError(f"{name}: not a model bundle (safetensors header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelError(f"{name}: not a model bundle (safetensors header is not an object)")
    return header


def read_bundle_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read and validate the :class:`ModelConfig` stored in a bundle's header."""
    name = os.fspath(path)
    meta = read_safetensors_header(name).get("__metadata__") or {}
    if meta.get(FORMAT_KEY) != FORMAT_NAME or CONFIG_KEY not in meta:
        raise ModelError(
            f"{name}: a safetensors file but not an ipad-sdk model bundle "
            f"(metadata '{FORMAT_KEY}' is {meta.get(FORMAT_KEY)!r}, expected {FORMAT_NAME!r})"
        )
    return ModelConfig.from_json(meta[CONFIG_KEY], source=name)
