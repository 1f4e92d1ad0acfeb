"""featviz.hooks: capture, activations, layers, resolve_layers, batched_activations.

Captured values are compared with an independent computation: the layers
called by hand, or torchvision's feature extractor.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor

import featviz
from featviz.hooks import activations, batched_activations, capture, layers, resolve_layers

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def hooks_left(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._forward_hooks_always_called)
        + len(m._backward_hooks)
        for m in model.modules()
    )


def simple_cnn() -> featviz.SimpleCNN:
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


_DIGITS: list[torch.Tensor] = []


def digits() -> torch.Tensor:
    """One test image per digit, (10, 1, 28, 28), normalised (a fresh copy each time)."""
    if not _DIGITS:
        _DIGITS.append(featviz.digit_examples()[0])
    return _DIGITS[0].clone()


@pytest.fixture(scope="module")
def resnet() -> nn.Module:
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).eval()


class InplaceNet(nn.Module):
    """conv -> in-place ReLU -> linear: the ReLU overwrites the conv's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)).flatten(1))


class SharedReLU(nn.Module):
    """One ReLU module used twice in each forward pass."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3)
        self.conv2 = nn.Conv2d(3, 5, 3)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.relu(self.conv1(x))))


# ---------------------------------------------------------------------------
# values against independent computations
# ---------------------------------------------------------------------------

def test_simplecnn_every_layer_equals_the_layers_called_by_hand():
    model, x = simple_cnn(), digits()
    with torch.no_grad():
        expected = {}
        h = x
        for name in ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten",
                     "fc1", "relu3", "fc2", "relu4", "fc3"]:
            h = getattr(model, name)(h)
            expected[name] = h.clone()
        with capture(model) as acts:
            logits = model(x)
    assert list(acts) == list(expected)  # every leaf, in model order
    for name, value in expected.items():
        torch.testing.assert_close(acts[name], value, rtol=0, atol=0)
    torch.testing.assert_close(acts["fc3"], logits, rtol=0, atol=0)
    assert acts["conv1"].shape == (10, 16, 24, 24) and acts["conv2"].shape == (10, 32, 8, 8)
    assert not acts["conv1"].requires_grad and acts["conv1"].device.type == "cpu"


def test_resnet18_every_conv_equals_torchvision_feature_extractor(resnet):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 64, 64)
    convs = [n for n, m in resnet.named_modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 20
    extractor = create_feature_extractor(resnet, return_nodes={n: n for n in convs})
    with torch.no_grad():
        theirs = extractor(x)
        with capture(resnet, nn.Conv2d) as acts:
            resnet(x)
    assert list(acts) == convs
    for name in convs:
        torch.testing.assert_close(acts[name], theirs[name], rtol=0, atol=0)


def test_resnet_bn2_is_not_changed_by_the_residual_add(resnet):
    # BasicBlock does `out = bn2(...); out += identity`: the add writes into bn2's output
    torch.manual_seed(2)
    x = torch.randn(2, 3, 64, 64)
    block = resnet.layer1[0]
    with torch.no_grad():
        acts = activations(resnet, x, ["maxpool", "layer1.0.bn2", "layer1.0"])
        h = acts["maxpool"]
        by_hand = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(h)))))
    torch.testing.assert_close(acts["layer1.0.bn2"], by_hand, rtol=0, atol=0)
    torch.testing.assert_close(acts["layer1.0"], torch.relu(by_hand + h), rtol=0, atol=0)


@pytest.mark.parametrize("grad_enabled", [False, True], ids=["no_grad", "grad"])
def test_inplace_relu_does_not_change_the_captured_conv_output(grad_enabled):
    torch.manual_seed(0)
    model, x = InplaceNet(), torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        conv_by_hand = model.conv(x).clone()
    with torch.set_grad_enabled(grad_enabled):
        with capture(model, ["conv", "relu"]) as acts:
            model(x)
    assert (acts["conv"] < 0).any(), "the conv output must keep its negative values"
    torch.testing.assert_close(acts["conv"], conv_by_hand, rtol=0, atol=0)
    torch.testing.assert_close(acts["relu"], conv_by_hand.clamp(min=0), rtol=0, atol=0)


def test_module_called_twice_keeps_both_calls_and_names_them():
    torch.manual_seed(0)
    model, x = SharedReLU(), torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        first = torch.relu(model.conv1(x))
        second = torch.relu(model.conv2(first))
        with capture(model, ["relu", "conv2"]) as acts:
            model(x)
    assert list(acts) == ["relu", "relu#1", "conv2"]
    torch.testing.assert_close(acts["relu"], first, rtol=0, atol=0)
    torch.testing.assert_close(acts["relu#1"], second, rtol=0, atol=0)
    assert acts["relu"].shape == (2, 3, 7, 7) and acts["relu#1"].shape == (2, 5, 5, 5)


def test_several_passes_concatenate_along_the_batch():
    model = simple_cnn()
    x = digits()
    with torch.no_grad():
        with capture(model, ["conv2", "fc3"]) as acts:
            model(x[:3])
            model(x[3:])
        whole = activations(model, x, ["conv2", "fc3"])
    assert acts.passes == 2
    assert acts["conv2"].shape[0] == 10
    torch.testing.assert_close(acts["conv2"], whole["conv2"])
    torch.testing.assert_close(acts["fc3"], whole["fc3"])


def test_shared_relu_over_two_passes_keeps_calls_apart():
    torch.manual_seed(0)
    model, x = SharedReLU(), torch.randn(4, 1, 9, 9)
    with torch.no_grad():
        with capture(model, "relu") as acts:
            model(x[:1])
            model(x[1:])
        first = torch.relu(model.conv1(x))
    assert acts["relu"].shape == (4, 3, 7, 7) and acts["relu#1"].shape == (4, 5, 5, 5)
    torch.testing.assert_close(acts["relu"], first)


def test_captured_values_survive_later_inplace_changes_of_input_and_output():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Identity(), nn.Conv2d(1, 2, 3))
    x = torch.randn(2, 1, 6, 6)
    x_before = x.clone()
    with torch.no_grad():
        with capture(model, ["0", "1"]) as acts:
            out = model(x)
        out_before = out.clone()
        x.mul_(0)
        out.mul_(0)
    torch.testing.assert_close(acts["0"], x_before, rtol=0, atol=0)
    torch.testing.assert_close(acts["1"], out_before, rtol=0, atol=0)


def test_nested_captures_each_get_their_values():
    torch.manual_seed(0)
    inner = nn.Sequential(nn.Conv2d(2, 2, 3), nn.ReLU(inplace=True))
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(inplace=True), inner)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        first = model[0](x)
        second = inner[0](torch.relu(first))
        with capture(model, "0") as outer_acts, capture(inner, "0") as inner_acts:
            model(x)
    torch.testing.assert_close(outer_acts["0"], first, rtol=0, atol=0)
    torch.testing.assert_close(inner_acts["0"], second, rtol=0, atol=0)
    assert hooks_left(model) == 0


def test_inference_mode_works():
    model, x = simple_cnn(), digits()
    with torch.inference_mode():
        with capture(model, ["conv1", "relu1"]) as acts:
            model(x)
        expected = model.conv1(x)
    torch.testing.assert_close(acts["conv1"], expected, rtol=0, atol=0)


def test_train_mode_batchnorm_values_use_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.ReLU(inplace=True)).train()
    x = torch.randn(4, 1, 7, 7)
    with capture(model, ["0", "1"]) as acts:
        model(x)
    y = acts["0"]
    mean = y.mean(dim=(0, 2, 3), keepdim=True)
    var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    by_hand = (y - mean) / torch.sqrt(var + model[1].eps)
    torch.testing.assert_close(acts["1"], by_hand, rtol=1e-4, atol=1e-5)
    assert (acts["1"] < 0).any()  # the in-place ReLU after it did not reach the copy
    assert model.training


# ---------------------------------------------------------------------------
# hooks are removed
# ---------------------------------------------------------------------------

def test_no_hook_is_left_after_the_block(resnet):
    with torch.no_grad(), capture(resnet) as acts:
        resnet(torch.randn(1, 3, 32, 32))
    assert len(acts) > 20
    assert hooks_left(resnet) == 0


def test_an_exception_in_the_block_leaves_zero_hooks(resnet):
    with pytest.raises(ZeroDivisionError):
        with capture(resnet, nn.Conv2d, grad=True):
            resnet(torch.randn(1, 3, 32, 32))
            1 / 0
    assert hooks_left(resnet) == 0


def test_an_exception_inside_the_forward_pass_leaves_zero_hooks():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.conv(x)
            raise RuntimeError("boom")

    model = Broken()
    with pytest.raises(RuntimeError, match="boom"):
        with capture(model) as acts:
            model(torch.randn(1, 1, 5, 5))
    assert hooks_left(model) == 0
    assert acts["conv"].shape == (1, 2, 3, 3)  # what ran before the failure is kept


def test_a_capture_built_once_serves_several_blocks():
    model, x = simple_cnn(), digits()
    cap = capture(model, "conv2")
    with torch.no_grad():
        with cap as first:
            model(x[:4])
        with cap as second:
            model(x[4:])
        whole = model.conv2(model.pool1(model.relu1(model.conv1(x))))
    assert first["conv2"].shape[0] == 4 and second["conv2"].shape[0] == 6
    torch.testing.assert_close(torch.cat([first["conv2"], second["conv2"]]), whole)
    assert hooks_left(model) == 0


def test_a_capture_cannot_be_entered_twice_at_once():
    model = simple_cnn()
    cap = capture(model, "conv1")
    with cap:
        with pytest.raises(RuntimeError, match="already active"):
            cap.__enter__()
    assert hooks_left(model) == 0


# ---------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------

def test_grad_is_the_gradient_wrt_the_true_conv_output_despite_inplace_relu():
    torch.manual_seed(0)
    model, x = InplaceNet(), torch.randn(2, 1, 8, 8)
    weights = torch.randn(2, 3)
    with capture(model, ["conv", "relu"], grad=True) as acts:
        (model(x) * weights).sum().backward()
    # by hand: d loss / d conv = (head's weight pulled back through relu) * (conv > 0)
    conv = model.conv(x).detach().requires_grad_(True)
    loss = (model.head(torch.relu(conv).flatten(1)) * weights).sum()
    (expected,) = torch.autograd.grad(loss, conv)
    assert (expected == 0).any() and (expected != 0).any()
    torch.testing.assert_close(acts.grads["conv"], expected)
    pulled = (weights @ model.head.weight).reshape(2, 4, 6, 6).detach()
    torch.testing.assert_close(acts.grads["relu"], pulled)
    torch.testing.assert_close(acts.grads["conv"], pulled * (acts["conv"] > 0))


def test_grad_backward_after_the_block_and_over_two_passes():
    torch.manual_seed(0)
    model, x = InplaceNet(), torch.randn(3, 1, 8, 8)
    with capture(model, "conv", grad=True) as acts:
        a = model(x[:1])
        b = model(x[1:])
    (a.sum() * 2 + b.sum()).backward()
    assert acts.grads["conv"].shape == (3, 4, 6, 6)
    conv = model.conv(x).detach().requires_grad_(True)
    scale = torch.tensor([2.0, 1.0, 1.0]).view(3, 1)
    (expected,) = torch.autograd.grad((model.head(torch.relu(conv).flatten(1)) * scale).sum(), conv)
    torch.testing.assert_close(acts.grads["conv"], expected)


def test_grad_missing_says_why():
    model = simple_cnn()
    with torch.no_grad(), capture(model, "conv1", grad=True) as acts:
        model(digits())
    with pytest.raises(KeyError, match="did not build a graph"):
        acts.grads["conv1"]
    with capture(model, "conv1", grad=True) as acts:
        model(digits())
    with pytest.raises(KeyError, match="backward"):
        acts.grads["conv1"]


def test_activations_with_grad_gives_output_to_backpropagate():
    model, x = simple_cnn(), digits()
    acts = activations(model, x, "conv2", grad=True)
    acts.output[0, 3].backward()
    g = acts.grads["conv2"]
    assert g.shape == (10, 32, 8, 8)
    assert g[0].abs().sum() > 0 and g[1:].abs().sum() == 0  # only image 0 was back-propagated


# ---------------------------------------------------------------------------
# options
# ---------------------------------------------------------------------------

def test_channels_dtype_and_detach_options():
    model, x = simple_cnn(), digits()
    full = activations(model, x, ["conv1", "fc1"])
    some = activations(model, x, ["conv1", "fc1"], channels=[2, 5, 7])
    torch.testing.assert_close(some["conv1"], full["conv1"][:, [2, 5, 7]])
    torch.testing.assert_close(some["fc1"], full["fc1"])  # (N, features) kept whole
    sliced = activations(model, x, "conv1", channels=slice(0, 4))
    torch.testing.assert_close(sliced["conv1"], full["conv1"][:, :4])
    half = activations(model, x, "conv1", dtype=torch.float16)
    assert half["conv1"].dtype == torch.float16
    torch.testing.assert_close(half["conv1"].float(), full["conv1"], rtol=1e-3, atol=1e-3)
    attached = activations(model, x, "conv1", detach=False)
    assert attached["conv1"].requires_grad
    with pytest.raises(ValueError, match="has 16"):
        activations(model, x, "conv1", channels=[3, 20])


def test_to_cpu_false_keeps_the_device():
    model, x = simple_cnn(), digits()
    acts = activations(model, x, "conv1", to_cpu=False)
    assert acts["conv1"].device == x.device


@cuda
def test_cuda_results_move_to_cpu_by_default_or_stay():
    model, x = simple_cnn(), digits()
    expected = activations(model, x, ["conv1", "relu1"])
    model_gpu = simple_cnn().cuda()
    on_cpu = activations(model_gpu, x.cuda(), ["conv1", "relu1"])
    assert on_cpu["conv1"].device.type == "cpu"
    torch.testing.assert_close(on_cpu["conv1"], expected["conv1"], rtol=1e-4, atol=1e-4)
    on_gpu = activations(model_gpu, x, ["conv1"], to_cpu=False)  # the input is moved too
    assert on_gpu["conv1"].device.type == "cuda"
    np.asarray(on_cpu["conv1"].numpy())  # ready for numpy


@cuda
def test_cuda_inplace_relu_and_grad():
    torch.manual_seed(0)
    model, x = InplaceNet().cuda(), torch.randn(2, 1, 8, 8, device="cuda")
    with capture(model, ["conv", "relu"], grad=True, to_cpu=False) as acts:
        model(x).sum().backward()
    conv = model.conv(x).detach()
    torch.testing.assert_close(acts["conv"], conv)
    pulled = model.head.weight.sum(0).reshape(4, 6, 6).detach()
    torch.testing.assert_close(acts.grads["conv"], pulled * (conv > 0))
    assert hooks_left(model) == 0


# ---------------------------------------------------------------------------
# tuples and odd outputs
# ---------------------------------------------------------------------------

def test_tuple_outputs_are_recorded_element_by_element():
    torch.manual_seed(0)

    class Seq(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(4, 6, batch_first=True)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lstm(x)[0]

    model, x = Seq(), torch.randn(2, 5, 4)
    with torch.no_grad():
        out, (h, c) = model.lstm(x)
        acts = activations(model, x, "lstm")
    assert list(acts) == ["lstm[0]", "lstm[1][0]", "lstm[1][1]"]
    torch.testing.assert_close(acts["lstm[0]"], out)
    torch.testing.assert_close(acts["lstm[1][0]"], h)
    torch.testing.assert_close(acts["lstm[1][1]"], c)


def test_a_non_tensor_output_is_refused_clearly():
    class Odd(nn.Module):
        def forward(self, x: torch.Tensor) -> object:
            return object()

    model = nn.Sequential(Odd())
    with pytest.raises(TypeError, match="returned a object"):
        activations(model, torch.zeros(1, 1, 2, 2), "0")
    assert hooks_left(model) == 0


# ---------------------------------------------------------------------------
# layer names
# ---------------------------------------------------------------------------

def test_resolve_layers_forms(resnet):
    blocks = [f"layer{i}.{j}.conv2" for i in range(1, 5) for j in range(2)]
    assert resolve_layers(resnet, "layer*.conv2") == blocks
    assert len(resolve_layers(resnet, nn.Conv2d)) == 20
    assert resolve_layers(resnet, resnet.layer2[1].bn1) == ["layer2.1.bn1"]
    assert resolve_layers(resnet, "layer1[0].conv1") == ["layer1.0.conv1"]
    assert resolve_layers(resnet, ["fc", "conv1", "fc"]) == ["fc", "conv1"]  # asked order, no duplicates
    model = simple_cnn()
    assert resolve_layers(model) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
                                     "flatten", "fc1", "relu3", "fc2", "relu4", "fc3"]
    assert resolve_layers(model, ["conv*", nn.ReLU]) == ["conv1", "conv2", "relu1", "relu2",
                                                         "relu3", "relu4"]


def test_unknown_name_lists_valid_names_and_the_closest():
    model = simple_cnn()
    with pytest.raises(ValueError) as err:
        capture(model, ["conv1", "conv3"])
    msg = str(err.value)
    assert "'conv3'" in msg and "Did you mean 'conv2'?" in msg
    assert "conv1, relu1, pool1, conv2" in msg
    assert hooks_left(model) == 0


def test_bare_block_name_suggests_the_dotted_one(resnet):
    with pytest.raises(ValueError, match=r"Did you mean 'layer1\.0\.bn2'\?"):
        resolve_layers(resnet, "bn2")


def test_empty_list_unmatched_glob_and_absent_type_are_clear_errors():
    model = simple_cnn()
    with pytest.raises(ValueError, match="empty"):
        activations(model, digits(), [])
    with pytest.raises(ValueError, match=r"No layer of SimpleCNN matches the pattern 'block\*'"):
        resolve_layers(model, "block*")
    with pytest.raises(ValueError, match="no layer of type BatchNorm2d.*Conv2d"):
        resolve_layers(model, nn.BatchNorm2d)
    with pytest.raises(TypeError, match="layer names"):
        resolve_layers(model, 3)
    with pytest.raises(TypeError, match="nn.Module"):
        capture("not a model")


def test_reading_a_layer_that_did_not_run_says_why():
    model = simple_cnn()
    with capture(model, "conv1") as acts:
        pass
    with pytest.raises(KeyError, match="no forward pass ran"):
        acts["conv1"]
    with torch.no_grad(), capture(model, "conv1") as acts:
        model(digits())
    with pytest.raises(KeyError, match="not captured"):
        acts["conv2"]


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------

def test_numpy_input_is_accepted_and_matches_the_tensor_result():
    model, x = simple_cnn(), digits()
    from_numpy = activations(model, x.numpy().astype(np.float64), "conv1")
    torch.testing.assert_close(from_numpy["conv1"], activations(model, x, "conv1")["conv1"])


def test_integer_pixels_and_pil_images_say_how_to_convert():
    from PIL import Image

    model = simple_cnn()
    pixels = np.zeros((1, 1, 28, 28), dtype=np.uint8)
    with pytest.raises(TypeError, match="/ 255"):
        activations(model, pixels, "conv1")
    with pytest.raises(TypeError, match="to_tensor"):
        activations(model, Image.fromarray(pixels[0, 0]), "conv1")


def test_numpy_inside_a_capture_block_is_explained(resnet):
    with pytest.raises(TypeError, match="torch.as_tensor"):
        with capture(resnet, "conv1"):
            resnet(np.zeros((1, 3, 32, 32), dtype=np.float32))
    assert hooks_left(resnet) == 0


@pytest.mark.parametrize(
    "shape, hint",
    [((2, 1, 64, 64), "grey-scale image for a colour model"),
     ((2, 64, 64, 3), "channels seem to be last"),
     ((3, 64, 64), "single image")],
)
def test_wrong_input_shape_says_what_the_first_layer_expects(resnet, shape, hint):
    with pytest.raises(ValueError) as err:
        activations(resnet, torch.zeros(shape), "layer1")
    msg = str(err.value)
    assert "(N, 3, H, W)" in msg and "'conv1'" in msg and str(shape) in msg and hint in msg
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 3, H, W\)"):
        with torch.no_grad(), capture(resnet, "layer1"):
            resnet(torch.zeros(shape))
    assert hooks_left(resnet) == 0


# ---------------------------------------------------------------------------
# the layer table
# ---------------------------------------------------------------------------

def test_layer_table_for_simplecnn():
    model = simple_cnn()
    table = layers(model)
    assert table.names == [n for n, _ in model.named_modules() if n]
    conv1 = table["conv1"]
    assert (conv1.type, conv1.shape, conv1.params) == ("Conv2d", "(1, 16, 24, 24)", 16 * 25 + 16)
    assert table["flatten"].shape == "(1, 512)"
    text = str(table).splitlines()
    header = next(line for line in text if line.startswith("layer"))
    row = next(line for line in text if line.startswith("conv2 "))
    assert header.index("output shape") == row.index("(1, 32, 8, 8)")  # aligned columns
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in str(table)
    page = table._repr_html_()
    assert page.count("<tr") == len(table) + 1 and "<code>fc3</code>" in page


def test_layer_table_with_example_input_marks_repeated_calls_and_keeps_the_mode(resnet):
    resnet.train()
    before = resnet.bn1.running_mean.clone()
    try:
        table = layers(resnet, torch.zeros(2, 3, 64, 64))
        assert resnet.training and resnet.layer1[0].bn1.training
        torch.testing.assert_close(resnet.bn1.running_mean, before, rtol=0, atol=0)
    finally:
        resnet.eval()
    assert table["layer1.0.relu"].calls == 2 and "called 2x" in str(table)
    assert table["layer4"].shape == "(2, 512, 2, 2)"
    assert table.output_shape == "(2, 1000)"
    assert hooks_left(resnet) == 0


def test_layer_table_without_example_input_still_lists_names(resnet):
    table = layers(resnet)
    assert "layer1.0.conv2" in table.names and table["conv1"].shape == ""
    assert "example_input" in str(table)
    assert table["conv1"].params == 64 * 3 * 7 * 7


# ---------------------------------------------------------------------------
# streaming over a dataset
# ---------------------------------------------------------------------------

def test_batched_activations_equal_one_big_pass():
    model = simple_cnn()
    images, labels = featviz.digit_examples()
    whole = activations(model, images, ["conv2"])
    seen, parts = [], []
    for batch, batch_labels, acts in batched_activations(model, (images, labels), "conv2", batch_size=4):
        assert acts["conv2"].shape[0] == len(batch) <= 4
        seen.append(batch_labels)
        parts.append(acts["conv2"])
    assert [len(p) for p in parts] == [4, 4, 2]
    assert torch.equal(torch.cat(seen), labels)
    torch.testing.assert_close(torch.cat(parts), whole["conv2"])
    dataset = torch.utils.data.TensorDataset(images, labels)
    streamed = [a["conv2"] for _, _, a in batched_activations(model, dataset, "conv2", batch_size=3)]
    torch.testing.assert_close(torch.cat(streamed), whole["conv2"])
    loader = torch.utils.data.DataLoader(dataset, batch_size=6)
    from_loader = list(batched_activations(model, loader, "conv2"))
    assert [len(b) for b, _, _ in from_loader] == [6, 4]  # the loader's own batch size
    torch.testing.assert_close(torch.cat([a["conv2"] for _, _, a in from_loader]), whole["conv2"])
    only_images = [a["conv2"] for _, y, a in batched_activations(model, images, "conv2", batch_size=5)]
    torch.testing.assert_close(torch.cat(only_images), whole["conv2"])
    assert torch.is_grad_enabled()  # the generator does not leak no_grad to the caller


def test_batched_activations_device_mismatch_is_explained():
    model = simple_cnn()
    with pytest.raises(ValueError, match="model.to"):
        next(batched_activations(model, digits(), "conv1", device="cuda:0"
                                 if not torch.cuda.is_available() else "meta"))
    with pytest.raises(ValueError, match="batch_size"):
        next(batched_activations(model, digits(), "conv1", batch_size=0))


# ---------------------------------------------------------------------------
# reducing in the hook, options in one place
# ---------------------------------------------------------------------------

def test_reduce_max_keeps_each_channels_maximum_and_its_position():
    model, x = simple_cnn(), digits()
    full = activations(model, x, ["conv2", "fc3"])["conv2"]
    acts = activations(model, x, ["conv2", "fc3"], reduce="max")
    best = acts["conv2"]
    assert best.shape == (10, 32, 3)
    torch.testing.assert_close(best[..., 0], full.amax(dim=(2, 3)), rtol=0, atol=0)
    rows, cols = best[..., 1].long(), best[..., 2].long()
    at = full[torch.arange(10)[:, None], torch.arange(32)[None], rows, cols]
    torch.testing.assert_close(at, best[..., 0], rtol=0, atol=0)  # the value sits where it says
    assert acts["fc3"].shape == (10, 10)  # features are kept whole
    some = activations(model, x, "conv2", reduce="max", channels=[4, 1])["conv2"]
    torch.testing.assert_close(some, best[:, [4, 1]], rtol=0, atol=0)


def test_reduce_takes_any_function_and_batches_stream_it():
    model, x = simple_cnn(), digits()
    means = [a["relu2"] for _, _, a in batched_activations(
        model, x, "relu2", batch_size=4, reduce=lambda t: t.mean(dim=(2, 3)))]
    assert [m.shape for m in means] == [(4, 32), (4, 32), (2, 32)]
    torch.testing.assert_close(torch.cat(means), activations(model, x, "relu2")["relu2"].mean(dim=(2, 3)))


def test_a_reduce_that_returns_a_view_still_gives_a_private_copy():
    torch.manual_seed(0)
    model, x = InplaceNet(), torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        conv = model.conv(x)
        acts = activations(model, x, "conv", reduce=lambda t: t[:, :2])  # a view of the output
    torch.testing.assert_close(acts["conv"], conv[:, :2], rtol=0, atol=0)
    assert (acts["conv"] < 0).any()  # the in-place ReLU after the conv did not reach it


def test_unknown_options_and_bad_values_are_clear_errors():
    model = simple_cnn()
    with pytest.raises(TypeError, match="to_gpu"):
        capture(model, "conv1", to_gpu=True)
    with pytest.raises(TypeError, match="torch dtype"):
        capture(model, "conv1", dtype="half-ish")
    with pytest.raises(TypeError, match="channels="):
        capture(model, "conv1", channels=[0.5])
    with pytest.raises(TypeError, match="reduce="):
        capture(model, "conv1", reduce="mean")
    assert activations(model, digits(), "conv1", dtype="float16")["conv1"].dtype == torch.float16


def test_capture_needs_no_private_pytorch_api():
    import pathlib
    import re

    root = pathlib.Path(featviz.__file__).parent
    private = re.compile(r"torch\._C|_python_dispatch|_storage_Use_Count|_should_skip_dynamo")
    hits = [str(p) for p in root.rglob("*.py") if private.search(p.read_text())]
    assert hits == []
