"""The one model-metadata schema, shared by the bundle, the ONNX file and the engine sidecar.

A `ModelConfig` is everything a runtime needs besides the weights: the backbone and its
open_clip config, the input size and normalisation, the class names, the adapter/feature layout
and the decision thresholds. It is stored as one JSON string under the key `CONFIG_KEY`
(safetensors ``__metadata__`` in a bundle; ``metadata_props`` in ONNX; the engine sidecar).

This module imports neither torch nor safetensors, so ``ipad info`` and every backend can read a
bundle's config with numpy + pillow installed only.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, NoReturn

from .errors import ModelError
from .fileio import check_regular_file, file_sha256

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
#: Limits of the metadata a model file may carry, far above any real model's: a config or engine
#: sidecar (bytes), JSON nesting (real metadata nests 4 levels), class count, name and text lengths,
#: network sizes.
MAX_METADATA_BYTES = 2**20
MAX_JSON_DEPTH = 16
MAX_CLASSES = 256
MAX_NAME_CHARS = 128
MAX_TEXT_CHARS = 65536
MAX_IMAGE_SIZE = 8192
MAX_LAYERS = 256
MAX_WIDTH = 65536


def parse_json(text: str | bytes, source: str, what: str, invalid: str | None = None) -> Any:
    """Parse model metadata as JSON of bounded nesting.

    Args:
        text: The JSON text.
        source: The file it comes from, for the message.
        what: What the text is (e.g. ``"model config"``), for the message.
        invalid: The message when the text is not JSON (default: says so, with the parser's
            reason).

    Returns:
        The parsed value.

    Raises:
        ModelError: The text is not JSON or nests deeper than ``MAX_JSON_DEPTH`` levels; the
            message names ``source`` and ``what``.
    """
    too_deep = ModelError(f"{source}: {what} is nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(text)
    except RecursionError:  # far deeper than the limit
        raise too_deep from None
    except ValueError as exc:  # also an integer of over 4,300 digits, refused by int()
        raise ModelError(f"{source}: {invalid or f'{what} is not valid JSON: {exc}'}") from None
    level = [data] if isinstance(data, (dict, list)) else []
    for _ in range(MAX_JSON_DEPTH):  # level: the containers one level further down
        children = (x.values() if isinstance(x, dict) else x for x in level)
        level = [v for values in children for v in values if isinstance(v, (dict, list))]
    if level:
        raise too_deep
    return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))  # fmt: skip


def _is_text(limit: int, empty: bool = True) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and (empty or v != "") and len(v) <= limit


def _is_list(item: Callable[[Any], bool], low: int, high: int) -> Callable[[Any], bool]:
    return lambda v: (isinstance(v, (list, tuple)) and low <= len(v) <= high
                      and all(item(x) for x in v))  # fmt: skip


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


#: The JSON type of every config field: a check and what it expects (ranges and consistency
#: between fields are checked by `ModelConfig.validate`).
_FIELD_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "backbone": (_is_text(MAX_NAME_CHARS), f"a string of at most {MAX_NAME_CHARS} characters"),
    "clip_config": (_is_object, "an object"),
    "image_size": (_is_int, "an integer"),
    "feature_layers": (_is_list(_is_int, 1, MAX_LAYERS), "a list of integers"),
    "n_adapt": (_is_int, "an integer"),
    "beta": (_is_number, "a finite number"),
    "tau": (_is_number, "a finite number"),
    "adapter_act": (_is_text(MAX_NAME_CHARS), "a string"),
    "classes": (
        _is_list(_is_text(MAX_NAME_CHARS, empty=False), 2, MAX_CLASSES),
        f"a list of 2 to {MAX_CLASSES} non-empty strings of at most {MAX_NAME_CHARS} characters",
    ),
    "mean": (_is_list(_is_number, 3, 3), "a list of 3 finite numbers"),
    "std": (_is_list(_is_number, 3, 3), "a list of 3 finite numbers"),
    "image_threshold": (_is_number, "a finite number"),
    "pixel_threshold": (_is_number, "a finite number"),
    "trained": (lambda v: isinstance(v, bool), "true or false"),
    "description": (_is_text(MAX_TEXT_CHARS), f"a string of at most {MAX_TEXT_CHARS} characters"),
    "extra": (_is_object, "an object"),
    "format_version": (_is_int, "an integer"),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def default_feature_layers(depth: int, count: int = 4) -> tuple[int, ...]:
    """Choose evenly spaced blocks to take patch features from.

    Args:
        depth: Number of transformer blocks.
        count: Number of blocks to choose.

    Returns:
        ``count`` 1-based block numbers ending at the last (6/12/18/24 for depth 24), or every
            block when there are fewer than ``count``.
    """
    if depth < count:
        return tuple(range(1, depth + 1))
    return tuple(depth * k // count for k in range(1, count + 1))


@dataclass(frozen=True)
class ModelConfig:
    """Inference configuration of an IPAD-CLIP model (see the module description).

    Build one with `from_dict` or `from_json` (which validate it); it is immutable.

    Attributes:
        backbone: The open_clip backbone name (e.g. ``ViT-L-14``).
        clip_config: The open_clip model config (``embed_dim``, ``vision_cfg``, ``quick_gelu``)
            with ``vision_cfg.image_size`` equal to ``image_size``, so a bundle rebuilds its
            backbone without the open_clip model registry.
        image_size: Side of the square network input, in pixels.
        feature_layers: 1-based numbers of the blocks whose patch tokens are used.
        n_adapt: Adapters sit after blocks ``1..n_adapt``.
        beta: Adapter residual weight.
        tau: Temperature: probabilities are ``softmax(cos(feature, anchor) / tau)``.
        adapter_act: Adapter activation: ``gelu``, ``relu`` or ``quick_gelu``.
        classes: Class names, the clean class first.
        mean: Per-channel normalisation mean, in [0, 1] units.
        std: Per-channel normalisation standard deviation, in [0, 1] units.
        image_threshold: Default threshold on ``artifact_score = 1 - P(clean)``.
        pixel_threshold: Default threshold on the per-pixel artifact probability.
        trained: Whether the weights were trained (an untrained model makes a runtime warn).
        description: Free text.
        extra: Further JSON values (training provenance and the like).
        format_version: Version of this schema.
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
        """The open_clip vision tower config."""
        vision_cfg: dict[str, Any] = self.clip_config["vision_cfg"]
        return vision_cfg

    @property
    def patch_size(self) -> int:
        """Patch side, in pixels."""
        return int(self.vision_cfg["patch_size"])

    @property
    def depth(self) -> int:
        """Number of transformer blocks."""
        return int(self.vision_cfg["layers"])

    @property
    def width(self) -> int:
        """Token width of the vision tower."""
        return int(self.vision_cfg["width"])

    @property
    def embed_dim(self) -> int:
        """Dimension of CLIP's joint embedding space."""
        return int(self.clip_config["embed_dim"])

    @property
    def grid_size(self) -> int:
        """Patches per side of the input."""
        return self.image_size // self.patch_size

    @property
    def num_classes(self) -> int:
        """Number of classes, the clean class included."""
        return len(self.classes)

    # -- validation and (de)serialisation --------------------------------------------------------
    def validate(self, source: str = "model config") -> ModelConfig:
        """Check every field's range and their consistency.

        Args:
            source: The file the config comes from, for the message.

        Returns:
            The config itself.

        Raises:
            ModelError: A field is out of range or inconsistent with another, or the format
                version is newer than this SDK's; the message names ``source``.
        """

        def fail(msg: str) -> NoReturn:
            raise ModelError(f"{source}: invalid model config: {msg}")

        if self.format_version > FORMAT_VERSION:
            fail(
                f"format version {self.format_version} is newer than this SDK supports "
                f"({FORMAT_VERSION}); upgrade ipad-sdk"
            )
        if self.format_version < 1:
            fail(f"format_version {self.format_version} must be >= 1")
        vc = self.clip_config.get("vision_cfg") if isinstance(self.clip_config, dict) else None
        if not isinstance(vc, dict) or "embed_dim" not in self.clip_config:
            fail("clip_config needs 'embed_dim' and 'vision_cfg'")
        sizes = {"embed_dim": (self.clip_config["embed_dim"], MAX_WIDTH)} | {
            f"vision_cfg.{key}": (vc.get(key), limit)
            for key, limit in (("layers", MAX_LAYERS), ("width", MAX_WIDTH),
                               ("patch_size", MAX_IMAGE_SIZE))
        }  # fmt: skip
        for key, (value, limit) in sizes.items():
            if not _is_int(value) or not 0 < value <= limit:
                fail(f"clip_config.{key} must be an integer in 1..{limit}, got {_short(value)}")
        if not isinstance(self.clip_config.get("quick_gelu", False), bool):  # bundles need it
            fail(f"clip_config.quick_gelu must be true or false, got "
                 f"{_short(self.clip_config['quick_gelu'])}")  # fmt: skip
        stem = self.clip_config.get("stem", "patch")
        if stem not in ("patch", "conv"):
            fail(f"clip_config.stem must be 'patch' or 'conv', got {_short(stem)}")
        if not 0 < self.image_size <= MAX_IMAGE_SIZE or self.image_size % self.patch_size:
            fail(
                f"image_size {self.image_size} is not a multiple of patch size {self.patch_size} "
                f"in 1..{MAX_IMAGE_SIZE}"
            )
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
        """Convert the config to plain values.

        Returns:
            Every field, JSON-ready (tuples become lists when serialised).
        """
        return asdict(self)

    def to_json(self) -> str:
        """Serialise the config.

        Returns:
            The JSON string stored in model files (keys sorted).
        """
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> ModelConfig:
        """Build a config from parsed JSON, checking every field's type and range.

        Args:
            data: The config as a JSON object.
            source: The file it comes from, for the message.

        Returns:
            The validated config.

        Raises:
            ModelError: ``data`` is not an object, has unknown keys, misses a required one, or a
                value has the wrong type or range; the message names ``source`` and the field.
        """
        if not isinstance(data, dict):
            raise ModelError(f"{source}: model config is not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ModelError(
                f"{source}: unknown model config keys {unknown} (written by a newer ipad-sdk?)"
            )
        for key, value in data.items():
            check, expected = _FIELD_TYPES[key]
            if not check(value):
                raise ModelError(
                    f"{source}: invalid model config: {key} must be {expected}, got {_short(value)}"
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
        """Build a config from its JSON string (see `from_dict`).

        Args:
            text: The JSON string, at most ``MAX_METADATA_BYTES`` characters.
            source: The file it comes from, for the message.

        Returns:
            The validated config.

        Raises:
            ModelError: The text is not a string, too long, not JSON, or not a valid config.
        """
        if not isinstance(text, str) or len(text) > MAX_METADATA_BYTES:
            raise ModelError(
                f"{source}: {CONFIG_KEY} must be a JSON string of at most {MAX_METADATA_BYTES} "
                f"characters, got {type(text).__name__} {_short(text)}"
            )
        return cls.from_dict(parse_json(text, source, "model config"), source)

    def replace(self, **changes: Any) -> ModelConfig:
        """Copy the config with some fields changed.

        Args:
            **changes: New values of fields, by name.

        Returns:
            The validated copy.

        Raises:
            ModelError: The changed config is invalid.
        """
        data = self.to_dict()
        data.update(changes)
        return ModelConfig.from_dict(data)


def bundle_metadata(config: ModelConfig) -> dict[str, str]:
    """Build the safetensors ``__metadata__`` of a bundle.

    Args:
        config: The bundle's config.

    Returns:
        ``format`` and ``ipad_config`` entries.
    """
    return {FORMAT_KEY: FORMAT_NAME, CONFIG_KEY: config.to_json()}


def onnx_metadata(
    config: ModelConfig, precision: str, input_format: str, source_sha256: str
) -> dict[str, str]:
    """Build the ``metadata_props`` of an exported ONNX file.

    Args:
        config: The model's config.
        precision: ``fp32``, ``fp16`` or ``int8``.
        input_format: ``float`` or ``uint8``.
        source_sha256: SHA-256 of the source bundle.

    Returns:
        The bundle's keys plus the export's precision, input format, format version and the
            source's SHA-256, with format ``ipad-onnx``.

    Raises:
        ValueError: An unknown precision or input format.
    """
    meta = exported_metadata_fields(precision, input_format)
    return (
        bundle_metadata(config)
        | meta
        | {FORMAT_KEY: ONNX_FORMAT_NAME, "source_sha256": source_sha256}
    )


def exported_metadata_fields(precision: str, input_format: str) -> dict[str, str]:
    """Build the entries every exported file (ONNX, engine) adds beside the config.

    Args:
        precision: ``fp32``, ``fp16`` or ``int8``.
        input_format: ``float`` or ``uint8``.

    Returns:
        ``precision``, ``input_format`` and ``format_version``, as strings.

    Raises:
        ValueError: An unknown precision or input format.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}, got {input_format!r}")
    return {"precision": precision, "input_format": input_format,
            "format_version": str(FORMAT_VERSION)}  # fmt: skip


def read_exported_metadata(
    meta: dict[str, str], source: str, format_name: str
) -> tuple[ModelConfig, dict[str, str]]:
    """Check the metadata of an exported file.

    Args:
        meta: The file's metadata entries.
        source: The file, for the message.
        format_name: The expected format (``ipad-onnx`` or ``ipad-engine``).

    Returns:
        The validated config and the metadata entries.

    Raises:
        ModelError: A foreign file, a newer format, or an invalid entry; the message names
            ``source``.
    """
    if meta.get(FORMAT_KEY) != format_name or CONFIG_KEY not in meta:
        raise ModelError(
            f"{source}: not an ipad-sdk {format_name} file (metadata '{FORMAT_KEY}' is "
            f"{meta.get(FORMAT_KEY)!r}); export one with ipad export onnx"
        )
    version = meta.get("format_version", "")
    if not re.fullmatch("[0-9]{1,6}", version) or not 1 <= int(version) <= FORMAT_VERSION:
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
    """Locate an engine's metadata sidecar.

    Args:
        plan: Path of the TensorRT plan.

    Returns:
        ``<plan>.json``.
    """
    return os.fspath(plan) + ENGINE_SIDECAR_SUFFIX


def read_engine_metadata(plan: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any]]:
    """Read and check an engine's sidecar against its plan.

    The sidecar holds the ONNX file's keys (format ``ipad-engine``) plus a ``tensorrt`` object
    (flavour, version, target SM, profile, I/O, plan size and SHA-256).

    Args:
        plan: Path of the TensorRT plan.

    Returns:
        The validated config and the sidecar's entries.

    Raises:
        ModelError: A missing plan or sidecar, a foreign sidecar, or a plan whose size or hash
            differs from the sidecar's (truncated, corrupt, or rebuilt without its sidecar).
    """
    name, sidecar = os.fspath(plan), engine_sidecar_path(plan)
    check_regular_file(name, "engine file")
    if os.path.lexists(sidecar):
        check_regular_file(sidecar, "metadata sidecar")
    try:
        with open(sidecar, "rb") as fh:
            raw = fh.read(MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise ModelError(
            f"{name}: its metadata sidecar {sidecar} is missing; keep the .json written by "
            "ipad export trt beside the plan (or rebuild the engine)"
        ) from None
    except OSError as exc:
        raise ModelError(f"{sidecar}: unreadable engine metadata: {exc}") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise ModelError(f"{sidecar}: engine metadata larger than {MAX_METADATA_BYTES} bytes")
    meta = parse_json(raw, sidecar, "engine metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("tensorrt"), dict):
        raise ModelError(f"{sidecar}: not an ipad-sdk engine sidecar (no 'tensorrt' object)")
    flat = {k: v for k, v in meta.items() if isinstance(v, str)}
    config, _ = read_exported_metadata(flat, sidecar, ENGINE_FORMAT_NAME)
    info = meta["tensorrt"]
    if not _is_int(info.get("plan_bytes")) or info["plan_bytes"] < 0:
        raise ModelError(
            f"{sidecar}: tensorrt.plan_bytes must be an integer >= 0, "
            f"got {_short(info.get('plan_bytes'))}"
        )
    if not isinstance(info.get("plan_sha256"), str):
        raise ModelError(f"{sidecar}: tensorrt.plan_sha256 must be a string")
    size = os.path.getsize(name)
    if size != info.get("plan_bytes"):
        raise ModelError(
            f"{name}: the plan is {size} bytes but was built as {info.get('plan_bytes')} "
            "(truncated or replaced); rebuild the engine with ipad export trt"
        )
    if file_sha256(name) != info.get("plan_sha256"):
        raise ModelError(
            f"{name}: the plan's SHA-256 does not match its sidecar (corrupt or replaced); "
            "rebuild the engine with ipad export trt"
        )
    return config, meta


def read_safetensors_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse a safetensors header (8-byte little-endian length, then JSON) without safetensors.

    Hand-written on purpose: the format is a documented 8-byte length plus JSON, and reading it here
    keeps ``ipad info`` and config checks free of the torch/safetensors dependencies.

    Args:
        path: Path of the ``.safetensors`` file.

    Returns:
        The header as a JSON object (tensor entries and ``__metadata__``).

    Raises:
        ModelError: The file is missing, unreadable, too short, or has no valid header.
    """
    name = os.fspath(path)
    check_regular_file(name)
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
    except OSError as exc:  # removed or replaced since the check
        raise ModelError(f"{name}: cannot read model file: {exc.strerror or exc}") from None
    header = parse_json(raw, name, "safetensors header",
                        invalid="not a model bundle (safetensors header is not JSON)")  # fmt: skip
    if not isinstance(header, dict):
        raise ModelError(f"{name}: not a model bundle (safetensors header is not an object)")
    return header


def read_bundle_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read and validate the config stored in a bundle's header.

    Args:
        path: Path of the bundle (``.safetensors``).

    Returns:
        The validated config.

    Raises:
        ModelError: Not a bundle (foreign file, no config) or an invalid config.
    """
    name = os.fspath(path)
    meta = read_safetensors_header(name).get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelError(
            f"{name}: not a model bundle (safetensors __metadata__ must map names to strings, "
            f"got {_short(meta)})"
        )
    if meta.get(FORMAT_KEY) != FORMAT_NAME or CONFIG_KEY not in meta:
        raise ModelError(
            f"{name}: a safetensors file but not an ipad-sdk model bundle "
            f"(metadata '{FORMAT_KEY}' is {meta.get(FORMAT_KEY)!r}, expected {FORMAT_NAME!r})"
        )
    return ModelConfig.from_json(meta[CONFIG_KEY], source=name)


# -- writing a new config into a model file in place (thresholds set by `ipad calibrate`) --------


def write_bundle_config(path: str | os.PathLike[str], config: ModelConfig) -> None:
    """Replace the config in a bundle's safetensors header, atomically.

    The tensor bytes are copied unchanged. The header is padded with spaces to a multiple of 8
    bytes, as safetensors writes it (hand-written for the reason `read_safetensors_header` is).

    Args:
        path: Path of the bundle.
        config: The new config.

    Raises:
        ModelError: The file is not a valid bundle.
    """
    import shutil

    from .fileio import atomic_write

    name = os.fspath(path)
    header = read_safetensors_header(name)
    read_bundle_config(name)  # refuse anything but an ipad-sdk bundle
    header["__metadata__"] = header["__metadata__"] | {CONFIG_KEY: config.to_json()}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)

    def write(tmp: Any) -> None:
        with open(name, "rb") as src, open(tmp, "wb") as dst:
            (old_length,) = struct.unpack("<Q", src.read(8))
            src.seek(8 + old_length)
            dst.write(struct.pack("<Q", len(raw)) + raw)
            shutil.copyfileobj(src, dst, 1 << 22)

    atomic_write(Path(name), write)


def write_engine_config(plan: str | os.PathLike[str], config: ModelConfig) -> None:
    """Replace the config in an engine's sidecar, atomically.

    The plan is not touched (its size and SHA-256 in the sidecar still hold).

    Args:
        plan: Path of the TensorRT plan.
        config: The new config.

    Raises:
        ModelError: The plan or its sidecar is missing or invalid.
    """
    from .fileio import atomic_write_bytes

    _, meta = read_engine_metadata(plan)
    meta = meta | {CONFIG_KEY: config.to_json()}
    text = json.dumps(meta, indent=1, sort_keys=True).encode()
    atomic_write_bytes(Path(engine_sidecar_path(plan)), text)


def write_onnx_config(path: str | os.PathLike[str], config: ModelConfig) -> None:
    """Replace the config in an ONNX file's ``metadata_props``, atomically.

    External weight files are referenced as before, not rewritten.

    Args:
        path: Path of the ``.onnx`` file.
        config: The new config.

    Raises:
        BackendUnavailable: The ``onnx`` package is not installed.
        ModelError: The file is not a valid ipad ONNX export.
    """
    from .errors import BackendUnavailable
    from .fileio import atomic_write

    try:
        import onnx
    except ImportError:
        raise BackendUnavailable("writing .onnx metadata needs: pip install onnx") from None
    name = os.fspath(path)
    check_regular_file(name)
    try:
        proto = onnx.load(name, load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError types
        raise ModelError(f"{name}: not a readable ONNX file: {exc}") from None
    read_exported_metadata({e.key: e.value for e in proto.metadata_props}, name, ONNX_FORMAT_NAME)
    for entry in proto.metadata_props:
        if entry.key == CONFIG_KEY:
            entry.value = config.to_json()
    atomic_write(Path(name), lambda tmp: onnx.save(proto, os.fspath(tmp)))
