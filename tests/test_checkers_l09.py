"""Lesson 09's checkers: the right answers pass in their usual forms, and the slips a learner
makes (one direction of a confusion, `!= 0` before the ReLU, the first image only, the live
channels instead of the dead) each get their own verdict."""
from __future__ import annotations

import numpy as np
import torch

import featviz
from featviz.exercises import lesson09
from _verdicts import assert_right, assert_wrong, verdict


# --------------------------------------------------------------------------- q1: dead channels

def _peaks(model, images, layer):
    return featviz.activations(model, images, [layer])[layer].amax(dim=(0, 2, 3))


def test_q1_accepts_a_list_a_tensor_and_a_numpy_array(capsys):
    def as_list(model, images, layer):
        return (_peaks(model, images, layer) <= 0).nonzero().flatten().tolist()

    def as_tensor(model, images, layer):
        return (_peaks(model, images, layer) <= 0).nonzero().flatten()

    def as_array(model, images, layer):
        return np.flatnonzero((_peaks(model, images, layer) <= 0).numpy())

    for answer in (as_list, as_tensor, as_array):
        assert_right(capsys, lesson09.q1, answer)


def test_q1_names_each_slip(capsys):
    def exactly_zero(model, images, layer):       # right after a ReLU, wrong before it
        return (_peaks(model, images, layer) == 0).nonzero().flatten().tolist()

    def first_image(model, images, layer):
        return (_peaks(model, images[:1], layer) <= 0).nonzero().flatten().tolist()

    def alive(model, images, layer):
        return (_peaks(model, images, layer) > 0).nonzero().flatten().tolist()

    def counted(model, images, layer):
        return int((_peaks(model, images, layer) <= 0).sum())

    assert_wrong(capsys, lesson09.q1, exactly_zero, "`> 0`, not `!= 0`")
    assert_wrong(capsys, lesson09.q1, first_image, "first image only")
    assert_wrong(capsys, lesson09.q1, alive, "live channels")
    assert_wrong(capsys, lesson09.q1, counted, "list of dead channel numbers")


def test_q1_a_hook_left_on_the_model_fails(capsys):
    def leaky(model, images, layer):
        store = {}
        dict(model.named_modules())[layer].register_forward_hook(lambda m, i, o: store.update(o=o))
        with torch.no_grad():
            model(images)
        return (store["o"].amax(dim=(0, 2, 3)) <= 0).nonzero().flatten().tolist()

    assert_wrong(capsys, lesson09.q1, leaky, "still on the model")


# --------------------------------------------------------------------------- q2: confusions

def test_q2_right_and_one_direction_only(capsys):
    def both(model, images, labels, a, b):
        pred, _ = featviz.predict(model, images)
        return int(((labels == a) & (pred == b)).sum() + ((labels == b) & (pred == a)).sum())

    def one_way(model, images, labels, a, b):
        pred, _ = featviz.predict(model, images)
        return ((labels == a) & (pred == b)).sum()

    def every_mistake(model, images, labels, a, b):
        pred, _ = featviz.predict(model, images)
        return int((((labels == a) | (labels == b)) & (pred != labels)).sum())

    assert_right(capsys, lesson09.q2, both)
    assert_wrong(capsys, lesson09.q2, one_way, "one direction only")
    assert_wrong(capsys, lesson09.q2, every_mistake, "every mistake")


# --------------------------------------------------------------------------- q3, p1, p2

def test_q3_pool2_step_in_any_form_and_the_usual_confusions(capsys):
    for answer in (4, np.int64(4), torch.tensor(4), 4.0):
        assert_right(capsys, lesson09.q3, answer)
    assert_wrong(capsys, lesson09.q3, 2, "pool2 halves")
    assert_wrong(capsys, lesson09.q3, 16, "receptive field")
    assert lesson09.q3.reference() == featviz.receptive_field(featviz.pretrained(), "pool2").stride[0]


def test_p1_the_shift_costs_a_few_points(capsys):
    drop = lesson09.shift4_drop()
    assert 1 < drop < 5                      # the lesson's table shows it: 99.2% -> 96.0%
    assert_right(capsys, lesson09.p1, "a few points")
    assert_right(capsys, lesson09.p1, "a few")
    assert_wrong(capsys, lesson09.p1, "hardly", "a few points")
    ok, out = verdict(capsys, lesson09.p1, 3)
    assert not ok and "'hardly', 'a few points' or 'many points'" in out


def test_p2_ten_times_the_learning_rate_kills_many_relu2_channels(capsys):
    dead = lesson09.high_lr_dead()
    assert len(dead) >= 5
    assert_right(capsys, lesson09.p2, "many")
    assert_wrong(capsys, lesson09.p2, "none", "many")
    # the recipe's own rate, the same seed: hardly any
    recipe = lesson09.train_briefly(0)
    assert len(featviz.channel_stats(recipe, featviz.mnist_tensors(train=False), "relu2").dead) <= 1


def test_confusion_pair_lists_exactly_the_4_9_mistakes():
    model = featviz.pretrained()
    images, labels = featviz.mnist_tensors(train=False)
    found = lesson09.confusion_pair(model)
    cm = featviz.confusion_matrix(model, (images, labels), num_classes=10)
    assert len(found) == int(cm[4, 9] + cm[9, 4])
    assert set(labels[found].tolist()) <= {4, 9}
