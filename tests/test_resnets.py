"""featviz.SmallResNet: the deeper network that lesson 08 trains when no ImageNet weights are at hand."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import featviz

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def net() -> featviz.SmallResNet:
    torch.manual_seed(0)
    return featviz.SmallResNet().eval()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    return images[:256].clone(), labels[:256].clone()


def test_stages_halve_the_maps_and_double_the_channels(net, digits):
    x = digits[0][:4]
    assert net(x).shape == (4, 10)
    acts = featviz.activations(net, x, ["stem", "layer1", "layer2", "layer3", "pool"])
    shapes = {k: tuple(v.shape[1:]) for k, v in acts.items()}
    assert shapes == {"stem": (12, 28, 28), "layer1": (12, 28, 28), "layer2": (24, 14, 14),
                      "layer3": (48, 7, 7), "pool": (48, 1, 1)}
    # every module runs once, so the layers inside a block have names of their own
    names = featviz.resolve_layers(net, "layer2.*")
    assert {"layer2.conv1", "layer2.relu1", "layer2.conv2", "layer2.relu2",
            "layer2.shortcut"} <= set(names)
    assert isinstance(net.layer1.shortcut, nn.Identity)
    colour = featviz.SmallResNet(num_classes=3, channels=(4, 8, 8), in_channels=3)
    assert colour(torch.zeros(2, 3, 28, 28)).shape == (2, 3)


def test_receptive_fields_are_traced_through_the_residual_blocks(net):
    expected = {"stem": (3, 1), "layer1": (7, 1), "layer2": (13, 2), "layer3": (25, 4),
                "layer2.conv1": (9, 2)}
    for layer, (size, stride) in expected.items():
        rf = featviz.receptive_field(net, layer)
        assert rf.size == (size, size) and rf.stride == (stride, stride), layer
        assert rf.center(0, 0) == (0.0, 0.0), layer  # padded: unit i looks at pixel stride * i
    # the real dependence: a pixel outside unit (3, 3)'s 25x25 field does not change it
    x = torch.zeros(2, 1, 28, 28)
    x[1, 0, 27, 27] = 5.0  # layer3 unit (3, 3) sees pixels 0..24; unit (6, 6) sees 12..27
    acts = featviz.activations(net, x, ["layer3"])["layer3"]
    assert torch.allclose(acts[0, :, 3, 3], acts[1, :, 3, 3])
    assert not torch.allclose(acts[0, :, 6, 6], acts[1, :, 6, 6])


def test_a_few_training_steps_reduce_the_loss(digits):
    torch.manual_seed(0)
    model = featviz.SmallResNet(channels=(8, 16, 16))
    x, y = digits
    before = featviz.evaluate(model, (x, y))["loss"]
    featviz.fit(model, (x, y), epochs=2, lr=1e-2, batch_size=32, progress=False)
    after = featviz.evaluate(model, (x, y))["loss"]
    assert after < 0.9 * before  # measured: 2.31 -> 1.88 in 16 steps
    assert not model.training


def test_the_course_tools_apply_to_it(net, digits):
    x, y = digits[0][:4], digits[1][:4]
    cam = featviz.grad_cam(net, x, "layer3", y)
    assert cam.shape == (4, 28, 28) and (cam >= 0).all()
    top = featviz.top_activating(net, digits[0], "layer3", channel=5, k=3)
    rf = featviz.receptive_field(net, "layer3")
    for (t, l, b, r), patch in zip(top.boxes.tolist(), top.patches):
        assert 0 <= t < b <= 28 and 0 <= l < r <= 28 and b - t <= rf.size[0]
        assert tuple(patch.shape[-2:]) == (b - t, r - l)
    assert featviz.SmallResNet.RECIPE["epochs"] >= 1  # the settings lesson 08 trains with
