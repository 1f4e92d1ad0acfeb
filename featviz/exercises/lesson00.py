"""Exercises of lesson 00 (start here): a first look at conv1's feature maps."""
from __future__ import annotations

from typing import Any

from . import Exercise, Questionnaire, Wrong
from . import as_int as _as_int
from . import reading as _reading


def _maps(answer: Any) -> None:
    n = _as_int(answer)
    if n == 16:
        return
    if n == 24:
        raise Wrong("24 is the height (and width) of each map. The number of maps is the "
                    "channel dimension of acts['conv1'], shape (N, C, H, W).")
    if n == 28:
        raise Wrong("28 is the size of the input image, not a number of maps.")
    if n == 10:
        raise Wrong("10 is the number of digits in the batch (N), not the maps of one image.")
    if n == 1:
        raise Wrong("the input has 1 channel; conv1 turns it into one map per filter.")
    raise Wrong(f"{n} is not it: count the panels of the figure, or read acts['conv1'].shape[1].")


p1 = Exercise(
    name="p1",
    prompt="Predict: how many feature maps does conv1 make for one image?",
    checker=_maps,
    hint_text="One map per filter. acts['conv1'] has shape (N, C, H, W): images, channels "
              "(maps), height, width.",
    solution_text="answer = acts['conv1'].shape[1]   # 16",
    kind="predict",
    giveaways=("16, 24, 24)", "16 maps"),
)


def _size(answer: Any) -> None:
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = (answer, answer)
    try:
        h, w = (int(v) for v in answer)
    except (TypeError, ValueError):
        raise Wrong(f"give (height, width), e.g. a tuple of two numbers, not {answer!r}.") from None
    if (h, w) == (24, 24):
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
)


def _params(answer: Any) -> None:
    n = _as_int(answer)
    if n == 416:
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
