"""Lesson 08's checkers give the verdict a correct checker gives: the wrong passes and wrong
fails once seen (a hook not removed in `finally:`, a figure of rescaled or pcolormesh maps,
2.25 for 2.2489, whole numbers in any form) each have a test here."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import featviz
from featviz.exercises import lesson08

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def verdict(capsys, exercise, answer) -> tuple[bool, str]:
    ok = bool(exercise.check(answer))
    return ok, capsys.readouterr().out


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# --------------------------------------------------------------------------- q1: layer_maps

def _hooked(remove_in_finally: bool):
    def layer_maps(model, images, layer):
        store = {}
        handle = dict(model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: store.update(maps=o.detach()))
        if remove_in_finally:
            try:
                with torch.no_grad():
                    model(images)
            finally:
                handle.remove()
        else:
            with torch.no_grad():
                model(images)
            handle.remove()
        return store["maps"]
    return layer_maps


def test_q1_hook_removed_after_the_pass_but_not_in_finally_is_wrong(capsys):
    ok, out = verdict(capsys, lesson08.q1, _hooked(remove_in_finally=False))
    assert not ok
    assert "raises an error" in out and "finally:" in out


def test_q1_hook_removed_in_finally_is_right(capsys):
    ok, out = verdict(capsys, lesson08.q1, _hooked(remove_in_finally=True))
    assert ok, out


def test_q1_featviz_solution_is_right(capsys):
    ok, out = verdict(capsys, lesson08.q1,
                      lambda model, images, layer: featviz.activations(model, images, [layer])[layer])
    assert ok, out


def test_q1_mode_changes_are_caught(capsys):
    def eval_then_train(model, images, layer):
        model.train()
        try:
            return featviz.activations(model, images, [layer])[layer]
        finally:
            model.eval()

    def left_in_train(model, images, layer):
        maps = featviz.activations(model, images, [layer])[layer]
        model.train()
        return maps

    ok, out = verdict(capsys, lesson08.q1, eval_then_train)
    assert not ok and "train mode" in out and "batch-norm statistics" in out
    ok, out = verdict(capsys, lesson08.q1, left_in_train)
    assert not ok and "train mode" in out


def test_q1_the_failing_pass_leaves_the_model_given_intact():
    model, images = lesson08.tiny_rgb(), lesson08.rgb_images(3)
    before = model(images)
    lesson08.q1.check(_hooked(remove_in_finally=False))
    assert torch.equal(model(images), before)
    assert not any(m._forward_hooks for m in model.modules())


# --------------------------------------------------------------------------- q2: plot_layer

def _maps(model, images, layer):
    return featviz.activations(model, images, [layer])[layer]


def _grid(maps, index, draw):
    n = maps.shape[1]
    fig, axes = plt.subplots(1, n, squeeze=False)
    for c, ax in enumerate(axes[0]):
        draw(ax, maps[index, c].numpy())
    return fig


def test_q2_maps_rescaled_to_0_1_are_right(capsys):
    def plot_layer(model, images, layer, index=0):
        maps = _maps(model, images, layer)
        lo = maps.amin(dim=(2, 3), keepdim=True)
        hi = maps.amax(dim=(2, 3), keepdim=True)
        return _grid((maps - lo) / (hi - lo).clamp_min(1e-12), index, lambda ax, a: ax.imshow(a))

    ok, out = verdict(capsys, lesson08.q2, plot_layer)
    assert ok, out


def test_q2_pcolormesh_is_right(capsys):
    def plot_layer(model, images, layer, index=0):
        return _grid(_maps(model, images, layer), index, lambda ax, a: ax.pcolormesh(a))

    ok, out = verdict(capsys, lesson08.q2, plot_layer)
    assert ok, out


def test_q2_featviz_solution_is_right(capsys):
    def plot_layer(model, images, layer, index=0):
        return featviz.plot_feature_maps(_maps(model, images, layer), index=index)

    ok, out = verdict(capsys, lesson08.q2, plot_layer)
    assert ok, out


def test_q2_wrong_figures_stay_wrong(capsys):
    def negated(model, images, layer, index=0):
        return _grid(-_maps(model, images, layer), index, lambda ax, a: ax.imshow(a))

    def half_the_channels(model, images, layer, index=0):
        maps = _maps(model, images, layer)
        return _grid(maps[:, : maps.shape[1] // 2], index, lambda ax, a: ax.pcolormesh(a))

    def other_image(model, images, layer, index=0):
        return _grid(_maps(model, images, layer), 0, lambda ax, a: ax.pcolormesh(a))

    for fn, says in ((negated, "are not in the figure"),
                     (half_the_channels, "are not in the figure"),
                     (other_image, "the maps of image 0")):
        ok, out = verdict(capsys, lesson08.q2, fn)
        assert not ok and says in out, (fn.__name__, out)


# --------------------------------------------------------------------------- q3, p1, p2: numbers

def test_q3_rounded_answers_are_right_and_near_misses_are_close(capsys):
    exact = lesson08.q3.reference()
    for answer in (2.25, round(exact, 3), np.float32(exact), torch.tensor(exact), exact):
        ok, out = verdict(capsys, lesson08.q3, answer)
        assert ok, (answer, out)
    ok, out = verdict(capsys, lesson08.q3, 2.2)
    assert not ok and "close" in out
    ok, out = verdict(capsys, lesson08.q3, 2.43)                  # green channel, rounded
    assert not ok and "green channel" in out
    ok, out = verdict(capsys, lesson08.q3, 2.0)
    assert not ok and "close" not in out


@pytest.mark.parametrize("name", ["p1", "p2"])
def test_whole_number_predictions_accept_every_form(capsys, name):
    exercise = getattr(lesson08, name)
    right = exercise.reference()
    assert isinstance(right, int)
    for answer in (right, np.int64(right), torch.tensor(right), float(right)):
        ok, out = verdict(capsys, exercise, answer)
        assert ok, (type(answer).__name__, out)
    ok, out = verdict(capsys, exercise, right + 0.5)
    assert not ok and "number, not float" in out


def test_references_are_computed_from_the_architecture():
    resnet = torchvision_resnet18()
    assert lesson08.p1.reference() == sum(isinstance(m, torch.nn.Conv2d) for m in resnet.modules())
    rf = featviz.receptive_field(resnet, "layer4", input_size=(3, 224, 224))
    assert lesson08.p2.reference() == rf.stride[0]


def torchvision_resnet18():
    torchvision = pytest.importorskip("torchvision")
    return torchvision.models.resnet18(weights=None).eval()
