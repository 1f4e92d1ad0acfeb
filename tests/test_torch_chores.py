"""featviz._torch: a model's device and dtype, the input contract, batching, saved state, numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from featviz import _torch


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())


def test_device_and_dtype_come_from_the_first_parameter_or_buffer():
    model = small_cnn().double()
    assert _torch.model_device(model) == torch.device("cpu")
    assert _torch.model_dtype(model) == torch.float64
    assert _torch.model_dtype(nn.ReLU()) == torch.float32  # no parameters at all
    only_buffer = nn.Module()
    only_buffer.register_buffer("scale", torch.ones(1, dtype=torch.float16))
    assert _torch.model_dtype(only_buffer) == torch.float16


def test_as_batch_adds_the_batch_dimension_and_moves_to_the_model_dtype():
    model = small_cnn().double()
    one = torch.rand(3, 8, 8)
    batch, single = _torch.as_batch(one, model)
    assert single and batch.shape == (1, 3, 8, 8) and batch.dtype == torch.float64
    torch.testing.assert_close(batch[0], one.double())
    many, single = _torch.as_batch(np.zeros((2, 3, 8, 8), dtype=np.float32))
    assert not single and many.shape == (2, 3, 8, 8) and many.dtype == torch.float32
    stacked, _ = _torch.as_batch([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)])
    assert stacked.shape == (2, 3, 8, 8) and stacked[1].sum() == 3 * 64


def test_as_batch_errors_say_how_to_fix_the_input():
    from PIL import Image

    with pytest.raises(TypeError, match=r"x = torch.as_tensor\(x\).float\(\) / 255"):
        _torch.as_batch(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(TypeError, match="integer type uint8"):
        _torch.as_batch(np.zeros((1, 1, 8, 8), dtype=np.uint8), what="images")
    with pytest.raises(TypeError, match="to_tensor"):
        _torch.as_batch(Image.new("L", (8, 8)))
    with pytest.raises(ValueError, match=r"got shape \(8, 8\).*x\[None\]"):
        _torch.as_batch(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="different shapes"):
        _torch.as_batch([torch.zeros(1, 4, 4), torch.zeros(1, 5, 5)])
    with pytest.raises(TypeError, match="got str"):
        _torch.as_batch("image.png")


@pytest.mark.parametrize("shape, hint", [
    ((3, 8, 8), "x.unsqueeze(0)"),
    ((2, 8, 8, 3), "x.permute(0, 3, 1, 2)"),
    ((2, 1, 8, 8), "x.expand(-1, 3, -1, -1)"),
])
def test_run_model_names_the_first_layer_and_the_fix(shape, hint):
    with pytest.raises(ValueError) as err:
        _torch.run_model(small_cnn(), torch.zeros(shape))
    msg = str(err.value)
    assert "(N, 3, H, W)" in msg and "'0'" in msg and str(shape) in msg and hint in msg


def test_run_model_leaves_other_errors_alone():
    class Fails(nn.Module):
        def forward(self, x):
            raise RuntimeError("something else")

    with pytest.raises(RuntimeError, match="something else"):
        _torch.run_model(Fails(), torch.zeros(1))


def test_batches_from_tensors_pairs_datasets_and_loaders():
    images, labels = torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10)
    assert [len(x) for x, y in _torch.batches(images, 4)] == [4, 4, 2]
    assert all(y is None for _, y in _torch.batches(images, 4))
    pairs = list(_torch.batches((images, labels), 3))
    assert torch.equal(torch.cat([y for _, y in pairs]), labels)
    dataset = torch.utils.data.TensorDataset(images, labels)
    assert [len(x) for x, _ in _torch.batches(dataset, 6)] == [6, 4]
    loader = torch.utils.data.DataLoader(dataset, batch_size=5)
    assert [y.tolist() for _, y in _torch.batches(loader, 100)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    g = torch.Generator().manual_seed(0)
    shuffled = torch.cat([y for _, y in _torch.batches((images, labels), 4, shuffle=True, generator=g)])
    assert sorted(shuffled.tolist()) == list(range(10)) and shuffled.tolist() != list(range(10))
    for x, y in _torch.batches((images, labels), 4, shuffle=True, generator=g):
        assert torch.equal(x.view(-1).long(), y)  # images and labels stay paired


def test_batches_errors():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        next(_torch.batches(torch.zeros(2, 1), 0))
    with pytest.raises(ValueError, match="3 images"):
        next(_torch.batches((torch.zeros(3, 1), torch.zeros(2)), 2))
    with pytest.raises(TypeError, match="got int"):
        next(_torch.batches(5, 2))
    with pytest.raises(TypeError, match="labels.long()"):
        _torch.tensor_pair((torch.zeros(2, 1), torch.zeros(2)), "fit", classes=True)


def test_inference_mode_restores_modes_and_requires_grad_even_after_an_error():
    model = small_cnn().train()
    model[1].eval()  # a frozen batch norm stays frozen
    model[0].bias.requires_grad_(False)
    with pytest.raises(ZeroDivisionError):
        with _torch.inference_mode(model, requires_grad=False):
            assert not model.training and not model[2].training
            assert not any(p.requires_grad for p in model.parameters())
            1 / 0
    assert model.training and model[2].training and not model[1].training
    assert model[0].weight.requires_grad and not model[0].bias.requires_grad
    with _torch.inference_mode(model):  # requires_grad left alone
        assert model[0].weight.requires_grad and not model.training


def test_to_numpy_detaches_and_moves_to_float():
    t = torch.ones(2, 3, requires_grad=True, dtype=torch.float64) * 2
    arr = _torch.to_numpy(t)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float32 and arr.sum() == 12
    assert _torch.to_numpy([[1, 2]]).dtype == np.float32
    with pytest.raises(TypeError, match=r"maps\['conv1'\]"):
        _torch.to_numpy({"conv1": t}, "maps")
    with pytest.raises(TypeError, match="got object"):
        _torch.to_numpy(object())


def test_tensors_in_names_nested_outputs():
    out = (torch.zeros(1), [torch.ones(2), "not a tensor"], {"h": torch.zeros(3)})
    assert [(p, tuple(t.shape)) for p, t in _torch.tensors_in(out)] == [
        ("[0]", (1,)), ("[1][0]", (2,)), ("[2]['h']", (3,))]
