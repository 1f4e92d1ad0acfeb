"""Lesson 01's prediction of a black pixel after normalisation: a reading to two places is
right, a near miss is told it is close, and the number itself must be a number."""
from __future__ import annotations

import pytest

from featviz.data import MNIST_MEAN, MNIST_STD
from featviz.exercises import lesson01

EXACT = (0.0 - MNIST_MEAN) / MNIST_STD


@pytest.mark.parametrize("answer", [EXACT, round(EXACT, 2), round(EXACT, 3), -0.42])
def test_01_p2_a_reading_to_two_places_is_right(answer, capsys):
    assert lesson01.p2.check(answer), capsys.readouterr().out


@pytest.mark.parametrize("answer", [-0.4, -0.45])
def test_01_p2_a_near_miss_is_close(answer, capsys):
    ok = lesson01.p2.check(answer)
    out = capsys.readouterr().out
    assert not ok and "close" in out, out


def test_01_q2_a_number_as_text_is_told_so(capsys):
    assert not lesson01.q2.check(str(lesson01.q2.reference()))
    assert "not str" in capsys.readouterr().out
