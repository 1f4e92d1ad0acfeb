"""Exercises of lesson 08 (beyond MNIST): a ResNet-18 and a photograph."""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from . import (Exercise, Questionnaire, Wrong, as_int, call, call_on_model, expect_close,
               expect_hook_removed_on_failure, need_function)
from . import as_number as _number
from . import reading as _reading

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@functools.cache
def _resnet18() -> nn.Module:
    """torchvision's ResNet-18 architecture (its layers and shapes; the weights do not matter)."""
    from torchvision import models

    return models.resnet18(weights=None).eval()


def _stride_reference() -> int:
    from ..hooks import activations

    maps = activations(_resnet18(), torch.zeros(1, 3, 224, 224), ["layer4"])["layer4"]
    return 224 // maps.shape[-1]


def _convs_reference() -> int:
    from ..hooks import resolve_layers

    return len(resolve_layers(_resnet18(), nn.Conv2d))


def _white_reference() -> float:
    from torchvision import models

    preset = models.ResNet18_Weights.IMAGENET1K_V1.transforms()
    return (1.0 - preset.mean[0]) / preset.std[0]


def _stride(answer: Any) -> None:
    value = as_int(answer, "one number")
    if value == _stride_reference():
        return
    if value == 7:
        raise Wrong("7 is the height and width of layer4's maps; the question is how many "
                    "input pixels one step of that 7 x 7 grid spans.")
    if value == 224:
        raise Wrong("224 is the input's size; divide it by the size of layer4's maps.")
    if value in (2, 4, 8, 16):
        raise Wrong(f"{value} is the step of an earlier stage; keep going down to layer4 "
                    "(every stage after layer1 halves the maps once more).")
    raise Wrong(f"{value} is not it: compare acts['layer4'].shape[-1] with the input's 224.")


p2 = Exercise(
    name="p2",
    prompt="Predict: layer4 sees the 224 x 224 photo as a 7 x 7 grid: how many input pixels wide is one cell?",
    checker=_stride,
    hint_text="conv1, the max-pool and layers 2, 3 and 4 each halve the size of the maps. "
              "Or divide the input size by acts['layer4'].shape[-1].",
    solution_text="answer = 224 // acts['layer4'].shape[-1]   # 32: five halvings, 2 ** 5",
    kind="predict",
    giveaways=("= 32 input pixels", "units 32 px apart"),
    reference=_stride_reference,
)


def _convs(answer: Any) -> None:
    value = as_int(answer, "a whole number")
    if value == _convs_reference():
        return
    if value == 17:
        raise Wrong("17 counts conv1 and the two convolutions of each of the 8 blocks; three "
                    "blocks have one more, a 1 x 1 convolution on their shortcut ('downsample').")
    if value == 18:
        raise Wrong("the 18 in the name counts the layers on the longest path, the fc layer "
                    "included; count the Conv2d modules instead, shortcuts included.")
    if value == 8:
        raise Wrong("8 is the number of residual blocks; each holds two or three convolutions.")
    raise Wrong(f"{value} is not it: ask featviz for every module of type torch.nn.Conv2d.")


p1 = Exercise(
    name="p1",
    prompt="Predict: how many Conv2d layers does ResNet-18 have?",
    checker=_convs,
    hint_text="featviz.resolve_layers(model, torch.nn.Conv2d) lists them by name, "
              "and so does the layer table.",
    solution_text="answer = len(featviz.resolve_layers(model, torch.nn.Conv2d))   # 20",
    kind="predict",
    giveaways=("20 Conv2d",),
    reference=_convs_reference,
)


ROUNDED = 0.006  # 2.25 for 2.2489: two decimals are enough
CLOSE = 0.06


def _white(answer: Any) -> str | None:
    value = _number(answer)
    expected = _white_reference()
    if abs(value - expected) <= ROUNDED:
        return None if abs(value - expected) < 1e-4 else f"Rounded well: it is {expected:.4f}."
    if abs(value - 1.0) < 1e-6 or abs(value - 255) < 1e-6:
        raise Wrong("that is the pixel before Normalize; Normalize subtracts the mean and "
                    "divides by the standard deviation.")
    if abs(value - (1.0 - 0.1307) / 0.3081) <= ROUNDED:
        raise Wrong("that uses MNIST's mean and std; ImageNet has one pair per colour channel.")
    if abs(value - (0.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]) <= ROUNDED:
        raise Wrong("that is a black pixel (0); white is 1 after ToTensor.")
    for ch, name in ((1, "green"), (2, "blue")):
        if abs(value - (1.0 - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]) <= ROUNDED:
            raise Wrong(f"that uses the {name} channel's numbers; red is the first channel.")
    if abs(value - expected) <= CLOSE:
        raise Wrong(f"{value:g} is close, but not close enough: compute (1 - 0.485) / 0.229 "
                    f"to two decimals.")
    raise Wrong(f"{value:.4f} is not it: compute (1 - mean) / std with the red channel's "
                "mean 0.485 and std 0.229.")


q3 = Exercise(
    name="q3",
    prompt="After ImageNet normalisation, what is the red channel of a pure white pixel?",
    checker=_white,
    hint_text="ToTensor makes white 1.0. Normalize then computes (x - mean) / std with the red "
              "channel's ImageNet mean 0.485 and std 0.229.",
    solution_text="answer = (1.0 - 0.485) / 0.229   # about 2.249",
    giveaways=("2.249",),
    reference=_white_reference,
)


# --------------------------------------------------------------------------- a small RGB model

class TinyRGB(nn.Module):
    """A small CNN for 32 x 32 colour images: two conv-batchnorm-ReLU-pool blocks, then a
    global average and a linear classifier. Named layers, like the SimpleCNN.

    >>> TinyRGB()(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(self.flatten(self.gap(x)))


def tiny_rgb(seed: int = 0) -> TinyRGB:
    """A TinyRGB with seeded weights and batch-norm statistics, in eval mode.

    Its weights are random: it is for practising capture and plotting on a
    colour model, not for reading what a trained network sees.
    """
    gen = torch.Generator().manual_seed(seed)
    model = TinyRGB()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
        for bn in (model.bn1, model.bn2):
            # BatchNorm2d tracks running statistics by default
            assert bn.running_mean is not None and bn.running_var is not None
            bn.running_mean.copy_(0.2 * torch.randn(bn.running_mean.shape, generator=gen))
            bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=gen))
    return model.eval()


def rgb_images(n: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """``n`` synthetic colour images ``(n, 3, size, size)``: coloured boxes on a coloured ground.

    >>> rgb_images(2).shape
    torch.Size([2, 3, 32, 32])
    """
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, 1, 1, generator=gen).expand(n, 3, size, size).clone()
    for i in range(n):
        for _ in range(3):
            top, left = (int(v) for v in torch.randint(0, size - 8, (2,), generator=gen))
            h, w = (int(v) for v in torch.randint(4, 12, (2,), generator=gen))
            images[i, :, top:top + h, left:left + w] = torch.rand(3, 1, 1, generator=gen)
    return (images - 0.5) / 0.25


# --------------------------------------------------------------------------- code: capture a layer

def _layer_maps(answer: Any) -> str:
    fn = need_function(answer, "layer_maps(model, images, layer)")
    model, images = tiny_rgb(), rgb_images(3)
    stats = [b.clone() for b in model.buffers()]
    for layer in ("conv1", "relu1", "bn2", "pool2"):
        got = call_on_model(fn, model, images, layer, returns=f"the maps of {layer} (N, C, H, W)",
                            hook_fix="remove it in a `finally:` block, or use featviz.capture / "
                                     "featviz.activations, which remove theirs.",
                            also=lambda: _same_statistics(model, stats))
        _compare_maps(got, model, images, layer)
    # pool1 runs after relu1, the hooked layer: make it fail, and no hook may stay
    expect_hook_removed_on_failure(lambda failing: fn(failing, images.clone(), "relu1"),
                                   model, "pool1", images)
    return ("Right for a conv, a ReLU, a batch-norm and a pooling layer of TinyRGB, and no hook "
            "is left even when the forward pass fails.")


def _same_statistics(model: nn.Module, stats: list[torch.Tensor]) -> None:
    if not all(torch.equal(b, s) for b, s in zip(model.buffers(), stats)):
        raise Wrong("your function changed the model's batch-norm statistics: it ran "
                    "the model in train mode. Leave the model in eval mode.")


def _reference_maps(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    from ..hooks import activations

    return activations(model, images, [layer])[layer]


def _compare_maps(got: Any, model: nn.Module, images: torch.Tensor, layer: str) -> None:
    expected = _reference_maps(model, images, layer)
    if isinstance(got, Mapping):
        raise Wrong(f"you returned a dict ({', '.join(map(str, got))}); return the tensor of "
                    f"the one layer: acts[layer].")
    if isinstance(got, torch.Tensor):
        if got.requires_grad:
            raise Wrong(f"the maps of {layer} you return still carry the autograd graph "
                        f"(requires_grad=True): .detach() them, or run the model under "
                        f"torch.no_grad().")
        if tuple(got.shape) == tuple(expected.shape[1:]):
            raise Wrong(f"you returned the maps of one image, {tuple(got.shape)}; return those "
                        f"of every image, (N, C, H, W) = {tuple(expected.shape)}.")
        if got.dim() == 2 and got.shape[-1] == 10:
            raise Wrong("that is the model's output (the class scores); return what the layer "
                        "computed.")
    expect_close(got, expected, f"the maps of {layer!r}")


q1 = Exercise(
    name="q1",
    prompt="Write layer_maps(model, images, layer): the output of the layer named `layer` for a "
           "batch of images, as a detached tensor (N, C, H, W), leaving the model as it was.",
    checker=_layer_maps,
    hint_text="featviz.activations(model, images, [layer]) returns {layer: maps}; or a forward "
              "hook that keeps output.detach(), removed in a `finally:` block.",
    solution_text="def layer_maps(model, images, layer):\n"
                  "    return featviz.activations(model, images, [layer])[layer]\n"
                  "answer = layer_maps",
    kind="code",
)


# --------------------------------------------------------------------------- code: plot a layer

def _panels(fig: Any, shape: tuple[int, int]) -> list[torch.Tensor]:
    """The 2-D arrays of the shape ``shape`` drawn in ``fig``: imshow's images and
    pcolormesh's meshes (whose array may come flattened)."""
    from matplotlib.collections import QuadMesh

    arrays = []
    for ax in fig.axes:
        drawn = list(ax.get_images()) + [c for c in ax.collections if isinstance(c, QuadMesh)]
        for artist in drawn:
            a = artist.get_array()
            if a is None:
                continue
            a = a.filled(0) if hasattr(a, "filled") else a
            t = torch.as_tensor(a).float()
            if t.dim() == 1 and t.numel() == shape[0] * shape[1]:
                t = t.reshape(shape)
            if tuple(t.shape) == shape:
                arrays.append(t)
    return arrays


def _same_picture(panel: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``panel`` is ``target`` up to a rescale ``a * target + b`` with ``a > 0``:
    a map stretched to [0, 1] (or any other range) before drawing is the same picture."""
    p, t = panel.double().flatten(), target.double().flatten()
    if torch.allclose(p, t, atol=1e-4):
        return True
    tc, pc = t - t.mean(), p - p.mean()
    if tc.abs().max() < 1e-8:                 # a constant map: any constant panel shows it
        return bool(pc.abs().max() < 1e-6 * max(1.0, float(p.abs().max())))
    scale = float((pc * tc).sum() / (tc * tc).sum())
    if scale <= 0:
        return False
    return bool((pc - scale * tc).abs().max() <= 1e-3 * float(pc.abs().max()) + 1e-6)


def _plot_layer(answer: Any) -> str:
    from matplotlib.figure import Figure

    fn = need_function(answer, "plot_layer(model, images, layer, index=0)")
    model, images = tiny_rgb(), rgb_images(3)
    for layer, index in (("relu1", 1), ("conv2", 0)):
        fig = call(fn, model, images.clone(), layer, index,
                   returns="the figure (featviz.plot_feature_maps returns one)")
        if not isinstance(fig, Figure):
            raise Wrong(f"return the matplotlib Figure, not {type(fig).__name__}: "
                        f"featviz.plot_feature_maps(...) returns one; plt.show() returns None.")
        maps = _reference_maps(model, images, layer)
        live = [c for c in range(maps.shape[1]) if maps[index, c].abs().max() > 0]
        panels = _panels(fig, (maps.shape[-2], maps.shape[-1]))
        if not panels:
            raise Wrong(f"the figure shows no {tuple(maps.shape[-2:])} picture: draw the maps "
                        f"of {layer!r}, one panel per channel.")

        def shown(i: int, c: int) -> bool:
            return any(_same_picture(p, maps[i, c]) for p in panels)

        missing = [c for c in live if not shown(index, c)]
        if missing:
            others = [i for i in range(len(images)) if i != index
                      and all(shown(i, c) for c in range(maps.shape[1])
                              if maps[i, c].abs().max() > 0)]
            if others:
                raise Wrong(f"the panels are the maps of image {others[0]}; draw image {index} "
                            f"(plot_feature_maps(maps, index=index)).")
            raise Wrong(f"channel(s) {missing[:5]} of {layer!r} for image {index} are not in "
                        f"the figure: show every channel.")
    return "The figure shows every map of the layer for the chosen image."


q2 = Exercise(
    name="q2",
    prompt="Write plot_layer(model, images, layer, index=0): a Figure of the feature maps of "
           "`layer` for image `index`, one panel per channel.",
    checker=_plot_layer,
    hint_text="Capture the maps with your layer_maps (or featviz.activations), then "
              "featviz.plot_feature_maps(maps, index=index) and return its Figure.",
    solution_text="def plot_layer(model, images, layer, index=0):\n"
                  "    maps = featviz.activations(model, images, [layer])[layer]\n"
                  "    return featviz.plot_feature_maps(maps, index=index, title=f'{layer}, image {index}')\n"
                  "answer = plot_layer",
    kind="code",
)


questionnaire = Questionnaire((
    ("What must you do to a photograph before an ImageNet network sees it?",
     "Resize (shorter side 256), centre-crop 224 x 224, ToTensor, then normalise each colour "
     "channel with ImageNet's own mean and std."),
    ("How do you find a layer's name in a deep network, and select several at once?",
     "featviz.layers(model, x) lists every name; capture and resolve_layers also take glob "
     "patterns such as 'layer*.*.conv2' and module types such as torch.nn.Conv2d."),
    ("Going from conv1 to layer4 of a ResNet-18, what happens to the maps' size, their "
     "number and their meaning?",
     "They shrink from 112 x 112 to 7 x 7 and grow from 64 to 512 channels; each late value "
     "summarises a large patch and stands for a more complex pattern."),
    ("Why is Grad-CAM on layer4 coarse, and what does one cell of its grid cover?",
     "layer4's maps are 7 x 7: neighbouring units are 32 input pixels apart (the stride), so "
     "the map has only 49 values. Each unit sees far more than 32 x 32 pixels: its receptive "
     "field is 435 pixels wide, the whole photo, though the centre of it counts most."),
    ("What does a Grad-CAM map of an untrained network tell you?",
     "Nothing about the photo: the evidence is spread out at random. A map that looks the "
     "same trained and untrained explains the architecture, not what was learned."),
    ("SmallResNet is deeper than the SimpleCNN but has about half its parameters. Where "
     "did the parameters go?",
     "The SimpleCNN spends 72,574 of its 85,822 parameters on its fully connected layers "
     "(fc1 alone reads 512 values into 120 units). SmallResNet averages each map to one "
     "number and has a 48 x 10 classifier, so almost all of its 44,014 parameters are in "
     "small 3 x 3 convolutions."),
    ("Why do the units of a 'same'-padded network sit on the stride grid, and what does that "
     "change for Grad-CAM?",
     "Padding centres unit i's field on input pixel stride * i (0, 4, 8, ... for layer3 of "
     "SmallResNet), so the first unit looks at the image's corner; an unpadded network's "
     "units are inset. Placing the map by receptive field puts each value where its unit "
     "looks; stretching it edge to edge shifts it by half a stride or more."),
    ("What changes when you run featviz on your own model?",
     "Nothing but the names and the input: layers by name, capture, the plots and Grad-CAM "
     "work on any nn.Module, on CPU or GPU."),
))

reading = _reading(
    ("he2016", "ResNet: residual blocks, the stages layer1 to layer4."),
    ("ioffe2015", "batch normalisation, and why eval mode matters at inference."),
    ("zeiler2014", "feature maps of a deep ImageNet network, layer by layer."),
    ("selvaraju2017", "Grad-CAM on ImageNet networks."),
    ("olah2017", "what the channels of deep ImageNet networks respond to."),
    ("olah2018", "combining feature maps and attribution into one interface."),
)
