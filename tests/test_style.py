"""The colour policy and grid layout shared by the figures and the widgets."""
from __future__ import annotations

import numpy as np
import pytest

from featviz._style import (POSITIVE_CMAP, SIGNED_CMAP, choose_cmap, color_scale, fmt,
                            grid_shape, limits)


# ---------------------------------------------------------------- grid_shape

def test_grid_shape_fits_common_channel_counts():
    assert grid_shape(1) == (1, 1)
    assert grid_shape(7) == (2, 4)
    assert grid_shape(16) == (4, 4)
    assert grid_shape(32) == (4, 8)
    assert grid_shape(512) == (16, 32)
    assert grid_shape(16, max_cols=8) == (2, 8)
    assert grid_shape(3, 10) == (1, 3)  # never more columns than panels


@pytest.mark.parametrize("n", list(range(1, 130)) + [256, 512, 1000])
def test_grid_shape_has_no_empty_row(n):
    rows, cols = grid_shape(n)
    assert rows * cols >= n
    assert rows * cols - n < cols, "a whole empty row would be left at the bottom"


def test_grid_shape_rejects_nonsense():
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        grid_shape(0)
    with pytest.raises(ValueError, match="max_cols"):
        grid_shape(4, max_cols=0)
    with pytest.raises(ValueError, match="aspect"):
        grid_shape(4, aspect=0)


# ---------------------------------------------------------------- colour maps and limits

def test_signed_values_get_a_diverging_map_centred_at_zero():
    assert choose_cmap(np.array([-0.5, 0.2, 2.0])) == SIGNED_CMAP
    assert color_scale(np.array([-0.5, 0.2, 2.0])) == (SIGNED_CMAP, -2.0, 2.0)


def test_non_negative_values_get_a_sequential_map_from_zero():
    assert choose_cmap(np.array([[0.0, 0.3], [1.5, 0.0]])) == POSITIVE_CMAP
    assert color_scale(np.array([[0.0, 0.3], [1.5, 0.0]])) == (POSITIVE_CMAP, 0.0, 1.5)


def test_colour_edge_cases():
    assert color_scale(np.zeros((3, 3))) == (POSITIVE_CMAP, 0.0, 1.0)
    assert color_scale(np.array([])) == (POSITIVE_CMAP, 0.0, 1.0)
    # float noise below zero does not make a ReLU output "signed"
    assert choose_cmap(np.array([-1e-12, 4.0])) == POSITIVE_CMAP
    assert color_scale(np.array([np.nan, 2.0, np.inf])) == (POSITIVE_CMAP, 0.0, 2.0)
    # a diverging map asked for by name keeps zero in the middle
    assert color_scale(np.array([0.5, 2.0]), cmap="coolwarm") == ("coolwarm", -2.0, 2.0)
    assert color_scale(np.array([0.5, 2.0]), cmap="viridis") == ("viridis", 0.0, 2.0)


def signed_maps() -> np.ndarray:
    maps = np.zeros((3, 2, 2))
    maps[0] = [[-4.0, 1.0], [0.0, 2.0]]
    maps[1] = [[0.5, 0.25], [0.0, 0.0]]   # non-negative, but in a signed layer
    return maps                          # map 2 is dead


def test_shared_limits_are_the_layers_for_every_map():
    lo, hi = limits(signed_maps(), "shared")
    assert lo.shape == hi.shape == (3,)
    assert lo.tolist() == [-4.0] * 3 and hi.tolist() == [4.0] * 3


def test_per_map_limits_keep_the_layers_centring_and_never_stretch_a_dead_map():
    lo, hi = limits(signed_maps(), "per-map")
    assert lo.tolist() == [-4.0, -0.5, -1.0] and hi.tolist() == [4.0, 0.5, 1.0]
    relu = np.abs(signed_maps())
    lo, hi = limits(relu, "per-map")
    assert lo.tolist() == [0.0, 0.0, 0.0] and hi.tolist() == [4.0, 0.5, 1.0]
    # drawn with a diverging map, non-negative maps are centred too
    lo, hi = limits(relu, "per-map", cmap=SIGNED_CMAP)
    assert lo.tolist() == [-4.0, -0.5, -1.0]


def test_limits_ignore_nan_and_inf():
    maps = np.array([[[np.nan, 3.0]], [[np.inf, np.nan]]])
    lo, hi = limits(maps, "per-map")
    assert lo.tolist() == [0.0, 0.0] and hi.tolist() == [3.0, 1.0]


def test_limits_reject_an_unknown_scale_and_empty_maps():
    with pytest.raises(ValueError, match="'shared' or 'per-map', got 'row'"):
        limits(signed_maps(), "row")
    with pytest.raises(ValueError, match=r"maps\[None\]"):
        limits(np.float32(2.0))


def test_fmt_is_short():
    assert [fmt(v) for v in (0.01234, 3.0, -1.5, 12.0, 250.4)] == ["0.012", "3", "-1.5", "12", "250"]
    assert fmt(0.012345, digits=3) == "0.0123"
