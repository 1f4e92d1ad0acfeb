"""Exercises of lesson 07 (where the model looks): Grad-CAM layers and error analysis."""
from __future__ import annotations

import collections
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import (Exercise, Questionnaire, Wrong, as_choice, as_number, call, call_on_model,
               expect_close, need_function)
from . import as_int as _as_int
from . import reading as _reading


def _grid_layer(answer: Any) -> None:
    if not isinstance(answer, str):
        raise Wrong(f"give a layer name as a string, such as 'conv1', not {answer!r}.")
    name = answer.strip()
    if name == "pool2":
        return
    sizes = {"conv1": 24, "relu1": 24, "pool1": 12, "conv2": 8, "relu2": 8}
    if name in sizes:
        raise Wrong(f"{name} has {sizes[name]} x {sizes[name]} maps; another layer's are "
                    f"smaller still.")
    if name in ("flatten", "fc1", "relu3", "fc2", "relu4", "fc3"):
        raise Wrong(f"{name} has no maps at all (shape (N, features)), so there is no grid to "
                    f"show: Grad-CAM needs a layer with maps (N, C, H, W).")
    raise Wrong(f"{name!r} is not a layer of the SimpleCNN; featviz.layers(model) lists them.")


q3 = Exercise(
    name="q3",
    prompt="Which SimpleCNN layer gives the coarsest Grad-CAM grid that still has maps?",
    checker=_grid_layer,
    hint_text="Grad-CAM's resolution is the size of the layer's maps: print "
              "featviz.layers(model) and look at the output shapes.",
    solution_text="answer = 'pool2'   # 4 x 4 maps: each cell covers 4 x 4 input pixels",
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
        expected = coarse_cam(model, x, name, target)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape) \
                or not torch.allclose(got.detach().float().cpu(), expected, atol=1e-5, rtol=1e-4):
            _explain_cam(got, expected, model, x, layer, name, target)
    return "It matches featviz.grad_cam(..., upsample=None) at four layers, within 1e-5."


def _explain_cam(got: Any, expected: torch.Tensor, model: nn.Module, x: torch.Tensor,
                 layer: nn.Module, name: str, target: int) -> None:
    case = f"at layer {name!r}, target {target}"
    n, h, w = expected.shape
    if isinstance(got, torch.Tensor):
        got = got.detach().float().cpu()
        if tuple(got.shape) == (n, *x.shape[-2:]) and (h, w) != tuple(x.shape[-2:]):
            raise Wrong(f"{case} your map is {tuple(got.shape)}, the size of the input: return "
                        f"the coarse map at the layer's resolution, (N, h, w) = {(n, h, w)}, "
                        f"without upsampling.")
        if tuple(got.shape) == (n, 1, h, w):
            got = got[:, 0]
            if torch.allclose(got, expected, atol=1e-5, rtol=1e-4):
                raise Wrong(f"{case} the values are right but the shape is (N, 1, h, w): sum "
                            f"over the channels without keepdim, to get (N, h, w).")
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != (n, h, w):
        expect_close(got, expected, f"the Grad-CAM {case}")
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
    expect_close(got, expected, f"the Grad-CAM {case}")


q1 = Exercise(
    name="q1",
    prompt="Write grad_cam(model, x, layer, target) with a forward hook, in about ten lines: "
           "for a batch x and a layer module (e.g. model.relu2), return the coarse Grad-CAM "
           "maps (N, h, w) for class `target`, without upsampling.",
    checker=_grad_cam_by_hand,
    hint_text="A forward hook on `layer` keeps its output `maps`; torch.autograd.grad("
              "model(x)[:, target].sum(), maps) gives their gradient. Weights: the gradient's "
              "mean over each map, .mean(dim=(2, 3), keepdim=True). Then "
              "relu((weights * maps).sum(dim=1)). Remove the hook in `finally:`.",
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


def _occlusion_drop(answer: Any) -> str:
    from ..models import pretrained

    fn = need_function(answer, "occlusion_drop(model, image, target, top, left, size)")
    model = pretrained().cpu().eval()
    image = _cam_inputs()[0]
    for target, top, left, size in ((3, 4, 4, 6), (3, 10, 12, 6), (8, 2, 14, 8), (3, 0, 0, 8),
                                    (5, 22, 20, 10)):
        x = image.clone()
        got = as_number(call(fn, model, x, target, top, left, size,
                             returns="the drop in the target's score (a number)"),
                        "the drop as one number")
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
    return "Right for five patches, corners and borders included."


q2 = Exercise(
    name="q2",
    prompt="Write occlusion_drop(model, image, target, top, left, size): how much the target's "
           "score (logit) drops when the size x size patch at (top, left) of one image (C, H, W) "
           "is set to the background, the image's smallest value.",
    checker=_occlusion_drop,
    hint_text="hidden = image.clone(); hidden[:, top:top + size, left:left + size] = "
              "image.min(); run the model on both (add a batch dimension) and subtract: "
              "score(image) - score(hidden).",
    solution_text="def occlusion_drop(model, image, target, top, left, size):\n"
                  "    hidden = image.clone()                                  # never the original\n"
                  "    hidden[:, top:top + size, left:left + size] = image.min()  # background\n"
                  "    with torch.no_grad():\n"
                  "        scores = model(torch.stack([image, hidden]))[:, target]\n"
                  "    return (scores[0] - scores[1]).item()\n"
                  "answer = occlusion_drop",
    kind="code",
)


# --------------------------------------------------------------------------- predict

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
    prompt="Predict: hide the left end of the 3's upper bow (the part that curls back towards "
           "the middle). Will the 3's score go 'up' or 'down'?",
    checker=_occlusion_sign,
    hint_text="The runner-up for this 3 is 8. What does that curl look like the start of?",
    solution_text="answer = 'up'   # occlusion is negative (blue) there",
    kind="predict",
)


def _random_cam(answer: Any) -> None:
    choice = as_choice(answer, {"low": ("no", "different", "unrelated", "floor"),
                                "high": ("yes", "same", "similar")}, "'high' or 'low'")
    if choice == "low":
        return
    raise Wrong("Grad-CAM passes this test: its maps follow the weights the model learned, so "
                "a model with random weights gives maps no closer to the trained ones than two "
                "different digits' maps are.")


p2 = Exercise(
    name="p2",
    prompt="Predict: re-draw the model's weights at random. Will its Grad-CAM maps correlate "
           "'high' or 'low' with the trained model's?",
    checker=_random_cam,
    hint_text="Grad-CAM multiplies the layer's maps by gradients of the class score; with "
              "random weights, what do those know about the class?",
    solution_text="answer = 'low'",
    kind="predict",
    giveaways=("another digit",),
)


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
     "Re-draw the model's weights at random and compare the maps: a method whose maps barely "
     "change shows the image, not the model. The floor, the similarity of two different "
     "digits' maps, says how similar any two maps are anyway."),
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
