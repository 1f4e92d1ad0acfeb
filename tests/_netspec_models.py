"""Small synthetic networks for the browser engine's tests, seeded, in eval mode.

Each covers layer options the SimpleCNN does not use (stride, padding, 'same',
dilation, groups, ceil mode, average pooling, batch norms, a view in forward), on
inputs that are not square so that a height/width mix-up shows. Shared by
``tests/test_netspec.py`` and ``tests/js/make_fixtures.py``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


def _randomize_norms(model: nn.Module) -> nn.Module:
    """Batch norms with statistics and affine weights far from the identity."""
    gen = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            if m.weight is not None:
                m.weight.data.copy_(torch.randn(n, generator=gen))
                m.bias.data.copy_(torch.randn(n, generator=gen))
    return model


def strides_padding() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 8, (3, 5), stride=(1, 2), padding=(2, 1), bias=False),
        nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        nn.Flatten(),
        nn.Linear(8 * 5 * 2, 7),
    )


def dilation_groups() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, dilation=2, groups=2, padding="same"),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, groups=8, padding="valid"),      # depthwise
        nn.Conv2d(8, 6, (4, 2), padding="same"),             # even kernel: asymmetric padding
        nn.MaxPool2d((3, 2), stride=(2, 1), dilation=(2, 1), padding=(1, 0), ceil_mode=True),
        nn.Conv2d(6, 5, 3, stride=(2, 1), dilation=(1, 2), padding=(0, 2)),
        nn.Flatten(),
        nn.LazyLinear(4),
    )


def avgpools() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 6, 3, padding=1),
        nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True, count_include_pad=True),
        nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        nn.AvgPool2d((2, 3), stride=1, padding=(1, 1), divisor_override=5),
        nn.ReLU(),
        nn.Flatten(),
        nn.LazyLinear(3),
    )


class NormNet(nn.Module):
    """Batch norms folded (after a conv) and not (after a ReLU; BatchNorm1d), dropout,
    and ``x.view(x.size(0), -1)`` in forward instead of a Flatten module."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3)
        self.bn1 = nn.BatchNorm2d(6)
        self.relu1 = nn.ReLU()
        self.bn2 = nn.BatchNorm2d(6, affine=False)
        self.drop = nn.Dropout2d(0.5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 4, 3, bias=False)
        self.bn3 = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 3 * 2, 12)
        self.bn4 = nn.BatchNorm1d(12)
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.drop(self.bn2(self.relu1(self.bn1(self.conv1(x))))))
        x = self.bn3(self.conv2(x))
        x = x.view(x.size(0), -1)
        return self.fc2(self.relu2(self.bn4(self.fc1(x))))


class SharedReLU(nn.Module):
    """One ReLU module called twice ("act", then "act#1"), and torch.flatten in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 2, stride=2)
        self.act = nn.ReLU()
        self.fc = nn.Linear(3 * 3 * 4, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.act(self.conv(x)), 1)
        return self.act(self.fc(x))


#: name -> (builder, input shape of one image)
SYNTHETIC: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "strides_padding": (strides_padding, (3, 13, 11)),
    "dilation_groups": (dilation_groups, (4, 16, 15)),
    "avgpools": (avgpools, (2, 17, 12)),
    "norms": (NormNet, (1, 12, 10)),
    "shared_relu": (SharedReLU, (1, 6, 8)),
}


def synthetic(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    """The seeded network ``name`` in eval mode (lazy layers built), and its input shape."""
    build, shape = SYNTHETIC[name]
    torch.manual_seed(0)
    model = build().eval()
    with torch.no_grad():
        model(torch.zeros(1, *shape))  # materialise lazy layers
    return _randomize_norms(model), shape


def inputs(shape: tuple[int, ...], n: int, seed: int = 2) -> torch.Tensor:
    """``n`` seeded random inputs of ``shape``, some values negative (the ReLUs matter)."""
    return torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed))
