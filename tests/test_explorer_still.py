"""The explorer's still reads as a picture of the explorer: the input image, numbered tiles,
the chosen one framed, and the controls' state written above it."""
from __future__ import annotations

import numpy as np
import pytest

import featviz

pytest.importorskip("ipywidgets")


@pytest.fixture(scope="module")
def explorer():
    images, labels = featviz.digit_batch(list(range(10)))
    return featviz.explorer(featviz.pretrained(), images=images, labels=labels)


def _tiles(fig):
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label().startswith("channel")}


def test_the_grid_still_shows_the_input_numbered_tiles_and_the_controls(explorer):
    explorer.image_slider.value = 3
    explorer.layer_dropdown.value = "relu2"
    explorer.filter_slider.value = 5
    explorer.view.value = "grid"
    fig = explorer.snapshot()
    tiles = _tiles(fig)
    assert len(tiles) == 32
    # every tile carries its own filter number
    for name, ax in tiles.items():
        assert [t.get_text() for t in ax.texts] == [name.split()[1]]
    # the input panel holds this image (the explorer's input, not another)
    (panel,) = [ax for ax in fig.axes if ax.get_label() == "input"]
    shown = np.asarray(panel.get_images()[0].get_array())
    x = explorer.input()[0].numpy().mean(0)
    assert np.allclose(shown, (x - x.min()) / np.ptp(x), atol=1e-6)
    # the controls' state, in words
    words = fig.texts[0].get_text()
    for part in ("image 3", "layer relu2", "filter 5", "scale shared", "view all maps"):
        assert part in words, words
    # the chosen filter is framed, the others are not
    assert tiles["channel 5"].spines["top"].get_visible()
    assert not tiles["channel 4"].spines["top"].get_visible()


def test_the_still_follows_the_controls(explorer):
    explorer.view.value = "grid"
    explorer.layer_dropdown.value = "conv1"
    explorer.norm.value = "per-map"
    explorer.image_slider.value = 7
    fig = explorer.snapshot()
    words = fig.texts[0].get_text()
    assert "image 7" in words and "layer conv1" in words and "scale per map" in words
    assert len(_tiles(fig)) == 16
    explorer.norm.value = "shared"
