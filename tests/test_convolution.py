"""featviz.conv_arithmetic: one convolution value taken apart.

Every case compares the parts with the activation the layer produced, as
captured by featviz.activations, or by the layer called by hand.
"""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

import featviz
from featviz import conv_arithmetic


@pytest.fixture(scope="module")
def simple():
    model = featviz.pretrained()
    images, _ = featviz.digit_examples()
    return model, images


def assert_adds_up(parts, expected: float) -> None:
    assert abs(parts.value - expected) <= 1e-5
    assert abs(float(parts.products.sum()) + parts.bias - parts.value) <= 1e-5
    assert abs(float(parts.per_channel.sum()) + parts.bias - parts.value) <= 1e-5
    assert torch.equal(parts.products, parts.patch * parts.kernel)


@pytest.mark.parametrize("layer", ["conv1", "conv2"])
def test_simplecnn_values_equal_the_captured_activations(simple, layer):
    model, images = simple
    acts = featviz.activations(model, images, [layer])[layer]
    size = acts.shape[-1]
    for digit, channel, position in [(7, 0, (0, 0)), (3, 5, (size - 1, size - 1)),
                                     (0, acts.shape[1] - 1, (size // 2, 1))]:
        parts = conv_arithmetic(model, images[digit], layer, channel, position)
        assert_adds_up(parts, float(acts[digit, channel, position[0], position[1]]))
        assert parts.layer == layer and parts.channel == channel and parts.position == position


def test_conv1_patch_is_the_image_under_the_kernel(simple):
    model, images = simple
    parts = conv_arithmetic(model, images[4], "conv1", 2, (6, 9))
    assert torch.equal(parts.patch, images[4][:, 6:11, 9:14])
    assert torch.equal(parts.kernel, model.conv1.weight.detach()[2])
    assert parts.bias == pytest.approx(float(model.conv1.bias.detach()[2]))
    assert parts.input_channels == (0,) and parts.origin == (6, 9)
    assert bool(parts.inside.all())


def test_conv2_sums_sixteen_ranked_input_channels(simple):
    model, images = simple
    parts = conv_arithmetic(model, images[2:3], "conv2", 7, (3, 4))
    assert parts.patch.shape == parts.kernel.shape == (16, 5, 5)
    assert parts.input_channels == tuple(range(16))
    ranked = parts.ranked()
    assert sorted(c for c, _ in ranked) == list(range(16))
    sizes = [abs(v) for _, v in ranked]
    assert sizes == sorted(sizes, reverse=True)
    assert ranked[0][1] == pytest.approx(float(parts.per_channel[ranked[0][0]]))
    table = parts.table(top=3)
    assert f"input channel {ranked[0][0]}" in table and "13 other channels" in table
    assert "bias" in table and f"{parts.value:+.5f}" in table
    assert "<table>" in parts._repr_html_()


def resnet_case():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None).eval()  # conv_arithmetic runs in eval mode
    x = torch.randn(1, 3, 64, 64)
    return model, x


@pytest.mark.parametrize("layer, channel, position, outside", [
    ("conv1", 5, (0, 0), (3, 3)),            # stride 2, padding 3: three rows/cols padding
    ("conv1", 9, (31, 31), (2, 2)),          # bottom-right corner of 32x32
    ("layer2.0.conv1", 40, (0, 7), (1, 0)),  # stride 2, padding 1, top edge
])
def test_resnet_padded_strided_conv_at_the_border(layer, channel, position, outside):
    model, x = resnet_case()
    acts = featviz.activations(model, x, [layer])[layer]
    parts = conv_arithmetic(model, x, layer, channel, position)
    assert_adds_up(parts, float(acts[0, channel, position[0], position[1]]))
    rows_out, cols_out = outside
    inside = parts.inside
    assert int((~inside.any(dim=1)).sum()) == rows_out
    assert int((~inside.any(dim=0)).sum()) == cols_out
    assert float(parts.patch[:, ~inside].abs().sum()) == 0.0  # zeros in the padding


def test_model_state_is_restored():
    model, x = resnet_case()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    conv_arithmetic(model, x, "conv1", 0, (0, 0))
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm stats untouched


def by_hand(conv: nn.Conv2d, x: torch.Tensor, channel: int, position) -> float:
    with torch.no_grad():
        return float(conv(x)[0, channel, position[0], position[1]])


def test_depthwise_conv():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1, groups=4), nn.ReLU())
    x = torch.randn(1, 4, 10, 10)
    for channel, position in [(5, (0, 9)), (0, (4, 4)), (7, (9, 0))]:
        parts = conv_arithmetic(model, x, "0", channel, position)
        assert parts.patch.shape == (1, 3, 3)
        assert parts.input_channels == (channel // 2,)  # two output maps per input channel
        assert_adds_up(parts, by_hand(model[0], x, channel, position))


def test_dilated_strided_conv():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=2, dilation=2))
    x = torch.randn(3, 15, 13)
    parts = conv_arithmetic(model, x, "0", 4, (0, 6))
    assert_adds_up(parts, by_hand(model[0], x[None], 4, (0, 6)))
    assert parts.origin == (-2, 10) and parts.dilation == (2, 2) and parts.stride == (2, 2)
    # the patch skips every other pixel
    assert torch.equal(parts.patch[:, 1:, 0], x[:, 0:3:2, 10])


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
def test_other_padding_modes(padding_mode):
    torch.manual_seed(3)
    conv = nn.Conv2d(2, 3, 3, padding=1, padding_mode=padding_mode)
    model = nn.Sequential(conv)
    x = torch.randn(1, 2, 6, 6)
    parts = conv_arithmetic(model, x, "0", 1, (0, 5))
    assert_adds_up(parts, by_hand(conv, x, 1, (0, 5)))
    assert float(parts.patch[:, 0].abs().sum()) > 0  # padded values are not zeros here


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_same_padding_with_an_even_kernel():
    torch.manual_seed(4)
    conv = nn.Conv2d(2, 2, 4, padding="same", bias=False)
    x = torch.randn(1, 2, 7, 7)
    for position in [(0, 0), (6, 6), (3, 0)]:
        parts = conv_arithmetic(nn.Sequential(conv), x, "0", 1, position)
        assert parts.bias == 0.0
        assert_adds_up(parts, by_hand(conv, x, 1, position))


def test_errors_say_what_is_valid(simple):
    model, images = simple
    with pytest.raises(ValueError, match=r"'relu1' is a ReLU, not a Conv2d.*conv1, conv2"):
        conv_arithmetic(model, images[0], "relu1", 0, (0, 0))
    with pytest.raises(ValueError, match=r"no layer named 'conv3'.*Conv2d layers: conv1, conv2"):
        conv_arithmetic(model, images[0], "conv3", 0, (0, 0))
    with pytest.raises(ValueError, match=r"0\.\.15 \(conv1 has 16 output channels\), got 16"):
        conv_arithmetic(model, images[0], "conv1", 16, (0, 0))
    with pytest.raises(ValueError, match=r"outside conv2's 8x8 maps: row must be in 0\.\.7"):
        conv_arithmetic(model, images[0], "conv2", 0, (8, 0))
    with pytest.raises(TypeError, match=r"position must be \(row, col\)"):
        conv_arithmetic(model, images[0], "conv2", 0, 3)
    with pytest.raises(ValueError, match="x holds 10 images; pass one of them"):
        conv_arithmetic(model, images, "conv2", 0, (0, 0))
    with pytest.raises(ValueError, match="has no Conv2d layer"):
        conv_arithmetic(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), torch.randn(1, 2, 2),
                        "1", 0, (0, 0))


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_on_cuda_the_sum_still_equals_the_value():
    precision = torch.backends.cudnn.conv.fp32_precision
    model, x = resnet_case()
    on_cpu = conv_arithmetic(model, x, "layer2.0.conv1", 40, (0, 7))
    parts = conv_arithmetic(model.cuda(), x.cuda(), "layer2.0.conv1", 40, (0, 7))
    assert parts.patch.device.type == "cpu" and parts.kernel.device.type == "cpu"
    assert abs(parts.total - parts.value) <= 1e-5  # full float32, not TF32, for this pass
    assert abs(parts.value - on_cpu.value) <= 1e-4
    assert torch.backends.cudnn.conv.fp32_precision == precision  # the setting restored
