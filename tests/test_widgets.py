"""The explorer: what the kernel sends the browser, what the controls cost, the
perturbation sliders, the convolution inspector, the still picture, and the
messages shown instead of tracebacks."""
from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import featviz
from featviz import selfcheck
from featviz._style import color_scale, limits

widgets = pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")

from featviz.widgets import explorer_widget  # noqa: E402
from featviz.widgets._payload import colormap_table, dequantize, quantize  # noqa: E402
from featviz.widgets.explorer_data import ExplorerError  # noqa: E402


def kernel_explorer(*args, **kwargs):
    """The explorer with the kernel computing the maps: what these tests hold to capture()
    (tests/test_explorer_browser.py covers the page's engine)."""
    return featviz.explorer(*args, engine="kernel", **kwargs)


# --------------------------------------------------------------------------- payload

def test_quantize_is_within_half_a_step_and_keeps_zero_exact():
    rng = np.random.default_rng(0)
    maps = np.maximum(rng.normal(size=(5, 7, 9)), 0).astype(np.float32)
    maps[2] = 0.0          # a dead map
    maps[3] = 1.5          # a constant one
    q = quantize(maps)
    back = dequantize(q)
    assert len(q.data) == maps.size and q.shape == (5, 7, 9)
    assert np.all(np.abs(back - maps) <= q.scale[:, None, None] / 2 + 1e-6)
    assert np.array_equal(back[maps == 0], maps[maps == 0]), "zeros after a ReLU come back exact"
    assert np.array_equal(back[2], maps[2]) and np.array_equal(back[3], maps[3])
    with pytest.raises(ValueError, match="shape"):
        quantize(np.zeros((2, 2, 2, 2)))


def test_quantize_sends_non_finite_values_as_the_lowest():
    maps = np.array([[[1.0, np.nan], [np.inf, 3.0]]], dtype=np.float32)
    back = dequantize(quantize(maps))
    assert back[0, 0, 0] == 1.0 and back[0, 1, 1] == pytest.approx(3.0)
    assert back[0, 0, 1] == 1.0 and back[0, 1, 0] == 1.0


def test_colormap_tables_are_matplotlibs():
    from matplotlib import colormaps

    for name in ("magma", "RdBu_r"):
        table = np.frombuffer(colormap_table(name), np.uint8).reshape(256, 3)
        expected = np.rint(colormaps[name](np.arange(256) / 255)[:, :3] * 255)
        assert np.array_equal(table, expected)
    with pytest.raises(ValueError, match="unknown colour map"):
        colormap_table("no-such-map")


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def digits():
    return featviz.digit_examples()  # one test image per digit, labels 0..9


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


def sent(ex) -> dict[str, tuple[np.ndarray, np.ndarray, dict]]:
    """Decode the payload as the browser does: ``{layer: (maps, step, meta)}``."""
    data, out = ex.canvas.payload, {}
    for layer in ex.canvas.meta["layers"]:
        c, h, w = layer["shape"]
        q = np.frombuffer(data, np.uint8, c * h * w, layer["start"]).reshape(c, h, w)
        f = np.frombuffer(data, "<f4", 4 * c, layer["floats"])
        maps = f[:c, None, None] + f[c:2 * c, None, None] * q.astype(np.float32)
        out[layer["name"]] = (maps, f[c:2 * c], {**layer, "per_map": (f[2 * c:3 * c], f[3 * c:])})
    return out


def expected(model, x, layer):
    return featviz.activations(model.eval(), x, [layer])[layer][0].numpy()


class Recorder:
    """Every message the kernel sends to the browser, from any widget."""

    def __init__(self, monkeypatch, widget):
        self.messages = []
        comm_type = type(widget.comm)
        original = comm_type.send

        def send(comm, *args, **kwargs):
            self.messages.append(kwargs.get("data", args[0] if args else None))
            return original(comm, *args, **kwargs)

        monkeypatch.setattr(comm_type, "send", send)


# --------------------------------------------------------------------------- what is sent

def test_activations_sent_equal_capture_within_one_quantisation_step(model, digits):
    images, labels = digits
    ex = kernel_explorer(model, images, labels, snapshots=None)
    assert ex.ok and ex.message.value == "" and ex.sent == 1
    for step in (None, ("image_slider", 7), ("rotate", 20)):
        if step is not None:
            name, value = step
            control = ex.perturb_controls.get(name) or getattr(ex, name)
            control.value = value
        x = ex.input()
        got = sent(ex)
        assert list(got) == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
        for layer, (maps, step_size, meta) in got.items():
            want = expected(model, x, layer)
            assert maps.shape == want.shape
            assert np.all(np.abs(maps - want) <= step_size[:, None, None] + 1e-5), layer
            # the colour policy of the static figures, for both scales
            cmap, lo, hi = color_scale(want)
            assert meta["cmap"] == cmap and meta["shared"] == pytest.approx([lo, hi], rel=1e-5)
            plo, phi = limits(want, "per-map")
            np.testing.assert_allclose(meta["per_map"][0], plo, rtol=1e-5)
            np.testing.assert_allclose(meta["per_map"][1], phi, rtol=1e-5)
    assert ex.sent == 3
    meta = ex.canvas.meta
    with torch.no_grad():
        prob = torch.softmax(model(ex.input()), 1)[0]
    assert meta["prediction"]["name"] == str(int(prob.argmax()))
    assert meta["prediction"]["p"] == pytest.approx(float(prob.max()), rel=1e-5)
    assert meta["label"] == "7" and meta["perturbed"] == "rotated 20°"


def test_filters_and_input_picture_are_sent_for_the_single_view(model, digits):
    ex = kernel_explorer(model, *digits, snapshots=None)
    data = ex.canvas.payload
    layers = {m["name"]: m for m in ex.canvas.meta["layers"]}
    assert layers["relu1"]["kernel_of"] == "conv1" and not layers["relu1"]["conv"]
    k = layers["conv2"]["kernel"]
    assert k["dims"] == [32, 16, 5, 5]
    q = np.frombuffer(data, np.uint8, 32 * 16 * 25, k["start"]).reshape(32, 16 * 5, 5)
    f = np.frombuffer(data, "<f4", 64, k["floats"])
    weights = (f[:32, None, None] + f[32:, None, None] * q).reshape(32, 16, 5, 5)
    np.testing.assert_allclose(weights, model.conv2.weight.detach().numpy(),
                               atol=float(f[32:].max()))
    pic = ex.canvas.meta["input"]
    assert pic["shape"] == [28, 28, 3]
    rgb = np.frombuffer(data, np.uint8, 28 * 28 * 3, pic["start"]).reshape(28, 28, 3)
    assert (rgb[..., 0] == rgb[..., 2]).all() and rgb.min() == 0 and rgb.max() == 255


def test_layer_filter_view_and_scale_from_the_browser_send_nothing_back(
        model, digits, monkeypatch):
    ex = kernel_explorer(model, *digits, snapshots=None)
    misses, payload = ex.data.cache.misses, ex.canvas.payload
    rec = Recorder(monkeypatch, ex.canvas)
    # as the browser reports a layer change: the filter slider's new range first
    # (the front end sets it), then the picture's layer, then the dropdown
    ex.filter_slider.set_state({"max": 31, "value": 0})
    ex.canvas.set_state({"layer_index": 3})
    ex.layer_dropdown.set_state({"index": 3})
    ex.filter_slider.set_state({"value": 20})
    ex.canvas.set_state({"channel": 20})
    ex.view.set_state({"index": 1})
    ex.norm.set_state({"index": 1})
    assert ex.state == {"image": 0, "layer": "conv2", "channel": 20, "view": "single",
                        "norm": "per-map", "snapshot": 0}
    # ipywidgets 8 acknowledges each update from the browser ("echo_update", for other
    # views of the same notebook); beyond that the kernel must say nothing
    answers = [m for m in rec.messages if m.get("method") != "echo_update"]
    assert answers == [], "the kernel answered a change the browser draws itself"
    assert ex.data.cache.misses == misses and ex.canvas.payload == payload
    ex.image_slider.set_state({"value": 4})  # a new image does ask the kernel
    assert ex.data.cache.misses == misses + 1 and ex.canvas.payload != payload
    # one update carrying the maps, as a binary buffer (the label chooser follows too)
    paths = [m["buffer_paths"] for m in rec.messages if m.get("method") == "update"]
    assert paths.count([["payload"]]) == 1


def test_filter_slider_range_follows_the_layer_from_python(model, digits):
    ex = kernel_explorer(model, *digits, snapshots=None)
    assert (ex.filter_slider.min, ex.filter_slider.max) == (0, 15)
    ex.layer_dropdown.value = "conv2"
    assert ex.filter_slider.max == 31
    ex.filter_slider.value = 25
    ex.layer_dropdown.value = "pool1"
    assert ex.filter_slider.max == 15 and ex.filter_slider.value == 15
    assert ex.sent == 1, "layer and filter changes are drawn from what was sent"


def test_once_a_page_shows_it_the_kernel_never_touches_the_filter_range(model, digits):
    """The page sets the filter slider's range itself; a kernel reply reaching it after
    several layer changes must never narrow the range and clamp the filter chosen there."""
    ex = kernel_explorer(model, *digits, snapshots=None)
    ex.canvas.page_open = True          # what the page sends when it shows the picture
    ex.filter_slider.max, ex.filter_slider.value = 31, 25   # the page: conv2, filter 25
    for layer in ("pool1", "relu1", "conv1", "conv2"):   # changes queued behind a busy kernel
        ex.layer_dropdown.value = layer
        assert ex.filter_slider.max == 31 and ex.filter_slider.value == 25, layer
    ex.layer_dropdown.value = "pool1"
    assert ex.state["channel"] == 15, "a filter beyond the layer's maps reads as its last"


def test_controls_are_linked_to_the_picture_in_the_browser(model, digits):
    ex = kernel_explorer(model, *digits, snapshots=None, layer="conv2", view="single")
    pairs = {(link.source[0], link.source[1], link.target[1]) for link in ex._links}
    assert pairs == {(ex.layer_dropdown, "index", "layer_index"),
                     (ex.filter_slider, "value", "channel"),
                     (ex.view, "index", "view_index"), (ex.norm, "index", "scale_index")}
    assert all(link.target[0] is ex.canvas for link in ex._links)
    assert (ex.canvas.layer_index, ex.canvas.view_index) == (3, 1)
    assert ex.canvas.filter_control is ex.filter_slider
    js = Path(featviz.widgets.explorer_widget.__file__).with_name("explorer.js").read_text()
    assert "export default" in js and "change:layer_index" in js


def test_image_digit_and_time_slider_recompute_once(digits):
    images, labels = featviz.digit_batch([3, 1, 4, 1, 5, 9, 2, 6])
    snaps = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        snaps.append((f"step {seed * 100}", featviz.SimpleCNN().eval()))
    ex = kernel_explorer(snaps[-1][1], images, labels, snapshots=snaps, layer="conv2")
    assert [v for _, v in ex.digit_chooser.options] == [1, 2, 3, 4, 5, 6, 9]
    ex.digit_chooser.value = 1
    assert ex.image_slider.value == 1 and ex.sent == 2
    ex.image_slider.value = 2
    assert ex.digit_chooser.value == 4 and ex.sent == 3
    ex.time_slider.value = 0
    assert ex.sent == 4 and ex.canvas.meta["training"] == "step 0"
    np.testing.assert_allclose(sent(ex)["conv2"][0], expected(snaps[0][1], images[2:3], "conv2"),
                               atol=float(sent(ex)["conv2"][1].max()))
    misses = ex.data.cache.misses
    ex.time_slider.value = 1
    ex.time_slider.value = 0
    assert ex.data.cache.misses == misses, "a state seen before comes from the cache"


def test_a_two_pixel_shift_moves_conv1_maps_two_pixels(model, digits):
    images, labels = digits
    ex = kernel_explorer(model, images, labels, snapshots=None)
    before = sent(ex)["conv1"][0]
    ex.perturb_controls["shift_x"].value = 2
    after = sent(ex)["conv1"][0]
    step = float(sent(ex)["conv1"][1].max())
    # away from the border, each map moved two columns to the right
    np.testing.assert_allclose(after[:, :, 4:-2], before[:, :, 2:-4], atol=2 * step)
    assert not np.allclose(after, before, atol=2 * step)
    assert ex.canvas.meta["perturbed"] == "shifted (2, 0) px"
    assert images[0].equal(featviz.digit_examples()[0][0]), "the images are never changed"
    ex.reset_perturbation()
    np.testing.assert_array_equal(sent(ex)["conv1"][0], before)
    assert ex.canvas.meta["perturbed"] == ""


def test_rotation_and_erasing_change_maps_and_prediction_follows(model, digits):
    ex = kernel_explorer(featviz.pretrained(), *digits, snapshots=None)
    first = sent(ex)["conv2"][0]
    ex.perturb_controls["rotate"].value = 90
    assert not np.allclose(sent(ex)["conv2"][0], first)
    with torch.no_grad():
        p = torch.softmax(ex.data.snapshots[0][1](ex.input()), 1)[0]
    assert ex.canvas.meta["prediction"]["p"] == pytest.approx(float(p.max()), rel=1e-5)
    ex.perturb_controls["erase"].value = 28  # everything erased: a blank page
    x = ex.input()
    assert torch.allclose(x, x.flatten()[0].expand_as(x))


# --------------------------------------------------------------------------- inspector

def test_clicking_a_conv2_position_takes_the_value_apart(model, digits):
    ex = kernel_explorer(model, *digits, snapshots=None, layer="conv2", view="single")
    ex.image_slider.value = 3
    ex.canvas._handle_custom_msg({"type": "inspect", "layer": 3, "channel": 5, "row": 2,
                                  "col": 6}, [])
    got = ex.canvas.inspection
    value = float(expected(model, ex.input(), "conv2")[5, 2, 6])
    assert got["ok"] and got["value"] == pytest.approx(value, abs=1e-5)
    assert got["total"] == pytest.approx(value, abs=1e-5)
    assert got["sum"] + got["bias"] == pytest.approx(got["total"])
    assert got["channels"] == 16 and len(got["ranked"]) == 16
    parts = [abs(v) for _, v in got["ranked"]]
    assert parts == sorted(parts, reverse=True)
    first = got["shown"][0]
    assert np.array(first["patch"]).shape == (5, 5)
    np.testing.assert_allclose(np.array(first["products"]),
                               np.array(first["patch"]) * np.array(first["kernel"]), rtol=1e-5)
    # the inspector follows the input
    ex.perturb_controls["shift_y"].value = 1
    assert ex.canvas.inspection["value"] == pytest.approx(
        float(expected(model, ex.input(), "conv2")[5, 2, 6]), abs=1e-5)


def test_inspecting_a_relu_or_a_wrong_position_says_why(model, digits):
    ex = kernel_explorer(model, *digits, snapshots=None)
    relu = ex.inspect("relu1", 0, (3, 3))
    assert not relu["ok"] and "not a convolution" in relu["message"] and "conv1" in relu["message"]
    ex.canvas._handle_custom_msg({"type": "inspect", "layer": 0, "channel": 0, "row": 99,
                                  "col": 0}, [])
    assert not ex.canvas.inspection["ok"] and "outside" in ex.canvas.inspection["message"]
    one = ex.inspect("conv1", 4, (0, 0))
    assert one["ok"] and one["channels"] == 1 and one["input_is_image"]
    assert one["total"] == pytest.approx(float(expected(model, ex.input(), "conv1")[4, 0, 0]),
                                         abs=1e-5)


# --------------------------------------------------------------------------- other models

def test_an_rgb_resnet_is_shown_and_inspected():
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    images = torch.randn(2, 3, 64, 64)
    ex = kernel_explorer(net, images, layers=["conv1", "relu", "layer1.0.conv1",
                                               "layer2.0.conv1", "layer4.1.conv2"])
    assert ex.ok, ex.problem
    assert [v for _, v in ex.layer_dropdown.options] == ["conv1", "relu", "layer1.0.conv1",
                                                         "layer2.0.conv1", "layer4.1.conv2"]
    got = sent(ex)
    assert got["layer4.1.conv2"][0].shape == (512, 2, 2)
    np.testing.assert_allclose(got["layer1.0.conv1"][0], expected(net, images[:1], "layer1.0.conv1"),
                               atol=float(got["layer1.0.conv1"][1].max()))
    assert ex.canvas.meta["input"]["shape"] == [64, 64, 3]
    assert ex.canvas.meta["layers"][0]["kernel"]["dims"] == [64, 3, 7, 7]
    found = ex.inspect("conv1", 2, (0, 0))  # stride 2, padding 3: the corner reads padding
    assert found["ok"] and found["origin"] == [-3, -3] and not found["inside"][0][0]
    deep = ex.inspect("layer4.1.conv2", 7, (1, 1))
    assert deep["ok"] and deep["channels"] == 512 and len(deep["shown"]) == 16
    ex.layer_dropdown.value = "layer4.1.conv2"
    assert ex.filter_slider.max == 511
    assert ex.snapshot() is not None


class _NoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(self.flatten(x))


@pytest.mark.parametrize("make, words", [
    (lambda d: kernel_explorer(_NoConv(), *d), "no layer with feature maps"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), torch.zeros(0, 1, 28, 28)), "empty"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), torch.zeros(2, 3, 28, 28)),
     "could not run on image 0"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), torch.zeros(1, 28, 28)), "unsqueeze"),
    (lambda d: kernel_explorer("resnet", *d), "torch.nn.Module"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), *d, layer="fc1"), "no feature maps"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), d[0], d[1][:3]), "3 labels for 10 images"),
    (lambda d: kernel_explorer(featviz.SimpleCNN(), *d, view="big"), "'grid' or 'single'"),
])
def test_bad_states_raise_in_a_script_and_give_a_message_in_a_notebook(digits, make, words,
                                                                      monkeypatch):
    with pytest.raises(ExplorerError) as raised:
        make(digits)
    assert words in str(raised.value)
    monkeypatch.setattr(explorer_widget, "in_notebook", lambda: True)
    ex = make(digits)
    assert not ex.ok
    assert words in html.unescape(ex.message.value)
    assert "cannot start" in ex.message.value
    assert ex.children[-1] is ex.message and ex.canvas not in ex.children
    assert ex.state == {}


def test_a_failing_snapshot_shows_a_message_when_chosen(model, digits):
    class Other(nn.Module):  # another architecture: no conv2
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 5)

        def forward(self, x):
            return self.conv1(x)

    ex = kernel_explorer(model, *digits, snapshots=[("odd", Other()), ("final", model)],
                          layer="conv2")
    shown = ex.canvas.payload
    ex.time_slider.value = 0  # must not raise into the notebook
    assert "snapshot 'odd' could not run" in html.unescape(ex.message.value)
    assert ex.canvas.payload == shown
    ex.time_slider.value = 1
    assert ex.message.value == ""


def test_exploring_leaves_a_training_model_as_it_was(digits):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 26 * 26, 10))
    net.train()
    stats = net[1].running_mean.clone()
    ex = kernel_explorer(net, *digits, snapshots=None)
    assert ex.ok and [v for _, v in ex.layer_dropdown.options] == ["0", "1", "2"]
    ex.image_slider.value = 5
    assert net.training and net[1].training
    assert torch.equal(net[1].running_mean, stats), "batch-norm statistics were updated"
    net.eval()
    np.testing.assert_allclose(sent(ex)["1"][0], expected(net, digits[0][5:6], "1"),
                               atol=float(sent(ex)["1"][1].max()))


def test_default_snapshots_are_the_shipped_history_of_the_shipped_model(digits):
    shipped = featviz.pretrained_snapshots()
    ex = kernel_explorer(featviz.pretrained(), *digits)
    assert [label for label, _ in ex.time_slider.options] == [label for label, _ in shipped]
    assert ex.time_slider.value == len(shipped) - 1
    assert kernel_explorer(featviz.SimpleCNN(), *digits).time_slider is None


# --------------------------------------------------------------------------- the still

def test_snapshot_is_a_figure_of_the_current_state(model, digits):
    from matplotlib.figure import Figure

    ex = kernel_explorer(model, *digits, snapshots=None, layer="conv2")
    ex.filter_slider.value = 9
    fig = ex.snapshot()
    assert isinstance(fig, Figure)
    words = " ".join(t.get_text() for t in fig.texts)
    assert "conv2 (32 maps 8×8) · filter 9" in words and "label 0" in words
    assert "predicted" in words and "shared colour scale" in words
    labels = [ax.get_label() for ax in fig.axes]
    assert labels.count("colorbar") == 1 and sum(lab.startswith("channel") for lab in labels) == 32
    framed = fig.axes[9]
    assert framed.spines["top"].get_visible() and not fig.axes[8].spines["top"].get_visible()
    # the chosen map's colours are the widget's: the layer's colour map and limits
    image = framed.get_images()[0]
    assert image.get_cmap().name == ex.canvas.meta["layers"][3]["cmap"]
    ex.view.value = "single"
    ex.perturb_controls["rotate"].value = 10
    single = ex.snapshot()
    labels = [ax.get_label() for ax in single.axes]
    assert {"input", "channel 9", "filter 9", "colorbar"} <= set(labels)
    assert "input rotated 10°" in " ".join(t.get_text() for t in single.texts)


# --------------------------------------------------------------------------- doctor

def test_doctor_finds_a_missing_anywidget_frontend(monkeypatch, tmp_path):
    monkeypatch.setattr(selfcheck, "_in_kernel", lambda: False)
    monkeypatch.setattr(selfcheck, "_labextension_paths", lambda: [tmp_path])
    check = selfcheck._check_anywidget()
    assert check.status == selfcheck.FAIL and "anywidget" in check.detail
    assert "pip install anywidget" in check.fix and "restart JupyterLab" in check.fix
    (tmp_path / "anywidget").mkdir()
    (tmp_path / "anywidget" / "package.json").write_text("{}")
    assert selfcheck._check_anywidget().status == selfcheck.OK
