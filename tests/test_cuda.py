"""The whole path on a CUDA GPU: data on the CPU, model on the GPU, results ready for numpy.

Skipped where there is no GPU; run on a GPU machine with `pytest tests/test_cuda.py`.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

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
    before = ex.image.value
    ex.filter_slider.value = 3
    ex.layer_dropdown.value = "conv2"
    assert ex.image.value != before and np.asarray(bytearray(ex.image.value[:8])).tolist()[:4] == [137, 80, 78, 71]
