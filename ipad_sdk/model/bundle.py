"""The model bundle: one ``.safetensors`` file with every inference weight (backbone, adapters,
projectors, anchors) and the :class:`~ipad_sdk.metadata.ModelConfig` in its metadata.

Loading never unpickles anything; a missing, corrupt, foreign or mismatched file raises
:class:`~ipad_sdk.errors.ModelError` naming the file.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import torch

from ..errors import ModelError
from ..fileio import atomic_write
from ..metadata import ModelConfig, bundle_metadata, read_bundle_config
from .backbone import vision_tower_from_config
from .network import IpadClip


def save_bundle(
    model: IpadClip, path: str | os.PathLike[str], config: ModelConfig | None = None
) -> Path:
    """Write ``model`` (and ``config``, default ``model.config``) atomically to ``path``."""
    from safetensors.torch import save_file

    config = (config or model.config).validate()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}

    def write(tmp: Path) -> None:
        mode = tmp.stat().st_mode  # the umask permissions; save_file recreates the file as 0600
        save_file(tensors, str(tmp), metadata=bundle_metadata(config))
        _sort_header_keys(tmp)
        os.chmod(tmp, mode)

    return atomic_write(Path(path), write)


def _sort_header_keys(path: Path) -> None:
    """Rewrite the safetensors header JSON with sorted keys, in place and at the same length.

    safetensors keeps ``__metadata__`` in a hash map whose order changes from run to run; sorted
    keys make the same model give byte-identical bundles (and the same sha256).
    """
    with open(path, "r+b") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(length))
        canonical = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(canonical) <= length:
            fh.seek(8)
            fh.write(canonical + b" " * (length - len(canonical)))


def load_bundle(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> IpadClip:
    """Load a bundle written by :func:`save_bundle` into an eval-mode :class:`IpadClip`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    name = os.fspath(path)
    config = read_bundle_config(name)
    try:
        tensors = load_file(name, device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"{name}: corrupt model bundle: {exc}") from None
    # Build on the meta device (no random init of hundreds of millions of weights), then take the
    # stored tensors as they are.
    with torch.device("meta"):
        try:
            tower = vision_tower_from_config(config.clip_config)
        except (TypeError, ValueError, KeyError, AssertionError) as exc:  # open_clip's own checks
            detail = f"no {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
            raise ModelError(
                f"{name}: invalid clip_config, open_clip cannot build it: {detail}"
            ) from None
        model = IpadClip(tower, config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [
        f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if items:
                more = ", ..." if len(items) > 3 else ""
                parts.append(f"{len(items)} {label} ({', '.join(items[:3])}{more})")
        raise ModelError(f"{name}: weights do not match its config: {'; '.join(parts)}")
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        more = ", ..." if len(bad) > 3 else ""
        raise ModelError(
            f"{name}: corrupt model bundle: non-finite (NaN/Inf) weights in {len(bad)} tensor(s) "
            f"({', '.join(sorted(bad)[:3])}{more})"
        )
    tensors = {k: v.to(expected[k].dtype) for k, v in tensors.items()}
    model.load_state_dict(tensors, strict=True, assign=True)
    _check_nothing_on_meta(model)
    return model.to(device).eval()


def _check_nothing_on_meta(model: IpadClip) -> None:
    """Non-persistent buffers are not in the file; none may stay on the meta device."""
    for module in model.modules():
        for key, buf in list(module._buffers.items()):
            if buf is not None and buf.is_meta:
                owner = type(module).__name__
                raise ModelError(f"bundle loader: buffer {key} of {owner} was not restored")
