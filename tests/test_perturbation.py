"""featviz.perturb and featviz.mnist_style: the input transforms of the explorer and sketchpad."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import featviz
from featviz import mnist_style, perturb
from featviz.data import MNIST_MEAN, MNIST_STD, mnist_denormalize

BACKGROUND = (0.0 - MNIST_MEAN) / MNIST_STD  # blank paper, normalised: -0.4242


@pytest.fixture(scope="module")
def model():
    return featviz.pretrained()


@pytest.fixture(scope="module")
def digits():
    images, labels = featviz.digit_examples()
    return images, labels


def dot(size: int = 7, row: int = 3, col: int = 3) -> torch.Tensor:
    x = torch.zeros(1, size, size)
    x[0, row, col] = 1.0
    return x


# ---------------------------------------------------------------- perturb: moves

def test_two_pixel_shift_moves_conv1_maps_by_two_pixels(model, digits):
    images, _ = digits
    for dx, dy in [(2, 0), (0, 2), (-2, 2)]:
        moved = perturb(images, shift=(dx, dy))
        acts = featviz.activations(model, images, ["conv1"])["conv1"]
        moved_acts = featviz.activations(model, moved, ["conv1"])["conv1"]
        h, w = acts.shape[-2:]
        # maps move with the digit, except the strip the border brought in
        new = moved_acts[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
        old = acts[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        torch.testing.assert_close(new, old, atol=1e-5, rtol=0)
        assert (moved_acts - acts).abs().max() > 0.1  # they did move


def test_integer_shift_is_exact_and_fills_with_the_background(digits):
    images, _ = digits
    moved = perturb(images[3], shift=(2, -1))
    assert torch.equal(moved[:, :-1, 2:], images[3][:, 1:, :-2])
    assert torch.allclose(moved[:, :, :2], torch.tensor(BACKGROUND))  # not 0
    assert torch.allclose(moved[:, -1, :], torch.tensor(BACKGROUND))


def test_subpixel_shift_interpolates():
    moved = perturb(dot(), shift=(0.5, 0.0), fill=0.0)
    assert moved[0, 3, 3].item() == pytest.approx(0.5, abs=1e-6)
    assert moved[0, 3, 4].item() == pytest.approx(0.5, abs=1e-6)


def test_rotation_is_counter_clockwise_about_the_centre():
    x = dot(row=3, col=5)  # right of the centre (3, 3)
    turned = perturb(x, rotate=90.0, fill=0.0)
    assert turned[0, 1, 3].item() == pytest.approx(1.0, abs=1e-5)  # now above the centre
    assert float(turned.sum()) == pytest.approx(1.0, abs=1e-5)


def test_scale_zooms_about_the_centre():
    x = dot(row=3, col=4)  # one pixel right of the centre
    zoomed = perturb(x, scale=2.0, fill=0.0)
    assert zoomed[0, 3, 5].item() == pytest.approx(1.0, abs=1e-5)  # two pixels right


def test_non_square_images_rotate_without_stretching():
    x = torch.zeros(1, 5, 9)
    x[0, 2, 6] = 1.0  # two right of the centre (2, 4)
    turned = perturb(x, rotate=-90.0, fill=0.0)  # clockwise: right goes down
    assert turned[0, 4, 4].item() == pytest.approx(1.0, abs=1e-5)


def test_erase_box_and_clipping(digits):
    images, _ = digits
    erased = perturb(images[0], erase=(10, 8, 6, 4))
    assert torch.allclose(erased[:, 8:12, 10:16], torch.tensor(BACKGROUND))
    assert torch.equal(erased[:, :8], images[0][:, :8])
    assert torch.equal(erased[:, :, 16:], images[0][:, :, 16:])
    corner = perturb(images[0], erase=(-3, 25, 6, 10))  # partly outside: clipped
    assert torch.allclose(corner[:, 25:, :3], torch.tensor(BACKGROUND))
    assert torch.equal(corner[:, :25], images[0][:, :25])


def test_fill_per_image_and_per_channel():
    x = torch.stack([torch.full((3, 6, 6), v) for v in (1.0, -2.0)])
    x[:, :, 2, 2] = 5.0
    assert perturb(x, shift=(3, 0))[:, :, 0, 0].tolist() == [[1.0] * 3, [-2.0] * 3]
    rgb = perturb(x, shift=(3, 0), fill=[0.1, 0.2, 0.3])
    assert torch.allclose(rgb[1, :, 0, 0], torch.tensor([0.1, 0.2, 0.3]))


def test_shape_dtype_device_kept_and_input_untouched(digits):
    images, _ = digits
    before = images.clone()
    for kwargs in [dict(shift=(2, 1)), dict(shift=(0.3, 1)), dict(rotate=20, scale=0.8),
                   dict(erase=(0, 0, 5, 5)), dict(noise=0.5), dict()]:
        out = perturb(images, **kwargs)
        assert out.shape == images.shape and out.dtype == images.dtype
        assert out.data_ptr() != images.data_ptr()
        single = perturb(images[0], **kwargs)
        assert single.shape == images[0].shape
    assert torch.equal(images, before)
    assert torch.equal(perturb(images), images)  # nothing asked, nothing changed


def test_noise_is_seeded():
    x = torch.zeros(4, 1, 28, 28)
    a = perturb(x, noise=0.5, seed=3)
    assert torch.equal(a, perturb(x, noise=0.5, seed=3))
    assert not torch.equal(a, perturb(x, noise=0.5, seed=4))
    assert float(a.std()) == pytest.approx(0.5, rel=0.05)


def test_prediction_holds_under_a_small_shift(model, digits):
    images, labels = digits
    with torch.no_grad():
        assert torch.equal(model(perturb(images, shift=(2, 0))).argmax(1), labels)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(shift=3), TypeError, r"shift must be a pair \(dx, dy\)"),
    (dict(shift=(1, "a")), TypeError, r"shift\[1\] must be a finite number"),
    (dict(scale=0), ValueError, "scale must be > 0"),
    (dict(rotate=float("nan")), TypeError, "rotate must be a finite number"),
    (dict(noise=-1), ValueError, "noise is a standard deviation"),
    (dict(erase=(1, 2, 3)), TypeError, r"box \(x, y, w, h\)"),
    (dict(erase=(1, 2, -3, 4)), ValueError, "width and height >= 0"),
    (dict(fill=[0.0, 1.0]), ValueError, "fill has 2 values but the images have 1 channels"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
])
def test_bad_arguments_say_how_to_fix_them(kwargs, error, message):
    with pytest.raises(error, match=message):
        perturb(torch.zeros(1, 8, 8), **kwargs)


def test_bad_images():
    with pytest.raises(TypeError, match="integer"):
        perturb(torch.zeros(1, 8, 8, dtype=torch.uint8), shift=(1, 0))
    with pytest.raises(ValueError, match=r"x\[None\]"):
        perturb(torch.zeros(8, 8), shift=(1, 0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_perturb_on_cuda_matches_the_cpu(digits):
    images, _ = digits
    for kwargs in [dict(shift=(2, -1)), dict(shift=(0.5, 1), rotate=15, scale=1.1),
                   dict(erase=(3, 4, 5, 6), noise=0.3, seed=7)]:
        out = perturb(images.cuda(), **kwargs)
        assert out.device.type == "cuda"
        torch.testing.assert_close(out.cpu(), perturb(images, **kwargs), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- mnist_style

def test_mnist_digits_are_already_in_mnist_style(digits):
    images, _ = digits
    for image in images:
        pixels = mnist_denormalize(image[0])
        torch.testing.assert_close(mnist_style(pixels)[0], image, atol=1e-5, rtol=0)


def test_mnist_style_keeps_accuracy_for_scaled_and_moved_digits(model):
    images, labels = featviz.mnist_tensors(train=False)
    gen = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(images), generator=gen)[:1000]
    pixels = mnist_denormalize(images[pick])
    inputs = []
    for digit in pixels:
        size = round(28 * (1.5 + 1.5 * torch.rand((), generator=gen).item()))
        big = F.interpolate(digit[None], size=(size, size), mode="bilinear",
                            align_corners=False)[0, 0].clamp(0, 1)
        canvas = torch.zeros(100, 100)
        top, left = torch.randint(0, 100 - size + 1, (2,), generator=gen).tolist()
        canvas[top:top + size, left:left + size] = big
        inputs.append(mnist_style(canvas.numpy()))
    with torch.no_grad():
        accuracy = (model(torch.cat(inputs)).argmax(1) == labels[pick]).float().mean().item()
    assert accuracy >= 0.97


def test_mnist_style_box_and_centre_of_mass():
    drawing = np.zeros((280, 200), dtype=np.float32)
    drawing[30:230, 20:60] = 1.0  # a 200x40 bar far left: 20x4 once fitted
    x = mnist_style(drawing)
    assert x.shape == (1, 1, 28, 28) and x.dtype == torch.float32
    ink = (x[0, 0] * MNIST_STD + MNIST_MEAN).clamp(0, 1)
    rows = torch.nonzero(ink.amax(1) > 0.01).flatten()
    cols = torch.nonzero(ink.amax(0) > 0.01).flatten()
    assert len(rows) == 20 and len(cols) == 4
    grid = torch.arange(28.0)
    assert float((ink.sum(1) * grid).sum() / ink.sum()) == pytest.approx(14.0, abs=0.5)
    assert float((ink.sum(0) * grid).sum() / ink.sum()) == pytest.approx(14.0, abs=0.5)


def test_mnist_style_blank_and_inputs():
    blank = mnist_style(np.zeros((280, 280), dtype=np.float32))
    assert torch.allclose(blank, torch.full((1, 1, 28, 28), BACKGROUND))
    stroke = torch.zeros(1, 50, 50)
    stroke[0, 5:45, 24:27] = 1.0
    assert torch.equal(mnist_style(stroke), mnist_style(stroke[0].numpy()))
    with pytest.raises(TypeError, match="pixels / 255"):
        mnist_style(np.zeros((28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        mnist_style(torch.full((28, 28), -0.4242))
    with pytest.raises(ValueError, match=r"shape \(H, W\)"):
        mnist_style(np.zeros((3, 28, 28), dtype=np.float32))
