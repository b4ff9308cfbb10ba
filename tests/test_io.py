"""Tests of :func:`ipad_sdk.load_image`: every accepted input kind and every rejected one.

Expected pixel values are computed independently in the tests (integer arithmetic, numpy index
tricks or Pillow's own decoder on the same file), never by calling into ipad_sdk.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from ipad_sdk import InputError, IpadError, load_image
from ipad_sdk.io import load_pixels

# --------------------------------------------------------------------------------------------------
# helpers


def _rgb(h: int = 6, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _gray3(plane: np.ndarray) -> np.ndarray:
    """A HxW uint8 plane repeated to HxWx3 (what grayscale inputs must become)."""
    plane = np.asarray(plane, dtype=np.uint8)
    return np.stack([plane, plane, plane], axis=-1)


def _u16_to_u8(values: np.ndarray) -> np.ndarray:
    """round(v / 257) in exact integer arithmetic (v / 257 is never exactly x.5)."""
    v = np.asarray(values, dtype=np.int64)
    return ((2 * v + 257) // 514).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_with_size(width: int, height: int) -> bytes:
    """A real 1x1 grayscale PNG whose IHDR is patched to declare ``width x height`` (valid CRC)."""
    data = _encode(Image.new("L", (1, 1), 7), "PNG")
    assert data[12:16] == b"IHDR"
    ihdr = bytearray(data[16:29])
    ihdr[0:8] = struct.pack(">II", width, height)
    return data[:8] + _png_chunk(b"IHDR", bytes(ihdr)) + data[33:]


def _png16(array: np.ndarray) -> bytes:
    """Hand-encode a 16-bit grayscale (HxW) or RGB (HxWx3) PNG (Pillow cannot write 16-bit RGB)."""
    h, w = array.shape[:2]
    color_type = 2 if array.ndim == 3 else 0
    raw = b"".join(b"\x00" + array[y].astype(">u2").tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def _assert_rgb_u8(out: np.ndarray, h: int, w: int) -> None:
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.uint8
    assert out.shape == (h, w, 3)
    assert out.flags["C_CONTIGUOUS"]


def _assert_input_error(excinfo: pytest.ExceptionInfo, name: str, *words: str) -> str:
    err = excinfo.value
    assert isinstance(err, InputError)
    assert isinstance(err, ValueError)
    assert isinstance(err, IpadError)
    msg = str(err)
    assert name in msg, f"{name!r} not in {msg!r}"
    for word in words:
        assert word.lower() in msg.lower(), f"{word!r} not in {msg!r}"
    return msg


# --------------------------------------------------------------------------------------------------
# paths to lossless files: exact round trip

LOSSLESS = [
    ("png", "PNG", {}),
    ("bmp", "BMP", {}),
    ("tif", "TIFF", {}),
    ("tiff", "TIFF", {"compression": "tiff_lzw"}),
    ("webp", "WEBP", {"lossless": True}),
]


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
@pytest.mark.parametrize(
    ("ext", "fmt", "kwargs"), LOSSLESS, ids=[x[0] + str(x[2]) for x in LOSSLESS]
)
def test_lossless_file_round_trip_is_exact(tmp_path, ext, fmt, kwargs, as_path):
    src = _rgb(7, 11, seed=1)
    path = tmp_path / f"img.{ext}"
    Image.fromarray(src).save(path, fmt, **kwargs)
    out = load_image(path if as_path else str(path))
    _assert_rgb_u8(out, 7, 11)
    np.testing.assert_array_equal(out, src)


def test_grayscale_png_file_is_repeated_to_three_channels(tmp_path):
    plane = np.arange(35, dtype=np.uint8).reshape(5, 7) * 7
    path = tmp_path / "gray.png"
    Image.fromarray(plane).save(path)
    out = load_image(path)
    _assert_rgb_u8(out, 5, 7)
    np.testing.assert_array_equal(out, _gray3(plane))


def test_rgba_png_file_drops_alpha(tmp_path):
    rgba = np.random.default_rng(2).integers(0, 256, (5, 6, 4), dtype=np.uint8)
    rgba[0, 0, 3] = 0  # a fully transparent pixel keeps its stored colour
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image(str(path))
    np.testing.assert_array_equal(out, rgba[:, :, :3])


@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
def test_jpeg_file_matches_pillow_decoding(tmp_path, as_path):
    src = _rgb(16, 24, seed=3)
    path = tmp_path / "photo.jpg"
    Image.fromarray(src).save(path, "JPEG", quality=90)
    with Image.open(path) as im:
        expected = np.asarray(im.convert("RGB"))
    out = load_image(path if as_path else str(path))
    _assert_rgb_u8(out, 16, 24)
    np.testing.assert_array_equal(out, expected)
    # sanity: it is a lossy round trip of the source, not something unrelated
    assert np.abs(out.astype(int) - src.astype(int)).mean() < 60


# --------------------------------------------------------------------------------------------------
# encoded bytes


@pytest.mark.parametrize("wrap", [bytes, bytearray, memoryview], ids=lambda t: t.__name__)
@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF"])
def test_encoded_bytes(fmt, wrap):
    src = _rgb(4, 9, seed=4)
    data = wrap(_encode(Image.fromarray(src), fmt))
    out = load_image(data)
    _assert_rgb_u8(out, 4, 9)
    np.testing.assert_array_equal(out, src)


def test_jpeg_bytes_match_pillow_decoding():
    data = _encode(Image.fromarray(_rgb(12, 8, seed=5)), "JPEG")
    expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    np.testing.assert_array_equal(load_image(data), expected)


def test_sixteen_bit_grayscale_png_bytes_use_round_v_over_257():
    values = np.array([[0, 128, 129, 257], [385, 386, 32896, 65535]], dtype=np.uint16)
    out = load_image(_png16(values))
    np.testing.assert_array_equal(out, _gray3(_u16_to_u8(values)))
    assert out[:, :, 0].tolist() == [[0, 0, 1, 1], [1, 2, 128, 255]]


def test_sixteen_bit_rgb_png_keeps_full_precision():
    """Both bytes of every sample survive the decode (Pillow alone keeps the high byte)."""
    values = np.array([[[511, 33023, 65535], [0, 257, 384]]], dtype=np.uint16)
    np.testing.assert_array_equal(load_pixels(_png16(values)), values)
    np.testing.assert_array_equal(load_image(_png16(values)), _u16_to_u8(values))
    assert load_image(_png16(values))[0, 0].tolist() == [2, 128, 255]  # the high byte gave 1


# --------------------------------------------------------------------------------------------------
# PIL images of every mode


def test_pil_mode_1():
    bits = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]], dtype=bool)
    im = Image.fromarray(bits)
    assert im.mode == "1"
    np.testing.assert_array_equal(load_image(im), _gray3(bits.astype(np.uint8) * 255))


def test_pil_mode_L():
    plane = np.arange(24, dtype=np.uint8).reshape(4, 6) * 11
    im = Image.fromarray(plane)
    assert im.mode == "L"
    np.testing.assert_array_equal(load_image(im), _gray3(plane))


PALETTE = [(10, 20, 30), (200, 0, 50), (0, 255, 0), (1, 2, 3), (250, 128, 7)]


def _palette_image(transparency=None) -> tuple[Image.Image, np.ndarray]:
    idx = np.array([[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [2, 2, 0, 4, 1]], dtype=np.uint8)
    im = Image.fromarray(idx, "P")
    im.putpalette([c for rgb in PALETTE for c in rgb])
    if transparency is not None:
        im.info["transparency"] = transparency
    expected = np.array(PALETTE, dtype=np.uint8)[idx]
    return im, expected


@pytest.mark.parametrize(
    "transparency",
    [None, 2, bytes([255, 0, 128, 255, 10])],
    ids=["opaque", "transparent-index", "alpha-bytes"],
)
def test_pil_mode_P_gives_palette_colours(transparency):
    im, expected = _palette_image(transparency)
    assert im.mode == "P"
    out = load_image(im)
    _assert_rgb_u8(out, 3, 5)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("transparency", [None, 2], ids=["opaque", "transparent-index"])
def test_palette_png_file(tmp_path, transparency):
    im, expected = _palette_image(transparency)
    path = tmp_path / "pal.png"
    im.save(path, **({} if transparency is None else {"transparency": transparency}))
    with Image.open(path) as check:
        assert check.mode == "P"
    np.testing.assert_array_equal(load_image(path), expected)


def test_pil_mode_RGB():
    src = _rgb(5, 3, seed=6)
    np.testing.assert_array_equal(load_image(Image.fromarray(src)), src)


def test_pil_mode_RGBA_drops_alpha():
    rgba = np.random.default_rng(7).integers(0, 256, (4, 5, 4), dtype=np.uint8)
    rgba[..., 3] = 0
    im = Image.fromarray(rgba, "RGBA")
    np.testing.assert_array_equal(load_image(im), rgba[:, :, :3])


def test_pil_mode_LA():
    la = np.random.default_rng(8).integers(0, 256, (3, 4, 2), dtype=np.uint8)
    im = Image.fromarray(la, "LA")
    assert im.mode == "LA"
    np.testing.assert_array_equal(load_image(im), _gray3(la[:, :, 0]))


def test_pil_mode_La_is_unpremultiplied_like_RGBa():
    la = Image.new("La", (2, 1), (50, 128))
    rgba = Image.new("RGBa", (2, 1), (50, 50, 50, 128))
    np.testing.assert_array_equal(load_image(la), load_image(rgba))


def test_pil_mode_CMYK():
    # With K = 0 the colour is 255 - C/M/Y; with C = M = Y = 0 it is 255 - K (no rounding).
    cmyk = np.array(
        [
            [[0, 0, 0, 0], [255, 0, 0, 0], [0, 100, 30, 0], [12, 34, 56, 0]],
            [[0, 0, 0, 255], [0, 0, 0, 100], [0, 0, 0, 1], [255, 255, 255, 0]],
        ],
        dtype=np.uint8,
    )
    expected = np.array(
        [
            [[255, 255, 255], [0, 255, 255], [255, 155, 225], [243, 221, 199]],
            [[0, 0, 0], [155, 155, 155], [254, 254, 254], [0, 0, 0]],
        ],
        dtype=np.uint8,
    )
    im = Image.fromarray(cmyk, "CMYK")
    np.testing.assert_array_equal(load_image(im), expected)


U16_VALUES = np.array([[0, 257, 65535, 128], [129, 385, 386, 32896], [1, 256, 65534, 40000]])


def test_pil_mode_I16_from_sixteen_bit_png(tmp_path):
    values = U16_VALUES.astype(np.uint16)
    path = tmp_path / "gray16.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as im:
        assert im.mode == "I;16"
        out_pil = load_image(im)
    expected = _gray3(_u16_to_u8(values))
    np.testing.assert_array_equal(out_pil, expected)
    np.testing.assert_array_equal(load_image(path), expected)
    assert out_pil[0, :, 0].tolist() == [0, 1, 255, 0]


def test_pil_mode_I():
    values = U16_VALUES.astype(np.int32)
    im = Image.fromarray(values)
    assert im.mode == "I"
    np.testing.assert_array_equal(load_image(im), _gray3(_u16_to_u8(values)))


@pytest.mark.parametrize("bad", [-1, 65536, 2**31 - 1])
def test_pil_mode_I_out_of_16_bit_range_is_rejected(bad):
    values = np.zeros((3, 4), dtype=np.int32)
    values[1, 2] = bad
    im = Image.fromarray(values)
    with pytest.raises(InputError) as excinfo:
        load_image(im)
    _assert_input_error(excinfo, "PIL image I 4x3", "0..65535")


def test_pil_mode_F():
    ks = np.arange(12).reshape(3, 4) * 20
    values = ((ks + np.where(ks % 40 == 0, 0.3, 0.7)) / 255).astype(np.float32)
    values[0, 0], values[2, 3] = 0.0, 1.0
    im = Image.fromarray(values)
    assert im.mode == "F"
    expected = np.vectorize(lambda v: round(float(v) * 255))(values).astype(np.uint8)
    np.testing.assert_array_equal(load_image(im), _gray3(expected))


@pytest.mark.parametrize(("bad", "word"), [(1.5, "[0, 1]"), (-0.25, "[0, 1]"), (np.nan, "NaN")])
def test_pil_mode_F_bad_values_rejected(bad, word):
    values = np.full((3, 4), 0.5, dtype=np.float32)
    values[2, 1] = bad
    with pytest.raises(InputError) as excinfo:
        load_image(Image.fromarray(values))
    _assert_input_error(excinfo, "PIL image F 4x3", word)


@pytest.mark.parametrize(
    "mode", ["1", "L", "P", "RGB", "RGBA", "RGBa", "LA", "La", "CMYK", "I;16", "I", "F"]
)
def test_every_pil_mode_gives_contiguous_rgb_uint8(mode):
    _assert_rgb_u8(load_image(Image.new(mode, (5, 3))), 3, 5)


# --------------------------------------------------------------------------------------------------
# EXIF orientation

# orientation -> the same transform of the stored HxWx3 pixels, written with numpy
ORIENT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_jpeg_exif_orientation(tmp_path, orientation):
    src = _rgb(16, 24, seed=9)  # non-square: 16 high, 24 wide
    path = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(src).save(path, "JPEG", quality=95, exif=_exif(orientation))
    with Image.open(path) as im:
        assert im.getexif()[0x0112] == orientation
        stored = np.asarray(im.convert("RGB"))
    with Image.open(path) as im:
        transposed = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = load_image(str(path))
    expected_shape = (16, 24, 3) if orientation == 3 else (24, 16, 3)
    assert out.shape == expected_shape
    assert out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, transposed)
    np.testing.assert_array_equal(out, ORIENT[orientation](stored))


@pytest.mark.parametrize("orientation", sorted(ORIENT))
def test_png_exif_orientation_all_eight_exact(orientation):
    src = _rgb(4, 7, seed=10)
    data = _encode(Image.fromarray(src), "PNG", exif=_exif(orientation))
    out = load_image(data)
    expected = ORIENT[orientation](src)
    assert out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)
    assert out.flags["C_CONTIGUOUS"]


# --------------------------------------------------------------------------------------------------
# animated / multi-frame files: first frame


def _frames() -> list[np.ndarray]:
    first = np.zeros((6, 8, 3), dtype=np.uint8)
    first[:, :4] = (255, 0, 0)
    first[:, 4:] = (0, 0, 255)
    second = np.full((6, 8, 3), (0, 255, 0), dtype=np.uint8)
    third = np.full((6, 8, 3), (255, 255, 0), dtype=np.uint8)
    return [first, second, third]


@pytest.mark.parametrize(
    ("ext", "kwargs"),
    [("gif", {"duration": 50, "loop": 0}), ("png", {"duration": 50}), ("tiff", {})],
    ids=["gif", "apng", "multipage-tiff"],
)
def test_animated_file_gives_first_frame(tmp_path, ext, kwargs):
    frames = [Image.fromarray(f) for f in _frames()]
    path = tmp_path / f"anim.{ext}"
    frames[0].save(path, save_all=True, append_images=frames[1:], **kwargs)
    with Image.open(path) as im:
        assert getattr(im, "n_frames", 1) == 3
    out = load_image(path)
    _assert_rgb_u8(out, 6, 8)
    np.testing.assert_array_equal(out, _frames()[0])


# --------------------------------------------------------------------------------------------------
# numpy arrays

H, W = 3, 4


def _u8(shape, seed=12):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_numpy_uint8_hw3_is_returned_exactly():
    src = _u8((H, W, 3))
    out = load_image(src)
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, src)


@pytest.mark.parametrize("shape", [(H, W), (H, W, 1)], ids=["HxW", "HxWx1"])
def test_numpy_uint8_grayscale(shape):
    src = _u8(shape)
    out = load_image(src)
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, _gray3(src.reshape(H, W)))


def test_numpy_uint8_rgba_drops_alpha():
    src = _u8((H, W, 4))
    out = load_image(src)
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, src[:, :, :3])


@pytest.mark.parametrize("channels", [None, 1, 3, 4], ids=["HxW", "HxWx1", "HxWx3", "HxWx4"])
def test_numpy_uint16_rounds_v_over_257(channels):
    plane = U16_VALUES.astype(np.uint16)  # 3x4
    if channels is None:
        src, expected_planes = plane, [plane] * 3
    else:
        chans = [(plane.astype(np.int64) * (c + 1) * 7919) % 65536 for c in range(channels)]
        chans[0] = plane
        src = np.stack(chans, axis=-1).astype(np.uint16)
        expected_planes = [
            src[:, :, min(c, channels - 1) if channels >= 3 else 0] for c in range(3)
        ]
    expected = np.stack([_u16_to_u8(p) for p in expected_planes], axis=-1)
    out = load_image(src)
    _assert_rgb_u8(out, 3, 4)
    np.testing.assert_array_equal(out, expected)
    assert out[0, :, 0].tolist() == [0, 1, 255, 0]  # 0, 257, 65535, 128
    assert out[1, :, 0].tolist() == [1, 1, 2, 128]  # 129, 385, 386, 32896


def _unit_floats(shape, dtype, seed=13) -> tuple[np.ndarray, np.ndarray]:
    """Floats in [0, 1] never near a rounding tie, and round(v * 255) computed per value."""
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 255, shape)
    values = ((k + rng.choice([0.2, 0.35, 0.65, 0.8], shape)) / 255).astype(dtype)
    flat = values.reshape(-1)
    flat[0], flat[-1] = 0.0, 1.0
    expected = np.array([round(float(v) * 255) for v in flat], dtype=np.uint8).reshape(shape)
    return values, expected


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("channels", [None, 1, 3, 4], ids=["HxW", "HxWx1", "HxWx3", "HxWx4"])
def test_numpy_float_in_unit_range_rounds_v_times_255(dtype, channels):
    shape = (H, W) if channels is None else (H, W, channels)
    src, rounded = _unit_floats(shape, dtype)
    if channels in (None, 1):
        expected = _gray3(rounded.reshape(H, W))
    else:
        expected = rounded[:, :, :3]
    out = load_image(src)
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, expected)


def test_numpy_float_chosen_values():
    src = np.array([[0.0, 1.0, 0.2, 0.8], [10.3 / 255, 10.7 / 255, 0.25, 0.75]], dtype=np.float64)
    out = load_image(src)[:, :, 0]
    assert out.tolist() == [[0, 255, 51, 204], [10, 11, 64, 191]]


def test_numpy_big_endian_float_is_accepted():
    src, expected = _unit_floats((H, W, 3), np.float32)
    np.testing.assert_array_equal(load_image(src.astype(">f4")), expected)


def test_numpy_big_endian_uint16_is_accepted():
    values = U16_VALUES.astype(">u2")
    np.testing.assert_array_equal(load_image(values), _gray3(_u16_to_u8(values)))


VIEWS = {
    "flip-w": lambda a: a[:, ::-1],
    "flip-h": lambda a: a[::-1],
    "flip-both": lambda a: a[::-1, ::-1],
    "every-other-row": lambda a: a[::2],
    "every-other-col": lambda a: a[:, 1::2],
    "bgr-view": lambda a: a[:, :, ::-1],
    "transposed": lambda a: a.transpose(1, 0, 2),
    "fortran": np.asfortranarray,
    "rgba-slice": lambda a: np.concatenate([a, a[:, :, :1]], axis=2)[:, ::-1],
}


@pytest.mark.parametrize("view", list(VIEWS.values()), ids=list(VIEWS))
def test_numpy_non_contiguous_and_negative_stride_views(view):
    base = _u8((6, 8, 3), seed=14)
    arr = view(base)
    expected = np.array(arr[:, :, :3], copy=True)
    out = load_image(arr)
    _assert_rgb_u8(out, *expected.shape[:2])
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_numpy_views_of_other_dtypes(dtype):
    base = _u8((6, 8, 3), seed=15)
    arr = (base.astype(np.uint16) * 257) if dtype == np.uint16 else base.astype(np.float32) / 255
    out = load_image(arr[::-2, ::-1])
    np.testing.assert_array_equal(out, base[::-2, ::-1])


def test_input_array_is_not_modified():
    src = _u8((H, W, 4))
    before = src.copy()
    load_image(src)
    load_image(src.astype(np.uint16))
    np.testing.assert_array_equal(src, before)


# --------------------------------------------------------------------------------------------------
# torch tensors


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_uint8_chw(torch):
    src = _u8((3, H, W), seed=16)
    out = load_image(torch.from_numpy(src))
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, src.transpose(1, 2, 0))


def test_torch_uint8_1hw_and_hw(torch):
    plane = _u8((H, W), seed=17)
    for tensor in (torch.from_numpy(plane[None]), torch.from_numpy(plane)):
        out = load_image(tensor)
        _assert_rgb_u8(out, H, W)
        np.testing.assert_array_equal(out, _gray3(plane))


def test_torch_uint8_4hw_drops_alpha(torch):
    src = _u8((4, H, W), seed=18)
    np.testing.assert_array_equal(load_image(torch.from_numpy(src)), src[:3].transpose(1, 2, 0))


@pytest.mark.parametrize("dtype_name", ["float32", "float64", "float16"])
@pytest.mark.parametrize("channels", [None, 1, 3, 4], ids=["HxW", "1xHxW", "3xHxW", "4xHxW"])
def test_torch_float(torch, dtype_name, channels):
    np_dtype = getattr(np, dtype_name)
    shape = (H, W) if channels is None else (channels, H, W)
    src, rounded = _unit_floats(shape, np_dtype, seed=19)
    tensor = torch.from_numpy(src)
    assert tensor.dtype == getattr(torch, dtype_name)
    if channels is None:
        expected = _gray3(rounded)
    elif channels == 1:
        expected = _gray3(rounded[0])
    else:
        expected = rounded[:3].transpose(1, 2, 0)
    out = load_image(tensor)
    _assert_rgb_u8(out, H, W)
    np.testing.assert_array_equal(out, expected)


def test_torch_non_contiguous_and_requires_grad(torch):
    src = _u8((3, 5, 7), seed=20)
    t = torch.from_numpy(src).transpose(1, 2)  # 3x7x5, non-contiguous
    assert not t.is_contiguous()
    np.testing.assert_array_equal(load_image(t), src.transpose(2, 1, 0))
    f = (torch.from_numpy(src).float() / 255).requires_grad_(True)
    np.testing.assert_array_equal(load_image(f), src.transpose(1, 2, 0))


def test_torch_bfloat16(torch):
    values = np.array([[0.0, 0.25], [0.75, 1.0]], dtype=np.float32)
    t = torch.from_numpy(values).to(torch.bfloat16)[None].expand(3, 2, 2)
    out = load_image(t)
    np.testing.assert_array_equal(out[:, :, 0], [[0, 64], [191, 255]])


TORCH_BAD = [
    ("channels-last HxWx3", lambda t: t.zeros(5, 6, 3, dtype=t.uint8), "channels-first"),
    ("2xHxW", lambda t: t.zeros(2, 5, 6, dtype=t.uint8), "channels-first"),
    ("batch 1x3xHxW", lambda t: t.zeros(1, 3, 5, 6, dtype=t.uint8), "shape"),
    ("1-D", lambda t: t.zeros(6, dtype=t.uint8), "shape"),
    ("int64", lambda t: t.zeros(3, 5, 6, dtype=t.int64), "unsupported dtype"),
    ("bool", lambda t: t.zeros(3, 5, 6, dtype=t.bool), "unsupported dtype"),
    ("nan", lambda t: t.full((3, 5, 6), float("nan")), "NaN"),
    ("above one", lambda t: t.full((3, 5, 6), 2.0), "[0, 1]"),
    ("0xW", lambda t: t.zeros(3, 0, 6, dtype=t.uint8), "zero size"),
]


@pytest.mark.parametrize(
    ("make", "word"), [x[1:] for x in TORCH_BAD], ids=[x[0] for x in TORCH_BAD]
)
def test_torch_bad_inputs(torch, make, word):
    tensor = make(torch)
    with pytest.raises(InputError) as excinfo:
        load_image(tensor)
    _assert_input_error(excinfo, "torch tensor", word)
    assert f"shape={tuple(tensor.shape)}" in str(excinfo.value)


# --------------------------------------------------------------------------------------------------
# output contract across every kind of input


def _all_kinds():
    src = _u8((5, 7, 3), seed=21)
    return [
        ("numpy-hw3", src, (5, 7)),
        ("numpy-view", src[::-1, ::2], (5, 4)),
        ("numpy-hw", src[:, :, 0], (5, 7)),
        ("numpy-u16-hwx1", src[:, :, :1].astype(np.uint16) * 257, (5, 7)),
        ("numpy-f64-rgba", np.dstack([src, src[:, :, :1]]).astype(np.float64) / 255, (5, 7)),
        ("pil-P", Image.fromarray(src).convert("P"), (5, 7)),
        ("pil-I16", Image.fromarray(src[:, :, 0].astype(np.uint16) * 257), (5, 7)),
        ("bytes-png", _encode(Image.fromarray(src), "PNG"), (5, 7)),
        ("bytes-jpeg", _encode(Image.fromarray(src), "JPEG"), (5, 7)),
    ]


@pytest.mark.parametrize(
    ("obj", "hw"), [k[1:] for k in _all_kinds()], ids=[k[0] for k in _all_kinds()]
)
def test_output_always_contiguous_hw3_uint8(obj, hw):
    _assert_rgb_u8(load_image(obj), *hw)


# --------------------------------------------------------------------------------------------------
# bad files and paths


def test_missing_file(tmp_path):
    path = tmp_path / "nope" / "missing.png"
    for obj in (str(path), path):
        with pytest.raises(InputError) as excinfo:
            load_image(obj)
        _assert_input_error(excinfo, str(path), "not found")


def test_directory(tmp_path):
    with pytest.raises(InputError) as excinfo:
        load_image(tmp_path)
    _assert_input_error(excinfo, str(tmp_path), "directory")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError) as excinfo:
        load_image(str(path))
    _assert_input_error(excinfo, str(path), "empty")


def test_empty_bytes():
    with pytest.raises(InputError) as excinfo:
        load_image(b"")
    _assert_input_error(excinfo, "<0 bytes>")


@pytest.mark.parametrize(
    "content", [b"hello, this is not a JPEG\n", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"]
)
def test_non_image_file_with_image_extension(tmp_path, content):
    path = tmp_path / "fake.jpg"
    path.write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        load_image(path)
    _assert_input_error(excinfo, str(path))


def test_text_file_with_jpg_extension_says_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("just some text, not pixels\n" * 10)
    with pytest.raises(InputError) as excinfo:
        load_image(str(path))
    _assert_input_error(excinfo, str(path), "not an image")


def test_a_pillow_plugin_error_of_another_type_is_an_input_error(tmp_path):
    # a DDS header whose pixel format flags are 0: Pillow's plugin raises NotImplementedError
    header = struct.pack("<7I44x", 124, 0x1007, 16, 16, 0, 0, 0)
    pixel_format = struct.pack("<2I4s5I", 32, 0, b"\0\0\0\0", 0, 0, 0, 0, 0)
    caps = struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    path = tmp_path / "texture.jpg"
    path.write_bytes(b"DDS " + header + pixel_format + caps + b"\0" * 1024)
    with pytest.raises(InputError) as excinfo:
        load_image(path)
    _assert_input_error(excinfo, str(path), "cannot read image header", "pixel format")


def test_a_decoder_error_of_another_type_is_an_input_error(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    path.write_bytes(_png_bytes())

    def unsupported(self):
        raise NotImplementedError("no decoder for this variant")

    monkeypatch.setattr(ImageFile.ImageFile, "load", unsupported)
    with pytest.raises(InputError) as excinfo:
        load_image(path)
    _assert_input_error(excinfo, str(path), "cannot decode image", "no decoder for this variant")


def _jpeg_bytes() -> bytes:
    return _encode(Image.fromarray(_u8((64, 64, 3), seed=22)), "JPEG", quality=95)


def _png_bytes() -> bytes:
    return _encode(Image.fromarray(_u8((32, 32, 3), seed=23)), "PNG")


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8, 0.95])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_truncated_file(tmp_path, fmt, fraction):
    data = _jpeg_bytes() if fmt == "jpeg" else _png_bytes()
    path = tmp_path / f"cut.{fmt}"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError) as excinfo:
        load_image(path)
    _assert_input_error(excinfo, str(path), "truncated")


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_truncated_bytes(fmt):
    data = _jpeg_bytes() if fmt == "jpeg" else _png_bytes()
    cut = data[: len(data) // 2]
    with pytest.raises(InputError) as excinfo:
        load_image(cut)
    _assert_input_error(excinfo, f"<{len(cut)} bytes>", "truncated")


def test_truncated_lazy_pil_image_rgb():
    data = _png_bytes()
    im = Image.open(io.BytesIO(data[: len(data) // 2]))  # header fine, pixels missing
    with pytest.raises(InputError) as excinfo:
        load_image(im)
    _assert_input_error(excinfo, "PIL image RGB 32x32", "truncated")


def test_truncated_lazy_pil_image_16_bit():
    data = _encode(Image.fromarray(_u8((32, 32), seed=24).astype(np.uint16) * 257), "PNG")
    im = Image.open(io.BytesIO(data[: len(data) // 2]))
    assert im.mode == "I;16"
    with pytest.raises(InputError) as excinfo:
        load_image(im)
    _assert_input_error(excinfo, "PIL image I;16 32x32", "truncated")


# --------------------------------------------------------------------------------------------------
# decompression bombs / max_pixels


def test_max_pixels_on_normal_file(tmp_path):
    path = tmp_path / "ten.png"
    Image.fromarray(_u8((10, 12, 3), seed=25)).save(path)
    assert load_image(path, max_pixels=120).shape == (10, 12, 3)  # exactly at the limit: fine
    with pytest.raises(InputError) as excinfo:
        load_image(path, max_pixels=119)
    _assert_input_error(excinfo, str(path), "decompression bomb", "119")


@pytest.mark.parametrize(
    "obj",
    [
        _u8((10, 12, 3), seed=26),
        Image.new("RGB", (12, 10)),
        _encode(Image.new("L", (12, 10)), "PNG"),
    ],
    ids=["numpy", "pil", "bytes"],
)
def test_max_pixels_applies_to_every_kind(obj):
    assert load_image(obj, max_pixels=120).shape == (10, 12, 3)
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(obj, max_pixels=100)


def test_header_declaring_huge_size_is_refused_quickly(tmp_path):
    data = _png_with_size(100_000, 100_000)
    assert len(data) < 100
    path = tmp_path / "bomb.png"
    path.write_bytes(data)
    for obj, name in ((path, str(path)), (data, f"<{len(data)} bytes>")):
        start = time.perf_counter()
        with pytest.raises(InputError) as excinfo:
            load_image(obj)
        assert time.perf_counter() - start < 2.0
        _assert_input_error(excinfo, name, "decompression bomb")


def test_max_pixels_checked_from_header_before_decoding(monkeypatch, tmp_path):
    """A 3000x3000 header under Pillow's own limit: our max_pixels refuses it without load()."""
    path = tmp_path / "big-header.png"
    path.write_bytes(_png_with_size(3000, 3000))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded before its size was checked")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    start = time.perf_counter()
    with pytest.raises(InputError) as excinfo:
        load_image(path, max_pixels=1_000_000)
    assert time.perf_counter() - start < 2.0
    _assert_input_error(excinfo, str(path), "3000x3000", "decompression bomb")


def test_pillows_own_bomb_limit_also_applies_to_encoded_inputs(monkeypatch):
    """Documented: encoded files are also refused above Pillow's limit, with a message saying which
    two limits to raise; PIL images and arrays only obey max_pixels."""
    src = _u8((20, 20, 3), seed=27)
    data = _encode(Image.fromarray(src), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow now refuses > 200 pixels
    assert load_image(Image.fromarray(src), max_pixels=10_000).shape == (20, 20, 3)
    with pytest.raises(InputError, match="PIL.Image.MAX_IMAGE_PIXELS and max_pixels"):
        load_image(data, max_pixels=10_000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    np.testing.assert_array_equal(load_image(data, max_pixels=10_000), src)


# --------------------------------------------------------------------------------------------------
# bad arrays


def _arr(shape, dtype=np.uint8):
    return np.zeros(shape, dtype=dtype)


def _with(value, dtype=np.float32):
    a = np.full((3, 4, 3), 0.5, dtype=dtype)
    a[1, 2, 0] = value
    return a


BAD_ARRAYS = [
    ("0xNx3", _arr((0, 5, 3)), "zero size"),
    ("Nx0x3", _arr((5, 0, 3)), "zero size"),
    ("0x0", _arr((0, 0)), "zero size"),
    ("0xN-float", _arr((0, 4), np.float32), "zero size"),
    ("nan-f32", _with(np.nan), "NaN"),
    ("inf-f64", _with(np.inf, np.float64), "infinite"),
    ("-inf-f32", _with(-np.inf), "infinite"),
    ("above-1", _with(1.0001), "[0, 1]"),
    ("below-0", _with(-0.001, np.float64), "[0, 1]"),
    ("0..255-floats", np.full((3, 4, 3), 255.0, dtype=np.float32), "[0, 1]"),
    ("int32", _arr((3, 4, 3), np.int32), "unsupported dtype"),
    ("int64", _arr((3, 4), np.int64), "unsupported dtype"),
    ("int8", _arr((3, 4, 3), np.int8), "unsupported dtype"),
    ("bool", _arr((3, 4, 3), bool), "unsupported dtype"),
    ("complex64", _arr((3, 4, 3), np.complex64), "unsupported dtype"),
    ("object", np.full((3, 4, 3), 1, dtype=object), "unsupported dtype"),
    ("0-D", np.array(7, dtype=np.uint8), "shape"),
    ("1-D", _arr((12,)), "shape"),
    ("4-D", _arr((1, 3, 4, 3)), "shape"),
    ("HxWx2", _arr((3, 4, 2)), "shape"),
    ("HxWx5", _arr((3, 4, 5)), "shape"),
]


@pytest.mark.parametrize(
    ("arr", "word"), [x[1:] for x in BAD_ARRAYS], ids=[x[0] for x in BAD_ARRAYS]
)
def test_bad_numpy_arrays(arr, word):
    with pytest.raises(InputError) as excinfo:
        load_image(arr)
    msg = _assert_input_error(excinfo, "numpy array", word)
    assert f"shape={arr.shape}" in msg
    assert f"dtype={arr.dtype}" in msg


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 5, 7), (4, 6, 9)])
def test_channels_first_numpy_mentions_transpose(shape):
    with pytest.raises(InputError) as excinfo:
        load_image(_arr(shape))
    _assert_input_error(excinfo, "numpy array", "transpose", "channels first")


def test_bad_wrong_shape_without_channels_first_hint():
    with pytest.raises(InputError) as excinfo:
        load_image(_arr((5, 6, 2)))
    assert "transpose" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ([[0, 0, 0]], "<list>"),
        (None, "<NoneType>"),
        (42, "<int>"),
        (0.5, "<float>"),
        ({"image": 1}, "<dict>"),
        ((1, 2, 3), "<tuple>"),
    ],
    ids=["list", "None", "int", "float", "dict", "tuple"],
)
def test_unsupported_python_types(obj, name):
    with pytest.raises(InputError) as excinfo:
        load_image(obj)
    _assert_input_error(excinfo, name, "unsupported input type")


def test_zero_size_pil_image():
    with pytest.raises(InputError) as excinfo:
        load_image(Image.new("RGB", (0, 0)))
    _assert_input_error(excinfo, "PIL image RGB 0x0", "zero size")


def test_unconvertible_pil_mode(monkeypatch):
    im = Image.new("HSV", (3, 2))

    def unsupported(mode: str) -> Image.Image:
        raise ValueError(f"conversion from HSV to {mode} not supported")

    monkeypatch.setattr(im, "convert", unsupported)  # no mode Pillow has is left unconvertible
    with pytest.raises(InputError) as excinfo:
        load_image(im)
    _assert_input_error(excinfo, "PIL image HSV 3x2")


def test_error_path_is_named_verbatim(tmp_path):
    weird = tmp_path / "dir with spaces" / "ünïcødé name.jpg"
    with pytest.raises(InputError) as excinfo:
        load_image(Path(weird))
    assert str(excinfo.value).startswith(str(weird))


def test_flat_jpeg_is_accepted_but_a_forged_size_is_not():
    """The JPEG bytes-per-pixel floor: a real flat 24 MP JPEG (~255 px/byte) decodes; a header
    claiming far more pixels than its data can encode is refused before decoding."""
    from ipad_sdk.io import JPEG_MAX_PIXELS_PER_BYTE

    flat = io.BytesIO()
    Image.new("L", (6000, 4000), 128).save(flat, "JPEG", quality=10, optimize=True)
    data = flat.getvalue()
    assert 6000 * 4000 / len(data) < JPEG_MAX_PIXELS_PER_BYTE / 4
    assert load_image(data).shape == (4000, 6000, 3)
    small = io.BytesIO()
    Image.new("L", (64, 64), 128).save(small, "JPEG")
    forged = bytearray(small.getvalue())
    sof = forged.index(b"\xff\xc0")  # baseline SOF0: length(2) precision(1) height(2) width(2)
    forged[sof + 5 : sof + 9] = (9000).to_bytes(2, "big") + (9000).to_bytes(2, "big")
    with pytest.raises(InputError, match="declares 9000x9000 pixels but holds only"):
        load_image(bytes(forged))
