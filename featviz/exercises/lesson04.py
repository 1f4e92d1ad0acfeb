"""Exercises of lesson 04 (feature maps).

The answers are computed from the networks themselves when an answer is
checked (never written down here), so they stay right if the shipped weights
are retrained.
"""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from . import (Exercise, Questionnaire, Wrong, as_choice, as_int, as_number, call,
               call_on_model, expect_close, expect_hook_removed_on_failure, need_function)
from . import reading as _reading
from ..data import mnist_normalize
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
    return mnist_normalize(horizontal), mnist_normalize(vertical)


@functools.lru_cache(maxsize=1)
def _stroke_scores() -> torch.Tensor:
    """Per conv1 channel: mean relu1 response to horizontal bars minus vertical bars."""
    model = models.pretrained()
    horizontal, vertical = stroke_images()
    with torch.no_grad():
        h = model.relu1(model.conv1(horizontal)).mean(dim=(0, 2, 3))
        v = model.relu1(model.conv1(vertical)).mean(dim=(0, 2, 3))
    return h - v


#: How much more (mean relu1) a channel must give horizontal bars than vertical ones to count
#: as a horizontal-bar channel in q3.
PREFERENCE = 0.1


def horizontal_channels() -> list[int]:
    """The conv1 channels of the pretrained network whose mean relu1 response to horizontal
    bars exceeds their response to vertical bars by more than :data:`PREFERENCE`."""
    return [int(c) for c in (_stroke_scores() > PREFERENCE).nonzero().flatten()]


def _horizontal(answer: Any) -> None:
    expected = len(horizontal_channels())
    count = as_int(answer, "a whole number of channels")
    if count == expected:
        return
    scores = _stroke_scores()
    if count == int((scores > 0).sum()):
        raise Wrong(f"{count} channels prefer horizontal bars at all, by any margin; count only "
                    f"those ahead by more than {PREFERENCE}.")
    if count == int((scores < -PREFERENCE).sum()):
        raise Wrong(f"{count} is the count for VERTICAL bars (gain_v - gain_h > {PREFERENCE}); "
                    f"the question asks for horizontal ones.")
    if count == 4:
        raise Wrong("4 is how many the text above names for the 7's top bar; measure every "
                    "channel on the bars instead: (gain_h - gain_v) > 0.1.")
    raise Wrong(f"{count} is not it: compute gain_h - gain_v for all 16 channels and count the "
                f"values above {PREFERENCE}.")


q3 = Exercise(
    name="q3",
    prompt="How many conv1 channels of the pretrained network respond to horizontal bars by "
           f"more than {PREFERENCE} above their response to vertical bars (gain_h - gain_v > "
           f"{PREFERENCE}, mean relu1 as in the cell above)?",
    checker=_horizontal,
    hint_text="gain_h and gain_v hold one number per channel; (gain_h - gain_v) > 0.1 is a "
              "mask of 16 True/False values: sum it.",
    solution_text=(
        "gain_h = featviz.activations(model, horizontal, ['relu1'])['relu1'].mean(dim=(0, 2, 3))\n"
        "gain_v = featviz.activations(model, vertical, ['relu1'])['relu1'].mean(dim=(0, 2, 3))\n"
        "answer = int(((gain_h - gain_v) > 0.1).sum())   # the empty image's share cancels"
    ),
    reference=lambda: len(horizontal_channels()),
)


def _shape_of(answer: Any) -> tuple[int, ...]:
    if isinstance(answer, torch.Tensor):
        raise Wrong("give the shape, e.g. (channels, height, width), not a tensor.")
    try:
        return tuple(int(v) for v in answer)
    except TypeError:
        raise Wrong(f"give a shape as a tuple like (C, H, W), not {type(answer).__name__}.") from None


def _pool1_shape_28() -> tuple[int, ...]:
    model = SimpleCNN()
    with torch.no_grad():
        return tuple(model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 28, 28)))).shape[1:])


def _pool1_shape(answer: Any) -> None:
    expected = _pool1_shape_28()
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


p1 = Exercise(
    name="p1",
    prompt="Predict: what shape (C, H, W) does pool1 produce for one 28 x 28 digit?",
    checker=_pool1_shape,
    hint_text="conv1 output size = 28 - 5 + 1 (no padding); pool1 takes the max of each 2 x 2 block.",
    solution_text="answer = (16, 12, 12)   # conv1: 28 - 5 + 1 = 24; pool1: 24 / 2 = 12",
    kind="predict",
    giveaways=("16, 12, 12)",),
    reference=_pool1_shape_28,
)


def _conv2_side_56() -> int:
    model = SimpleCNN()
    with torch.no_grad():
        x = model.pool1(model.relu1(model.conv1(torch.zeros(1, 1, 56, 56))))
        return int(model.conv2(x).shape[-1])


def _conv2_size(answer: Any) -> None:
    expected = _conv2_side_56()
    if isinstance(answer, (tuple, list)):
        raise Wrong("give one number: the height (= width) of a map.")
    answer = as_int(answer, "one whole number, the height (= width) of a map")
    if answer == expected:
        return
    if answer == 8:
        raise Wrong("8 is the size for 28 x 28 digits; the input is twice as large here.")
    if answer == 16:
        raise Wrong("doubling the 28-pixel answer misses that each convolution takes off a "
                    "fixed 4 pixels, whatever the input size.")
    raise Wrong(f"{answer} is not it. Go layer by layer: conv1 (5 x 5), pool1 (2 x 2), conv2 (5 x 5).")


q4 = Exercise(
    name="q4",
    prompt="If the digits were 56 x 56 pixels, how high (and wide) would conv2's maps be?",
    checker=_conv2_size,
    hint_text="Each 5 x 5 convolution without padding takes 4 pixels off the height; "
              "the 2 x 2 pooling halves it. 56 -> ? -> ? -> ?",
    solution_text="answer = 22   # conv1: 56 - 4 = 52; pool1: 26; conv2: 26 - 4 = 22",
    giveaways=("22, 22)",),
    reference=_conv2_side_56,
)


def _dead_count(answer: Any) -> None:
    expected = dead_per_digit()[3]
    answer = as_int(answer, "a whole number of channels")
    if answer == expected:
        return
    raise Wrong(f"{answer} is not it: count the channels of relu2 whose largest value is 0.")


q5 = Exercise(
    name="q5",
    prompt="For the digit 3 (images[3]), how many of relu2's 32 channels are dead, that is "
           "zero everywhere?",
    checker=_dead_count,
    hint_text="A channel is dead for this image when its largest value is 0: "
              "acts['relu2'][3].flatten(1).amax(dim=1) == 0. Or count the hatched panels.",
    solution_text=("maps = acts['relu2'][3]             # (32, 8, 8)\n"
                   "answer = int((maps.flatten(1).amax(dim=1) == 0).sum())"),    giveaways=lambda: (str(dead_per_digit()),),
    reference=lambda: dead_per_digit()[3],
)


def dead_per_digit() -> list[int]:
    """How many relu2 channels are dead (zero everywhere) for each of the ten example digits."""
    from ..data import digit_examples

    images, _ = digit_examples()
    model = models.pretrained()
    with torch.no_grad():
        x = model.relu2(model.conv2(model.pool1(model.relu1(model.conv1(images)))))
    return (x.flatten(2).amax(dim=2) == 0).sum(dim=1).tolist()


# --------------------------------------------------------------------------- code: a hook by hand

def _conv2_output(model: SimpleCNN, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.conv2(model.pool1(model.relu1(model.conv1(x))))


class _Registrations:
    """Counts the learner's ``register_forward_hook`` calls on one module, and the global
    module hooks (``torch.nn.modules.module.register_module_forward_hook``) they add."""

    def __init__(self, module: nn.Module) -> None:
        self.module, self.count = module, 0
        self.global_before = set(_global_hooks())
        register = module.register_forward_hook

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return register(*args, **kwargs)

        object.__setattr__(module, "register_forward_hook", counted)

    def new_global_hooks(self) -> list[int]:
        return [k for k in _global_hooks() if k not in self.global_before]

    def release(self) -> None:
        self.module.__dict__.pop("register_forward_hook", None)
        for key in self.new_global_hooks():          # never leave a learner's global hook behind
            _global_hooks().pop(key, None)


def _global_hooks() -> dict[int, Any]:
    from torch.nn.modules import module as module_mod

    hooks: dict[int, Any] = getattr(module_mod, "_global_forward_hooks", {})
    return hooks


def _record_conv2(answer: Any) -> str:
    fn = need_function(answer, "record_conv2(model, images)")
    torch.manual_seed(0)
    model = SimpleCNN().eval()
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(4))
    conv2_forward = type(model.conv2).forward
    counter = _Registrations(model.conv2)
    try:
        got = call_on_model(fn, model, x, returns="the conv2 output your hook recorded",
                            hook_fix="keep the handle that register_forward_hook returns, and "
                                     "call handle.remove().")
        _compare_conv2(got, model, x)
        if counter.new_global_hooks():
            raise Wrong("your function registered a global hook (for every module of every "
                        "model) and left it there. Hook the one layer: "
                        "model.conv2.register_forward_hook(hook).")
        if "forward" in vars(model.conv2) or type(model.conv2).forward is not conv2_forward:
            raise Wrong("your function replaced conv2's forward method instead of hooking it; "
                        "the model is changed for good. Use model.conv2.register_forward_hook.")
        if counter.count == 0:
            raise Wrong("the value is right, but no forward hook was registered on model.conv2: "
                        "the exercise is to record it with a hook while the model runs "
                        "(model.conv2.register_forward_hook(hook)), not to compute it by hand.")
    finally:
        counter.release()
    expect_hook_removed_on_failure(lambda failing: fn(failing, x.clone()), model, "relu2", x,
                                   message="when the forward pass raises an error, your hook "
                                           "stays on conv2: the line that removes it never "
                                           "runs. Put the forward pass in `try:` and "
                                           "handle.remove() in `finally:`.")
    return "The value is conv2's output, and no hook is left, even after a pass that raised."


def _compare_conv2(got: Any, model: SimpleCNN, x: torch.Tensor) -> None:
    expected = _conv2_output(model, x)
    if isinstance(got, torch.Tensor):
        shape = tuple(got.shape)
        known = {
            (3, 16, 24, 24): "that is conv1's output; hook model.conv2.",
            (3, 16, 12, 12): "that is conv2's INPUT (inputs[0]); the hook is called as "
                             "hook(module, inputs, output): record output.",
            (3, 32, 4, 4): "that is pool2's output; hook model.conv2.",
            (3, 10): "that is the model's output (the logits); return what the hook recorded.",
        }
        if shape in known:
            raise Wrong(f"your function returned a tensor of shape {shape}: {known[shape]}")
        if shape == tuple(expected.shape) and torch.allclose(got.detach().cpu(),
                                                             expected.clamp(min=0), atol=1e-6):
            raise Wrong("those values are after the ReLU (relu2); conv2's own output has "
                        "negative values too.")
    expect_close(got, expected, "the recorded conv2 output")


q1 = Exercise(
    name="q1",
    prompt="Write record_conv2(model, images): register a forward hook on model.conv2 that "
           "records its output, run the model on the images, remove the hook (even when the "
           "forward pass raises an error) and return the recorded output.",
    checker=_record_conv2,
    hint_text="handle = model.conv2.register_forward_hook(hook), where hook(module, inputs, "
              "output) stores output.detach() in a dict; then `try: model(images)` and "
              "`finally: handle.remove()`; return the stored tensor.",
    solution_text="def record_conv2(model, images):\n"
                  "    captured = {}\n"
                  "\n"
                  "    def hook(module, inputs, output):\n"
                  "        captured['conv2'] = output.detach()\n"
                  "\n"
                  "    handle = model.conv2.register_forward_hook(hook)\n"
                  "    try:\n"
                  "        with torch.no_grad():\n"
                  "            model(images)\n"
                  "    finally:\n"
                  "        handle.remove()          # runs even when model(images) raises\n"
                  "    return captured['conv2']\n"
                  "answer = record_conv2",
    kind="code",
)


# --------------------------------------------------------------------------- code: one value by hand

def _value_cases() -> list[tuple[torch.Tensor, nn.Conv2d, int, int, int, str]]:
    torch.manual_seed(1)
    model = SimpleCNN()
    gen = torch.Generator().manual_seed(5)
    x1 = torch.randn(1, 28, 28, generator=gen)
    x2 = torch.randn(16, 12, 12, generator=gen)
    with torch.no_grad():   # biases large enough that forgetting one shows
        for conv in (model.conv1, model.conv2):
            assert conv.bias is not None  # SimpleCNN's convolutions have biases
            conv.bias.copy_(torch.randn(conv.bias.shape, generator=gen))
    return [(x1, model.conv1, 2, 10, 4, "conv1"), (x1, model.conv1, 7, 0, 0, "conv1"),
            (x1, model.conv1, 15, 23, 23, "conv1"), (x2, model.conv2, 5, 3, 6, "conv2"),
            (x2, model.conv2, 31, 7, 0, "conv2"), (x2, model.conv2, 0, 0, 7, "conv2")]


def _conv_value(answer: Any) -> str:
    fn = need_function(answer, "conv_value(x, conv, channel, row, col)")
    for x, conv, c, r, q, name in _value_cases():
        before = x.clone()
        got = call(fn, x, conv, c, r, q, returns="the value (a number)")
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise Wrong(f"return one number, the value at ({r}, {q}); you returned a tensor of "
                        f"shape {tuple(got.shape)}. Did you forget the .sum()?")
        value = as_number(got, "the value as one number")
        if not torch.equal(x, before):
            raise Wrong("your function changed the input x in place; only read it.")
        with torch.no_grad():
            expected = float(conv(x.unsqueeze(0))[0, c, r, q])
        if abs(value - expected) > 1e-4 * max(1.0, abs(expected)):
            _explain_value(value, expected, x, conv, c, r, q, name)
    return "Right for conv1 and for conv2 (all 16 input channels), corners included."


def _explain_value(value: float, expected: float, x: torch.Tensor, conv: nn.Conv2d, c: int,
                   r: int, q: int, name: str) -> None:
    w = conv.weight.detach()[c]
    b = float(conv.bias.detach()[c]) if conv.bias is not None else 0.0
    k = w.shape[-1]
    h, wd = x.shape[-2:]
    where = f"{name}, channel {c}, at (row {r}, col {q})"

    def near(v: float) -> bool:
        return abs(value - v) < 1e-4 * max(1.0, abs(v))

    def at(rr: int, qq: int, weight: torch.Tensor = w) -> float | None:
        if 0 <= rr <= h - k and 0 <= qq <= wd - k:
            return float((weight * x[:, rr:rr + k, qq:qq + k]).sum()) + b
        return None

    if near(expected - b):
        raise Wrong(f"{where}: you give {value:.4f}, the layer {expected:.4f}, which is yours "
                    f"plus the bias {b:.4f}: add conv.bias[channel].")
    if x.shape[0] > 1 and (near(float((w[0] * x[0, r:r + k, q:q + k]).sum()) + b)
                           or near(float((w[0] * x[0, r:r + k, q:q + k]).sum()))):
        raise Wrong(f"{where}: you summed over one input channel only. A conv2 filter has a "
                    f"5 x 5 kernel for each of the {x.shape[0]} input maps: multiply and sum over "
                    f"all of them, x[:, row:row + 5, col:col + 5] with conv.weight[channel].")
    if near(at(q, r) or float("nan")):
        raise Wrong(f"{where}: rows and columns are swapped. x is (C, H, W): the patch of unit "
                    f"(row, col) is x[:, row:row + k, col:col + k].")
    if near(at(r, q, w.flip(-1, -2)) or float("nan")):
        raise Wrong(f"{where}: you flipped the kernel. PyTorch's Conv2d does not flip it (it "
                    f"computes a cross-correlation): multiply weight[i, j] with x[row + i, col + j].")
    for dr, dq in ((1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1)):
        other = at(r + dr, q + dq)
        if other is not None and near(other):
            raise Wrong(f"{where}: your patch is off by one. Unit (row, col) sees "
                        f"x[:, row:row + k, col:col + k]: the window starts at the unit's own "
                        f"row and column.")
    raise Wrong(f"{where}: expected {expected:.4f}, you give {value:.4f} (off by "
                f"{value - expected:+.4f}).")


q2 = Exercise(
    name="q2",
    prompt="Write conv_value(x, conv, channel, row, col): the value at (row, col) of map "
           "`channel` of a Conv2d layer `conv` (stride 1, no padding), computed by hand from "
           "its input x of shape (C, H, W), the kernel and the bias.",
    checker=_conv_value,
    hint_text="k = conv.kernel_size[0]; patch = x[:, row:row + k, col:col + k] has the shape "
              "of conv.weight[channel], (C, k, k). Multiply them, sum everything, add "
              "conv.bias[channel].",
    solution_text="def conv_value(x, conv, channel, row, col):\n"
                  "    k = conv.kernel_size[0]\n"
                  "    patch = x[:, row:row + k, col:col + k]                # (C, k, k)\n"
                  "    total = (conv.weight[channel] * patch).sum()          # every input channel\n"
                  "    return (total + conv.bias[channel]).item()\n"
                  "answer = conv_value",
    kind="code",
    error_hints=(("must match the size", "The patch and the kernel differ in size: unit (row, "
                                         "col) sees x[:, row:row + k, col:col + k]."),),
)


# --------------------------------------------------------------------------- predict

@functools.lru_cache(maxsize=1)
def relu_zero_share() -> float:
    """The share of conv1's values that relu1 sets to zero, over the ten example digits."""
    from ..data import digit_examples

    images, _ = digit_examples()
    with torch.no_grad():
        maps = models.pretrained().conv1(images)
    return float((maps <= 0).float().mean())


def _zero_share(answer: Any) -> None:
    value = as_number(answer, "a share, e.g. 0.5 or 50 (%)")
    share = value / 100 if value > 1 else value
    true = relu_zero_share()
    if abs(share - true) <= 0.15:
        return
    more = "more" if share < true else "fewer"
    raise Wrong(f"{share:.0%} is not it: there are {more}. Most of a digit is background, and "
                f"a filter's response to flat background is one constant, positive or negative.")


p2 = Exercise(
    name="p2",
    prompt="Predict: what share of conv1's values will relu1 set to zero for these digits: "
           "about 10%, 40% or 70%?",
    checker=_zero_share,
    hint_text="Most of each image is flat black background. What does a filter give there, and "
              "how many filters would that be negative for? Plus the dark side of every edge.",
    solution_text="answer = 0.7   # about two thirds: featviz.exercises.lesson04.relu_zero_share()",
    kind="predict",
    giveaways=("of conv1's values to zero",),
    reference=relu_zero_share,
)


@functools.lru_cache(maxsize=1)
def pool_vs_relu_change() -> str:
    """'less', 'more' or 'same': how pool1's maps change after a one-pixel shift of the ten
    example digits, relative to their size, against relu1's."""
    from ..data import digit_examples

    images, _ = digit_examples()
    moved = torch.roll(images, 1, dims=-1)
    model = models.pretrained()
    with torch.no_grad():
        change = {}
        for name in ("relu1", "pool1"):
            def upto(x: torch.Tensor, name: str = name) -> torch.Tensor:
                x = model.relu1(model.conv1(x))
                return model.pool1(x) if name == "pool1" else x
            a, b = upto(images), upto(moved)
            change[name] = float((a - b).abs().mean() / a.abs().mean())
    ratio = change["pool1"] / change["relu1"]
    return "less" if ratio < 0.95 else "more" if ratio > 1.05 else "same"


def _pool_change(answer: Any) -> None:
    choice = as_choice(answer, {"less": ("smaller", "pool1 less"), "more": ("larger", "bigger"),
                                "same": ("equal", "the same")}, "'less', 'more' or 'same'")
    if choice == pool_vs_relu_change():
        return
    raise Wrong("a 2 x 2 max keeps its value when the maximum moves by a pixel inside the "
                "block: pooling absorbs part of a small shift.")


p3 = Exercise(
    name="p3",
    prompt="Predict: after the digits move one pixel to the right, will pool1's maps change "
           "'less', 'more' or the 'same' as relu1's (relative to their size)?",
    checker=_pool_change,
    hint_text="Max pooling keeps the largest value of each 2 x 2 block. What happens to that "
              "maximum when the pattern moves one pixel and stays in the block?",
    solution_text="answer = 'less'",
    kind="predict",
    reference=pool_vs_relu_change,
    giveaways=("mean change after a one-pixel shift",),
)


questionnaire = Questionnaire((
    ("What is a feature map, and how many does a Conv2d(1, 16, 5) make for one image?",
     "The grid of one filter's responses at every position of the image; 16, one per filter."),
    ("Compute one value of a conv1 map by hand: what do you multiply, add and sum? What "
     "changes for conv2?",
     "The 5 x 5 patch under the position times the filter's weights, summed, plus the bias; "
     "for conv2 the same over all 16 input maps, summed together, plus one bias."),
    ("What are the three steps of a forward hook, and why must the last one be in a finally: "
     "block?",
     "Register it on the module, run the model, remove it with the handle; if the forward pass "
     "raises, the removal must still run, or the hook keeps running at every later pass."),
    ("What does featviz.capture add to a hand-written hook?",
     "Layers by name, copies detached on the CPU, and every hook removed when the with block "
     "ends, normally or with an error."),
    ("What does ReLU do to a map, and how does the colour scale of the figure change?",
     "It sets negative values to zero; signed maps use a diverging red-white-blue scale, "
     "non-negative ones a sequential black-to-bright scale."),
    ("Why are the maps of an untrained network not a fair picture of what a CNN learns?",
     "Random filters are noise: their maps are blurred copies of the input, alike from channel "
     "to channel; trained filters are smooth edge and stroke detectors."),
    ("What is a dead channel, and how does the grid show it?",
     "A channel that is zero everywhere for an image (after ReLU); it is drawn grey and "
     "hatched."),
))

reading = _reading(
    ("zeiler2014", "the first systematic look at a trained CNN's feature maps, layer by layer."),
    ("olah2018", "feature maps as the building blocks of interpretability, with interactive "
                 "figures."),
    ("lecun1998", "feature maps in the original LeNet, and why convolution shares weights."),
)
