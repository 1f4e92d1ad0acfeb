"""featviz.ablate: channels switched off inside a with block, and only there."""
from __future__ import annotations

import pytest
import torch

import featviz


@pytest.fixture
def model():
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


def test_ablated_channels_are_zero_and_the_rest_unchanged(model):
    x = torch.randn(3, 1, 28, 28)
    before = featviz.activations(model, x, ["relu2"])["relu2"]
    with featviz.ablate(model, "relu2", [3, 7]) as same:
        assert same is model
        during = featviz.activations(model, x, ["relu2"])["relu2"]
    keep = [c for c in range(32) if c not in (3, 7)]
    assert during[:, [3, 7]].abs().max() == 0
    assert torch.equal(during[:, keep], before[:, keep])
    assert torch.equal(featviz.activations(model, x, ["relu2"])["relu2"], before)


def test_ablating_a_channel_changes_the_prediction_as_removing_its_weights_does(model):
    x = torch.randn(4, 1, 28, 28)
    with featviz.ablate(model, "conv2", 5):
        ablated = model(x)
    pruned = featviz.SimpleCNN().eval()
    pruned.load_state_dict(model.state_dict())
    with torch.no_grad():
        pruned.conv2.weight[5] = 0
        pruned.conv2.bias[5] = 0
    assert torch.allclose(ablated, pruned(x), atol=1e-6)


def test_a_dead_channel_costs_nothing(model):
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        model.conv2.bias[11] = -1e4               # never above 0 after the ReLU
    dead = featviz.channel_stats(model, x, "relu2").dead
    assert 11 in dead and len(dead) < 32
    out = model(x)
    with featviz.ablate(model, "relu2", dead):
        assert torch.equal(model(x), out)
    with featviz.ablate(model, "relu2", [c for c in range(32) if c not in dead][:1]):
        assert not torch.equal(model(x), out)


def test_no_channels_is_the_model_itself_and_a_value_can_be_chosen(model):
    x = torch.randn(2, 1, 28, 28)
    out = model(x)
    with featviz.ablate(model, "relu1", []):
        assert torch.equal(model(x), out)
    with featviz.ablate(model, "relu1", torch.tensor([0]), value=1.5):
        maps = featviz.activations(model, x, ["relu1"])["relu1"]
    assert torch.all(maps[:, 0] == 1.5)


def test_the_hook_goes_on_error_and_bad_channels_are_named(model):
    x = torch.randn(2, 1, 28, 28)
    with pytest.raises(ValueError, match="channel 16 does not exist: 'relu1' has 16 channels"):
        with featviz.ablate(model, "relu1", [2, 16]):
            model(x)
    assert not model.relu1._forward_hooks
    with pytest.raises(TypeError, match="whole numbers"):
        with featviz.ablate(model, "relu1", [1.5]):
            model(x)
    with pytest.raises(TypeError, match="channel numbers"):
        with featviz.ablate(model, "relu1", "3"):
            pass
    with pytest.raises(ValueError, match="conv3"):
        with featviz.ablate(model, "conv3", [0]):
            pass
    assert all(not m._forward_hooks for m in model.modules())
