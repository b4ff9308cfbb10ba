"""Turn any supported image input into sRGB pixels, or raise `InputError`.

`load_pixels` gives ``uint16`` pixels where the input has more than 8 bits per channel
(16-bit arrays, PNG and TIFF, 10/12-bit HEIF, RAW) and ``uint8`` otherwise; the preprocessing
resizes them at that precision and quantises once (`ipad_sdk.preprocess`). `load_image`
is the same pixels quantised to ``uint8`` at once. Accepted inputs (one place for every backend):

* a path (``str`` / ``os.PathLike``) or encoded bytes of any format Pillow reads (AVIF included),
  HEIC/HEIF (extra ``heif``) or camera RAW/DNG (extra ``raw``; `ipad_sdk.decoders`); EXIF
  orientation is applied; animated files give their first frame; an embedded RGB ICC profile
  (Display P3, Adobe RGB, ProPhoto, ...) is converted to sRGB (`ipad_sdk.colour`);
* a ``PIL.Image.Image`` (any mode: 1, L, P, RGB, RGBA, RGBa, LA, La, CMYK, I;16, I, F, ...);
* a numpy array ``HxW``, ``HxWx1``, ``HxWx3`` (RGB) or ``HxWx4`` (RGBA), dtype ``uint8``,
  ``uint16`` or floating point in ``[0, 1]``;
* a torch tensor ``HxW``, ``1xHxW``, ``3xHxW`` or ``4xHxW`` (channels first, torchvision style),
  ``uint8`` or floating point in ``[0, 1]``, on any device (torch itself is not imported here);
* a :class:`Named` input: any of these with the name its results and errors go by (the file
  behind encoded bytes, a video frame's ``clip.mp4#frame=12``);
* any other DLPack producer (``__dlpack__``: CuPy, JAX, ...), read like a torch tensor (channels
  first; imported with ``torch.from_dlpack``, or ``numpy.from_dlpack`` for host memory without
  torch).

Tensors on the GPU are copied to the host here; the `Detector` of a PyTorch model
on that GPU preprocesses them there instead (`ipad_sdk.device_preprocess`).

Conversions: alpha is dropped (the colour channels are used as stored); grayscale is repeated to
three channels; 16-bit values map to 8 bits by ``round(v / 257)`` (16-bit RGB PNG and TIFF files
and 16-bit gray+alpha PNGs are decoded at full precision: Pillow alone keeps the high byte);
floats by ``round(v * 255)``. A C-contiguous RGB ``uint8`` array is returned as is, not copied.

Errors name the input and the problem: missing file, not an image (a video, by its extension or
its container, is refused: its frames go through :mod:`ipad_sdk.video`), truncated data, zero size,
more than ``max_pixels`` pixels (checked from the header, before decoding), non-finite values,
values out of range, unsupported dtype or shape. Encoded files are also subject to Pillow's own
bomb limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``, the default ``max_pixels``): to accept larger
files, raise both.
"""

from __future__ import annotations

import io
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeGuard

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .colour import quantize8, to_srgb
from .decoders import sniff
from .errors import InputError
from .video import is_video

if TYPE_CHECKING:
    import torch

#: Default pixel limit (width * height) for one input: 2x Pillow's own bomb warning limit, which is
#: the size at which Pillow itself refuses to open a file. 179 MP covers every camera photo.
DEFAULT_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else 178_956_970


class SupportsDLPack(Protocol):
    """An array that exports itself through DLPack (CuPy, JAX, ...)."""

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Named:
    """An input with the name it goes by.

    Results carry the name as their ``source`` and errors start with it
    (:class:`~ipad_sdk.Detector` inputs only; a path is named by itself).

    Attributes:
        source: The name (e.g. the file the encoded bytes came from, or a video frame's name).
        data: Any other accepted input.
    """

    source: str
    data: Any


#: Every input `load_pixels` takes (torch is imported for type checkers only).
ImageInput: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray"
    " | torch.Tensor | SupportsDLPack | Named"
)


def describe(obj: object) -> str:
    """Name an input for the start of an error message.

    Args:
        obj: Any image input.

    Returns:
        The path or the :class:`Named` input's name, or a short description such as
        ``<numpy array shape=(4, 4, 3) dtype=uint8>``.
    """
    if isinstance(obj, Named):
        return obj.source
    if isinstance(obj, (str, os.PathLike)):
        return os.fspath(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, Image.Image):
        return f"<PIL image {obj.mode} {obj.width}x{obj.height}>"
    if isinstance(obj, np.ndarray):
        return f"<numpy array shape={obj.shape} dtype={obj.dtype}>"
    if is_torch_tensor(obj):
        return f"<torch tensor shape={tuple(obj.shape)} dtype={obj.dtype} device={obj.device}>"
    return f"<{type(obj).__name__}>"


def load_image(obj: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported image input as 8-bit sRGB pixels.

    The pixels of `load_pixels`, quantised to 8 bits (16-bit values by ``round(v / 257)``).
    The accepted inputs and conversions are listed in the module description above.

    Args:
        obj: A path or encoded bytes, a PIL image, a numpy array, a torch tensor or a DLPack array.
        max_pixels: Largest accepted ``width * height``, checked before decoding.

    Returns:
        A C-contiguous ``HxWx3`` RGB ``uint8`` array (a C-contiguous RGB ``uint8`` input is
            returned as is, not copied).

    Raises:
        InputError: The input is missing, not an image, truncated, too large, of zero size,
            non-finite, out of range, or of an unsupported type, dtype or shape; the message
            starts with the input's name.
        BackendUnavailable: The input's format needs an extra that is not installed (``heif``,
            ``raw``).
    """
    return quantize8(load_pixels(obj, max_pixels=max_pixels))


def load_pixels(obj: ImageInput, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Load any supported image input as sRGB pixels at its own precision.

    The preprocessing of every backend starts here.

    Args:
        obj: A path or encoded bytes, a PIL image, a numpy array, a torch tensor or a DLPack array.
        max_pixels: Largest accepted ``width * height``, checked before decoding.

    Returns:
        A C-contiguous ``HxWx3`` array, ``uint16`` where the input has more than 8 bits per
            channel (16-bit arrays, PNG and TIFF, 10/12-bit HEIF, RAW), else ``uint8``.

    Raises:
        InputError: The input is unusable (see `load_image`).
        BackendUnavailable: The input's format needs an extra that is not installed.
    """
    name = describe(obj)
    if isinstance(obj, Named):
        obj = obj.data
    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        return _from_encoded(_read_path(path, name), name, max_pixels, path.suffix.lower())
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _from_encoded(bytes(obj), name, max_pixels, "")
    if isinstance(obj, Image.Image):
        return _from_pil(obj, name, max_pixels)
    if isinstance(obj, np.ndarray):
        return _from_array(obj, name, max_pixels, channels_last=True)
    if is_torch_tensor(obj):
        return _from_array(_tensor_to_numpy(obj, name), name, max_pixels, channels_last=False)
    if hasattr(obj, "__dlpack__"):
        return _from_array(_dlpack_to_numpy(obj, name), name, max_pixels, channels_last=False)
    raise InputError(
        f"{name}: unsupported input type {type(obj).__name__}; expected a path, bytes, "
        "PIL image, numpy array, torch tensor or DLPack array"
    )


def is_torch_tensor(obj: object) -> TypeGuard[torch.Tensor]:
    """Tell whether an object is a torch tensor, without importing torch.

    Args:
        obj: Any object.

    Returns:
        True for a torch tensor (recognised by its type's module).
    """
    return type(obj).__module__.startswith("torch") and hasattr(obj, "detach")


def _tensor_to_numpy(tensor: torch.Tensor, name: str) -> np.ndarray:
    tensor = tensor.detach().to("cpu")
    if (
        tensor.is_floating_point()
        and tensor.element_size() < 4
        and str(tensor.dtype) != "torch.float16"
    ):
        tensor = tensor.float()  # bfloat16 / float8 have no numpy dtype; float32 holds them exactly
    try:
        return tensor.numpy()
    except (TypeError, RuntimeError) as exc:
        raise InputError(f"{name}: unsupported tensor dtype {tensor.dtype}: {exc}") from None


def _dlpack_to_numpy(obj: SupportsDLPack, name: str) -> np.ndarray:
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]  # optional: host memory is read by numpy
    try:
        if torch is not None:
            return _tensor_to_numpy(torch.from_dlpack(obj), name)
        return np.from_dlpack(obj)
    except (BufferError, RuntimeError, TypeError, ValueError) as exc:
        hint = "" if torch is not None else " (device memory needs torch: pip install torch)"
        raise InputError(f"{name}: cannot import DLPack array: {exc}{hint}") from None


def check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    """Refuse a zero-size image or one above a pixel limit.

    Args:
        width: Image width in pixels.
        height: Image height in pixels.
        name: Name of the input, for the message.
        max_pixels: Largest accepted ``width * height``.

    Raises:
        InputError: The image has zero size or more than ``max_pixels`` pixels.
    """
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{max_pixels:,} (possible decompression bomb); raise max_pixels if it is genuine"
        )


def check_unit_range(lo: float, hi: float, name: str) -> None:
    """Refuse float pixels outside ``[0, 1]``.

    Args:
        lo: The smallest pixel value.
        hi: The largest pixel value.
        name: Name of the input, for the message.

    Raises:
        InputError: ``lo < 0`` or ``hi > 1``.
    """
    if lo < 0.0 or hi > 1.0:
        raise InputError(
            f"{name}: float images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}] "
            "(divide 8-bit data by 255, or pass it as uint8)"
        )


def video_refusal(name: str) -> str:
    """The message for a video met where an image is expected."""
    return (
        f"{name}: a video, not an image: sample its frames with `ipad detect --frame-stride N` "
        "(or ipad_sdk.video.iter_frames)"
    )


def _read_path(path: Path, name: str) -> bytes:
    if not path.exists():
        raise InputError(f"{name}: file not found")
    if path.is_dir():
        raise InputError(f"{name}: is a directory, not an image file")
    if path.stat().st_size == 0:
        raise InputError(f"{name}: file is empty (0 bytes)")
    if is_video(path):  # refused before its (possibly huge) bytes are read
        raise InputError(video_refusal(name))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(f"{name}: cannot read file: {exc.strerror or exc}") from None


#: A JPEG cannot hold more pixels per byte of file than this: even a flat image needs about one
#: bit per 8x8 block and component (a 4:2:0 colour JPEG: 6 blocks per 256 pixels, at least ~340
#: pixels per byte). A file far above it declares pixels its data cannot contain: it is truncated
#: or forged, and libjpeg would "decode" it by filling the missing blocks with gray (silently).
JPEG_MAX_PIXELS_PER_BYTE = 2048


def _from_encoded(data: bytes, name: str, max_pixels: int, suffix: str) -> np.ndarray:
    """Encoded bytes -> sRGB pixels: the one decode dispatch by format (``suffix``, the file's
    lower-case extension or '', only tells camera RAW files that look like TIFFs apart)."""
    if not data:
        raise InputError(f"{name}: no data (0 bytes)")
    kind = sniff(data, suffix)
    if kind == "video":
        raise InputError(video_refusal(name))
    if kind == "heif":
        from .decoders import decode_heif

        pixels, icc = decode_heif(data, name, max_pixels)
    elif kind == "raw":
        from .decoders import decode_raw

        pixels, icc = decode_raw(data, name, max_pixels)
    else:
        pixels, icc = _decode_with_pillow(data, name, max_pixels)
    return np.ascontiguousarray(to_srgb(pixels, icc))


def _decode_with_pillow(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, bytes | None]:
    """Pixels (16-bit RGB files at full precision, EXIF orientation applied) and ICC profile."""
    img = _open_header(data, name, max_pixels)
    icc = img.info.get("icc_profile")
    if _is_rgb16(img):
        return _orient(_decode_rgb16(data, img, name), _exif_orientation(img)), icc
    if _is_la16(img):
        return _orient(_decode_la16(img, name), _exif_orientation(img)), icc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _decode(img, name)
    upright: Image.Image = img
    try:
        upright = ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        pass  # a broken EXIF block is not worth rejecting the pixels for; keep stored orientation
    return _pil_pixels(upright, name, max_pixels), icc


def _open_header(data: bytes, name: str, max_pixels: int) -> ImageFile.ImageFile:
    """Open ``data`` lazily with Pillow and check its declared size."""
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's bomb warning; Pillow's other
            # warnings (odd metadata in a file that still decodes) must not escape as errors
            # under `python -W error`: the decoded pixels are checked instead.
            warnings.simplefilter("ignore")
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"{name}: refused by Pillow as a possible decompression bomb ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS and max_pixels if it is genuine"
        ) from None
    except UnidentifiedImageError:
        raise InputError(f"{name}: not an image (format not recognised)") from None
    except Exception as exc:  # noqa: BLE001 - Pillow's format plugins raise any type on bad files
        detail = str(exc) or type(exc).__name__
        raise InputError(f"{name}: cannot read image header: {detail}") from None
    check_size(img.width, img.height, name, max_pixels)
    if img.format == "JPEG" and img.width * img.height > JPEG_MAX_PIXELS_PER_BYTE * len(data):
        raise InputError(
            f"{name}: truncated or corrupt JPEG: it declares {img.width}x{img.height} pixels but "
            f"holds only {len(data):,} bytes, too few to encode them"
        )
    return img


#: Pillow decodes 16-bit RGB(A) files into 8-bit modes through these raw modes, keeping the high
#: byte; the same decoder run with the other byte order gives the low byte.
_SWAPPED_16 = {"RGB;16B": "RGB;16L", "RGB;16L": "RGB;16B", "RGBA;16B": "RGBA;16L",
               "RGBA;16L": "RGBA;16B"}  # fmt: skip
_NATIVE_16 = "16L" if sys.byteorder == "little" else "16B"


def _rawmode(tile: Any) -> str:
    """The raw mode of a Pillow tile ('' when its codec takes another argument)."""
    mode = tile.args[0] if isinstance(tile.args, tuple) and tile.args else tile.args
    return mode.replace("16N", _NATIVE_16) if isinstance(mode, str) else ""


def _is_rgb16(img: ImageFile.ImageFile) -> bool:
    return bool(img.tile) and all(_rawmode(t) in _SWAPPED_16 for t in img.tile)


def _decode_rgb16(data: bytes, img: ImageFile.ImageFile, name: str) -> np.ndarray:
    """A 16-bit RGB(A) PNG or TIFF at full precision (alpha dropped): decoded twice by Pillow,
    once for the high bytes and once with the byte order swapped for the low bytes."""
    low = Image.open(io.BytesIO(data))
    low.tile = [_with_rawmode(t, _SWAPPED_16[_rawmode(t)]) for t in low.tile]
    for part in (img, low):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _decode(part, name)
    high_bytes = np.asarray(img)[:, :, :3].astype(np.uint16)
    rgb16: np.ndarray = (high_bytes << 8) | np.asarray(low)[:, :, :3]
    return rgb16


def _is_la16(img: Image.Image) -> TypeGuard[ImageFile.ImageFile]:
    """Whether ``img`` is a 16-bit gray+alpha PNG not decoded yet (a file's tiles are pending)."""
    if img.mode != "RGBA" or not isinstance(img, ImageFile.ImageFile) or not img.tile:
        return False
    return all(_rawmode(t) == "LA;16B" for t in img.tile)


def _decode_la16(img: ImageFile.ImageFile, name: str) -> np.ndarray:
    """A 16-bit gray+alpha PNG at full precision (alpha dropped, gray repeated). Pillow opens it
    as RGBA holding the high bytes; decoded once as 8-bit RGBA instead (the same 4 bytes per
    pixel), its channels are the gray's high and low bytes, then the alpha's."""
    img.tile = [_with_rawmode(t, "RGBA") for t in img.tile]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _decode(img, name)
    packed = np.asarray(img)
    gray = (packed[:, :, 0].astype(np.uint16) << 8) | packed[:, :, 1]
    return np.repeat(gray[:, :, None], 3, axis=2)


def _with_rawmode(tile: Any, rawmode: str) -> Any:
    args = rawmode if isinstance(tile.args, str) else (rawmode, *tile.args[1:])
    return tile._replace(args=args)


def _exif_orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):
        return 1


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """The upright pixels of an ``HxWxC`` array stored with EXIF ``orientation`` (invalid: 1)."""
    transposed = pixels.transpose(1, 0, 2)
    views: dict[int, np.ndarray] = {
        2: pixels[:, ::-1],
        3: pixels[::-1, ::-1],
        4: pixels[::-1],
        5: transposed,
        6: transposed[:, ::-1],
        7: transposed[::-1, ::-1],
        8: transposed[::-1],
    }
    return views.get(orientation, pixels)


def _decode(img: Image.Image, name: str) -> None:
    """Decode the pixels of a lazily opened image (a no-op once loaded)."""
    try:
        img.load()
    except Exception as exc:  # noqa: BLE001 - e.g. NotImplementedError for a DDS pixel format
        detail = str(exc) or type(exc).__name__
        raise InputError(f"{name}: cannot decode image (truncated or corrupt): {detail}") from None


def _from_pil(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    check_size(img.width, img.height, name, max_pixels)
    _decode(img, name)
    return np.ascontiguousarray(
        to_srgb(_pil_pixels(img, name, max_pixels), img.info.get("icc_profile"))
    )


def _pil_pixels(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    """A loaded PIL image of any mode -> ``HxWx3`` uint8 or uint16 pixels."""
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        array = np.asarray(img)
        if img.mode == "I":
            if array.size and (array.min() < 0 or array.max() > 65535):
                raise InputError(f"{name}: 32-bit integer image has values outside 0..65535")
            array = array.astype(np.uint16)
        elif img.mode != "F":
            array = array.astype(np.uint16)
        return _from_array(array, name, max_pixels, channels_last=True)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "La":  # premultiplied: Pillow converts it to LA only (as it does RGBa to RGB)
        img = img.convert("LA")
    try:
        rgb = img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise InputError(f"{name}: cannot convert {img.mode} image to RGB: {exc}") from None
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _from_array(array: np.ndarray, name: str, max_pixels: int, channels_last: bool) -> np.ndarray:
    if array.ndim == 3 and not channels_last:
        if array.shape[0] not in (1, 3, 4):
            raise InputError(
                f"{name}: expected a channels-first tensor (1, 3 or 4 x H x W), got shape "
                f"{tuple(array.shape)}"
            )
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        hint = ""
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and channels_last:
            hint = " (channels first? numpy inputs are HxWxC: use array.transpose(1, 2, 0))"
        raise InputError(
            f"{name}: expected an image of shape HxW, HxWx1, HxWx3 or HxWx4, got "
            f"{tuple(array.shape)}{hint}"
        )
    height, width = array.shape[:2]
    check_size(width, height, name, max_pixels)
    if not array.dtype.isnative:  # e.g. big-endian '>u2' from PGM/FITS buffers
        array = array.astype(array.dtype.newbyteorder("="))
    array = array[:, :, :3] if array.shape[2] == 4 else array
    dtype = array.dtype
    if dtype in (np.uint8, np.uint16):
        pass
    elif np.issubdtype(dtype, np.floating):
        if not np.isfinite(array).all():
            raise InputError(f"{name}: contains NaN or infinite values")
        check_unit_range(float(array.min()), float(array.max()), name)
        array = np.round(array.astype(np.float64) * 255.0).astype(np.uint8)
    else:
        raise InputError(f"{name}: unsupported dtype {dtype}; use uint8, uint16 or float in [0, 1]")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)
