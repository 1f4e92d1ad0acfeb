"""Exercises of lesson 06 (what a filter looks for): receptive fields and synthetic inputs."""
from __future__ import annotations

from typing import Any, cast

import torch

from functools import lru_cache

from torch import nn

from . import Exercise, Questionnaire, Wrong, as_choice, as_number, call, need_function
from . import as_int, as_tensor_answer
from . import reading as _reading


def _pool2_size(answer: Any) -> None:
    if isinstance(answer, (tuple, list)) and len(answer) == 2 and answer[0] == answer[1]:
        answer = answer[0]   # (16, 16) is fine too
    n = as_int(answer)
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


@lru_cache(maxsize=1)
def _model() -> nn.Module:
    from ..models import pretrained

    return pretrained().cpu().eval()


q1 = Exercise(
    name="q1",
    prompt="How wide (in input pixels) is the receptive field of one pool2 unit?",
    checker=_pool2_size,
    hint_text="Start from conv2's 14 x 14 with a jump of 2 pixels. A 2 x 2 pooling window "
              "adds (2 - 1) x jump. Check with featviz.receptive_field(model, 'pool2').",
    solution_text="answer = featviz.receptive_field(model, 'pool2').size[0]   # 14 + 1 * 2 = 16",
    giveaways=("16x16 patch", "16 x 16 patch"),
    reference=lambda: _reference_rf(tuple(stack_of(_model(), "pool2")))[0],
)


def _conv2_box(row: int, col: int) -> tuple[int, int, int, int]:
    from ..explain import receptive_field

    return receptive_field(_model(), "conv2").box(row, col)


def _box(answer: Any) -> None:
    expected = _conv2_box(2, 5)
    if hasattr(answer, "tolist") and not isinstance(answer, (str, bytes)):
        answer = answer.tolist()   # a tensor or an array
    try:
        values = list(answer)
    except TypeError:
        raise Wrong("give four whole numbers (top, left, bottom, right).") from None
    if isinstance(answer, str):
        raise Wrong("give four whole numbers (top, left, bottom, right), not a string.")
    got = tuple(as_int(v, "whole numbers for (top, left, bottom, right)") for v in values)
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
    giveaways=("(4, 10, 18, 24)",),
    reference=lambda: _conv2_box(2, 5),
)


#: q3's channel and unit: conv2 channel 6, whose centred synthetic pattern is unreadable,
#: driven at the top-left unit of its map instead of the centre.
CORNER_CHANNEL, CORNER_UNIT = 6, (0, 0)
#: How many test digits set the bar q3's synthetic image must clear.
CORNER_REAL = 1000


@lru_cache(maxsize=1)
def best_real_corner_score() -> float:
    """The strongest conv2 channel-6 response (any unit) over CORNER_REAL test digits."""
    from ..data import mnist_tensors
    from ..hooks import activations

    images, _ = mnist_tensors(train=False)
    maps = activations(_model(), images[:CORNER_REAL], ["conv2"])["conv2"][:, CORNER_CHANNEL]
    return float(maps.amax())


@lru_cache(maxsize=1)
def corner_image() -> torch.Tensor:
    """One right answer to q3, computed: gradient ascent on the corner unit."""
    from ..data import MNIST_RANGE
    from ..explain import maximize_activation

    return maximize_activation(_model(), "conv2", CORNER_CHANNEL, position=CORNER_UNIT,
                               value_range=MNIST_RANGE).images[0]


def _corner(answer: Any) -> None:
    from ..data import MNIST_RANGE

    x = as_tensor_answer(answer, "the image")
    if x.dim() == 2:
        x = x[None]
    if x.dim() == 4 and x.shape[0] == 1:
        x = x[0]
    if tuple(x.shape) != (1, 28, 28):
        raise Wrong(f"give one image of shape (1, 28, 28), not {tuple(answer.shape)}: "
                    f"maximize_activation(...).images[0] is one.")
    low, high = MNIST_RANGE
    if float(x.min()) < low - 1e-3 or float(x.max()) > high + 1e-3:
        raise Wrong(f"some pixels are outside MNIST's range ({float(x.min()):.2f} to "
                    f"{float(x.max()):.2f}, where paper is {low:.2f} and full ink {high:.2f}): "
                    f"pass value_range=featviz.MNIST_RANGE.")
    from ..hooks import activations

    maps = activations(_model(), x[None], ["conv2"])["conv2"][0, CORNER_CHANNEL]
    peak = divmod(int(maps.argmax()), maps.shape[-1])
    corner = float(maps[CORNER_UNIT])
    if peak != CORNER_UNIT:
        where = " (the centre unit, maximize_activation's default)" if peak == (4, 4) else ""
        raise Wrong(f"channel {CORNER_CHANNEL} answers this image most strongly at unit {peak}"
                    f"{where}, not at {CORNER_UNIT}: the position= argument of "
                    f"maximize_activation picks the unit.")
    bar = best_real_corner_score()
    if corner <= bar:
        grey = float(x.median()) > low + 0.1
        why = (" Most of your image is grey, not paper-black: keep "
               "value_range=featviz.MNIST_RANGE, which decays towards the black background."
               if grey else " Climb the unit's activation by gradient ascent: "
               "maximize_activation with position=.")
        raise Wrong(f"the corner unit is the strongest, but it scores {corner:.2f}, and a real "
                    f"digit reaches {bar:.2f}.{why}")


q3 = Exercise(
    name="q3",
    prompt="Synthesise an image that conv2 channel 6 answers most strongly at the top-left unit "
           "(row 0, column 0) of its map, with every pixel in MNIST's range, scoring there more "
           "than any of 1,000 real test digits does anywhere.",
    checker=_corner,
    hint_text="featviz.maximize_activation excites the centre unit by default; its position= "
              "argument takes a (row, col). Keep value_range=featviz.MNIST_RANGE. Which pixels "
              "can unit (0, 0) see? Only its 14 x 14 receptive field, at the top left.",
    solution_text="answer = featviz.maximize_activation(model, 'conv2', 6, position=(0, 0), "
                  "value_range=featviz.MNIST_RANGE).images[0]",
    reference=corner_image,
)


# --------------------------------------------------------------------------- code: the recurrence

Stack = tuple[tuple[int, int, int], ...]


def stack_of(model: nn.Module, layer: str) -> list[tuple[int, int, int]]:
    """``(kernel, stride, dilation)`` of each conv and pool layer of ``model`` up to ``layer``.

    Reads the modules in the order they were defined (right for sequential models
    such as the SimpleCNN), square kernels assumed.

    >>> stack_of(featviz.SimpleCNN(), "pool1")
    [(5, 1, 1), (2, 2, 1)]
    """
    stack = []
    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            pick = [v if isinstance(v, int) else v[0] for v in
                    (module.kernel_size, module.stride, getattr(module, "dilation", 1))]
            stack.append((pick[0], pick[1] or pick[0], pick[2]))
        if name == layer:
            return stack
    raise ValueError(f"{layer!r} is not a layer of the model; featviz.layers(model) lists them.")


def _reference_rf(stack: Stack) -> tuple[int, int]:
    """The receptive field of the last layer of ``stack``, from featviz.receptive_field."""
    from ..explain import receptive_field

    if not stack:
        return 1, 1
    layers = [nn.Conv2d(1, 1, k, stride=s, dilation=d) for k, s, d in stack]
    size = 1
    for k, s, d in reversed(stack):   # an input just large enough for one output unit
        size = (size - 1) * s + d * (k - 1) + 1
    rf = receptive_field(nn.Sequential(*layers), str(len(layers) - 1), input_size=(1, size, size))
    return rf.size[0], rf.stride[0]


def _recurrence(stack: Stack, *, start: int = 1, grow: str = "d(k-1)", scale: str = "jump",
                combine: str = "add", strides: bool = True) -> tuple[int, int]:
    """The recurrence, and its usual slips (for the messages): ``grow`` is what one layer adds
    before it is scaled, ``scale`` what it is multiplied by, ``combine`` add or multiply."""
    size, jump = start, 1
    for k, s, d in stack:
        term = {"d(k-1)": d * (k - 1), "dk": d * k, "d(k-1)+1": d * (k - 1) + 1,
                "dk-1": d * k - 1, "k-1": k - 1}[grow]
        factor = {"jump": jump, "none": 1, "stride": s, "jump*stride": jump * s}[scale]
        size = size + term * factor if combine == "add" else size * k
        jump *= s if strides else 1
    return size, jump


@lru_cache(maxsize=1)
def _rf_cases() -> tuple[tuple[Stack, tuple[int, int], str], ...]:
    from ..models import SimpleCNN

    model = SimpleCNN()
    cases = [(tuple(stack_of(model, name)), f"the SimpleCNN up to {name}")
             for name in ("conv1", "pool1", "conv2", "pool2")]
    cases += [((), "an empty stack (the input itself)"),
              (((3, 1, 1),), "one 3 x 3 convolution"),
              (((3, 2, 1), (3, 2, 1), (3, 2, 1)), "three 3 x 3 convolutions with stride 2"),
              (((3, 1, 2), (3, 1, 4)), "two dilated 3 x 3 convolutions (dilation 2, then 4)"),
              (((7, 2, 1), (3, 2, 1), (3, 1, 1), (3, 1, 1)), "a ResNet-like stem and block"),
              (((2, 2, 1), (5, 1, 1)), "a 2 x 2 pool, then a 5 x 5 convolution")]
    return tuple((stack, _reference_rf(stack), what) for stack, what in cases)


_KERNEL_MINUS_ONE = ("the (kernel - 1) slip: a layer adds (kernel - 1) x jump, not kernel x jump. "
                     "A window of k units reaches k - 1 units past the first one, and that "
                     "first unit is already counted")
_RF_SLIPS: tuple[tuple[dict[str, Any], str], ...] = (
    (dict(start=0), "off by one: start from a size of 1 (one input pixel sees itself), then "
                    "add (kernel - 1) x jump per layer."),
    (dict(grow="dk"), _KERNEL_MINUS_ONE + "."),
    (dict(grow="d(k-1)+1"), _KERNEL_MINUS_ONE + " (you add the whole span, d x (k - 1) + 1)."),
    (dict(grow="dk-1"), "the (kernel - 1) slip, with dilation: the dilation multiplies "
                        "(kernel - 1), so a layer adds dilation x (kernel - 1) x jump, not "
                        "(dilation x kernel - 1) x jump."),
    (dict(scale="none"), "multiply (kernel - 1) by the jump: after a stride-2 layer every step "
                         "of a window covers 2 input pixels, so it adds (kernel - 1) x jump, "
                         "not kernel - 1."),
    (dict(scale="stride"), "multiply (kernel - 1) by the jump, the product of the strides of "
                           "the layers BELOW, not by this layer's own stride."),
    (dict(strides=False), "the jump must be multiplied by each layer's stride: after a "
                          "stride-2 layer, neighbouring units are twice as far apart in the "
                          "input."),
    (dict(scale="jump*stride"), "add (kernel - 1) x jump with the jump of the layer BELOW, "
                                "then multiply the jump by this layer's stride."),
    (dict(combine="mul"), "the field grows by adding (kernel - 1) x jump per layer, not by "
                          "multiplying the size by the kernel."),
    (dict(grow="k-1"), "a dilated kernel spans dilation x (kernel - 1) + 1 input units: "
                       "use that span in place of the kernel."),
)


def _rf_answer(got: Any) -> tuple[int, int]:
    if not isinstance(got, (tuple, list)) or len(got) != 2:
        raise Wrong(f"return a pair (size, jump), e.g. `return size, jump`; your function "
                    f"returned {type(got).__name__}.")
    return as_int(got[0], "the size as a whole number"), as_int(got[1], "the jump as a whole number")


def _rf_stack(answer: Any) -> str:
    fn = need_function(answer, "rf(layers)")
    cases = _rf_cases()
    got = []
    for stack, _, what in cases:
        layers = [tuple(layer) for layer in stack]
        got.append(_rf_answer(call(fn, layers, returns="(size, jump)",
                                   on=f"layers={layers}, {what}")))
    wrong = [(g, c) for g, c in zip(got, cases) if g != c[1]]
    if not wrong:
        return f"It agrees with featviz.receptive_field on all {len(cases)} stacks."
    g, (stack, expected, what) = wrong[0]
    example = (f"for {what}, layers={list(stack)}, the receptive field is (size, jump) = "
               f"{expected}; you give {g}")
    for options, why in _RF_SLIPS:
        if all(_recurrence(c[0], **options) == value for value, c in zip(got, cases)):
            raise Wrong(f"{example}: {why}")
    part = "the size" if g[1] == expected[1] else ("the jump" if g[0] == expected[0] else "both")
    raise Wrong(f"{example} ({part} wrong; {len(wrong)} of {len(cases)} stacks disagree).")


q4 = Exercise(
    name="q4",
    prompt="Write rf(layers): the receptive field (size, jump) of the last layer of a stack of "
           "conv and pool layers, each given as (kernel, stride, dilation), first layer first.",
    checker=_rf_stack,
    hint_text="Start with size = 1 and jump = 1 (one input pixel). For each layer: size += "
              "(dilation * (kernel - 1)) * jump, then jump *= stride. ex.stack_of(model, "
              "'conv2') gives the SimpleCNN's layers to try it on.",
    solution_text="def rf(layers):\n"
                  "    size, jump = 1, 1                          # one input pixel\n"
                  "    for kernel, stride, dilation in layers:\n"
                  "        size += dilation * (kernel - 1) * jump   # the jump of the layer below\n"
                  "        jump *= stride\n"
                  "    return size, jump\n"
                  "answer = rf",
    kind="code",
)


# --------------------------------------------------------------------------- predict

#: How many training images p1's and p2's computed answers scan (the bundled sample's
#: whole training split; the full set gives the same verdicts).
SCAN = 10_000


@lru_cache(maxsize=1)
def synthetic_beats_real() -> str:
    """p1's answer, computed: 'yes' when the synthetic conv2 images beat the best real
    image of the first SCAN training images for most channels."""
    from ..data import MNIST_RANGE, mnist_tensors
    from ..explain import maximize_activation
    from ..hooks import activations

    images, _ = mnist_tensors(train=True)
    best = torch.stack([activations(_model(), chunk, ["conv2"])["conv2"].amax(dim=(0, 2, 3))
                        for chunk in images[:SCAN].split(1000)]).amax(0)
    synth = maximize_activation(_model(), "conv2", value_range=MNIST_RANGE).scores
    return "yes" if float((synth > best).float().mean()) > 0.5 else "no"


def _beats(answer: Any) -> None:
    choice = as_choice(answer, {"yes": ("y", "true", "most"), "no": ("n", "false", "few")},
                       "'yes' or 'no'")
    truth = synthetic_beats_real()
    if choice == truth:
        return
    if truth == "yes":
        raise Wrong("it does: gradient ascent is free to draw what no digit contains, a stroke "
                    "repeated or thicker than any real one, so it beats the best real digit "
                    "for (almost) every channel.")
    raise Wrong("it does not, for this model: the best real digits score higher for most "
                "channels.")


p1 = Exercise(
    name="p1",
    prompt="Predict: will the synthetic image beat the best real patch of the whole training "
           "set for most conv2 channels? 'yes' or 'no'.",
    checker=_beats,
    hint_text="The real patches are limited to what people wrote; the synthetic image may take "
              "any pixel values in the valid range, chosen to raise the channel's response.",
    solution_text="answer = 'yes'",
    kind="predict",
    reference=synthetic_beats_real,
    giveaways=("synthetic beats the best",),
)


@lru_cache(maxsize=1)
def dead_channel_best() -> float:
    """p2's answer, computed: the best relu2 score of channel 5 once its bias is 100 lower,
    over the first SCAN training images."""
    import copy

    from ..data import mnist_tensors
    from ..hooks import activations

    broken = copy.deepcopy(_model())
    with torch.no_grad():
        bias = cast(nn.Conv2d, broken.conv2).bias
        assert bias is not None
        bias[5] -= 100.0
    images, _ = mnist_tensors(train=True)
    return max(float(activations(broken, chunk, ["relu2"])["relu2"][:, 5].amax())
               for chunk in images[:SCAN].split(1000))


def _dead_score(answer: Any) -> None:
    value = as_number(answer, "a number (the best score)")
    if abs(value - dead_channel_best()) < 1e-6:
        return
    if value < 0:
        raise Wrong("the scores are read after the ReLU, which never gives less than 0.")
    raise Wrong(f"{value:g} is not it: the bias is 100 below anything the inputs can reach, so "
                f"the ReLU gives 0 for every image.")


p2 = Exercise(
    name="p2",
    prompt="Predict: after the bias of channel 5 is pushed 100 lower, what will the best "
           "relu2 score of that channel be, over all the training images?",
    checker=_dead_score,
    hint_text="conv2's output is now below -90 everywhere. What does ReLU make of that?",
    solution_text="answer = 0",
    kind="predict",
    reference=dead_channel_best,
    giveaways=("top scores after the ReLU",),
)


#: p3's channels: the five conv2 channels lesson 06 compares, pixel and Fourier images.
COMPARED = (10, 17, 25, 13, 6)


@lru_cache(maxsize=1)
def higher_parameterisation() -> str:
    """p3's answer, computed: 'fourier' when the Fourier images reach a higher activation
    than the pixel images on every one of the COMPARED channels (128 steps each), 'pixel'
    when they reach a lower one on every channel, 'mixed' otherwise."""
    from ..data import MNIST_RANGE
    from ..explain import maximize_activation

    chans = list(COMPARED)
    pixel = maximize_activation(_model(), "conv2", chans, value_range=MNIST_RANGE).scores
    smooth = maximize_activation(_model(), "conv2", chans, value_range=MNIST_RANGE,
                                 param="fourier").scores
    if bool((smooth > pixel).all()):
        return "fourier"
    return "pixel" if bool((smooth < pixel).all()) else "mixed"


def _higher(answer: Any) -> None:
    choice = as_choice(answer, {"fourier": ("f", "fft", "fourier images", "spectrum"),
                                "pixel": ("p", "pixels", "pixel space"),
                                "mixed": ("m", "neither", "depends", "it depends")},
                       "'pixel', 'fourier' or 'mixed'")
    truth = higher_parameterisation()
    if choice == truth:
        return
    if truth == "fourier":
        why = {"pixel": "in pixel space each pixel climbs on its own, and the blur and the "
                        "decay pull the image back at every step;",
               "mixed": "it is not a channel-by-channel toss-up:"}[choice]
        raise Wrong(f"{why} the Fourier images reach a higher activation on all five "
                    f"channels, for the same 128 steps.")
    raise Wrong(f"on these channels the answer is {truth!r}: compare the two rows of scores.")


p3 = Exercise(
    name="p3",
    prompt="Predict: on conv2 channels 10, 17, 25, 13 and 6, with 128 steps each, which "
           "parameterisation reaches the higher activation: 'pixel', 'fourier' or 'mixed' "
           "(it depends on the channel)?",
    checker=_higher,
    hint_text="Pixel ascent is held back by its blur and decay at every step; the Fourier "
              "image has no blur or decay, only a sigmoid that keeps it in range, and one "
              "step of its spectrum moves the whole image at once.",
    solution_text="answer = 'fourier'",
    kind="predict",
    reference=higher_parameterisation,
    giveaways=("Fourier / pixel", "Fourier reaches more"),
)


questionnaire = Questionnaire((
    ("Why are conv1's filters readable as pictures, and conv2's are not?",
     "conv1's weights multiply pixels, so a filter is a template of the image; conv2's weights "
     "multiply 16 feature maps, not pixels."),
    ("State the recurrence for the receptive field of a stack of conv and pool layers.",
     "Start with size 1 and jump 1; per layer, size += dilation x (kernel - 1) x jump, then "
     "jump x= stride."),
    ("Which input box does conv2 unit (row, col) of the SimpleCNN see?",
     "rows 2 x row to 2 x row + 14 and columns 2 x col to 2 x col + 14 (half-open): size 14, "
     "jump 2, offset 0."),
    ("How does featviz.top_activating find the best patches of every channel in one pass, "
     "without storing all activations?",
     "It streams the data in batches and keeps a running top-k per channel, with each winning "
     "unit's receptive-field box."),
    ("What do the jitter, blur and decay regularisers of activation maximisation do, and what "
     "happens without them?",
     "They keep the synthetic input image-like (robust to small shifts, smooth, mostly "
     "background); without them gradient ascent finds high-frequency patterns no digit has."),
    ("A Fourier image reaches a higher activation than a pixel image and looks crisper. Does "
     "that prove what the channel detects? What do you check it against?",
     "No: a synthetic image is one answer of an optimiser, and feature visualisations can be "
     "manipulated without changing the network's behaviour (Geirhos et al., 2024). Check it "
     "against real data (the top-activating patches, and which real patches the layer reads "
     "like it) and against behaviour."),
    ("How do you recognise a dead channel, and why do the top patches and the synthetic image "
     "not reveal it?",
     "Its best score over the data is 0 (after the ReLU). The top 'patches' are then simply "
     "the first images, and gradient ascent stays at 0 because an off ReLU passes no gradient."),
))

#: Sources this lesson cites beyond the shared list.
_REGULARISER_SOURCES = (
    ("Yosinski, Clune, Nguyen, Fuchs and Lipson (2015). Understanding neural networks "
     "through deep visualization. ICML Deep Learning Workshop.",
     "https://arxiv.org/abs/1506.06579",
     "regularised activation maximisation: decay, blur and clipping make the synthetic "
     "images readable."),
    ("Mordvintsev, Olah and Tyka (2015). Inceptionism: going deeper into neural networks. "
     "Google Research Blog.",
     "https://github.com/google/deepdream",
     "images grown by gradient ascent under a natural-image prior; the DeepDream code "
     "released with it (linked) jitters the image at every step."),
)

#: Section 4's Fourier images, and the paper behind its conclusion (a readable image is
#: not proof).
_FOURIER_SOURCES = (
    ("Mordvintsev, Pezzotti, Schubert and Olah (2018). Differentiable image "
     "parameterizations. Distill.",
     "https://distill.pub/2018/differentiable-parameterizations/",
     "why the same optimisation draws different pictures in different parameterisations, "
     "among them the decorrelated Fourier image."),
    ("Geirhos, Zimmermann, Bilodeau, Brendel and Kim (2024). Don't trust your eyes: on the "
     "(un)reliability of feature visualizations. ICML.",
     "https://arxiv.org/abs/2306.04719",
     "a network can be altered so that its feature visualisations show an arbitrary "
     "picture while it behaves as before on natural images, and even unaltered networks "
     "process feature visualisations differently from natural images."),
)

_shared = _reading(
    ("erhan2009", "activation maximisation: synthesising the input a unit likes best."),
    ("zeiler2014", "top-activating patches of each channel, projected back to pixel space."),
    ("olah2017", "feature visualisation, its regularisers and its pitfalls, with interactive "
                 "figures."),
    ("luo2016", "the effective receptive field: why the centre of the theoretical field "
                "matters most."),
    ("dumoulin2016", "the arithmetic of strides, padding and dilation behind the recurrence."),
)
reading = type(_shared)(_shared.items[:2] + _REGULARISER_SOURCES + _shared.items[2:3]
                        + _FOURIER_SOURCES + _shared.items[3:])
