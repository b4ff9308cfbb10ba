"""Property tests with a bounded, derandomised budget: random and mutated encoded images and random
arrays give an RGB uint8 array (equal to an independent expectation where one exists) or an
InputError naming the input, within 2 s; the detector's outputs keep their invariants; any JSON in
any model config field is a valid config or a ModelError naming the source and the field."""

from __future__ import annotations

import io
import json
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from benchmarks import corpus as mc
from ipad_sdk.errors import InputError, ModelError
from ipad_sdk.io import describe, load_image
from ipad_sdk.metadata import ModelConfig

#: No warning may escape load_image: under `python -W error` it would be a non-InputError crash.
pytestmark = pytest.mark.filterwarnings("error")
FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


SEEDS = mc.fuzz_seeds()


def _contract(obj: object) -> np.ndarray | None:
    """``load_image(obj)``: an HxWx3 uint8 array or an InputError naming ``obj``, within 2 s."""
    start = time.perf_counter()
    try:
        out = load_image(obj)
    except InputError as exc:
        assert str(exc).startswith(describe(obj)), str(exc)
        out = None
    assert time.perf_counter() - start < mc.TIME_LIMIT_S
    if out is not None:
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert out.flags.c_contiguous and out.shape[0] > 0 and out.shape[1] > 0
    return out


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file with 1-4 truncations, byte flips, insertions or deletions."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if op == "truncate":
            del data[at:]
        elif op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes):
    _contract(data)


@settings(FUZZ, max_examples=1500)
@given(mutated())
def test_mutated_encoded_images(data: bytes):
    _contract(data)


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_unmutated_seeds_decode(fmt: str):
    assert _contract(SEEDS[fmt]) is not None


# -- arrays ----------------------------------------------------------------------------------------
DTYPES = [
    "uint8",
    "uint16",
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint32",
    "bool",
    "complex64",
    ">u2",
    ">f4",
]


def expected_pixels(array: np.ndarray) -> np.ndarray | None:
    """The documented conversion, computed independently; None where an error is due."""
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok or 0 in array.shape[:2]:
        return None
    a = array[:, :, None] if array.ndim == 2 else array[:, :, :3]
    if a.dtype.kind == "u" and a.dtype.itemsize == 1:
        out = a
    elif a.dtype.kind == "u" and a.dtype.itemsize == 2:
        out = np.round(a.astype(np.float64) / 257.0)
    elif a.dtype.kind == "f":
        v = a.astype(np.float64)
        if not np.isfinite(v).all() or v.min() < 0 or v.max() > 1:
            return None
        out = np.round(v * 255.0)
    else:
        return None
    return np.repeat(out.astype(np.uint8), 3 // out.shape[2], axis=2)


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    shape = draw(
        st.one_of(
            hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=6),
            st.tuples(st.integers(0, 6), st.integers(0, 6), st.sampled_from([1, 2, 3, 4, 5])),
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4),
        )
    )
    if dtype.kind == "f":
        unit = st.floats(0, 1, width=8 * min(dtype.itemsize, 8))
        wild = st.floats(width=8 * min(dtype.itemsize, 8), allow_nan=True, allow_infinity=True)
        elements = draw(st.sampled_from([unit, wild]))
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape))


@FUZZ
@given(arrays())
def test_random_arrays(array: np.ndarray):
    want = expected_pixels(array)
    got = _contract(array)
    assert (got is None) == (want is None), f"got {got is not None}, expected {want is not None}"
    if want is not None:
        np.testing.assert_array_equal(got, want)


@FUZZ
@given(
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(4))),
    st.sampled_from([-3, -2, -1, 1, 2]),
    st.sampled_from([-2, -1, 1, 3]),
    st.booleans(),
    st.booleans(),
)
def test_array_views_equal_their_contiguous_copy(array, step_h, step_w, as_float, channels_back):
    view = array[::step_h, ::step_w, :: -1 if channels_back else 1]
    view = view / 255.0 if as_float else view
    np.testing.assert_array_equal(load_image(view), load_image(np.ascontiguousarray(view)))
    np.testing.assert_array_equal(load_image(view), expected_pixels(np.ascontiguousarray(view)))


# -- the detector ----------------------------------------------------------------------------------
@settings(max_examples=8, deadline=None, derandomize=True, database=None)
@given(
    st.integers(1, 200),
    st.integers(1, 200),
    st.integers(0, 2**16),
    st.sampled_from(["array", "PNG", "JPEG"]),
)
def test_detect_on_fuzzed_valid_images(detector, height, width, seed, form):
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    obj = image if form == "array" else mc.encode(image, form)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = detector.detect(obj)
    assert mc.check_result(result, (height, width)) == ""
    assert result.image_size == (height, width)


def test_seeds_are_real_images():
    for data in SEEDS.values():
        Image.open(io.BytesIO(data)).verify()


# -- model metadata --------------------------------------------------------------------------------
BASE_CONFIG = ModelConfig(
    backbone="x",
    clip_config={"embed_dim": 8, "vision_cfg": {"layers": 4, "width": 16, "patch_size": 16}},
    image_size=32,
    feature_layers=(1, 2, 3, 4),
    n_adapt=2,
).to_dict()
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(st.sampled_from(sorted(mc._FIELD_KINDS)), JSON_VALUES)
def test_any_json_in_any_config_field(key: str, value: object):
    """A valid config that round-trips, or a ModelError naming the source and the field."""
    try:
        config = ModelConfig.from_json(json.dumps(BASE_CONFIG | {key: value}), source="cfg.json")
    except ModelError as exc:
        assert str(exc).startswith("cfg.json: "), str(exc)
        assert key in str(exc) or key.replace("_", " ") in str(exc) or key == "clip_config", str(
            exc
        )
        return
    assert ModelConfig.from_json(config.to_json()) == config
