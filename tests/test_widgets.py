"""The explorer: the fast renderer (arrays -> PNG) and the widgets driven from Python."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import featviz
from featviz import render
from featviz.plots import POSITIVE_CMAP, SIGNED_CMAP, choose_cmap


# --------------------------------------------------------------------------- render


def _maps(seed: int = 0, shape=(6, 5, 7), signed: bool = False) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=shape).astype(np.float32)
    return m if signed else np.maximum(m, 0) + 0.01


def _tile(rgb: np.ndarray, maps: np.ndarray, k: int, style=render.GridStyle()) -> np.ndarray:
    """The pixels of tile ``k`` of a grid image, located by the layout."""
    n, h, w = maps.shape
    lay = render._layout(n, h, w, style)
    r, c = divmod(k, lay.cols)
    y, x = r * lay.py + lay.ty, c * lay.px + lay.tx
    return rgb[y:y + h * lay.scale, x:x + w * lay.scale]


@pytest.mark.parametrize("kind", ["rgb", "grey", "palette"])
def test_encode_png_round_trips_through_pillow(kind):
    rng = np.random.default_rng(1)
    if kind == "rgb":
        pix = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
        data, expected = render.encode_png(pix), pix
    elif kind == "grey":
        pix = rng.integers(0, 256, (13, 17), dtype=np.uint8)
        data, expected = render.encode_png(pix), np.repeat(pix[..., None], 3, axis=2)
    else:
        pal = rng.integers(0, 256, (256, 3), dtype=np.uint8)
        pix = rng.integers(0, 256, (13, 17), dtype=np.uint8)
        data, expected = render.encode_png(pix, pal), pal[pix]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (17, 13)
        np.testing.assert_array_equal(np.asarray(img.convert("RGB")), expected)


def test_encode_png_rejects_float_pixels_with_a_hint():
    with pytest.raises(TypeError, match="uint8"):
        render.encode_png(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        render.encode_png(np.zeros((4, 4, 4), np.uint8))


def test_grid_colours_match_matplotlib_and_tiles_are_crisp_blocks():
    maps = _maps()
    rgb = render.grid_rgb(maps)
    name, vmin, vmax = choose_cmap(maps)
    assert name == POSITIVE_CMAP
    cmap = matplotlib.colormaps[name]
    lay = render._layout(*maps.shape, render.GridStyle())
    s = lay.scale
    assert s >= 4, "small maps are enlarged"
    for k in (0, 3, 5):
        tile = _tile(rgb, maps, k).astype(int)
        # every map pixel became an s x s block of one colour
        blocks = tile.reshape(maps.shape[1], s, maps.shape[2], s, 3)
        assert (blocks == blocks[:, :1, :, :1]).all()
        expected = np.array(cmap((maps[k] - vmin) / (vmax - vmin))[..., :3]) * 255
        # 240 levels: within a level (about 1/240 of the range) of matplotlib's colour
        assert np.abs(blocks[:, 0, :, 0] - expected).max() <= 12


def test_signed_maps_use_the_diverging_map_with_zero_white():
    maps = _maps(signed=True)
    maps[2] = 0.0
    maps[2, 0, 0] = 1e-3  # alive, but essentially zero
    rgb = render.grid_rgb(maps)
    assert choose_cmap(maps)[0] == SIGNED_CMAP
    middle = _tile(rgb, maps, 2)[-1, -1].astype(int)  # a zero-valued pixel
    assert (middle > 225).all(), f"zero should be near white in {SIGNED_CMAP}, got {middle}"


def test_per_map_norm_brightens_a_weak_map():
    maps = _maps()
    maps[1] *= 0.01  # a weak channel
    shared = _tile(render.grid_rgb(maps, norm="shared"), maps, 1).astype(float)
    own = _tile(render.grid_rgb(maps, norm="per-map"), maps, 1).astype(float)
    assert own.mean() > shared.mean() + 40
    strong_shared = _tile(render.grid_rgb(maps, norm="shared"), maps, 0)
    assert strong_shared.mean() > shared.mean() + 20


def test_dead_channel_is_grey_hatched_like_the_static_figures():
    maps = _maps()
    maps[4] = 0.0
    tile = _tile(render.grid_rgb(maps), maps, 4)
    colours = {tuple(c) for c in tile.reshape(-1, 3)}
    assert colours == {(0xEC, 0xEC, 0xEC), (0xBD, 0xBD, 0xBD)}


def test_highlight_frames_the_chosen_tile_in_green():
    maps = _maps()
    green = np.array(render._FIXED[render.HIGHLIGHT])
    a = render.grid_rgb(maps, highlight=1)
    b = render.grid_rgb(maps, highlight=4)
    assert not np.array_equal(a, b)

    def green_where(rgb):
        ys, xs = np.nonzero((rgb == green).all(axis=2))
        return ys.mean(), xs.mean()

    lay = render._layout(*maps.shape, render.GridStyle())
    for k, rgb in ((1, a), (4, b)):
        r, c = divmod(k, lay.cols)
        y, x = green_where(rgb)
        assert r * lay.py <= y < (r + 1) * lay.py and c * lay.px <= x < (c + 1) * lay.px
    with pytest.raises(ValueError, match="0 to 5"):
        render.grid_rgb(maps, highlight=6)


def test_channel_numbers_are_written_above_the_tiles():
    maps = _maps()
    muted = np.array(render._FIXED[render.MUTED])
    plain = render.grid_rgb(maps, channels=[0, 1, 2, 3, 4, 5])
    other = render.grid_rgb(maps, channels=[10, 11, 12, 13, 14, 15])
    bare = render.grid_rgb(maps, style=render.GridStyle(labels=False))
    assert (plain == muted).all(axis=2).sum() > 20
    assert not (bare == muted).all(axis=2).any()
    assert bare.shape[0] < plain.shape[0]
    assert not np.array_equal(plain, other)


def test_grid_shape_follows_plots_grid_shape():
    maps = _maps(shape=(32, 8, 8))
    lay = render._layout(32, 8, 8, render.GridStyle())
    assert (lay.rows, lay.cols) == featviz.plots.grid_shape(32)
    rgb = render.grid_rgb(maps)
    assert rgb.shape == (lay.height, lay.width, 3)
    assert rgb.shape[1] > rgb.shape[0], "32 maps make a wide grid"


def test_render_grid_png_decodes_to_grid_rgb():
    maps = torch.from_numpy(_maps(shape=(16, 12, 12)))
    png = render.render_grid(maps, norm="per-map", highlight=7)
    np.testing.assert_array_equal(render.decode_png(png),
                                  render.grid_rgb(maps, norm="per-map", highlight=7))


def test_bad_maps_give_clear_errors():
    with pytest.raises(ValueError, match="pick one image"):
        render.grid_rgb(np.zeros((2, 3, 4, 4)))
    with pytest.raises(ValueError, match="empty"):
        render.grid_rgb(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="norm"):
        render.grid_rgb(_maps(), norm="log")
    with pytest.raises(ValueError, match="colour map"):
        render.grid_rgb(_maps(), cmap="no-such-map")


def test_single_view_shows_input_map_and_filter_side_by_side():
    rng = np.random.default_rng(3)
    fmap = np.maximum(rng.normal(size=(8, 8)), 0).astype(np.float32)
    image = rng.normal(size=(1, 28, 28)).astype(np.float32)
    alone = render.single_rgb(fmap)
    with_all = render.single_rgb(fmap, image=image, kernel=rng.normal(size=(16, 5, 5)))
    assert with_all.shape[1] > alone.shape[1] + 200
    # the map is large: at least 200 px wide, in whole-pixel blocks
    assert alone.shape[1] >= 200
    # the input is drawn in grey: a column of equal R, G, B values
    cap = render.GLYPH_H * 2 + 6
    patch = with_all[cap + 10:cap + 100, 20:60].astype(int)
    assert (patch[..., 0] == patch[..., 1]).all() and patch.std() > 10
    png = render.render_single(fmap, image=image, kernel=rng.normal(size=(1, 5, 5)))
    assert render.decode_png(png).shape[2] == 3


def test_text_mask_draws_digits_differently():
    assert render.text_mask("12").shape == (5, 7)
    assert not np.array_equal(render.text_mask("12"), render.text_mask("17"))
    assert render.text_mask("8", 2).shape == (10, 6)
    capped = render.add_caption(np.zeros((10, 10, 3), np.uint8), ["conv1 image 3"])
    assert capped.shape[0] > 10 and capped.shape[1] > 50


# --------------------------------------------------------------------------- explorer

widgets_mod = pytest.importorskip("featviz.widgets")


@pytest.fixture(scope="module")
def digits():
    return featviz.digit_examples()  # one test image per digit, labels 0..9


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


def _shown(ex) -> np.ndarray:
    return render.decode_png(ex.image.value)


def _expected_grid(model, images, i, layer, channel, norm="shared"):
    with featviz.capture(model, [layer]) as acts:
        model(images[i:i + 1])
    return render.grid_rgb(acts[layer][0], norm=norm, highlight=channel)


def test_explorer_shows_what_capture_and_render_give(model, digits):
    images, labels = digits
    ex = featviz.explorer(model, images, labels, snapshots=None)
    assert ex.ok and ex.message.value == ""
    np.testing.assert_array_equal(_shown(ex), _expected_grid(model, images, 0, "conv1", 0))
    steps = [("image_slider", 3), ("filter_slider", 5), ("layer_dropdown", "conv2"),
             ("filter_slider", 17), ("layer_dropdown", "relu2"), ("image_slider", 8)]
    before = ex.image.value
    for control, value in steps:
        getattr(ex, control).value = value
        assert ex.image.value != before, f"setting {control} to {value!r} changed nothing"
        before = ex.image.value
        s = ex.state
        np.testing.assert_array_equal(
            _shown(ex), _expected_grid(model, images, s["image"], s["layer"], s["channel"]))
    assert ex.state == {"image": 8, "layer": "relu2", "channel": 17, "view": "grid",
                        "norm": "shared", "snapshot": 0}


def test_layer_dropdown_lists_the_layers_with_feature_maps(model, digits):
    ex = featviz.explorer(model, *digits, snapshots=None)
    values = [v for _, v in ex.layer_dropdown.options]
    table = featviz.layers(model)
    expected = [row.name for row in table.rows if row.shape.count(",") == 3]
    assert values == expected == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    assert set(values) <= set(table.names)


def test_filter_slider_range_follows_the_layer(model, digits):
    ex = featviz.explorer(model, *digits, snapshots=None)
    assert (ex.filter_slider.min, ex.filter_slider.max) == (0, 15)
    ex.layer_dropdown.value = "conv2"
    assert ex.filter_slider.max == 31
    ex.filter_slider.value = 25
    ex.layer_dropdown.value = "pool1"
    assert ex.filter_slider.max == 15 and ex.filter_slider.value == 15
    np.testing.assert_array_equal(_shown(ex), _expected_grid(model, digits[0], 0, "pool1", 15))
    ex.layer_dropdown.value = "relu2"
    assert ex.filter_slider.max == 31 and ex.filter_slider.value == 15


def test_norm_toggle_switches_to_per_map_scaling(model, digits):
    images, labels = digits
    ex = featviz.explorer(model, images, labels, snapshots=None, layer="relu2")
    shared = ex.image.value
    ex.norm.value = "per-map"
    assert ex.image.value != shared
    np.testing.assert_array_equal(
        _shown(ex), _expected_grid(model, images, 0, "relu2", 0, norm="per-map"))


def test_single_view_shows_the_map_with_its_filter_and_input(model, digits):
    images, labels = digits
    ex = featviz.explorer(model, images, labels, snapshots=None)
    ex.layer_dropdown.value = "relu1"  # traced back to conv1's filters
    ex.filter_slider.value = 6
    ex.image_slider.value = 4
    grid = ex.image.value
    ex.view.value = "single"
    assert ex.image.value != grid
    acts = featviz.activations(model, images[4:5], ["relu1"])
    maps = acts["relu1"][0].numpy()
    name, vmin, vmax = choose_cmap(maps)
    expected = render.single_rgb(maps[6], image=images[4], kernel=model.conv1.weight[6],
                                 cmap=name, vmin=vmin, vmax=vmax,
                                 captions=("input", "relu1 #6", "filter"))
    np.testing.assert_array_equal(_shown(ex), expected)
    m = maps[6]
    for word, value in (("min", m.min()), ("max", m.max()), ("mean", m.mean())):
        assert f"{word} {float(value):.3g}" in ex.info.value
    one = ex.image.value
    ex.filter_slider.value = 7
    assert ex.image.value != one
    assert widgets_mod.find_kernel_layer(model, "pool2", 32) == "conv2"
    assert widgets_mod.find_kernel_layer(model, "conv1", 16) == "conv1"


def test_prediction_and_confidence_are_shown(model, digits):
    images, labels = digits
    ex = featviz.explorer(model, images, labels, snapshots=None)
    for i in (0, 6):
        ex.image_slider.value = i
        with torch.no_grad():
            prob = torch.softmax(model(images[i:i + 1]), 1)[0]
        k = int(prob.argmax())
        assert f"predicted <b>{k}</b> ({100 * float(prob[k]):.1f}% sure)" in ex.info.value
        assert f"label {int(labels[i])}" in ex.info.value
    named = featviz.explorer(model, images, labels, snapshots=None,
                             classes=[f"digit-{d}" for d in range(10)])
    assert "predicted <b>digit-" in named.info.value


def test_digit_chooser_jumps_to_an_image_of_that_digit():
    images, labels = featviz.digit_batch([3, 1, 4, 1, 5, 9, 2, 6])
    torch.manual_seed(1)
    ex = featviz.explorer(featviz.SimpleCNN().eval(), images, labels, snapshots=None)
    assert [v for _, v in ex.digit_chooser.options] == [1, 2, 3, 4, 5, 6, 9]
    assert ex.digit_chooser.value == 3
    ex.digit_chooser.value = 1
    assert ex.image_slider.value == 1
    ex.image_slider.value = 2
    assert ex.digit_chooser.value == 4
    ex.digit_chooser.value = 1  # the next 1 after image 2 is image 3
    assert ex.image_slider.value == 3
    ex.digit_chooser.value = 3  # wraps around to the start
    assert ex.image_slider.value == 0
    no_labels = featviz.explorer(featviz.SimpleCNN().eval(), images, snapshots=None)
    assert no_labels.ok and no_labels.digit_chooser is None


def test_training_time_slider_shows_each_snapshot(digits):
    images, labels = digits
    snaps = []
    for seed in (0, 1, 2):
        torch.manual_seed(seed)
        snaps.append((f"step {seed * 100}", featviz.SimpleCNN().eval()))
    final = snaps[-1][1]
    ex = featviz.explorer(final, images, labels, snapshots=snaps, layer="conv2")
    assert ex.time_slider is not None
    assert ex.time_slider.value == 2 and ex.time_slider.label == "step 200"
    seen = {ex.image.value}
    for k in (0, 1):
        ex.time_slider.value = k
        assert ex.image.value not in seen
        seen.add(ex.image.value)
        np.testing.assert_array_equal(_shown(ex), _expected_grid(snaps[k][1], images, 0, "conv2", 0))
        assert f"training: step {k * 100}" in ex.info.value
    # a model that is not the last snapshot comes after the history
    torch.manual_seed(7)
    other = featviz.SimpleCNN().eval()
    ex2 = featviz.explorer(other, images, labels, snapshots=snaps)
    assert ex2.time_slider.label == "your model" and len(ex2.time_slider.options) == 4
    # "default" offers the shipped history only for the shipped model
    assert featviz.explorer(other, images, labels).time_slider is None


def test_activations_are_computed_once_per_image_and_snapshot(model, digits):
    images, labels = digits
    snaps = [("a", model), ("b", featviz.SimpleCNN().eval())]
    ex = featviz.explorer(snaps[1][1], images, labels, snapshots=snaps)
    misses = ex._cache.misses
    for layer in ("conv1", "conv2", "pool2"):
        ex.layer_dropdown.value = layer
        for c in range(3):
            ex.filter_slider.value = c
        ex.view.value = "single" if ex.view.value == "grid" else "grid"
        ex.norm.value = "per-map" if ex.norm.value == "shared" else "shared"
    assert ex._cache.misses == misses, "no forward pass for filter/layer/view/norm changes"
    ex.image_slider.value = 1
    ex.time_slider.value = 0
    assert ex._cache.misses == misses + 2
    ex.image_slider.value = 0
    ex.image_slider.value = 1
    ex.time_slider.value = 1
    assert ex._cache.misses == misses + 3  # (0, a) was new; the others were cached


def test_snapshot_is_a_still_picture_of_the_current_state(model, digits):
    images, labels = digits
    ex = featviz.explorer(model, images, labels, snapshots=None, layer="conv2")
    ex.filter_slider.value = 9
    still = ex.snapshot()
    assert still.format == "png"
    pic = render.decode_png(still.data)
    grid = _shown(ex)
    assert pic.shape[0] > grid.shape[0]  # the caption sits above the picture
    np.testing.assert_array_equal(pic[-grid.shape[0]:, :grid.shape[1]], grid)
    assert any("conv2" in line and "filter 9" in line for line in ex.caption())
    plain = render.decode_png(ex.snapshot(caption=False).data)
    np.testing.assert_array_equal(plain, grid)


class _NoConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x):
        return self.fc(self.flatten(x))


def _children_types(ex):
    return [type(w).__name__ for w in ex.children]


@pytest.mark.parametrize("make, words", [
    (lambda d: featviz.explorer(_NoConv(), *d), "no layer with feature maps"),
    (lambda d: featviz.explorer(featviz.SimpleCNN(), torch.zeros(0, 1, 28, 28)), "empty"),
    (lambda d: featviz.explorer(featviz.SimpleCNN(), torch.zeros(2, 3, 28, 28)),
     "could not run on image 0"),
    (lambda d: featviz.explorer(featviz.SimpleCNN(), torch.zeros(1, 28, 28)), "unsqueeze"),
    (lambda d: featviz.explorer("resnet", *d), "torch.nn.Module"),
    (lambda d: featviz.explorer(featviz.SimpleCNN(), *d, layer="fc1"), "no feature maps"),
    (lambda d: featviz.explorer(featviz.SimpleCNN(), d[0], d[1][:3]), "3 labels for 10 images"),
])
def test_bad_states_give_a_message_not_a_traceback(digits, make, words):
    ex = make(digits)
    assert not ex.ok
    assert words in html_text(ex.message.value)
    assert "cannot start" in ex.message.value
    assert ex.message in ex.children and "Image" not in _children_types(ex)
    assert ex.state == {}


def html_text(value: str) -> str:
    import html as _html

    return _html.unescape(value)


def test_a_failing_snapshot_shows_a_message_when_chosen(model, digits):
    class Other(nn.Module):  # another architecture: no conv2
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 16, 5)

        def forward(self, x):
            return self.conv1(x)

    ex = featviz.explorer(model, *digits, snapshots=[("odd", Other()), ("final", model)],
                          layer="conv2")
    shown = ex.image.value
    ex.time_slider.value = 0  # must not raise into the notebook
    assert "snapshot 'odd' could not run" in html_text(ex.message.value)
    assert ex.image.value == shown
    ex.time_slider.value = 1
    assert ex.message.value == ""


# --------------------------------------------------------------------------- lesson 05


def test_lesson05_checkers_follow_the_model(capsys):
    from featviz.exercises import lesson05 as ex

    model = featviz.pretrained()
    images, labels = featviz.widgets.default_images()
    assert labels[:10].tolist() == list(range(10))

    # q1: the accepted filters are those whose response to 1s is a sliver of the rest
    x, y = featviz.mnist_tensors(train=False)
    means = featviz.activations(model, x[:ex.SAMPLE], ["relu2"])["relu2"].mean(dim=(2, 3))
    ones, others = means[y[:ex.SAMPLE] == 1].mean(0), means[y[:ex.SAMPLE] != 1].mean(0)
    accepted = ex.ignoring_one()
    assert accepted, "the trained model should have filters that ignore 1s"
    assert all(ones[c] < 0.1 * others[c] for c in accepted)
    seeing = int((ones / others.clamp_min(1e-12)).argmax())
    assert ex.q1.check(accepted[0]) and not ex.q1.check(seeing) and not ex.q1.check(32)

    # q2: the strongest relu2 filter of image 0
    strongest = int(featviz.activations(model, images[:1], ["relu2"])["relu2"][0]
                    .mean(dim=(1, 2)).argmax())
    assert ex.q2.check(strongest) and not ex.q2.check((strongest + 1) % 32)

    # q3: a label of the time slider; "init" gets nothing right
    right = ex.first_all_right()
    snaps = featviz.pretrained_snapshots()
    k = [label for label, _ in snaps].index(right)
    with torch.no_grad():
        assert all((m(images[:10]).argmax(1) == labels[:10]).all() for _, m in snaps[k:])
        assert not (snaps[k - 1][1](images[:10]).argmax(1) == labels[:10]).all()
    assert ex.q3.check(right) and ex.q3.check(right.upper()) and ex.q3.check(k)
    assert not ex.q3.check("init") and not ex.q3.check("epoch 99")

    # q4: hatched maps of the 1
    dead = int((featviz.activations(model, images[1:2], ["relu2"])["relu2"][0]
                .flatten(1).amax(1) == 0).sum())
    assert ex.q4.check(dead) and not ex.q4.check(dead + 1)
    out = capsys.readouterr().out
    assert "correct!" in out and "not quite" in out


def test_exploring_leaves_a_training_model_as_it_was(digits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 26 * 26, 10))
    model.train()
    stats = model[1].running_mean.clone()
    ex = featviz.explorer(model, *digits, snapshots=None)
    assert ex.ok and [v for _, v in ex.layer_dropdown.options] == ["0", "1", "2"]
    ex.image_slider.value = 5
    assert model.training and model[1].training
    assert torch.equal(model[1].running_mean, stats), "batch-norm statistics were updated"
    # shown in eval mode: what capture gives for the model in eval mode
    model.eval()
    expected = _expected_grid(model, digits[0], 5, "0", 0)
    np.testing.assert_array_equal(_shown(ex), expected)


def test_default_snapshots_are_the_shipped_history_of_the_shipped_model(digits):
    shipped = featviz.pretrained_snapshots()
    ex = featviz.explorer(featviz.pretrained(), *digits)
    assert ex.time_slider is not None
    assert [label for label, _ in ex.time_slider.options] == [label for label, _ in shipped]
    assert ex.time_slider.value == len(shipped) - 1
    ex.time_slider.value = 0  # "init": random weights give other maps
    np.testing.assert_array_equal(_shown(ex), _expected_grid(shipped[0][1], digits[0], 0, "conv1", 0))


def test_a_snapshots_record_from_fit_drives_the_time_slider(digits):
    from featviz.training import SnapshotInfo, Snapshots

    torch.manual_seed(3)
    model = featviz.SimpleCNN().eval()
    record = Snapshots()
    record(model, SnapshotInfo("init", 0, 0.0))
    with torch.no_grad():
        model.conv1.weight.mul_(-1)  # a visible change, as training would make
    record(model, SnapshotInfo("epoch 1", 100, 1.0))
    ex = featviz.explorer(model, *digits, snapshots=record)
    assert [label for label, _ in ex.time_slider.options] == ["init", "epoch 1"]
    last = ex.image.value
    ex.time_slider.value = 0
    assert ex.image.value != last
