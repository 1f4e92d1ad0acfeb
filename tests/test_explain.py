"""featviz.explain against independent computations: by hand, by brute force, by Captum."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import featviz
from featviz import explain
from featviz.explain import (
    grad_cam,
    maximize_activation,
    occlusion,
    receptive_field,
    saliency,
    top_activating,
)

torch.set_num_threads(1)  # tiny models: threads only add overhead on a shared machine
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> featviz.SimpleCNN:
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    return images[:300].clone(), labels[:300].clone()


@pytest.fixture(scope="module")
def trained() -> featviz.SimpleCNN:
    try:
        return featviz.pretrained()
    except FileNotFoundError as exc:
        pytest.skip(f"the pretrained checkpoint is not bundled yet: {exc}")


def tiny_rgb_cnn(num_classes: int = 4) -> nn.Module:
    """A torchvision-style colour network: padded convs, batch norm, in-place ReLU."""
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes),
    ).eval()


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps (ties broken by position, fine for real maps)."""
    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def hand_saliency(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x)[torch.arange(len(x)), target].sum().backward()
    return x.grad.abs().amax(dim=1)


def hand_grad_cam(model: nn.Module, x: torch.Tensor, module: nn.Module, target: torch.Tensor,
                  ) -> torch.Tensor:
    store = {}
    handle = module.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        logits = model(x)
    finally:
        handle.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(logits[torch.arange(len(x)), target].sum(), a)
    weights = g.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * a).sum(dim=1, keepdim=True))
    return nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear",
                                     align_corners=False)[:, 0].detach()


def no_hooks_left(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks and not m._backward_hooks
               and not getattr(m, "_backward_pre_hooks", None) for m in model.modules())


# --------------------------------------------------------------------------- receptive field


def test_receptive_field_of_simplecnn_matches_the_arithmetic(model):
    # conv 5x5 -> 5; pool 2/2 -> 5 + 1*1 = 6, jump 2; conv 5x5 -> 6 + 4*2 = 14; pool -> 14 + 1*2 = 16
    expected = {"conv1": (5, 1), "relu1": (5, 1), "pool1": (6, 2), "conv2": (14, 2),
                "relu2": (14, 2), "pool2": (16, 4)}
    for layer, (size, stride) in expected.items():
        rf = receptive_field(model, layer)
        assert rf.size == (size, size) and rf.stride == (stride, stride), layer
        assert rf.offset == (0, 0)
    rf = receptive_field(model, "conv2")
    assert rf.output_size == (8, 8) and rf.input_size == (28, 28)
    assert rf.box(0, 0) == (0, 0, 14, 14)
    assert rf.box(7, 3) == (14, 6, 28, 20)  # the last row ends exactly at the border
    assert rf.center(0, 0) == (6.5, 6.5)


def test_receptive_field_box_is_the_support_of_the_gradient():
    # all-positive weights and no ReLU: every pixel in the field reaches the unit
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.AvgPool2d(2),
                        nn.Conv2d(2, 2, 3, padding=2, dilation=2))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(p.abs() + 0.1)
    rf = receptive_field(net, "2", input_size=(1, 20, 20))
    x = torch.zeros(1, 1, 20, 20, requires_grad=True)
    out = net(x)
    assert rf.output_size == tuple(out.shape[-2:])
    def support(row: int, col: int) -> tuple[int, int, int, int]:
        (g,) = torch.autograd.grad(out[0, 0, row, col], x, retain_graph=True)
        rows, cols = torch.nonzero(g[0, 0] != 0, as_tuple=True)
        return int(rows.min()), int(cols.min()), int(rows.max()) + 1, int(cols.max()) + 1

    # a unit away from the border sees exactly its box
    assert support(2, 2) == rf.box(2, 2)
    # near the border part of the box falls on the padding of the inner layers:
    # the box is then an upper bound, as for every receptive-field calculator
    for row, col in [(0, 0), (0, 3), (4, 4), (3, 1)]:
        top, left, bottom, right = support(row, col)
        btop, bleft, bbottom, bright = rf.box(row, col)
        assert btop <= top and bleft <= left and bottom <= bbottom and right <= bright
    assert rf.offset[0] < 0  # padding: the first box hangs over the border
    assert rf.box(0, 0, clip=False)[0] == rf.offset[0]


def test_pixels_outside_the_box_do_not_change_the_unit(model):
    rf = receptive_field(model, "conv2")
    torch.manual_seed(3)
    x = torch.randn(1, 1, 28, 28)
    row, col = 3, 5
    top, left, bottom, right = rf.box(row, col)
    y = torch.randn(1, 1, 28, 28)
    y[..., top:bottom, left:right] = x[..., top:bottom, left:right]
    acts = featviz.activations(model, torch.cat([x, y]), "conv2")["conv2"]
    assert torch.allclose(acts[0, :, row, col], acts[1, :, row, col], atol=1e-5)
    assert not torch.allclose(acts[0, :, 0, 0], acts[1, :, 0, 0], atol=1e-3)


def test_receptive_field_of_resnet18_is_the_published_435():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(weights=None)
    # stem: 7x7/2 -> 7, pool 3x3/2 -> 11 (jump 4); each stage adds 4 convs 3x3 -> 435 at layer4
    rf = receptive_field(net, "layer4", input_size=(3, 64, 64))
    assert rf.size == (435, 435) and rf.stride == (32, 32)
    assert receptive_field(net, "layer1", input_size=(64, 64)).size == (43, 43)
    assert rf.box(0, 0) == (0, 0, 64, 64)  # clipped to the image


def test_receptive_field_errors_say_what_to_do(model):
    with pytest.raises(ValueError, match="whole input"):
        receptive_field(model, "fc1")
    with pytest.raises(ValueError, match="conv3"):
        receptive_field(model, "conv3")

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.conv2 = nn.Conv2d(4, 4, 3)

        def forward(self, x):
            return self.conv2(nn.functional.max_pool2d(self.conv1(x), 2))

    with pytest.raises(ValueError, match="F.max_pool2d"):
        receptive_field(Functional(), "conv2", input_size=(1, 16, 16))
    with pytest.raises(ValueError, match="input_size"):
        receptive_field(Functional(), "conv1")


# --------------------------------------------------------------------------- top activating


def brute_force_top(model, images, layer, k):
    """Every activation at once, then a full sort per channel (earlier image wins a tie)."""
    acts = featviz.activations(model, images, layer)[layer]
    best, where = acts.flatten(2).max(dim=2)  # (N, C)
    out = {}
    for c in range(acts.shape[1]):
        order = sorted(range(len(images)), key=lambda i: (-float(best[i, c]), i))[:k]
        out[c] = (order, best[order, c], where[order, c])
    return out, acts.shape[-1]


def test_top_activating_equals_a_brute_force_scan(model, digits):
    images, labels = digits
    tops = top_activating(model, (images, labels), "conv2", k=7, batch_size=64)
    expected, width = brute_force_top(model, images, "conv2", 7)
    assert sorted(tops) == list(range(32))
    rf = receptive_field(model, "conv2")
    for c, (order, scores, where) in expected.items():
        t = tops[c]
        assert t.indices.tolist() == order
        assert torch.allclose(t.scores, scores, atol=1e-5)
        assert torch.equal(t.positions[:, 0] * width + t.positions[:, 1], where)
        assert torch.equal(t.images, images[order]) and torch.equal(t.labels, labels[order])
        for patch, img, (r, q) in zip(t.patches, images[order], t.positions.tolist()):
            top, left, bottom, right = rf.box(r, q)
            assert torch.equal(patch, img[:, top:bottom, left:right])
            assert patch.shape == (1, 14, 14)


def test_top_activating_one_channel_a_list_and_a_loader_agree(model, digits):
    images, labels = digits
    all_channels = top_activating(model, images, "relu2", k=5, batch_size=100)
    one = top_activating(model, images, "relu2", 6, k=5)
    assert isinstance(one, explain.TopActivations) and one.labels is None
    assert torch.equal(one.indices, all_channels[6].indices)
    some = top_activating(model, images, "relu2", [6, 2], k=5)
    assert list(some) == [6, 2] and torch.equal(some[2].scores, all_channels[2].scores)

    # a shuffled loader: no index to fetch by, so the images are kept during the scan
    ds = torch.utils.data.TensorDataset(images, labels)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=50, shuffle=True, generator=torch.Generator().manual_seed(0))
    shuffled = top_activating(model, loader, "relu2", 6, k=5)
    assert torch.allclose(shuffled.scores, one.scores)
    # the kept images really are the ones that score so
    rescored = featviz.activations(model, shuffled.images, "relu2")["relu2"][:, 6].amax(dim=(1, 2))
    assert torch.allclose(rescored, shuffled.scores, atol=1e-5)
    # a Dataset is fetched by index after the scan
    from_ds = top_activating(model, ds, "relu2", 6, k=5, batch_size=64)
    assert torch.equal(from_ds.indices, one.indices) and torch.equal(from_ds.images, one.images)


def test_top_activating_on_logits_ranks_by_class_score(model, digits):
    images, _ = digits
    t = top_activating(model, images, "fc3", 3, k=4)
    logits = model(images).detach()[:, 3]
    assert torch.equal(t.indices, logits.argsort(descending=True, stable=True)[:4])
    assert t.positions is None and t.patches[0].shape == (1, 28, 28)


def test_top_activating_clips_patches_at_the_border():
    net = tiny_rgb_cnn()
    torch.manual_seed(2)
    x = torch.randn(20, 3, 16, 16)
    tops = top_activating(net, x, "4", k=3)  # conv after the pool: field 8x8, padded
    rf = receptive_field(net, "4", input_size=(3, 16, 16))
    assert rf.size == (8, 8) and rf.offset == (-3, -3)
    shapes = set()
    for t in tops.values():
        for patch, (top, left, bottom, right) in zip(t.patches, t.boxes.tolist()):
            assert 0 <= top < bottom <= 16 and 0 <= left < right <= 16
            assert patch.shape == (3, bottom - top, right - left)
            shapes.add(tuple(patch.shape))
    assert len(shapes) > 1  # some patches were cut by the border


def test_top_activating_errors(model, digits):
    images, _ = digits
    with pytest.raises(ValueError, match="0..31"):
        top_activating(model, images, "conv2", 32)
    with pytest.raises(ValueError, match="k must"):
        top_activating(model, images, "conv2", 0, k=0)


# --------------------------------------------------------------------------- maximisation


def test_maximize_activation_climbs_and_is_reproducible(model):
    before = copy.deepcopy(model.state_dict())
    m = maximize_activation(model, "conv1", steps=40, value_range=featviz.MNIST_RANGE)
    assert m.images.shape == (16, 1, 28, 28) and m.history.shape == (40, 16)
    assert (m.scores > m.history[0] + 0.1).all()  # every channel climbed
    low, high = featviz.MNIST_RANGE
    assert m.images.min() >= low - 1e-6 and m.images.max() <= high + 1e-6
    again = maximize_activation(model, "conv1", [3, 5], steps=40, value_range=featviz.MNIST_RANGE)
    assert torch.allclose(again.images, m.images[[3, 5]], atol=1e-5)  # same seed, same image
    other = maximize_activation(model, "conv1", [3, 5], steps=40, seed=1,
                                value_range=featviz.MNIST_RANGE)
    assert not torch.allclose(other.images, again.images, atol=1e-3)
    for k, v in model.state_dict().items():  # the weights were not trained
        assert torch.equal(v, before[k])


def test_maximize_activation_beats_real_digits_for_trained_filters(trained, digits):
    images, _ = digits
    m = maximize_activation(trained, "conv2", position="center", value_range=featviz.MNIST_RANGE)
    acts = featviz.activations(trained, images, "conv2")["conv2"][:, :, 4, 4]  # centre unit
    best_real = acts.max(dim=0).values
    # the synthetic pattern excites the centre unit more than any of 300 real digits
    assert (m.scores > best_real).float().mean() >= 0.9


def test_maximize_a_class_logit_gives_that_class(trained):
    m = maximize_activation(trained, "fc3", None, steps=128, value_range=featviz.MNIST_RANGE)
    pred = trained(m.images).argmax(dim=1)
    assert pred.tolist() == list(range(10))


# --------------------------------------------------------------------------- attributions


def test_saliency_equals_the_hand_gradient(model, digits):
    x = digits[0][:6]
    target = torch.tensor([0, 1, 2, 3, 4, 5])
    sal = saliency(model, x, target)
    assert sal.shape == (6, 28, 28) and (sal >= 0).all()
    assert torch.allclose(sal, hand_saliency(model, x, target), atol=1e-7)
    # default target: the predicted class
    pred = model(x).argmax(dim=1)
    assert torch.allclose(saliency(model, x), hand_saliency(model, x, pred))
    # one image (C, H, W) gives one map (H, W)
    assert torch.allclose(saliency(model, x[2], 2), sal[2])


def test_saliency_equals_captum(model, digits):
    captum = pytest.importorskip("captum.attr")
    x = digits[0][:6]
    target = torch.tensor([9, 8, 7, 6, 5, 4])
    theirs = captum.Saliency(model).attribute(x, target=target, abs=True)[:, 0]
    assert torch.allclose(saliency(model, x, target), theirs, atol=1e-7)


def total_variation(m: torch.Tensor) -> float:
    m = m / m.sum(dim=(-2, -1), keepdim=True)
    return float((m[..., 1:, :] - m[..., :-1, :]).abs().sum() + (m[..., 1:] - m[..., :-1]).abs().sum())


def test_smoothgrad_averages_noisy_gradients(model, digits):
    x = digits[0][:4]
    plain = saliency(model, x)
    assert torch.allclose(saliency(model, x, smoothgrad=3, noise=0.0), plain, atol=1e-7)
    sg = saliency(model, x, smoothgrad=16, noise=0.2, seed=0)
    assert torch.equal(sg, saliency(model, x, smoothgrad=16, noise=0.2, seed=0))
    assert not torch.allclose(sg, saliency(model, x, smoothgrad=16, noise=0.2, seed=1))
    assert total_variation(sg) < 0.8 * total_variation(plain)  # less speckle


def test_grad_cam_equals_the_hand_computation(model, digits):
    x = digits[0][:8]
    target = torch.arange(8)
    cam = grad_cam(model, x, "conv2", target, upsample="bilinear")  # as hand_grad_cam
    assert cam.shape == (8, 28, 28) and (cam >= 0).all() and cam.max() > 0
    assert torch.allclose(cam, hand_grad_cam(model, x, model.conv2, target), atol=1e-6)
    coarse = grad_cam(model, x[0], "conv2", 0, upsample="nearest")
    assert coarse.shape == (28, 28)
    assert coarse.unique().numel() <= 64  # the 8x8 grid of conv2, blown up
    assert coarse[:4, :4].unique().numel() == 1  # rows and columns 0-3 all come from unit (0, 0)


def test_grad_cam_equals_captum(model, digits):
    captum = pytest.importorskip("captum.attr")
    x = digits[0][:8]
    target = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    for layer in ["conv2", "relu2", "conv1"]:
        module = getattr(model, layer)
        raw = captum.LayerGradCam(model, module).attribute(x, target=target, relu_attributions=True)
        for mode in ["bilinear", "nearest"]:
            theirs = captum.LayerAttribution.interpolate(raw, (28, 28), mode)[:, 0].detach()
            ours = grad_cam(model, x, layer, target, upsample=mode)
            assert torch.allclose(ours, theirs, atol=1e-6), (layer, mode)


def hand_occlusion(model, x, target, window, stride, fill):
    """A plain loop: every window position, one forward pass each."""
    _, _, h, w = x.shape
    rows = list(range(0, h - window + 1, stride))
    cols = list(range(0, w - window + 1, stride))
    rows += [h - window] if rows[-1] != h - window else []
    cols += [w - window] if cols[-1] != w - window else []
    base = model(x)[0, target].item()
    total = torch.zeros(h, w)
    count = torch.zeros(h, w)
    for r in rows:
        for c in cols:
            y = x.clone()
            y[:, :, r:r + window, c:c + window] = fill
            total[r:r + window, c:c + window] += base - model(y)[0, target].item()
            count[r:r + window, c:c + window] += 1
    return total / count


def test_occlusion_equals_a_hand_loop():
    torch.manual_seed(4)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 7 * 7, 4)).eval()
    x = torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        for i in range(2):
            # 9x9, window 3, stride 2: starts 0, 2, 4, 6 - flush; window 4: 0, 2, 4 and 5
            for window in (3, 4):
                want = hand_occlusion(net, x[i:i + 1], 2, window, 2, fill=-1.0)
                got = occlusion(net, x, 2, window=window, stride=2, baseline=-1.0)[i]
                assert torch.allclose(got, want, atol=1e-5)
            default = occlusion(net, x[i], 2, window=3, stride=2)
            assert torch.allclose(default, hand_occlusion(net, x[i:i + 1], 2, 3, 2, x[i].min()),
                                  atol=1e-5)


def test_occlusion_equals_captum_where_windows_tile(model, digits):
    captum = pytest.importorskip("captum.attr")
    x = digits[0][:3]
    target = torch.tensor([7, 2, 1])
    theirs = captum.Occlusion(model).attribute(
        x, sliding_window_shapes=(1, 6, 6), strides=(1, 2, 2), baselines=-0.5, target=target)
    ours = occlusion(model, x, target, window=6, stride=2, baseline=-0.5)
    assert torch.allclose(ours, theirs[:, 0], atol=1e-5)


def test_attributions_leave_the_model_as_it_was(digits):
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(),
        nn.Linear(4 * 26 * 26, 10))
    net.train()
    net[1].eval()  # a frozen batch norm inside a training model
    net[0].weight.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    flags = [p.requires_grad for p in net.parameters()]
    stats = net[1].running_mean.clone()
    x = digits[0][:3]
    maps = [
        saliency(net, x), saliency(net, x, smoothgrad=2), grad_cam(net, x, "0"),
        occlusion(net, x, window=7, stride=7),
    ]
    maximize_activation(net, "0", 1, steps=3, input_size=(1, 28, 28))
    top_activating(net, x, "2", k=2)
    receptive_field(net, "0", input_size=(1, 28, 28))
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == flags
    assert all(p.grad is None for p in net.parameters())
    assert no_hooks_left(net)
    assert torch.equal(net[1].running_mean, stats)  # no batch-norm update
    # computed in eval mode: dropout off, so the map is the same every time
    assert torch.equal(saliency(net, x), maps[0])
    assert all(m.shape == (3, 28, 28) for m in maps)


def test_attribution_input_errors(model, digits):
    x = digits[0][:2]
    with pytest.raises(TypeError, match="normalize"):
        saliency(model, (x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"0\.\.9"):
        grad_cam(model, x, "conv2", target=10)
    with pytest.raises(ValueError, match="one per image"):
        occlusion(model, x, target=[1, 2, 3])
    with pytest.raises(ValueError, match="conv2"):
        grad_cam(model, x, "fc1")
    with pytest.raises(ValueError, match=r"x\[None\]"):
        saliency(model, x[0, 0])


def test_attributions_work_on_an_rgb_resnet():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(6)
    net = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    target = torch.tensor([1, 4])
    sal = saliency(net, x, target)
    assert sal.shape == (2, 64, 64)
    assert torch.allclose(sal, hand_saliency(net, x, target), atol=1e-6)  # max over colours
    cam = grad_cam(net, x, "layer3", target, upsample="bilinear")
    assert cam.shape == (2, 64, 64)
    assert torch.allclose(cam, hand_grad_cam(net, x, net.layer3, target), atol=1e-5)
    occ = occlusion(net, x[0], 1, window=16, stride=16)
    assert occ.shape == (64, 64)
    # 4x4 windows tile the image, so each 16x16 block holds one value
    assert occ[:16, :16].unique().numel() == 1
    assert no_hooks_left(net)


# --------------------------------------------------------------------------- sanity check


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture with every weight re-drawn (Adebayo et al., 2018)."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh.eval()


def test_maps_of_a_randomized_model_differ_from_the_trained_ones(trained, digits):
    """Adebayo et al. (2018): a map that survives re-drawing the weights explains nothing.

    Rank correlation has a floor here: with any weights, pixels near the border reach
    fewer units than central ones, so any two gradient maps share a "centre > border"
    ranking. The floor is measured as the correlation between the trained model's
    maps of two different digits; the randomized model's maps must sit at or below it,
    far below the control (the same image with a little noise).
    """
    x, labels = digits[0][:16], digits[1][:16]
    other_digit = torch.roll(torch.arange(16), 1)
    rand = randomized(trained)
    torch.manual_seed(0)
    noisy = x + 0.02 * torch.randn_like(x)

    def mean_rank_corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return sum(spearman(p, q) for p, q in zip(a, b)) / len(a)

    for name, method in [("saliency", lambda m, z, t: saliency(m, z, t)),
                         # the units' own values: placing them would add a shared zero border
                         ("grad_cam", lambda m, z, t: grad_cam(m, z, "conv2", t, upsample=None))]:
        ours = method(trained, x, labels)
        control = mean_rank_corr(ours, method(trained, noisy, labels))
        floor = mean_rank_corr(ours, method(trained, x[other_digit], labels[other_digit]))
        randomized_corr = mean_rank_corr(ours, method(rand, x, labels))
        assert control > 0.7, name  # the measure is stable for the trained model...
        assert randomized_corr < control - 0.25, name  # ...the random model's maps are not
        assert randomized_corr < floor + 0.05, name  # no closer than another digit's map
    assert randomized_corr < 0.3  # Grad-CAM: no floor to speak of

