"""The exercise checkers: right answers pass, typical wrong answers get a helpful message."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import featviz
import featviz.exercises as exercises
from featviz.exercises import Exercise, lesson01


def verdict(capsys, exercise: Exercise, answer) -> tuple[bool, str]:
    ok = exercise.check(answer)
    return ok, capsys.readouterr().out


def test_verdict_is_truthy_and_silent_in_a_notebook(capsys):
    test = featviz.load_mnist(train=False)
    sevens = int((test.targets == 7).sum())
    right, wrong = lesson01.q3.check(sevens), lesson01.q3.check(sevens + 1)
    assert right and not wrong and right == True and wrong == False  # noqa: E712
    assert hasattr(right, "_ipython_display_") and right._ipython_display_() is None


def test_unanswered_is_a_gentle_prompt_not_an_error(capsys):
    ok, out = verdict(capsys, lesson01.q2, ...)
    assert not ok and "not answered yet" in out and "hint()" in out


def _ink_of_first_test_image() -> tuple[int, int]:
    image, _ = featviz.load_mnist(train=False)[0]
    black = (0 - featviz.MNIST_MEAN) / featviz.MNIST_STD
    return int((image > black + 1e-4).sum()), int((image > 0).sum())


def test_lesson01_right_answers_pass(capsys):
    ink, _ = _ink_of_first_test_image()
    ok, out = verdict(capsys, lesson01.q2, ink)
    assert ok and out.endswith("q2: correct!\n")
    assert verdict(capsys, lesson01.p2, (0 - featviz.MNIST_MEAN) / featviz.MNIST_STD)[0]
    test = featviz.load_mnist(train=False)
    assert verdict(capsys, lesson01.q3, (test.targets == 7).sum())[0]       # a 0-d tensor


def test_lesson01_q2_names_the_pixels_counted_above_zero(capsys):
    ink, above_zero = _ink_of_first_test_image()
    assert above_zero < ink                     # faint ink lies between black and 0
    ok, out = verdict(capsys, lesson01.q2, above_zero)
    assert not ok and "above 0 after Normalize" in out
    ok, out = verdict(capsys, lesson01.q2, 784 - ink)
    assert not ok and "background" in out


def test_lesson01_q3_tells_the_training_count_from_the_test_count(capsys):
    train = featviz.load_mnist(train=True)
    ok, out = verdict(capsys, lesson01.q3, int((train.targets == 7).sum()))
    assert not ok and "training set" in out


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson01.q2, 784, "every pixel"),
    (lesson01.p2, 0, "BEFORE normalisation"),
    (lesson01.p2, 255, "white pixel"),
    (lesson01.p2, "zero", "give a number"),
    (lesson01.q3, 7.5, "a number of images"),
    (lesson01.q3, 7, "the label"),
    (lesson01.q3, "1028", "not str"),
])
def test_lesson01_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    ok, out = verdict(capsys, exercise, answer)
    assert not ok and "not quite" in out and expected in out


def test_second_wrong_attempt_points_to_the_hint(capsys):
    q = Exercise("qx", "two plus two?", featviz.exercises.expect_equal(4, "{answer} is not 4."), "count", "4")
    assert "hint()" not in verdict(capsys, q, 5)[1]
    assert "hint()" in verdict(capsys, q, 3)[1]


def test_a_checker_that_trips_is_still_feedback(capsys):
    def broken(answer):
        raise KeyError("x")
    q = Exercise("qx", "Give a dict.", broken, "h", "s")
    ok, out = verdict(capsys, q, {"a": 1})
    assert not ok and "could not check" in out and "Give a dict." in out


def test_every_lesson_exercise_has_hint_and_solution(capsys):
    found = 0
    for info in pkgutil.iter_modules(exercises.__path__):
        module = importlib.import_module(f"featviz.exercises.{info.name}")
        for value in vars(module).values():
            if isinstance(value, Exercise):
                found += 1
                value.hint()
                value.solution()
                out = capsys.readouterr().out
                assert "hint:" in out and "solution:" in out and len(out) > 40, value.name
    assert found >= 3
