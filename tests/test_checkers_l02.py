"""Lesson 02 q3 (out_size): formulas that fit only the easy layers fail, and a right
formula passes whatever kind of whole number it returns."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from featviz.exercises import lesson02


def right(size, kernel, stride=1, padding=0, dilation=1):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def padding_divided_apart(size, kernel, stride=1, padding=0, dilation=1):
    span = dilation * (kernel - 1) + 1
    return (size - span) // stride + 2 * padding // stride + 1


def halves_for_kernel_2(size, kernel, stride=1, padding=0, dilation=1):
    return size // 2 if kernel == 2 else right(size, kernel, stride, padding, dilation)


@pytest.mark.parametrize("form", [int, np.int64, torch.tensor, float, np.array])
def test_02_q3_a_right_formula_in_any_whole_number_type(form, capsys):
    ok = lesson02.q3.check(lambda *a, **k: form(right(*a, **k)))
    assert ok, capsys.readouterr().out


@pytest.mark.parametrize("wrong", [padding_divided_apart, halves_for_kernel_2])
def test_02_q3_formulas_that_fit_only_easy_layers_fail(wrong, capsys):
    ok = lesson02.q3.check(wrong)
    out = capsys.readouterr().out
    assert not ok and "your function gives" in out, out
