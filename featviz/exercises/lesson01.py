"""Exercises of lesson 01 (data)."""
from __future__ import annotations

from typing import Any

from . import Exercise, Wrong, as_int, as_number, expect_equal
from ..data import MNIST_MEAN, MNIST_STD, load_mnist

q1 = Exercise(
    name="q1",
    prompt="How many numbers (pixels) does one MNIST image hold?",
    checker=expect_equal(28 * 28, "{answer} is not it: an image is a 1 x 28 x 28 tensor."),
    hint_text="Look at image.shape, and multiply its sizes (or use image.numel()).",
    solution_text="answer = image.numel()   # 1 * 28 * 28 = 784",
)


def _black(answer: Any) -> None:
    expected = (0.0 - MNIST_MEAN) / MNIST_STD
    value = as_number(answer)
    if abs(value - expected) < 1e-3:
        return
    if abs(value) < 1e-9:
        raise Wrong("0 is a black pixel BEFORE normalisation; Normalize subtracts the mean first.")
    if abs(value - 1.0) < 1e-3 or abs(value - 255) < 1e-3:
        raise Wrong("that is a white pixel; a black one is 0 before normalisation.")
    raise Wrong(f"{value:.4f} is not it. Normalize computes (x - mean) / std with x = 0.")


q2 = Exercise(
    name="q2",
    prompt="What value does a black pixel have after the standard normalisation?",
    checker=_black,
    hint_text="A black pixel is 0 after ToTensor. Normalize computes (x - mean) / std "
              "with featviz.MNIST_MEAN and featviz.MNIST_STD.",
    solution_text="answer = (0 - featviz.MNIST_MEAN) / featviz.MNIST_STD   # about -0.4242",
)


def _seven(answer: Any) -> None:
    answer = as_int(answer, "an index (an int)")
    # the test split is the official one whichever source is in use, full or sample
    targets = load_mnist(train=False).targets
    if not 0 <= answer < len(targets):
        raise Wrong(f"{answer} is outside the test set: indices go from 0 to {len(targets) - 1}.")
    label = int(targets[answer])
    if label != 7:
        raise Wrong(f"test[{answer}] is a {label}, not a 7.")


q3 = Exercise(
    name="q3",
    prompt="Give the index of any image of the digit 7 in the test set.",
    checker=_seven,
    hint_text="test.targets holds every label; (test.targets == 7) is True where the digit is a 7.",
    solution_text="answer = int((test.targets == 7).nonzero()[0])",
)
