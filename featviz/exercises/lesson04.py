"""Exercises of lesson 04 (feature maps).

The answers are computed from the networks themselves when an answer is
checked (never written down here), so they stay right if the shipped weights
are retrained.
"""
from __future__ import annotations

import functools
from typing import Any

import torch

from . import Exercise, Wrong, as_int
from ..data import normalize
from .. import models
from ..models import SimpleCNN


def stroke_images(size: int = 28, thickness: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A horizontal and a vertical white bar on black, normalised like MNIST.

    Returns ``(horizontal, vertical)``, each of shape ``(3, 1, size, size)``: the
    bar at three positions (upper, middle, lower third, or left, middle, right),
    so that a response does not hinge on one place.

    >>> horizontal, vertical = stroke_images()
    """
    horizontal = torch.zeros(3, 1, size, size)
    start, stop = size // 6, size - size // 6
    for i, frac in enumerate((0.3, 0.5, 0.7)):
        row = int(frac * size) - thickness // 2
        horizontal[i, 0, row:row + thickness, start:stop] = 1.0
    vertical = horizontal.transpose(-1, -2).contiguous()
    return normalize(horizontal), normalize(vertical)


@functools.lru_cache(maxsize=1)
def _stroke_scores() -> torch.Tensor:
    """Per conv1 channel: mean relu1 response to horizontal bars minus vertical bars."""
    model = models.pretrained()
    horizontal, vertical = stroke_images()
    with torch.no_grad():
        h = model.relu1(model.conv1(horizontal)).mean(dim=(0, 2, 3))
        v = model.relu1(model.conv1(vertical)).mean(dim=(0, 2, 3))
    return h - v


def _as_channel(answer: Any, count: int) -> int:
    channel = as_int(answer, f"one channel number (an int from 0 to {count - 1})")
    if not 0 <= channel < count:
        raise Wrong(f"conv1 has channels 0 to {count - 1}; {channel} is not one of them.")
    return channel


def _horizontal(answer: Any) -> None:
    scores = _stroke_scores()
    channel = _as_channel(answer, len(scores))
    best = float(scores.max())
    if float(scores[channel]) >= 0.9 * best:  # near-ties count as right
        return
    if float(scores[channel]) < 0:
        raise Wrong(f"channel {channel} responds more to VERTICAL bars than to horizontal ones.")
    raise Wrong(f"channel {channel} prefers horizontal bars a little, but another channel "
                f"prefers them much more strongly.")


q1 = Exercise(
    name="q1",
    prompt="Which conv1 channel of the pretrained network responds most strongly to "
           "horizontal strokes (and little to vertical ones)? Give its number.",
    checker=_horizontal,
    hint_text="Run featviz.activations(model, horizontal, ['relu1']) and the same for vertical; "
              "for each channel compare the mean activation (acts['relu1'].mean(dim=(0, 2, 3))), "
              "or look at plot_comparison of the two.",
    solution_text=(
        "h = featviz.activations(model, horizontal, ['relu1'])['relu1'].mean(dim=(0, 2, 3))\n"
        "v = featviz.activations(model, vertical, ['relu1'])['relu1'].mean(dim=(0, 2, 3))\n"
        "answer = int((h - v).argmax())"
    ),
)


def _shape_of(answer: Any) -> tuple[int, ...]:
    if isinstance(answer, torch.Tensor):
        raise Wrong("give the shape, e.g. (channels, height, width), not a tensor.")
    try:
        return tuple(int(v) for v in answer)
    except TypeError:
        raise Wrong(f"give a shape as a tuple like (C, H, W), not {type(answer).__name__}.") from None


def _pool1_shape(answer: Any) -> None:
    model = SimpleCNN()
    with torch.no_grad():
        expected = tuple(model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 28, 28)))).shape[1:])
    got = _shape_of(answer)
    if got == expected:
        return
    if len(got) == 4:
        raise Wrong("that has a batch dimension; give the shape for one image: (C, H, W).")
    if len(got) != 3:
        raise Wrong(f"give three numbers (C, H, W), not {len(got)}.")
    if got[0] != expected[0]:
        raise Wrong(f"the number of maps is wrong: pool1 keeps conv1's {expected[0]} channels.")
    if got[1:] == (24, 24):
        raise Wrong("24 x 24 is conv1's size; pooling 2 x 2 halves it.")
    raise Wrong(f"{got[1]} x {got[2]} is not it: a 5 x 5 kernel takes 4 pixels off 28, "
                f"then 2 x 2 max pooling halves the rest.")


q2 = Exercise(
    name="q2",
    prompt="What shape (C, H, W) does pool1 produce for one 28 x 28 digit?",
    checker=_pool1_shape,
    hint_text="conv1 output size = 28 - 5 + 1 (no padding); pool1 takes the max of each 2 x 2 block.",
    solution_text="answer = (16, 12, 12)   # conv1: 28 - 5 + 1 = 24; pool1: 24 / 2 = 12",
)


def _conv2_size(answer: Any) -> None:
    model = SimpleCNN()
    with torch.no_grad():
        x = model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 56, 56))))
        expected = int(model.conv2(x).shape[-1])
    if isinstance(answer, (tuple, list)):
        raise Wrong("give one number: the height (= width) of a map.")
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise Wrong(f"give a whole number, not {type(answer).__name__}.")
    if answer == expected:
        return
    if answer == 8:
        raise Wrong("8 is the size for 28 x 28 digits; the input is twice as large here.")
    if answer == 16:
        raise Wrong("doubling the 28-pixel answer misses that each convolution takes off a "
                    "fixed 4 pixels, whatever the input size.")
    raise Wrong(f"{answer} is not it. Go layer by layer: conv1 (5 x 5), pool1 (2 x 2), conv2 (5 x 5).")


q3 = Exercise(
    name="q3",
    prompt="If the digits were 56 x 56 pixels, how high (and wide) would conv2's maps be?",
    checker=_conv2_size,
    hint_text="Each 5 x 5 convolution without padding takes 4 pixels off the height; "
              "the 2 x 2 pooling halves it. 56 -> ? -> ? -> ?",
    solution_text="answer = 22   # conv1: 56 - 4 = 52; pool1: 26; conv2: 26 - 4 = 22",
)


def _dead_count(answer: Any) -> None:
    from ..data import digit_examples

    images, _ = digit_examples()
    model = models.pretrained()
    with torch.no_grad():
        x = model.relu2(model.conv2(model.pool1(model.relu1(model.conv1(images[3:4])))))
    expected = int((x[0].flatten(1).amax(dim=1) == 0).sum())
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise Wrong(f"give a whole number, not {type(answer).__name__}.")
    if answer == expected:
        return
    raise Wrong(f"{answer} is not it: count the channels of relu2 whose largest value is 0.")


q4 = Exercise(
    name="q4",
    prompt="For the digit 3 (images[3]), how many of relu2's 32 channels are dead, that is "
           "zero everywhere?",
    checker=_dead_count,
    hint_text="A channel is dead for this image when its largest value is 0: "
              "acts['relu2'][3].flatten(1).amax(dim=1) == 0. Or count the hatched panels.",
    solution_text=("maps = acts['relu2'][3]             # (32, 8, 8)\n"
                   "answer = int((maps.flatten(1).amax(dim=1) == 0).sum())"),
)
