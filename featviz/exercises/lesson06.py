"""Exercises of lesson 06 (what a filter looks for): receptive fields and synthetic inputs."""
from __future__ import annotations

from typing import Any

import torch

from . import Exercise, Wrong, as_int


def _as_int(answer: Any) -> int:
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and answer[0] == answer[1]:
        return as_int(answer[0])  # (16, 16) is fine too
    return as_int(answer)


def _pool2_size(answer: Any) -> None:
    n = _as_int(answer)
    if n == 16:
        return
    if n == 14:
        raise Wrong("14 is conv2's field. pool2 takes the max over 2 x 2 conv2 units that are "
                    "2 pixels apart, so it adds (2 - 1) x 2 pixels.")
    if n == 15:
        raise Wrong("close: the 2 x 2 pool adds (kernel - 1) x jump pixels, and the jump "
                    "(stride in input pixels) at conv2 is 2, not 1.")
    if n == 4:
        raise Wrong("4 is pool2's stride (the jump): neighbouring pool2 units are 4 pixels "
                    "apart. The question asks how wide the patch one unit sees is.")
    if n in (2, 5):
        raise Wrong(f"{n} is a kernel size of one layer; the receptive field adds up every "
                    "layer from the input to pool2.")
    if n == 28:
        raise Wrong("28 is the whole image: only the fully connected layers see all of it.")
    raise Wrong(f"{n} is not it. Each layer adds (kernel - 1) x jump, and each stride "
                "multiplies the jump.")


q1 = Exercise(
    name="q1",
    prompt="How wide (in input pixels) is the receptive field of one pool2 unit?",
    checker=_pool2_size,
    hint_text="Start from conv2's 14 x 14 with a jump of 2 pixels. A 2 x 2 pooling window "
              "adds (2 - 1) x jump. Check with featviz.receptive_field(model, 'pool2').",
    solution_text="answer = featviz.receptive_field(model, 'pool2').size[0]   # 14 + 1 * 2 = 16",
)


def _box(answer: Any) -> None:
    expected = (4, 10, 18, 24)
    try:
        got = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        raise Wrong("give four whole numbers (top, left, bottom, right).") from None
    if got == expected:
        return
    if len(got) != 4:
        raise Wrong(f"give four numbers (top, left, bottom, right), not {len(got)}.")
    if got == (10, 4, 24, 18):
        raise Wrong("rows first: unit (2, 5) is row 2, column 5, so top comes from the row.")
    if got == (4, 10, 17, 23):
        raise Wrong("the box is half-open, like a Python slice: bottom = top + size, so "
                    "image[..., top:bottom, left:right] is the patch.")
    if got == (2, 5, 16, 19):
        raise Wrong("the unit index is not a pixel: neighbouring conv2 units are 2 pixels "
                    "apart (the jump), so row 2 starts at 2 x 2 = 4.")
    raise Wrong(f"{got} is not it. top = offset + row x stride, bottom = top + size; the "
                f"same for columns.")


q2 = Exercise(
    name="q2",
    prompt="Which input box (top, left, bottom, right) does conv2 unit (row 2, column 5) see?",
    checker=_box,
    hint_text="rf = featviz.receptive_field(model, 'conv2'): each unit sees rf.size pixels, "
              "units are rf.stride apart and unit (0, 0) starts at rf.offset. rf.box(2, 5) "
              "checks your arithmetic.",
    solution_text="answer = featviz.receptive_field(model, 'conv2').box(2, 5)   # (4, 10, 18, 24)",
)


def _three(answer: Any) -> None:
    if not isinstance(answer, torch.Tensor):
        raise Wrong(f"give the image as a tensor, not {type(answer).__name__}.")
    x = answer.detach().to("cpu", torch.float32)
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if tuple(x.shape) != (1, 1, 28, 28):
        raise Wrong(f"give one image of shape (1, 28, 28) (or (1, 1, 28, 28)), not "
                    f"{tuple(answer.shape)}. .images[0] picks the first synthetic image.")
    from ..models import pretrained

    with torch.no_grad():
        prob = pretrained()(x).softmax(dim=1)[0]
    pred = int(prob.argmax())
    if pred != 3:
        raise Wrong(f"the model sees a {pred} ({prob[pred]:.0%}) in this image, not a 3. "
                    f"Maximise the logit of class 3: layer 'fc3', channel 3.")
    if prob[3] < 0.99:
        raise Wrong(f"the model says 3, but only with {prob[3]:.1%}; make it at least 99% "
                    f"(more steps, or the default settings).")


q3 = Exercise(
    name="q3",
    prompt="Synthesise an image that the model calls a 3 with at least 99% probability.",
    checker=_three,
    hint_text="The class scores are the outputs of 'fc3', one 'channel' per digit: "
              "featviz.maximize_activation(model, 'fc3', 3, value_range=featviz.MNIST_RANGE) "
              "climbs the score of class 3, keeping the image within MNIST's pixel range.",
    solution_text="answer = featviz.maximize_activation(model, 'fc3', 3, "
                  "value_range=featviz.MNIST_RANGE).images[0]",
)
