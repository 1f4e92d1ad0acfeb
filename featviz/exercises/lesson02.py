"""Exercises of lesson 02 (the model)."""
from __future__ import annotations

import math
import numbers
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Exercise, Questionnaire, Wrong, as_choice, as_int, call, need_function
from . import reading as _reading


def _features(x: torch.Tensor, padding: int = 0) -> torch.Tensor:
    """The SimpleCNN's convolution blocks on ``x``, with ``padding`` on both convolutions."""
    from ..models import SimpleCNN

    net = SimpleCNN()
    for conv in (net.conv1, net.conv2):
        conv.padding = (padding, padding)
    with torch.no_grad():
        return net.pool2(net.relu2(net.conv2(net.pool1(net.relu1(net.conv1(x))))))


def _padded_fc1() -> int:
    """The right answer of q1: fc1's inputs with padding=2 on both 5 x 5 convolutions."""
    return _features(torch.zeros(1, 1, 28, 28), padding=2)[0].numel()


def _padded(answer: Any) -> None:
    value = as_int(answer)
    if value == _padded_fc1():
        return
    if value == 32 * 4 * 4:
        raise Wrong("512 is without padding. padding=2 adds 2 pixels on every side before the "
                    "5 x 5 window slides: what does W + 2p - k + 1 give for W = 28?")
    if value == 32 * 5 * 5:
        raise Wrong("that pads conv1 only; conv2 has padding=2 too.")
    if value == 32 * 6 * 6:
        raise Wrong("that pads conv2 only; conv1 has padding=2 too.")
    if value == 32 * 28 * 28 or value == 32 * 14 * 14:
        raise Wrong("the two 2 x 2 poolings still halve the maps, padding or not.")
    raise Wrong(f"{value} is not it. With padding 2, a 5 x 5 convolution keeps the size "
                f"(28 + 4 - 5 + 1 = 28); follow the width through both blocks, then multiply by "
                f"the 32 channels.")


q1 = Exercise(
    name="q1",
    prompt="If both convolutions had padding=2 (still 5 x 5 kernels), how many inputs would fc1 "
           "need (the number in place of 32*4*4)?",
    checker=_padded,
    hint_text="With padding p the width becomes W + 2p - k + 1: padding 2 with a 5 x 5 kernel "
              "keeps the width. The poolings still halve it.",
    solution_text="answer = 32 * 7 * 7   # 28 -> 28 -> 14 -> 14 -> 7, so 1568",
    giveaways=("1568", "1,568"),
    reference=_padded_fc1,
)


def _conv2_params(answer: Any) -> None:
    value = as_int(answer)
    expected = _mult_adds()[1]["conv2"]
    if value == expected:
        return
    if value == 32 * 16 * 5 * 5:
        raise Wrong("close: you counted the weights; each of the 32 filters has a bias too.")
    if value == 32 * 5 * 5 + 32 or value == 32 * 5 * 5:
        raise Wrong("each conv2 filter reads all 16 channels of pool1, not one.")
    raise Wrong(f"{value} is not it. A filter has in_channels x 5 x 5 weights and one bias.")


p2 = Exercise(
    name="p2",
    prompt="Predict: how many parameters (weights and biases) does conv2 have?",
    checker=_conv2_params,
    hint_text="conv2 has 32 filters; each one spans all 16 input channels with a 5 x 5 "
              "kernel, and has one bias. Check with model.conv2.weight.numel().",
    solution_text="answer = 32 * 16 * 5 * 5 + 32   # 12,832\n"
                  "# or: sum(p.numel() for p in model.conv2.parameters())",
    kind="predict",
    giveaways=("12,832", "12832"),
    reference=lambda: _mult_adds()[1]["conv2"],
)


def _fc1_inputs(answer: Any) -> None:
    value = as_int(answer)
    expected = _features(torch.zeros(1, 1, 32, 32))[0].numel()  # 32 -> 28 -> 14 -> 10 -> 5
    if value == expected:
        return
    if value == 32 * 4 * 4:
        raise Wrong("512 is for 28 x 28 images; follow a 32 x 32 image through the layers.")
    if value == 32 * 10 * 10:
        raise Wrong("that is before the second pooling: pool2 halves 10 to 5.")
    raise Wrong(f"{value} is not it. Follow the width: conv (-4), pool (/2), conv (-4), "
                f"pool (/2), then multiply by the 32 channels.")


q2 = Exercise(
    name="q2",
    prompt="For 32 x 32 grey images, how many inputs would fc1 need (the number in place of 32*4*4)?",
    checker=_fc1_inputs,
    hint_text="Apply the same steps as for 28: 32 -> conv1 -> pool1 -> conv2 -> pool2, "
              "then channels x height x width.",
    solution_text="answer = 32 * 5 * 5   # 32 -> 28 -> 14 -> 10 -> 5, so 800",
    giveaways=("800",),
    reference=lambda: _features(torch.zeros(1, 1, 32, 32))[0].numel(),
)


# --------------------------------------------------------------------------- code: output size

def _reference_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """What a convolution really gives (run on the meta device: shapes only, no arithmetic)."""
    x = torch.empty(1, 1, size, size, device="meta")
    w = torch.empty(1, 1, kernel, kernel, device="meta")
    return int(F.conv2d(x, w, stride=stride, padding=padding, dilation=dilation).shape[-1])


def _pair(v: Any, axis: int) -> int:
    return int(v[axis]) if isinstance(v, (tuple, list)) else int(v)


@lru_cache(maxsize=1)
def _layer_cases() -> tuple[tuple[int, int, int, int, int, int, str], ...]:
    """(size, kernel, stride, padding, dilation, output size, where) for every conv and pool
    layer of the SimpleCNN and of a ResNet-18, read off a forward pass on the meta device."""
    from torchvision.models import resnet18

    from ..models import SimpleCNN

    cases: list[tuple[int, int, int, int, int, int, str]] = []
    with torch.device("meta"):
        nets = [("SimpleCNN", SimpleCNN(), (1, 1, 28, 28)),
                ("ResNet-18", resnet18(), (1, 3, 224, 224)),
                ("ResNet-18 on a 37 x 53 image", resnet18(), (1, 3, 37, 53))]
    for net_name, net, shape in nets:
        handles = []

        def record(name: str) -> Any:
            def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
                for axis in (0, 1):
                    d = getattr(module, "dilation", 1)
                    cases.append((int(inputs[0].shape[2 + axis]), _pair(module.kernel_size, axis),
                                  _pair(module.stride, axis), _pair(module.padding, axis),
                                  _pair(d, axis), int(output.shape[2 + axis]),
                                  f"{net_name}, layer {name!r}"))
            return hook

        for name, module in net.named_modules():
            if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
                handles.append(module.register_forward_hook(record(name)))
        try:
            with torch.no_grad():
                net.eval()(torch.empty(shape, device="meta"))
        finally:
            for h in handles:
                h.remove()
    for args in [(7, 3, 2, 1, 2), (10, 3, 1, 2, 3), (5, 5, 1, 0, 1), (6, 3, 3, 0, 1),
                 (28, 5, 1, 2, 1), (1, 1, 1, 0, 1), (9, 2, 2, 0, 1),
                 # a stride that does not divide 2 x padding; a 2 x 2 window moved by 1
                 (8, 3, 3, 1, 1), (11, 5, 4, 3, 1), (9, 2, 1, 0, 1), (10, 2, 1, 1, 1)]:
        cases.append((*args, _reference_size(*args), "a made-up layer"))
    return tuple(dict.fromkeys(cases))   # unique, in order


def _as_size(got: Any, size: int, k: int, s: int, p: int, d: int) -> int:
    if hasattr(got, "item") and not isinstance(got, bool) and getattr(got, "size", None) in (1, ()) \
            or isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()               # a 0-d or one-element tensor or array, an np.int64
    if isinstance(got, bool) or not isinstance(got, numbers.Real):
        raise Wrong(f"return the output size as a whole number (an int), not "
                    f"{type(got).__name__}.")
    got = int(got) if isinstance(got, numbers.Integral) else float(got)
    if isinstance(got, float) and not got.is_integer():
        raise Wrong(f"for size={size}, kernel={k}, stride={s}, padding={p}, dilation={d} "
                    f"your function returns {got:g}: a layer fits a whole number of "
                    f"windows. Use floor division, //.")
    return int(got)


#: Typical slips, as formulas of (size, kernel, stride, padding, dilation), and what to say.
_SLIPS = (
    (lambda n, k, s, p, d: (n + 2 * p - d * (k - 1) - 1) // s,
     "off by one: the window's first position counts too, so add 1 after the division."),
    (lambda n, k, s, p, d: (n + 2 * p - k) // s + 1,
     "dilation spreads the kernel: it spans dilation x (kernel - 1) + 1 pixels, not kernel."),
    (lambda n, k, s, p, d: (n + 2 * p - d * k) // s + 1,
     "a dilated kernel spans dilation x (kernel - 1) + 1 pixels, not dilation x kernel."),
    (lambda n, k, s, p, d: (n + p - d * (k - 1) - 1) // s + 1,
     "padding is added on both sides: the padded size is size + 2 x padding."),
    (lambda n, k, s, p, d: n + 2 * p - d * (k - 1),
     "the window moves stride pixels at a time: divide the free room by the stride."),
    (lambda n, k, s, p, d: math.ceil((n + 2 * p - d * (k - 1) - 1) / s) + 1,
     "round down (//): a window that would hang over the edge is not used."),
)


def _out_size(answer: Any) -> str:
    fn = need_function(answer, "out_size(size, kernel, stride=1, padding=0, dilation=1)")
    cases = _layer_cases()
    got = [_as_size(call(fn, *case[:5], returns="the output size (an int)"), *case[:5])
           for case in cases]
    wrong = [(g, c) for g, c in zip(got, cases) if g != c[5]]
    if not wrong:
        return (f"It agrees with all {len(cases)} layers tried, every conv and pool of a "
                f"SimpleCNN and a ResNet-18 included.")
    g, (size, k, s, p, d, expected, where) = wrong[0]
    example = (f"for size={size}, kernel={k}, stride={s}, padding={p}, dilation={d} "
               f"({where}) your function gives {g}, the layer {expected}")
    for slip, why in _SLIPS:
        if all(slip(*c[:5]) == value for value, c in zip(got, cases)):
            raise Wrong(f"{example}: {why}")
    raise Wrong(f"{example} ({len(wrong)} of {len(cases)} layers disagree).")


q3 = Exercise(
    name="q3",
    prompt="Write out_size(size, kernel, stride=1, padding=0, dilation=1): the height (or "
           "width) of the maps a convolution or pooling layer makes from maps of height `size`.",
    checker=_out_size,
    hint_text="The padded input has size + 2 * padding pixels; a dilated kernel spans "
              "dilation * (kernel - 1) + 1 of them. Count the positions where that span fits, "
              "moving stride pixels at a time: the first one, plus one per full stride left.",
    solution_text="def out_size(size, kernel, stride=1, padding=0, dilation=1):\n"
                  "    span = dilation * (kernel - 1) + 1          # pixels the kernel covers\n"
                  "    return (size + 2 * padding - span) // stride + 1\n"
                  "answer = out_size",
    kind="code",
)


# --------------------------------------------------------------------------- predict

def _conv2_shape() -> tuple[int, ...]:
    """The right answer of p1: conv2's output for one 28 x 28 digit."""
    from ..models import SimpleCNN

    net = SimpleCNN()
    with torch.no_grad():
        return tuple(net.conv2(net.pool1(net.relu1(net.conv1(torch.zeros(1, 1, 28, 28))))).shape)


def _conv2_shape_check(answer: Any) -> None:
    if isinstance(answer, torch.Tensor):
        raise Wrong("give the shape as a tuple, not a tensor.")
    try:
        got = tuple(int(v) for v in answer)
    except (TypeError, ValueError):
        raise Wrong(f"give a shape as a tuple, e.g. (1, 16, 24, 24), not {answer!r}.") from None
    expected = _conv2_shape()
    if got in (expected, expected[1:]):
        return
    if len(got) in (3, 4) and got[-3] == 16:
        raise Wrong("conv2 makes its own maps, one per filter: Conv2d(16, 32, ...) reads 16 "
                    "channels and makes 32.")
    if got[-2:] == (4, 4):
        raise Wrong("4 x 4 is after pool2; conv2 comes before that pooling.")
    if got[-2:] == (20, 20):
        raise Wrong("20 x 20 skips pool1: conv2 reads pool1's maps, which are half of conv1's.")
    if got[-2:] == (9, 9):
        raise Wrong("a 5 x 5 convolution takes 4 pixels off, not 3: 12 - 5 + 1.")
    raise Wrong(f"{got} is not it: follow the width, 28 -> conv1 -> pool1 -> conv2, and count "
                f"conv2's filters.")


p1 = Exercise(
    name="p1",
    prompt="Predict: what shape (N, C, H, W) does conv2 give for one 28 x 28 digit?",
    checker=_conv2_shape_check,
    hint_text="conv1 is 5 x 5 without padding (-4 pixels), pool1 halves, conv2 is 5 x 5 again; "
              "conv2 has 32 filters.",
    solution_text="answer = (1, 32, 8, 8)   # 28 -> 24 -> 12 -> 8, 32 channels",
    kind="predict",
    giveaways=("32, 8, 8)",),
    reference=_conv2_shape,
)


def _layer_weight(module: nn.Module) -> torch.Tensor:
    weight = module.weight
    assert isinstance(weight, torch.Tensor)
    return weight


def _mult_adds() -> tuple[dict[str, int], dict[str, int]]:
    """Multiply-adds and parameters of each conv and linear layer of the SimpleCNN, one image."""
    from ..models import SimpleCNN

    net = SimpleCNN()
    work: dict[str, int] = {}
    params: dict[str, int] = {}
    handles = []
    for name, layer in net.named_children():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            def hook(module: nn.Module, inputs: Any, output: torch.Tensor, name: str = name) -> None:
                positions = output[0, 0].numel() if output.dim() == 4 else 1
                work[name] = int(_layer_weight(module).numel()) * positions
            handles.append(layer.register_forward_hook(hook))
            params[name] = sum(p.numel() for p in layer.parameters())
    try:
        with torch.no_grad():
            net(torch.zeros(1, 1, 28, 28))
    finally:
        for h in handles:
            h.remove()
    return work, params


_LAYERS = {name: (name,) for name in ("conv1", "conv2", "fc1", "fc2", "fc3")}


def _most_work(answer: Any) -> None:
    choice = as_choice(answer, _LAYERS, "a layer name")
    if choice == "conv2":
        return
    if choice == "fc1":
        raise Wrong("fc1 holds the most weights, but uses each one once per image; a "
                    "convolution uses each of its weights at every position of its maps.")
    if choice == "conv1":
        raise Wrong("conv1 runs at many positions (24 x 24), but has only 16 x 25 weights; "
                    "another layer has 80 times more weights at 8 x 8 positions.")
    raise Wrong(f"{choice} is small and runs once per image; look at the convolutions.")


p3 = Exercise(
    name="p3",
    prompt="Predict: which layer does the most multiply-adds for one image: conv1, conv2, "
           "fc1, fc2 or fc3?",
    checker=_most_work,
    hint_text="A linear layer uses each weight once per image. A convolution uses each weight "
              "once per position of its output: weights x height x width.",
    solution_text="answer = 'conv2'   # 12,800 weights x 8 x 8 positions = 819,200",
    kind="predict",
    giveaways=("of the multiply-adds",),
    reference=lambda: max(_mult_adds()[0].items(), key=lambda kv: kv[1])[0],
)


questionnaire = Questionnaire((
    ("What are the four kinds of layer in the SimpleCNN, and what does each do to the shape "
     "(N, C, H, W)?",
     "Conv2d changes C to the number of filters and shrinks H, W by kernel - 1 (no padding); "
     "ReLU keeps the shape; MaxPool2d(2) halves H and W; Flatten makes (N, C*H*W) for the "
     "Linear layers."),
    ("Write the output size of a convolution with kernel k, stride s, padding p, dilation d.",
     "floor((W + 2p - d(k - 1) - 1) / s) + 1."),
    ("Why does fc1 take 32 * 4 * 4 inputs, and what breaks with 36 x 36 images?",
     "conv2 makes 32 maps, and 28 pixels shrink to 4 (conv -4, pool /2, twice). With 36 x 36 "
     "inputs the maps are 6 x 6, flatten gives 1,152 values and fc1 refuses them."),
    ("How many parameters does a Conv2d(16, 32, 5) have, and why does it not depend on the "
     "image size?",
     "32 x 16 x 5 x 5 weights + 32 biases = 12,832: the same small filters slide over every "
     "position."),
    ("Which layers hold most of the SimpleCNN's weights, and which do most of its arithmetic?",
     "fc1 holds about 72% of the weights; the two convolutions do more than 90% of the "
     "multiply-adds."),
    ("What does featviz.layers(model) show, and why do later lessons need its names?",
     "Every named layer with its type, output shape and parameter count; capture and the "
     "other tools take these names to look inside."),
))

reading = _reading(
    ("lecun1998", "LeNet-5, the ancestor of the SimpleCNN: convolution, subsampling, fully "
                  "connected layers (section II)."),
    ("dumoulin2016", "the output-size arithmetic of convolution and pooling, with padding, "
                     "strides and dilation, drawn step by step."),
)
