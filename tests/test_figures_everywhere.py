"""Figure texts a learner reads: counts and image numbers."""
from __future__ import annotations

import torch

from featviz.plots import plot_images, plot_feature_maps


def _text(fig) -> str:
    return " ".join(t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text")))


def test_a_single_image_is_not_called_images():
    fig = plot_images(torch.rand(1, 1, 8, 8))
    assert "1 images" not in _text(fig)


def test_image_subtitle_does_not_say_of_n():
    fig = plot_feature_maps(torch.rand(10, 4, 6, 6) + 0.1, index=2)
    text = _text(fig)
    assert "image 2" in text and "of 10" not in text


def test_every_set_of_compared_maps_carries_its_channel_numbers():
    from featviz.plots import plot_comparison

    maps = torch.rand(16, 5, 5)
    fig = plot_comparison({"untrained": maps, "trained": maps * 2}, norm="shared", ncols=8)
    texts = [t.get_text() for t in fig.findobj(lambda o: hasattr(o, "get_text"))]
    # "12" numbers a tile in each of the two sets (the colour bar's ticks are fractions)
    assert texts.count("12") == 2, texts
