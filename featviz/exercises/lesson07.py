"""Exercises of lesson 07 (where the model looks): Grad-CAM and occlusion by hand, where a
unit looks, and error analysis."""
from __future__ import annotations

import collections
import copy
from functools import lru_cache
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from . import (Exercise, ModeGuard, Questionnaire, Wrong, as_choice, as_number,
               as_tensor_answer, call, call_on_model, expect_close,
               expect_hook_removed_on_failure, need_function)
from . import as_int as _as_int
from . import reading as _reading

# --------------------------------------------------------------------------- value: where a unit looks

#: The unit of pool2 whose place q3 asks for: the bottom-right one of its 4 x 4 grid.
UNIT = (3, 3)


def pool2_centre() -> float:
    """Where placement by receptive field puts pool2's unit UNIT: the centre of its box."""
    from ..geometry import receptive_field
    from ..models import SimpleCNN

    rows, _ = receptive_field(SimpleCNN(), "pool2").grid_centers()
    return float(rows[UNIT[0]])


def _pool2_centre(answer: Any) -> None:
    from ..geometry import receptive_field
    from ..models import SimpleCNN

    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        row, col = (as_number(a, "a pixel position") for a in answer)
        if row != col:
            raise Wrong(f"the unit is ({UNIT[0]}, {UNIT[1]}), on the diagonal: its row and "
                        f"column centres are the same number, but you give {row:g} and {col:g}.")
        answer = row
    got = as_number(answer, "a pixel position (one number, the same for row and column)")
    rf = receptive_field(SimpleCNN(), "pool2")
    size, stride = rf.size[0], rf.stride[0]
    relu2 = receptive_field(SimpleCNN(), "relu2")
    n = UNIT[0]
    expected = pool2_centre()
    if abs(got - expected) < 1e-6:
        return
    start = n * stride
    slips = [
        ((n + 0.5) * 28 / 4 - 0.5, "that is where STRETCHING the 4 cells edge to edge over 28 "
                                   "pixels puts it; placement puts a unit at the centre of the "
                                   "box it sees."),
        ((n + 0.5) * 28 / 4, "that is where stretching the 4 cells over 28 pixels puts it; "
                             "placement puts a unit at the centre of the box it sees."),
        (float(relu2.grid_centers()[0][-1]), "that is relu2's last unit, (7, 7). pool2 takes the "
                                             "maximum of 2 x 2 relu2 units, so its boxes are "
                                             "larger and further apart."),
        (start + (relu2.size[0] - 1) / 2, f"that is the centre of a {relu2.size[0]}-pixel box, "
                                          f"relu2's; pool2 adds a unit of relu2 on each side: "
                                          f"its boxes are {size} pixels wide."),
        (n * relu2.stride[0] + (size - 1) / 2, f"neighbouring units of pool2 are {stride} pixels "
                                               f"apart, not {relu2.stride[0]}: pooling by 2 "
                                               f"doubles the step."),
        (float(start), f"that is the first pixel of the unit's box; its centre is halfway "
                       f"along its {size} pixels."),
        (float(start + size - 1), f"that is the last pixel of the unit's box; its centre is "
                                  f"halfway along its {size} pixels."),
        (float(start + size), f"the box ends at pixel {start + size - 1}; its centre is halfway "
                              f"along its {size} pixels."),
        (start + size / 2, f"the box's {size} pixels run from {start} to {start + size - 1}, so "
                           f"its centre is {start} + ({size} - 1) / 2, not {start} + {size} / 2."),
    ]
    for value, why in slips:
        if abs(got - value) < 1e-6:
            raise Wrong(f"{got:g}: {why}")
    if abs(got - expected) <= 0.5:
        raise Wrong(f"{got:g} is close: a box of an even number of pixels ({size}) has its "
                    f"centre between two pixels.")
    raise Wrong(f"{got:g} is not it: find the box unit {UNIT} of pool2 sees (its first pixel "
                f"and its size), then take its centre.")


q3 = Exercise(
    name="q3",
    prompt=f"pool2's Grad-CAM is a 4 x 4 grid. Placed by receptive field, at which pixel does "
           f"the value of its bottom-right unit, {UNIT}, go (one number, the same for row and "
           f"column)?",
    checker=_pool2_centre,
    hint_text="As for relu2 in section 3: find the box the unit sees, its first pixel (unit "
              "index x the spacing of neighbouring units) and its size, and take its centre, "
              "first pixel + (size - 1) / 2. featviz.receptive_field(model, 'pool2') gives the "
              "size and the spacing.",
    solution_text="rf = featviz.receptive_field(model, 'pool2')   # 16 x 16 boxes, 4 px apart\n"
                  "top, left, bottom, right = rf.box(3, 3)          # rows 12 to 27\n"
                  "answer = (top + bottom - 1) / 2                  # 12 + 15 / 2 = 19.5",
    giveaways=lambda: (f"{pool2_centre():g}",),
    reference=pool2_centre,
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


#: The digit whose mistakes q4 and q5 ask about (the lesson analyses the 4s itself).
DIGIT = 9


def _mistakes() -> tuple[int, int, collections.Counter]:
    """(wrong, total, what the model said) for the test images of DIGIT."""
    labels, pred = _test_errors()
    wrong = (labels == DIGIT) & (pred != DIGIT)
    return int(wrong.sum()), int((labels == DIGIT).sum()), collections.Counter(pred[wrong].tolist())


def _wrong_nines(answer: Any) -> None:
    n = _as_int(answer)
    labels, pred = _test_errors()
    expected = int(((labels == DIGIT) & (pred != DIGIT)).sum())
    if n == expected:
        return
    if n == int(((pred == DIGIT) & (labels != DIGIT)).sum()):
        raise Wrong(f"{n} images were called a {DIGIT} but are something else. The question "
                    f"asks for real {DIGIT}s the model got wrong: label {DIGIT}, prediction "
                    f"not {DIGIT}.")
    if n == int((pred != labels).sum()):
        raise Wrong(f"{n} is every mistake, of every digit; keep only the ones whose label is "
                    f"{DIGIT}.")
    raise Wrong(f"{n} is not it: count test images with labels == {DIGIT} and predictions != "
                f"{DIGIT}.")


q4 = Exercise(
    name="q4",
    prompt=f"How many test images of a {DIGIT} does the pretrained model get wrong?",
    checker=_wrong_nines,
    hint_text=f"pred = model(test_images).argmax(dim=1); combine (test_labels == {DIGIT}) and "
              f"(pred != {DIGIT}) with &, then .sum().",
    solution_text=f"answer = int(((test_labels == {DIGIT}) & (pred != {DIGIT})).sum())",
    giveaways=lambda: (f"{_mistakes()[0]} of the {_mistakes()[1]}",),
    reference=lambda: _mistakes()[0],
)


def _confused_with(answer: Any) -> None:
    d = _as_int(answer)
    labels, pred = _test_errors()
    wrong = pred[(labels == DIGIT) & (pred != DIGIT)]
    counts = torch.bincount(wrong, minlength=10)
    top = int(counts.max())
    if 0 <= d <= 9 and int(counts[d]) == top and top > 0:
        return  # any of the tied most frequent answers is right
    if d == DIGIT:
        raise Wrong(f"{DIGIT} is the true label; the question asks what the model said instead.")
    if not 0 <= d <= 9:
        raise Wrong(f"give a digit 0-9, not {d}.")
    raise Wrong(f"the model called a {DIGIT} a {d} {int(counts[d])} time(s); another digit "
                f"comes up more often.")


q5 = Exercise(
    name="q5",
    prompt=f"Which digit does the pretrained model most often see in the {DIGIT}s it gets wrong?",
    checker=_confused_with,
    hint_text=f"Take pred[(test_labels == {DIGIT}) & (pred != {DIGIT})] and count each digit "
              f"with torch.bincount(..., minlength=10); the largest count wins.",
    solution_text=f"answer = int(torch.bincount(pred[(test_labels == {DIGIT}) & (pred != "
                  f"{DIGIT})], minlength=10).argmax())",
    giveaways=lambda: (str(dict(sorted(_mistakes()[2].items()))),),
    reference=lambda: _mistakes()[2].most_common(1)[0][0],
)


# --------------------------------------------------------------------------- code: Grad-CAM by hand

def _maps_and_grads(model: nn.Module, x: torch.Tensor, layer: nn.Module, target: int,
                    score: str = "logit") -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's maps and the gradient of the target's score with respect to them."""
    store: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.update(maps=o))
    try:
        with torch.enable_grad():
            out = model(x)
            out = out.softmax(dim=1) if score == "prob" else out
            grads, = torch.autograd.grad(out[:, target].sum(), store["maps"])
    finally:
        handle.remove()
    return store["maps"].detach(), grads.detach()


def coarse_cam(model: nn.Module, x: torch.Tensor, layer: str, target: int) -> torch.Tensor:
    """featviz's Grad-CAM at the layer's own resolution, ``(N, h, w)``: what q1 compares with."""
    from ..explain import grad_cam

    try:
        return grad_cam(model, x, layer, target, upsample=None)
    except (TypeError, ValueError):  # a featviz without the coarse map: the same computation
        maps, grads = _maps_and_grads(model, x, dict(model.named_modules())[layer], target)
        return F.relu((grads.mean(dim=(2, 3), keepdim=True) * maps).sum(dim=1))


@lru_cache(maxsize=1)
def _cam_inputs() -> torch.Tensor:
    from ..data import digit_examples

    images, _ = digit_examples()
    return images[[3, 4, 9]].clone()


def _grad_cam_by_hand(answer: Any) -> str:
    from ..models import pretrained

    fn = need_function(answer, "grad_cam(model, x, layer, target)")
    model = pretrained().cpu().eval()
    x = _cam_inputs()
    for name, target in (("relu2", 3), ("conv2", 8), ("relu1", 4), ("pool2", 9)):
        layer = dict(model.named_modules())[name]
        got = call_on_model(fn, model, x, layer, target, returns="the Grad-CAM maps (N, h, w)",
                            hook_fix="keep its handle and call handle.remove() in a `finally:` "
                                     "block.")
        got = as_tensor_answer(got, "your Grad-CAM")   # numpy or torch, on any device
        expected = coarse_cam(model, x, name, target)
        if tuple(got.shape) != tuple(expected.shape) \
                or not torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            _explain_cam(got, expected, model, x, layer, name, target)
    # fc1 runs after relu2, the hooked layer: make it fail, and no hook may stay
    expect_hook_removed_on_failure(
        lambda failing: fn(failing, x.clone(), failing.relu2, 3), model, "fc1", x,
        message="your maps are right, but when the forward pass raises an error your hook "
                "stays on the layer: the line that removes it never runs, and the hook "
                "runs at every later pass. Put the forward pass in `try:` and "
                "handle.remove() in `finally:`.")
    return ("It matches featviz.grad_cam(..., upsample=None) at four layers, within 1e-5, and "
            "leaves no hook behind, even after a forward pass that raised.")


def _normalised(cam: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """``cam`` rescaled to [0, 1] the ways a learner might (0 / 0 gives NaN, as theirs would)."""
    def span(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        return (cam - low) / (high - low)

    lo, hi = cam.amin(dim=(1, 2), keepdim=True), cam.amax(dim=(1, 2), keepdim=True)
    zero = torch.zeros_like(lo)
    return [(span(zero, hi), "rescaled each map to [0, 1], dividing it by its maximum"),
            (span(lo, hi), "rescaled each map to [0, 1], from its minimum to its maximum"),
            (span(zero.amin(), hi.amax()), "rescaled the batch to [0, 1], dividing it by its "
                                           "largest value"),
            (span(lo.amin(), hi.amax()), "rescaled the batch to [0, 1], from its minimum to its "
                                         "maximum")]


def _explain_cam(got: torch.Tensor, expected: torch.Tensor, model: nn.Module, x: torch.Tensor,
                 layer: nn.Module, name: str, target: int) -> None:
    case = f"at layer {name!r}, target {target}"
    n, h, w = expected.shape
    if tuple(got.shape) == (n, *x.shape[-2:]) and (h, w) != tuple(x.shape[-2:]):
        raise Wrong(f"{case} your map is {tuple(got.shape)}, the size of the input: return "
                    f"the coarse map at the layer's resolution, (N, h, w) = {(n, h, w)}, "
                    f"without upsampling.")
    if tuple(got.shape) == (n, 1, h, w):
        got = got[:, 0]
        if torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
            raise Wrong(f"{case} the values are right but the shape is (N, 1, h, w): sum "
                        f"over the channels without keepdim, to get (N, h, w).")
    if tuple(got.shape) != (n, h, w):
        expect_close(got, expected, f"the Grad-CAM {case}")
    for form, how in _normalised(expected):
        if torch.allclose(got, form, atol=1e-4, rtol=1e-3, equal_nan=True):
            raise Wrong(f"{case} your map is right up to its scale: you {how}. Return the raw "
                        f"map, as featviz.grad_cam does: its values say how much evidence there "
                        f"is, so maps of different images and classes can be compared.")
    maps, grads = _maps_and_grads(model, x, layer, target)
    weights = grads.mean(dim=(2, 3), keepdim=True)
    slips = [
        (F.relu((grads.sum(dim=(2, 3), keepdim=True) * maps).sum(dim=1)),
         f"the channel weights are the MEAN gradient over each map; you summed it, so your map "
         f"is h x w = {h * w} times too large."),
        ((weights * maps).sum(dim=1),
         "keep only the evidence FOR the class: apply a ReLU to the weighted sum."),
        (F.relu((grads * maps).sum(dim=1)),
         "each channel gets ONE weight, its gradient averaged over the map's positions "
         "(.mean(dim=(2, 3), keepdim=True)); you multiplied position by position."),
    ]
    pm, pg = _maps_and_grads(model, x, layer, target, score="prob")
    slips.append((F.relu((pg.mean(dim=(2, 3), keepdim=True) * pm).sum(dim=1)),
                  "use the gradient of the class score (the logit, model(x)[:, target]), not of "
                  "its softmax probability."))
    for slip, why in slips:
        if torch.allclose(got, slip, atol=1e-5, rtol=1e-4):
            raise Wrong(f"{case}: {why}")
    peaks = got.flatten(1).amax(dim=1)
    if got.min() >= 0 and (peaks > 0).any() \
            and torch.allclose(peaks[peaks > 0], torch.ones(()), atol=1e-4) \
            and not torch.allclose(expected.flatten(1).amax(dim=1), torch.ones(())):
        raise Wrong(f"{case} each of your maps peaks at exactly 1: they look rescaled to [0, 1]. "
                    f"Return the raw map, as featviz.grad_cam does (and compare it with "
                    f"featviz.grad_cam(model, x, {name!r}, {target}, upsample=None)).")
    expect_close(got, expected, f"the Grad-CAM {case}")


q1 = Exercise(
    name="q1",
    prompt="Write grad_cam(model, x, layer, target) with a forward hook, removed in a "
           "`finally:` block, in about ten lines: for a batch x and a layer module (e.g. "
           "model.relu2), return the raw coarse Grad-CAM maps (N, h, w) for class `target`, "
           "not upsampled and not rescaled to [0, 1].",
    checker=_grad_cam_by_hand,
    hint_text="A forward hook on `layer` keeps its output `maps`; torch.autograd.grad("
              "model(x)[:, target].sum(), maps) gives their gradient. Weights: the gradient's "
              "mean over each map, .mean(dim=(2, 3), keepdim=True). Then "
              "relu((weights * maps).sum(dim=1)). Remove the hook in `finally:`, so that it "
              "goes even when the forward pass raises (the check makes one fail).",
    solution_text="def grad_cam(model, x, layer, target):\n"
                  "    store = {}\n"
                  "    handle = layer.register_forward_hook(lambda m, i, out: store.update(maps=out))\n"
                  "    try:\n"
                  "        score = model(x)[:, target].sum()              # the class logits\n"
                  "    finally:\n"
                  "        handle.remove()\n"
                  "    maps = store['maps']                               # (N, C, h, w)\n"
                  "    grads, = torch.autograd.grad(score, maps)          # d score / d maps\n"
                  "    weights = grads.mean(dim=(2, 3), keepdim=True)     # one per channel\n"
                  "    return torch.relu((weights * maps).sum(dim=1)).detach()\n"
                  "answer = grad_cam",
    kind="code",
    error_hints=(("does not require grad", "the gradient needs a graph: do not run the model "
                                           "under torch.no_grad(), and keep the layer's output "
                                           "as it is (no .detach() before the gradient)."),),
)


# --------------------------------------------------------------------------- code: occlusion by hand

def _drop(model: nn.Module, image: torch.Tensor, target: int, top: int, left: int, size: int,
          fill: float | None = None, prob: bool = False) -> float:
    hidden = image.clone()
    hidden[:, top:top + size, left:left + size] = image.min() if fill is None else fill
    with torch.no_grad():
        out = model(torch.stack([image, hidden]))
        out = out.softmax(dim=1) if prob else out
    return float(out[0, target] - out[1, target])


def _mode_model() -> nn.Module:
    """A small network with BatchNorm and dropout, so that train and eval mode differ: its
    running statistics are far from any one batch's, and dropout drops half the units."""
    gen = torch.Generator().manual_seed(7)
    model = nn.Sequential(nn.Conv2d(1, 4, 5), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                          nn.Flatten(), nn.Linear(4 * 24 * 24, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
        bn = cast(nn.BatchNorm2d, model[1])
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean.copy_(torch.randn(4, generator=gen))
        bn.running_var.copy_(0.5 + torch.rand(4, generator=gen))
    return model


def _drop_in_eval(model: nn.Module, image: torch.Tensor, target: int, top: int, left: int,
                  size: int) -> float:
    from .._torch import inference_mode

    with inference_mode(model):
        return _drop(model, image, target, top, left, size)


def _occlusion_in_train_mode(fn: Any, image: torch.Tensor) -> None:
    """The learner's function on a model in train mode, with BatchNorm and dropout: it must
    measure in eval mode, leave the model unchanged and put the mode back."""
    model = _mode_model().train()
    target, top, left, size = 3, 6, 8, 8
    expected = _drop_in_eval(model, image, target, top, left, size)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    guard = ModeGuard(model)
    x = image.clone()
    got = as_number(call(fn, model, x, target, top, left, size,
                         returns="the drop in the target's score (a number)"),
                    "the drop as one number")
    ran_in_train = any(not torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    case = "for a model with BatchNorm and dropout, given in train mode"
    if ran_in_train:
        raise Wrong(f"{case}, your function ran it in train mode: BatchNorm normalised with the "
                    f"batch's own statistics and updated its running averages (it changed the "
                    f"model), and dropout hid random units. Measure in eval mode: "
                    f"`was_training = model.training`, `model.eval()`, and after the "
                    f"measurement `model.train(was_training)` (in a `finally:` block).")
    if guard.changed():
        name, training = guard.changed()[0]
        raise Wrong(f"{case}, your function measured in eval mode, but left the model in "
                    f"{'train' if training else 'eval'} mode ({name}.training is now "
                    f"{training}): put it back as it came, `model.train(was_training)`, in a "
                    f"`finally:` block.")
    if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
        raise Wrong(f"{case}: expected {expected:.4f} (measured in eval mode), you give "
                    f"{got:.4f}. Switch to eval mode for the measurement, and back after.")


def _occlusion_drop(answer: Any) -> str:
    from ..models import pretrained

    fn = need_function(answer, "occlusion_drop(model, image, target, top, left, size)")
    model = pretrained().cpu().eval()
    image = _cam_inputs()[0]
    for target, top, left, size in ((3, 4, 4, 6), (3, 10, 12, 6), (8, 2, 14, 8), (3, 0, 0, 8),
                                    (5, 22, 20, 10)):
        x = image.clone()
        guard = ModeGuard(model)
        try:
            got = as_number(call(fn, model, x, target, top, left, size,
                                 returns="the drop in the target's score (a number)"),
                            "the drop as one number")
            guard.check()
        finally:
            guard.restore()
        if not torch.equal(x, image):
            raise Wrong("your function changed the image it was given: hide the patch in a "
                        "copy, hidden = image.clone().")
        expected = _drop(model, image, target, top, left, size)
        if abs(got - expected) <= 1e-4 * max(1.0, abs(expected)):
            continue
        case = (f"for target {target}, the {size} x {size} patch at top={top}, left={left}: "
                f"expected {expected:.4f}, you give {got:.4f}")
        for value, why in (
            (-expected, "the drop is score before minus score after; you subtracted the "
                        "other way round."),
            (_drop(model, image, target, top, left, size, fill=0.0),
             "the background is the image's smallest value (black is -0.42 after "
             "normalisation), not 0."),
            (_drop(model, image, target, top, left, size, prob=True),
             "use the score, the logit model(x)[0, target], not its softmax probability."),
            (_drop(model, image, target, left, top, size),
             "rows first: the patch is image[:, top:top + size, left:left + size]."),
        ):
            if abs(got - value) <= 1e-4 * max(1.0, abs(value)):
                raise Wrong(f"{case}: {why}")
        raise Wrong(f"{case}.")
    _occlusion_in_train_mode(fn, image)
    return ("Right for five patches, corners and borders included, and for a model in train "
            "mode: measured in eval mode, and the mode put back.")


q2 = Exercise(
    name="q2",
    prompt="Write occlusion_drop(model, image, target, top, left, size): how much the target's "
           "score (logit) drops when the size x size patch at (top, left) of one image (C, H, W) "
           "is set to the background, the image's smallest value. Measure in eval mode, "
           "whatever mode the model comes in, and leave it in the mode it came in.",
    checker=_occlusion_drop,
    hint_text="hidden = image.clone(); hidden[:, top:top + size, left:left + size] = "
              "image.min(); run the model on both (add a batch dimension) and subtract: "
              "score(image) - score(hidden). Around the forward pass: was_training = "
              "model.training; model.eval(); try: ... finally: model.train(was_training).",
    solution_text="def occlusion_drop(model, image, target, top, left, size):\n"
                  "    hidden = image.clone()                                  # never the original\n"
                  "    hidden[:, top:top + size, left:left + size] = image.min()  # background\n"
                  "    was_training = model.training\n"
                  "    model.eval()                                   # no dropout, BatchNorm's averages\n"
                  "    try:\n"
                  "        with torch.no_grad():\n"
                  "            scores = model(torch.stack([image, hidden]))[:, target]\n"
                  "    finally:\n"
                  "        model.train(was_training)                  # as it came\n"
                  "    return (scores[0] - scores[1]).item()\n"
                  "answer = occlusion_drop",
    kind="code",
)


# --------------------------------------------------------------------------- predict

#: The doubtful 3 of section 4 (the first 3 of the test set), and its curl: (top, left, size)
#: of a patch over the left end of the upper bow, where it turns back towards the middle.
DOUBTFUL_3 = 18
CURL = (6, 3, 7)


def curl_sign() -> str:
    """p1's answer, measured: does hiding the curl raise ('up') or lower the 3's score?"""
    from ..data import mnist_tensors
    from ..models import pretrained

    images, _ = mnist_tensors(train=False)
    return "up" if _drop(pretrained().cpu().eval(), images[DOUBTFUL_3], 3, *CURL) < 0 else "down"


def _occlusion_sign(answer: Any) -> None:
    choice = as_choice(answer, {"up": ("raise", "rise", "higher", "increase"),
                                "down": ("lower", "fall", "decrease", "drop")},
                       "'up' or 'down'")
    if choice == "up":
        return
    raise Wrong("hiding a part lowers the score when that part is evidence FOR the class; this "
                "one curls back like the upper loop of an 8, evidence against the 3.")


p1 = Exercise(
    name="p1",
    prompt="Predict: hide the curl at the upper left of this 3 (the left end of its upper bow, "
           "turning back towards the middle) under the black background. Will the model's "
           "score for 3 go 'up' or 'down'?",
    checker=_occlusion_sign,
    hint_text="The runner-up for this 3 is 8. What does that curl look like the start of?",
    solution_text="answer = 'up'   # occlusion is negative (blue) there",
    kind="predict",
    giveaways=("*raises* the 3's score",),
    reference=curl_sign,
)


def _ranks(a: torch.Tensor) -> torch.Tensor:
    _, where, count = a.flatten().unique(return_inverse=True, return_counts=True)
    return (count.cumsum(0) - (count - 1) / 2).double()[where]


def fc3_random_correlation() -> float:
    """Spearman correlation of relu2's coarse Grad-CAM for the ten example digits, between the
    trained model and the same model with fc3 alone re-drawn at random (mean over digits)."""
    from ..data import digit_examples
    from ..explain import grad_cam
    from ..models import pretrained

    images, labels = digit_examples()
    model = pretrained().cpu().eval()
    scrambled = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        scrambled.fc3.reset_parameters()
    a = grad_cam(model, images, "relu2", labels, upsample=None)
    b = grad_cam(scrambled, images, "relu2", labels, upsample=None)
    r = torch.stack([torch.corrcoef(torch.stack([_ranks(u), _ranks(v)]))[0, 1]
                     for u, v in zip(a, b)])
    return float(r.nanmean())


def random_fc3_level() -> str:
    """p2's answer, measured: 'high' when the maps keep their ranking (correlation above 0.5)."""
    return "high" if fc3_random_correlation() > 0.5 else "low"


def _random_cam(answer: Any) -> None:
    choice = as_choice(answer, {"low": ("no", "different", "unrelated", "floor", "near 0"),
                                "high": ("yes", "same", "similar", "near 1")},
                       "'high' or 'low'")
    if choice == "low":
        return
    raise Wrong("relu2's maps are the trained ones, but each channel's weight is the gradient "
                "of the class score, and it now comes back through a random fc3: the map is a "
                "random mix of the trained maps, its spots elsewhere. Grad-CAM passes this "
                "test: it explains what the model learned, down to the last layer.")


p2 = Exercise(
    name="p2",
    prompt="Predict: the first step of the cascade re-draws fc3 alone, the output layer; "
           "conv1, conv2 and so relu2's maps stay trained. Will relu2's Grad-CAM maps then "
           "correlate 'high' (near 1, the same ranking of places) or 'low' (near 0, as "
           "unrelated as two different digits' maps) with the trained model's?",
    checker=_random_cam,
    hint_text="Grad-CAM weights relu2's maps by gradients of the class score; with fc3 "
              "random, what do those gradients know about the class?",
    solution_text="answer = 'low'",
    kind="predict",
    giveaways=("another digit", "fc3 random"),
    reference=random_fc3_level,
)

from .attribution07 import p3 as p3  # noqa: E402  (faithfulness, section 9)


questionnaire = Questionnaire((
    ("What does a saliency map compute, and why is it noisy? What does SmoothGrad change?",
     "The size of the gradient of the class score with respect to each pixel; it is a local "
     "quantity that jumps from pixel to pixel in a ReLU network. SmoothGrad averages the maps "
     "of noisy copies of the image."),
    ("Write Grad-CAM in one line of maths. What sets its resolution?",
     "ReLU(sum over channels of mean-gradient weight x map); the resolution is the chosen "
     "layer's map size (8 x 8 for relu2, 7 x 7 for a ResNet's layer4)."),
    ("Why is Grad-CAM usually taken at the last convolutional stage?",
     "It knows most about classes there while still having a spatial grid; earlier layers are "
     "finer but know little about the class."),
    ("What does occlusion measure, and what does a negative value mean?",
     "The drop in the class score when a patch is hidden by the background; negative means "
     "hiding the patch raises the score: the patch argued against the class."),
    ("Describe the sanity check of Adebayo et al. and why it needs a floor.",
     "Re-draw the model's weights at random, layer by layer from the output down (the "
     "cascade), and compare the maps after each step with the trained model's: a method "
     "whose maps barely change shows the image, not the model. The floor, the similarity of "
     "two different digits' maps, says how similar any two maps are anyway."),
    ("What did the maps show about the 4s the model called 9?",
     "Their tops close into a loop, as a 9's does. Occlusion for 4 was blue there (hiding the "
     "closing stroke raises the 4's score) and occlusion for 9 red over the loop. Grad-CAM "
     "found more evidence for 4 than for 9, because its ReLU drops what argues against a "
     "class. The remedy is more 4s written with a closed top."),
    ("Why must a hand-written Grad-CAM remove its hook in a finally: block?",
     "If the forward pass raises, the hook would stay registered and run at every later pass."),
))

reading = _reading(
    ("simonyan2014", "saliency maps: the gradient of the class score with respect to the "
                     "pixels."),
    ("smilkov2017", "SmoothGrad: averaging the gradient over noisy copies."),
    ("zhou2016", "class activation maps, the idea Grad-CAM generalises."),
    ("selvaraju2017", "Grad-CAM: gradient-weighted class activation maps."),
    ("zeiler2014", "occlusion: hiding patches and watching the class score."),
    ("adebayo2018", "sanity checks: does a saliency map depend on the model's weights at all?"),
)
