"""The static figures, checked through what they draw (Agg backend, no pyplot)."""
from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

import featviz
from featviz import plots
from featviz._style import POSITIVE_CMAP, SIGNED_CMAP
from featviz.plots import (
    plot_comparison,
    plot_feature_maps,
    plot_filters,
    plot_images,
    plot_overlay,
)


# ---------------------------------------------------------------- helpers

def axes_by(fig: Figure, prefix: str) -> list:
    return [ax for ax in fig.axes if ax.get_label().startswith(prefix)]


def channel_axes(fig: Figure) -> list:
    return axes_by(fig, "channel ")


def channel_of(ax) -> int:
    return int(ax.get_label().split()[-1])


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def fig_text(fig: Figure) -> str:
    return " ".join(t.get_text() for t in fig.texts)


def png_size(fig: Figure) -> tuple[int, int]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return Image.open(io.BytesIO(buf.getvalue())).size


@pytest.fixture(scope="module")
def digits():
    torch.manual_seed(0)
    # MNIST-like: pixels in [0, 1], normalised as the model expects
    return featviz.mnist_normalize(torch.rand(3, 1, 28, 28))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return featviz.SimpleCNN().eval()


def positive_maps(c: int, h: int = 6, w: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    # + 0.1 keeps every channel alive, so the dead-channel logic is not triggered by chance
    return torch.rand(c, h, w, generator=g) + 0.1


# ---------------------------------------------------------------- plot_feature_maps

@pytest.mark.parametrize("channels", [1, 7, 16, 32, 512])
def test_one_panel_per_channel_and_no_spare_axes(channels):
    maps = positive_maps(channels, 5, 5)
    fig = plot_feature_maps(maps)
    assert isinstance(fig, Figure)
    panels = channel_axes(fig)
    assert sorted(channel_of(ax) for ax in panels) == list(range(channels))
    # the maps and one colour bar: nothing else, in particular no empty panels
    assert len(fig.axes) == channels + 1
    assert len(axes_by(fig, "colorbar")) == 1
    for ax in panels[:3] + panels[-3:]:
        (im,) = ax.get_images()
        np.testing.assert_allclose(im.get_array(), maps[channel_of(ax)].numpy())


def test_seven_channels_fill_two_rows_of_four():
    fig = plot_feature_maps(positive_maps(7))
    panels = channel_axes(fig)
    lefts = sorted({round(ax.get_position().x0, 4) for ax in panels})
    bottoms = sorted({round(ax.get_position().y0, 4) for ax in panels}, reverse=True)
    assert len(lefts) == 4 and len(bottoms) == 2
    top_row = [ax for ax in panels if round(ax.get_position().y0, 4) == bottoms[0]]
    assert sorted(channel_of(ax) for ax in top_row) == [0, 1, 2, 3]


def test_panels_are_labelled_with_their_channel_number():
    fig = plot_feature_maps(positive_maps(16))
    for ax in channel_axes(fig):
        assert ax.get_title() == str(channel_of(ax))


def test_figure_renders_to_a_png_of_its_size():
    fig = plot_feature_maps(positive_maps(16))
    w, h = fig.get_size_inches() * fig.dpi
    assert png_size(fig) == (round(w), round(h))
    assert fig.canvas.manager is None  # built without pyplot: no window, no global state


def test_shared_norm_uses_one_scale_and_a_matching_colorbar():
    maps = torch.randn(8, 6, 6)
    fig = plot_feature_maps(maps, norm="shared")
    top = float(maps.abs().max())
    for ax in channel_axes(fig):
        (im,) = ax.get_images()
        assert im.get_clim() == pytest.approx((-top, top))
        assert im.get_cmap().name == SIGNED_CMAP
    (cax,) = axes_by(fig, "colorbar")
    assert cax.get_ylim() == pytest.approx((-top, top))


def test_per_map_norm_stretches_each_map_to_its_own_range():
    maps = positive_maps(6)
    maps[2] *= 10  # one loud channel must not dim the others
    fig = plot_feature_maps(maps, norm="per-map")
    assert axes_by(fig, "colorbar") == []
    for ax in channel_axes(fig):
        (im,) = ax.get_images()
        assert im.get_clim() == pytest.approx((0.0, float(maps[channel_of(ax)].max())))


def test_per_map_norm_keeps_signed_maps_centred_at_zero():
    maps = torch.randn(4, 5, 5)
    fig = plot_feature_maps(maps, norm="per-map")
    for ax in channel_axes(fig):
        top = float(maps[channel_of(ax)].abs().max())
        (im,) = ax.get_images()
        assert im.get_clim() == pytest.approx((-top, top))


def test_signed_maps_get_diverging_and_relu_maps_sequential_colours(model, digits):
    with torch.no_grad():
        conv = model.conv1(digits)
    signed = plot_feature_maps(conv, index=0)
    after_relu = plot_feature_maps(torch.relu(conv), index=0)
    im_signed = channel_axes(signed)[0].get_images()[0]
    im_relu = channel_axes(after_relu)[0].get_images()[0]
    assert im_signed.get_cmap().name == SIGNED_CMAP
    lo, hi = im_signed.get_clim()
    assert lo == pytest.approx(-hi) and hi > 0
    assert im_relu.get_cmap().name == POSITIVE_CMAP
    assert im_relu.get_clim()[0] == 0.0


def test_cmap_can_be_overridden():
    fig = plot_feature_maps(positive_maps(4), cmap="viridis")
    assert channel_axes(fig)[0].get_images()[0].get_cmap().name == "viridis"


@pytest.mark.parametrize("norm", ["shared", "per-map"])
def test_dead_channel_is_marked_not_stretched(norm):
    maps = positive_maps(5)
    maps[3] = 0.0
    fig = plot_feature_maps(maps, norm=norm)
    (dead,) = [ax for ax in channel_axes(fig) if channel_of(ax) == 3]
    assert dead.get_images() == []  # nothing drawn that could look like activity
    assert "dead" in texts(dead)
    assert "1 dead" in fig_text(fig)
    alive = [ax for ax in channel_axes(fig) if channel_of(ax) != 3]
    assert all(len(ax.get_images()) == 1 and "dead" not in texts(ax) for ax in alive)


def test_input_image_panel_appears_only_when_given(digits):
    maps = positive_maps(4, 24, 24)
    without = plot_feature_maps(maps)
    assert axes_by(without, "input") == []
    fig = plot_feature_maps(maps, image=digits[1], mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    (ax,) = axes_by(fig, "input")
    (im,) = ax.get_images()
    shown = np.asarray(im.get_array())
    assert shown.shape == (28, 28)
    # with the normalisation given, normalised MNIST input is shown as its pixels in [0, 1]
    np.testing.assert_allclose(shown, featviz.mnist_denormalize(digits[1])[0].numpy(), atol=1e-5)
    assert len(fig.axes) == 4 + 1 + 1  # maps, input, colour bar


def test_batch_with_index_picks_the_image_and_its_input(digits):
    maps = torch.rand(3, 4, 6, 6) + 0.1
    fig = plot_feature_maps(maps, index=2, image=digits, mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    for ax in channel_axes(fig):
        np.testing.assert_allclose(ax.get_images()[0].get_array(), maps[2, channel_of(ax)].numpy())
    shown = np.asarray(axes_by(fig, "input")[0].get_images()[0].get_array())
    np.testing.assert_allclose(shown, featviz.mnist_denormalize(digits[2])[0].numpy(), atol=1e-5)
    assert "image 2" in fig_text(fig) and " of 3" not in fig_text(fig)


def test_numpy_and_torch_inputs_draw_the_same():
    maps = torch.randn(6, 5, 5)
    a = plot_feature_maps(maps)
    b = plot_feature_maps(maps.numpy().astype(np.float64))
    for ax_a, ax_b in zip(channel_axes(a), channel_axes(b)):
        np.testing.assert_allclose(ax_a.get_images()[0].get_array(), ax_b.get_images()[0].get_array())
        assert ax_a.get_images()[0].get_clim() == pytest.approx(ax_b.get_images()[0].get_clim())


def test_tensor_that_requires_grad_is_detached(model, digits):
    out = model.conv1(digits)  # no torch.no_grad(): out requires grad
    assert out.requires_grad
    fig = plot_feature_maps(out, index=1)
    ax = channel_axes(fig)[0]
    np.testing.assert_allclose(ax.get_images()[0].get_array(), out[1, 0].detach().numpy(), rtol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensors_are_moved_to_the_cpu():
    maps = torch.randn(2, 8, 6, 6, device="cuda", requires_grad=True) * 1.0
    fig = plot_feature_maps(maps, index=1, image=torch.rand(2, 1, 28, 28, device="cuda"))
    assert len(channel_axes(fig)) == 8
    np.testing.assert_allclose(channel_axes(fig)[0].get_images()[0].get_array(),
                               maps[1, 0].detach().cpu().numpy(), rtol=1e-6)
    w = torch.nn.Conv2d(1, 4, 5).cuda()
    assert len(axes_by(plot_filters(w), "filter ")) == 4
    cam = plot_overlay(torch.rand(1, 28, 28, device="cuda"), torch.rand(7, 7, device="cuda"))
    assert len(axes_by(cam, "overlay")) == 1


def test_top_k_shows_the_most_active_channels_with_real_numbers():
    maps = positive_maps(32)
    loud = [21, 4, 30]
    for rank, c in enumerate(loud):
        maps[c] += 10.0 - rank
    fig = plot_feature_maps(maps, top_k=3)
    panels = channel_axes(fig)
    assert [ax.get_title() for ax in panels] == [str(c) for c in loud]  # most active first
    assert "top 3 of 32" in fig_text(fig)


def test_channels_option_shows_exactly_those():
    fig = plot_feature_maps(positive_maps(16), channels=[9, 2])
    assert [channel_of(ax) for ax in channel_axes(fig)] == [9, 2]


def test_wide_layers_above_max_channels_show_the_most_active():
    fig = plot_feature_maps(positive_maps(40, 3, 3), max_channels=10)
    assert len(channel_axes(fig)) == 10
    assert "top 10 of 40" in fig_text(fig)


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match=r"\(C, H, W\).*got 2-D shape \(10, 120\).*Linear"):
        plot_feature_maps(torch.zeros(10, 120))
    with pytest.raises(ValueError, match="5-D"):
        plot_feature_maps(torch.zeros(1, 1, 2, 3, 3))
    with pytest.raises(TypeError, match=r"acts\[|maps\['conv1'\]"):
        plot_feature_maps({"conv1": torch.zeros(1, 2, 3, 3)})
    with pytest.raises(ValueError, match="index=5 is out of range.*0 to 1"):
        plot_feature_maps(torch.zeros(2, 3, 4, 4), index=5)
    with pytest.raises(ValueError, match="drop index="):
        plot_feature_maps(torch.zeros(3, 4, 4), index=1)
    with pytest.raises(ValueError, match="norm must be one of"):
        plot_feature_maps(torch.zeros(3, 4, 4), norm="global")
    with pytest.raises(ValueError, match="channel numbers 0 to 2"):
        plot_feature_maps(torch.zeros(3, 4, 4), channels=[5])
    with pytest.raises(TypeError, match="array of numbers"):
        plot_feature_maps(np.array([["a"]]))


# ---------------------------------------------------------------- plot_filters

def test_first_layer_filters_are_5x5_on_a_zero_centred_scale(model):
    fig = plot_filters(model.conv1)
    panels = axes_by(fig, "filter ")
    assert len(panels) == 16 and len(fig.axes) == 17
    top = float(model.conv1.weight.detach().abs().max())
    for ax in panels:
        (im,) = ax.get_images()
        k = int(ax.get_label().split()[-1])
        assert im.get_array().shape == (5, 5)
        np.testing.assert_allclose(im.get_array(), model.conv1.weight[k, 0].detach().numpy())
        assert im.get_cmap().name == SIGNED_CMAP
        assert im.get_clim() == pytest.approx((-top, top))


def test_deeper_filters_are_averaged_or_sliced_and_say_so(model):
    w = model.conv2.weight.detach()
    averaged = plot_filters(w)
    assert "averaged over their 16 input channels" in fig_text(averaged)
    first = axes_by(averaged, "filter ")[0]
    np.testing.assert_allclose(first.get_images()[0].get_array(), w[0].mean(0).numpy(), rtol=1e-5)
    sliced = plot_filters(w, in_channel=3)
    assert "input channel 3 of 16" in fig_text(sliced)
    np.testing.assert_allclose(axes_by(sliced, "filter ")[5].get_images()[0].get_array(),
                               w[5, 3].numpy())
    assert len(axes_by(sliced, "filter ")) == 32


def test_rgb_filters_are_drawn_in_colour():
    w = torch.randn(8, 3, 7, 7)
    fig = plot_filters(w)
    arr = np.asarray(axes_by(fig, "filter ")[0].get_images()[0].get_array())
    assert arr.shape == (7, 7, 3)
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert axes_by(fig, "colorbar") == []


def test_plot_filters_errors():
    with pytest.raises(ValueError, match="Linear"):
        plot_filters(torch.zeros(120, 512))
    with pytest.raises(ValueError, match="in_channel must be an input channel 0 to 15"):
        plot_filters(torch.zeros(4, 16, 3, 3), in_channel=16)
    with pytest.raises(TypeError, match="no weight"):
        plot_filters(torch.nn.ReLU())


# ---------------------------------------------------------------- plot_images

def test_images_grid_marks_wrong_predictions_in_red(digits):
    labels = torch.tensor([3, 1, 4])
    preds = torch.tensor([3, 7, 4])
    fig = plot_images(digits, labels, preds, mean=[featviz.MNIST_MEAN], std=[featviz.MNIST_STD])
    panels = axes_by(fig, "image ")
    assert len(panels) == 3 and len(fig.axes) == 3
    titles = [ax.title for ax in panels]
    assert titles[1].get_text() == "pred 7 (true 1)"
    assert titles[1].get_color() == plots.WRONG_COLOR
    assert titles[0].get_text() == "pred 3" and titles[0].get_color() != plots.WRONG_COLOR
    assert "1 wrong" in fig_text(fig)
    shown = np.asarray(panels[2].get_images()[0].get_array())
    np.testing.assert_allclose(shown, featviz.mnist_denormalize(digits[2])[0].numpy(), atol=1e-5)


def test_images_with_labels_only_and_limits(digits):
    fig = plot_images(digits, labels=[5, 6, 7])
    assert [ax.get_title() for ax in axes_by(fig, "image ")] == ["5", "6", "7"]
    many = plot_images(torch.rand(30, 1, 8, 8), max_images=12)
    assert len(axes_by(many, "image ")) == 12
    assert "first 12 of 30" in fig_text(many)
    with pytest.raises(ValueError, match="labels has 2 entries but there are 3 images"):
        plot_images(digits, labels=[1, 2])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        plot_images(torch.zeros(2, 5, 8, 8))


def test_rgb_images_in_unit_range_are_shown_as_they_are():
    images = torch.rand(2, 3, 10, 12)
    fig = plot_images(images)
    shown = np.asarray(axes_by(fig, "image ")[1].get_images()[0].get_array())
    np.testing.assert_allclose(shown, images[1].permute(1, 2, 0).numpy())


def test_without_normalisation_images_outside_0_1_are_rescaled_not_guessed(digits):
    # normalised digits, no mean/std given: stretched to [0, 1] over the batch,
    # whatever dataset they come from (no dataset's statistics are assumed)
    fig = plot_images(digits)
    shown = np.stack([np.asarray(ax.get_images()[0].get_array()) for ax in axes_by(fig, "image ")])
    lo, hi = float(digits.min()), float(digits.max())
    np.testing.assert_allclose(shown, ((digits[:, 0] - lo) / (hi - lo)).numpy(), atol=1e-5)
    assert shown.min() == 0.0 and shown.max() == 1.0


def test_mean_and_std_per_channel_undo_a_normalize_transform():
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    pixels = torch.rand(2, 3, 5, 6)
    normalised = (pixels - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    fig = plot_images(normalised, mean=mean, std=std)
    shown = np.asarray(axes_by(fig, "image ")[1].get_images()[0].get_array())
    np.testing.assert_allclose(shown, pixels[1].permute(1, 2, 0).numpy(), atol=1e-5)


def test_normalisation_arguments_are_checked_up_front(digits):
    with pytest.raises(ValueError, match="mean and std go together"):
        plot_images(digits, mean=0.5)
    with pytest.raises(ValueError, match="3 values.*1 channel"):
        plot_images(digits, mean=(0.1, 0.2, 0.3), std=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        plot_images(digits, mean=0.1, std=0.0)
    with pytest.raises(ValueError, match="featviz.MNIST_MEAN"):
        plot_feature_maps(positive_maps(2), image=digits[0], std=featviz.MNIST_STD)


def test_pixels_undone_beforehand_are_shown_exactly(digits):
    fig = plot_images(featviz.mnist_denormalize(digits))
    shown = np.asarray(axes_by(fig, "image ")[2].get_images()[0].get_array())
    np.testing.assert_allclose(shown, featviz.mnist_denormalize(digits[2])[0].numpy(), atol=1e-6)


# ---------------------------------------------------------------- plot_overlay

def test_overlay_upsamples_a_coarse_heatmap_to_the_image(digits):
    cam = torch.rand(1, 7, 7)
    fig = plot_overlay(digits[0], cam)
    (ax,) = axes_by(fig, "overlay")
    under, heat = ax.get_images()
    assert np.asarray(under.get_array()).shape == (28, 28)
    assert np.asarray(heat.get_array()).shape == (28, 28, 4)
    assert len(axes_by(fig, "input")) == 1
    assert len(axes_by(fig, "colorbar")) == 1


def test_overlay_dict_gives_side_by_side_panels_with_own_scales(digits):
    maps = {"saliency": torch.rand(28, 28) * 5, "Grad-CAM": torch.rand(4, 4),
            "signed": torch.randn(1, 28, 28)}
    fig = plot_overlay(digits[0], maps)
    panels = axes_by(fig, "overlay ")
    assert [ax.get_title() for ax in panels] == list(maps)
    bars = axes_by(fig, "colorbar")
    assert len(bars) == 3
    limits = [cax.get_xlim() for cax in bars]
    assert limits[0] == pytest.approx((0.0, float(maps["saliency"].max())))
    assert limits[2][0] == pytest.approx(-limits[2][1]) and limits[2][0] < 0


def test_overlay_on_rgb_images_and_alpha(digits):
    image = torch.rand(3, 32, 32)
    heat = torch.zeros(32, 32)
    heat[8:16, 8:16] = 1.0
    fig = plot_overlay(image, heat, alpha=0.5)
    under, top = axes_by(fig, "overlay")[0].get_images()
    assert np.asarray(under.get_array()).shape == (32, 32, 3)
    rgba = np.asarray(top.get_array())
    assert rgba[..., 3].max() == pytest.approx(0.5)  # strongest value at the given alpha
    assert rgba[0, 0, 3] == 0.0  # zero attribution: the image shows through
    with pytest.raises(ValueError, match="alpha"):
        plot_overlay(image, heat, alpha=2)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(1, H, W\)"):
        plot_overlay(image, torch.rand(2, 5, 5))


# ---------------------------------------------------------------- plot_comparison

def test_comparison_has_one_row_per_entry(model, digits):
    with torch.no_grad():
        conv = model.conv1(digits)
    entries = {"conv1": conv, "relu1": torch.relu(conv), "pool1": model.pool1(torch.relu(conv))}
    fig = plot_comparison(entries, index=1, image=digits)
    assert len(channel_axes(fig)) == 48
    assert len(axes_by(fig, "colorbar")) == 3  # one scale per row by default
    assert len(axes_by(fig, "input")) == 1
    for name in entries:
        assert name in fig_text(fig)
    # rows: 3 distinct heights, 16 panels each
    bottoms = {round(ax.get_position().y0, 4) for ax in channel_axes(fig)}
    assert len(bottoms) == 3
    cmaps = {ax.get_images()[0].get_cmap().name for ax in channel_axes(fig)[:16]}
    assert cmaps == {SIGNED_CMAP}
    pooled = [ax for ax in channel_axes(fig) if np.asarray(ax.get_images()[0].get_array()).shape == (12, 12)]
    assert len(pooled) == 16


def test_comparison_shared_scale_puts_every_row_on_one_scale():
    a, b = torch.rand(4, 5, 5), 10 * torch.rand(4, 5, 5)
    fig = plot_comparison({"untrained": a, "trained": b}, norm="shared")
    clims = {tuple(np.round(ax.get_images()[0].get_clim(), 6)) for ax in channel_axes(fig)}
    assert clims == {(0.0, round(float(b.max()), 6))}
    assert len(axes_by(fig, "colorbar")) == 1
    with pytest.raises(TypeError, match="dict"):
        plot_comparison([a, b])


# ---------------------------------------------------------------- import hygiene

def test_importing_plots_does_not_import_pyplot():
    code = ("import sys, featviz.plots; "
            "sys.exit(1 if 'matplotlib.pyplot' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ---------------------------------------------------------------- lesson 04 exercises

def _check_quietly(exercise, answer, capsys) -> tuple[bool, str]:
    ok = exercise.check(answer)
    return ok, capsys.readouterr().out


def test_lesson04_shape_exercises_follow_the_layers(capsys):
    from featviz.exercises import lesson04 as ex

    model = featviz.SimpleCNN()
    with torch.no_grad():
        pooled = model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 28, 28))))
    assert _check_quietly(ex.p1, tuple(pooled.shape[1:]), capsys)[0]
    ok, out = _check_quietly(ex.p1, (16, 24, 24), capsys)
    assert not ok and "conv1's size" in out
    with torch.no_grad():
        big = model.conv2(model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 56, 56)))))
    assert _check_quietly(ex.q4, big.shape[-1], capsys)[0]
    ok, out = _check_quietly(ex.q4, 8, capsys)
    assert not ok and "28 x 28" in out


def test_lesson04_stroke_images_are_bars():
    from featviz.exercises import lesson04 as ex

    horizontal, vertical = ex.stroke_images()
    assert horizontal.shape == vertical.shape == (3, 1, 28, 28)
    pixels = featviz.mnist_denormalize(horizontal[1, 0])
    rows = (pixels > 0.5).any(dim=1).nonzero().flatten()
    cols = (pixels > 0.5).any(dim=0).nonzero().flatten()
    assert len(rows) == 3 and len(cols) > 15  # wide and thin: horizontal
    assert torch.equal(vertical, horizontal.transpose(-1, -2))


@pytest.fixture(scope="module")
def pretrained_model():
    return featviz.pretrained()


def test_lesson04_horizontal_stroke_answer_comes_from_the_model(pretrained_model, capsys):
    from featviz.exercises import lesson04 as ex

    horizontal, vertical = ex.stroke_images()
    h = featviz.activations(pretrained_model, horizontal, ["relu1"])["relu1"].mean(dim=(0, 2, 3))
    v = featviz.activations(pretrained_model, vertical, ["relu1"])["relu1"].mean(dim=(0, 2, 3))
    clear = int(((h - v) > 0.1).sum())
    assert _check_quietly(ex.q3, clear, capsys)[0]
    # the lesson's own text names channels 5, 6, 7 and 14 for the top bar: all of them count
    assert {5, 6, 7, 14} <= set(ex.horizontal_channels())
    ok, out = _check_quietly(ex.q3, int(((v - h) > 0.1).sum()), capsys)
    assert not ok and "VERTICAL" in out


def test_lesson04_dead_channel_count(pretrained_model, capsys):
    from featviz.exercises import lesson04 as ex

    images, _ = featviz.digit_examples()
    relu2 = featviz.activations(pretrained_model, images, ["relu2"])["relu2"][3]
    dead = int((relu2.flatten(1).amax(dim=1) == 0).sum())
    assert _check_quietly(ex.q5, dead, capsys)[0]
    assert not _check_quietly(ex.q5, dead + 1, capsys)[0]


@pytest.mark.parametrize("draw", [
    lambda: featviz.plot_filters(featviz.SimpleCNN().conv2, ncols=16),
    lambda: featviz.plot_feature_maps(torch.rand(1, 32, 8, 8), ncols=32),
    lambda: featviz.plot_comparison({"a": torch.rand(32, 5, 5), "b": torch.rand(32, 5, 5)},
                                    ncols=32),
])
def test_a_long_row_of_panels_widens_the_figure_instead_of_shrinking_the_panels(draw):
    from featviz.plots import MIN_PANEL

    fig = draw()
    width, height = fig.get_size_inches()
    panels = [ax for ax in fig.axes if ax.get_images() and ax.get_label() != "<colorbar>"]
    sizes = [ax.get_position().width * width for ax in panels]
    assert len(panels) >= 32
    assert min(sizes) >= 0.95 * MIN_PANEL, (min(sizes), width)
