"""Detector: the one pipeline from inputs to `Result`s, on any backend.

Every front end (the SDK calls, ``ipad detect``, Ray, PyTriton, the Triton repository model) runs
`Detector.stream` (or the methods built on it): decode and preprocess ahead in threads, batch, run
the `Backend`, tile, and turn outputs into results, a bad input into a `Failure` naming it. The
backend is opened from a model file (`ipad_sdk.backends` chooses the runtime) or is one the caller
made (e.g. a call to a network served elsewhere).
"""

from __future__ import annotations

import enum
import numbers
import os
import time
import warnings
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .arrays import ArrayOrTensor
from .backends import Backend, batch_chunks, open_backend
from .errors import BackendUnavailable, InputError, ModelError
from .io import DEFAULT_MAX_PIXELS, ImageInput, Named, describe, is_torch_tensor, load_pixels
from .metadata import ModelConfig
from .preprocess import preprocess_batch, resize_to
from .result import Failure, Result
from .thresholds import Thresholds
from .tiling import TileLayout, TilingSpec, blend, combine_scores, plan_tiles

if TYPE_CHECKING:
    import torch


class _End(enum.Enum):
    END = enum.auto()


_END = _End.END  # end-of-input marker of Detector.stream

DEFAULT_MODEL_NAME = "ipad-default.safetensors"
DEFAULT_ONNX_NAME = "ipad-default.onnx"  # the same model exported; its metadata says the precision


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def default_model_path(weights: Path | None = None) -> Path:
    """The embedded default model's file.

    Args:
        weights: Folder to look in; default the package's ``weights/`` folder.

    Returns:
        The bundle where PyTorch is installed, else its ONNX export where ONNX Runtime is (so
        ``pip install 'ipad-sdk[onnx]'`` works without torch).

    Raises:
        ModelError: The build ships no embedded model.
        BackendUnavailable: Neither PyTorch nor ONNX Runtime is installed.
    """
    weights = weights if weights is not None else Path(__file__).parent / "weights"
    bundle, onnx = weights / DEFAULT_MODEL_NAME, weights / DEFAULT_ONNX_NAME
    if not bundle.exists() and not onnx.exists():
        raise ModelError(
            f"{bundle}: this ipad-sdk build ships no embedded default model; pass a model "
            "file (`ipad create-bundle model.safetensors` writes an untrained one)"
        )
    if bundle.exists() and _installed("torch"):
        return bundle
    if onnx.exists() and _installed("onnxruntime"):
        return onnx
    raise BackendUnavailable(
        "the embedded default model needs a runtime: pip install 'ipad-sdk[onnx]' (ONNX Runtime, "
        "small) or 'ipad-sdk[torch]' (PyTorch)"
    )


@dataclass(frozen=True)
class _Prepared:
    """One decoded input ready for the model: its whole-image network input, and when it is tiled,
    the image at the working resolution with its tile layout."""

    network_input: ArrayOrTensor  # [3, S, S]: numpy, or a torch tensor on the GPU
    image_size: tuple[int, int]
    source: str | None
    # the image at layout.working_size: HxWx3 uint8, or 3xHxW on the GPU
    working: ArrayOrTensor | None = None
    layout: TileLayout | None = None
    decode_ms: float = 0.0
    preprocess_ms: float = 0.0


def _check_batch_size(batch_size: int) -> int:
    """``batch_size``, refused below 1 (a bool is not a size)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return int(batch_size)


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class Detector:
    """Image perceptual artifact detector: one pipeline (decode, preprocess, batch, backend,
    results) over any backend.

    Example:
        ```python
        with Detector("model.safetensors") as det:
            det.detect("photo.jpg").label  # e.g. "flare"
        ```

    A ``.safetensors`` bundle runs on PyTorch, an ``.onnx`` export on ONNX Runtime, a
    ``.plan``/``.engine`` on TensorRT. `close()` (or a ``with`` block) frees what the backend
    holds (GPU memory, sessions).

    Args:
        model: Model file (default: the embedded default model), or a `Backend` instance
            (anything with ``run``, ``config``, ``name``, ``device``, ``input_format`` and
            ``precision``, e.g. a Triton network model): the Detector then runs its pipeline on
            it, and the options that open a file (``device``, ``providers``, ``threads``,
            ``backend``, ``precision``, ``compile``) must stay at their defaults.
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:N]"``.
        batch_size: Images per network call.
        max_pixels: Larger images are refused as possible decompression bombs.
        providers: ONNX Runtime execution providers (``.onnx`` models).
        threads: ONNX Runtime intra-op threads (``.onnx`` models).
        backend: ``"auto"`` picks by file type; naming one (``"torch"``, ``"onnx"``,
            ``"tensorrt"``) checks it.
        precision: ``"auto"``, or the precision the backend must run at.
        tiling: ``"off"``, ``"auto"``, a spec string such as ``"scale=0.5,overlap=0.25"`` or a
            `TilingSpec`: native-resolution tiles for the map of large photos
            (`ipad_sdk.tiling`).
        compile: PyTorch bundles: run the network through ``torch.compile`` for the fixed
            ``batch_size``, with CUDA-graph capture on a GPU (``mode="reduce-overhead"``); the
            first batch pays the compilation.
        image_threshold: Replaces the model's threshold on ``artifact_score``.
        pixel_threshold: Replaces the model's threshold on the heatmap.
        class_thresholds: Artifact class -> threshold on its probability (`Thresholds`).
            Every result carries the thresholds it used.

    Raises:
        ValueError: A bad option (``batch_size < 1``, file options beside a `Backend`).
        ModelError: A missing, corrupt or incompatible model file.
        BackendUnavailable: The runtime the model needs is not installed.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Backend | None = None,
        device: str = "auto",
        batch_size: int = 8,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        backend: str = "auto",
        precision: str = "auto",
        tiling: str | TilingSpec | None = "off",
        compile: bool = False,
        image_threshold: float | None = None,
        pixel_threshold: float | None = None,
        class_thresholds: Mapping[str, float] | None = None,
    ) -> None:
        _check_batch_size(batch_size)
        if model is not None and not isinstance(model, (str, os.PathLike)):
            opened = {"device": device != "auto", "providers": providers is not None,
                      "threads": threads is not None, "backend": backend != "auto",
                      "precision": precision != "auto", "compile": compile}  # fmt: skip
            if any(opened.values()):
                given = ", ".join(k for k, v in opened.items() if v)
                raise ValueError(f"{given}: these open a model file; a Backend instance carries "
                                 "its own")  # fmt: skip
            self.backend: Backend = model
            self.model_path = getattr(model, "path", None) or f"<{model.name} backend>"
        else:
            self.model_path = os.fspath(model if model is not None else default_model_path())
            self.backend = open_backend(
                self.model_path,
                device,
                providers,
                threads,
                backend,
                precision,
                compile_batch=batch_size if compile else None,
            )
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.tiling = TilingSpec.parse(tiling)
        self.thresholds = Thresholds.resolve(
            self.config, image_threshold, pixel_threshold, class_thresholds
        )
        if not self.config.trained:
            warnings.warn(
                f"{self.model_path}: untrained model "
                f"({self.config.description or 'no description'}); its scores and masks mean "
                "nothing yet",
                stacklevel=2,
            )

    @property
    def config(self) -> ModelConfig:
        """The model's metadata (classes, input size, thresholds, versions)."""
        return self.backend.config

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names, ``"clean"`` first."""
        return self.config.classes

    @property
    def device(self) -> str:
        """Where the backend runs, e.g. ``"cpu"`` or ``"cuda:0"``."""
        return self.backend.device

    def close(self) -> None:
        """Free what the backend holds (GPU memory, runtime sessions).

        The Detector cannot run afterwards; closing twice is harmless.
        """
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Detector({self.model_path!r}, backend={self.backend.name!r}, "
            f"device={self.device!r}, backbone={self.config.backbone!r}, "
            f"image_size={self.config.image_size})"
        )

    def detect(
        self, image: ImageInput, pixel_format: str | None = None,
        size: tuple[int, int] | None = None, matrix: str = "bt601", yuv_range: str = "limited",
    ) -> Result:  # fmt: skip
        """Detect artifacts in one image or raw YUV frame.

        A tensor on the PyTorch backend's GPU is converted and preprocessed there
        (`ipad_sdk.device_preprocess`).

        Args:
            image: A path, bytes, PIL image, numpy array, torch tensor, DLPack array or `Named`
                input; with ``pixel_format``, a uint8 YUV buffer (numpy, torch or DLPack).
            pixel_format: ``"nv12"``, ``"i420"`` or ``"yuyv"`` for a raw YUV frame.
            size: ``(width, height)`` of a YUV frame.
            matrix: ``"bt601"`` or ``"bt709"`` (YUV frames; see `ipad_sdk.yuv`).
            yuv_range: ``"limited"`` or ``"full"`` (YUV frames).

        Returns:
            The image's `Result`.

        Raises:
            InputError: A bad input (missing, not an image, truncated, too large, NaN, wrong
                shape or dtype), named in the message.
        """
        if pixel_format is not None:
            if size is None:
                raise InputError(f"{describe(image)}: a {pixel_format} frame needs size=(w, h)")
            rgb = self._yuv_to_rgb(image, pixel_format, size, matrix, yuv_range)
            image = Named(image.source, rgb) if isinstance(image, Named) else rgb
        return self.detect_batch([image], batch_size=1)[0]

    def detect_batch(
        self, images: Iterable[ImageInput], batch_size: int | None = None
    ) -> list[Result]:
        """Detect artifacts in many images, ``batch_size`` at a time.

        Args:
            images: Inputs as for `detect`.
            batch_size: Images per network call (default: the detector's).

        Returns:
            The results, in input order.

        Raises:
            InputError: The first bad input, named (`stream` skips bad inputs instead).
            ValueError: ``batch_size < 1``.
        """
        return list(self.iter_detect(images, batch_size))

    def iter_detect(
        self, images: Iterable[ImageInput], batch_size: int | None = None
    ) -> Iterator[Result]:
        """Like `detect_batch`, but yields results as batches finish.

        Memory is bounded: each image is decoded, preprocessed to the network size and dropped
        before the next is read, so a batch holds ``batch_size`` network inputs plus at most one
        decoded image (itself capped by ``max_pixels``), whatever the input sizes.

        Args:
            images: Inputs as for `detect`.
            batch_size: Images per network call (default: the detector's).

        Yields:
            Each input's `Result`, in input order.

        Raises:
            InputError: The first bad input, named. If ``images`` itself raises, the results of
                every item read before are yielded first, then its exception propagates.
            ValueError: ``batch_size < 1``.
        """
        size = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        chunk: list[_Prepared] = []
        items = iter(images)
        while True:
            try:
                image = next(items)
            except StopIteration:
                break
            except Exception:  # the caller's iterable failed: finish what it gave, then raise
                if chunk:
                    yield from self._run(chunk)
                raise
            prepared = self._prepare(image)
            if isinstance(prepared, Failure):
                raise prepared.error
            chunk.append(prepared)
            if len(chunk) == size:
                yield from self._run(chunk)
                chunk = []
        if chunk:
            yield from self._run(chunk)

    def stream(
        self, images: Iterable[ImageInput], batch_size: int | None = None, workers: int = 2
    ) -> Iterator[Result | Failure]:
        """Detect on an iterable of inputs for imaging pipelines; bad inputs do not stop it.

        ``workers`` threads decode and preprocess ahead while the model runs. Results and
        failures are named by their input's ``source``: a path's own, or the name of a `Named`
        input (encoded bytes of a file, a video frame), which also starts the error's message.
        Memory is bounded: at most ``2 * batch_size + workers`` inputs are in flight.

        Args:
            images: Inputs as for `detect`.
            batch_size: Images per network call (default: the detector's).
            workers: Decode threads.

        Yields:
            A `Result` per input in input order, or a `Failure` (``.ok`` False, its
            `InputError` attached) for a bad one.

        Raises:
            ValueError: ``workers < 1`` or ``batch_size < 1``.
            Exception: Whatever ``images`` itself raises, after the results of every item read
                before it.
        """
        from concurrent.futures import ThreadPoolExecutor

        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        size = self.batch_size if batch_size is None else _check_batch_size(batch_size)
        items = iter(images)
        error: Exception | None = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ipad-decode") as pool:
            pending: deque = deque()
            window = 2 * size + workers
            while True:
                while error is None and len(pending) < window:
                    try:
                        item = next(items, _END)
                    except Exception as exc:  # the caller's iterable failed: finish what it gave
                        error = exc
                        break
                    if item is _END:
                        break
                    pending.append(pool.submit(self._prepare, item))
                if not pending:
                    if error is not None:
                        raise error
                    return
                chunk = [pending.popleft().result() for _ in range(min(size, len(pending)))]
                yield from self._run_with_failures(chunk)

    def _device_image(self, image: ImageInput) -> torch.Tensor | None:
        """``image`` as a torch tensor when it is a tensor (or DLPack) on the PyTorch backend's
        CUDA device: it is then preprocessed there, with no host copy. Else ``None``."""
        if self.backend.name != "torch" or not self.device.startswith("cuda"):
            return None
        if isinstance(image, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray)):
            return None
        if not (is_torch_tensor(image) or hasattr(image, "__dlpack__")):
            return None
        import torch

        from .device_preprocess import as_tensor

        try:
            tensor = as_tensor(image)
        except (BufferError, RuntimeError, TypeError, ValueError):
            return None  # the host path reports what is wrong with it
        want = torch.device(self.device)
        index = torch.cuda.current_device() if want.index is None else want.index
        return tensor if tensor.is_cuda and tensor.device.index == index else None

    def _yuv_to_rgb(
        self, image: Any, pixel_format: str, size: tuple[int, int], matrix: str, yuv_range: str
    ) -> Any:
        """A YUV frame (a `Named` one: its data, errors naming it) as RGB: a
        ``3xHxW`` tensor on this detector's GPU where it lies there, else ``HxWx3`` numpy."""
        name = describe(image)
        data = image.data if isinstance(image, Named) else image
        tensor = self._device_image(data)
        if tensor is not None:
            from .device_preprocess import yuv_to_rgb_tensor

            return yuv_to_rgb_tensor(tensor, pixel_format, size, matrix, yuv_range, name,
                                     self.max_pixels)  # fmt: skip
        from .yuv import yuv_to_rgb

        return yuv_to_rgb(data, pixel_format, size, matrix, yuv_range, name, self.max_pixels)

    def _prepare(self, image: ImageInput) -> _Prepared | Failure:
        named = isinstance(image, (str, os.PathLike, Named))
        source = describe(image) if named else None
        start = time.perf_counter()
        try:
            tensor = self._device_image(image.data if isinstance(image, Named) else image)
            rgb: ArrayOrTensor
            if tensor is not None:
                from .device_preprocess import to_rgb_uint8

                rgb = to_rgb_uint8(tensor, describe(image), self.max_pixels)  # 3xHxW on the GPU
                image_size = (int(rgb.shape[1]), int(rgb.shape[2]))
            else:
                rgb = load_pixels(image, max_pixels=self.max_pixels)
                image_size = (rgb.shape[0], rgb.shape[1])
        except InputError as exc:
            exc.source = source
            return Failure(source, exc)
        decode_ms, start = _ms_since(start), time.perf_counter()
        network_input = self._preprocess([rgb])[0]
        tiling, size = self.tiling, self.config.image_size
        layout = plan_tiles(image_size, size, tiling) if tiling is not None else None
        working: ArrayOrTensor | None = None
        if layout is not None and isinstance(rgb, np.ndarray):
            working = resize_to(rgb, layout.working_size)
        elif layout is not None and not isinstance(rgb, np.ndarray):
            from .device_preprocess import resize_tensor

            working = resize_tensor(rgb, layout.working_size)
        return _Prepared(network_input, image_size, source, working, layout, decode_ms,
                         _ms_since(start))  # fmt: skip

    def _preprocess(self, images: Sequence[ArrayOrTensor]) -> ArrayOrTensor:
        """Host ``HxWx3`` arrays -> a numpy batch; device ``3xHxW`` tensors -> a device batch
        (``images`` are all of one kind)."""
        hosts = [x for x in images if isinstance(x, np.ndarray)]
        if hosts:
            return preprocess_batch(hosts, self.config, self.backend.input_format)
        from .device_preprocess import preprocess_tensors

        tensors = [x for x in images if not isinstance(x, np.ndarray)]
        return preprocess_tensors(tensors, self.config, self.backend.input_format)

    def _run_with_failures(self, chunk: list) -> list[Result | Failure]:
        good = [item for item in chunk if not isinstance(item, Failure)]
        results = iter(self._run(good) if good else [])
        return [item if isinstance(item, Failure) else next(results) for item in chunk]

    def _infer(self, batch: ArrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        class_probs, pixel_probs = self.backend.run(batch)
        class_probs, pixel_probs = np.asarray(class_probs), np.asarray(pixel_probs)
        if not (np.isfinite(class_probs).all() and np.isfinite(pixel_probs).all()):
            # never a silent wrong answer: NaN scores would compare as "not clean"
            raise ModelError(
                f"{self.model_path}: the model produced non-finite (NaN/Inf) scores on "
                f"{self.backend.name}; its weights or this runtime's arithmetic are broken"
            )
        return class_probs, pixel_probs

    def _run(self, chunk: list[_Prepared]) -> list[Result]:
        inputs = [p.network_input for p in chunk]
        hosts = [x for x in inputs if isinstance(x, np.ndarray)]
        batch: ArrayOrTensor
        if len(hosts) == len(inputs):
            batch = np.stack(hosts)
        else:  # some inputs were preprocessed on the GPU: batch them there
            from .device_preprocess import stack_on_device

            batch = stack_on_device(inputs, self.device)
        start = time.perf_counter()
        class_probs, pixel_probs = self._infer(batch)
        batch_share = _ms_since(start) / len(chunk)
        return [self._result(item, cp, pp, batch_share)
                for item, cp, pp in zip(chunk, class_probs, pixel_probs, strict=True)]  # fmt: skip

    def _result(
        self, item: _Prepared, cp: np.ndarray, pp: np.ndarray, inference_ms: float
    ) -> Result:
        """One image's result from its whole-image outputs (plus its tiles when it is tiled)."""
        tiles_ms = 0.0
        if item.layout is not None:  # tiled: then working and self.tiling are set too
            assert item.working is not None and self.tiling is not None
            image_rule = self.tiling.image_rule
            start = time.perf_counter()
            tile_class, tile_pixel = self._run_tiles(item.working, item.layout)
            tiles_ms = _ms_since(start)
        start = time.perf_counter()
        if item.layout is not None:
            cp = combine_scores(cp, tile_class, image_rule)
            pp = blend(tile_pixel, item.layout)
        result = Result.from_probs(cp, pp, self.config, item.image_size, item.source,
                                   self.thresholds)  # fmt: skip
        timings = {"decode": item.decode_ms, "preprocess": item.preprocess_ms,
                   "inference": inference_ms + tiles_ms}  # fmt: skip
        return replace(result, timings=timings | {"postprocess": _ms_since(start)})

    def _run_tiles(
        self, working: ArrayOrTensor, layout: TileLayout
    ) -> tuple[np.ndarray, np.ndarray]:
        """The model's outputs on every tile of ``layout``, ``batch_size`` tiles at a time."""
        t = layout.tile
        crops: list[ArrayOrTensor]
        if isinstance(working, np.ndarray):  # HxWx3 on the host
            crops = [working[y : y + t, x : x + t] for y, x in layout.corners]
        else:  # 3xHxW on the GPU
            crops = [working[:, y : y + t, x : x + t] for y, x in layout.corners]
        outputs = [
            self._infer(self._preprocess(crops[rows]))
            for rows in batch_chunks(len(crops), self.batch_size)
        ]
        return (np.concatenate([c for c, _ in outputs]), np.concatenate([p for _, p in outputs]))


__all__ = ["Detector", "default_model_path"]
