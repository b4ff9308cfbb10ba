"""Export an IPAD-CLIP bundle to ONNX with the text anchors folded in as a constant.

    ipad export onnx BUNDLE --out DIR [--fp16] [--int8] [--uint8-input]
        [--opset 17] [--batch dynamic|N] [--verify-images DIR]

(``python export/export_onnx.py`` in a checkout takes the same options.) Needs the ``export``
extra (torch, onnx, onnxruntime, onnxslim), imported only when an export runs.

The graph is the vision tower + adapters + projectors + cosine head; the text encoder never runs at
inference (its output is the ``anchors`` initializer). Input ``images``: ``[B,3,S,S]`` float32,
already normalised by the SDK's shared preprocessing, or with ``--uint8-input`` ``[B,3,S,S]`` uint8
(resized RGB, normalised inside the graph). Outputs: ``class_probs [B,K+1]`` and
``pixel_probs [B,K+1,S,S]`` (the per-patch softmax over the anchors, bilinearly upsampled) -- the
same two tensors as the PyTorch backend, so one result builder serves every backend.

Attention is exported as plain MatMul/Softmax (no fused MHA op) and positional embeddings are fixed
at the bundle's size, so the graph is static in H and W with a dynamic (or fixed) batch. ``--fp16``
writes an FP16 graph for strongly typed TensorRT: weights, convolutions and matmuls in FP16;
LayerNorm, the attention Softmax, the L2 normalisation and the cosine head in FP32 with explicit
Casts. ``--int8`` adds an ONNX Runtime dynamic-quantised (INT8 weights) copy for CPU users.

Every file is checked (``onnx.checker`` full check, no text-encoder ops, every op in the
onnx-tensorrt support list kept in ``onnx_tensorrt_ops.json`` beside this module) and verified
against the FP32 PyTorch model on random and real inputs; the numbers are printed and written to
``DIR/<name>.verify.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..discover import discover
from ..fileio import atomic_write_bytes, check_regular_file, file_sha256, temp_path_beside
from ..io import load_image
from ..metadata import INPUT_NAME, OUTPUT_NAMES, ModelConfig, onnx_metadata
from ..preprocess import preprocess_batch, resize_rgb

SUPPORTED_OPS_FILE = Path(__file__).with_name("onnx_tensorrt_ops.json")
#: Acceptance limits of the export check: max |d prob| against the FP32 PyTorch model.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8": None}  # INT8: measured and reported only


def export_onnx(
    bundle: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    fp16: bool = False,
    uint8_input: bool = False,
    opset: int = 17,
    batch: int | None = None,
    simplify: bool = True,
) -> Path:
    """Write ``bundle`` as an ONNX file at ``out`` (atomically); ``batch=None`` is dynamic;
    ``simplify`` runs onnxslim over the traced graph."""
    check_regular_file(bundle)  # before the seconds of importing torch
    import onnx
    import torch

    from ..model import load_bundle
    from ..model.mixed_precision import InferenceGraph

    if opset < 17:
        raise ValueError(f"opset must be >= 17 (one LayerNormalization op), got {opset}")
    model = load_bundle(bundle, "cpu")
    config = model.config
    graph = InferenceGraph(model, fp16=fp16, uint8_input=uint8_input).eval()
    size = config.image_size
    dtype = torch.uint8 if uint8_input else torch.float32
    example = torch.zeros(batch or 2, 3, size, size, dtype=dtype)
    dynamic = (
        None if batch else {INPUT_NAME: {0: "batch"}} | {n: {0: "batch"} for n in OUTPUT_NAMES}
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_beside(out)
    try:
        with torch.no_grad(), _fastpath_disabled(), warnings.catch_warnings():
            # the TorchScript exporter is deprecated in favour of dynamo, which writes external
            # weight files and decomposes LayerNorm differently; it is the measured, simple path
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                graph, (example,), str(tmp), input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic, opset_version=opset,
                do_constant_folding=True, dynamo=False,
            )  # fmt: skip
        proto = onnx.load(str(tmp))
        if simplify:  # constant folding, shape-op elimination, dead-node removal
            import onnxslim

            proto = onnxslim.slim(proto)
        meta = onnx_metadata(
            config, precision="fp16" if fp16 else "fp32",
            input_format="uint8" if uint8_input else "float", source_sha256=file_sha256(bundle),
        )  # fmt: skip
        _set_metadata(proto, meta)
        proto.producer_name = "ipad-sdk export/export_onnx.py"
        onnx.checker.check_model(proto, full_check=True)
        atomic_write_bytes(out, proto.SerializeToString())
    finally:
        tmp.unlink(missing_ok=True)
    return out


class _fastpath_disabled:
    """Keep PyTorch's fused MHA fast path off while tracing (the exporter cannot export it)."""

    def __enter__(self) -> None:
        import torch

        self.before = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.backends.mha.set_fastpath_enabled(self.before)


def _set_metadata(proto: Any, meta: dict[str, str]) -> None:
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def quantize_int8(fp32_onnx: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """ONNX Runtime dynamic quantisation (INT8 MatMul weights) of an FP32 export, for CPUs."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = Path(out)
    tmp = temp_path_beside(out)
    try:
        quantize_dynamic(str(fp32_onnx), str(tmp), weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul"])  # fmt: skip
        proto = onnx.load(str(tmp))
        meta = {e.key: e.value for e in onnx.load(str(fp32_onnx)).metadata_props}
        _set_metadata(proto, meta | {"precision": "int8"})
        onnx.checker.check_model(proto, full_check=True)
        atomic_write_bytes(out, proto.SerializeToString())
    finally:
        tmp.unlink(missing_ok=True)
    return out


# -- checks ---------------------------------------------------------------------------------------
def supported_ops() -> frozenset[str]:
    """ONNX ops the onnx-tensorrt parser supports (``onnx_tensorrt_ops.json``)."""
    return frozenset(json.loads(SUPPORTED_OPS_FILE.read_text())["supported"])


def graph_ops(proto: Any) -> set[str]:
    """Op types used by a model (main graph; this exporter writes no subgraphs or functions)."""
    return {node.op_type for node in proto.graph.node}


def unsupported_ops(proto: Any) -> list[str]:
    """Ops of ``proto`` that TensorRT's ONNX parser cannot take (empty when all are fine)."""
    return sorted(graph_ops(proto) - supported_ops())


def text_encoder_traces(proto: Any, config: ModelConfig) -> list[str]:
    """Signs that text-encoder computation leaked into the graph: the token-embedding table
    (``[vocab, width]``), the text positional embedding, or an ArgMax (end-of-text pooling)."""
    text = config.clip_config.get("text_cfg", {})
    vocab, context = text.get("vocab_size", 49408), text.get("context_length", 77)
    found = [f"op {op}" for op in ("ArgMax",) if op in graph_ops(proto)]
    for init in proto.graph.initializer:
        if vocab in init.dims or (len(init.dims) == 2 and init.dims[0] == context):
            found.append(f"initializer {init.name} {list(init.dims)}")
    return found


# -- verification ---------------------------------------------------------------------------------
def verification_inputs(
    config: ModelConfig,
    images: Sequence[str | os.PathLike[str]] = (),
    n_random: int = 2,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Resized uint8 RGB batch ``[B,S,S,3]`` (random noise + the given photos) and its labels
    ``"random"``/path, for comparing an export with the PyTorch model."""
    rng = np.random.default_rng(seed)
    size = config.image_size
    rgbs = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n_random)]
    rgbs += [resize_rgb(load_image(p), size) for p in images]
    names = ["random"] * n_random + [os.fspath(p) for p in images]
    return np.stack(rgbs), np.asarray(names)


def compare_with_torch(
    bundle: str | os.PathLike[str], onnx_path: str | os.PathLike[str], rgbs: np.ndarray
) -> dict[str, Any]:
    """Run the bundle (PyTorch FP32, CPU) and the ONNX file (ONNX Runtime CPU) on the same images;
    max |d prob| of both outputs, and whether the image argmax and the labels agree."""
    import torch

    from ..backends.onnx_backend import OnnxBackend
    from ..model import load_bundle

    model = load_bundle(bundle, "cpu")
    floats = preprocess_batch(list(rgbs), model.config)
    with torch.inference_mode():
        ref_cls, ref_pix = (t.numpy() for t in model(torch.from_numpy(floats)))
    backend = OnnxBackend(onnx_path, device="cpu", providers=["CPUExecutionProvider"])
    got_cls, got_pix = backend.run(preprocess_batch(list(rgbs), model.config, backend.input_format))
    return {
        "images": len(rgbs),
        "max_abs_class_prob": float(np.abs(got_cls - ref_cls).max()),
        "max_abs_pixel_prob": float(np.abs(got_pix - ref_pix).max()),
        "argmax_agree": int((got_cls.argmax(1) == ref_cls.argmax(1)).sum()),
        "artifact_map_max_abs": float(np.abs(got_pix[:, 0] - ref_pix[:, 0]).max()),
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ipad export onnx`` and ``python export/export_onnx.py``."""
    parser.add_argument("bundle", help="model bundle (.safetensors)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--fp16", action="store_true", help="also write the FP16 graph")
    parser.add_argument("--int8", action="store_true", help="also write an INT8 (dynamic) graph")
    parser.add_argument("--uint8-input", action="store_true",
                        help="uint8 [B,3,S,S] input, normalisation inside the graph")  # fmt: skip
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17")
    parser.add_argument("--batch", default="dynamic", type=_batch_option,
                        help="'dynamic' or a fixed batch size")  # fmt: skip
    parser.add_argument("--verify-images", help="folder of photos for the parity check")


def _batch_option(text: str) -> int | None:
    """The argparse type of ``--batch``: None for ``dynamic``, else a positive integer."""
    if text == "dynamic":
        return None
    if not (text.isdigit() and int(text) > 0):
        raise argparse.ArgumentTypeError(f"must be 'dynamic' or a positive integer, got {text!r}")
    return int(text)


def run(args: argparse.Namespace) -> int:
    """Export, quantise and verify as ``args`` (of :func:`add_arguments`) say; 0 when every file
    passed its check, else 1."""
    batch = args.batch
    out, stem = Path(args.out), Path(args.bundle).stem
    suffix = ".u8" if args.uint8_input else ""
    jobs = [("fp32", out / f"{stem}{suffix}.onnx")]
    if args.fp16:
        jobs.append(("fp16", out / f"{stem}{suffix}.fp16.onnx"))
    photos = discover([args.verify_images])[:8] if args.verify_images else []
    report: dict[str, Any] = {}
    ok = True
    import onnx

    for precision, path in jobs:
        export_onnx(args.bundle, path, fp16=precision == "fp16", uint8_input=args.uint8_input,
                    opset=args.opset, batch=batch)  # fmt: skip
    if args.int8:
        jobs.append(("int8", quantize_int8(jobs[0][1], out / f"{stem}{suffix}.int8.onnx")))
    for precision, path in jobs:
        proto = onnx.load(str(path), load_external_data=False)
        config = ModelConfig.from_json(
            {e.key: e.value for e in proto.metadata_props}["ipad_config"]
        )
        rgbs, _ = verification_inputs(config, photos)
        if batch:
            rgbs = np.concatenate([rgbs] * batch)[:batch]
        result = compare_with_torch(args.bundle, path, rgbs) | {
            "file": str(path), "bytes": path.stat().st_size,
            "unsupported_ops": unsupported_ops(proto) if precision != "int8" else None,
            "text_encoder_traces": text_encoder_traces(proto, config),
        }  # fmt: skip
        limit = TOLERANCE[precision]
        passed = (
            limit is None
            or (max(result["max_abs_class_prob"], result["max_abs_pixel_prob"]) <= limit
                and result["argmax_agree"] == result["images"])
        ) and not result["text_encoder_traces"] and not result["unsupported_ops"]  # fmt: skip
        result["passed"] = passed
        ok &= passed
        report[precision] = result
        print(
            f"{precision}: {path} ({result['bytes'] / 2**20:.1f} MiB) "
            f"max|d class prob| {result['max_abs_class_prob']:.2e}, "
            f"max|d pixel prob| {result['max_abs_pixel_prob']:.2e}, "
            f"argmax {result['argmax_agree']}/{result['images']}, limit {limit} -> "
            f"{'ok' if passed else 'FAILED'}"
        )
    atomic_write_bytes(out / f"{stem}{suffix}.verify.json", json.dumps(report, indent=1).encode())
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """``python export/export_onnx.py``: the options of :func:`add_arguments`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))
