"""Triton Inference Server: the serving interface, a PyTriton server and a client.

Every ipad model served by Triton -- the repository written by ``export/triton_repo.py`` (model
``<name>_detect``: a Python-backend model in front of the ONNX/TensorRT network ``<name>``) and the
PyTriton server below -- takes encoded images and answers like ``ipad detect``:

* input ``image``: ``TYPE_STRING [B, 1]``, the bytes of an encoded image (any format Pillow reads);
* output ``result``: ``TYPE_STRING [B, 1]``, one JSON record per image (``label``,
  ``is_artifact``, ``artifact_score``, ``scores``, ``width``, ``height``, ``mask_fraction``), or
  ``error_type`` and ``error`` for an image that cannot be decoded;
* output ``mask_png``: ``TYPE_STRING [B, 1]``, the mask as a 0/255 PNG (empty for a bad image);
* optional request parameter ``sources`` (:data:`SOURCES`): a JSON list naming the request's
  images (their files); records and error messages then name them as ``ipad detect`` does.

A bad image is an error record for that item only: the request and the server go on. Both servers
run the SDK's own pipeline, :meth:`Detector.stream <ipad_sdk.Detector.stream>`: PyTriton on a
Detector of the model file, the repository's model on a Detector wrapping the network model
(:class:`NetworkBackend`, a BLS call), so decoding, tiling and error records are the SDK's.

Commands (in an environment with ``nvidia-pytriton``; see the README, "Scaling out: Triton"):
``ipad serve`` and ``ipad query``, also run as
``python -m ipad_sdk.integrations.triton serve|query`` with the same options
(:mod:`ipad_sdk.integrations.commands`)::

    ipad serve [--model M] [--http-port 8000] [--grpc-port 8001] [--max-batch 8]
        [--instances 1] [--threads N] [--host 127.0.0.1] [--tiling off]
    ipad query PATHS... [--url 127.0.0.1:8000] [--protocol http|grpc] [--out DIR]
        [--save-masks] [--batch-size 8]

``query`` writes ``results.jsonl`` and ``masks/`` like ``ipad detect --out`` (records name the
files; stdout without ``--out``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sysconfig
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ..arrays import ArrayOrTensor, to_host
from ..backends import run_chunked
from ..detector import Detector
from ..errors import InputError, ModelError
from ..io import DEFAULT_MAX_PIXELS, Named, load_image
from ..metadata import ENGINE_FORMAT_NAME, ONNX_FORMAT_NAME, ModelConfig, read_exported_metadata
from ..outputs import mask_png
from ..result import Failure, Result

INPUT = "image"
OUTPUTS = ("result", "mask_png")
DETECT_MODEL = "ipad_detect"
#: The request parameter that names a request's images: a JSON list of strings, one per image.
SOURCES = "sources"
#: The model's metadata beside the Python-backend model.py in a repository.
METADATA_FILE = "ipad_model.json"
#: How long Triton's dynamic batcher waits to fill a batch.
MAX_QUEUE_DELAY_US = 2000

Network = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


class NetworkBackend:
    """A :class:`~ipad_sdk.backends.Backend` whose network runs elsewhere: ``network`` takes a
    preprocessed ``[B,3,S,S]`` batch (``input_format``) and returns ``(class_probs, pixel_probs)``
    (the repository's model: a BLS call to the network model), at most ``max_batch`` images a
    call. The Detector around it decodes, preprocesses and tiles here."""

    name = "triton"
    device = "cpu"  # where the inputs are decoded and preprocessed

    def __init__(
        self, config: ModelConfig, input_format: str, network: Network,
        max_batch: int | None = None, precision: str = "unknown",
    ) -> None:  # fmt: skip
        self.config, self.input_format, self.precision = config, input_format, precision
        self.network, self.max_batch = network, max_batch

    def run(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        """``batch`` copied to the host (where the network call's tensors are made), in calls of
        at most ``max_batch`` images."""
        host = to_host(batch, np.uint8 if self.input_format == "uint8" else np.float32)
        return run_chunked(self.network, host, self.max_batch)

    def close(self) -> None:
        """Nothing to free: the network's server holds it."""


def network_detector(
    backend: NetworkBackend, max_batch: int, tiling: str = "off",
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Detector:  # fmt: skip
    """The Detector the repository's model runs: ``backend``, batches of ``max_batch``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-model warning
        return Detector(backend, batch_size=max_batch, tiling=tiling, max_pixels=max_pixels)


def detect_bytes(
    blobs: Sequence[bytes], config: ModelConfig, input_format: str, network: Network,
    max_batch: int, max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[Result | Failure]:  # fmt: skip
    """Results for encoded images through :meth:`Detector.stream <ipad_sdk.Detector.stream>` on
    ``network`` (see :class:`NetworkBackend`), ``max_batch`` at a time; a bad image is a
    :class:`Failure`, not an exception."""
    backend = NetworkBackend(config, input_format, network, max_batch)
    detector = network_detector(backend, max_batch, max_pixels=max_pixels)
    return list(detector.stream(blobs, workers=1))


def request_sources(parameters: Mapping[str, Any] | None, count: int) -> list[str | None]:
    """The names of a request's ``count`` images from its :data:`SOURCES` parameter (``None``
    each when it has none); a malformed one is an :class:`~ipad_sdk.errors.InputError`."""
    text = (parameters or {}).get(SOURCES)
    if text is None:
        return [None] * count
    try:
        names = json.loads(text)
    except (TypeError, ValueError):
        names = None
    if not (isinstance(names, list) and len(names) == count
            and all(isinstance(n, str) for n in names)):  # fmt: skip
        raise InputError(f"request parameter {SOURCES!r}: expected a JSON list of {count} names")
    return names


def detect_requests(
    detector: Detector, requests: Sequence[tuple[np.ndarray, Mapping[str, Any] | None]]
) -> list[dict[str, np.ndarray]]:
    """The output columns of each request (its ``image`` column and its parameters): the images
    of all requests go through one ``detector.stream``, named by their :data:`SOURCES`. A request
    whose parameters are malformed gets an error record per image; the others are unaffected."""
    inputs: list[Any] = []
    plan: list[tuple[int, InputError | None]] = []  # per request: its images, its own error
    for column, parameters in requests:
        blobs = [bytes(b) for b in column[:, 0]]
        try:
            names = request_sources(parameters, len(blobs))
        except InputError as exc:
            plan.append((len(blobs), exc))
            continue
        inputs += [b if n is None else Named(n, b) for b, n in zip(blobs, names, strict=True)]
        plan.append((len(blobs), None))
    items = iter(detector.stream(inputs, workers=1))
    return [
        encode(
            [Failure(None, error)] * size
            if error is not None
            else [next(items) for _ in range(size)]
        )
        for size, error in plan
    ]


def encode(items: Sequence[Result | Failure]) -> dict[str, np.ndarray]:
    """The ``result`` and ``mask_png`` output columns (``[B, 1]`` bytes) of ``items``."""
    records = [json.dumps(item.to_dict()).encode() for item in items]
    masks = [mask_png(item.mask) if item.ok else b"" for item in items]
    return {OUTPUTS[0]: bytes_column(records), OUTPUTS[1]: bytes_column(masks)}


def bytes_column(values: Sequence[bytes]) -> np.ndarray:
    """``[B, 1]`` object array of ``values`` (never numpy's ``S`` dtype: it drops trailing NULs)."""
    column = np.empty((len(values), 1), dtype=object)
    column[:, 0] = list(values)
    return column


def read_model_metadata(path: str | os.PathLike[str]) -> tuple[ModelConfig, str]:
    """Config and input format from a repository's :data:`METADATA_FILE`."""
    config, meta = _read_metadata(path)
    return config, meta["input_format"]


def repository_backend(
    path: str | os.PathLike[str], network: Network, max_batch: int
) -> NetworkBackend:
    """The :class:`NetworkBackend` of a repository's model: config, input format and precision
    from its :data:`METADATA_FILE`, ``network`` the call to the network model."""
    config, meta = _read_metadata(path)
    return NetworkBackend(config, meta["input_format"], network, max_batch,
                          meta.get("precision", "unknown"))  # fmt: skip


def _read_metadata(path: str | os.PathLike[str]) -> tuple[ModelConfig, dict[str, Any]]:
    name = os.fspath(path)
    try:
        meta = json.loads(Path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{name}: unreadable model metadata: {exc}") from None
    kind = meta.get("format") if isinstance(meta, dict) else None
    if kind not in (ONNX_FORMAT_NAME, ENGINE_FORMAT_NAME):
        raise ModelError(f"{name}: not ipad model metadata (format {kind!r})")
    return read_exported_metadata(meta, name, kind)


def python_library_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with this interpreter's libpython directory first on ``LD_LIBRARY_PATH``.

    Triton's Python-backend stub links ``libpython3.X`` dynamically; if the loader finds another
    patch release (a system copy) than the standard library in use, model loading fails with
    ``'_thread.RLock' object has no attribute '_recursion_count'``.
    """
    out = dict(env)
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and any(Path(libdir).glob("libpython3*.so*")):
        rest = env.get("LD_LIBRARY_PATH")
        out["LD_LIBRARY_PATH"] = f"{libdir}{os.pathsep}{rest}" if rest else libdir
    return out


# -- PyTriton server ------------------------------------------------------------------------------
def serve(
    model: str | None = None, *, host: str = "127.0.0.1", http_port: int = 8000,
    grpc_port: int = 8001, max_batch: int = 8, instances: int = 1, threads: int | None = None,
    device: str = "auto", name: str = DETECT_MODEL, tiling: str = "off",
) -> None:  # fmt: skip
    """Serve ``model`` (default: the embedded one) as ``name`` with PyTriton until SIGINT/SIGTERM:
    ``instances`` Detectors (with ``tiling``), Triton's dynamic batching up to ``max_batch``
    images."""
    import tempfile

    from pytriton.model_config import DynamicBatcher, Tensor
    from pytriton.model_config import ModelConfig as TritonModelConfig
    from pytriton.triton import Triton, TritonConfig

    os.environ.update(python_library_env(os.environ))  # the server inherits it
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly, as on Ctrl-C
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the untrained-model warning
        detectors = [Detector(model, device=device, batch_size=max_batch, tiling=tiling,
                              threads=threads) for _ in range(instances)]  # fmt: skip
    config = TritonConfig(http_address=host, http_port=http_port, grpc_address=host,
                          grpc_port=grpc_port, allow_metrics=False)  # fmt: skip
    with contextlib.ExitStack() as stack:  # the Detectors are closed, the workspace removed
        for detector in detectors:
            stack.enter_context(detector)
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="ipad-pytriton-"))
        triton = stack.enter_context(Triton(config=config, workspace=Path(tmp, "workspace")))
        triton.bind(
            model_name=name, infer_func=[_infer_function(d) for d in detectors],
            inputs=[Tensor(name=INPUT, dtype=bytes, shape=(1,))],
            outputs=[Tensor(name=n, dtype=bytes, shape=(1,)) for n in OUTPUTS],
            config=TritonModelConfig(max_batch_size=max_batch, batcher=DynamicBatcher(
                max_queue_delay_microseconds=MAX_QUEUE_DELAY_US)),
            strict=True,
        )  # fmt: skip
        print(f"serving {detectors[0].model_path} as {name!r}: http {host}:{http_port}, "
              f"grpc {host}:{grpc_port}", flush=True)  # fmt: skip
        triton.serve()


def _infer_function(detector: Detector) -> Callable[[list[Any]], list[dict[str, np.ndarray]]]:
    def run(requests: list[Any]) -> list[dict[str, np.ndarray]]:  # PyTriton's Request objects
        return detect_requests(detector, [(r[INPUT], r.parameters) for r in requests])

    return run


# -- client ---------------------------------------------------------------------------------------
def connect(url: str, protocol: str = "http") -> tuple[Any, Any]:
    """A tritonclient ``InferenceServerClient`` for ``url`` and its module (``http``/``grpc``)."""
    if protocol == "http":
        import tritonclient.http as module
    elif protocol == "grpc":
        import tritonclient.grpc as module
    else:
        raise ValueError(f"protocol must be 'http' or 'grpc', got {protocol!r}")
    return module.InferenceServerClient(url), module


def infer(
    client: Any, module: Any, blobs: Sequence[bytes], model: str = DETECT_MODEL,
    sources: Sequence[str] | None = None,
) -> list[tuple[dict[str, Any], bytes]]:  # fmt: skip
    """One request with ``blobs`` (encoded images), named ``sources`` when given: ``(record,
    mask PNG)`` per image."""
    request = module.InferInput(INPUT, [len(blobs), 1], "BYTES")
    request.set_data_from_numpy(bytes_column(blobs))
    outputs = [module.InferRequestedOutput(n) for n in OUTPUTS]
    parameters = {SOURCES: json.dumps(list(sources))} if sources is not None else None
    response = client.infer(model, [request], outputs=outputs, parameters=parameters)
    records, masks = (response.as_numpy(n)[:, 0] for n in OUTPUTS)
    return [(json.loads(r), bytes(m)) for r, m in zip(records, masks, strict=True)]


def query(
    files: Sequence[Path], url: str, protocol: str = "http", model: str = DETECT_MODEL,
    batch_size: int = 8,
) -> list[tuple[dict[str, Any], bytes]]:  # fmt: skip
    """``(record, mask PNG)`` per file from the server, ``batch_size`` files a request; records
    name their file like ``ipad detect``'s (the request names its images: :data:`SOURCES`)."""
    client, module = connect(url, protocol)
    out: list[tuple[dict[str, Any], bytes]] = []
    try:
        for start in range(0, len(files), batch_size):
            chunk = [Path(f) for f in files[start : start + batch_size]]
            read = [_read(path) for path in chunk]
            sent = [(str(path), item) for path, item in zip(chunk, read, strict=True)
                    if isinstance(item, bytes)]  # fmt: skip
            answers = iter(infer(client, module, [b for _, b in sent], model,
                                 [n for n, _ in sent]) if sent else [])  # fmt: skip
            out += [(item.to_dict(), b"") if isinstance(item, Failure) else next(answers)
                    for item in read]  # fmt: skip
    finally:
        client.close()
    return out


def _read(path: Path) -> bytes | Failure:
    """The file's bytes, or the SDK's own error for a missing, unreadable or empty file."""
    try:
        blob = path.read_bytes()
    except OSError:
        blob = b""
    if not blob:
        try:
            load_image(path)  # raises the message ``ipad detect`` gives, naming the file
        except InputError as exc:
            return Failure(str(path), exc)
    return blob


def write_query_outputs(
    answers: Sequence[tuple[dict[str, Any], bytes]], files: Sequence[Path], out: Path | None,
    save_masks: bool,
) -> None:  # fmt: skip
    """Write :func:`query`'s answers like ``ipad detect --out`` (records to stdout without
    ``out``)."""
    from ..outputs import output_keys, write_output, write_records

    records = []
    for (record, mask), key in zip(answers, output_keys(files), strict=True):
        if out is not None and save_masks and mask:
            record |= write_output(out, "mask", key, partial(bytes, mask))
        records.append(record)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    write_records(out / "results.jsonl" if out is not None else None, records, "jsonl", [])


def main(argv: list[str] | None = None) -> int:
    """``python -m ipad_sdk.integrations.triton serve|query``: ``ipad serve`` and ``ipad query``
    (the same options)."""
    from .commands import (
        add_query_arguments,
        add_serve_arguments,
        module_main,
        run_query,
        run_serve,
    )

    return module_main("ipad on Triton Inference Server", {
        "serve": ("serve a model with PyTriton (until SIGINT/SIGTERM)", add_serve_arguments,
                  run_serve),
        "query": ("detect on files through a running server", add_query_arguments, run_query),
    }, argv)  # fmt: skip


__all__ = ["DETECT_MODEL", "INPUT", "OUTPUTS", "SOURCES", "NetworkBackend", "detect_bytes",
           "detect_requests", "encode", "infer", "query", "repository_backend",
           "serve", "write_query_outputs"]  # fmt: skip

if __name__ == "__main__":
    raise SystemExit(main())
