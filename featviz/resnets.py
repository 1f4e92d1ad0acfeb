"""SmallResNet: a residual network small enough to train on MNIST in under a minute on a CPU.

It has what makes a ResNet deeper than the SimpleCNN: padded 3x3 convolutions
that keep the map size, batch normalisation, residual blocks (``out =
relu(F(x) + x)``), stages that halve the map and double the channels, and a
global average pool before the classifier. Its layer names follow
torchvision's ResNets (``stem``, ``layer1``...``layer3``, ``fc``), so the code
that inspects it also inspects a ResNet-18 (whose last stage is ``layer4``).

>>> model = featviz.SmallResNet()
>>> history = featviz.fit(model, featviz.mnist_tensors(), **SmallResNet.RECIPE)  # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torch import nn

__all__ = ["ResidualBlock", "SmallResNet"]


class ResidualBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, torchvision's BasicBlock.

    With ``stride=2`` or a change of channels, the shortcut is a strided 1x1
    convolution with batch norm, so that the two branches can be added.
    Each module is called once (two ReLUs, not one used twice), so every
    intermediate map has its own layer name: ``layer2.relu1``, ``layer2.conv2``...
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A small ResNet for 28x28 grey images: stem, three residual stages, pool, classifier.

    ========  ==========================================  ===============
    layer     what                                        maps (channels=(12, 24, 48))
    ========  ==========================================  ===============
    stem      3x3 conv + batch norm + ReLU                12 x 28 x 28
    layer1    residual block                              12 x 28 x 28
    layer2    residual block, stride 2                    24 x 14 x 14
    layer3    residual block, stride 2                    48 x 7 x 7
    pool      global average                              48 x 1 x 1
    fc        linear                                      10
    ========  ==========================================  ===============

    Every convolution is padded ("same"), so unit ``(i, j)`` of a stride-``s``
    stage looks at a field centred on input pixel ``(s*i, s*j)``: the
    receptive fields grow to 3, 7, 13 and 25 pixels at the four stages.

    Parameters
    ----------
    num_classes : outputs of the classifier.
    channels : channels of the stem/layer1, layer2 and layer3.
    in_channels : 1 for grey images (MNIST), 3 for colour.

    ``SmallResNet.RECIPE`` holds the settings that train it on the bundled MNIST
    sample (two epochs of 10,000 images, one-cycle schedule) to about 99% test
    accuracy: ``featviz.fit(model, featviz.mnist_tensors(), **SmallResNet.RECIPE)``.

    >>> model = SmallResNet()
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
    >>> featviz.receptive_field(model, "layer3").size
    (25, 25)
    """

    input_shape: tuple[int, int, int] = (1, 28, 28)
    RECIPE: ClassVar[dict[str, Any]] = {
        "epochs": 2, "lr": 1e-2, "batch_size": 64, "schedule": "onecycle", "seed": 0}

    def __init__(self, num_classes: int = 10, channels: Sequence[int] = (12, 24, 48),
                 in_channels: int = 1) -> None:
        super().__init__()
        c1, c2, c3 = (int(c) for c in channels)
        self.input_shape = (int(in_channels), 28, 28)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c1, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c1), nn.ReLU())
        self.layer1 = ResidualBlock(c1, c1)
        self.layer2 = ResidualBlock(c1, c2, stride=2)
        self.layer3 = ResidualBlock(c2, c3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))
