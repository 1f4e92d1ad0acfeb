"""Exercises of lesson 08 (beyond MNIST): a ResNet-18 and a photograph."""
from __future__ import annotations

from typing import Any

from . import Exercise, Wrong, as_number as _number

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _stride(answer: Any) -> None:
    value = _number(answer, "one number")
    if value == 32:
        return
    if value == 7:
        raise Wrong("7 is the height and width of layer4's maps; the question is how many "
                    "input pixels one step of that 7 x 7 grid spans.")
    if value == 224:
        raise Wrong("224 is the input's size; divide it by the size of layer4's maps.")
    if value in (2, 4, 8, 16):
        raise Wrong(f"{value:g} is the step of an earlier stage; keep going down to layer4 "
                    "(every stage after layer1 halves the maps once more).")
    raise Wrong(f"{value:g} is not it: compare acts['layer4'].shape[-1] with the input's 224.")


q1 = Exercise(
    name="q1",
    prompt="layer4 sees the 224 x 224 photo as a 7 x 7 grid: how many input pixels wide is one cell?",
    checker=_stride,
    hint_text="conv1, the max-pool and layers 2, 3 and 4 each halve the size of the maps. "
              "Or divide the input size by acts['layer4'].shape[-1].",
    solution_text="answer = 224 // acts['layer4'].shape[-1]   # 32: five halvings, 2 ** 5",
)


def _convs(answer: Any) -> None:
    value = _number(answer, "a whole number")
    if value == 20:
        return
    if value == 17:
        raise Wrong("17 counts conv1 and the two convolutions of each of the 8 blocks; three "
                    "blocks have one more, a 1 x 1 convolution on their shortcut ('downsample').")
    if value == 18:
        raise Wrong("the 18 in the name counts the layers on the longest path, the fc layer "
                    "included; count the Conv2d modules instead, shortcuts included.")
    if value == 8:
        raise Wrong("8 is the number of residual blocks; each holds two or three convolutions.")
    raise Wrong(f"{value:g} is not it: ask featviz for every module of type torch.nn.Conv2d.")


q2 = Exercise(
    name="q2",
    prompt="How many Conv2d layers does ResNet-18 have?",
    checker=_convs,
    hint_text="featviz.hooks.resolve_layers(model, torch.nn.Conv2d) lists them by name, "
              "and so does the layer table.",
    solution_text="answer = len(featviz.hooks.resolve_layers(model, torch.nn.Conv2d))   # 20",
)


def _white(answer: Any) -> None:
    value = _number(answer)
    expected = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    if abs(value - expected) < 1e-3:
        return
    if abs(value - 1.0) < 1e-6 or abs(value - 255) < 1e-6:
        raise Wrong("that is the pixel before Normalize; Normalize subtracts the mean and "
                    "divides by the standard deviation.")
    if abs(value - (1.0 - 0.1307) / 0.3081) < 1e-3:
        raise Wrong("that uses MNIST's mean and std; ImageNet has one pair per colour channel.")
    if abs(value - (0.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]) < 1e-3:
        raise Wrong("that is a black pixel (0); white is 1 after ToTensor.")
    for ch, name in ((1, "green"), (2, "blue")):
        if abs(value - (1.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]) < 1e-3:
            raise Wrong(f"that uses the {name} channel's numbers; red is the first channel.")
    raise Wrong(f"{value:.4f} is not it: compute (1 - mean) / std with the red channel's "
                "mean 0.485 and std 0.229.")


q3 = Exercise(
    name="q3",
    prompt="After ImageNet normalisation, what is the red channel of a pure white pixel?",
    checker=_white,
    hint_text="ToTensor makes white 1.0. Normalize then computes (x - mean) / std with the red "
              "channel's ImageNet mean 0.485 and std 0.229.",
    solution_text="answer = (1.0 - 0.485) / 0.229   # about 2.249",
)
