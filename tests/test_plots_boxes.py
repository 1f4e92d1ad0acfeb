"""plot_top_activating: the rows a learner reads, the compared first column, the boxes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.patches import Rectangle

import featviz
from featviz.plots import plot_top_activating

KW = dict(mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = featviz.pretrained().eval()
    images, labels = featviz.mnist_tensors(train=False)   # the bundled sample offline
    return model, images[:200], labels[:200]


@pytest.fixture(scope="module")
def tops(setup):
    model, images, labels = setup
    return featviz.top_activating(model, (images, labels), "conv2", [3, 5, 6], k=4)


def axes(fig, suffix):
    return [ax for ax in fig.axes if ax.get_label().endswith(suffix)]


def test_one_labelled_row_per_channel_in_the_order_asked(tops):
    fig = plot_top_activating(tops, [6, 3], **KW)
    assert [t.get_text() for t in fig.texts[2:]] == ["ch 6", "ch 3"]
    panels = [ax for ax in fig.axes if " top " in ax.get_label()]
    assert [ax.get_label() for ax in panels[:4]] == [f"channel 6 top {i}" for i in range(4)]
    assert len(panels) == 8
    # each panel is titled with the image's label and the channel's score there, best first
    t = tops[6]
    want = [f"{int(lab)} · {featviz._style.fmt(s, 3)}" for lab, s in zip(t.labels, t.scores.tolist())]
    assert [ax.get_title() for ax in panels[:4]] == want


def test_patches_are_drawn_as_true_pixels(tops):
    fig = plot_top_activating(tops[3], **KW)
    ax = [a for a in fig.axes if a.get_label() == "channel 3 top 0"][0]
    drawn = ax.images[0].get_array()
    expected = featviz.mnist_denormalize(tops[3].patches[0])[0].numpy()
    assert drawn.shape == (14, 14)
    np.testing.assert_allclose(drawn, np.clip(expected, 0, 1), atol=1e-5)


def test_synthetic_first_column_is_set_apart_and_scored(setup, tops):
    crops = torch.zeros(32, 1, 14, 14)
    scores = torch.arange(32.0)
    fig = plot_top_activating(tops, first=crops, first_scores=scores, **KW)
    firsts = axes(fig, " synthetic")
    assert [ax.get_title() for ax in firsts] == ["synthetic · 3", "synthetic · 5", "synthetic · 6"]
    # the separator runs between the first column and the real patches
    (line,) = [a for a in fig.artists if a.get_label() == "separator"]
    x = line.get_xdata()[0]
    real = [ax for ax in fig.axes if ax.get_label().endswith("top 0")]
    assert all(ax.get_position().x1 < x < r.get_position().x0 for ax, r in zip(firsts, real))


def test_first_layer_filters_beside_their_patches(setup):
    model, images, labels = setup
    t1 = featviz.top_activating(model, (images, labels), "conv1", [0, 10], k=3)
    fig = plot_top_activating(t1, first=model.conv1, **KW)
    (f0, f10) = axes(fig, " filter")
    drawn = f10.images[0]
    np.testing.assert_allclose(drawn.get_array(), model.conv1.weight[10, 0].detach().numpy(),
                               atol=1e-6)
    lo, hi = drawn.get_clim()
    assert lo == pytest.approx(-hi) and drawn.get_cmap().name == "RdBu_r"


def test_whole_images_carry_the_winning_box(tops):
    fig = plot_top_activating(tops[5], whole=True, **KW)
    ax = [a for a in fig.axes if a.get_label() == "channel 5 top 1"][0]
    assert ax.images[0].get_array().shape == (28, 28)
    (box,) = [p for p in ax.patches if isinstance(p, Rectangle)]
    top, left, bottom, right = tops[5].boxes[1].tolist()
    assert (box.get_x(), box.get_y()) == (left - 0.5, top - 0.5)
    assert (box.get_width(), box.get_height()) == (right - left, bottom - top)


def test_clear_errors(tops):
    with pytest.raises(ValueError, match=r"channels \[7\] are not in tops.*\[3, 5, 6\]"):
        plot_top_activating(tops, [7])
    with pytest.raises(TypeError, match="what featviz.top_activating returns"):
        plot_top_activating(torch.zeros(3, 1, 14, 14))
