"""Exercises of lesson 00 (start here): a first look at conv1's feature maps."""
from __future__ import annotations

from typing import Any

import torch

from . import Exercise, Questionnaire, Wrong
from . import as_int as _as_int
from . import reading as _reading


def _batch_maps() -> int:
    """The right answer of p1: one map per filter, for each image of the batch."""
    from ..data import digit_examples
    from ..models import SimpleCNN

    images, _ = digit_examples()
    return len(images) * SimpleCNN().conv1.out_channels


def _maps(answer: Any) -> None:
    n = _as_int(answer)
    if n == _batch_maps():
        return
    if n == 16:
        raise Wrong("16 is the maps of ONE image (one per filter); the batch holds 10 images, "
                    "and each gets its own 16 maps.")
    if n == 10:
        raise Wrong("10 is the number of images; each of them gets one map per filter.")
    if n == 16 * 24 * 24 or n == 10 * 16 * 24 * 24:
        raise Wrong(f"{n} counts the numbers in the maps (every pixel of every map); the "
                    f"question asks for the maps themselves.")
    if n in (24, 28, 1):
        raise Wrong(f"{n} is a size (of the image or of a map), not a number of maps.")
    raise Wrong(f"{n} is not it: conv1 makes one map per filter for every image it is given.")


p1 = Exercise(
    name="p1",
    prompt="Predict: conv1 is Conv2d(1, 16, kernel_size=5). How many feature maps does it make "
           "for the whole batch of 10 images?",
    checker=_maps,
    hint_text="One map per filter, for each image: acts['conv1'] has shape (N, C, H, W), "
              "images x channels (maps) x height x width.",
    solution_text="answer = acts['conv1'].shape[0] * acts['conv1'].shape[1]   # 10 x 16 = 160",
    kind="predict",
    giveaways=("160",),
    reference=_batch_maps,
)


def _size(answer: Any) -> None:
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = (answer, answer)
    try:
        h, w = (int(v) for v in answer)
    except (TypeError, ValueError):
        raise Wrong(f"give (height, width), e.g. a tuple of two numbers, not {answer!r}.") from None
    if (h, w) == tuple(_simplecnn().conv1(torch.zeros(1, 1, 28, 28)).shape[2:]):
        return
    if (h, w) == (28, 28):
        raise Wrong("28 x 28 is the input. A 5 x 5 filter without padding fits in fewer "
                    "positions than that along each side.")
    if (h, w) == (5, 5):
        raise Wrong("5 x 5 is the size of a filter; the map holds one value per position "
                    "the filter can take on the image.")
    if (h, w) == (12, 12):
        raise Wrong("12 x 12 is after pool1 halves the maps; conv1's own maps are larger.")
    raise Wrong(f"{h} x {w} is not it: a 5 x 5 filter fits 28 - 5 + 1 positions along each side.")


p2 = Exercise(
    name="p2",
    prompt="Predict: what is the (height, width) of each conv1 feature map?",
    checker=_size,
    hint_text="conv1 slides a 5 x 5 filter over the 28 x 28 image without padding: along each "
              "side it fits 28 - 5 + 1 positions.",
    solution_text="answer = tuple(acts['conv1'].shape[2:])   # (24, 24)",
    kind="predict",
    giveaways=("24, 24)",),
    reference=lambda: tuple(_simplecnn().conv1(torch.zeros(1, 1, 28, 28)).shape[2:]),
)


def _simplecnn() -> Any:
    from ..models import SimpleCNN
    return SimpleCNN()


def _params(answer: Any) -> None:
    n = _as_int(answer)
    if n == sum(p.numel() for p in _simplecnn().conv1.parameters()):
        return
    if n == 400:
        raise Wrong("that counts the weights; each filter also has one bias.")
    if n == 25 or n == 26:
        raise Wrong(f"{n} is one filter; conv1 has 16 of them.")
    if n == 16:
        raise Wrong("16 is the number of filters (or of biases); each filter has 5 x 5 weights too.")
    raise Wrong(f"{n} is not it: count 16 filters x (1 x 5 x 5 weights + 1 bias).")


q1 = Exercise(
    name="q1",
    prompt="How many numbers (weights and biases) does conv1 learn?",
    checker=_params,
    hint_text="Each of the 16 filters has 1 x 5 x 5 weights (one input channel) and one bias. "
              "model.conv1.weight.numel() and model.conv1.bias.numel() confirm it.",
    solution_text="answer = sum(p.numel() for p in model.conv1.parameters())   # 16 * 25 + 16 = 416",
    giveaways=("416",),
    reference=lambda: sum(p.numel() for p in _simplecnn().conv1.parameters()),
)


questionnaire = Questionnaire((
    ("What is a feature map?",
     "The output of one filter of a convolutional layer over the whole image: a picture of "
     "where that filter's pattern occurs."),
    ("What does featviz.doctor() check, and what should you do about a line marked with a "
     "cross?",
     "Versions, the widget front end, the device, the data and the shipped checkpoints; apply "
     "the fix it prints, restart the kernel and run it again."),
    ("What do the four numbers of the shape (N, C, H, W) stand for?",
     "Images in the batch, channels (maps), height, width."),
    ("In a conv1 feature map drawn in red and blue, what do red, blue and white mean?",
     "Red: the filter's pattern is there (positive response); blue: its opposite (negative); "
     "white: no response."),
    ("Who designed conv1's filters?",
     "No one: the network learned them from examples during training."),
))

reading = _reading(
    ("lecun1998", "the convolutional network for hand-written digits this course's SimpleCNN "
                  "descends from."),
    ("zeiler2014", "the paper that made looking at feature maps a way to understand CNNs."),
    ("olah2017", "an illustrated introduction to what the units of a CNN respond to."),
)
