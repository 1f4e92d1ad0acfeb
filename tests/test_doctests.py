"""The examples in featviz's docstrings run, and print what they say they print.

Every module of the package (subpackages included) is searched for docstring
examples; each docstring is one test, named ``module:object``. Besides the
module's own names, every example may use a few names that stand for what a
reader has at hand in the course:

* ``featviz``, ``torch``, ``np`` (numpy), ``nn`` (``torch.nn``);
* ``model``: the pretrained SimpleCNN, in eval mode;
* ``images``, ``labels``: one test image of each digit, ``featviz.digit_examples()``.

Output is compared with ``ELLIPSIS`` and ``NORMALIZE_WHITESPACE``. An example
that cannot run offline and fast should not be a ``>>>`` example.
"""
from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import pkgutil

import numpy as np
import pytest
import torch
from torch import nn

import featviz

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    names = ["featviz"]
    for info in pkgutil.walk_packages(featviz.__path__, prefix="featviz."):
        names.append(info.name)
    return sorted(names)


def _collect() -> list:
    """One param per docstring with examples; a module that fails to import is a
    failing param of its own, so one broken module does not hide the others."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    params = []
    for name in _module_names():
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # reported by the test, not at collection
            params.append(pytest.param(name, None, exc, id=f"{name}:import"))
            continue
        for test in sorted(finder.find(module, name), key=lambda t: t.name):
            if test.examples:
                short = test.name[len(name):].lstrip(".") or "module"
                params.append(pytest.param(name, test, None, id=f"{name}:{short}"))
    return params


@pytest.fixture(scope="module")
def course_names() -> dict:
    torch.manual_seed(0)
    # the one line about the bundled sample is printed once per session: spend it
    # here, not in the middle of an example's expected output
    with contextlib.redirect_stdout(io.StringIO()):
        images, labels = featviz.digit_examples()
    return {
        "featviz": featviz, "torch": torch, "np": np, "nn": nn,
        "model": featviz.pretrained().eval(), "images": images, "labels": labels,
    }


@pytest.mark.parametrize("module_name, test, error", _collect())
def test_docstring_examples(module_name, test, error, course_names):
    if error is not None:
        pytest.fail(f"{module_name} could not be imported: {error!r}")
    test.globs = {**course_names, **test.globs}
    torch.manual_seed(0)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    result = runner.run(test, out=out.write, clear_globs=True)
    assert result.failed == 0, f"{test.name}:\n{out.getvalue()}"


def test_every_module_is_searched():
    names = _module_names()
    assert "featviz._style" in names and "featviz.plots" in names and "featviz.data" in names
    assert any(n.startswith("featviz.exercises.") for n in names)
