"""Lesson 07's checkers give the right verdict on the answers learners really write: a hook
removed after the pass but not in ``finally:``, a right map returned as numpy or rescaled to
[0, 1], an occlusion that forgets eval mode, a pixel position in any numeric form. And the
lesson asks each question before the cell that answers it."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import featviz
from featviz.exercises import attribution07, lesson07
from _verdicts import assert_right, assert_wrong

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_where_it_looks.ipynb"


# --------------------------------------------------------------------------- q1: Grad-CAM by hand

def _cam(x_model, x, layer, target, *, guard: str = "finally", scale: str = "raw"):
    """Grad-CAM written the ways a learner might: the hook removed in ``finally:``, or after the
    pass; the map raw or rescaled."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, out: store.update(maps=out))
    if guard == "finally":
        try:
            score = x_model(x)[:, target].sum()
        finally:
            handle.remove()
    else:                       # removed after the pass: skipped when the pass raises
        score = x_model(x)[:, target].sum()
        handle.remove()
    grads, = torch.autograd.grad(score, store["maps"])
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * store["maps"]).sum(dim=1)).detach()
    if scale == "per map":
        cam = cam / cam.amax(dim=(1, 2), keepdim=True)
    elif scale == "min-max":
        low = cam.amin(dim=(1, 2), keepdim=True)
        cam = (cam - low) / (cam.amax(dim=(1, 2), keepdim=True) - low + 1e-8)
    elif scale == "batch":
        cam = cam / cam.max()
    return cam


def test_q1_hook_removed_after_the_pass_but_not_in_finally_is_wrong(capsys):
    def grad_cam(model, x, layer, target):
        return _cam(model, x, layer, target, guard="after")

    assert_wrong(capsys, lesson07.q1, grad_cam, "forward pass raises", "finally:")


def test_q1_hook_removed_in_finally_is_right(capsys):
    assert_right(capsys, lesson07.q1, lambda m, x, layer, t: _cam(m, x, layer, t))


def test_q1_the_failing_pass_really_fails_after_the_hooked_layer():
    """The shared check's failing pass raises after relu2 has run (a hook on relu2 has
    fired), so a hook removed on the line after the pass is caught, one in finally: is not."""
    from featviz.exercises import Wrong, expect_hook_removed_on_failure

    model = featviz.pretrained()
    x = torch.zeros(2, 1, 28, 28)
    fired = []

    def watch(m):
        m.relu2.register_forward_hook(lambda *a: fired.append(1))   # left on purpose
        m(x)

    with pytest.raises(Wrong):
        expect_hook_removed_on_failure(watch, model, "fc1", x)
    assert fired and fired[0] == 1
    with pytest.raises(Wrong, match="finally"):
        expect_hook_removed_on_failure(lambda m: _cam(m, x, m.relu2, 3, guard="after"),
                                       model, "fc1", x)
    expect_hook_removed_on_failure(lambda m: _cam(m, x, m.relu2, 3), model, "fc1", x)


@pytest.mark.parametrize("convert", [lambda c: c.numpy(), lambda c: c.double(),
                                     lambda c: c.numpy().astype(np.float64)],
                         ids=["numpy", "float64 tensor", "float64 numpy"])
def test_q1_a_right_map_in_another_form_is_right(capsys, convert):
    assert_right(capsys, lesson07.q1, lambda m, x, layer, t: convert(_cam(m, x, layer, t)))


@pytest.mark.parametrize("scale, expected", [
    ("per map", "dividing it by its maximum"),
    ("min-max", "rescaled each map to [0, 1]"),
    ("batch", "rescaled the batch to [0, 1]"),
])
def test_q1_a_map_rescaled_to_0_1_is_named(capsys, scale, expected):
    def grad_cam(model, x, layer, target):
        return _cam(model, x, layer, target, scale=scale)

    assert_wrong(capsys, lesson07.q1, grad_cam, expected, "raw map")


# --------------------------------------------------------------------------- q2: occlusion by hand

def _occlusion(model, image, target, top, left, size, *, mode="eval and restore"):
    hidden = image.clone()
    hidden[:, top:top + size, left:left + size] = image.min()
    was_training = model.training
    if mode != "as given":
        model.eval()
    try:
        with torch.no_grad():
            scores = model(torch.stack([image, hidden]))[:, target]
    finally:
        if mode == "eval and restore":
            model.train(was_training)
        elif mode == "eval, then train":
            model.train()
    return (scores[0] - scores[1]).item()


@pytest.mark.parametrize("mode, expected", [
    ("as given", ("ran it in train mode", "BatchNorm", "model.eval()")),
    ("eval only", ("left the model in eval mode", "model.train(was_training)")),
    ("eval, then train", ("left the model in train mode",)),
])
def test_q2_train_and_eval_mode_are_checked(capsys, mode, expected):
    def occlusion_drop(model, image, target, top, left, size):
        return _occlusion(model, image, target, top, left, size, mode=mode)

    assert_wrong(capsys, lesson07.q2, occlusion_drop, *expected)


def test_q2_eval_mode_put_back_is_right_and_so_is_a_copy_in_eval_mode(capsys):
    assert_right(capsys, lesson07.q2, _occlusion)

    def on_a_copy(model, image, target, top, left, size):
        return _occlusion(copy.deepcopy(model).eval(), image, target, top, left, size,
                          mode="as given")

    assert_right(capsys, lesson07.q2, on_a_copy)


def test_q2_the_check_model_answers_differently_in_train_mode():
    """Without this the mode check would pass a function that forgets eval mode."""
    model = lesson07._mode_model()
    image = lesson07._cam_inputs()[0]
    in_eval = lesson07._drop_in_eval(model.train(), image, 3, 6, 8, 8)
    assert model.training
    torch.manual_seed(0)
    in_train = lesson07._drop(model, image, 3, 6, 8, 8)
    assert abs(in_train - in_eval) > 0.1 * max(1.0, abs(in_eval))


# --------------------------------------------------------------------------- q3, q4, q5: forms

def test_q3_is_pool2s_receptive_field_centre_in_any_form(capsys):
    rf = featviz.receptive_field(featviz.SimpleCNN(), "pool2")
    top, left, bottom, right = rf.box(*lesson07.UNIT)
    centre = (top + bottom - 1) / 2
    assert lesson07.q3.reference() == centre
    for answer in (centre, np.float64(centre), torch.tensor(centre), (centre, centre),
                   [centre, centre]):
        assert_right(capsys, lesson07.q3, answer)


@pytest.mark.parametrize("answer, expected", [
    (24.0, "STRETCHING"),
    (13.5, "4 pixels apart, not 2"),
    (12, "first pixel"),
    (20, "(16 - 1) / 2"),
    (19, "between two pixels"),
    ((19.5, 12), "on the diagonal"),
])
def test_q3_slips_are_named(capsys, answer, expected):
    assert_wrong(capsys, lesson07.q3, answer, expected)


@pytest.mark.parametrize("exercise", [lesson07.q4, lesson07.q5], ids=["q4", "q5"])
def test_whole_number_answers_in_any_form(capsys, exercise):
    n = exercise.reference()
    assert isinstance(n, int)
    for answer in (n, np.int64(n), torch.tensor(n), float(n)):
        assert_right(capsys, exercise, answer)


# --------------------------------------------------------------------------- p1, p2: measured

def test_p1_the_curl_argues_against_the_3(capsys):
    assert lesson07.p1.reference() == "up"     # measured on the model: hiding it raises the 3
    assert_right(capsys, lesson07.p1, lesson07.p1.reference())
    assert_wrong(capsys, lesson07.p1, "down", "evidence against the 3")


def test_p2_fc3_alone_random_sends_grad_cam_to_the_floor(capsys):
    assert lesson07.fc3_random_correlation() < 0.3
    assert_right(capsys, lesson07.p2, lesson07.p2.reference())
    assert_wrong(capsys, lesson07.p2, "high", "random fc3")


def test_p3_placed_grad_cam_deletes_faster_than_stretched(capsys):
    placed, stretched = attribution07.grad_cam_deletion_areas()
    assert 0 < placed < stretched < 1
    assert lesson07.p3.reference() == "yes"
    for answer in ("yes", " Yes ", "placed", True):
        assert_right(capsys, lesson07.p3, answer)
    assert_wrong(capsys, lesson07.p3, "no", "falls more slowly")
    assert_wrong(capsys, lesson07.p3, 1, "as a string")


# --------------------------------------------------------------------------- the notebook

@pytest.fixture(scope="module")
def cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


def _index(cells, pattern: str, kind: str | None = None) -> int:
    hits = [i for i, c in enumerate(cells) if re.search(pattern, c.source)
            and (kind is None or c.cell_type == kind)]
    assert len(hits) == 1, (pattern, hits)
    return hits[0]


def _shown(cell) -> str:
    """Everything a reader sees of a cell: its source and its text outputs."""
    parts = [cell.source]
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.append(str(out.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


def test_each_prediction_is_asked_before_the_cells_that_answer_it(cells):
    p1 = _index(cells, r"ex\.p1\.check", "code")
    assert p1 < _index(cells, r"for_class = \{", "code")           # Grad-CAM for the runner-up
    assert p1 < _index(cells, r"occ = featviz\.occlusion\(model, x18", "code")
    assert _index(cells, r"\*\*Predict \(p1\)", "markdown") == p1 - 1
    p2 = _index(cells, r"ex\.p2\.check", "code")
    assert p2 < _index(cells, r"cascade = \{", "code")
    assert "fc3" in cells[p2 - 1].source and "alone" in cells[p2 - 1].source
    p3 = _index(cells, r"ex\.p3\.check", "code")
    assert p3 < _index(cells, r"curves = \{mode:", "code")
    assert _index(cells, r"\*\*Predict \(p3\)", "markdown") == p3 - 1
    above = "\n".join(_shown(c) for c in cells[:p3]).lower()
    assert "more faithful than stretch" not in above and "grad-cam stretched" not in above


def test_no_answer_is_shown_above_its_question(cells):
    for exercise in (lesson07.q3, lesson07.q4, lesson07.q5):
        asked = _index(cells, rf"ex\.{exercise.name}\.check", "code")
        above = "\n".join(_shown(c) for c in cells[:asked - 1])
        for text in exercise.expected_texts():
            assert not re.search(rf"(?<![\d.]){re.escape(text)}(?![\d])", above), (exercise.name, text)
    assert "pool2" in lesson07.q3.prompt and f"{lesson07.q3.reference():g}" not in lesson07.q3.prompt

