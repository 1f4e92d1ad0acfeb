"""featviz.stats against direct computations on whole batches."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import featviz
from featviz import channel_stats, map_stability, perturb, robustness

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def model() -> featviz.SimpleCNN:
    return featviz.pretrained().eval()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    return images[:70].clone(), labels[:70].clone()


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@pytest.mark.parametrize("layer", ["relu1", "conv2", "fc1"])
def test_channel_stats_equals_a_direct_computation(model, digits, layer):
    x, y = digits
    maps = featviz.activations(model, x, layer)[layer].double()
    flat = maps.flatten(2) if maps.dim() > 2 else maps.unsqueeze(2)
    s = channel_stats(model, (x, y), layer, threshold=0.5, batch_size=16)  # 70 = 4 x 16 + 6
    assert s.n_images == 70
    torch.testing.assert_close(s.mean.double(), flat.mean(dim=(0, 2)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(s.max.double(), flat.amax(dim=(0, 2)), rtol=1e-5, atol=1e-6)
    active = (flat.amax(2) > 0.5).double().mean(0)
    torch.testing.assert_close(s.fraction_active.double(), active, rtol=0, atol=1e-6)
    assert s.dead == [int(c) for c in (active == 0).nonzero()[:, 0]]
    assert s.table().count("\n") == 2 + flat.shape[1]  # header, column names, rule, rows


def test_channel_stats_finds_a_channel_forced_dead(model, digits):
    dead = featviz.pretrained().eval()
    with torch.no_grad():
        dead.conv1.weight[3] = 0.0
        dead.conv1.bias[3] = -1.0
    s = channel_stats(dead, digits[0], "relu1", batch_size=32)
    assert s.dead == [3] and float(s.fraction_active[3]) == 0.0 and float(s.max[3]) == 0.0
    assert "1 dead" in str(s) and channel_stats(model, digits[0], "relu1").dead == []


def test_robustness_equals_a_direct_computation(model, digits):
    x, y = digits

    def acc(images: torch.Tensor) -> float:
        return float((model(images).argmax(1) == y).double().mean())

    r = robustness(model, (x, y), shifts=(3, (2, -1)), rotations=(-20, 30), batch_size=32)
    with torch.no_grad():
        assert r.clean == pytest.approx(acc(x))
        # shift=(dx, dy) in perturb; (dy, dx) pairs in robustness
        four = [acc(perturb(x, shift=s)) for s in [(0, 3), (0, -3), (3, 0), (-3, 0)]]
        assert r.shift[3] == pytest.approx(sum(four) / 4)
        assert r.shift[(2, -1)] == pytest.approx(acc(perturb(x, shift=(-1, 2))))
        for g in (-20, 30):
            assert r.rotation[g] == pytest.approx(acc(perturb(x, rotate=g)))
    assert r.n_images == 70 and "rotate 30 deg" in r.table()


def test_robustness_needs_labels_and_sane_shifts(model, digits):
    with pytest.raises(ValueError, match="needs labels"):
        robustness(model, digits[0])
    with pytest.raises(ValueError, match=">= 0"):
        robustness(model, digits, shifts=(-2,))
    with pytest.raises(TypeError, match="whole pixels"):
        robustness(model, digits, shifts=(1.5,))


def test_map_stability_equals_a_direct_computation(model, digits):
    x = digits[0]
    s = map_stability(model, x, "relu2", shift=(2, -3), batch_size=32)  # stride 2: rounds -1.5 to -2
    assert s.stride == (2, 2) and s.units == [(1, -2)]
    a = featviz.activations(model, x, "relu2")["relu2"].double()
    b = featviz.activations(model, perturb(x, shift=(-3, 2)), "relu2")["relu2"].double()
    a, b = a[:, :, :-1, 2:], b[:, :, 1:, :-2]  # b[i, j] shows what a[i - 1, j + 2] shows
    cos = F.cosine_similarity(a.flatten(2), b.flatten(2), dim=2, eps=1e-300)
    defined = (a.flatten(2).norm(dim=2) > 0) | (b.flatten(2).norm(dim=2) > 0)
    want = (cos * defined).sum(0) / defined.sum(0)
    torch.testing.assert_close(s.per_channel.double(), want, rtol=1e-5, atol=1e-6, equal_nan=True)
    assert s.mean == pytest.approx(float(want[~want.isnan()].mean()), rel=1e-5)


def test_map_stability_is_one_for_a_shift_by_the_stride(model, digits):
    # SimpleCNN has no padding: moving the image by a multiple of the stride moves its maps
    s = map_stability(model, digits[0], "pool2", shift=4)
    assert s.units == [(1, 0), (-1, 0), (0, 1), (0, -1)]
    torch.testing.assert_close(s.per_channel[~s.per_channel.isnan()],
                               torch.ones(int((~s.per_channel.isnan()).sum())), atol=1e-5, rtol=0)
    assert map_stability(model, digits[0], "pool2", shift=2).mean < 0.99


def test_map_stability_errors(model, digits):
    with pytest.raises(ValueError, match="stride"):
        map_stability(model, digits[0], "pool2", shift=2, exact=True)
    with pytest.raises(ValueError, match="spatial maps|not spatial"):
        map_stability(model, digits[0], "fc1", shift=2)
    with pytest.raises(ValueError, match="out of the frame"):
        map_stability(model, digits[0], "pool2", shift=(16, 0))


@pytest.mark.parametrize("call", [
    lambda m, d: channel_stats(m, d, "conv9"),
    lambda m, d: map_stability(m, d, "conv9"),
])
def test_a_bad_layer_is_named(model, digits, call):
    with pytest.raises(ValueError, match="conv9"):
        call(model, digits)


def test_mode_grad_and_hooks_are_restored(digits):
    m = featviz.pretrained().train()
    m.conv1.weight.requires_grad_(False)
    before = _hooks(m)
    channel_stats(m, digits, "relu2")
    robustness(m, digits, shifts=(1,), rotations=())
    map_stability(m, digits, "conv2", shift=2)
    with pytest.raises(ValueError):
        robustness(m, digits[0])
    assert m.training and all(mod.training for mod in m.modules())
    assert not m.conv1.weight.requires_grad and m.conv2.weight.requires_grad
    assert _hooks(m) == before
