"""featviz.netspec: which models run in the browser, and the spec they run.

The numpy executor (``NetSpec.run``) is what the browser engine is written to
match; here it is held to PyTorch itself (``featviz.activations``), on inputs
other than the tracer's own dummy batch.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import _netspec_models as synthetic_models
import featviz
from featviz.netspec import UnsupportedModel, browser_network, why_not_browser
from featviz.netspec_run import NetSpec, Step

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

SIMPLECNN_NAMES = ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc1",
                   "relu3", "fc2", "relu4", "fc3"]


def assert_runs_like_torch(model: nn.Module, spec: NetSpec, x: torch.Tensor) -> None:
    """Every named map and the output of ``spec.run(x)`` within 1e-4 of PyTorch's."""
    with torch.no_grad():
        acts = featviz.activations(model, x, sorted({n.split("#")[0] for n in spec.names}))
    output, maps = spec.run(x.numpy())
    assert set(maps) == set(spec.names)
    for name in spec.names:
        np.testing.assert_allclose(maps[name], acts[name].numpy(), rtol=0, atol=1e-4,
                                   err_msg=name)
    np.testing.assert_allclose(output, acts.output.numpy(), rtol=0, atol=1e-4)


# --------------------------------------------------------------------------- supported

def test_simplecnn_spec_keeps_layer_names_shapes_and_weights() -> None:
    spec = browser_network(featviz.SimpleCNN())
    assert spec.names == SIMPLECNN_NAMES
    shapes = {s.name: s.shape for s in spec.steps}
    assert shapes["conv1"] == (16, 24, 24) and shapes["pool2"] == (32, 4, 4)
    assert shapes["flatten"] == (512,) and shapes["fc3"] == (10,)
    assert spec.input_shape == (1, 28, 28) and spec.output_shape == (10,)
    assert spec.n_values == 85_822
    conv1 = spec.steps[0]
    assert conv1.kind == "conv2d" and conv1.params == {
        "stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1}


def test_pretrained_runs_like_torch_on_digits() -> None:
    model = featviz.pretrained()
    digits = featviz.mnist_tensors(train=False)[0][:100]
    spec = browser_network(model)
    assert_runs_like_torch(model, spec, digits)
    logits, _ = spec.run(digits.numpy())
    with torch.no_grad():
        assert (logits.argmax(1) == model(digits).argmax(1).numpy()).all()


def test_every_training_snapshot_is_supported() -> None:
    digits = featviz.digit_examples()[0]
    snapshots = featviz.pretrained_snapshots()
    assert len(snapshots) >= 2
    for label, model in snapshots:
        spec = browser_network(model)
        assert spec.names == SIMPLECNN_NAMES, label
        assert_runs_like_torch(model, spec, digits)


@pytest.mark.parametrize("name", sorted(synthetic_models.SYNTHETIC))
def test_synthetic_nets_run_like_torch(name: str) -> None:
    model, shape = synthetic_models.synthetic(name)
    spec = browser_network(model, shape)
    assert_runs_like_torch(model, spec, synthetic_models.inputs(shape, 6))


@pytest.mark.parametrize("layer, shape", [
    (nn.Conv2d(3, 6, 3, stride=(2, 3), padding=(1, 2), bias=False), (3, 11, 14)),
    (nn.Conv2d(4, 6, (2, 3), dilation=(3, 2), groups=2, padding="same"), (4, 9, 8)),
    (nn.Conv2d(3, 3, 5, stride=2, dilation=2, groups=3, padding=3), (3, 13, 10)),
    (nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True), (2, 5, 5)),  # last window dropped
    (nn.MaxPool2d(3, stride=2, dilation=2, padding=1, ceil_mode=True), (2, 10, 9)),
    (nn.MaxPool2d((3, 1), stride=(1, 2)), (1, 6, 7)),
    (nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True, count_include_pad=True), (2, 5, 5)),
    (nn.AvgPool2d(2, stride=2, padding=1, ceil_mode=True, count_include_pad=False), (2, 5, 5)),
    (nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True), (1, 8, 7)),
    (nn.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 0), divisor_override=4), (1, 7, 6)),
])
def test_single_layers_with_every_option(layer: nn.Module, shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(layer).eval()
    spec = browser_network(model, shape)
    assert_runs_like_torch(model, spec, synthetic_models.inputs(shape, 4, seed=5))


def test_batchnorm_after_conv_is_folded_else_affine() -> None:
    model, shape = synthetic_models.synthetic("norms")
    spec = browser_network(model, shape)
    kinds = {s.name: (s.kind, s.params.get("folded")) for s in spec.steps}
    assert kinds["bn1"] == ("conv2d", "conv1") and kinds["bn3"] == ("conv2d", "conv2")
    assert kinds["bn2"] == ("affine", None) and kinds["bn4"] == ("affine", None)
    assert "conv1" not in spec.names and kinds["drop"] == ("identity", None)
    assert kinds[None] == ("reshape", None)  # x.view(x.size(0), -1) in forward
    unfolded = browser_network(model, shape, fold_batchnorm=False)
    assert {"conv1", "bn1", "conv2", "bn3"} <= set(unfolded.names)
    assert next(s for s in unfolded.steps if s.name == "bn1").kind == "affine"
    assert_runs_like_torch(model, unfolded, synthetic_models.inputs(shape, 4))


def test_a_module_called_twice_gets_captures_names() -> None:
    model, shape = synthetic_models.synthetic("shared_relu")
    spec = browser_network(model, shape)
    assert spec.names == ["conv", "act", "fc", "act#1"]
    assert [s.kind for s in spec.steps] == ["conv2d", "relu", "reshape", "linear", "relu"]


def test_training_mode_is_traced_as_eval_and_left_untouched() -> None:
    model, shape = synthetic_models.synthetic("norms")
    reference = browser_network(model, shape).to_payload()
    model.train()
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))]
    before = [(m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked))
              for m in norms]
    payload = browser_network(model, shape).to_payload()
    assert payload == reference  # dropout off, running statistics: what the widgets show
    assert all(m.training for m in model.modules())
    for m, (mean, var, count) in zip(norms, before):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert int(m.num_batches_tracked) == count


# --------------------------------------------------------------------------- payload

def test_payload_is_compact_json_and_round_trips() -> None:
    model = featviz.pretrained()
    spec = browser_network(model)
    payload = spec.to_payload()
    weights = payload.pop("weights")
    assert isinstance(weights, bytes) and len(weights) == 4 * 85_822 == 4 * payload["n_values"]
    assert json.loads(json.dumps(payload)) == payload
    refs = [r for s in payload["steps"] for r in s.get("tensors", {}).values()]
    assert refs[0]["offset"] == 0 and refs[1] == {"offset": 400, "shape": [16]}
    conv1 = np.frombuffer(weights, "<f4", count=400).reshape(16, 1, 5, 5)
    np.testing.assert_array_equal(conv1, model.conv1.weight.detach().numpy())
    x = featviz.digit_examples()[0].numpy()
    for again in (NetSpec.from_payload(spec.to_payload()), NetSpec.from_payload(spec.to_json())):
        np.testing.assert_array_equal(again.run(x)[0], spec.run(x)[0])
    assert len(spec.to_json()) < 1.4 * len(weights)  # base64 plus a little JSON


def test_run_checks_its_input_and_step_kinds() -> None:
    spec = browser_network(featviz.SimpleCNN())
    one, maps = spec.run(np.zeros((1, 28, 28)))
    assert one.shape == (10,) and maps["conv2"].shape == (32, 8, 8)
    with pytest.raises(ValueError, match=r"one input of shape \(1, 28, 28\).*got \(28, 28\)"):
        spec.run(np.zeros((28, 28)))
    with pytest.raises(ValueError, match="unknown step kind 'gelu'"):
        Step("g", "gelu", (3,))
    wrong = Step("pool", "maxpool2d", (1, 3, 3), {"kernel": [2, 2], "stride": [2, 2],
                                                  "padding": [0, 0], "ceil_mode": False})
    with pytest.raises(ValueError, match=r"gives shape \(1, 2, 2\), but the spec records"):
        NetSpec((1, 4, 4), (wrong,)).run(np.zeros((1, 4, 4)))  # the browser trusts the shape


# --------------------------------------------------------------------------- unsupported

class ResidualBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.conv2(self.relu1(self.conv1(x))) + x)


class FunctionalReLU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv, self.pool = nn.Conv2d(1, 2, 3), nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.conv(x)))


class SoftmaxAtTheEnd(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.flatten, self.fc = nn.Flatten(), nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softmax(self.fc(self.flatten(x)), dim=1)


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm, self.fc = nn.LSTM(4, 3, batch_first=True), nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lstm(x)[0][:, -1])


class NotQuiteReLU(nn.ReLU):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, 0.1)


def reason_for(model: nn.Module, shape: tuple[int, ...]) -> UnsupportedModel:
    with pytest.raises(UnsupportedModel) as caught:
        browser_network(model, shape)
    assert why_not_browser(model, shape) == caught.value.reason
    assert isinstance(caught.value, ValueError)
    return caught.value


@pytest.mark.parametrize("model, shape, layer, words", [
    (ResidualBlock(), (2, 5, 5), "relu2", "not the output of 'conv2'"),
    (FunctionalReLU(), (1, 6, 6), "pool", "F.relu"),
    (SoftmaxAtTheEnd(), (1, 4, 4), "fc", "after it (such as F.softmax)"),
    (Recurrent(), (5, 4), "lstm", "is of type LSTM, which the browser cannot run"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1)), (1, 5, 5), "1",
     "AdaptiveAvgPool2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), (1, 5, 5), "0",
     "padding_mode='reflect'"),
    (nn.Sequential(nn.BatchNorm2d(1, track_running_stats=False)), (1, 3, 3), "0",
     "track_running_stats=False"),
    (nn.Sequential(nn.Flatten(0)), (1, 3, 3), "0", "mixes the inputs of a batch"),
    (nn.Sequential(NotQuiteReLU()), (4,), "0", "does not reproduce '0'"),
    (nn.Sequential(nn.MaxPool2d(2, return_indices=True)), (1, 4, 4), "0", "returns a tuple"),
])
def test_unsupported_models_say_why(model: nn.Module, shape: tuple[int, ...], layer: str,
                                    words: str) -> None:
    error = reason_for(model.eval(), shape)
    assert error.layer == layer
    assert words in error.reason and f"'{layer}'" in error.reason
    assert str(error).startswith("this model cannot run in the browser: ")


class OnlyFunctions(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)


def test_a_model_without_modules_is_unsupported() -> None:
    error = reason_for(OnlyFunctions(), (3,))
    assert error.layer is None and "no module that hooks can see" in error.reason


def test_a_skip_connection_is_named_as_a_branch() -> None:
    error = reason_for(featviz.SmallResNet().eval(), (1, 28, 28))
    assert "the network branches" in error.reason and error.layer is not None


def test_torchvision_resnet18_is_unsupported_at_its_first_residual_add() -> None:
    models = pytest.importorskip("torchvision.models")
    error = reason_for(models.resnet18(weights=None).eval(), (3, 32, 32))
    assert error.layer == "layer1.0.relu#1"
    assert "not the output of 'layer1.0.bn2'" in error.reason and "residual add" in error.reason


def test_input_shape_comes_from_the_model_or_is_asked_for() -> None:
    with pytest.raises(ValueError, match=r"needs the shape of one input.*input_shape=\(1, 28"):
        browser_network(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="positive integers"):
        browser_network(nn.Sequential(nn.ReLU()), (0, 3))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)") as caught:
        browser_network(featviz.SimpleCNN(), (1, 32, 32))   # the model's own error, kept
    if sys.version_info >= (3, 11):  # add_note
        assert any("dummy input of shape (2, 1, 32, 32)" in n for n in caught.value.__notes__)
