"""Coarse maps placed on the input by receptive field (featviz.geometry, grad_cam's upsample)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import featviz
from featviz import grad_cam, place_by_receptive_field, receptive_field

torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return featviz.pretrained()


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    return images[:16].clone(), labels[:16].clone()


def interp_between(coarse: torch.Tensor, rows: np.ndarray, cols: np.ndarray,
                   size: tuple[int, int], edge: str = "fade") -> np.ndarray:
    """Linear interpolation between unit centres along each axis (np.interp), rows
    then columns: bilinear on the centres' grid. Beyond the outermost centres,
    "hold" keeps the edge value; "fade" falls to 0 at one more step out."""
    c = coarse.double().numpy()

    def line(xs: np.ndarray, centres: np.ndarray, values: np.ndarray) -> np.ndarray:
        if edge == "hold":
            return np.interp(xs, centres, values)
        step = centres[1] - centres[0]
        return np.interp(xs, np.r_[centres[0] - step, centres, centres[-1] + step],
                         np.r_[0.0, values, 0.0], left=0.0, right=0.0)

    ys, xs = np.arange(size[0]), np.arange(size[1])
    by_rows = np.stack([line(ys, rows, c[:, j]) for j in range(c.shape[1])], axis=1)
    return np.stack([line(xs, cols, by_rows[i]) for i in range(size[0])])


def stretched(coarse: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(coarse[:, None].float(), size=size, mode="bilinear",
                         align_corners=False)[:, 0]


# --------------------------------------------------------------------------- the centres


def test_relu2_centres_run_from_6_5_to_20_5_and_stretching_spreads_them(model):
    rf = receptive_field(model, "relu2")
    rows, cols = rf.grid_centers()
    assert rows.tolist() == cols.tolist() == [6.5 + 2 * i for i in range(8)]
    # an image resize puts unit i at (i + 0.5) * 28 / 8 - 0.5: 1.25 ... 25.75
    spread = [(i + 0.5) * 28 / 8 - 0.5 for i in range(8)]
    assert (spread[0], spread[-1]) == (1.25, 25.75)
    assert max(abs(a - b) for a, b in zip(rows.tolist(), spread)) == 5.25


def test_a_unit_lands_on_its_receptive_field_centre(model):
    rf = receptive_field(model, "relu2")
    for row, col in [(3, 4), (1, 6)]:
        coarse = torch.zeros(8, 8)
        coarse[row, col] = 1.0
        placed = place_by_receptive_field(coarse, model, "relu2")
        ys, xs = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
        centroid = ((placed * ys).sum() / placed.sum(), (placed * xs).sum() / placed.sum())
        assert torch.allclose(torch.stack(centroid), torch.tensor(rf.center(row, col)).float())
        moved = stretched(coarse[None], (28, 28))[0]
        assert ((moved * xs).sum() / moved.sum()).item() == pytest.approx(3.5 * col + 1.25, abs=0.05)


def test_the_centre_is_where_the_unit_looks_in_a_padded_strided_net():
    # all-positive weights: a unit's input gradient is a hill centred on what it sees
    net = nn.Sequential(nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(1, 1, 3, stride=2, padding=1))
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(0.5)
    x = torch.zeros(1, 1, 32, 32, requires_grad=True)
    net(x)[0, 0, 2, 5].backward()
    g = x.grad[0, 0]
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    centroid = ((g * ys).sum() / g.sum()).item(), ((g * xs).sum() / g.sum()).item()
    rf = receptive_field(net, "2", input_size=(1, 32, 32))
    assert rf.center(2, 5) == pytest.approx(centroid) == (8.0, 20.0)  # on the stride grid
    assert (2 + 0.5) * 32 / 8 - 0.5 == 9.5  # where a stretched 8x8 map would draw it


# --------------------------------------------------------------------------- placement


def test_rf_placement_is_bilinear_between_the_centres(model):
    torch.manual_seed(0)
    coarse = torch.rand(3, 8, 8)
    rows, cols = (c.numpy() for c in receptive_field(model, "relu2").grid_centers())
    inside = slice(7, 21)  # pixels 7..20 lie between the centres 6.5 and 20.5
    placed = {}
    for edge in ["fade", "hold"]:
        placed[edge] = place_by_receptive_field(coarse, model, "relu2", edge=edge)
        assert placed[edge].shape == (3, 28, 28) and placed[edge].dtype == torch.float32
        for i in range(3):
            expected = interp_between(coarse[i], rows, cols, (28, 28), edge)
            np.testing.assert_allclose(placed[edge][i, inside, inside].numpy(),
                                       expected[inside, inside], atol=1e-6)
            np.testing.assert_allclose(placed[edge][i].numpy(), expected, atol=1e-6)
    assert torch.equal(placed["fade"][:, inside, inside], placed["hold"][:, inside, inside])
    # beyond the outermost centres: held flat, or faded to zero one stride (2 px) out
    assert torch.allclose(placed["hold"][:, :7, 10], placed["hold"][:, 6:7, 10].expand(3, 7))
    assert placed["fade"][:, :5].abs().max() == 0 and placed["fade"][:, 23:].abs().max() == 0
    assert (placed["fade"][:, 5:7, 7:21] < placed["hold"][:, 5:7, 7:21]).all()


def test_a_unit_on_a_pixel_keeps_its_value_there(model):
    torch.manual_seed(1)
    coarse = torch.rand(24, 24)  # conv1: 5x5 fields, centres on pixels 2..25
    placed = place_by_receptive_field(coarse, model, "conv1")
    assert torch.allclose(placed[2:26, 2:26], coarse, atol=1e-6)
    assert placed[:2].abs().max() == 0 and placed[:, 26:].abs().max() == 0


def test_placement_takes_a_receptive_field_any_leading_dims_and_arrays(model):
    rf = receptive_field(model, "pool2")
    coarse = torch.arange(32.0).view(2, 1, 4, 4)
    placed = place_by_receptive_field(coarse, rf, edge="hold")
    assert placed.shape == (2, 1, 28, 28)
    assert torch.allclose(placed, place_by_receptive_field(coarse.numpy(), model, "pool2",
                                                           edge="hold"))
    assert torch.allclose(place_by_receptive_field(coarse[0, 0], rf, edge="hold"), placed[0, 0])
    # pool2's 4x4 units sit at 7.5, 11.5, 15.5, 19.5
    rows, cols = (c.numpy() for c in rf.grid_centers())
    assert rows.tolist() == [7.5, 11.5, 15.5, 19.5]
    np.testing.assert_allclose(placed[1, 0].numpy(), interp_between(coarse[1, 0], rows, cols,
                                                                    (28, 28), "hold"), atol=1e-5)


def test_placement_errors_say_what_to_pass(model):
    with pytest.raises(ValueError, match=r"\(8, 8\).*upsample=None"):
        place_by_receptive_field(torch.zeros(28, 28), model, "relu2")
    with pytest.raises(TypeError, match="layer"):
        place_by_receptive_field(torch.zeros(8, 8), model)
    with pytest.raises(TypeError, match="ReceptiveField"):
        place_by_receptive_field(torch.zeros(8, 8), receptive_field(model, "relu2"), "relu2")
    with pytest.raises(ValueError, match="conv3"):
        place_by_receptive_field(torch.zeros(8, 8), model, "conv3")
    with pytest.raises(ValueError, match="'fade' or 'hold'"):
        place_by_receptive_field(torch.zeros(8, 8), model, "relu2", edge="clamp")


# --------------------------------------------------------------------------- grad_cam


def hand_coarse_cam(model: nn.Module, x: torch.Tensor, module: nn.Module,
                    target: torch.Tensor) -> torch.Tensor:
    """The layer's output swapped for a leaf tensor: its .grad is d score / d maps."""
    leaf = {}

    def swap(m: nn.Module, i: tuple, o: torch.Tensor) -> torch.Tensor:
        leaf["a"] = o.detach().requires_grad_(True)
        return leaf["a"]

    handle = module.register_forward_hook(swap)
    try:
        model(x).gather(1, target[:, None]).sum().backward()
    finally:
        handle.remove()
    a, g = leaf["a"].detach(), leaf["a"].grad
    return torch.clamp((a * g.mean(dim=(2, 3), keepdim=True)).sum(dim=1), min=0)


def test_coarse_grad_cam_equals_captum_and_the_hand_computation(model, digits):
    x, labels = digits[0][:8], digits[1][:8]
    for layer in ["relu2", "pool2", "conv1"]:
        coarse = grad_cam(model, x, layer, labels, upsample=None)
        module = getattr(model, layer)
        assert coarse.shape == (8, *receptive_field(model, layer).output_size)
        assert torch.allclose(coarse, hand_coarse_cam(model, x, module, labels), atol=1e-6)
        captum = pytest.importorskip("captum.attr")
        theirs = captum.LayerGradCam(model, module).attribute(x, target=labels,
                                                              relu_attributions=True)
        assert torch.allclose(coarse, theirs[:, 0].detach(), atol=1e-6), layer
    assert grad_cam(model, x[0], "relu2", 3, upsample=None).shape == (8, 8)


def test_grad_cam_places_by_receptive_field_by_default(model, digits):
    x, labels = digits
    coarse = grad_cam(model, x, "relu2", labels, upsample=None)
    cam = grad_cam(model, x, "relu2", labels)
    assert cam.shape == (16, 28, 28)
    assert torch.allclose(cam, place_by_receptive_field(coarse, model, "relu2"), atol=1e-6)
    assert torch.allclose(grad_cam(model, x, "relu2", labels, upsample="bilinear"),
                          stretched(coarse, (28, 28)), atol=1e-6)
    # what the learner sees: a stretched map pushes the evidence off the strokes into
    # the background; placed, most of it lies on or beside the digit (measured on these
    # 16 digits: 0.80 of the heat within 2 px of ink, against 0.53 stretched)
    ink = (x[:, 0] > x.min() + 0.5).float()
    near_ink = F.max_pool2d(ink[:, None], 5, 1, 2)[:, 0]
    share = lambda m: (m * near_ink).sum((1, 2)) / m.sum((1, 2))  # noqa: E731
    bilinear = grad_cam(model, x, "relu2", labels, upsample="bilinear")
    assert (share(cam) > share(bilinear)).all()
    assert share(cam).mean() > share(bilinear).mean() + 0.2


def functional_pool_net() -> nn.Module:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(1, 4, 3)
            self.conv2 = nn.Conv2d(4, 4, 3)
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv2(F.max_pool2d(self.conv1(x), 2))
            return self.fc(y.mean(dim=(2, 3)))

    torch.manual_seed(0)
    return Net().eval()


def test_grad_cam_stretches_with_a_warning_when_the_geometry_cannot_be_traced():
    net = functional_pool_net()
    x = torch.randn(2, 1, 16, 16)
    with pytest.warns(UserWarning, match=r"cannot place 'conv2'.*upsample='bilinear'"):
        cam = grad_cam(net, x, "conv2", 1)
    assert torch.allclose(cam, grad_cam(net, x, "conv2", 1, upsample="bilinear"))
    with pytest.raises(ValueError, match="F.max_pool2d"):
        place_by_receptive_field(grad_cam(net, x, "conv2", 1, upsample=None), net, "conv2",
                                 input_size=(1, 16, 16))
    with pytest.raises(ValueError, match="'rf', 'bilinear', 'nearest' or None"):
        grad_cam(net, x, "conv2", 1, upsample="bicubic")


# --------------------------------------------------------------------------- ResNets


def test_resnet18_layer4_rf_and_stretched_differ_by_half_a_stride():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None).eval()
    x = F.avg_pool2d(torch.randn(2, 3, 224, 224), 9, 1, 4) * 3
    coarse = grad_cam(net, x, "layer4", upsample=None)
    rf = receptive_field(net, "layer4", input_size=(3, 224, 224))
    rows, cols = rf.grid_centers()
    assert rows.tolist() == cols.tolist() == [32.0 * i for i in range(7)]  # the stride grid
    placed = grad_cam(net, x, "layer4")
    assert torch.allclose(placed, place_by_receptive_field(coarse, rf), atol=1e-6)
    # between the centres (pixels 0..192) it is the map resized corner to corner
    hull = F.interpolate(coarse[:, None], size=(193, 193), mode="bilinear", align_corners=True)
    assert torch.allclose(placed[:, :193, :193], hull[:, 0], atol=1e-5)
    # a plain resize draws the same surface 15.5 px (half a stride) lower and further right
    moved = stretched(coarse, (224, 224))
    for p, m in zip(placed, moved):
        (py, px), (my, mx) = (divmod(int(t.argmax()), 224) for t in (p, m))
        assert 15 <= my - py <= 16 and 15 <= mx - px <= 16
        shifted = 0.25 * (m[15:208, 15:208] + m[16:209, 16:209] + m[15:208, 16:209]
                          + m[16:209, 15:208])
        assert (p[:193, :193] - shifted).abs().max() < 0.05 * m.max()


def test_small_resnet_places_its_units_on_the_stride_grid():
    torch.manual_seed(0)
    net = featviz.SmallResNet().eval()
    x = torch.randn(2, 1, 28, 28)
    rf = receptive_field(net, "layer3")
    assert rf.grid_centers()[0].tolist() == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    cam = grad_cam(net, x, "layer3", 0)
    coarse = grad_cam(net, x, "layer3", 0, upsample=None)
    assert cam.shape == (2, 28, 28) and coarse.shape == (2, 7, 7)
    expected = interp_between(coarse[0], *(c.numpy() for c in rf.grid_centers()), (28, 28))
    np.testing.assert_allclose(cam[0].numpy(), expected, atol=1e-5)


def test_plot_overlay_places_a_coarse_map_given_its_receptive_field(model, digits):
    import matplotlib

    matplotlib.use("Agg")
    x = digits[0][0]
    coarse = grad_cam(model, x, "relu2", upsample=None)
    rf = receptive_field(model, "relu2")

    def drawn(fig) -> list[np.ndarray]:
        return [np.asarray(im.get_array()) for ax in fig.axes for im in ax.get_images()]

    placed = drawn(featviz.plot_overlay(x, coarse, rf=rf))
    assert all(np.array_equal(a, b) for a, b in
               zip(placed, drawn(featviz.plot_overlay(x, place_by_receptive_field(coarse, rf)))))
    assert not all(np.array_equal(a, b) for a, b in
                   zip(placed, drawn(featviz.plot_overlay(x, coarse))))  # stretched
    with pytest.raises(ValueError, match=r"\(4, 4\)"):
        featviz.plot_overlay(x, coarse, rf=receptive_field(model, "pool2"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_placement_on_the_gpu_equals_the_cpu(model, digits):
    x, labels = digits
    gpu = featviz.pretrained(device="cuda")
    coarse = grad_cam(model, x, "relu2", labels, upsample=None)
    placed = place_by_receptive_field(coarse.cuda(), gpu, "relu2")
    assert placed.device.type == "cuda"
    assert torch.allclose(placed.cpu(), place_by_receptive_field(coarse, model, "relu2"), atol=1e-5)
    cam = grad_cam(gpu, x.cuda(), "relu2", labels)
    assert cam.device.type == "cpu"
    assert torch.allclose(cam, grad_cam(model, x, "relu2", labels), atol=1e-4)
