"""The Fourier parameterisation of maximize_activation: range, strength, diversity, seeds."""
from __future__ import annotations

import pytest
import torch

import featviz
from featviz import fourier


@pytest.fixture(scope="module")
def trained():
    return featviz.pretrained().eval()


@pytest.mark.parametrize("value_range", [(0.0, 1.0), featviz.MNIST_RANGE, (-2.0, -1.5)])
@pytest.mark.parametrize("channels", [1, 3])
def test_images_stay_in_the_requested_range(value_range, channels):
    image = fourier.FourierImage((channels, 12, 9), n=2, value_range=value_range, init=3.0)
    x = image()
    assert x.shape == (2, channels, 12, 9)
    assert x.min() >= value_range[0] and x.max() <= value_range[1]
    assert x.std() > 0.01 * (value_range[1] - value_range[0])   # not a flat image


def test_the_spectrum_favours_low_frequencies():
    image = fourier.FourierImage((1, 28, 28), n=64, init=1.0)
    x = image().detach()
    power = torch.fft.rfft2(x).abs().pow(2).mean(dim=(0, 1))
    assert power[1, 1] > 10 * power[14, 14]


def test_fourier_reaches_at_least_the_pixel_activation_on_every_conv2_channel(trained):
    # the default 128 steps for both; scores are the activation of the final,
    # un-transformed images, measured the same way for both
    kw = dict(steps=128, value_range=featviz.MNIST_RANGE)
    pixel = featviz.maximize_activation(trained, "conv2", **kw)
    smooth = featviz.maximize_activation(trained, "conv2", param="fourier", **kw)
    lo, hi = featviz.MNIST_RANGE
    assert smooth.images.min() >= lo and smooth.images.max() <= hi
    assert smooth.param == "fourier" and pixel.param == "pixel"
    below = (smooth.scores < pixel.scores).nonzero().flatten().tolist()
    assert not below, f"channels {below}: {smooth.scores[below]} < {pixel.scores[below]}"


def test_scores_are_the_activation_of_the_returned_images(trained):
    m = featviz.maximize_activation(trained, "conv2", [6, 10], steps=8, param="fourier",
                                    value_range=featviz.MNIST_RANGE)
    acts = featviz.activations(trained, m.images, "conv2")["conv2"]
    torch.testing.assert_close(acts[[0, 1], [6, 10], 4, 4], m.scores, rtol=1e-4, atol=1e-4)


def test_diverse_images_differ_and_the_first_is_images(trained):
    m = featviz.maximize_activation(trained, "conv2", [6, 10], steps=24, param="fourier",
                                    n_images=3, value_range=featviz.MNIST_RANGE)
    assert m.variants.shape == (2, 3, 1, 28, 28) and m.variant_scores.shape == (2, 3)
    torch.testing.assert_close(m.images, m.variants[:, 0])
    torch.testing.assert_close(m.scores, m.variant_scores[:, 0])
    assert m.history.shape == (24, 2)
    for group in m.variants:
        flat = group.flatten(1)
        gaps = torch.cdist(flat, flat)[torch.triu_indices(3, 3, 1).unbind()]
        assert gaps.min() > 0.1 * flat.norm(dim=1).mean()
    alike = featviz.maximize_activation(trained, "conv2", [6], steps=24, param="fourier",
                                        n_images=3, diversity=0.0,
                                        value_range=featviz.MNIST_RANGE)
    feats = featviz.activations(trained, m.variants[0], "conv2")["conv2"]
    feats0 = featviz.activations(trained, alike.variants[0], "conv2")["conv2"]
    assert fourier.diversity_penalty(feats, 3).mean() < fourier.diversity_penalty(feats0, 3).mean()


def test_same_seed_same_images_other_seed_other_images(trained):
    kw = dict(steps=10, param="fourier", value_range=featviz.MNIST_RANGE)
    a = featviz.maximize_activation(trained, "conv2", [3, 5], **kw)
    b = featviz.maximize_activation(trained, "conv2", [3, 5], **kw)
    c = featviz.maximize_activation(trained, "conv2", [3, 5], seed=1, **kw)
    torch.testing.assert_close(a.images, b.images)
    assert not torch.allclose(a.images, c.images)


def test_rgb_models_get_decorrelated_colour():
    x = fourier.FourierImage((3, 8, 8), init=1.0)()
    # the fixed colour matrix mixes the channels: they are correlated, not independent
    c = torch.corrcoef(x[0].flatten(1))
    assert c[0, 1] > 0.5


def test_bad_arguments_are_named(trained):
    with pytest.raises(ValueError, match="param must be 'pixel' or 'fourier'"):
        featviz.maximize_activation(trained, "conv2", 1, param="fft")
    with pytest.raises(ValueError, match="need param='fourier'"):
        featviz.maximize_activation(trained, "conv2", 1, n_images=2)
    with pytest.raises(ValueError, match="n_images must be a positive int"):
        featviz.maximize_activation(trained, "conv2", 1, param="fourier", n_images=0)
    with pytest.raises(ValueError, match="transforms must be"):
        featviz.maximize_activation(trained, "conv2", 1, param="fourier", transforms="big")
    with pytest.raises(ValueError, match="scale"):
        fourier.Transforms(scale=(1.1, 0.9))


def test_transforms_keep_the_size_and_scale_from_lucid():
    x = torch.rand(2, 1, 28, 28)
    out = fourier.SCALED_28(x, torch.Generator().manual_seed(0), fill=0.0)
    assert out.shape == x.shape and not torch.equal(out, x)
    assert fourier.scaled_transforms(28) == fourier.SCALED_28
    lucid = fourier.scaled_transforms(224)
    assert (lucid.pad, lucid.jitter, lucid.jitter_after, lucid.rotate) == (12, 8, 4, 10.0)


def test_the_image_is_the_scaled_inverse_fft_softened():
    image = fourier.FourierImage((1, 10, 12), n=2, init=1.0)
    spec = torch.view_as_complex(image.spectrum) * image.scale
    expected = torch.fft.irfft2(spec, s=(10, 12)) / fourier.SOFTEN
    torch.testing.assert_close(image(), expected)
    assert fourier.SOFTEN == 4.0   # lr=0.1 for param="fourier" was measured with it
