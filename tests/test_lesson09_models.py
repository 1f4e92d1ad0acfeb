"""The anti-aliased SimpleCNN of lesson 09 and the augmentation its script trains with."""
from __future__ import annotations

import torch
import torch.nn.functional as F

import featviz
from featviz.models import AntialiasedMaxPool2d, SimpleCNN, load_checkpoint, save_checkpoint
from tests._scripts import load_script


def test_antialiased_pool_is_a_max_then_a_binomial_blur_by_hand():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 8)
    out = AntialiasedMaxPool2d(3)(x)
    peaks = F.max_pool2d(x, 2, stride=1)                      # (2, 3, 5, 7)
    padded = F.pad(peaks, (1, 1, 1, 1))
    weights = torch.tensor([1.0, 2.0, 1.0])
    expected = torch.zeros(2, 3, 3, 4)
    for i in range(3):
        for j in range(4):
            patch = padded[..., 2 * i:2 * i + 3, 2 * j:2 * j + 3]
            expected[..., i, j] = (patch * weights[:, None] * weights[None, :]).sum((-2, -1)) / 16
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_antialiased_simplecnn_keeps_every_layer_name_and_shape():
    x = torch.randn(3, 1, 28, 28)
    plain, smooth = SimpleCNN(), SimpleCNN(antialias=True)
    names = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "fc3"]
    a = featviz.activations(plain, x, names)
    b = featviz.activations(smooth, x, names)
    assert {n: tuple(a[n].shape) for n in names} == {n: tuple(b[n].shape) for n in names}
    assert str(featviz.receptive_field(smooth, "pool2")).count("4x4 pixels apart") == 1


def test_the_blur_is_not_trained():
    torch.manual_seed(0)
    model = SimpleCNN(antialias=True)
    before = model.pool2.blur.weight.clone()
    images, labels = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    featviz.fit(model, (images, labels), lr=1e-2, batch_size=16, progress=False)
    torch.testing.assert_close(model.pool2.blur.weight, before)
    assert not model.conv1.weight.equal(SimpleCNN(antialias=True).conv1.weight)


def test_blurred_pooling_moves_more_smoothly_with_a_one_pixel_shift():
    torch.manual_seed(0)
    x = torch.relu(torch.randn(64, 4, 24, 24))
    moved = torch.roll(x, 1, dims=-1)

    def change(pool):
        a, b = pool(x)[..., 1:-1], pool(moved)[..., 1:-1]
        return float((a - b).norm() / a.norm())

    assert change(AntialiasedMaxPool2d(4)) < 0.7 * change(torch.nn.MaxPool2d(2))


def test_a_saved_antialiased_model_loads_as_one(tmp_path):
    model = SimpleCNN(antialias=True)
    path = save_checkpoint(model, tmp_path / "smooth.pt")
    loaded = load_checkpoint(path)
    assert isinstance(loaded.pool1, AntialiasedMaxPool2d)
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model.eval()(x))


def test_the_scripts_augmentation_keeps_the_image_when_asked_for_no_change_and_moves_it_otherwise():
    script = load_script("train_lesson09")
    x = torch.full((4, 1, 28, 28), -0.4242)
    x[:, :, 10:18, 12:16] = 2.8
    torch.testing.assert_close(script.shift_rotate(0, 0.0)(x), x)
    torch.manual_seed(0)
    out = script.shift_rotate(6, 30.0)(x)
    assert out.shape == x.shape
    assert float(out.amin()) >= -0.4242 - 1e-5 and float(out.amax()) <= 2.8 + 1e-5
    assert not torch.allclose(out, x)
    assert torch.isclose(out[:, :, 0, 0], torch.tensor(-0.4242)).all()  # background moves in
