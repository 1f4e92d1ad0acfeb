"""Exercises of lesson 07 (where the model looks): Grad-CAM layers and error analysis."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from . import Exercise, Wrong, as_int as _as_int


def _grid_layer(answer: Any) -> None:
    if not isinstance(answer, str):
        raise Wrong(f"give a layer name as a string, such as 'conv1', not {answer!r}.")
    name = answer.strip()
    if name == "pool2":
        return
    sizes = {"conv1": 24, "relu1": 24, "pool1": 12, "conv2": 8, "relu2": 8}
    if name in sizes:
        raise Wrong(f"{name} has {sizes[name]} x {sizes[name]} maps; another layer's are "
                    f"smaller still.")
    if name in ("flatten", "fc1", "relu3", "fc2", "relu4", "fc3"):
        raise Wrong(f"{name} has no maps at all (shape (N, features)), so there is no grid to "
                    f"show: Grad-CAM needs a layer with maps (N, C, H, W).")
    raise Wrong(f"{name!r} is not a layer of the SimpleCNN; featviz.layers(model) lists them.")


q1 = Exercise(
    name="q1",
    prompt="Which SimpleCNN layer gives the coarsest Grad-CAM grid that still has maps?",
    checker=_grid_layer,
    hint_text="Grad-CAM's resolution is the size of the layer's maps: print "
              "featviz.layers(model) and look at the output shapes.",
    solution_text="answer = 'pool2'   # 4 x 4 maps: each cell covers 4 x 4 input pixels",
)


@lru_cache(maxsize=1)
def _test_errors() -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, predictions) of the pretrained model on the test split, computed once."""
    from ..data import mnist_tensors
    from ..models import pretrained

    images, labels = mnist_tensors(train=False)
    model = pretrained()
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 2000]).argmax(dim=1)
                          for i in range(0, len(images), 2000)])
    return labels, pred


def _wrong_fours(answer: Any) -> None:
    n = _as_int(answer)
    labels, pred = _test_errors()
    expected = int(((labels == 4) & (pred != 4)).sum())
    if n == expected:
        return
    if n == int(((pred == 4) & (labels != 4)).sum()):
        raise Wrong(f"{n} images were called a 4 but are something else. The question asks "
                    f"for real 4s the model got wrong: label 4, prediction not 4.")
    if n == int((pred != labels).sum()):
        raise Wrong(f"{n} is every mistake, of every digit; keep only the ones whose label is 4.")
    raise Wrong(f"{n} is not it: count test images with labels == 4 and predictions != 4.")


q2 = Exercise(
    name="q2",
    prompt="How many test images of a 4 does the pretrained model get wrong?",
    checker=_wrong_fours,
    hint_text="pred = model(test_images).argmax(dim=1); combine (test_labels == 4) and "
              "(pred != 4) with &, then .sum().",
    solution_text="answer = int(((test_labels == 4) & (pred != 4)).sum())",
)


def _confused_with(answer: Any) -> None:
    d = _as_int(answer)
    labels, pred = _test_errors()
    wrong = pred[(labels == 4) & (pred != 4)]
    counts = torch.bincount(wrong, minlength=10)
    top = int(counts.max())
    if 0 <= d <= 9 and int(counts[d]) == top and top > 0:
        return  # any of the tied most frequent answers is right
    if d == 4:
        raise Wrong("4 is the true label; the question asks what the model said instead.")
    if not 0 <= d <= 9:
        raise Wrong(f"give a digit 0-9, not {d}.")
    raise Wrong(f"the model called a 4 a {d} {int(counts[d])} time(s); another digit comes "
                f"up more often.")


q3 = Exercise(
    name="q3",
    prompt="Which digit does the pretrained model most often see in the 4s it gets wrong?",
    checker=_confused_with,
    hint_text="Take pred[(test_labels == 4) & (pred != 4)] and count each digit with "
              "torch.bincount(..., minlength=10); the largest count wins.",
    solution_text="answer = int(torch.bincount(pred[(test_labels == 4) & (pred != 4)], "
                  "minlength=10).argmax())",
)
