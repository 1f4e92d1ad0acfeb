"""The checkers of lessons 05 and 06 give the verdict a careful reader would: wrong passes
(torch.roll for perturb, divmod by the height, truncated floats) fail with a message that
names the slip, and right answers pass in every reasonable form."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import featviz
from featviz.exercises import lesson05, lesson06


def verdict(capsys, exercise, answer) -> tuple[bool, str]:
    capsys.readouterr()
    ok = exercise.check(answer)
    return bool(ok), capsys.readouterr().out


def wrong(capsys, exercise, answer, *parts: str) -> str:
    ok, out = verdict(capsys, exercise, answer)
    assert not ok and "not quite" in out, out
    for part in parts:
        assert part in out, out
    return out


# --------------------------------------------------------------------------- 05 q5: peak_position

def _peak(move=None, by="width"):
    def peak_position(model, image, layer, channel, shift=(0, 0)):
        moved = featviz.perturb(image, shift=shift) if move is None else move(image, shift)
        one = featviz.activations(model, moved.unsqueeze(0), [layer])[layer][0, channel]
        return divmod(int(one.argmax()), one.shape[-1] if by == "width" else one.shape[-2])
    return peak_position


def _roll(image, shift):
    return torch.roll(image, shifts=(shift[1], shift[0]), dims=(-2, -1))


def test_the_right_peak_position_passes_also_as_numpy_or_a_tensor(capsys):
    assert verdict(capsys, lesson05.q5, _peak())[0]
    as_array = lambda *a: np.array(_peak()(*a))           # noqa: E731
    as_tensor = lambda *a: torch.tensor(_peak()(*a))      # noqa: E731
    assert verdict(capsys, lesson05.q5, as_array)[0]
    assert verdict(capsys, lesson05.q5, as_tensor)[0]


def test_torch_roll_in_place_of_perturb_fails_and_is_named(capsys):
    wrong(capsys, lesson05.q5, _peak(move=_roll), "wrapped around", "featviz.perturb")


def test_divmod_by_the_height_fails_on_a_map_wider_than_high(capsys):
    wrong(capsys, lesson05.q5, _peak(by="height"), "height", "width", "maps.shape[-1]")


def test_the_cases_hold_a_wrap_around_and_a_non_square_map():
    cases = lesson05._peak_cases()
    assert any(max(abs(v) for v in shift) > 8 for _, _, _, _, _, shift, _ in cases)
    assert any(wide for _, wide, *_ in cases)
    for what, wide, image, layer, channel, shift, peak in cases:
        if wide:
            model = lesson05._trunk()
            maps = featviz.activations(model, image[None], [layer])[layer][0]
            assert maps.shape[-1] > maps.shape[-2], what


def test_an_error_in_the_learners_code_is_reported_not_raised(capsys):
    def broken(model, image, layer, channel, shift=(0, 0)):
        return featviz.activations(model, image, [layer])   # no batch dimension, no channel

    ok, out = verdict(capsys, lesson05.q5, broken)
    assert not ok and "Traceback" not in out, out
    first = lesson05._peak_cases()[0]
    assert f"on the input {first[0]}, layer={first[3]!r}, channel={first[4]}, shift={first[5]}" in out, out
    assert "line " in out and "broken" in out, out


# --------------------------------------------------------------------------- 05: forms of a right answer

@pytest.mark.parametrize("form", [int, np.int64, torch.tensor, float])
def test_lesson05_whole_numbers_in_any_form(capsys, form):
    for exercise in (lesson05.q1, lesson05.q2, lesson05.q4):
        value = exercise.reference()
        assert verdict(capsys, exercise, form(value))[0], exercise.name


def test_lesson05_a_non_integral_count_is_told_so(capsys):
    wrong(capsys, lesson05.q4, lesson05.dead_maps(1) + 0.5, "whole number")


def test_lesson05_predictions_pass_with_their_computed_answers(capsys):
    assert verdict(capsys, lesson05.p1, lesson05.p1.reference())[0]
    assert verdict(capsys, lesson05.p1, list(lesson05.p1.reference()))[0]
    assert verdict(capsys, lesson05.p2, lesson05.p2.reference())[0]
    assert verdict(capsys, lesson05.q3, lesson05.q3.reference())[0]


# --------------------------------------------------------------------------- 06

def test_lesson06_a_non_integral_float_is_told_so(capsys):
    wrong(capsys, lesson06.q1, 16.5, "whole number", "16.5")
    top, left, bottom, right = lesson06.q2.reference()
    wrong(capsys, lesson06.q2, (top + 0.7, left, bottom, right), "whole numbers", str(top + 0.7))
    assert verdict(capsys, lesson06.q2, (float(top), left, bottom, right))[0]
    assert verdict(capsys, lesson06.q2, np.array([top, left, bottom, right]))[0]
    assert verdict(capsys, lesson06.q1, torch.tensor(lesson06.q1.reference()))[0]


def _rf(grow, scale="jump"):
    def rf(layers):
        size, jump = 1, 1
        for kernel, stride, dilation in layers:
            size += grow(kernel, dilation) * (jump if scale == "jump" else stride)
            jump *= stride
        return size, jump
    return rf


def test_lesson06_the_kernel_minus_one_slip_is_named(capsys):
    wrong(capsys, lesson06.q4, _rf(lambda k, d: d * k), "(kernel - 1)", "not kernel x jump")
    wrong(capsys, lesson06.q4, _rf(lambda k, d: d * (k - 1) + 1), "(kernel - 1)")
    wrong(capsys, lesson06.q4, _rf(lambda k, d: d * k - 1), "(kernel - 1)", "dilation")
    wrong(capsys, lesson06.q4, _rf(lambda k, d: d * (k - 1), scale="stride"),
          "layers BELOW")


def test_lesson06_an_error_in_rf_says_which_stack(capsys):
    def rf(layers):
        size, jump = layers[0][0], 1          # fails on the empty stack
        for kernel, stride, dilation in layers[1:]:
            size += dilation * (kernel - 1) * jump
            jump *= stride
        return size, jump

    ok, out = verdict(capsys, lesson06.q4, rf)
    assert not ok and "IndexError" in out and "layers=[]" in out and "empty stack" in out, out
    assert "line " in out, out          # and where in the learner's code


def test_lesson06_q3_needs_the_corner_unit_not_the_centre(capsys):
    assert verdict(capsys, lesson06.q3, lesson06.corner_image())[0]
    assert verdict(capsys, lesson06.q3, lesson06.corner_image().numpy())[0]
    out = wrong(capsys, lesson06.q3, torch.full((1, 28, 28), 5.0), "outside MNIST's range")
    assert "value_range" in out


def test_lesson06_p3_fourier_is_higher_and_the_other_guesses_are_answered(capsys):
    # the computed answer: on the five channels lesson 06 compares, Fourier beats pixel space
    assert lesson06.p3.reference() == "fourier"
    assert verdict(capsys, lesson06.p3, "Fourier")[0]
    assert verdict(capsys, lesson06.p3, " fft ")[0]
    wrong(capsys, lesson06.p3, "pixel", "blur", "all five channels")
    wrong(capsys, lesson06.p3, "it depends", "all five channels")
    wrong(capsys, lesson06.p3, "wavelet", "not one of the choices")
    wrong(capsys, lesson06.p3, 2, "as a string")


def test_lesson06_p3_asks_about_the_channels_the_lesson_shows():
    path = Path(__file__).resolve().parent.parent / "notebooks" / "06_filters.ipynb"
    code = "\n".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                     if c["cell_type"] == "code")
    assert f"rows = {list(lesson06.COMPARED)}" in code
    assert ", ".join(map(str, lesson06.COMPARED[:-1])) in lesson06.p3.prompt
