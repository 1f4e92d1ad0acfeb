"""The checker framework holds every lesson to the same idea of a right answer: a whole number
is right as an int, an np.int64, a 0-d tensor or an integral float; a shape as a tuple, a list
or a torch.Size; and a function that only says ``raise NotImplementedError`` is not answered."""
from __future__ import annotations

import importlib
import numbers
import pkgutil

import numpy as np
import pytest
import torch

import featviz.exercises as exercises
from featviz.exercises import Exercise, as_int, as_number

LESSONS = sorted(m.name for m in pkgutil.iter_modules(exercises.__path__) if m.name.startswith("lesson"))


def _exercises(kinds=("value", "predict")):
    for name in LESSONS:
        module = importlib.import_module(f"featviz.exercises.{name}")
        for label, ex in sorted(vars(module).items()):
            if isinstance(ex, Exercise) and ex.kind in kinds and label == ex.name:
                yield pytest.param(ex, id=f"{name[-2:]}-{label}")


def _quiet(ex, answer, capsys):
    ok = ex.check(answer)
    return bool(ok), capsys.readouterr().out


def test_the_lessons_are_found():
    assert len(LESSONS) >= 9
    assert len(list(_exercises())) >= 40


def _whole(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _shape(value):
    if isinstance(value, torch.Size):
        value = tuple(value)
    if isinstance(value, (tuple, list)) and len(value) >= 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        return tuple(int(v) for v in value)
    return None


REFERENCED = [p for p in _exercises() if p.values[0].reference is not None]


def test_every_value_and_prediction_has_a_reference():
    missing = [p.id for p in _exercises() if p.values[0].reference is None]
    assert not missing, f"no computed reference answer: {missing}"
    assert len(REFERENCED) >= 40


@pytest.mark.parametrize("ex", REFERENCED)
def test_each_reference_answer_is_right(ex, capsys):
    ok, out = _quiet(ex, ex.reference(), capsys)
    assert ok, out


@pytest.mark.parametrize("ex", REFERENCED)
def test_every_form_of_a_right_answer_is_right(ex, capsys):
    value = ex.reference()
    n, shape = _whole(value), _shape(value)
    if n is not None:
        forms = [n, np.int64(n), torch.tensor(n), float(n), np.array(n)]
    elif shape is not None:
        forms = [tuple(shape), list(shape), torch.Size(shape)]
    else:
        pytest.skip("neither a whole number nor a shape")
    for form in forms:
        ok, out = _quiet(ex, form, capsys)
        assert ok, f"{ex.name} rejects the right answer as {type(form).__name__} {form!r}: {out}"


@pytest.mark.parametrize("ex", REFERENCED)
def test_a_number_written_as_text_is_told_to_be_a_number(ex, capsys):
    value = ex.reference()
    if _whole(value) is None and not isinstance(value, float):
        pytest.skip("not a number")
    ok, out = _quiet(ex, str(_whole(value) if _whole(value) is not None else value), capsys)
    assert not ok and "not str" in out, out


def test_as_int_and_as_number():
    from featviz.exercises import Wrong

    for form in (22, np.int64(22), np.int32(22), torch.tensor(22), torch.tensor([22]), 22.0,
                 np.float64(22.0), np.array(22)):
        assert as_int(form) == 22
    for wrong, says in ((True, "True"), (22.5, "22.5"), ("22", "not str"), ([22, 1], "list")):
        with pytest.raises(Wrong, match=says):
            as_int(wrong)
    assert as_number(np.float32(0.5)) == 0.5 and as_number(torch.tensor(-0.25)) == -0.25
    with pytest.raises(Wrong, match="not str"):
        as_number("0.5")


def test_raise_not_implemented_is_not_answered(capsys):
    ex = next(e.values[0] for e in _exercises(kinds=("code",)))

    def stub(*args):
        raise NotImplementedError

    def stub_with_message(*args):
        """Write me."""
        raise NotImplementedError("write this function")

    def started(*args):
        x = 1
        raise NotImplementedError(x)

    for answer in (stub, stub_with_message):
        ok, out = _quiet(ex, answer, capsys)
        assert not ok and "not answered yet" in out, out
    ok, out = _quiet(ex, started, capsys)          # raised when run: says where it still is
    assert not ok and "still raises NotImplementedError" in out and "line" in out, out
