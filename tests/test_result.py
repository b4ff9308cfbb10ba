"""Tests of :class:`ipad_sdk.Result` built from hand-made probabilities (numpy only)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ipad_sdk import Result
from ipad_sdk.thresholds import Thresholds
from ipad_sdk.visualize import CLASS_COLORS

CLASSES = ("clean", "ghosting", "flare", "moire")
S = 32  # network resolution of the test config


def _constant_planes(values, size=(S, S)) -> np.ndarray:
    """[K+1, H, W] planes, plane k constant at values[k]."""
    return np.stack([np.full(size, v, dtype=np.float32) for v in values])


def _result(config, class_probs, pixel_probs=None, image_size=(48, 80), **changes) -> Result:
    if changes:
        config = config.replace(**changes)
    if pixel_probs is None:
        pixel_probs = _constant_planes([0.25, 0.25, 0.25, 0.25])
    return Result.from_probs(np.asarray(class_probs), pixel_probs, config, image_size)


def test_thresholds_between_neighbouring_float32_scores_keep_the_lower_one_out(config):
    # a calibrated threshold sits midway between two scores; when they are neighbouring float32
    # values a float32 comparison would round it onto the lower one and flag it too
    low = np.float32(0.75)
    high = np.nextafter(low, np.float32(1))
    midway = (float(low) + float(high)) / 2
    clean = np.float32(1) - high  # artifact score 1 - clean == high, exactly, in float32
    assert np.float32(1) - clean == high
    heatmap = np.full((S, S), low, np.float32)
    heatmap[: S // 2] = high
    planes = np.stack([1 - heatmap, heatmap / 3, heatmap / 3, heatmap / 3]).astype(np.float32)
    probs = np.array([clean, 0.0, 1 - clean, 0.0], np.float32)
    r = Result.from_probs(probs, planes, config.replace(image_threshold=midway,
                          pixel_threshold=midway), (S, S))  # fmt: skip
    assert r.label == "flare"  # its score is the higher one
    assert r.mask[: S // 2].all() and not r.mask[S // 2 :].any()
    below = np.array([1 - low, 0.0, low, 0.0], np.float32)
    assert (
        Result.from_probs(below, planes, config.replace(image_threshold=midway), (S, S)).label
        == "clean"
    )
    assert Thresholds(classes={"flare": midway}).label(below, config.classes) == "clean"


# --------------------------------------------------------------------------------------------------
# label rule


@pytest.mark.parametrize(
    ("probs", "threshold", "label"),
    [
        ([0.875, 0.0625, 0.03125, 0.03125], 0.5, "clean"),  # score 0.125
        ([0.125, 0.5, 0.25, 0.125], 0.5, "ghosting"),
        ([0.125, 0.25, 0.5, 0.125], 0.5, "flare"),
        ([0.125, 0.25, 0.125, 0.5], 0.5, "moire"),
        # clean is the most probable class but 1 - P(clean) >= threshold: an artifact label
        ([0.375, 0.125, 0.25, 0.25], 0.5, "flare"),
        ([0.4375, 0.1875, 0.125, 0.25], 0.5, "moire"),
        # ... and with a lower threshold even a clean probability of 0.75
        ([0.75, 0.0625, 0.125, 0.0625], 0.25, "flare"),
        # threshold edges: artifact_score == threshold is an artifact
        ([0.5, 0.25, 0.125, 0.125], 0.5, "ghosting"),
        ([0.5 + 2**-20, 0.25, 0.125, 0.125 - 2**-20], 0.5, "clean"),
        ([0.75, 0.125, 0.0625, 0.0625], 0.25, "ghosting"),
        ([0.75 + 2**-20, 0.125, 0.0625, 0.0625 - 2**-20], 0.25, "clean"),
        # threshold 0: everything is an artifact; threshold 1: only P(clean) == 0 is
        ([1.0 - 2**-10, 2**-12, 2**-11, 2**-12], 0.0, "flare"),
        ([0.0, 0.25, 0.25, 0.5], 1.0, "moire"),
        ([2**-20, 0.5, 0.25, 0.25 - 2**-20], 1.0, "clean"),
        ([0.25, 0.25, 0.25, 0.25], 1.0, "clean"),
        # high threshold: a likely artifact still labelled clean
        ([0.125, 0.75, 0.0625, 0.0625], 0.9375, "clean"),
    ],
)
def test_label_rule(config, probs, threshold, label):
    r = _result(config, probs, image_threshold=threshold)
    assert r.label == label
    assert r.artifact_score == 1.0 - probs[0]
    assert r.is_artifact is (label != "clean")
    assert r.image_threshold == threshold
    assert r.scores == dict(zip(CLASSES, probs, strict=True))


def test_default_thresholds_and_scores(config):
    r = _result(config, [0.125, 0.5, 0.25, 0.125])
    assert r.image_threshold == 0.5 and r.pixel_threshold == 0.5
    assert list(r.scores) == list(CLASSES)
    assert r.classes == CLASSES
    assert all(type(v) is float for v in r.scores.values())
    assert type(r.artifact_score) is float
    assert r.artifact_score == 0.875
    assert r.image_size == (48, 80)
    assert r.source is None


def test_float32_probabilities_and_numpy_image_size(config):
    probs = np.array([0.3, 0.2, 0.1, 0.4], dtype=np.float32)
    r = Result.from_probs(
        probs, _constant_planes([1, 0, 0, 0]), config, (np.int64(10), np.int32(12)), source="a.png"
    )
    assert r.artifact_score == 1.0 - float(probs[0])
    assert r.label == "moire"
    assert r.image_size == (10, 12) and all(type(v) is int for v in r.image_size)
    assert r.source == "a.png"
    assert r.pixel_probs.dtype == np.float32


def test_custom_two_classes(config):
    two = config.replace(classes=("ok", "bad"))
    r = Result.from_probs(np.array([0.25, 0.75]), _constant_planes([0.5, 0.5]), two, (4, 4))
    assert r.classes == ("ok", "bad")
    assert r.label == "bad" and r.is_artifact
    r = Result.from_probs(np.array([0.75, 0.25]), _constant_planes([0.5, 0.5]), two, (4, 4))
    assert r.label == "ok" and not r.is_artifact


def test_wrong_number_of_class_probabilities(config):
    with pytest.raises(ValueError):
        Result.from_probs(np.array([0.5, 0.5]), _constant_planes([1, 0, 0, 0]), config, (4, 4))


# --------------------------------------------------------------------------------------------------
# heatmaps


@pytest.mark.parametrize("image_size", [(48, 80), (10, 12), (32, 32), (7, 200), (1, 1)])
@pytest.mark.parametrize("clean", [0.0, 0.25, 0.6, 1.0])
def test_heatmap_of_constant_planes_is_constant(config, image_size, clean):
    rest = (1.0 - clean) / 3
    planes = _constant_planes([clean, rest, rest, rest])
    r = _result(config, [0.5, 0.25, 0.125, 0.125], planes, image_size=image_size)
    hm = r.heatmap
    assert hm.shape == image_size
    assert hm.dtype == np.float32
    np.testing.assert_allclose(hm, 1.0 - clean, rtol=0, atol=1e-6)


def test_heatmap_identity_size_is_exactly_one_minus_clean_plane(config):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(24, 40)).transpose(2, 0, 1)  # [4, 24, 40] float64
    r = _result(config, [0.25, 0.25, 0.25, 0.25], probs, image_size=(24, 40))
    expected = 1.0 - probs[0].astype(np.float32)
    np.testing.assert_array_equal(r.heatmap, expected)
    assert r.heatmap.dtype == np.float32
    for k, name in enumerate(CLASSES):
        np.testing.assert_array_equal(r.class_heatmap(name), probs[k].astype(np.float32))


def test_heatmap_is_a_copy(config):
    planes = _constant_planes([0.25, 0.25, 0.25, 0.25], size=(6, 8))
    r = _result(config, [0.25, 0.25, 0.25, 0.25], planes, image_size=(6, 8))
    r.class_heatmap("clean")[...] = 0.0
    np.testing.assert_array_equal(r.pixel_probs, planes)
    assert r.heatmap is r.heatmap  # cached


def test_heatmap_resized_follows_the_plane(config):
    """A clean plane that is 1 on the left half and 0 on the right half of the network grid."""
    clean = np.ones((S, S), dtype=np.float32)
    clean[:, S // 2 :] = 0.0
    planes = np.stack([clean, 1 - clean, np.zeros_like(clean), np.zeros_like(clean)])
    r = _result(config, [0.25, 0.25, 0.25, 0.25], planes, image_size=(48, 80))
    hm = r.heatmap
    assert hm.shape == (48, 80)
    assert hm.min() >= 0.0 and hm.max() <= 1.0
    np.testing.assert_allclose(hm[:, :35], 0.0, atol=1e-6)  # left: clean
    np.testing.assert_allclose(hm[:, 45:], 1.0, atol=1e-6)  # right: artifact
    assert np.all(np.diff(hm, axis=1) >= -1e-6)  # monotone left to right
    np.testing.assert_allclose(hm, np.broadcast_to(hm[:1], hm.shape), atol=1e-6)  # rows equal
    np.testing.assert_allclose(r.class_heatmap("ghosting"), hm, atol=1e-6)
    np.testing.assert_allclose(r.class_heatmap("clean"), 1.0 - hm, atol=1e-6)


@pytest.mark.parametrize("image_size", [(48, 80), (16, 16), (32, 32)])
def test_class_heatmap_constant_planes(config, image_size):
    values = [0.125, 0.5, 0.25, 0.125]
    r = _result(config, values, _constant_planes(values), image_size=image_size)
    for name, v in zip(CLASSES, values, strict=True):
        hm = r.class_heatmap(name)
        assert hm.shape == image_size and hm.dtype == np.float32
        np.testing.assert_allclose(hm, v, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["Clean", "blur", "", "background"])
def test_class_heatmap_unknown_class(config, name):
    r = _result(config, [0.25, 0.25, 0.25, 0.25])
    with pytest.raises(KeyError, match="unknown class"):
        r.class_heatmap(name)


# --------------------------------------------------------------------------------------------------
# mask


def _region_planes(h: int, w: int, box: tuple[int, int, int, int], inside: float = 1.0):
    """Identity-size planes: artifact probability ``inside`` in box (y0, y1, x0, x1), else 0."""
    y0, y1, x0, x1 = box
    clean = np.ones((h, w), dtype=np.float32)
    clean[y0:y1, x0:x1] = 1.0 - inside
    return np.stack([clean, 1.0 - clean, np.zeros_like(clean), np.zeros_like(clean)])


def test_mask_for_artifact_label_is_heatmap_threshold(config):
    box = (28, 44, 50, 76)
    r = _result(config, [0.125, 0.75, 0.0625, 0.0625], _region_planes(48, 80, box))
    assert r.label == "ghosting"
    expected = np.zeros((48, 80), dtype=bool)
    expected[28:44, 50:76] = True
    assert r.mask.dtype == bool
    np.testing.assert_array_equal(r.mask, expected)
    assert r.mask_fraction == pytest.approx(16 * 26 / (48 * 80))
    np.testing.assert_array_equal(r.mask, r.heatmap >= r.pixel_threshold)


def test_mask_is_empty_for_clean_label(config):
    r = _result(config, [0.875, 0.0625, 0.03125, 0.03125], _constant_planes([0, 1, 0, 0]))
    assert r.label == "clean"
    np.testing.assert_allclose(r.heatmap, 1.0, atol=1e-6)  # every pixel looks like an artifact
    assert r.mask.shape == (48, 80) and r.mask.dtype == bool
    assert not r.mask.any()
    assert r.mask_fraction == 0.0


@pytest.mark.parametrize(
    ("pixel_threshold", "fraction"),
    [(0.0, 1.0), (0.25, 1.0), (0.5, 0.5), (0.75, 0.5), (0.75 + 2**-10, 0.0), (1.0, 0.0)],
)
def test_mask_pixel_threshold_edges(config, pixel_threshold, fraction):
    # identity size, artifact probability exactly 0.75 on the right half and 0.25 on the left
    clean = np.full((8, 10), 0.75, dtype=np.float32)
    clean[:, 5:] = 0.25
    planes = np.stack([clean, 1 - clean, np.zeros_like(clean), np.zeros_like(clean)])
    r = _result(
        config, [0.125, 0.75, 0.0625, 0.0625], planes, (8, 10), pixel_threshold=pixel_threshold
    )
    assert r.pixel_threshold == pixel_threshold
    np.testing.assert_array_equal(r.mask, r.heatmap >= pixel_threshold)
    assert r.mask_fraction == fraction
    if fraction == 0.5:
        assert r.mask[:, 5:].all() and not r.mask[:, :5].any()


@pytest.mark.parametrize(("clean", "fraction"), [(0.25, 1.0), (0.75, 0.0)])
def test_mask_resized_constant(config, clean, fraction):
    r = _result(config, [0.125, 0.75, 0.0625, 0.0625], _constant_planes([clean, 1 - clean, 0, 0]))
    assert r.mask.shape == (48, 80)
    assert r.mask_fraction == fraction


# --------------------------------------------------------------------------------------------------
# to_dict / to_json


KEYS = {
    "source",
    "label",
    "is_artifact",
    "artifact_score",
    "scores",
    "width",
    "height",
    "mask_fraction",
    "regions",
    "thresholds",
    "timings_ms",
}


@pytest.mark.parametrize("source", [None, "photos/a b.jpg"])
@pytest.mark.parametrize(
    "probs", [[0.125, 0.75, 0.0625, 0.0625], [0.875, 0.0625, 0.03125, 0.03125]]
)
def test_to_dict_is_json_serialisable(config, source, probs):
    r = Result.from_probs(
        np.asarray(probs, dtype=np.float32),
        _region_planes(48, 80, (28, 44, 50, 76)),
        config,
        (48, 80),
        source=source,
    )
    d = r.to_dict()
    assert set(d) == KEYS
    assert json.loads(json.dumps(d)) == d
    assert json.loads(r.to_json()) == d
    assert d["source"] == source
    assert d["label"] == r.label and type(d["label"]) is str
    assert d["is_artifact"] is r.is_artifact
    assert d["artifact_score"] == r.artifact_score and type(d["artifact_score"]) is float
    assert d["scores"] == r.scores and list(d["scores"]) == list(CLASSES)
    assert d["width"] == 80 and d["height"] == 48
    assert type(d["width"]) is int and type(d["height"]) is int
    assert type(d["mask_fraction"]) is float
    assert d["mask_fraction"] == (16 * 26 / (48 * 80) if r.is_artifact else 0.0)
    regions = [{"label": "ghosting", "bbox": [50, 28, 76, 44], "area": 16 * 26 / (48 * 80),
                "peak": 1.0}] if r.is_artifact else []  # fmt: skip
    assert d["regions"] == regions
    assert d["thresholds"] == {"image": 0.5, "pixel": 0.5, "classes": {}}
    assert d["timings_ms"] == {}  # only a Detector measures
    d["scores"]["clean"] = -1.0  # a copy, not the result's own dict
    assert r.scores["clean"] != -1.0


# --------------------------------------------------------------------------------------------------
# overlay


def _text_box(label: str) -> tuple[int, int, int, int]:
    """The filled label rectangle (inclusive bounds) drawn at the top-left corner."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("RGB", (8, 8))).textbbox((4, 4), label)
    return left - 3, top - 3, right + 3, bottom + 3


@pytest.fixture
def overlay_case(config, rgb_image):
    box = (28, 44, 50, 76)
    r = _result(config, [0.125, 0.75, 0.0625, 0.0625], _region_planes(48, 80, box))
    assert r.label == "ghosting"
    return r, rgb_image, box


def test_overlay_pixels_outside_mask_unchanged(overlay_case):
    r, rgb, (y0, y1, x0, x1) = overlay_case
    out = r.overlay(rgb)
    assert isinstance(out, Image.Image)
    assert out.mode == "RGB" and out.size == (80, 48)
    px = np.asarray(out)
    keep = ~r.mask
    left, top, right, bottom = _text_box(r.label)
    assert bottom < y0 and right < 80  # the label box is away from the mask
    keep[: bottom + 1, : right + 1] = False
    assert keep.sum() > 48 * 80 // 2
    changed = keep & (px != rgb).any(axis=-1)
    ys, xs = np.nonzero(changed)  # the region's label, just above its top-left corner
    assert changed.any() and ys.max() < y0 and xs.min() >= x0
    keep &= ~changed
    np.testing.assert_array_equal(px[keep], rgb[keep])
    # a strip well below the label box is untouched everywhere outside the mask
    np.testing.assert_array_equal(px[24:, :x0], rgb[24:, :x0])


def test_overlay_tints_the_mask(overlay_case):
    r, rgb, (y0, y1, x0, x1) = overlay_case
    px = np.asarray(r.overlay(rgb)).astype(int)
    color = np.array(CLASS_COLORS["ghosting"])
    # outline: the one-pixel ring of the mask rectangle, in the class colour
    ring = np.zeros((48, 80), dtype=bool)
    ring[y0:y1, x0:x1] = True
    ring[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = False
    assert (px[ring] == color).all()
    # interior: heatmap 1, alpha 0.5 -> weight 0.5 -> round-half-up of (rgb + colour) / 2
    inner = (slice(y0 + 1, y1 - 1), slice(x0 + 1, x1 - 1))
    expected = (rgb[inner].astype(int) + color + 1) // 2
    np.testing.assert_array_equal(px[inner], expected)


def test_overlay_accepts_any_image_input(overlay_case, tmp_path):
    r, rgb, _ = overlay_case
    path = tmp_path / "img.png"
    Image.fromarray(rgb).save(path)
    reference = np.asarray(r.overlay(rgb))
    for image in (Image.fromarray(rgb), str(path), path, rgb.astype(np.float64) / 255):
        np.testing.assert_array_equal(np.asarray(r.overlay(image)), reference)


def test_overlay_clean_label_changes_only_the_text_box(config, rgb_image):
    r = _result(config, [0.875, 0.0625, 0.03125, 0.03125], _constant_planes([0, 1, 0, 0]))
    assert r.label == "clean"
    px = np.asarray(r.overlay(rgb_image))
    left, top, right, bottom = _text_box("clean")
    keep = np.ones((48, 80), dtype=bool)
    keep[: bottom + 1, : right + 1] = False
    np.testing.assert_array_equal(px[keep], rgb_image[keep])
    assert not np.array_equal(px, rgb_image)  # the label was drawn


@pytest.mark.parametrize("hw", [(80, 48), (48, 81), (47, 80), (1, 1)])
def test_overlay_wrong_size_raises(overlay_case, hw):
    r, _, _ = overlay_case
    with pytest.raises(ValueError, match="80x48"):
        r.overlay(np.zeros((*hw, 3), dtype=np.uint8))


def test_overlay_does_not_modify_the_input(overlay_case):
    r, rgb, _ = overlay_case
    before = rgb.copy()
    r.overlay(rgb)
    np.testing.assert_array_equal(rgb, before)


# --------------------------------------------------------------------------------------------------
# run-time thresholds and regions


@pytest.mark.parametrize(
    ("probs", "classes", "label"),
    [
        ([0.375, 0.125, 0.25, 0.25], {}, "flare"),  # the plain rule on the image threshold
        # flare has its own threshold and stays below it: no other class is reported
        ([0.375, 0.125, 0.25, 0.25], {"flare": 0.3125}, "clean"),
        ([0.375, 0.125, 0.3125, 0.1875], {"flare": 0.25}, "flare"),
        # a class over its own threshold is reported even below the image threshold
        ([0.75, 0.0625, 0.1875, 0.0], {"flare": 0.125}, "flare"),
        ([0.75, 0.0625, 0.1875, 0.0], {"ghosting": 0.125}, "clean"),
        # the most probable reported class wins
        ([0.25, 0.375, 0.3125, 0.0625], {"ghosting": 0.5, "flare": 0.25}, "flare"),
        ([0.25, 0.375, 0.3125, 0.0625], {"flare": 0.25}, "ghosting"),
    ],
)
def test_class_thresholds(config, probs, classes, label):
    from ipad_sdk.thresholds import Thresholds

    thresholds = Thresholds.resolve(config, classes=classes)
    r = Result.from_probs(np.asarray(probs), _constant_planes([0.25] * 4), config, (8, 8),
                          thresholds=thresholds)  # fmt: skip
    assert r.label == label
    assert r.to_dict()["thresholds"] == {"image": 0.5, "pixel": 0.5, "classes": classes}


@pytest.mark.parametrize(
    ("changes", "match"),
    [({"image": 1.5}, "image_threshold"), ({"pixel": float("nan")}, "pixel_threshold"),
     ({"classes": {"clean": 0.5}}, "clean"), ({"classes": {"dust": 0.5}}, "dust"),
     ({"classes": {"flare": -0.25}}, "flare")],
)  # fmt: skip
def test_bad_thresholds_are_refused(config, changes, match):
    from ipad_sdk.thresholds import Thresholds

    with pytest.raises(ValueError, match=match):
        Thresholds.resolve(config, **changes)


def test_regions_per_class_with_bbox_area_and_peak(config):
    """Two flare blobs and one moire blob: three regions, each in its class, largest first."""
    planes = np.zeros((4, 40, 60), dtype=np.float32)
    planes[0] = 1.0
    for (y0, y1, x0, x1), k, p in [((2, 12, 2, 22), 2, 0.75), ((20, 24, 40, 44), 2, 0.875),
                                   ((26, 36, 10, 30), 3, 0.625)]:  # fmt: skip
        planes[0, y0:y1, x0:x1], planes[k, y0:y1, x0:x1] = 1 - p, p
    r = Result.from_probs(np.array([0.125, 0.125, 0.5, 0.25]), planes, config, (40, 60))
    assert r.label == "flare"
    assert [x.to_dict() for x in r.regions] == [
        {"label": "flare", "bbox": [2, 2, 22, 12], "area": 200 / 2400, "peak": 0.75},
        {"label": "flare", "bbox": [40, 20, 44, 24], "area": 16 / 2400, "peak": 0.875},
        {"label": "moire", "bbox": [10, 26, 30, 36], "area": 200 / 2400, "peak": 0.625},
    ]
    assert _result(config, [0.875, 0.0625, 0.03125, 0.03125]).regions == []  # clean: no mask
