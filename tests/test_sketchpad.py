"""featviz.sketchpad, kernel side: what a drawing becomes and what the browser is sent.

The front end is driven in a real browser by ``test_browser_sketchpad.py``; here
the drawing is set from Python, which the widget treats exactly like a drawing.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import featviz
from featviz.widgets import sketchpad_widget as sw


def vertical_stroke() -> list[tuple[float, float]]:
    return [(0.5, 0.15), (0.52, 0.85)]


def circle(n: int = 64) -> list[tuple[float, float]]:
    t = np.linspace(0, 2 * np.pi, n)
    return list(zip(0.5 + 0.28 * np.cos(t), 0.5 + 0.36 * np.sin(t)))


@pytest.fixture(scope="module")
def pad():
    return featviz.sketchpad()


@pytest.fixture(autouse=True)
def _fresh(request):
    if "pad" in request.fixturenames:
        request.getfixturevalue("pad").clear()


def test_an_empty_pad_predicts_nothing(pad):
    assert pad.message == ""
    assert pad.layer == "conv1" and pad.layer_dropdown.value == "conv1"
    assert pad.pixels.shape == (sw.RESOLUTION, sw.RESOLUTION)
    assert pad.prediction is None and pad.probabilities == [] and pad.maps is None


def test_a_vertical_stroke_is_a_one(pad):
    pad.draw(vertical_stroke())
    assert pad.prediction == 1
    probs = np.array(pad.probabilities)
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-4 and probs.argmax() == 1


def test_a_circle_is_a_zero(pad):
    pad.draw(circle())
    assert pad.prediction == 0
    assert max(pad.probabilities) == pad.probabilities[0]


def test_setting_pixels_is_drawing(pad):
    ink = sw.stroke_pixels(circle(), shape=(200, 160))
    pad.pixels = ink
    assert pad.pixels.shape == (200, 160)
    assert np.abs(pad.pixels - ink).max() <= 0.5 / 255 + 1e-7   # one byte per pixel
    assert pad.prediction == 0
    # what the front end is sent to redraw: the same bytes and shape
    assert pad._ink_shape == [200, 160] and len(pad._ink) == 200 * 160
    pad.pixels = torch.from_numpy(sw.stroke_pixels(vertical_stroke()))
    assert pad.prediction == 1


def test_image_is_mnist_style_of_the_pixels(pad):
    pad.draw([(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)])            # a 7 without its crossbar
    image = pad.image
    assert image.shape == (1, 1, 28, 28)
    assert torch.equal(image, featviz.mnist_style(pad.pixels))
    logits = featviz.pretrained()(image)
    assert int(logits.argmax()) == pad.prediction
    # and the 28x28 the page shows is that input, un-normalised, one byte per pixel
    shown = np.frombuffer(pad._input, np.uint8).reshape(28, 28) / 255
    assert np.abs(shown - featviz.mnist_denormalize(image)[0, 0].numpy()).max() <= 0.5 / 255 + 1e-6


@pytest.mark.parametrize("layer", ["conv1", "pool1", "conv2", "relu2"])
def test_maps_sent_equal_the_activations(pad, layer):
    pad.layer_dropdown.value = layer            # the Dropdown drives the layer
    pad.draw(circle())
    want = featviz.activations(featviz.pretrained(), pad.image, [layer])[layer][0].numpy()
    meta = pad._maps_meta
    # decode the payload the way the browser does: offset + scale * byte, per map
    c, h, w = meta["shape"]
    q = np.frombuffer(pad._maps, np.uint8).reshape(c, h, w).astype(np.float32)
    got = np.array(meta["offset"])[:, None, None] + np.array(meta["scale"])[:, None, None] * q
    step = np.array(meta["scale"])[:, None, None]
    assert got.shape == want.shape
    assert np.all(np.abs(got - want) <= step / 2 + 1e-5)
    assert np.allclose(pad.maps, got, atol=1e-6)
    # the colour policy of the static figures: signed maps diverge around 0
    from featviz._style import choose_cmap, limits

    assert meta["cmap"] == choose_cmap(want)
    assert meta["vmin"] == pytest.approx(limits(want, "shared")[0][0], rel=1e-5)
    assert meta["layer"] == layer and meta["total"] == want.shape[0]
    pad.layer_dropdown.value = "conv1"


def test_colour_tables_are_sent_once_with_the_widget(pad):
    from featviz.widgets._payload import colormap_table

    assert set(pad._luts) >= {"magma", "RdBu_r"}
    assert pad._luts["magma"] == colormap_table("magma") and len(pad._luts["RdBu_r"]) == 768


def test_clear_resets(pad):
    pad.draw(circle())
    assert pad.prediction == 0
    answered = pad._answered
    pad.clear()
    assert pad.pixels.max() == 0
    assert pad.prediction is None and pad.probabilities == [] and pad.maps is None
    assert pad._answered > answered               # the page is told the answer changed
    assert torch.equal(pad.image, featviz.mnist_style(np.zeros((28, 28), np.float32)))


def test_bad_pixels_say_how_to_fix_them(pad):
    with pytest.raises(TypeError, match="pixels / 255"):
        pad.pixels = np.full((28, 28), 255, np.uint8)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        pad.pixels = np.zeros((3, 28, 28), np.float32)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pad.pixels = np.full((28, 28), 2.0, np.float32)


def test_a_colour_model_gets_a_resized_three_channel_input_and_a_note():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    resnet = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    pad = featviz.sketchpad(resnet)
    assert "3×64×64" in pad.message and "copied to 3 channels" in pad.message
    pad.draw(circle())
    assert pad.image.shape == (1, 3, 64, 64)
    assert pad.prediction in range(10)
    assert pad.maps.shape == (64, 32, 32)
    assert not resnet.training                       # the model's mode is left as it was


def test_a_model_without_maps_still_predicts():
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    pad = featviz.sketchpad(mlp)
    assert "no layer with feature maps" in pad.message
    pad.draw(vertical_stroke())
    assert pad.prediction in range(10) and pad.maps is None


def test_an_unknown_layer_falls_back_with_a_note():
    pad = featviz.sketchpad(layer="conv9")
    assert "no layer 'conv9'" in pad.message and "conv2" in pad.message
    assert pad.layer == "conv1"


@pytest.mark.parametrize("model", [nn.Linear(5, 3), "a model"])
def test_a_model_that_cannot_read_a_drawing_gives_a_message(model):
    pad = featviz.sketchpad(model)                   # no exception
    assert pad.message.startswith("The sketchpad cannot use this model")
    pad.draw(vertical_stroke())
    assert pad.prediction is None
    assert pad.message.startswith("The sketchpad cannot use this model")


def test_stroke_pixels_draws_soft_round_strokes():
    ink = sw.stroke_pixels([(0.5, 0.5)], shape=(140, 140), width=12)
    assert ink.max() == 1.0 and ink[0, 0] == 0.0
    radius = np.sqrt((ink > 0.5).sum() / np.pi)
    assert 5 < radius < 7                            # a dot as wide as the brush
    edge = (ink > 0) & (ink < 1)                     # anti-aliased: a ring of grey pixels
    assert 20 < edge.sum() < 80 and np.allclose(ink[:, 60:80], ink[:, 60:80][:, ::-1])


def test_snapshot_shows_the_pad_for_readers(pad):
    pad.draw([(0.3, 0.2), (0.7, 0.2), (0.45, 0.85)], [(0.38, 0.52), (0.66, 0.52)])  # a 7
    fig = pad.snapshot()
    texts = [t.get_text() for t in fig.texts]
    assert texts[0].startswith(f"predicted {pad.prediction} (")
    assert any("Feature maps of conv1: 16 maps of 24×24" in t for t in texts)
    assert len(fig.axes) == 3 + 16 + 1                # drawing, input, bars; maps; colour bar
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())
    assert pixels.shape[1] == 900 and pixels[..., :3].std() > 20
    pad.clear()
    assert pad.snapshot().texts[0].get_text().startswith("empty pad")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_the_gpu():
    pad = featviz.sketchpad(featviz.pretrained().cuda())
    pad.draw(vertical_stroke())
    assert pad.message == "" and pad.prediction == 1
    assert pad.image.device.type == "cuda" and pad.maps.shape == (16, 24, 24)


def test_the_course_network_runs_in_the_page():
    """The pad sends the SimpleCNN once; the page's network gives the kernel's prediction."""
    import torch

    from featviz.netspec_run import NetSpec

    pad = featviz.sketchpad()
    assert pad.engine == "browser" and pad.engine_note == ""
    assert pad._layer_names == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    spec = NetSpec.from_payload({**pad._network, "weights": pad._network_weights})
    pad.draw([(0.5, 0.15), (0.5, 0.85)])
    logits, _ = spec.run(pad.image.numpy())
    assert int(logits.argmax()) == pad.prediction == 1
    with torch.no_grad():
        assert abs(logits - featviz.pretrained()(pad.image).numpy()).max() < 1e-4


def test_a_network_the_page_cannot_run_is_read_in_the_kernel():
    pad = featviz.sketchpad(featviz.SmallResNet().eval())
    assert pad.engine == "kernel" and "cannot run in the browser" in pad.engine_note
    assert pad._network == {} and pad._network_weights == b""
    pad.draw([(0.5, 0.15), (0.5, 0.85)])
    assert pad.prediction is not None and pad.maps is not None   # the kernel answers


def test_the_layer_chooser_is_linked_in_the_page():
    pad = featviz.sketchpad()
    links = [(l.source[1], l.target[1]) for l in [pad._layer_link]]
    assert links == [("index", "_layer_index")]
    pad.layer = "conv2"
    assert pad._layer_names[pad._layer_index] == "conv2"
