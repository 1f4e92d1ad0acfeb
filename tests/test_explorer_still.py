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


def _inspector_panels(fig):
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label().startswith("inspector ")}


def test_the_one_map_still_shows_the_inspector_it_names():
    images, labels = featviz.digit_batch(list(range(10)))
    model = featviz.pretrained()
    ins = featviz.explorer(model, images=images, labels=labels, layer="conv1", view="single",
                           snapshots=None)
    ins.image_slider.value = 7
    ins.filter_slider.value = 3
    assert not _inspector_panels(ins.snapshot())          # nothing taken apart yet: no strip
    ins.inspect("conv1", 3, (9, 18))
    fig = ins.snapshot()
    panels = _inspector_panels(fig)
    parts = featviz.conv_arithmetic(model, ins.input(), "conv1", 3, (9, 18))
    # patch, kernel and products of the one input channel, the numbers the inspector computes
    for key, name in (("patch", "patch"), ("kernel", "× kernel"), ("products", "= products")):
        shown = np.asarray(panels[f"inspector {name} 0"].get_images()[0].get_array())
        assert np.allclose(shown, getattr(parts, key)[0].numpy(), atol=1e-5), key
    # the sum, the bias and the result are written out
    line = fig.texts[-1].get_text()
    assert f"{parts.bias:.3f}" in line and f"{parts.value:.2f}" in line and "25 products" in line
    # the position is framed on the map, and its 5 x 5 window on the input
    (map_ax,) = [ax for ax in fig.axes if ax.get_label() == "channel 3"]
    (input_ax,) = [ax for ax in fig.axes if ax.get_label() == "input"]
    (mark,) = map_ax.patches
    assert mark.get_xy() == (18 - 0.5, 9 - 0.5) and mark.get_width() == 1
    (window,) = input_ax.patches
    assert window.get_xy() == (18 - 0.5, 9 - 0.5) and window.get_width() == 5


def test_a_deeper_layer_shows_its_largest_input_channels():
    images, labels = featviz.digit_batch(list(range(10)))
    model = featviz.pretrained()
    ins = featviz.explorer(model, images=images, labels=labels, layer="conv2", view="single",
                           snapshots=None)
    ins.image_slider.value = 7
    ins.filter_slider.value = 25
    ins.inspect("conv2", 25, (0, 3))
    fig = ins.snapshot()
    parts = featviz.conv_arithmetic(model, ins.input(), "conv2", 25, (0, 3))
    top3 = [c for c, _ in parts.ranked()[:3]]
    shown = sorted(int(label.split()[-1]) for label in _inspector_panels(fig)
                   if label.startswith("inspector patch"))
    assert shown == sorted(top3)
    line = fig.texts[-1].get_text()
    assert "16 input channels" in line and "the other 13" in line
    ins.filter_slider.value = 24                 # another map: the strip is not about it
    assert not _inspector_panels(ins.snapshot())
