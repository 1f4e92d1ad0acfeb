"""plot_attribution_grid: images on top, one titled row of overlays per method, colour bars."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import featviz
from featviz.plots import plot_attribution_grid

KW = dict(mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(0)
    images, labels = featviz.digit_examples()
    return images[:4], labels[:4]


def _maps(n=4, size=28, signed=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    m = torch.rand(n, size, size, generator=g)
    return m - 0.5 if signed else m


def _labelled(fig, prefix):
    return [ax for ax in fig.axes if ax.get_label().startswith(prefix)]


def test_one_column_per_image_one_titled_row_per_method(batch):
    images, labels = batch
    fig = plot_attribution_grid(images, {"saliency": _maps(), "occlusion": _maps(signed=True)},
                                [f"digit {d}" for d in labels.tolist()], **KW)
    assert [ax.get_title() for ax in _labelled(fig, "image ")] == [
        "digit 0", "digit 1", "digit 2", "digit 3"]
    assert len(_labelled(fig, "overlay saliency ")) == 4
    assert len(_labelled(fig, "overlay occlusion ")) == 4
    texts = [t.get_text() for t in fig.texts]
    assert "saliency" in texts and "occlusion" in texts       # the rows are named
    assert "each map on its own scale" in texts[1]


def test_maps_are_drawn_over_the_true_pixels_of_their_image(batch):
    images, _ = batch
    fig = plot_attribution_grid(images, {"m": _maps()}, **KW)
    top = _labelled(fig, "image 2")[0].get_images()[0].get_array()
    pixels = featviz.mnist_denormalize(images[2, 0]).clamp(0, 1).numpy()
    assert np.allclose(top, pixels, atol=1e-6)
    under, over = _labelled(fig, "overlay m 2")[0].get_images()
    assert np.allclose(under.get_array(), 0.12 + 0.45 * pixels, atol=1e-6)  # toned down
    assert over.get_array().shape == (28, 28, 4)                           # RGBA on top


def test_per_map_scale_gives_each_map_its_bar_and_signed_maps_a_centred_one(batch):
    images, _ = batch
    signed = _maps(signed=True)
    signed[1] *= 10
    fig = plot_attribution_grid(images, {"occlusion": signed}, **KW)
    bars = _labelled(fig, "colorbar")
    assert len(bars) == 4
    ticks = [[float(t.get_text().replace("\u2212", "-")) for t in b.get_xticklabels()]
             for b in bars]
    lo, hi = ticks[1]
    assert lo == -hi and hi == pytest.approx(float(signed[1].abs().max()), rel=0.05)
    assert ticks[0][1] < hi / 5                                # not stretched to map 1's range


def test_row_scale_shares_one_bar_per_row(batch):
    images, _ = batch
    maps = _maps()
    maps[0] *= 4
    fig = plot_attribution_grid(images, {"a": maps, "b": _maps(seed=1)}, scale="row", **KW)
    assert len(_labelled(fig, "colorbar")) == 2
    # the weakest map is drawn fainter than the strongest one on the shared scale
    alpha = [_labelled(fig, f"overlay a {j}")[0].get_images()[1].get_array()[..., 3].mean()
             for j in range(4)]
    assert alpha[0] > 2 * max(alpha[1:])


def test_coarse_maps_are_placed_by_the_receptive_field(batch):
    images, _ = batch
    model = featviz.pretrained()
    coarse = torch.zeros(4, 8, 8)
    coarse[:, 0, 0] = 1.0                                    # relu2's top-left unit
    rf = featviz.receptive_field(model, "relu2")
    fig = plot_attribution_grid(images, {"cam": coarse}, rf=rf, **KW)
    rgba = _labelled(fig, "overlay cam 0")[0].get_images()[1].get_array()
    row, col = np.unravel_index(np.argmax(rgba[..., 3]), (28, 28))
    assert 5 <= row <= 8 and 5 <= col <= 8                   # at the unit's centre (6.5, 6.5)
    assert rgba[:4, :, 3].max() == 0                         # nothing at the border


def test_mistakes_get_messages_that_say_how_to_fix_them(batch):
    images, _ = batch
    with pytest.raises(ValueError, match=r"one map per image, shape \(4, H, W\)"):
        plot_attribution_grid(images, {"m": _maps(n=3)})
    with pytest.raises(TypeError, match="non-empty dict"):
        plot_attribution_grid(images, [_maps()])
    with pytest.raises(ValueError, match="titles has 2 entries but there are 4 images"):
        plot_attribution_grid(images, {"m": _maps()}, ["a", "b"])
    with pytest.raises(ValueError, match="scale must be .per-map. or .row., got .shared."):
        plot_attribution_grid(images, {"m": _maps()}, scale="shared")
    with pytest.raises(ValueError, match="1 to 24 images"):
        plot_attribution_grid(torch.zeros(30, 1, 28, 28), {"m": _maps(n=30)})
