"""Generate the bad-input corpus: damaged, extreme and odd images and model files.

Nothing binary is committed: every case is built here from small synthetic images and from model
files that the SDK's own exporters write. ``python benchmarks/corpus.py --out DIR`` writes the
files and ``DIR/manifest.json``; ``benchmarks/reliability.py``, ``tests/test_corpus.py`` and
``tests/test_fuzz.py`` import the case list and :func:`evaluate`.

A case is a file (``kind`` ``image``, ``video`` or ``model``) or an in-memory object (``memory``,
built by a generator function). ``expect`` is the correct behaviour: ``"error"`` (an SDK error
naming the input whose message matches ``match``) or ``"ok"`` (a result, equal to ``expected``
when the case defines the pixels).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import re
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: Files of a built case: relative name -> bytes (``None``: a directory). The first is the input.
Files = dict[str, bytes | None]
#: Per-call time limit: anything slower counts as a hang.
TIME_LIMIT_S = 2.0
#: Opening a model (the first one imports torch or ONNX Runtime) may take longer.
MODEL_TIME_LIMIT_S = 15.0
ERROR_TYPES = ("InputError", "ModelError", "BackendUnavailable")


@dataclass(frozen=True)
class Sources:
    """Valid model files the model cases damage: a bundle, its FP32 ONNX export, an engine plan
    (with its ``.json`` sidecar; ``None`` where TensorRT for RTX is not installed)."""

    bundle: Path
    onnx: Path
    plan: Path | None = None


@dataclass(frozen=True)
class Case:
    """One corpus case (see the module docstring)."""

    name: str
    cls: str
    expect: str
    match: str = ""
    note: str = ""
    kind: str = "image"
    file: str = ""
    #: image/model cases: files to write (and the expected pixels for ok image cases)
    build: Callable[..., tuple[Files, np.ndarray | None]] | None = field(default=None, repr=False)
    #: memory cases: () -> (object, expected pixels or None)
    make: Callable[[], tuple[Any, np.ndarray | None]] | None = field(default=None, repr=False)
    #: for ok cases without exact pixels: the result's height and width
    shape: tuple[int, int] | None = None
    #: for ok video cases: the number of frames (all decoded, in order)
    frames: int | None = None
    needs: str = ""  # a key of NEEDS_MODULES

    def entry(self) -> dict[str, Any]:
        """The manifest entry."""
        out = {
            "name": self.name,
            "class": self.cls,
            "expect": self.expect,
            "match": self.match,
            "note": self.note,
            "kind": self.kind,
            "file": self.file or None,
        }
        if self.shape:
            out["shape"] = list(self.shape)
        return out


# -- small encoders and editors --------------------------------------------------------------------
def pattern(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    """A deterministic textured RGB uint8 image."""
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 7 + seed, yy * 11 + 3 * seed, xx * yy * 3 + 5 * seed], axis=-1)
    return (img % 256).astype(np.uint8)


def encode(img: Image.Image | np.ndarray, fmt: str, **kwargs: Any) -> bytes:
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    """Plain Pillow decode to RGB: the reference for lossy formats."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def flip(data: bytes, index: int, mask: int = 0xFF) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width x height`` RGB but holds one empty IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b""))
        + _chunk(b"IEND", b"")
    )


def png16_gray_alpha(gray: np.ndarray, alpha: np.ndarray) -> bytes:
    """A 16-bit gray+alpha PNG (colour type 4; Pillow cannot write one), rows unfiltered."""
    h, w = gray.shape
    pixels = np.stack([gray, alpha], axis=-1).astype(">u2")
    raw = b"".join(b"\0" + pixels[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def jpeg_with_size(width: int, height: int) -> bytes:
    """A small valid JPEG whose SOF0 is rewritten to declare ``width x height``."""
    data = bytearray(encode(pattern(16, 16), "JPEG", quality=90))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_raw(
    width: int,
    height: int,
    bits: int,
    samples: int,
    photometric: int,
    sample_format: int,
    pixels: bytes,
) -> bytes:
    """A minimal uncompressed little-endian TIFF (one strip)."""
    extra = b""
    ifd_size = 2 + 10 * 12 + 4
    data_at = 8 + ifd_size
    if samples > 1:
        bits_at = data_at
        extra += struct.pack(f"<{samples}H", *[bits] * samples)
        formats_at = data_at + len(extra)
        extra += struct.pack(f"<{samples}H", *[sample_format] * samples)
    strip_at = data_at + len(extra)
    entries = [  # tag, type, count, value or offset
        (256, 4, 1, width),
        (257, 4, 1, height),
        (258, 3, samples, bits if samples == 1 else bits_at),
        (259, 3, 1, 1),
        (262, 3, 1, photometric),
        (273, 4, 1, strip_at),
        (277, 3, 1, samples),
        (278, 4, 1, height),
        (279, 4, 1, len(pixels)),
        (339, 3, samples, sample_format if samples == 1 else formats_at),
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = (
            struct.pack("<H", value) + b"\0\0"
            if typ == 3 and count == 1
            else struct.pack("<I", value)
        )
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + extra + pixels


def orient(img: np.ndarray, orientation: int) -> np.ndarray:
    """The upright pixels of an image stored with EXIF ``orientation`` (numpy only)."""
    t = img.transpose(1, 0, 2)
    return {
        1: img,
        2: img[:, ::-1],
        3: img[::-1, ::-1],
        4: img[::-1],
        5: t,
        6: np.rot90(img, -1),
        7: t[::-1, ::-1],
        8: np.rot90(img, 1),
    }[orientation]


def with_exif_orientation(img: Image.Image, fmt: str, orientation: int, **kwargs: Any) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(img, fmt, exif=exif.tobytes(), **kwargs)


# -- image cases -----------------------------------------------------------------------------------
def _file(data: bytes, expected: np.ndarray | None = None) -> Callable[[str], Any]:
    """A builder writing ``data`` as the case's file."""
    return lambda name: ({name: data}, expected)


BASE = pattern()
ENCODED = {
    "jpeg": encode(BASE, "JPEG", quality=90),
    "png": encode(BASE, "PNG"),
    "tiff": encode(BASE, "TIFF"),
    "webp": encode(BASE, "WEBP", lossless=True),
    "gif": encode(Image.fromarray(BASE).quantize(64, dither=Image.Dither.NONE), "GIF"),
    "bmp": encode(BASE, "BMP"),
}
EXT = {"jpeg": "jpg", "png": "png", "tiff": "tif", "webp": "webp", "gif": "gif", "bmp": "bmp"}


def fuzz_seeds() -> dict[str, bytes]:
    """Small valid files in every format Pillow writes here: the seeds that fuzzers mutate."""
    small = pattern(9, 13, seed=4)
    gray16 = Image.fromarray(small[..., 0].astype(np.uint16) * 257)
    frames = [Image.fromarray(pattern(8, 8, seed=s)) for s in (1, 2)]
    return ENCODED | {
        "ppm": encode(small, "PPM"),
        "tga": encode(small, "TGA"),
        "ico": encode(small, "ICO"),
        "png16": encode(gray16, "PNG"),
        "tiff-lzw": encode(small, "TIFF", compression="tiff_lzw"),
        "jpeg-exif": with_exif_orientation(Image.fromarray(small), "JPEG", 6),
        "webp-lossy": encode(small, "WEBP", quality=50),
        "apng": encode(frames[0], "PNG", save_all=True, append_images=frames[1:]),
    }


TRUNCATED = "truncated|cannot decode|cannot read image header|not an image"


def _cut_points(fmt: str) -> dict[str, int]:
    n = len(ENCODED[fmt])
    points = {
        "at-4": 4,
        "at-16": 16,
        "at-25pct": n // 4,
        "at-50pct": n // 2,
        "at-90pct": n * 9 // 10,
    }
    if fmt == "jpeg":
        points["at-len-8"] = n - 8
    return points


def _truncated_cases() -> list[Case]:
    cases = []
    for fmt in ("jpeg", "png", "tiff", "webp", "gif", "bmp"):
        for label, cut in _cut_points(fmt).items():
            name = f"truncated-{fmt}-{label}"
            cases.append(
                Case(
                    name,
                    f"truncated-{fmt}",
                    "error",
                    TRUNCATED,
                    f"first {cut} of {len(ENCODED[fmt])} bytes",
                    file=f"{name}.{EXT[fmt]}",
                    build=_file(ENCODED[fmt][:cut]),
                )
            )
    jpeg = ENCODED["jpeg"]
    half_scan = (jpeg.index(b"\xff\xda") + len(jpeg)) // 2
    cases.append(
        Case(
            "truncated-jpeg-half-scan-plus-eoi",
            "truncated-jpeg",
            "error",
            TRUNCATED,
            "half the entropy-coded scan, then an EOI marker",
            file="half-eoi.jpg",
            build=_file(jpeg[:half_scan] + b"\xff\xd9"),
        )
    )
    return cases


def _corrupt_cases() -> list[Case]:
    jpeg, png, tiff, webp = (ENCODED[k] for k in ("jpeg", "png", "tiff", "webp"))
    sof, sos = jpeg.index(b"\xff\xc0"), jpeg.index(b"\xff\xda")
    idat = png.index(b"IDAT")
    header = "not an image|cannot read image header|cannot decode"
    shape = BASE.shape[:2]
    spec = [
        # name, data, expect, match, note
        ("corrupt-jpeg-soi", flip(jpeg, 1), "error", "not an image", "SOI marker flipped"),
        ("corrupt-jpeg-sof-marker", flip(jpeg, sof + 1), "error", header, "SOF0 marker flipped"),
        (
            "corrupt-jpeg-sof-precision",
            flip(jpeg, sof + 4, 0x0F),
            "error",
            header,
            "SOF0 sample precision 8 -> 7",
        ),
        (
            "corrupt-jpeg-scan",
            flip(jpeg, sos + 40),
            "ok",
            "",
            "a flipped entropy-coded byte: JPEG has no checksum, so it decodes to other pixels "
            "of the same size (not detectable by any reader)",
        ),
        ("corrupt-png-signature", flip(png, 1), "error", "not an image", "PNG signature flipped"),
        ("corrupt-png-ihdr", flip(png, 20), "error", header, "IHDR width byte flipped (bad CRC)"),
        (
            "corrupt-png-idat",
            flip(png, idat + 30),
            "error",
            header,
            "IDAT byte flipped (bad CRC, zlib error)",
        ),
        (
            "corrupt-png-crc",
            flip(png, idat + 4 + int.from_bytes(png[idat - 4 : idat], "big") + 1),
            "ok",
            "",
            "IDAT CRC flipped: Pillow does not check IDAT CRCs; the pixels are intact",
        ),
        ("corrupt-tiff-magic", flip(tiff, 2), "error", "not an image", "TIFF magic 42 flipped"),
        (
            "corrupt-tiff-ifd-offset",
            flip(tiff, 7, 0x7F),
            "error",
            header,
            "IFD offset points far past the end",
        ),
        ("corrupt-webp-riff", flip(webp, 0), "error", "not an image", "RIFF tag flipped"),
        ("corrupt-webp-vp8l", flip(webp, 25), "error", header, "VP8L bitstream byte flipped"),
    ]
    intact = {"corrupt-png-crc": BASE}  # ok cases whose pixels are known
    return [
        Case(
            name,
            f"corrupt-{name.split('-')[1]}",
            expect,
            match,
            note,
            file=f"{name}.{EXT[name.split('-')[1]]}",
            build=_file(data, intact.get(name)),
            shape=shape if expect == "ok" else None,
        )
        for name, data, expect, match, note in spec
    ]


def _zero_and_wrong_extension_cases() -> list[Case]:
    png, jpeg, gif = ENCODED["png"], ENCODED["jpeg"], ENCODED["gif"]
    text = b"just some text, not pixels\n" * 10
    cases = [
        Case(
            f"zero-byte-{ext}",
            "zero-byte",
            "error",
            "empty \\(0 bytes\\)",
            file=f"empty.{ext}",
            build=_file(b""),
        )
        for ext in ("jpg", "png", "tif", "webp")
    ]
    cases += [
        Case(
            "png-named-jpg",
            "wrong-extension",
            "ok",
            note="content decides, not the name",
            file="png-named.jpg",
            build=_file(png, BASE),
        ),
        Case(
            "jpeg-named-png",
            "wrong-extension",
            "ok",
            note="same pixels as the .jpg",
            file="jpeg-named.png",
            build=_file(jpeg, decode(jpeg)),
        ),
        Case(
            "gif-named-webp",
            "wrong-extension",
            "ok",
            file="gif-named.webp",
            build=_file(gif, decode(gif)),
        ),
        Case(
            "text-named-png",
            "wrong-extension",
            "error",
            "not an image",
            file="text-named.png",
            build=_file(text),
        ),
        Case(
            "text-file", "non-image", "error", "not an image", file="notes.txt", build=_file(text)
        ),
        Case(
            "html-named-jpg",
            "non-image",
            "error",
            "not an image",
            file="page.jpg",
            build=_file(b"<!doctype html><html><body>404</body></html>\n"),
        ),
        Case(
            "svg-file",
            "non-image",
            "error",
            "not an image",
            note="Pillow reads no SVG",
            file="drawing.svg",
            build=_file(b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        ),
        Case(
            "jpeg-soi-only",
            "non-image",
            "error",
            TRUNCATED,
            file="soi.jpg",
            build=_file(b"\xff\xd8\xff"),
        ),
        Case(
            "directory",
            "path",
            "error",
            "is a directory",
            file="a-folder.png",
            build=lambda name: ({name: None}, None),
        ),
        Case(
            "missing-path",
            "path",
            "error",
            "file not found",
            file="no/such/file.png",
            build=lambda name: ({}, None),
        ),
        Case(
            "unicode-path",
            "path",
            "ok",
            note="non-ASCII and spaces in the name",
            file="fotó ñ 写真.png",
            build=_file(png, BASE),
        ),
    ]
    return cases


def _extreme_size_cases() -> list[Case]:
    line = pattern(1, 100_000)
    bomb = "decompression bomb"
    return [
        Case(
            "1x1-png",
            "tiny-or-extreme",
            "ok",
            file="1x1.png",
            build=_file(encode(BASE[:1, :1], "PNG"), BASE[:1, :1]),
        ),
        Case(
            "1x100000-png",
            "tiny-or-extreme",
            "ok",
            file="1x100000.png",
            build=_file(encode(line, "PNG"), line),
        ),
        Case(
            "100000x1-png",
            "tiny-or-extreme",
            "ok",
            file="100000x1.png",
            build=_file(encode(line.transpose(1, 0, 2), "PNG"), line.transpose(1, 0, 2)),
        ),
        Case(
            "1x1-jpeg",
            "tiny-or-extreme",
            "ok",
            file="1x1.jpg",
            build=_file(encode(BASE[:1, :1], "JPEG"), decode(encode(BASE[:1, :1], "JPEG"))),
        ),
        Case(
            "bomb-png-100000x100000",
            "decompression-bomb",
            "error",
            bomb,
            "10 GP declared in a 57-byte PNG",
            file="bomb.png",
            build=_file(png_header_only(100_000, 100_000)),
        ),
        Case(
            "bomb-png-20000x10000",
            "decompression-bomb",
            "error",
            bomb,
            "200 MP: above max_pixels but below Pillow's own refusal",
            file="bomb-200mp.png",
            build=_file(png_header_only(20_000, 10_000)),
        ),
        Case(
            "bomb-jpeg-65500x65500",
            "decompression-bomb",
            "error",
            bomb,
            file="bomb.jpg",
            build=_file(jpeg_with_size(65_500, 65_500)),
        ),
        Case(
            "bomb-gif-65535x65535",
            "decompression-bomb",
            "error",
            bomb,
            file="bomb.gif",
            build=_file(
                b"GIF89a"
                + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
                + b","
                + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0)
                + b"\x02\x00;"
            ),
        ),
        Case(
            "bomb-tiff-100000x100000",
            "decompression-bomb",
            "error",
            bomb,
            file="bomb.tif",
            build=_file(tiff_raw(100_000, 100_000, 8, 1, 1, 1, b"\0" * 16)),
        ),
        Case(
            "bomb-webp-16383x16383",
            "decompression-bomb",
            "error",
            bomb,
            file="bomb.webp",
            build=_file(_webp_with_size(16_383, 16_383)),
        ),
        Case(
            "huge-header-jpeg-10000x10000",
            "huge-valid-header",
            "error",
            TRUNCATED,
            "100 MP (under the limit) declared by a 700-byte JPEG: decoding must fail fast",
            file="huge-header.jpg",
            build=_file(jpeg_with_size(10_000, 10_000)),
        ),
        Case(
            "huge-header-png-10000x10000",
            "huge-valid-header",
            "error",
            TRUNCATED,
            "100 MP declared by a PNG with an empty IDAT",
            file="huge-header.png",
            build=_file(png_header_only(10_000, 10_000)),
        ),
    ]


def _webp_with_size(width: int, height: int) -> bytes:
    """A lossless WebP whose VP8L header is rewritten to declare ``width x height``."""
    data = bytearray(ENCODED["webp"])
    at = data.index(b"VP8L") + 9  # chunk tag, size, signature byte 0x2f
    bits = int.from_bytes(data[at : at + 4], "little")
    bits = (bits & ~((1 << 28) - 1)) | (width - 1) | ((height - 1) << 14)
    data[at : at + 4] = bits.to_bytes(4, "little")
    return bytes(data)


def _deep_cases() -> list[Case]:
    gray16 = (np.arange(24 * 32, dtype=np.uint32).reshape(24, 32) * 85 % 65536).astype(np.uint16)
    rgb16 = np.stack([gray16, 65535 - gray16, gray16 // 3], axis=-1)
    floats = (np.arange(24 * 32, dtype=np.float32).reshape(24, 32) / (24 * 32 - 1)).astype(
        np.float32
    )
    rep = lambda a: np.repeat(a[:, :, None], 3, axis=2).astype(np.uint8)  # noqa: E731
    return [
        Case(
            "tiff-16bit-gray",
            "16bit-float-tiff",
            "ok",
            note="round(v / 257)",
            file="g16.tif",
            build=_file(encode(Image.fromarray(gray16), "TIFF"), rep(np.round(gray16 / 257))),
        ),
        Case(
            "tiff-16bit-rgb",
            "16bit-float-tiff",
            "ok",
            note="16-bit RGB: both bytes decoded, then round(v / 257)",
            file="rgb16.tif",
            build=_file(
                tiff_raw(32, 24, 16, 3, 2, 1, rgb16.astype("<u2").tobytes()),
                ((2 * rgb16.astype(np.int64) + 257) // 514).astype(np.uint8),
            ),
        ),
        Case(
            "tiff-float32-gray",
            "16bit-float-tiff",
            "ok",
            note="round(v * 255)",
            file="f32.tif",
            build=_file(
                encode(Image.fromarray(floats), "TIFF"),
                rep(np.round(floats.astype(np.float64) * 255)),
            ),
        ),
        Case(
            "tiff-float32-out-of-range",
            "16bit-float-tiff",
            "error",
            "must lie in \\[0, 1\\]",
            "float data stored as 0..255",
            file="f32-255.tif",
            build=_file(encode(Image.fromarray(floats * 255), "TIFF")),
        ),
        Case(
            "tiff-float32-nan",
            "16bit-float-tiff",
            "error",
            "NaN or infinite",
            file="f32-nan.tif",
            build=_file(
                encode(
                    Image.fromarray(np.where(gray16 % 7 == 0, np.nan, floats).astype(np.float32)),
                    "TIFF",
                )
            ),
        ),
        Case(
            "tiff-float32-rgb",
            "16bit-float-tiff",
            "error",
            "not an image",
            "3-sample float TIFF: Pillow has no such mode and reports 'format not recognised'",
            file="rgbf32.tif",
            build=_file(
                tiff_raw(32, 24, 32, 3, 2, 3, np.dstack([floats] * 3).astype("<f4").tobytes())
            ),
        ),
    ]


def _mode_cases() -> list[Case]:
    cmyk = np.zeros((16, 24, 4), np.uint8)
    cmyk[:, :8, 0], cmyk[:, 8:16, 1], cmyk[:, 16:, 2] = 200, 120, 60
    cmyk_rgb = np.stack([255 - cmyk[..., 0], 255 - cmyk[..., 1], 255 - cmyk[..., 2]], axis=-1)
    palette = Image.fromarray(BASE).quantize(16, dither=Image.Dither.NONE)
    pal_rgb = np.asarray(palette.convert("RGB"))
    rgba = np.dstack([BASE, (np.arange(32) * 8 % 256).astype(np.uint8)[None].repeat(24, 0)])
    rgba[:4, :4, 3] = 0  # fully transparent pixels keep their stored colour
    la = np.dstack([BASE[..., 0], BASE[..., 1]])
    gray16 = (BASE[..., 0].astype(np.int64) * 251 + BASE[..., 2]).astype(
        np.uint16
    )  # low bytes matter
    la16 = png16_gray_alpha(gray16, BASE[..., 1].astype(np.uint16) * 257)
    gray16_as_8 = np.floor(gray16 / 257.0 + 0.5).astype(np.uint8)  # round(v / 257)
    return [
        Case(
            "cmyk-jpeg",
            "cmyk-jpeg",
            "ok",
            note="flat C/M/Y patches, K=0: RGB = 255 - CMY",
            file="cmyk.jpg",
            build=_file(encode(Image.fromarray(cmyk, "CMYK"), "JPEG", quality=100), cmyk_rgb),
        ),
        Case(
            "palette-png",
            "palette-png",
            "ok",
            file="palette.png",
            build=_file(encode(palette, "PNG"), pal_rgb),
        ),
        Case(
            "palette-png-transparency",
            "palette-png",
            "ok",
            note="tRNS chunk: the palette colours as stored",
            file="palette-trns.png",
            build=_file(encode(palette, "PNG", transparency=3), pal_rgb),
        ),
        Case(
            "palette-gif-transparency",
            "palette-png",
            "ok",
            file="palette-trns.gif",
            build=_file(encode(palette, "GIF", transparency=3), pal_rgb),
        ),
        Case(
            "rgba-png",
            "la-rgba",
            "ok",
            note="alpha dropped, colours as stored",
            file="rgba.png",
            build=_file(encode(rgba, "PNG"), rgba[..., :3]),
        ),
        Case(
            "rgba-webp",
            "la-rgba",
            "ok",
            file="rgba.webp",
            build=_file(encode(rgba, "WEBP", lossless=True, exact=True), rgba[..., :3]),
        ),
        Case(
            "la-png",
            "la-rgba",
            "ok",
            note="gray repeated, alpha dropped",
            file="la.png",
            build=_file(
                encode(Image.fromarray(la, "LA"), "PNG"), np.repeat(la[..., :1], 3, axis=2)
            ),
        ),
        Case(
            "la16-png",
            "la-rgba",
            "ok",
            note="16-bit gray+alpha: both bytes of the gray kept, round(v / 257), alpha dropped",
            file="la16.png",
            build=_file(la16, np.repeat(gray16_as_8[..., None], 3, axis=2)),
        ),
        Case(
            "la16-png-truncated",
            "truncated-png",
            "error",
            TRUNCATED,
            note="16-bit gray+alpha PNG, first half",
            file="la16-truncated.png",
            build=_file(la16[: len(la16) // 2]),
        ),
        Case(
            "mode-1-png",
            "la-rgba",
            "ok",
            file="bilevel.png",
            build=_file(
                encode(Image.fromarray(BASE[..., 0] > 127), "PNG"),
                np.repeat(np.where(BASE[..., :1] > 127, 255, 0), 3, 2).astype(np.uint8),
            ),
        ),
    ]


def _exif_cases() -> list[Case]:
    img = Image.fromarray(pattern(20, 36, seed=9))
    stored_jpeg = decode(encode(img, "JPEG", quality=90))
    cases = []
    for o in range(1, 9):
        cases.append(
            Case(
                f"exif-orientation-{o}-jpeg",
                "exif-orientation",
                "ok",
                note="pixels equal the numpy-rotated/flipped stored image",
                file=f"orient{o}.jpg",
                build=_file(
                    with_exif_orientation(img, "JPEG", o, quality=90), orient(stored_jpeg, o)
                ),
            )
        )
    for o in (3, 6, 8):
        cases.append(
            Case(
                f"exif-orientation-{o}-webp",
                "exif-orientation",
                "ok",
                file=f"orient{o}.webp",
                build=_file(
                    with_exif_orientation(img, "WEBP", o, lossless=True), orient(np.asarray(img), o)
                ),
            )
        )
    cases.append(
        Case(
            "exif-orientation-9-invalid",
            "exif-orientation",
            "ok",
            note="an invalid orientation value is ignored",
            file="orient9.jpg",
            build=_file(with_exif_orientation(img, "JPEG", 9, quality=90), stored_jpeg),
        )
    )
    return cases


def _animated_cases() -> list[Case]:
    frames = [
        np.full((12, 20, 3), c, np.uint8) for c in ((200, 30, 40), (10, 220, 30), (5, 6, 250))
    ]
    frames[0][3:6, 4:9] = (255, 255, 0)
    pil = [Image.fromarray(f) for f in frames]

    def animated(fmt: str, **kwargs: Any) -> bytes:
        return encode(pil[0], fmt, save_all=True, append_images=pil[1:], duration=50, **kwargs)

    gif = animated("GIF", loop=0)
    second = gif.index(b"\x21\xf9", gif.index(b"\x2c") + 1)  # graphic control of frame 2
    return [
        Case(
            "animated-gif",
            "animated",
            "ok",
            note="frame 0",
            file="anim.gif",
            build=_file(gif, frames[0]),
        ),
        Case(
            "animated-webp",
            "animated",
            "ok",
            note="frame 0",
            file="anim.webp",
            build=_file(animated("WEBP", lossless=True), frames[0]),
        ),
        Case(
            "animated-png",
            "animated",
            "ok",
            note="APNG: frame 0",
            file="anim.png",
            build=_file(animated("PNG"), frames[0]),
        ),
        Case(
            "animated-gif-truncated-after-frame-0",
            "animated",
            "ok",
            note="later frames are never read",
            file="anim-cut.gif",
            build=_file(gif[: second + 4], frames[0]),
        ),
    ]


# -- formats behind optional extras: HEIC (pillow-heif) and DNG (rawpy; written by tifffile) -------
#: Modules a case needs (``Case.needs``); a case whose modules are missing is not built or run.
NEEDS_MODULES = {
    "torch": ["torch"],
    "onnx": ["onnx", "onnxruntime", "onnxslim", "torch"],
    "trt": ["tensorrt_rtx", "onnx", "onnxslim", "torch"],
    "cuda": ["torch"],
    "heif": ["pillow_heif"],
    "raw": ["rawpy", "tifffile"],
    "video": ["av"],
}
HUGE = 100_000  # declared width and height: 10^10 pixels, above libheif's security limit
BIG = 20_000  # 4 * 10^8 pixels: within libheif's limit, above the default max_pixels
EXTRA_DAMAGE = "truncated or corrupt|not an image|cannot read image header"


def missing_modules(case: Case) -> list[str]:
    """The modules ``case`` needs that are not installed."""
    return [m for m in NEEDS_MODULES.get(case.needs, []) if importlib.util.find_spec(m) is None]


def heic_bytes() -> bytes:
    """A small 8-bit HEIC that pillow-heif writes."""
    import pillow_heif

    heif = pillow_heif.from_bytes("RGB", BASE.shape[1::-1], BASE.tobytes())
    buf = io.BytesIO()
    heif.save(buf, format="HEIF", quality=90)
    return buf.getvalue()


def heic_with_size(width: int, height: int) -> bytes:
    """:func:`heic_bytes` with every ``ispe`` (image extent) box declaring ``width x height``."""
    data = bytearray(heic_bytes())
    at = data.find(b"ispe")
    while at >= 0:
        data[at + 8 : at + 16] = struct.pack(">II", width, height)  # after version and flags
        at = data.find(b"ispe", at + 4)
    return bytes(data)


def dng_bytes() -> bytes:
    """A minimal DNG 1.4 RGGB mosaic (as in tests/test_raw.py) that tifffile writes."""
    import tifffile

    cfa = np.full((24, 32), 1600, np.uint16)
    cfa[0::2, 0::2] = cfa[1::2, 1::2] = 800
    tags = [
        (50706, "B", 4, (1, 4, 0, 0), True),  # DNGVersion
        (33421, "H", 2, (2, 2), True),  # CFARepeatPatternDim
        (33422, "B", 4, (0, 1, 1, 2), True),  # CFAPattern RGGB
        (50721, "2i", 9, (1, 1, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1, 0, 1, 1, 1), True),
        (50728, "2I", 3, (1, 2, 1, 1, 1, 2), True),  # AsShotNeutral
        (50717, "H", 1, 4095, True),  # WhiteLevel
        (271, "s", 0, "ipad-sdk corpus", True),  # Make
    ]
    buf = io.BytesIO()
    tifffile.imwrite(buf, cfa, photometric=32803, subfiletype=0, extratags=tags)
    return buf.getvalue()


def dng_with_tags(values: dict[int, int]) -> bytes:
    """:func:`dng_bytes` with the first IFD's tags in ``values`` rewritten as one LONG each."""
    data = bytearray(dng_bytes())
    at = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, at)[0]):
        entry = at + 2 + 12 * i
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in values:
            struct.pack_into("<HHII", data, entry, tag, 4, 1, values[tag])
    return bytes(data)


def _extra_format_cases() -> list[Case]:
    """Truncated, corrupt and huge-declared-size HEIC and DNG files: each a clear InputError."""

    def lazy(make: Callable[[], bytes]) -> Callable[[str], Any]:
        return lambda name: ({name: make()}, None)

    def cut(make: Callable[[], bytes], keep: float) -> Callable[[], bytes]:
        """The first ``keep`` bytes (a fraction of the file when below 1)."""

        def data() -> bytes:
            whole = make()
            return whole[: int(keep if keep >= 1 else len(whole) * keep)]

        return data

    bomb = "decompression bomb|" + EXTRA_DAMAGE
    spec = [
        # name, needs, data, match, note
        ("heic-truncated-at-16", "heif", cut(heic_bytes, 16), EXTRA_DAMAGE, "first 16 bytes"),
        ("heic-truncated-at-50pct", "heif", cut(heic_bytes, 0.5), EXTRA_DAMAGE, "first half"),
        ("heic-truncated-at-90pct", "heif", cut(heic_bytes, 0.9), EXTRA_DAMAGE, "90% kept"),
        ("heic-corrupt-meta", "heif", lambda: heic_bytes().replace(b"meta", b"mexa", 1),
         EXTRA_DAMAGE, "the meta box (item locations, properties) renamed"),
        ("heic-corrupt-iloc", "heif", lambda: heic_bytes().replace(b"iloc", b"ilox", 1),
         EXTRA_DAMAGE, "the item location box renamed: no image data"),
        ("heic-huge-declared-size", "heif", lambda: heic_with_size(HUGE, HUGE), bomb,
         f"ispe declares {HUGE}x{HUGE}: libheif's security limit refuses it"),
        ("heic-big-declared-size", "heif", lambda: heic_with_size(BIG, BIG), bomb,
         f"ispe declares {BIG}x{BIG}: libheif reports the coded 32x24 size, and the decoded "
         "image's size differs from the declared one"),
        ("dng-truncated-at-16", "raw", cut(dng_bytes, 16), EXTRA_DAMAGE, "first 16 bytes"),
        ("dng-truncated-at-33pct", "raw", cut(dng_bytes, 1 / 3), EXTRA_DAMAGE, "first third"),
        ("dng-corrupt-strip-offset", "raw", lambda: dng_with_tags({273: 1 << 30}),
         EXTRA_DAMAGE, "the mosaic's strip offset points 1 GiB past the end"),
        ("dng-corrupt-ifd-offset", "raw", lambda: flip(dng_bytes(), 7, 0x7F),
         EXTRA_DAMAGE, "the first IFD offset points far past the end"),
        ("dng-huge-declared-size", "raw", lambda: dng_with_tags({256: HUGE, 257: HUGE}), bomb,
         f"ImageWidth/ImageLength declare {HUGE}x{HUGE}: LibRaw refuses the file"),
        ("dng-big-declared-size", "raw", lambda: dng_with_tags({256: BIG, 257: BIG}), bomb,
         f"ImageWidth/ImageLength declare {BIG}x{BIG}: refused by max_pixels before the demosaic"),
    ]  # fmt: skip
    ext = {"heif": "heic", "raw": "dng"}
    return [
        Case(name, f"{name.split('-')[0]}-{name.split('-')[1]}", "error", match, note,
             file=f"{name}.{ext[needs]}", build=lazy(data), needs=needs)
        for name, needs, data, match, note in spec
    ]  # fmt: skip


# -- videos (PyAV): Matroska/WebM declare no frame count, only their size ------------------------
VIDEO_FRAMES = 8
VIDEO_MATCH = "truncated video|corrupt video|cannot open video|no video stream"


def video_bytes(fmt: str, codec: str) -> bytes:
    """``VIDEO_FRAMES`` frames of noise (64x48, 25 fps) that PyAV writes as ``fmt``."""
    import tempfile
    from fractions import Fraction

    import av

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip"
        with av.open(str(path), "w", format=fmt) as container:
            stream = container.add_stream(codec, rate=Fraction(25))
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            for i in range(VIDEO_FRAMES):
                noise = np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8)
                container.mux(stream.encode(av.VideoFrame.from_ndarray(noise, format="rgb24")))
            container.mux(stream.encode())
        return path.read_bytes()


def _unknown_size(data: bytes) -> bytes:
    """A Matroska file whose Segment declares an unknown size, as live recordings do."""
    at = data.index(b"\x18\x53\x80\x67") + 4
    return data[:at] + b"\x01" + b"\xff" * 7 + data[at + 8 :]


def _video_cases() -> list[Case]:
    """Truncated and corrupt Matroska/WebM files (no frame count declared): the frames that decode,
    then a clear InputError; and videos where an image is expected (``load_image``)."""

    def made(fmt: str, codec: str, edit: Callable[[bytes], bytes] = lambda d: d) -> Any:
        return lambda name: ({name: edit(video_bytes(fmt, codec))}, None)

    def keep(part: float) -> Callable[[bytes], bytes]:
        """The first ``part`` bytes (a fraction of the file when below 1)."""
        return lambda data: data[: int(part if part >= 1 else len(data) * part)]

    mkv, webm, vp9 = ("matroska", "mpeg4"), ("webm", "libvpx"), ("webm", "libvpx-vp9")
    not_image = "a video, not an image"
    spec = [
        # name, kind, expect, match, file, build, note
        ("video-mkv-whole", "video", "ok", "", "whole.mkv", made(*mkv), "every frame, no error"),
        ("video-mkv-truncated-at-50pct", "video", "error", VIDEO_MATCH, "cut50.mkv",
         made(*mkv, keep(0.5)), "first half: the frames before the cut, then the error"),
        ("video-mkv-truncated-at-99pct", "video", "error", VIDEO_MATCH, "cut99.mkv",
         made(*mkv, keep(0.99)), "only the index (Cues) cut: every frame, then the error"),
        ("video-webm-truncated-at-16", "video", "error", VIDEO_MATCH, "cut16.webm",
         made(*webm, keep(16)), "the EBML header only"),
        ("video-webm-truncated-at-50pct", "video", "error", VIDEO_MATCH, "cut50.webm",
         made(*webm, keep(0.5)), "VP8, first half"),
        ("video-webm-vp9-truncated-at-90pct", "video", "error", VIDEO_MATCH, "cut90-vp9.webm",
         made(*vp9, keep(0.9)), "VP9, 90% kept"),
        ("video-mkv-unknown-size-truncated", "video", "error", VIDEO_MATCH, "live-cut.mkv",
         made(*mkv, lambda d: keep(0.5)(_unknown_size(d))),
         "a live recording's unknown-size segment, cut: nothing declares what is missing"),
        ("video-mp4-zeroed-middle", "video", "error", VIDEO_MATCH, "zeroed.mp4",
         made("mp4", "mpeg4", lambda d: d[: len(d) // 2] + bytes(600) + d[len(d) // 2 + 600 :]),
         "600 bytes zeroed mid-file: the MPEG-4 decoder detects it (it would conceal it)"),
        ("video-webm-zeroed-middle", "video", "error", VIDEO_MATCH, "zeroed.webm",
         made(*webm, lambda d: d[: len(d) // 2] + bytes(600) + d[len(d) // 2 + 600 :]),
         "600 bytes zeroed mid-file: the demuxer skips to the next cluster"),
        ("video-mkv-as-image", "image", "error", not_image, "clip.mkv", made(*mkv),
         "load_image on a video: refused by its extension, before it is read"),
        ("video-webm-named-png", "image", "error", not_image, "clip-webm.png", made(*webm),
         "a WebM under an image's name: refused by its container (EBML magic)"),
    ]  # fmt: skip
    return [
        Case(name, f"video-{name.split('-')[1]}", expect, match, note, kind=kind, file=file,
             build=build, frames=VIDEO_FRAMES if expect == "ok" else None, needs="video")
        for name, kind, expect, match, file, build, note in spec
    ]  # fmt: skip


def video_cases() -> list[Case]:
    """Every video case of ``kind`` ``video`` (the ``image`` ones are in :func:`image_cases`)."""
    return [c for c in _video_cases() if c.kind == "video"]


def image_cases() -> list[Case]:
    """Every file-based image case."""
    return [
        *_truncated_cases(),
        *_corrupt_cases(),
        *_zero_and_wrong_extension_cases(),
        *_extreme_size_cases(),
        *_deep_cases(),
        *_mode_cases(),
        *_exif_cases(),
        *_animated_cases(),
        *_extra_format_cases(),
        *[c for c in _video_cases() if c.kind == "image"],
    ]


# -- in-memory cases -------------------------------------------------------------------------------
def _torch() -> Any:
    import torch

    return torch


def memory_cases() -> list[Case]:
    """Arrays, tensors and other objects passed directly (``make`` builds them)."""
    u8 = pattern(10, 14, seed=3)
    f = u8.astype(np.float64) / 255.0

    def c(
        name: str,
        cls: str,
        make: Callable[[], tuple[Any, np.ndarray | None]],
        expect: str,
        match: str = "",
        note: str = "",
        needs: str = "",
    ) -> Case:
        return Case(name, cls, expect, match, note, kind="memory", make=make, needs=needs)

    def err(obj: Callable[[], Any]) -> Callable[[], tuple[Any, None]]:
        return lambda: (obj(), None)

    nan = f.copy()
    nan[2, 3, 1] = np.nan
    cases = [
        c("array-nan", "array-values", err(lambda: nan), "error", "NaN or infinite"),
        c(
            "array-inf",
            "array-values",
            err(lambda: np.where(f > 0.5, np.inf, f)),
            "error",
            "NaN or infinite",
        ),
        c(
            "array-neg-inf-float32",
            "array-values",
            err(lambda: np.full((4, 4, 3), -np.inf, np.float32)),
            "error",
            "NaN or infinite",
        ),
        c(
            "array-float-above-1",
            "array-values",
            err(lambda: f * 255),
            "error",
            "must lie in \\[0, 1\\]",
        ),
        c(
            "array-float-negative",
            "array-values",
            err(lambda: f - 0.5),
            "error",
            "must lie in \\[0, 1\\]",
        ),
        c(
            "array-float16",
            "array-values",
            lambda: (
                f.astype(np.float16),
                np.round(f.astype(np.float16).astype(np.float64) * 255).astype(np.uint8),
            ),
            "ok",
        ),
    ]
    for dtype in ("int64", "int32", "int8", "uint32", "bool", "complex64", "object", "<U1"):
        cases.append(
            c(
                f"array-dtype-{dtype.strip('<')}",
                "array-dtype",
                err(lambda d=dtype: np.zeros((4, 5, 3), dtype=d)),
                "error",
                "unsupported dtype",
            )
        )
    for shape in ((4, 5, 2), (4, 5, 5), (2, 4, 5, 3), (5,), (), (3, 4, 5)):
        cases.append(
            c(
                f"array-shape-{'x'.join(map(str, shape)) or 'scalar'}",
                "array-shape",
                err(lambda s=shape: np.zeros(s, np.uint8)),
                "error",
                "expected an image of shape",
            )
        )
    for shape in ((0, 5, 3), (5, 0), (0, 0, 1)):
        cases.append(
            c(
                f"array-zero-size-{'x'.join(map(str, shape))}",
                "array-shape",
                err(lambda s=shape: np.zeros(s, np.uint8)),
                "error",
                "zero size",
            )
        )
    views = {
        "strided": lambda a: a[::2, ::3],
        "neg-stride-rows": lambda a: a[::-1],
        "neg-stride-all": lambda a: a[::-1, ::-1, ::-1],
        "fortran": np.asfortranarray,
        "transposed": lambda a: a.transpose(1, 0, 2),
        "channel-slice": lambda a: np.dstack([a, a])[:, :, 1:4],
    }
    for label, view in views.items():
        cases.append(
            c(
                f"array-view-{label}-uint8",
                "array-view",
                lambda v=view: (v(u8), np.ascontiguousarray(v(u8))),
                "ok",
                note="same as the contiguous copy",
            )
        )
        cases.append(
            c(
                f"array-view-{label}-float",
                "array-view",
                lambda v=view: (v(f), np.round(np.ascontiguousarray(v(f)) * 255).astype(np.uint8)),
                "ok",
            )
        )
    cases += [
        c(
            "array-big-endian-uint16",
            "array-values",
            lambda: (u8.astype(">u2") * 257, u8),
            "ok",
            note="'>u2' is byte-swapped, not misread",
        ),
        c(
            "list-of-lists",
            "other-type",
            err(lambda: u8.tolist()),
            "error",
            "unsupported input type list",
        ),
        c("none", "other-type", err(lambda: None), "error", "unsupported input type NoneType"),
        c("empty-bytes", "zero-byte", err(lambda: b""), "error", "0 bytes"),
        c(
            "bytes-of-a-path",
            "other-type",
            err(lambda: b"/tmp/photo.jpg"),
            "error",
            "not an image",
            note="bytes are encoded data, never a path",
        ),
        c(
            "pil-zero-size",
            "other-type",
            err(lambda: Image.new("RGB", (0, 3))),
            "error",
            "zero size",
        ),
    ]
    cases += _tensor_cases(c, err, u8)
    return cases


def _tensor_cases(c: Callable[..., Case], err: Callable[..., Any], u8: np.ndarray) -> list[Case]:
    def t(fn: Callable[[Any], Any]) -> Callable[[], Any]:
        return lambda: fn(_torch())

    chw = np.ascontiguousarray(u8.transpose(2, 0, 1))
    f = u8.astype(np.float32) / 255
    expect_f = np.round(f.astype(np.float64) * 255).astype(np.uint8)
    cases = [
        c(
            "tensor-uint8-chw",
            "tensor",
            lambda: (_torch().from_numpy(chw), u8),
            "ok",
            needs="torch",
        ),
        c(
            "tensor-hwc-rejected",
            "tensor",
            err(t(lambda th: th.from_numpy(u8))),
            "error",
            "expected a channels-first tensor",
            note="documented: tensors are CHW",
            needs="torch",
        ),
        c(
            "tensor-3x4x3-is-chw",
            "tensor",
            lambda: (_torch().from_numpy(u8[:3, :4].copy()), u8[:3, :4].transpose(1, 2, 0)),
            "ok",
            note="ambiguous 3xHx3: read as channels first, as documented",
            needs="torch",
        ),
        c(
            "tensor-non-contiguous",
            "tensor",
            lambda: (_torch().from_numpy(u8).permute(2, 0, 1)[:, ::2], u8[::2]),
            "ok",
            needs="torch",
        ),
        c(
            "tensor-requires-grad",
            "tensor",
            lambda: (_torch().from_numpy(f).permute(2, 0, 1).requires_grad_(), expect_f),
            "ok",
            needs="torch",
        ),
        c(
            "tensor-float-nan",
            "tensor",
            err(t(lambda th: th.full((3, 4, 4), float("nan")))),
            "error",
            "NaN or infinite",
            needs="torch",
        ),
        c(
            "tensor-cuda",
            "tensor",
            lambda: (_torch().from_numpy(chw).cuda(), u8),
            "ok",
            needs="cuda",
        ),
    ]
    for dtype in ("int32", "int64", "bool", "complex64", "int16"):
        cases.append(
            c(
                f"tensor-dtype-{dtype}",
                "tensor",
                err(t(lambda th, d=dtype: th.zeros((3, 4, 5), dtype=getattr(th, d)))),
                "error",
                "unsupported (tensor )?dtype",
                needs="torch",
            )
        )
    cases.append(
        c(
            "tensor-4d",
            "tensor",
            err(t(lambda th: th.zeros((1, 3, 4, 5)))),
            "error",
            "expected an image of shape",
            note="a batch is not an image",
            needs="torch",
        )
    )
    return cases


# -- model cases -----------------------------------------------------------------------------------
def _edit_safetensors(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Rewrite a safetensors header (JSON) through ``edit``; tensor data kept."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


def _edit_config(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        config = json.loads(header["__metadata__"]["ipad_config"])
        config[key] = value
        header["__metadata__"]["ipad_config"] = json.dumps(config)

    return edit


def _drop_first_tensor(header: dict[str, Any]) -> None:
    del header[sorted(k for k in header if k != "__metadata__")[0]]


def _reshape_first_tensor(header: dict[str, Any]) -> None:
    key = next(
        k
        for k in sorted(header)
        if k != "__metadata__" and len(set(header[k].get("shape", ()))) == 2
    )
    rows, cols = header[key]["shape"]
    header[key]["shape"] = [cols, rows]


def _poke_tensor(data: bytes, tensor: str, value: float | None = None, xor: int = 0) -> bytes:
    """Write ``value`` (float32) over the first element of ``tensor``, or XOR its lowest byte."""
    (n,) = struct.unpack("<Q", data[:8])
    at = 8 + n + json.loads(data[8 : 8 + n])[tensor]["data_offsets"][0]
    new = struct.pack("<f", value) if value is not None else bytes([data[at] ^ xor])
    return data[:at] + new + data[at + len(new) :]


def _foreign_safetensors() -> bytes:
    body = np.arange(4, dtype="<f4").tobytes()
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header + body


def _onnx_model(meta: dict[str, str] | None, input_type: int = 1, size: int = 64) -> bytes:
    """A one-node ONNX graph (Identity), with ``meta`` as its metadata_props."""
    import onnx
    from onnx import helper

    x = helper.make_tensor_value_info("images", input_type, ["B", 3, size, size])
    y = helper.make_tensor_value_info("y", input_type, ["B", 3, size, size])
    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in sorted((meta or {}).items()):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _onnx_meta(src: Sources) -> dict[str, str]:
    import onnx

    return {
        p.key: p.value for p in onnx.load(str(src.onnx), load_external_data=False).metadata_props
    }


def _onnx_with_meta(src: Sources, **changes: str) -> bytes:
    """The real export with its metadata edited (``ipad_config__KEY`` edits one config key)."""
    import onnx

    proto = onnx.load(str(src.onnx))
    meta = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        if key.startswith("ipad_config__"):
            config = json.loads(meta["ipad_config"])
            config[key.removeprefix("ipad_config__")] = json.loads(value)
            meta["ipad_config"] = json.dumps(config)
        else:
            meta[key] = value
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def _plan_files(
    name: str,
    src: Sources,
    plan: bytes | None = None,
    sidecar: Callable[[dict[str, Any]], None] | None = None,
    keep_sidecar: bool = True,
) -> Files:
    """A copy of the engine plan (``plan`` replaces its bytes) and its sidecar, edited."""
    assert src.plan is not None
    files: Files = {name: src.plan.read_bytes() if plan is None else plan}
    if keep_sidecar:
        meta = json.loads(Path(f"{src.plan}.json").read_text())
        if sidecar is not None:
            sidecar(meta)
        files[f"{name}.json"] = json.dumps(meta, indent=1).encode()
    return files


def _sidecar_edit(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set ``a/b/c`` in the sidecar; ``ipad_config/KEY`` edits the embedded config JSON."""

    def edit(meta: dict[str, Any]) -> None:
        keys = path.split("/")
        if keys[0] == "ipad_config":
            config = json.loads(meta["ipad_config"])
            config[keys[1]] = value
            meta["ipad_config"] = json.dumps(config)
            return
        node = meta
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


def model_cases() -> list[Case]:
    """Bundles, ONNX files and engine plans: valid controls and damaged copies."""

    def m(
        name: str,
        cls: str,
        file: str,
        build: Callable[[str, Sources], Files],
        expect: str,
        match: str = "",
        note: str = "",
        needs: str = "torch",
    ) -> Case:
        return Case(
            name,
            cls,
            expect,
            match,
            note,
            kind="model",
            file=file,
            build=lambda n, s: (build(n, s), None),
            needs=needs,
        )

    def raw(fn: Callable[[Sources], bytes]) -> Callable[[str, Sources], Files]:
        return lambda name, src: {name: fn(src)}

    bundle = lambda s: s.bundle.read_bytes()  # noqa: E731
    onnx_bytes = lambda s: s.onnx.read_bytes()  # noqa: E731
    text = b"definitely not a model\n" * 4
    not_bundle = "not a model bundle"
    cases = [
        m("bundle-valid", "bundle-valid", "ok.safetensors", raw(bundle), "ok", note="control"),
        m("bundle-upper-suffix", "bundle-valid", "ok.SAFETENSORS", raw(bundle), "ok"),
        m(
            "bundle-zero-byte",
            "bundle-truncated",
            "empty.safetensors",
            raw(lambda s: b""),
            "error",
            "file too short: 0 bytes",
        ),
        m(
            "bundle-truncated-4",
            "bundle-truncated",
            "t4.safetensors",
            raw(lambda s: bundle(s)[:4]),
            "error",
            "file too short",
        ),
        m(
            "bundle-truncated-in-header",
            "bundle-truncated",
            "th.safetensors",
            raw(lambda s: bundle(s)[:200]),
            "error",
            "no valid safetensors header",
        ),
        m(
            "bundle-truncated-50pct",
            "bundle-truncated",
            "t50.safetensors",
            raw(lambda s: bundle(s)[: len(bundle(s)) // 2]),
            "error",
            "corrupt model bundle",
        ),
        m(
            "bundle-truncated-minus-1",
            "bundle-truncated",
            "t-1.safetensors",
            raw(lambda s: bundle(s)[:-1]),
            "error",
            "corrupt model bundle",
        ),
        m(
            "bundle-huge-header-length",
            "bundle-corrupt",
            "hlen.safetensors",
            raw(lambda s: struct.pack("<Q", 2**62) + bundle(s)[8:]),
            "error",
            "no valid safetensors header",
            "length field 2**62: refused before allocating",
        ),
        m(
            "bundle-header-not-json",
            "bundle-corrupt",
            "hjson.safetensors",
            raw(lambda s: flip(bundle(s), 8)),
            "error",
            "header is not JSON",
        ),
        m(
            "bundle-config-not-json",
            "bundle-corrupt",
            "cjson.safetensors",
            raw(
                lambda s: _edit_safetensors(
                    bundle(s), lambda h: h["__metadata__"].update(ipad_config="{oops")
                )
            ),
            "error",
            "model config is not valid JSON",
        ),
        m(
            "bundle-config-invalid",
            "bundle-corrupt",
            "cbad.safetensors",
            raw(lambda s: _edit_safetensors(bundle(s), _edit_config("tau", -1.0))),
            "error",
            "invalid model config: tau",
        ),
        m(
            "bundle-config-newer",
            "bundle-foreign",
            "newer.safetensors",
            raw(lambda s: _edit_safetensors(bundle(s), _edit_config("format_version", 99))),
            "error",
            "newer than this SDK supports",
        ),
        m(
            "bundle-config-unknown-key",
            "bundle-foreign",
            "ukey.safetensors",
            raw(lambda s: _edit_safetensors(bundle(s), _edit_config("future", 1))),
            "error",
            "unknown model config keys",
        ),
        m(
            "bundle-tensor-missing",
            "bundle-corrupt",
            "missing.safetensors",
            raw(lambda s: _edit_safetensors(bundle(s), _drop_first_tensor)),
            "error",
            "corrupt model bundle|weights do not match its config: 1 missing",
        ),
        m(
            "bundle-tensor-shape",
            "bundle-corrupt",
            "shape.safetensors",
            raw(lambda s: _edit_safetensors(bundle(s), _reshape_first_tensor)),
            "error",
            "weights do not match its config: 1 shape",
        ),
        m(
            "bundle-nan-weight",
            "bundle-corrupt",
            "nan.safetensors",
            raw(lambda s: _poke_tensor(bundle(s), "anchors", value=float("nan"))),
            "error",
            "NaN|non-finite|not finite",
            "one class anchor weight set to NaN",
        ),
        m(
            "bundle-flipped-weight-bit",
            "bundle-corrupt",
            "bit.safetensors",
            raw(lambda s: _poke_tensor(bundle(s), "anchors", xor=1)),
            "ok",
            note="lowest mantissa bit of one weight: bundles carry no checksum, so this loads and "
            "runs (an undetectable, harmless change)",
        ),
        m(
            "bundle-foreign-safetensors",
            "bundle-foreign",
            "foreign.safetensors",
            raw(lambda s: _foreign_safetensors()),
            "error",
            "not an ipad-sdk model bundle",
        ),
        m(
            "bundle-is-onnx",
            "bundle-foreign",
            "onnx-renamed.safetensors",
            raw(onnx_bytes),
            "error",
            not_bundle,
        ),
        m(
            "bundle-is-text",
            "bundle-foreign",
            "text.safetensors",
            raw(lambda s: text),
            "error",
            not_bundle,
        ),
        m(
            "bundle-is-directory",
            "bundle-foreign",
            "dir.safetensors",
            lambda n, s: {n: None},
            "error",
            "is a directory",
        ),
        m(
            "bundle-missing",
            "bundle-foreign",
            "nowhere/missing.safetensors",
            lambda n, s: {},
            "error",
            "model file not found",
        ),
        m(
            "bundle-unknown-suffix",
            "bundle-foreign",
            "model.pt",
            raw(bundle),
            "error",
            "unsupported model file type '.pt'",
        ),
    ]
    not_loadable = "ONNX Runtime cannot load this file"
    cases += [
        m(
            "onnx-valid",
            "onnx-valid",
            "ok.onnx",
            raw(onnx_bytes),
            "ok",
            note="control",
            needs="onnx",
        ),
        m(
            "onnx-zero-byte",
            "onnx-truncated",
            "empty.onnx",
            raw(lambda s: b""),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-truncated-16",
            "onnx-truncated",
            "t16.onnx",
            raw(lambda s: onnx_bytes(s)[:16]),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-truncated-50pct",
            "onnx-truncated",
            "t50.onnx",
            raw(lambda s: onnx_bytes(s)[: len(onnx_bytes(s)) // 2]),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-truncated-minus-1",
            "onnx-truncated",
            "t-1.onnx",
            raw(lambda s: onnx_bytes(s)[:-1]),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-flipped-first-byte",
            "onnx-corrupt",
            "flip0.onnx",
            raw(lambda s: flip(onnx_bytes(s), 0)),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-foreign",
            "onnx-foreign",
            "foreign.onnx",
            raw(lambda s: _onnx_model(None)),
            "error",
            "not an ipad-sdk ipad-onnx file",
            "a valid ONNX graph without our metadata",
            needs="onnx",
        ),
        m(
            "onnx-foreign-with-metadata",
            "onnx-foreign",
            "identity.onnx",
            raw(lambda s: _onnx_model(_onnx_meta(s))),
            "error",
            "expected input 'images' and outputs",
            "our metadata on an Identity graph",
            needs="onnx",
        ),
        m(
            "onnx-metadata-uint8-graph-float",
            "onnx-foreign",
            "u8meta.onnx",
            raw(lambda s: _onnx_with_meta(s, input_format="uint8")),
            "error",
            "input is tensor\\(float\\).*metadata says uint8",
            needs="onnx",
        ),
        m(
            "onnx-metadata-image-size-32",
            "onnx-foreign",
            "size32.onnx",
            raw(
                lambda s: _onnx_with_meta(
                    s, ipad_config__image_size="32", ipad_config__clip_config=json.dumps(_clip32(s))
                )
            ),
            "error",
            "but the metadata says float \\[B,3,32,32\\]",
            needs="onnx",
        ),
        m(
            "onnx-metadata-newer",
            "onnx-foreign",
            "newer.onnx",
            raw(lambda s: _onnx_with_meta(s, format_version="99")),
            "error",
            "format version '99' is not supported",
            needs="onnx",
        ),
        m(
            "onnx-metadata-bad-precision",
            "onnx-foreign",
            "prec.onnx",
            raw(lambda s: _onnx_with_meta(s, precision="fp8")),
            "error",
            "bad precision/input_format metadata",
            needs="onnx",
        ),
        m(
            "onnx-is-bundle",
            "onnx-foreign",
            "bundle-renamed.onnx",
            raw(bundle),
            "error",
            not_loadable,
            needs="onnx",
        ),
        m(
            "onnx-is-text",
            "onnx-foreign",
            "text.onnx",
            raw(lambda s: text),
            "error",
            not_loadable,
            needs="onnx",
        ),
    ]
    cases += _plan_cases()
    return cases


def _clip32(src: Sources) -> dict[str, Any]:
    config = json.loads(_onnx_meta(src)["ipad_config"])["clip_config"]
    config["vision_cfg"]["image_size"] = 32
    return config


#: A valid plan on a machine without a GPU ends here (BackendUnavailable); with a GPU, the target
#: SM check (plans are built for SM86) or the engine/sidecar I/O comparison comes first.
_NEEDS_GPU = "no usable NVIDIA GPU|engine built for SM86|engine and metadata disagree"


def _plan_cases() -> list[Case]:
    def p(
        name: str, cls: str, build: Callable[[str, Sources], Files], match: str, note: str = ""
    ) -> Case:
        return Case(
            name,
            cls,
            "error",
            match,
            note,
            kind="model",
            file=f"{name}.plan",
            build=lambda n, s: (build(n, s), None),
            needs="trt",
        )

    def plan(s: Sources) -> bytes:
        assert s.plan is not None
        return s.plan.read_bytes()

    resized = "a sidecar edit that keeps the plan's size and SHA-256 valid; "
    io_note = (
        "the I/O check compares engine and sidecar only after deserialising the plan, "
        "which needs a GPU: on a CPU machine the disagreement is not reported"
    )
    return [
        p(
            "plan-valid",
            "plan-valid",
            lambda n, s: _plan_files(n, s),
            _NEEDS_GPU,
            "control: an SM86 plan",
        ),
        p(
            "plan-zero-byte",
            "plan-truncated",
            lambda n, s: _plan_files(n, s, b""),
            "the plan is 0 bytes but was built as",
        ),
        p(
            "plan-truncated-64",
            "plan-truncated",
            lambda n, s: _plan_files(n, s, plan(s)[:64]),
            "the plan is 64 bytes .* rebuild",
        ),
        p(
            "plan-truncated-50pct",
            "plan-truncated",
            lambda n, s: _plan_files(n, s, plan(s)[: len(plan(s)) // 2]),
            "truncated or replaced",
        ),
        p(
            "plan-truncated-minus-1",
            "plan-truncated",
            lambda n, s: _plan_files(n, s, plan(s)[:-1]),
            "truncated or replaced",
        ),
        p(
            "plan-flipped-byte",
            "plan-corrupt",
            lambda n, s: _plan_files(n, s, flip(plan(s), len(plan(s)) // 3)),
            "SHA-256 does not match its sidecar",
        ),
        p(
            "plan-missing-sidecar",
            "plan-sidecar",
            lambda n, s: _plan_files(n, s, keep_sidecar=False),
            "sidecar .* is missing",
        ),
        p(
            "plan-sidecar-not-json",
            "plan-sidecar",
            lambda n, s: _plan_files(n, s) | {f"{n}.json": b"{not json"},
            "engine metadata is not valid JSON",
        ),
        p(
            "plan-sidecar-foreign",
            "plan-sidecar",
            lambda n, s: _plan_files(n, s) | {f"{n}.json": b'{"hello": "world"}'},
            "not an ipad-sdk engine sidecar",
        ),
        p(
            "plan-sidecar-unknown-flavour",
            "plan-sidecar",
            lambda n, s: _plan_files(n, s, sidecar=_sidecar_edit("tensorrt/flavour", "trt-x")),
            "unknown TensorRT flavour 'trt-x'",
        ),
        p(
            "plan-sidecar-other-version",
            "plan-sidecar",
            lambda n, s: _plan_files(n, s, sidecar=_sidecar_edit("tensorrt/version", "0.1")),
            "built with tensorrt-rtx 0.1 but .* is installed",
        ),
        p(
            "plan-sidecar-io-dtype",
            "plan-sidecar-io",
            lambda n, s: _plan_files(
                n, s, sidecar=_sidecar_edit("tensorrt/io/pixel_probs/dtype", "HALF")
            ),
            _NEEDS_GPU,
            resized + io_note,
        ),
        p(
            "plan-sidecar-io-names",
            "plan-sidecar-io",
            lambda n, s: _plan_files(n, s, sidecar=_sidecar_edit("tensorrt/io", {})),
            _NEEDS_GPU,
            resized + io_note,
        ),
        p(
            "plan-config-five-classes",
            "plan-sidecar-io",
            lambda n, s: _plan_files(
                n,
                s,
                sidecar=_sidecar_edit(
                    "ipad_config/classes", ["clean", "ghosting", "flare", "moire", "blur"]
                ),
            ),
            _NEEDS_GPU,
            resized + "the engine has 4 class outputs; " + io_note,
        ),
        p(
            "plan-config-image-size",
            "plan-sidecar-io",
            lambda n, s: _plan_files(n, s, sidecar=_sidecar_edit("ipad_config/image_size", 32)),
            "vision_cfg.image_size 64 != image_size 32",
            "config validation catches a half-edited image size before the GPU",
        ),
        p(
            "plan-config-mean",
            "plan-sidecar-io",
            lambda n, s: _plan_files(n, s, sidecar=_sidecar_edit("ipad_config/mean", [0, 0, 0])),
            _NEEDS_GPU,
            resized + "normalisation is not part of the engine's I/O: even on a GPU "
            "this would run with the wrong mean (silently different scores)",
        ),
    ]


# -- metadata mutations: every config field by type, range and size, in every model format ---------
def _nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"a": value}
    return value


_WRONG_TYPES: dict[str, dict[str, Any]] = {  # JSON kind of a field -> values of other kinds
    "int": {"string": "7", "null": None, "float": 7.5, "bool": True, "list": [7]},
    "number": {"string": "0.5", "null": None, "bool": True, "list": [0.5]},
    "text": {"number": 7, "null": None, "list": ["x"]},
    "list": {"string": "abcd", "null": None, "number": 7, "object": {}},
    "object": {"string": "x", "null": None, "list": [1]},
    "bool": {"string": "no", "number": 1, "null": None},
}
_FIELD_KINDS = {
    "backbone": "text", "clip_config": "object", "image_size": "int", "feature_layers": "list",
    "n_adapt": "int", "beta": "number", "tau": "number", "adapter_act": "text",
    "classes": "list", "mean": "list", "std": "list", "image_threshold": "number",
    "pixel_threshold": "number", "trained": "bool", "description": "text", "extra": "object",
    "format_version": "int",
}  # fmt: skip
#: Values of the right JSON type that are out of range or too large, by field.
_BAD_VALUES: dict[str, dict[str, Any]] = {
    "backbone": {"129-chars": "b" * 129},
    "clip_config": {"empty": {}, "nested-200": _nested(200)},
    "image_size": {"zero": 0, "negative": -64, "huge": 10**6, "not-patch-multiple": 70},
    "feature_layers": {"empty": [], "zero": [0], "past-depth": [99], "decreasing": [2, 1],
                       "257-items": list(range(1, 258))},
    "n_adapt": {"negative": -1, "past-depth": 10**6},
    "beta": {"negative": -0.5, "above-1": 1.5, "nan": float("nan"), "inf": float("inf")},
    "tau": {"zero": 0, "negative": -1.0, "inf": float("inf")},
    "adapter_act": {"unknown": "swish", "129-chars": "a" * 129},
    "classes": {"one": ["clean"], "duplicate": ["clean", "clean"], "empty-name": ["clean", ""],
                "int-names": [0, 1, 2, 3], "257-names": [f"c{i}" for i in range(257)],
                "129-char-name": ["clean", "n" * 129]},
    "mean": {"two": [0.5, 0.5], "four": [0.5] * 4, "strings": ["a", "b", "c"],
             "nan": [float("nan")] * 3},
    "std": {"zero": [0.0, 0.0, 0.0], "negative": [-1.0, 1.0, 1.0], "1000-items": [1.0] * 1000},
    "image_threshold": {"negative": -0.1, "above-1": 1.1},
    "pixel_threshold": {"negative": -0.1, "above-1": 1.1},
    "description": {"65537-chars": "d" * 65537, "2-MiB": "d" * 2**21},
    "extra": {"nested-200": _nested(200)},
    "format_version": {"zero": 0, "negative": -1, "newer": 99},
}  # fmt: skip
_REQUIRED_FIELDS = ("backbone", "clip_config", "image_size", "feature_layers")


def config_mutations() -> list[tuple[str, str, Callable[[dict[str, Any]], None]]]:
    """``(name, pattern its error must match, edit of the config dict)`` for every config field
    mutated by JSON type, by range and by size, and for every required field removed."""

    def setter(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        return lambda config: config.__setitem__(key, value)

    out = []
    for key, kind in _FIELD_KINDS.items():
        named = key.replace("_", "[_ ]") + "|ipad_config must be a JSON string|nested deeper"
        for label, value in (_WRONG_TYPES[kind] | _BAD_VALUES.get(key, {})).items():
            out.append((f"{key}-{label}", named, setter(key, value)))
    for key in _REQUIRED_FIELDS:
        out.append((f"{key}-missing", f"incomplete model config.*{key}",
                     lambda config, k=key: config.pop(k)))  # fmt: skip
    return out


def _edited_config(text: str, edit: Callable[[dict[str, Any]], None]) -> str:
    config = json.loads(text)
    edit(config)
    return json.dumps(config)


def _onnx_meta_edit(src: Sources, edit: Callable[[dict[str, str]], None]) -> bytes:
    """The real ONNX export with its ``metadata_props`` (as a dict) changed by ``edit``."""
    import onnx

    proto = onnx.load(str(src.onnx))
    meta = {p.key: p.value for p in proto.metadata_props}
    edit(meta)
    del proto.metadata_props[:]
    for key, value in sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


#: metadata_props of an ONNX file are strings: their mutations are values, sizes and absences.
_ONNX_PROPS: dict[str, dict[str, tuple[str | None, str]]] = {  # key -> label -> (value, match)
    "precision": {"empty": ("", "bad precision"), "upper": ("FP32", "bad precision"),
                  "fp16-on-fp32-graph": ("fp16", "'precision' is 'fp16', but the graph"),
                  "100k-chars": ("p" * 10**5, "bad precision"), "missing": (None, "bad precision")},
    "input_format": {"empty": ("", "bad precision/input_format"),
                     "rgb": ("rgb", "bad precision/input_format"),
                     "uint8-on-float-graph": ("uint8", "metadata says uint8"),
                     "missing": (None, "bad precision/input_format")},
    "format_version": {"empty": ("", "format version ''"), "zero": ("0", "format version '0'"),
                       "negative": ("-1", "format version '-1'"),
                       "float": ("1.0", "format version '1.0'"),
                       "huge": ("9" * 30, "format version '9+'"),
                       "missing": (None, "format version ''")},
    "format": {"bundle": ("ipad-bundle", "not an ipad-sdk ipad-onnx file"),
               "missing": (None, "not an ipad-sdk ipad-onnx file")},
    "ipad_config": {"list": ("[]", "not a JSON object"), "null": ("null", "not a JSON object"),
                    "string": ('"x"', "not a JSON object"), "number": ("7", "not a JSON object"),
                    "deep": ("[" * 100_000 + "]" * 100_000, "nested deeper"),
                    "2-MiB": (" " * 2**21 + "{}", "ipad_config must be a JSON string"),
                    "missing": (None, "not an ipad-sdk ipad-onnx file")},
}  # fmt: skip


def _set_prop(key: str, value: str | None) -> Callable[[dict[str, str]], None]:
    return lambda meta: meta.pop(key) if value is None else meta.__setitem__(key, value)


def _fake_plan_files(name: str, src: Sources, edit: Callable[[dict[str, Any]], None]) -> Files:
    """A stand-in plan (bytes that no TensorRT reads) and a sidecar that records its size and hash
    like ``export/build_trt.py``, edited by ``edit``: every sidecar check runs before TensorRT."""
    import hashlib

    from ipad_sdk.metadata import read_bundle_config

    plan = b"not a real engine " * 8
    meta: dict[str, Any] = {
        "format": "ipad-engine", "ipad_config": read_bundle_config(src.bundle).to_json(),
        "precision": "fp16", "input_format": "float", "format_version": "1",
        "tensorrt": {"flavour": "tensorrt-rtx", "plan_bytes": len(plan),
                     "plan_sha256": hashlib.sha256(plan).hexdigest()},
    }  # fmt: skip
    edit(meta)
    return {name: plan, f"{name}.json": json.dumps(meta).encode()}


#: Sidecar fields outside the config: label -> (edit, match).
_SIDECAR_EDITS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "plan-bytes-string": (lambda m: m["tensorrt"].update(plan_bytes="144"),
                          "tensorrt.plan_bytes must be an integer"),
    "plan-bytes-null": (lambda m: m["tensorrt"].update(plan_bytes=None),
                        "tensorrt.plan_bytes must be an integer"),
    "plan-bytes-negative": (lambda m: m["tensorrt"].update(plan_bytes=-1),
                            "tensorrt.plan_bytes must be an integer >= 0"),
    "plan-bytes-float": (lambda m: m["tensorrt"].update(plan_bytes=144.0),
                         "tensorrt.plan_bytes must be an integer"),
    "plan-sha256-number": (lambda m: m["tensorrt"].update(plan_sha256=5),
                           "tensorrt.plan_sha256 must be a string"),
    "tensorrt-string": (lambda m: m.update(tensorrt="x"), "no 'tensorrt' object"),
    "tensorrt-list": (lambda m: m.update(tensorrt=[]), "no 'tensorrt' object"),
    "precision-number": (lambda m: m.update(precision=16), "bad precision"),
    "format-version-number": (lambda m: m.update(format_version=1), "format version ''"),
    "config-object": (lambda m: m.update(ipad_config={}), "not an ipad-sdk ipad-engine file"),
    "sidecar-list": (lambda m: m.clear(), "no 'tensorrt' object"),
    "deep": (lambda m: m.update(extra=_nested(100)), "nested deeper"),
}  # fmt: skip


def metadata_cases() -> list[Case]:
    """Every config field mutated in a bundle, in an ONNX file's ``ipad_config`` and in an engine
    sidecar; the ONNX ``metadata_props`` and the sidecar's own fields mutated too. Each must be a
    ModelError naming the file and the field."""

    def case(name: str, cls: str, file: str, files: Callable[[str, Sources], Files], match: str,
             needs: str) -> Case:  # fmt: skip
        return Case(name, cls, "error", match, kind="model", file=file,
                    build=lambda n, s: (files(n, s), None), needs=needs)  # fmt: skip

    cases = []
    for name, match, edit in config_mutations():
        bundle_edit = lambda h, e=edit: h["__metadata__"].update(  # noqa: E731
            ipad_config=_edited_config(h["__metadata__"]["ipad_config"], e)
        )
        onnx_edit = lambda m, e=edit: m.update(  # noqa: E731
            ipad_config=_edited_config(m["ipad_config"], e)
        )
        cases += [
            case(f"meta-bundle-{name}", "meta-bundle", f"meta-{name}.safetensors",
                 lambda n, s, e=bundle_edit: {n: _edit_safetensors(s.bundle.read_bytes(), e)},
                 match, "torch"),
            case(f"meta-onnx-{name}", "meta-onnx", f"meta-{name}.onnx",
                 lambda n, s, e=onnx_edit: {n: _onnx_meta_edit(s, e)}, match, "onnx"),
            case(f"meta-plan-{name}", "meta-plan-sidecar", f"meta-{name}.plan",
                 lambda n, s, e=onnx_edit: _fake_plan_files(n, s, e), match, ""),
        ]  # fmt: skip
    for key, labels in _ONNX_PROPS.items():
        for label, (value, match) in labels.items():
            edit = _set_prop(key, value)
            cases.append(case(f"meta-onnx-prop-{key}-{label}", "meta-onnx-props",
                              f"prop-{key}-{label}.onnx",
                              lambda n, s, e=edit: {n: _onnx_meta_edit(s, e)},
                              match, "onnx"))  # fmt: skip
    for label, (edit, match) in _SIDECAR_EDITS.items():
        cases.append(case(f"meta-plan-{label}", "meta-plan-sidecar", f"sidecar-{label}.plan",
                          lambda n, s, e=edit: _fake_plan_files(n, s, e), match, ""))  # fmt: skip
    return cases


def all_cases() -> list[Case]:
    return [*image_cases(), *video_cases(), *memory_cases(), *model_cases(), *metadata_cases()]


# -- output cases: `ipad detect` writing where it cannot ------------------------------------------
#: What a detect run must end in: exit 0 with every output written, exit 1 with per-file OutputError
#: records naming the path, or exit 2 with a message naming it; never a traceback or a *.tmp file.
OUTPUT_EXITS = {"ok": 0, "record": 1, "stop": 2}


@dataclass(frozen=True)
class OutputCase:
    """One ``ipad detect --save-masks`` run: ``inputs`` (names in the input folder), ``prepare``
    (applied to the ``--out`` path first), ``fsize`` (RLIMIT_FSIZE of the run, bytes), ``expect``
    (a key of :data:`OUTPUT_EXITS`) and ``names``: the path under ``--out`` the message names."""

    name: str
    expect: str
    names: str = ""
    note: str = ""
    inputs: tuple[str, ...] = ("a.png", "b.png")
    prepare: Callable[[Path], None] | None = field(default=None, repr=False)
    fsize: int | None = None


def _mkdir(rel: str) -> Callable[[Path], None]:
    return lambda out: (out / rel).mkdir(parents=True)


def _write(rel: str) -> Callable[[Path], None]:
    def prepare(out: Path) -> None:
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text("in the way\n")

    return prepare


def _read_only(out: Path) -> None:
    out.mkdir()
    out.chmod(0o555)


def output_cases() -> list[OutputCase]:
    """Long names, collisions, a read-only folder and a full disk on the output side."""
    long78, long83 = "写" * 78 + ".jpg", "写" * 83 + ".jpg"  # 238 and 253 bytes
    return [
        OutputCase("long-name-78-chars", "ok", note="the report's 234-byte stem",
                   inputs=(long78, "a.png")),
        OutputCase("long-name-83-chars", "ok", note="name + '.png' is 257 bytes > NAME_MAX",
                   inputs=(long83, "a.png")),
        OutputCase("mask-name-is-a-folder", "record", "masks/a.png.png",
                   "a folder masks/a.png.png/ where a.png's mask goes",
                   prepare=_mkdir("masks/a.png.png/x")),
        OutputCase("masks-folder-is-a-file", "record", "masks", "a file where masks/ goes",
                   prepare=_write("masks")),
        OutputCase("out-is-a-file", "stop", note="--out names a file", prepare=_write("")),
        # Tests run as root, which writes through 0o555: RLIMIT_FSIZE 0 makes the folder
        # unwritable for root too (EFBIG instead of EACCES); both name a path under --out.
        OutputCase("read-only-out", "stop", note="--out is mode 0o555, RLIMIT_FSIZE 0",
                   prepare=_read_only, fsize=0),
        OutputCase("disk-full-at-first-write", "stop", note="RLIMIT_FSIZE 0", fsize=0),
        OutputCase("disk-full-mid-run", "stop", note="RLIMIT_FSIZE 600 bytes: the first writes fit",
                   inputs=tuple(f"{c}.png" for c in "abcdef"), fsize=600),
    ]  # fmt: skip


def run_output_case(case: OutputCase, root: Path, bundle: Path) -> Outcome:
    """Run ``case`` under ``root`` in a subprocess (so RLIMIT_FSIZE binds it alone) and judge it."""
    import resource
    import subprocess
    import sys

    images, out = root / "in", root / "out"
    images.mkdir(parents=True)
    for i, name in enumerate(case.inputs):
        (images / name).write_bytes(encode(pattern(24, 32, seed=i), "PNG"))
    if case.prepare:
        case.prepare(out)
    limit = case.fsize

    def preexec() -> None:
        if limit is not None:  # Python ignores SIGXFSZ: a write past the limit fails with EFBIG
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    command = [sys.executable, "-m", "ipad_sdk.cli", "detect", str(images), "-m", str(bundle),
               "-o", str(out), "--save-masks", "--device", "cpu", "-q"]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, preexec_fn=preexec)
    seconds = time.perf_counter() - start
    problem = _output_problem(case, done.returncode, done.stderr, out)
    return Outcome(f"WRONG: {problem}" if problem else _OUTPUT_STATUS[case.expect],
                   done.stderr.strip()[-300:], seconds)  # fmt: skip


_OUTPUT_STATUS = {"ok": "correct result", "record": "clear error", "stop": "clear error"}


def _output_problem(case: OutputCase, code: int, stderr: str, out: Path) -> str:
    """What ``case``'s run did wrong ('' when nothing)."""
    if "Traceback" in stderr:
        return f"traceback (exit {code})"
    if code != OUTPUT_EXITS[case.expect]:
        return f"exit {code}, expected {OUTPUT_EXITS[case.expect]}: {stderr.strip()[-200:]}"
    if out.is_dir() and (tmp := sorted(p.name for p in out.rglob("*.tmp"))):
        return f"temporary files left: {tmp}"
    named = str(out / case.names) if case.names else str(out)
    if case.expect == "stop":
        if named not in stderr:
            return f"the message does not name {named}"
        return "results file written" if (out / "results.jsonl").exists() else ""
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    if sorted(Path(r["source"]).name for r in records) != sorted(case.inputs):
        return "not one record per input"
    for record in records:
        if "mask" in record:
            if not (out / record["mask"]).is_file():
                return f"{record['mask']} not written"
        elif case.expect == "ok" or record.get("error_type") != "OutputError":
            return f"no mask and no OutputError for {record['source']}"
        elif named not in record["error"]:
            return f"the OutputError does not name {named}: {record['error']}"
    if case.expect == "record" and all("mask" in r for r in records):
        return "no OutputError record"
    return ""


# -- building and evaluating -----------------------------------------------------------------------
def build_cases(cases: list[Case], out: Path, sources: Sources | None = None) -> dict[str, Any]:
    """Write the file cases under ``out`` (expected pixels as ``<file>.expected.npy``) and
    ``out/manifest.json``; model cases need ``sources`` (plan cases also ``sources.plan``)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for case in cases:
        entry = case.entry()
        if case.kind == "memory":
            entries.append(entry)
            continue
        if missing_modules(case):
            continue
        if case.kind == "model":
            if sources is None or (case.needs == "trt" and sources.plan is None):
                continue
            files, expected = case.build(case.file, sources)
        else:
            files, expected = case.build(case.file)
        for rel, data in files.items():
            path = out / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if data is None:
                path.mkdir(exist_ok=True)
            else:
                path.write_bytes(data)
        if expected is not None:
            np.save(out / f"{case.file}.expected.npy", np.ascontiguousarray(expected))
            entry["expected"] = f"{case.file}.expected.npy"
        entries.append(entry)
    manifest = {"cases": entries, "classes": sorted({e["class"] for e in entries})}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    return manifest


@dataclass
class Outcome:
    """What an input did: ``status`` is ``"clear error"``, ``"correct result"`` or
    ``"WRONG: ..."``; ``detail`` the message or problem; ``seconds`` the call's time."""

    status: str
    detail: str
    seconds: float

    @property
    def wrong(self) -> bool:
        return self.status.startswith("WRONG")


def case_input(case: Case, root: Path) -> tuple[Any, np.ndarray | None]:
    """The object to pass for ``case`` (built corpus under ``root``) and its expected pixels."""
    if case.kind == "memory":
        return case.make()
    expected = root / f"{case.file}.expected.npy"
    return str(root / case.file), np.load(expected) if expected.exists() else None


def evaluate(case: Case, obj: Any, expected: np.ndarray | None) -> Outcome:
    """Run ``obj`` through ``load_image`` (image/memory cases), every frame of
    ``ipad_sdk.video.iter_frames`` (video cases) or ``Detector`` plus one ``detect`` (model cases)
    and judge the outcome against ``case``."""
    from ipad_sdk import Detector
    from ipad_sdk.io import describe, load_image

    name = describe(obj)
    time_limit = MODEL_TIME_LIMIT_S if case.kind == "model" else TIME_LIMIT_S
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if case.kind == "model":
                detector = Detector(obj, device="auto" if case.needs == "trt" else "cpu")
                result = detector.detect(pattern(40, 56))
            elif case.kind == "video":
                from ipad_sdk.io import DEFAULT_MAX_PIXELS
                from ipad_sdk.video import iter_frames

                result = [frame.index for frame in iter_frames(obj, 1, DEFAULT_MAX_PIXELS)]
            else:
                result = load_image(obj)
    except Exception as exc:  # noqa: BLE001 -- judging every exception is the point
        seconds = time.perf_counter() - start
        message = f"{type(exc).__name__}: {exc}"
        if type(exc).__name__ not in ERROR_TYPES:
            return Outcome("WRONG: unexpected exception type", message, seconds)
        if case.expect == "ok":
            return Outcome("WRONG: error on a valid input", message, seconds)
        if name not in str(exc):
            return Outcome("WRONG: input not named in the message", message, seconds)
        if not re.search(case.match, str(exc)):
            return Outcome(f"WRONG: message does not match {case.match!r}", message, seconds)
        if seconds > time_limit:
            return Outcome("WRONG: slower than the limit", message, seconds)
        return Outcome("clear error", message, seconds)
    seconds = time.perf_counter() - start
    if case.expect == "error":
        return Outcome("WRONG: no error (silent wrong answer)", "returned a result", seconds)
    if case.kind == "model":
        problem = check_result(result, (40, 56))
    elif case.kind == "video":
        want = list(range(case.frames or 0))
        problem = "" if result == want else f"frames {result}, expected {want}"
    else:
        problem = _check_pixels(result, expected, case.shape)
    if problem:
        return Outcome("WRONG: wrong result", problem, seconds)
    if seconds > time_limit:
        return Outcome("WRONG: slower than the limit", f"{seconds:.2f} s", seconds)
    return Outcome("correct result", "", seconds)


def _check_pixels(got: Any, expected: np.ndarray | None, shape: tuple[int, int] | None) -> str:
    if not isinstance(got, np.ndarray) or got.dtype != np.uint8 or got.ndim != 3:
        return f"not an HxWx3 uint8 array: {type(got).__name__} {getattr(got, 'shape', '')}"
    if got.shape[2] != 3 or not got.flags.c_contiguous:
        return f"shape {got.shape}, C-contiguous {got.flags.c_contiguous}"
    if expected is not None:
        if got.shape != expected.shape:
            return f"shape {got.shape} != expected {expected.shape}"
        diff = int(np.abs(got.astype(int) - expected.astype(int)).max()) if got.size else 0
        if diff:
            return f"pixels differ from the expectation by up to {diff}"
    elif shape is not None and got.shape[:2] != tuple(shape):
        return f"shape {got.shape[:2]} != expected {tuple(shape)}"
    return ""


def check_result(result: Any, hw: tuple[int, int]) -> str:
    """Problems of a detection :class:`Result` for an ``hw`` image ('' when none)."""
    probs = np.array(list(result.scores.values()))
    if not np.isfinite(probs).all() or abs(float(probs.sum()) - 1.0) > 1e-4:
        return f"class probabilities {probs} do not sum to 1"
    heat = result.heatmap
    if heat.shape != hw or result.mask.shape != hw:
        return f"heatmap {heat.shape} / mask {result.mask.shape} != image size {hw}"
    if not (np.isfinite(heat).all() and heat.min() >= 0 and heat.max() <= 1):
        return "heatmap values outside [0, 1]"
    return ""


def make_sources(out: Path) -> Sources:
    """Build the valid model files with the repository's own exporters: a tiny untrained bundle,
    its FP32 ONNX export and (with TensorRT for RTX) an SM86 engine plan."""
    from ipad_sdk.model import TINY_BACKBONE, build_ipad_clip, save_bundle

    out.mkdir(parents=True, exist_ok=True)
    model = build_ipad_clip(TINY_BACKBONE, seed=0, description="corpus source")
    bundle = save_bundle(model, out / "tiny.safetensors")
    return sources_from_bundle(bundle, out)


def sources_from_bundle(bundle: Path, out: Path) -> Sources:
    """Export ``bundle`` to ONNX and, where TensorRT for RTX is installed, an SM86 plan."""
    from ipad_sdk.export.onnx import export_onnx

    onnx_path = export_onnx(bundle, out / "tiny.onnx")
    try:
        import tensorrt_rtx  # noqa: F401

        from ipad_sdk.export.trt import build_engine
    except ImportError:
        return Sources(bundle, onnx_path)
    fp16 = export_onnx(bundle, out / "tiny.fp16.onnx", fp16=True)
    plan = out / "tiny.plan"
    build_engine(fp16, plan, sm="86", batch=(1, 4, 8), progress=False)
    return Sources(bundle, onnx_path, plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder to write the corpus into")
    parser.add_argument("--images-only", action="store_true", help="skip the model cases")
    args = parser.parse_args(argv)
    sources = None if args.images_only else make_sources(args.out / "_sources")
    manifest = build_cases(all_cases(), args.out, sources)
    print(f"{len(manifest['cases'])} cases in {len(manifest['classes'])} classes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
