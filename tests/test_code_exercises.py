"""Code exercises: the learner writes a function and ``qN.check(fn)`` says what is wrong.

Every code exercise's reference solution (its ``solution()`` text, executed) passes; typical
wrong solutions get their own message; a stub still holding ``...`` is "not answered"; an
error in the learner's code is reported with its line, never as a traceback. Every
``solution()`` of every exercise, value and predict ones included, runs and passes its check.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import math
import pkgutil
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import featviz
import featviz.exercises as exercises
from featviz.exercises import (Exercise, HookSpy, ModeGuard, Questionnaire, Reading, Wrong,
                               expect_close, is_stub, lesson01, lesson02, lesson03, lesson04,
                               lesson05, lesson06, lesson07, lesson08)

LESSONS = [importlib.import_module(f"featviz.exercises.{info.name}")
           for info in pkgutil.iter_modules(exercises.__path__) if info.name.startswith("lesson")]


def exercises_of(module) -> list[Exercise]:
    return [v for v in vars(module).values() if isinstance(v, Exercise)]


def verdict(capsys, exercise: Exercise, answer) -> tuple[bool, str]:
    capsys.readouterr()
    ok = exercise.check(answer)
    return ok, capsys.readouterr().out


def assert_wrong(capsys, exercise: Exercise, answer, *expected: str) -> None:
    ok, out = verdict(capsys, exercise, answer)
    assert not ok and "not quite" in out, out
    for text in expected:
        assert text in out, out


def quiet(fn, *args):
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args)


# --------------------------------------------------------------------------- namespaces

@lru_cache(maxsize=None)
def namespace(lesson: str) -> dict:
    """What the lesson's notebook has defined when its exercises come: the names the
    solutions use."""
    torch.manual_seed(0)
    module = importlib.import_module(f"featviz.exercises.{lesson}")
    ns = {"featviz": featviz, "torch": torch, "F": F, "nn": nn, "math": math, "np": np,
          "ex": module}
    with contextlib.redirect_stdout(io.StringIO()):
        images, labels = featviz.digit_examples()
        if lesson == "lesson00":
            ns["model"] = featviz.pretrained()
            ns["acts"] = featviz.activations(ns["model"], images, ["conv1"])
        elif lesson == "lesson01":
            ns["test"] = featviz.load_mnist(train=False)
            ns["image"] = ns["test"][0][0]
        elif lesson == "lesson02":
            ns["model"] = featviz.SimpleCNN()
        elif lesson == "lesson04":
            ns["model"] = featviz.pretrained()
            ns["acts"] = featviz.activations(ns["model"], images, ["conv1", "relu1", "relu2"])
            ns["horizontal"], ns["vertical"] = module.stroke_images()
        elif lesson in ("lesson05", "lesson06"):
            ns["model"] = featviz.pretrained()
        elif lesson == "lesson07":
            ns["test_images"], ns["test_labels"] = featviz.mnist_tensors(train=False)
            ns["model"] = featviz.pretrained()
            ns["pred"], _ = featviz.predict(ns["model"], ns["test_images"])
        elif lesson == "lesson09":
            ns["test_images"], ns["test_labels"] = featviz.mnist_tensors(train=False)
            ns["model"] = featviz.pretrained()
        elif lesson == "lesson08":
            from torchvision.models import resnet18

            ns["model"] = resnet18(weights=None).eval()
            ns["acts"] = featviz.activations(ns["model"], torch.zeros(1, 3, 224, 224), ["layer4"])
    return ns


def run_solution(module, exercise: Exercise) -> object:
    ns = dict(namespace(module.__name__.rsplit(".", 1)[1]))
    exec(exercise.solution_text, ns)   # noqa: S102 - the solution is the course's own code
    assert "answer" in ns, f"{exercise.name}'s solution does not set `answer`"
    return ns["answer"]


ALL = [pytest.param(m, e, id=f"{m.__name__.rsplit('.', 1)[1]}.{e.name}")
       for m in LESSONS for e in exercises_of(m)]
CODE = [p for p in ALL if p.values[1].kind == "code"]


@pytest.mark.parametrize("module, exercise", ALL)
def test_every_solution_runs_and_passes_its_own_check(capsys, module, exercise):
    answer = run_solution(module, exercise)
    ok, out = verdict(capsys, exercise, answer)
    assert ok and out.startswith(f"{exercise.name}: correct!"), out


@pytest.mark.parametrize("module, exercise", ALL)
def test_unanswered_exercises_say_so_without_error(capsys, module, exercise):
    ok, out = verdict(capsys, exercise, ...)
    assert not ok and out.startswith(f"{exercise.name}: not answered yet"), out
    if exercise.kind == "code":
        def stub(*args):
            """The learner's stub."""
            ...

        ok, out = verdict(capsys, exercise, stub)
        assert not ok and "not answered yet" in out and "your code" in out, out


@pytest.mark.parametrize("module, exercise", CODE)
def test_code_solutions_define_a_function(module, exercise):
    answer = run_solution(module, exercise)
    assert callable(answer) and not is_stub(answer)
    assert exercise.solution_text.lstrip().startswith("def ")


def test_every_lesson_has_code_and_predict_exercises_and_a_questionnaire():
    table = {}
    for module in LESSONS:
        kinds = [e.kind for e in exercises_of(module)]
        table[module.__name__[-2:]] = {k: kinds.count(k) for k in ("code", "predict", "value")}
        assert isinstance(module.questionnaire, Questionnaire) and 5 <= len(module.questionnaire) <= 8
        assert isinstance(module.reading, Reading) and len(module.reading) >= 1
    assert all(table[n]["code"] >= 1 for n in table if n != "00"), table
    assert all(table[n]["predict"] >= 2 for n in table), table


# --------------------------------------------------------------------------- the framework

def test_a_stub_is_recognised_whatever_its_body():
    def dots(x):
        ...

    def documented(x):
        """What it should do."""
        ...

    def returns_dots(x):
        return ...

    def passes(x):
        pass

    def real(x):
        return x + 1

    assert all(is_stub(f) for f in (dots, documented, returns_dots, passes, lambda x: ...))
    assert not any(is_stub(f) for f in (real, lambda x: None or x, len, 3))


def test_an_error_in_the_learners_code_names_the_line(capsys):
    def norm_constants(pixels):
        x = pixels.float() / 255
        return x.mean().item() / 0, x.std().item()   # the line that fails

    ok, out = verdict(capsys, lesson01.q1, norm_constants)
    assert not ok and "your code raised an error" in out and "ZeroDivisionError" in out
    assert "in norm_constants" in out and "/ 0" in out and "Traceback" not in out


def test_a_known_error_gets_a_hint(capsys):
    ok, out = verdict(capsys, lesson01.q1, lambda pixels: (pixels.mean(), pixels.std()))
    assert not ok and "Byte" in out and "pixels.float() / 255" in out


def test_a_leftover_dots_inside_the_code_is_not_answered(capsys):
    def half_done(pixels):
        x = ...
        return x.mean(), x.std()

    ok, out = verdict(capsys, lesson01.q1, half_done)
    assert not ok and "not answered yet" in out and "still has a `...`" in out
    assert lesson01.q1.attempts == 0 or "Stuck" not in out


def test_returning_none_or_a_value_instead_of_a_function(capsys):
    def forgot_return(size, kernel, stride=1, padding=0, dilation=1):
        (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1

    assert_wrong(capsys, lesson02.q3, forgot_return, "returned None", "end it with `return`")
    assert_wrong(capsys, lesson02.q3, 24, "give the function itself", "answer = out_size")


def test_expect_close_says_where_and_by_how_much():
    expected = torch.zeros(2, 3)
    with pytest.raises(Wrong, match=r"expected \(2, 3\), got \(3, 2\)"):
        expect_close(torch.zeros(3, 2), expected, "the maps")
    got = expected.clone()
    got[1, 2] = 0.5
    with pytest.raises(Wrong, match=r"at index \(1, 2\) expected 0, got 0.5 .*1 of 6 values"):
        expect_close(got, expected, "the maps")
    with pytest.raises(Wrong, match="should be a tensor"):
        expect_close("maps", expected, "the maps")


def test_hook_spy_sees_a_hook_left_behind_and_mode_guard_a_changed_mode():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    spy = HookSpy(model.modules())
    handle = model[0].register_forward_hook(lambda m, i, o: None)
    assert spy.live_hooks(model, torch.zeros(1, 1, 5, 5)) == 1
    handle.remove()
    assert spy.live_hooks(model, torch.zeros(1, 1, 5, 5)) == 0
    spy.release()
    assert "register_forward_hook" not in vars(model[0])
    model.eval()
    guard = ModeGuard(model)
    model.train()
    with pytest.raises(Wrong, match="left the model in train mode"):
        guard.check()
    guard.restore()
    assert not model.training and not model[0].training


def test_questionnaire_prints_questions_and_answers_on_request(capsys):
    lesson04.questionnaire()
    questions = capsys.readouterr().out
    lesson04.questionnaire(answers=True)
    both = capsys.readouterr().out
    assert questions.startswith("1. ") and "Answer:" not in questions
    assert both.count("Answer:") == len(lesson04.questionnaire)
    md = lesson04.questionnaire.markdown(answers=True)
    assert "<details>" in md and md.count("\n1. ") == 1


def test_reading_cites_the_primary_sources():
    text = "\n".join(m.reading.markdown() for m in LESSONS)
    for author, year in [("LeCun", "1998"), ("Zeiler and Fergus", "2014"), ("Erhan", "2009"),
                         ("Simonyan", "2014"), ("Zhou", "2016"), ("Selvaraju", "2017"),
                         ("Smilkov", "2017"), ("Adebayo", "2018"), ("Olah", "2017"),
                         ("Olah", "2018")]:
        assert any(author in line and f"({year})" in line for line in text.splitlines()), author
    assert "Selvaraju" in lesson07.reading.markdown() and "Erhan" in lesson06.reading.markdown()


# --------------------------------------------------------------------------- 01: mean and std

def test_lesson01_norm_constants_typical_slips(capsys):
    def bytes_scale(pixels):
        x = pixels.float()
        return x.mean().item(), x.std().item()

    def swapped(pixels):
        x = pixels.float() / 255
        return x.std().item(), x.mean().item()

    def per_image(pixels):
        x = (pixels.float() / 255).flatten(1)
        return x.mean().item(), x.std(dim=1).mean().item()

    def in_place(pixels):
        pixels //= 2
        x = pixels.float() / 127.5
        return x.mean().item(), x.std().item()

    assert_wrong(capsys, lesson01.q1, bytes_scale, "0-255 scale", "expected 0.10")
    assert_wrong(capsys, lesson01.q1, swapped, "swapped")
    assert_wrong(capsys, lesson01.q1, per_image, "average of each image's std")
    assert_wrong(capsys, lesson01.q1, in_place, "changed the pixels")
    assert_wrong(capsys, lesson01.q1, lambda p: (p.float() / 255).mean(dim=0), "return a pair")


def test_lesson01_biased_or_unbiased_std_both_count(capsys):
    ok, _ = verdict(capsys, lesson01.q1, lambda p: ((p.double() / 255).mean(),
                                                    (p.double() / 255).std(unbiased=False)))
    assert ok


# --------------------------------------------------------------------------- 02: output size

@pytest.mark.parametrize("wrong, message", [
    (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1) - 1) // s, "off by one"),
    (lambda n, k, s=1, p=0, d=1: (n + 2 * p - k) // s + 1, "dilation spreads the kernel"),
    (lambda n, k, s=1, p=0, d=1: (n + p - d * (k - 1) - 1) // s + 1, "both sides"),
    (lambda n, k, s=1, p=0, d=1: n + 2 * p - d * (k - 1), "divide the free room by the stride"),
    (lambda n, k, s=1, p=0, d=1: (n + 2 * p - d * (k - 1) - 1) / s + 1, "floor division"),
])
def test_lesson02_out_size_slips(capsys, wrong, message):
    assert_wrong(capsys, lesson02.q3, wrong, message, "for size=")


def test_lesson02_out_size_is_checked_against_every_conv_and_pool_layer():
    cases = lesson02._layer_cases()
    wheres = {c[-1] for c in cases}
    assert {"SimpleCNN, layer 'conv2'", "ResNet-18, layer 'maxpool'",
            "ResNet-18, layer 'layer4.0.downsample.0'"} <= wheres
    assert any(c[4] > 1 for c in cases)                        # dilation
    assert all(c[5] == lesson02._reference_size(*c[:5]) for c in cases)


# --------------------------------------------------------------------------- 03: a training step

def _step(zero=True, step=True, backward=1, loss_fn=F.cross_entropy):
    def train_step(model, optimizer, images, labels):
        model.train()
        if zero:
            optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        for _ in range(backward):
            loss.backward(retain_graph=backward > 1)
        if step:
            optimizer.step()
        return loss.item()
    return train_step


def test_lesson03_training_step_slips(capsys):
    assert_wrong(capsys, lesson03.q1, _step(zero=False), "gradients accumulate", "zero_grad()")
    assert_wrong(capsys, lesson03.q1, _step(step=False), "did not move", "optimizer.step()")
    assert_wrong(capsys, lesson03.q1, _step(backward=2), "twice", "backward() ran twice")
    assert_wrong(capsys, lesson03.q1, _step(loss_fn=F.nll_loss), "F.cross_entropy")


def test_lesson03_backward_twice_without_retain_graph_is_explained(capsys):
    def twice(model, optimizer, images, labels):
        model.train()
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        loss.backward()
        optimizer.step()
        return loss.item()

    ok, out = verdict(capsys, lesson03.q1, twice)
    assert not ok and "backward through the graph a second time" in out
    assert "call it once per step" in out and "loss.backward()" in out


def test_lesson03_zero_grad_after_the_step_is_fine_too(capsys):
    def zero_last(model, optimizer, images, labels):
        model.train()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return loss
    ok, out = verdict(capsys, lesson03.q1, zero_last)
    assert ok and "the loss fell from" in out


# --------------------------------------------------------------------------- 04: hook and value

def _recorder(layer="conv2", remove="finally", take="output"):
    def record_conv2(model, images):
        captured = {}

        def hook(module, inputs, output):
            captured["x"] = (output if take == "output" else inputs[0]).detach()

        handle = getattr(model, layer).register_forward_hook(hook)
        if remove == "finally":
            try:
                model(images)
            finally:
                handle.remove()
        else:
            model(images)
            if remove == "after":
                handle.remove()
        return captured["x"]
    return record_conv2


def test_lesson04_hook_slips(capsys):
    assert_wrong(capsys, lesson04.q1, _recorder(remove="never"), "still on the model")
    assert_wrong(capsys, lesson04.q1, _recorder(remove="after"), "raises an error", "finally:")
    assert_wrong(capsys, lesson04.q1, _recorder(take="inputs"), "INPUT", "(3, 16, 12, 12)")
    assert_wrong(capsys, lesson04.q1, _recorder(layer="conv1"), "conv1's output")


def _by_hand(bias=True, all_channels=True, transpose=False, shift=0):
    def conv_value(x, conv, channel, row, col):
        k = conv.kernel_size[0]
        r, c = (col, row) if transpose else (row + shift, col + shift)
        patch = x[:, r:r + k, c:c + k] if all_channels else x[:1, r:r + k, c:c + k]
        w = conv.weight[channel] if all_channels else conv.weight[channel, :1]
        total = (w * patch).sum()
        return (total + conv.bias[channel] if bias else total).item()
    return conv_value


def test_lesson04_value_by_hand_slips(capsys):
    assert_wrong(capsys, lesson04.q2, _by_hand(bias=False), "add conv.bias[channel]")
    assert_wrong(capsys, lesson04.q2, _by_hand(all_channels=False), "one input channel only",
                 "conv2")
    assert_wrong(capsys, lesson04.q2, _by_hand(transpose=True), "rows and columns are swapped")
    assert_wrong(capsys, lesson04.q2, _by_hand(shift=1), "off by one")


def test_lesson04_a_patch_of_the_wrong_size_is_explained(capsys):
    def too_small(x, conv, channel, row, col):
        return (conv.weight[channel] * x[:, row:row + 4, col:col + 4]).sum().item()

    ok, out = verdict(capsys, lesson04.q2, too_small)
    assert not ok and "must match the size" in out and "x[:, row:row + k, col:col + k]" in out


# --------------------------------------------------------------------------- 05: the peak

def _peak(swap=False, shift_order=1, width=None):
    def peak_position(model, image, layer, channel, shift=(0, 0)):
        moved = featviz.perturb(image, shift=tuple(shift)[::shift_order])
        one = featviz.activations(model, moved.unsqueeze(0), [layer])[layer][0, channel]
        row, col = divmod(int(one.argmax()), width or one.shape[-1])
        return (col, row) if swap else (row, col)
    return peak_position


def test_lesson05_peak_slips(capsys):
    assert_wrong(capsys, lesson05.q5, _peak(swap=True), "the column first")
    assert_wrong(capsys, lesson05.q5, _peak(shift_order=-1), "(dx, dy)")
    assert_wrong(capsys, lesson05.q5, _peak(width=28), "not 28", "divmod")
    assert_wrong(capsys, lesson05.q5, lambda m, i, l, c, s: _peak()(m, i, l, c, (0, 0)),
                 "WITHOUT the shift")


def test_lesson05_predictions_follow_the_model(capsys):
    images, labels = lesson05.explorer_images()
    said = lesson05.shifted_prediction()
    truth = "yes" if said == int(labels[lesson05.SHIFTED_IMAGE]) else "no"
    assert verdict(capsys, lesson05.p2, truth)[0]
    assert not verdict(capsys, lesson05.p2, {"yes": "no", "no": "yes"}[truth])[0]
    assert_wrong(capsys, lesson05.p1, (0, 0), "the map moves with the digit")


# --------------------------------------------------------------------------- 06: receptive field

def _rf(start=1, multiply=True, dilation=True):
    def rf(layers):
        size, jump = start, 1
        for kernel, stride, d in layers:
            size += (d if dilation else 1) * (kernel - 1) * jump
            jump = jump * stride if multiply else jump
        return size, jump
    return rf


def test_lesson06_receptive_field_slips(capsys):
    assert_wrong(capsys, lesson06.q4, _rf(start=0), "off by one")
    assert_wrong(capsys, lesson06.q4, _rf(multiply=False), "multiplied by each layer's stride")
    assert_wrong(capsys, lesson06.q4, _rf(dilation=False), "dilated kernel")
    assert_wrong(capsys, lesson06.q4, lambda layers: 16, "return a pair (size, jump)")


def test_lesson06_stacks_agree_with_featviz():
    model = featviz.SimpleCNN()
    for name in ("conv1", "pool1", "conv2", "pool2"):
        rf = featviz.receptive_field(model, name)
        assert lesson06._rf_cases()[["conv1", "pool1", "conv2", "pool2"].index(name)][1] == \
            (rf.size[0], rf.stride[0])
    assert lesson06.stack_of(model, "conv2") == [(5, 1, 1), (2, 2, 1), (5, 1, 1)]


# --------------------------------------------------------------------------- 07: Grad-CAM, occlusion

def _cam(reduce="mean", relu=True, train=False, remove=True):
    def grad_cam(model, x, layer, target):
        store = {}
        handle = layer.register_forward_hook(lambda m, i, out: store.update(maps=out))
        if train:
            model.train()
        score = model(x)[:, target].sum()
        if remove:
            handle.remove()
        grads, = torch.autograd.grad(score, store["maps"])
        weights = getattr(grads, reduce)(dim=(2, 3), keepdim=True)
        cam = (weights * store["maps"]).sum(dim=1)
        return (torch.relu(cam) if relu else cam).detach()
    return grad_cam


def test_lesson07_grad_cam_slips(capsys):
    assert_wrong(capsys, lesson07.q1, _cam(reduce="sum"), "MEAN gradient", "summed")
    assert_wrong(capsys, lesson07.q1, _cam(relu=False), "apply a ReLU")
    assert_wrong(capsys, lesson07.q1, _cam(train=True), "train mode")
    assert_wrong(capsys, lesson07.q1, _cam(remove=False), "hook you registered is still")


def test_lesson07_reference_is_featvizs_coarse_grad_cam():
    model = featviz.pretrained()
    images, _ = featviz.digit_examples()
    cam = lesson07.coarse_cam(model, images[:2], "relu2", 3)
    assert cam.shape == (2, 8, 8) and (cam >= 0).all() and cam.max() > 0
    assert torch.allclose(cam, featviz.grad_cam(model, images[:2], "relu2", 3, upsample=None))
    maps, grads = lesson07._maps_and_grads(model, images[:2], model.relu2, 3)   # by hand
    by_hand = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1))
    assert torch.allclose(cam, by_hand, atol=1e-6)


def _occlude(clone=True, fill=None, sign=1):
    def occlusion_drop(model, image, target, top, left, size):
        hidden = image.clone() if clone else image
        before = model(image[None])[0, target].item()
        hidden[:, top:top + size, left:left + size] = image.min() if fill is None else fill
        return sign * (before - model(hidden[None])[0, target].item())
    return occlusion_drop


def test_lesson07_occlusion_slips(capsys):
    assert_wrong(capsys, lesson07.q2, _occlude(clone=False), "changed the image", "clone()")
    assert_wrong(capsys, lesson07.q2, _occlude(fill=0.0), "smallest value", "not 0")
    assert_wrong(capsys, lesson07.q2, _occlude(sign=-1), "the other way round")


# --------------------------------------------------------------------------- 08: capture and plot

def test_lesson08_capture_slips(capsys):
    def leaky(model, images, layer):
        store = {}
        dict(model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: store.update(maps=o.detach()))
        model(images)
        return store["maps"]

    def attached(model, images, layer):
        store = {}
        h = dict(model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: store.update(maps=o))
        try:
            model(images)
        finally:
            h.remove()
        return store["maps"]

    def in_train_mode(model, images, layer):
        model.train()
        return featviz.activations(model, images, [layer])[layer]

    assert_wrong(capsys, lesson08.q1, leaky, "still on the model")
    assert_wrong(capsys, lesson08.q1, attached, "requires_grad=True", ".detach()")
    assert_wrong(capsys, lesson08.q1, in_train_mode, "train mode")
    assert_wrong(capsys, lesson08.q1, lambda m, x, layer: featviz.activations(m, x, [layer]),
                 "acts[layer]")


def test_lesson08_plot_slips(capsys):
    def first_image(model, images, layer, index=0):
        maps = featviz.activations(model, images, [layer])[layer]
        return featviz.plot_feature_maps(maps, index=0)

    def shown_not_returned(model, images, layer, index=0):
        maps = featviz.activations(model, images, [layer])[layer]
        featviz.plot_feature_maps(maps, index=index)

    assert_wrong(capsys, lesson08.q2, first_image, "the maps of image 0", "draw image 1")
    assert_wrong(capsys, lesson08.q2, shown_not_returned, "returned None")


def test_lesson08_tiny_rgb_is_a_colour_model_with_named_layers():
    model, images = lesson08.tiny_rgb(), lesson08.rgb_images(4)
    assert images.shape == (4, 3, 32, 32) and not model.training
    assert "conv1" in featviz.layers(model, images[:1]).names
    assert featviz.activations(model, images, ["relu2"])["relu2"].shape == (4, 16, 16, 16)
    assert torch.equal(lesson08.rgb_images(4), images)            # seeded
