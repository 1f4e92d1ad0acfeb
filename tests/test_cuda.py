"""The whole path on a CUDA GPU: data on the CPU, model on the GPU, results ready for numpy.

Skipped where there is no GPU; run on a GPU machine with `pytest tests/test_cuda.py`.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import featviz

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def setup():
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu_model = featviz.pretrained()
    gpu_model = featviz.pretrained(device="cuda")
    images, labels = featviz.digit_examples()
    return cpu_model, gpu_model, images, labels


def test_pretrained_lands_on_the_gpu_and_agrees_with_the_cpu(setup):
    cpu_model, gpu_model, images, labels = setup
    assert next(gpu_model.parameters()).device.type == "cuda"
    pred, prob = featviz.predict(gpu_model, images)
    assert pred.device.type == "cpu" and torch.equal(pred, labels)
    assert torch.allclose(prob, featviz.predict(cpu_model, images)[1], atol=1e-4)


def test_capture_on_gpu_gives_cpu_tensors_equal_to_the_cpu_run(setup):
    cpu_model, gpu_model, images, _ = setup
    acts = featviz.activations(gpu_model, images.cuda(), ["conv1", "relu2", "fc3"])
    ref = featviz.activations(cpu_model, images, ["conv1", "relu2", "fc3"])
    for name in ref:
        assert acts[name].device.type == "cpu"
        assert torch.allclose(acts[name], ref[name], atol=1e-4), name
        acts[name].numpy()  # ready for numpy
    kept = featviz.activations(gpu_model, images.cuda(), ["conv1"], to_cpu=False)
    assert kept["conv1"].device.type == "cuda"


def _hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class _InplaceTwice(nn.Module):
    """conv -> shared in-place ReLU -> conv -> the same ReLU -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 3, 3), nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv2(self.relu(self.conv1(x)))).flatten(1))


def test_capture_guarantees_hold_on_the_gpu():
    torch.manual_seed(0)
    model = _InplaceTwice().cuda()
    x = torch.randn(3, 1, 8, 8, device="cuda")
    with torch.no_grad():
        conv1 = model.conv1(x)
        conv2 = model.conv2(torch.relu(conv1))
    with featviz.capture(model, ["conv1", "relu", "conv2"], grad=True) as acts:
        model(x[:1]).sum().backward()  # two passes, one backward each
        model(x[1:]).sum().backward()
    assert acts.passes == 2 and list(acts) == ["conv1", "relu", "relu#1", "conv2"]
    assert acts["conv1"].device.type == "cpu" and (acts["conv1"] < 0).any()
    torch.testing.assert_close(acts["conv1"], conv1.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(acts["conv2"], conv2.cpu(), rtol=0, atol=0)
    torch.testing.assert_close(acts["relu#1"], conv2.clamp(min=0).cpu(), rtol=0, atol=0)
    pulled = model.head.weight.sum(0).view(1, 4, 4, 4).detach().cpu()
    torch.testing.assert_close(acts.grads["conv2"], pulled * (conv2.cpu() > 0))
    assert _hooks_left(model) == 0


def test_gpu_tuple_outputs_options_and_failures():
    torch.manual_seed(0)
    lstm = nn.Sequential(nn.LSTM(4, 5, batch_first=True)).cuda()
    x = torch.randn(2, 3, 4, device="cuda")
    acts = featviz.activations(lstm, x, "0", to_cpu=False)
    out, (h, c) = lstm[0](x)
    assert acts["0[0]"].device.type == "cuda" and list(acts) == ["0[0]", "0[1][0]", "0[1][1]"]
    torch.testing.assert_close(acts["0[1][1]"], c, rtol=0, atol=0)
    cnn = featviz.SimpleCNN().cuda().eval()
    images = featviz.digit_examples()[0]
    ref = featviz.activations(cnn.cpu(), images, "conv2")["conv2"]
    cnn.cuda()
    some = featviz.activations(cnn, images, "conv2", channels=[5, 2], dtype=torch.float16)
    assert some["conv2"].dtype == torch.float16 and some["conv2"].device.type == "cpu"
    torch.testing.assert_close(some["conv2"].float(), ref[:, [5, 2]], rtol=1e-2, atol=1e-2)
    best = featviz.activations(cnn, images, "conv2", reduce="max")["conv2"]
    torch.testing.assert_close(best[..., 0], ref.amax(dim=(2, 3)), rtol=1e-4, atol=1e-4)
    with pytest.raises(RuntimeError, match="boom"):
        with featviz.capture(cnn, nn.Conv2d):
            cnn(images.cuda())
            raise RuntimeError("boom")
    assert _hooks_left(cnn) == 0


def test_figures_accept_gpu_tensors(setup):
    _, gpu_model, images, _ = setup
    kept = featviz.activations(gpu_model, images.cuda(), ["conv1"], to_cpu=False)
    fig = featviz.plot_feature_maps(kept["conv1"][3], image=images[3].cuda())
    assert sum(ax.get_label().startswith("channel") for ax in fig.axes) == 16
    assert featviz.plot_filters(gpu_model.conv1.weight).axes


def test_attributions_on_gpu_match_the_cpu(setup):
    cpu_model, gpu_model, images, labels = setup
    for fn, kwargs in [(featviz.saliency, {}), (featviz.grad_cam, {"layer": "relu2"}),
                       (featviz.occlusion, {"window": 6, "stride": 4})]:
        gpu = fn(gpu_model, images.cuda(), **kwargs)
        cpu = fn(cpu_model, images, **kwargs)
        assert gpu.device.type == "cpu" and gpu.shape == (10, 28, 28)
        assert torch.allclose(gpu, cpu, atol=1e-3, rtol=1e-3), fn.__name__


def test_top_activating_on_gpu_picks_the_cpu_images(setup):
    cpu_model, gpu_model, _, _ = setup
    data = featviz.mnist_tensors(train=False)
    subset = (data[0][:2000], data[1][:2000])
    gpu = featviz.top_activating(gpu_model, subset, "conv2", channel=5, k=9)
    cpu = featviz.top_activating(cpu_model, subset, "conv2", channel=5, k=9)
    assert torch.equal(torch.as_tensor(gpu.indices), torch.as_tensor(cpu.indices))


def test_fit_picks_the_gpu_and_learns(setup):
    images, labels = featviz.mnist_tensors(train=True)
    model = featviz.SimpleCNN()
    history = featviz.fit(model, (images[:4000], labels[:4000]), epochs=1, progress=False)
    assert next(model.parameters()).device.type == "cuda"
    assert featviz.evaluate(model, featviz.mnist_tensors(train=False))["accuracy"] > 0.8
    assert history is not None


def test_explorer_runs_a_gpu_model(setup):
    pytest.importorskip("ipywidgets")
    _, gpu_model, images, labels = setup
    ex = featviz.explorer(gpu_model, images, labels, snapshots=None)
    assert ex.ok, ex.problem
    before = ex.canvas.payload
    ex.image_slider.value = 1
    assert ex.canvas.payload != before and ex.canvas.meta["layers"][0]["name"] == "conv1"
    found = ex.inspect("conv2", 3, (2, 2))  # the convolution inspector on a GPU model
    assert found["ok"] and abs(found["total"] - found["value"]) < 1e-4
