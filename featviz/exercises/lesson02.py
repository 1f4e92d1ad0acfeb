"""Exercises of lesson 02 (the model)."""
from __future__ import annotations

from typing import Any


from . import Exercise, Wrong, as_int


def _conv3(answer: Any) -> None:
    value = as_int(answer)
    if value == 26:
        return
    if value == 24:
        raise Wrong("24 is what a 5 x 5 kernel gives. With 3 x 3 the window fits in more places.")
    if value == 13:
        raise Wrong("13 is after pooling too; the question asks for conv1's own output.")
    raise Wrong(f"{value} is not it. A k x k window fits in (28 - k + 1) positions across.")


q1 = Exercise(
    name="q1",
    prompt="If conv1 had 3 x 3 kernels (and no padding), how wide would its feature maps be?",
    checker=_conv3,
    hint_text="Without padding and with stride 1, out = in - kernel + 1.",
    solution_text="answer = 28 - 3 + 1   # 26",
)


def _conv2_params(answer: Any) -> None:
    value = as_int(answer)
    expected = 32 * 16 * 5 * 5 + 32
    if value == expected:
        return
    if value == 32 * 16 * 5 * 5:
        raise Wrong("close: you counted the weights; each of the 32 filters has a bias too.")
    if value == 32 * 5 * 5 + 32 or value == 32 * 5 * 5:
        raise Wrong("each conv2 filter reads all 16 channels of pool1, not one.")
    raise Wrong(f"{value} is not it. A filter has in_channels x 5 x 5 weights and one bias.")


q2 = Exercise(
    name="q2",
    prompt="How many parameters (weights and biases) does conv2 have?",
    checker=_conv2_params,
    hint_text="conv2 has 32 filters; each one spans all 16 input channels with a 5 x 5 "
              "kernel, and has one bias. Check with model.conv2.weight.numel().",
    solution_text="answer = 32 * 16 * 5 * 5 + 32   # 12,832\n"
                  "# or: sum(p.numel() for p in model.conv2.parameters())",
)


def _fc1_inputs(answer: Any) -> None:
    value = as_int(answer)
    expected = 32 * 5 * 5  # 32 -> conv 28 -> pool 14 -> conv 10 -> pool 5
    if value == expected:
        return
    if value == 32 * 4 * 4:
        raise Wrong("512 is for 28 x 28 images; follow a 32 x 32 image through the layers.")
    if value == 32 * 10 * 10:
        raise Wrong("that is before the second pooling: pool2 halves 10 to 5.")
    raise Wrong(f"{value} is not it. Follow the width: conv (-4), pool (/2), conv (-4), "
                f"pool (/2), then multiply by the 32 channels.")


q3 = Exercise(
    name="q3",
    prompt="For 32 x 32 grey images, how many inputs would fc1 need (the number in place of 32*4*4)?",
    checker=_fc1_inputs,
    hint_text="Apply the same steps as for 28: 32 -> conv1 -> pool1 -> conv2 -> pool2, "
              "then channels x height x width.",
    solution_text="answer = 32 * 5 * 5   # 32 -> 28 -> 14 -> 10 -> 5, so 800",
)
