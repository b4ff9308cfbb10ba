"""Native-resolution tiling: grid and window math, blending, the image rule, and the Detector/CLI
paths (checked against tile-by-tile runs of an untiled Detector, blended by hand here)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from PIL import Image

from ipad_sdk import Detector
from ipad_sdk.cli import main
from ipad_sdk.tiling import (
    TileLayout,
    TilingSpec,
    blend,
    combine_scores,
    plan_tiles,
    tile_starts,
    window,
)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    base = np.stack([xx * 3 + yy, yy * 7 + xx, (xx * yy) // 3], axis=-1)
    return ((base + rng.integers(0, 40, size=(height, width, 3))) % 256).astype(np.uint8)


@pytest.mark.parametrize("length", [64, 65, 100, 127, 128, 200, 1000, 4097])
@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_tile_starts_cover_evenly_with_at_least_the_overlap(length, overlap):
    tile = 64
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert starts == sorted(set(starts))
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all()
    steps = np.diff(starts)
    assert (steps <= math.floor(tile * (1 - overlap))).all()  # neighbours share >= overlap
    assert len(starts) == 1 or steps.max() - steps.min() <= 1  # evenly spaced


def test_tile_starts_small_length_is_one_tile():
    assert tile_starts(30, 64, 0.25) == [0]


def test_window_is_a_positive_hann_at_pixel_centres():
    win = window(8)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(8) + 0.5) / 8)  # the textbook form
    np.testing.assert_allclose(win, np.outer(hann, hann), atol=1e-6)
    assert (win > 0).all() and win.max() <= 1.0
    np.testing.assert_array_equal(win, win[::-1, ::-1])


@pytest.mark.parametrize("size", [(100, 100), (130, 97), (64, 300)])
def test_blend_weights_sum_to_one_and_cover_every_pixel(size):
    layout = plan_tiles(size, 32, TilingSpec(scale=1.0, overlap=0.25, max_tiles=1000, min_side=1))
    assert layout is not None and layout.working_size == size
    ones = np.ones((len(layout.corners), 2, 32, 32), np.float32)
    np.testing.assert_allclose(blend(ones, layout), 1.0, atol=1e-6)  # normalised weights sum to 1


def test_blend_of_crops_of_one_map_gives_that_map_back():
    rng = np.random.default_rng(3)
    truth = rng.random((3, 90, 150)).astype(np.float32)
    layout = plan_tiles((90, 150), 40, TilingSpec(scale=1.0, overlap=0.5, max_tiles=1000))
    assert layout is not None and len(layout.corners) > 4
    crops = np.stack([truth[:, y : y + 40, x : x + 40] for y, x in layout.corners])
    np.testing.assert_allclose(blend(crops, layout), truth, atol=1e-6)


def test_blend_weights_the_tile_centres_more():
    layout = TileLayout((10, 16), 10, ((0, 0), (0, 6)))
    maps = np.stack([np.zeros((1, 10, 10)), np.ones((1, 10, 10))]).astype(np.float32)
    out = blend(maps, layout)[0]
    np.testing.assert_array_equal(out[:, :6], 0.0)  # only the left tile covers these
    np.testing.assert_array_equal(out[:, 10:], 1.0)
    # in the overlap (columns 6..9) the weight moves from the left tile to the right one
    hann = np.sin(np.pi * (np.arange(10) + 0.5) / 10) ** 2
    expected = hann[0:4] / (hann[6:10] + hann[0:4])
    np.testing.assert_allclose(out[0, 6:10], expected, atol=1e-6)
    assert np.all(np.diff(out[0, 6:10]) > 0)


def test_blend_rejects_a_wrong_tile_count():
    layout = TileLayout((10, 10), 10, ((0, 0),))
    with pytest.raises(ValueError, match="2 tile maps"):
        blend(np.zeros((2, 1, 10, 10), np.float32), layout)


def test_plan_tiles_small_images_are_not_tiled():
    spec = TilingSpec()
    assert plan_tiles((64, 64), 64, spec) is None
    assert plan_tiles((95, 400), 64, spec) is None  # short side < 1.5 tiles
    assert plan_tiles((96, 400), 64, spec) is not None


def test_plan_tiles_respects_scale_and_max_tiles():
    layout = plan_tiles((1000, 1500), 100, TilingSpec(scale=0.5, max_tiles=1000))
    assert layout is not None and layout.working_size == (500, 750)
    capped = plan_tiles((1000, 1500), 100, TilingSpec(max_tiles=12))
    assert capped is not None and len(capped.corners) <= 12
    h, w = capped.working_size
    assert abs(h / w - 1000 / 1500) < 0.01 and h >= 150
    for y, x in capped.corners:
        assert 0 <= y <= h - 100 and 0 <= x <= w - 100
    assert plan_tiles((1000, 1500), 100, TilingSpec(max_tiles=1)) is None  # cannot fit


def test_combine_scores_rules():
    g = np.array([0.7, 0.1, 0.1, 0.1])
    tiles = np.array([[0.9, 0.05, 0.03, 0.02], [0.2, 0.1, 0.6, 0.1], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_array_equal(combine_scores(g, tiles, "global"), g)
    np.testing.assert_allclose(combine_scores(g, tiles, "mean"), [0.45, 0.1, 0.35, 0.1])
    np.testing.assert_array_equal(combine_scores(g, tiles, "max"), tiles[1])
    clean_tiles = np.array([[0.95, 0.05, 0.0, 0.0]])
    np.testing.assert_array_equal(combine_scores(g, clean_tiles, "max"), g)


def test_spec_parsing():
    assert TilingSpec.parse("off") is None and TilingSpec.parse(None) is None
    assert TilingSpec.parse("auto") == TilingSpec()
    spec = TilingSpec.parse("scale=0.5, overlap=0.5,max_tiles=9,image_rule=max")
    assert spec == TilingSpec(scale=0.5, overlap=0.5, max_tiles=9, image_rule="max")
    for bad in (
        "scale=2",
        "overlap=1",
        "tiles=3",
        "scale",
        "image_rule=vote",
        "scale=x",
        "min_side=nan",
        "min_side=inf",
        "min_side=0.5",
        "scale=nan",
        "overlap=nan",
    ):
        with pytest.raises(ValueError, match="tiling"):
            TilingSpec.parse(bad)


@pytest.fixture(scope="module")
def detectors(tiny_bundle):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec = TilingSpec(scale=0.5, overlap=0.25, image_rule="mean")
        return (Detector(tiny_bundle, device="cpu", batch_size=3),
                Detector(tiny_bundle, device="cpu", batch_size=3, tiling=spec))  # fmt: skip


def test_small_images_are_unchanged_by_tiling(detectors):
    plain, tiled = detectors
    image = _image(80, 90)  # working short side 40 < 1.5 x 64
    a, b = plain.detect(image), tiled.detect(image)
    assert a.scores == b.scores
    np.testing.assert_array_equal(a.pixel_probs, b.pixel_probs)


def test_tiled_detection_equals_tile_by_tile_runs_blended_by_hand(detectors):
    plain, tiled = detectors
    image = _image(300, 410, seed=5)
    result = tiled.detect(image)
    working = np.asarray(Image.fromarray(image).resize((205, 150), Image.Resampling.BICUBIC))
    ys, xs = tile_starts(150, 64, 0.25), tile_starts(205, 64, 0.25)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * (np.arange(64) + 0.5) / 64)
    acc, weight = np.zeros((4, 150, 205)), np.zeros((150, 205))
    tile_scores = []
    for y in ys:
        for x in xs:
            res = plain.detect(working[y : y + 64, x : x + 64])  # exactly model size: no resize
            acc[:, y : y + 64, x : x + 64] += np.outer(hann, hann) * res.pixel_probs
            weight[y : y + 64, x : x + 64] += np.outer(hann, hann)
            tile_scores.append([res.scores[c] for c in plain.classes])
    assert result.pixel_probs.shape == (4, 150, 205)
    np.testing.assert_allclose(result.pixel_probs, acc / weight, atol=1e-5)
    whole = np.array([plain.detect(image).scores[c] for c in plain.classes])
    top = np.array(tile_scores)[np.argmin(np.array(tile_scores)[:, 0])]
    expected = (whole + top) / 2
    np.testing.assert_allclose([result.scores[c] for c in plain.classes], expected, atol=1e-5)
    assert result.heatmap.shape == (300, 410)


def test_stream_with_tiling_keeps_order_and_reports_bad_items(detectors, tmp_path):
    plain, tiled = detectors
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    items = [_image(300, 300, 1), str(bad), _image(70, 70, 2), _image(260, 400, 3)]
    out = list(tiled.stream(items, batch_size=2, workers=2))
    assert [r.ok for r in out] == [True, False, True, True]
    assert str(bad) in str(out[1].error)
    for item, res in zip([items[0], items[2], items[3]], [out[0], out[2], out[3]], strict=True):
        np.testing.assert_allclose(res.pixel_probs, tiled.detect(item).pixel_probs, atol=1e-6)


def test_cli_tiling(tiny_bundle, tmp_path, capsys):
    Image.fromarray(_image(300, 420, 4)).save(tmp_path / "big.png")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["detect", str(tmp_path / "big.png"), "-m", str(tiny_bundle), "-o", str(out),
                     "--tiling", "scale=0.5", "--save-masks", "-q"])  # fmt: skip
        assert code == 0
        record = json.loads((out / "results.jsonl").read_text())
        det = Detector(tiny_bundle, device="cpu", tiling="scale=0.5")
    assert record["artifact_score"] == pytest.approx(
        det.detect(tmp_path / "big.png").artifact_score
    )
    assert main(["detect", str(tmp_path), "-m", str(tiny_bundle), "--tiling", "scale=3"]) == 2
    assert "--tiling" in capsys.readouterr().err
