"""The generators' shared mask morphology: the fast helpers give scipy's binary results exactly."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from train.synth.common import close_square, fill_holes

SHAPES = [(96, 128), (128, 77), (37, 5), (5, 37), (3, 3), (1, 9), (9, 1), (1, 1)]


def _masks(seed: int) -> list[np.ndarray]:
    """Random masks from sparse dots to solid blobs with holes, in every shape of ``SHAPES``."""
    rng = np.random.default_rng(seed)
    masks = []
    for shape in SHAPES:
        for density in (0.0, 0.01, 0.2, 0.5, 0.8, 1.0):
            mask = rng.random(shape) < density
            masks += [mask, ndimage.binary_dilation(mask, iterations=2)]
    return masks


@pytest.mark.parametrize("size", [3, 5, 7])
def test_close_square_is_scipys_closing_with_a_zero_border(size: int) -> None:
    square = np.ones((size, size), bool)
    for mask in _masks(size):
        expected = ndimage.binary_closing(mask, structure=square, border_value=0)
        got = close_square(mask, size)
        assert got.dtype == bool and got.shape == mask.shape
        assert np.array_equal(got, expected), (mask.shape, mask.mean())


def test_close_square_bridges_a_gap_and_erodes_at_the_edge() -> None:
    mask = np.zeros((9, 12), bool)
    mask[3:6, 1:5] = mask[3:6, 7:11] = True  # two bars 2 px apart
    closed = close_square(mask, 5)
    assert closed[3:6, 5:7].all()  # the gap is bridged
    edge = np.zeros((6, 6), bool)
    edge[:, :3] = True  # touches the top, left and bottom edges
    expected = np.zeros((6, 6), bool)
    expected[1:5, 1:3] = True  # zero outside: the closing loses the edge pixels (callers OR it in)
    assert np.array_equal(close_square(edge, 3), expected)


def test_fill_holes_is_scipys() -> None:
    for mask in _masks(11):
        expected = ndimage.binary_fill_holes(mask)
        got = fill_holes(mask)
        assert got.dtype == bool and got.shape == mask.shape
        assert np.array_equal(got, expected), (mask.shape, mask.mean())


def test_fill_holes_fills_enclosed_background_only() -> None:
    mask = np.zeros((8, 10), bool)
    mask[1:6, 1:6] = True
    mask[2:5, 2:5] = False  # an enclosed hole
    mask[0:3, 7] = True  # a bar from the top edge
    mask[0:3, 9] = True  # background between it and the right bar touches the edge
    filled = fill_holes(mask)
    assert filled[2:5, 2:5].all()
    assert not filled[0:3, 8].any()
    diagonal = np.zeros((5, 5), bool)
    diagonal[[1, 2, 2, 3], [2, 1, 3, 2]] = True  # a 4-connected hole at (2, 2)
    assert fill_holes(diagonal)[2, 2]
    corners = np.zeros((4, 4), bool)
    corners[[0, 1], [1, 0]] = True  # the corner pixel touches the edge: never a hole
    assert not fill_holes(corners)[0, 0]
