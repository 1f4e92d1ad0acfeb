"""Exercises of lesson 05 (the explorer).

Every answer is computed from the shipped model and data when checked, never
stored: if the checkpoint is retrained, the checkers follow it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from . import (Exercise, HookSpy, ModeGuard, Questionnaire, Wrong, as_choice, as_int, call,
               need_function)
from . import reading as _reading

#: A relu2 filter "ignores" the digit 1 when its mean response to images of 1s is
#: below this fraction of its mean response to the other digits.
IGNORE_FRACTION = 0.10
#: How many test images the "ignores" statistics use (about 100 per digit).
SAMPLE = 1000


@lru_cache(maxsize=1)
def _model() -> torch.nn.Module:
    from ..models import pretrained

    return pretrained().cpu().eval()


@lru_cache(maxsize=1)
def _explorer_images() -> tuple[torch.Tensor, torch.Tensor]:
    from ..data import digit_batch

    # the explorer's default: ten test images of each digit, the digits in turn
    return digit_batch([d for _ in range(10) for d in range(10)])


def explorer_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The explorer's default images and labels: image ``i`` is a digit ``i % 10``."""
    images, labels = _explorer_images()
    return images.clone(), labels.clone()


@lru_cache(maxsize=1)
def _relu2_by_digit() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean relu2 activation of each channel on 1s and on the other digits."""
    from ..data import mnist_tensors
    from ..hooks import activations

    images, labels = mnist_tensors(train=False)
    images, labels = images[:SAMPLE], labels[:SAMPLE]
    means = activations(_model(), images, ["relu2"])["relu2"].mean(dim=(2, 3))
    return means[labels == 1].mean(0), means[labels != 1].mean(0)


def ignoring_one() -> list[int]:
    """The relu2 filters that ignore the digit 1 (the answers q1 accepts)."""
    ones, others = _relu2_by_digit()
    return [c for c in range(len(ones))
            if others[c] > 0 and ones[c] < IGNORE_FRACTION * others[c]]


def _channel(answer: Any, channels: int) -> int:
    if isinstance(answer, str):
        raise Wrong(f"give a filter number (an int), not str {answer!r}.")
    c = as_int(answer, "a filter number (a whole number)")
    if not 0 <= c < channels:
        raise Wrong(f"relu2 has {channels} filters, numbered 0 to {channels - 1}; "
                    f"{c} is not one of them.")
    return c


def _ignores_one(answer: Any) -> None:
    ones, others = _relu2_by_digit()
    c = _channel(answer, len(ones))
    if others[c] <= 0:
        raise Wrong(f"filter {c} is silent for every digit, so it ignores everything, not "
                    f"the 1s in particular. Find one that lights up for other digits.")
    share = float(ones[c] / others[c])
    if share >= IGNORE_FRACTION:
        raise Wrong(f"filter {c} still answers 1s with {share:.0%} of its response to other "
                    f"digits. Look for a tile that goes dark when the label is 1 but is "
                    f"bright for the other digits.")


q1 = Exercise(
    name="q1",
    prompt="Find a filter of layer relu2 that ignores the digit 1 (give its number).",
    checker=_ignores_one,
    hint_text="Choose layer relu2 and the 'shared' scale, then click through the labels "
              "with the label buttons. A filter that ignores 1s has a black tile for every 1 "
              "but lights up for most other digits.",
    solution_text="answer = ex.ignoring_one()[0]\n"
                  "# several filters do; ex.ignoring_one() lists them, computed from the model",
    reference=lambda: ignoring_one()[0],
)


@lru_cache(maxsize=1)
def _image0_ranking() -> list[int]:
    from ..hooks import activations

    images, _ = _explorer_images()
    means = activations(_model(), images[:1], ["relu2"])["relu2"][0].mean(dim=(1, 2))
    return [int(c) for c in torch.argsort(means, descending=True)]


def _strongest(answer: Any) -> None:
    ranking = _image0_ranking()
    c = _channel(answer, len(ranking))
    if c == ranking[0]:
        return
    place = ranking.index(c) + 1
    if place <= 3:
        raise Wrong(f"close: filter {c} is number {place} by mean activation. Compare the "
                    f"'mean' values in the 'one map' view.")
    raise Wrong(f"filter {c} is only number {place} of {len(ranking)} by mean activation.")


q2 = Exercise(
    name="q2",
    prompt="For image 0 of the explorer (a 0), which relu2 filter has the highest mean "
           "activation?",
    checker=_strongest,
    hint_text="Switch the view to 'one map' and move the filter slider: the mean is written "
              "beside the picture. On the shared scale, the brightest tile of the grid is a "
              "good first guess, but bright and large are not the same as a high mean.",
    solution_text="images, labels = ex.explorer_images()\n"
                  "acts = featviz.activations(model, images[:1], ['relu2'])\n"
                  "answer = int(acts['relu2'][0].mean(dim=(1, 2)).argmax())",
    reference=lambda: _image0_ranking()[0],
)


@lru_cache(maxsize=1)
def _snapshot_verdicts() -> list[tuple[str, bool]]:
    from ..models import pretrained_snapshots

    images, labels = _explorer_images()
    out = []
    with torch.no_grad():
        for label, model in pretrained_snapshots():
            pred = model(images[:10]).argmax(1)
            out.append((label, bool((pred == labels[:10]).all())))
    return out


def first_all_right() -> str:
    """The earliest snapshot from which on every later one gets images 0-9 right."""
    verdicts = _snapshot_verdicts()
    first = None
    for label, right in verdicts:
        if right and first is None:
            first = label
        elif not right:
            first = None
    if first is None:
        raise RuntimeError("no snapshot classifies the first ten images correctly")
    return first


def _emerges(answer: Any) -> None:
    labels = [label for label, _ in _snapshot_verdicts()]
    if not isinstance(answer, str):
        try:
            position = as_int(answer)
        except Wrong:
            position = -1
        if 0 <= position < len(labels):
            answer = labels[position]  # the time slider's position also counts
    if not isinstance(answer, str):
        raise Wrong(f"give the snapshot's label as the slider shows it, e.g. {labels[1]!r}.")
    given = answer.strip().lower()
    known = {label.lower(): label for label in labels}
    if given not in known:
        raise Wrong(f"{answer!r} is not a snapshot; they are {', '.join(labels)}.")
    right = first_all_right()
    if known[given] == right:
        return
    if labels.index(known[given]) < labels.index(right):
        raise Wrong(f"at {known[given]!r} the model still gets at least one of images 0-9 "
                    f"wrong (or does again later). Check each image's prediction there.")
    raise Wrong(f"at {known[given]!r} all ten are right, but an earlier snapshot already "
                f"gets them all right and keeps doing so.")


q3 = Exercise(
    name="q3",
    prompt="Using the training slider: from which snapshot on does the model classify all of "
           "images 0 to 9 (one of each digit) correctly?",
    checker=_emerges,
    hint_text="Put the training slider at 'init' and step it to the right. At each snapshot, "
              "move the image slider over 0..9 and watch the 'predicted' line.",
    solution_text="answer = ex.first_all_right()\n"
                  "# a snapshot label such as 'step 300': a fraction of one epoch is enough",
    reference=first_all_right,
)


def dead_maps(index: int = 1, layer: str = "relu2") -> int:
    """How many maps of ``layer`` are zero everywhere for explorer image ``index``."""
    from ..hooks import activations

    images, _ = _explorer_images()
    maps = activations(_model(), images[index:index + 1], [layer])[layer][0]
    return int((maps.flatten(1).abs().amax(1) == 0).sum())


def _count_dead(answer: Any) -> None:
    answer = as_int(answer, "a count (a whole number)")
    expected = dead_maps(1)
    if answer != expected:
        more = "more" if answer < expected else "fewer"
        raise Wrong(f"{answer} is not it: there are {more}. Dead maps are the grey hatched "
                    f"tiles of the grid.")


q4 = Exercise(
    name="q4",
    prompt="How many maps of relu2 are zero everywhere (dead) for image 1 of the explorer "
           "(a 1), with the trained model?",
    checker=_count_dead,
    hint_text="Choose image 1 and layer relu2, with the training slider at the end. A map "
              "that is zero everywhere is drawn grey and hatched, and its 'max' is 0.",
    solution_text="images, labels = ex.explorer_images()\n"
                  "acts = featviz.activations(model, images[1:2], ['relu2'])\n"
                  "answer = int((acts['relu2'][0].flatten(1).amax(1) == 0).sum())",
    giveaways=lambda: (f"{dead_maps(1)} of 32 relu2 maps",),
    reference=lambda: dead_maps(1),
)


# --------------------------------------------------------------------------- code: where the peak goes

def _peak(model: torch.nn.Module, image: torch.Tensor, layer: str, channel: int,
          shift: tuple[int, int], move: Any = None) -> tuple[tuple[int, int], torch.Tensor]:
    from ..hooks import activations
    from ..perturbation import perturb

    moved = perturb(image, shift=shift) if move is None else move(image, shift)
    maps = activations(model, moved.unsqueeze(0), [layer])[layer][0, channel]
    index = int(maps.argmax())
    return divmod(index, maps.shape[-1]), maps


def _rolled(image: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    """The slip: torch.roll wraps the digit around the edge instead of moving in background."""
    return torch.roll(image, shifts=(shift[1], shift[0]), dims=(-2, -1))


@lru_cache(maxsize=1)
def _trunk() -> torch.nn.Module:
    """The trained SimpleCNN's convolutional layers alone: they take images of any size."""
    from collections import OrderedDict

    model = _model()
    names = ("conv1", "relu1", "pool1", "conv2", "relu2", "pool2")
    return torch.nn.Sequential(OrderedDict((n, getattr(model, n)) for n in names)).eval()


def _wide(image: torch.Tensor, width: int = 44, left: int = 6) -> torch.Tensor:
    """A digit on a wider page, (C, 28, width): its maps are not square."""
    page = torch.full((*image.shape[:-1], width), float(image.min()))
    page[..., left:left + image.shape[-1]] = image
    return page


#: (image, layer, shift, wide page?): every direction, shifts large enough for the digit to
#: cross the border (for these, a channel is picked whose peak torch.roll would misplace,
#: wrapping the digit around), and maps that are not square.
_PEAK_SETUPS = ((3, "conv1", (0, 0), False), (3, "conv1", (3, 0), False),
                (7, "conv1", (0, -2), False), (2, "relu2", (2, 1), False),
                (5, "conv2", (-3, 2), False), (8, "relu1", (1, 3), False),
                (0, "conv1", (-14, 0), False), (4, "relu1", (11, -9), False),
                (3, "conv1", (2, 1), True), (6, "relu2", (-3, 2), True))


@lru_cache(maxsize=1)
def _peak_cases() -> tuple[tuple[str, bool, torch.Tensor, str, int, tuple[int, int],
                                 tuple[int, int]], ...]:
    """(what, wide?, image, layer, channel, shift, peak), each peak one clear maximum."""
    images, _ = _explorer_images()
    cases = []
    for index, layer, shift, wide in _PEAK_SETUPS:
        image = _wide(images[index]) if wide else images[index]
        model = _trunk() if wide else _model()
        for channel in range(32):
            try:
                peak, maps = _peak(model, image, layer, channel, shift)
            except IndexError:
                break
            top = maps.flatten().topk(2).values
            crosses = max(abs(v) for v in shift) > 8
            if crosses and _peak(model, image, layer, channel, shift, move=_rolled)[0] == peak:
                continue
            if float(top[0] - top[1]) > 1e-3 and float(top[0]) > 0 and peak[0] != peak[1]:
                size = "x".join(str(n) for n in image.shape[-2:])
                what = (f"image {index}" + (f" on a {size} page (maps "
                        f"{maps.shape[-2]} high, {maps.shape[-1]} wide)" if wide else ""))
                cases.append((what, wide, image, layer, channel, shift, peak))
                break
    return tuple(cases)


def _as_position(got: Any) -> tuple[int, int]:
    if isinstance(got, torch.Tensor):
        if got.numel() == 1:
            raise Wrong(f"your function returned one number ({int(got)}), the index in the "
                        f"flattened map; turn it into (row, col) with divmod(index, width).")
        got = got.tolist()
    if hasattr(got, "tolist") and not isinstance(got, (str, bytes)):
        got = got.tolist()   # a numpy array or number
    if isinstance(got, int) and not isinstance(got, bool):
        raise Wrong(f"your function returned one number ({got}), the index in the flattened "
                    f"map; turn it into (row, col) with divmod(index, width).")
    try:
        row, col = (as_int(v, "a row or column number") for v in got)
    except (TypeError, ValueError):
        raise Wrong(f"return the position as a pair (row, col), not {got!r}.") from None
    return row, col


def _peak_position(answer: Any) -> str:
    fn = need_function(answer, "peak_position(model, image, layer, channel, shift)")
    from ..models import pretrained

    model = pretrained().cpu().eval()
    for what, wide, image, layer, channel, shift, expected in _peak_cases():
        given = _trunk() if wide else model
        original = image.clone()
        guard, spy = ModeGuard(given), HookSpy(given.modules())
        case = f"for {what}, {layer} channel {channel}, shift={shift}"
        try:
            got = _as_position(call(fn, given, image.clone(), layer, channel, shift,
                                    returns="the (row, col) of the peak",
                                    on=f"{what}, layer={layer!r}, channel={channel}, shift={shift}"))
            guard.check()
            if not torch.equal(image, original):
                raise Wrong("your function changed the image it was given; perturb makes a "
                            "moved copy.")
            if spy.live_hooks(given, image.unsqueeze(0)):
                raise Wrong("a hook you registered is still on the model: remove it "
                            "(featviz.activations does that for you).")
        finally:
            spy.release()
        if got != expected:
            _explain_peak(got, expected, image, _trunk() if wide else _model(), layer, channel,
                          shift, case)
    return ("Right for conv, ReLU, shifts in every direction, digits pushed over the border "
            "and maps that are wider than high.")


def _explain_peak(got: tuple[int, int], expected: tuple[int, int], image: torch.Tensor,
                  model: torch.nn.Module, layer: str, channel: int, shift: tuple[int, int],
                  case: str) -> None:
    still, maps = _peak(model, image, layer, channel, (0, 0))
    height, width = maps.shape[-2:]
    if got == expected[::-1]:
        raise Wrong(f"{case} the peak is at (row, col) = {expected}; you give {got}, the column "
                    f"first. Rows go down (y), columns across (x).")
    if got == still and shift != (0, 0):
        raise Wrong(f"{case} you give {got}, where the peak is WITHOUT the shift: move the image "
                    f"first, featviz.perturb(image, shift=shift).")
    if got == _peak(model, image, layer, channel, shift, move=_rolled)[0]:
        raise Wrong(f"{case} you give {got}, the peak of the image wrapped around its border "
                    f"(torch.roll?): what leaves on one side comes back on the other. "
                    f"featviz.perturb moves background in from the border: use it.")
    if got == _peak(model, image, layer, channel, shift[::-1])[0]:
        raise Wrong(f"{case} you moved the image by {shift[::-1]}: perturb's shift is (dx, dy), "
                    f"dx to the right (columns) and dy down (rows); pass it as it is.")
    if got == _peak(model, image, layer, channel, (-shift[0], -shift[1]))[0]:
        raise Wrong(f"{case} you moved the image the other way: shift=(dx, dy) moves it dx "
                    f"pixels right and dy down.")
    flat = expected[0] * width + expected[1]
    if height != width and got == divmod(flat, height):
        raise Wrong(f"{case} you give {got}: you divided by the map's height ({height}), but a "
                    f"flat index counts along each row, so divide by its width ({width}): "
                    f"divmod(index, maps.shape[-1]).")
    for other in (28, 24, 12, 8, 4):
        if other != width and got == divmod(flat, other):
            raise Wrong(f"{case} you give {got}: the map is {width} wide, not {other}; use "
                        f"divmod(index, maps.shape[-1]).")
    raise Wrong(f"{case} the peak is at {expected}; you give {got}.")


q5 = Exercise(
    name="q5",
    prompt="Write peak_position(model, image, layer, channel, shift): move one image (C, H, W) "
           "by shift=(dx, dy) pixels with featviz.perturb, and return the (row, col) of the "
           "largest value of map `channel` of `layer`.",
    checker=_peak_position,
    hint_text="moved = featviz.perturb(image, shift=shift); maps = featviz.activations(model, "
              "moved.unsqueeze(0), [layer])[layer][0, channel]; the flat index of the maximum "
              "is maps.argmax(), and divmod(index, maps.shape[-1]) turns it into (row, col).",
    solution_text="def peak_position(model, image, layer, channel, shift=(0, 0)):\n"
                  "    moved = featviz.perturb(image, shift=shift)              # a moved copy\n"
                  "    maps = featviz.activations(model, moved.unsqueeze(0), [layer])[layer]\n"
                  "    one = maps[0, channel]                                   # (H, W)\n"
                  "    return divmod(int(one.argmax()), one.shape[-1])         # (row, col)\n"
                  "answer = peak_position",
    kind="code",
)


# --------------------------------------------------------------------------- predict

#: The image, shift and layer of the two predict-then-run prompts.
SHIFTED_IMAGE, SHIFT = 3, (4, 0)
PEAK_IMAGE, PEAK_SHIFT, PEAK_LAYER = 3, (2, 1), "conv1"


def shifted_prediction() -> int:
    """What the trained model says for explorer image SHIFTED_IMAGE moved by SHIFT."""
    from ..perturbation import perturb

    images, _ = _explorer_images()
    with torch.no_grad():
        return int(_model()(perturb(images[SHIFTED_IMAGE:SHIFTED_IMAGE + 1], shift=SHIFT)).argmax())


def _survives(answer: Any) -> None:
    choice = as_choice(answer, {"yes": ("y", "true", "survives"), "no": ("n", "false")},
                       "'yes' or 'no'")
    _, labels = _explorer_images()
    said = shifted_prediction()
    truth = "yes" if said == int(labels[SHIFTED_IMAGE]) else "no"
    if choice == truth:
        return
    if truth == "no":
        raise Wrong(f"it does not: moved {SHIFT[0]} pixels, the 3 is read as a {said}. The "
                    f"shipped model was trained on digits moved by a pixel or two; convolution "
                    f"moves the maps along, but the fully connected layers expect the evidence "
                    f"where they saw it in training.")
    raise Wrong("it does: the model still reads a 3.")


p2 = Exercise(
    name="p2",
    prompt="Predict: image 3 (a 3) moved 4 pixels to the right: will the model still read a 3? "
           "'yes' or 'no'.",
    checker=_survives,
    hint_text="The convolutions move their maps along with the digit, but fc1 reads the pooled "
              "maps position by position, and it saw digits centred, moved by a pixel or two.",
    solution_text="answer = 'no'   # it reads a 5: ex.shifted_prediction()",
    kind="predict",
    reference=lambda: ("yes" if shifted_prediction() == int(_explorer_images()[1][SHIFTED_IMAGE])
                       else "no"),
    giveaways=lambda: (f"read as a {shifted_prediction()} (",),
)


def peak_channel() -> int:
    """The PEAK_LAYER channel with the strongest response to explorer image PEAK_IMAGE."""
    from ..hooks import activations

    images, _ = _explorer_images()
    maps = activations(_model(), images[PEAK_IMAGE:PEAK_IMAGE + 1], [PEAK_LAYER])[PEAK_LAYER][0]
    return int(maps.amax(dim=(1, 2)).argmax())


def moved_peak() -> tuple[int, int]:
    """Where the peak of p1's conv1 map is once the digit moved by PEAK_SHIFT."""
    images, _ = _explorer_images()
    return _peak(_model(), images[PEAK_IMAGE], PEAK_LAYER, peak_channel(), PEAK_SHIFT)[0]


def _peak_moves(answer: Any) -> None:
    got = _as_position(answer)
    images, _ = _explorer_images()
    channel = peak_channel()
    before, _ = _peak(_model(), images[PEAK_IMAGE], PEAK_LAYER, channel, (0, 0))
    after, _ = _peak(_model(), images[PEAK_IMAGE], PEAK_LAYER, channel, PEAK_SHIFT)
    if got == after:
        return
    dx, dy = PEAK_SHIFT
    if got == (before[0] + dx, before[1] + dy):
        raise Wrong(f"rows and columns: a shift of (dx, dy) = {PEAK_SHIFT} moves the map {dx} "
                    f"column(s) right and {dy} row(s) down.")
    if got == before:
        raise Wrong("a convolution slides the same filter everywhere: when the digit moves, "
                    "its response moves with it.")
    raise Wrong(f"{got} is not it: the peak was at {before}; the map moves with the digit, "
                f"pixel for pixel, (rows + dy, columns + dx).")


p1 = Exercise(
    name="p1",
    prompt="Predict: the digit moves by shift=(2, 1) (2 pixels right, 1 down). Where is the "
           "peak of the conv1 map shown above now? Give (row, col).",
    checker=_peak_moves,
    hint_text="conv1 has stride 1 and applies the same filter at every position: its map moves "
              "with the digit, pixel for pixel. Rows go with dy, columns with dx.",
    solution_text="images, labels = ex.explorer_images()\n"
                  "maps = featviz.activations(model, images[3:4], ['conv1'])['conv1'][0]\n"
                  "channel = int(maps.amax(dim=(1, 2)).argmax())       # the map shown above\n"
                  "row, col = divmod(int(maps[channel].argmax()), maps.shape[-1])\n"
                  "answer = (row + 1, col + 2)   # dy = 1 row down, dx = 2 columns right",
    kind="predict",
    reference=lambda: moved_peak(),
    giveaways=lambda: (f"strongest at (row, col) = {moved_peak()}",),
)


questionnaire = Questionnaire((
    ("Why can the explorer redraw a picture in about a millisecond when a slider moves?",
     "It runs the model once per image, keeps every layer's maps, and only recolours cached "
     "values on a slider step: no forward pass and no matplotlib figure."),
    ("What is the difference between the shared and the per-map colour scale, and when do you "
     "want each?",
     "Shared: one scale for the layer, so maps compare; per map: each stretched to its own "
     "range, so weak maps show their pattern but brightness no longer compares."),
    ("A digit moves 2 pixels right. What happens to conv1's maps, and to pool2's?",
     "conv1's maps move 2 pixels right with it (convolution is equivariant); pool2's, 4 pixels "
     "apart per unit, change shape more than they move."),
    ("Why can a small shift change the model's answer even though convolutions follow the "
     "digit?",
     "The fully connected layers read the pooled maps position by position, and expect the "
     "evidence where they saw it during training."),
    ("What did the training snapshots show about when the accuracy comes and when conv1 "
     "changes?",
     "Most of the accuracy comes in the first few hundred steps, from the later layers; conv1 "
     "keeps changing for epochs, becoming sparser and sharper."),
    ("A relu2 filter is dark for 1s and bright for other digits. What does that tell you?",
     "It detects something 1s lack, such as a curve or a corner, not the digit as a whole."),
))

reading = _reading(
    ("zeiler2014", "features evolving during training, and feature invariance: how feature "
                   "vectors change under shifts, rotations and scaling of the input (section 4, "
                   "Fig. 5)."),
    ("olah2018", "interactive views of what each layer of a network detects, the idea behind "
                 "the explorer."),
)
