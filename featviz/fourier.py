"""A Fourier image parameterisation and transformation robustness, for activation maximisation.

Pixel-space gradient ascent (``maximize_activation(..., param="pixel")``) moves each
pixel on its own, and the steepest way up is often fine, high-frequency speckle.
Here the image is instead described by its 2-D Fourier spectrum, and each
frequency ``f`` (in cycles per pixel) is scaled by ``1 / f ** decay``: with
``decay=1`` a step of the optimiser changes the coarse, low frequencies as much
as the fine ones relative to how much of each natural images contain, so the
optimiser no longer prefers speckle (Olah et al., 2017, "Feature visualization";
Mordvintsev et al., 2018, "Differentiable image parameterizations"). A sigmoid
maps the result into ``value_range``, so every pixel stays in range without
clamping (and without the zero gradient a clamp gives).

**Colour.** For a 3-channel model the three channels are first mixed by a fixed
matrix: the square root of the colour correlation of natural images (the one
Lucid ships, measured on ImageNet), so that the optimiser works in decorrelated
colour. For a grey model (one channel, such as the course's MNIST networks)
there is nothing to decorrelate and the channel is used as it is. Other channel
counts are used as they are too.

**Transformation robustness.** Before each forward pass the image is padded,
shifted, scaled and rotated at random, so that the pattern found must excite
the channel however it sits. Lucid's defaults are meant for 224-pixel ImageNet
images: pad 12, jitter 8, scale 0.9-1.1, rotate +-10 degrees, jitter 4.
:func:`scaled_transforms` scales them to another width: distances shrink by
``size / 224`` (at 28 pixels: pad 2, jitter 1, jitter 1, rounded up so that a
jitter stays a jitter), scale and rotation, being relative, stay.

Measured on the course's SimpleCNN (conv2, all 32 channels, centre unit, 128
steps, the activation of the final un-transformed image, divided by what
pixel-space ascent reaches; ``scripts/fourier_transforms.py`` prints the table):
the scaled Lucid values reach a median of about 0.98 and lose on 20 of the
32 channels; Lucid's 224-pixel values used as they are on 28 pixels (shifts of
a third of the image) reach about 0.8 and lose on 31: the blur Lucent's users
report on small images. Why: at 28 pixels even a 1-pixel shift moves the pattern by half
a step of the max-pooling grid (stride 2), and a conv2 unit's answer changes
with where the pattern falls on that grid; a 10-degree rotation moves the edge
of a 14-pixel field by more than a pixel. So :data:`SMALL`, the default here,
keeps what costs less than a pixel: pad 1, scale 0.95-1.05, rotate +-5 degrees,
no shift; and :func:`ascend` runs its last quarter of steps without transforms,
tuning the image to the unit it is measured on. That reaches a median of about
1.1 times the pixel-space activation and beats it on every conv2 channel (the
test suite holds it to that).

>>> p = FourierImage((1, 28, 28), n=2, value_range=(0.0, 1.0), seed=0)
>>> x = p()
>>> tuple(x.shape), bool(x.min() >= 0) and bool(x.max() <= 1)
((2, 1, 28, 28), True)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["FourierImage", "Transforms", "SCALED_28", "scaled_transforms", "COLOR_CORRELATION",
           "diversity_penalty", "ascend", "SMALL", "SOFTEN"]

# The square root of natural images' RGB colour correlation (Lucid's
# color_correlation_svd_sqrt), its columns scaled so that the longest has norm 1.
_CORR = torch.tensor([[0.26, 0.09, 0.02],
                      [0.27, 0.00, -0.05],
                      [0.27, -0.09, 0.03]])
COLOR_CORRELATION = _CORR / _CORR.norm(dim=0).max()

SOFTEN = 4.0
"""What :class:`FourierImage` divides the inverse FFT by, before the colour mix and the
sigmoid (Lucid's ``fft_image`` divides by the same 4). Adam's steps do not depend on the
gradient's scale, so this is the same (up to Adam's tiny epsilon) as dividing the
learning rate and the starting noise by 4: one step moves the image before the sigmoid a
quarter as far. ``maximize_activation``'s ``lr=0.1`` for ``param="fourier"`` was measured
with it, so changing it changes the images."""


@dataclass(frozen=True)
class Transforms:
    """Random transformations applied before each forward pass, in this order: pad
    by ``pad`` pixels (with the background), shift by up to ``jitter`` pixels, scale
    by a factor in ``scale``, rotate by up to ``rotate`` degrees, shift again by up
    to ``jitter_after``, crop back to the image's size around its centre."""

    pad: int = 2
    jitter: int = 1
    scale: tuple[float, float] = (0.9, 1.1)
    rotate: float = 10.0
    jitter_after: int = 1

    def __post_init__(self) -> None:
        lo, hi = self.scale
        if min(self.pad, self.jitter, self.jitter_after) < 0 or self.rotate < 0 or not 0 < lo <= hi:
            raise ValueError(
                f"transforms need pad, jitter, jitter_after, rotate >= 0 and 0 < scale[0] <= "
                f"scale[1]; got {self}.")

    def __call__(self, x: torch.Tensor, gen: torch.Generator, fill: float) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, value=fill)
        x = _shift(x, self.jitter, gen)
        u = torch.rand(2, n, generator=gen)
        factor = self.scale[0] + (self.scale[1] - self.scale[0]) * u[0]
        angle = torch.deg2rad(self.rotate * (2 * u[1] - 1))
        if self.rotate or self.scale != (1.0, 1.0):
            cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
            theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                                 torch.stack([sin, cos, torch.zeros(n)], 1)], 1)
            grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
            # the background fills what the rotation brings in from outside
            x = F.grid_sample(x - fill, grid, padding_mode="zeros", align_corners=False) + fill
        x = _shift(x, self.jitter_after, gen)
        top, left = (x.shape[2] - h) // 2, (x.shape[3] - w) // 2
        return x[:, :, top:top + h, left:left + w]


def _shift(x: torch.Tensor, by: int, gen: torch.Generator) -> torch.Tensor:
    """Shift the whole batch by one random (dy, dx) of up to ``by`` pixels (wrapping
    round, as the pixel-space jitter does; the padding is what wraps)."""
    if not by:
        return x
    dy, dx = torch.randint(-by, by + 1, (2,), generator=gen).tolist()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


SCALED_28 = Transforms()
"""Lucid's 224-pixel transformation defaults scaled to a 28-pixel image."""

SMALL = Transforms(pad=1, jitter=0, scale=(0.95, 1.05), rotate=5.0, jitter_after=0)
"""The default for small images: only what moves a pixel by less than one pixel."""

_LUCID_224 = Transforms(pad=12, jitter=8, scale=(0.9, 1.1), rotate=10.0, jitter_after=4)


def scaled_transforms(size: int) -> Transforms:
    """Lucid's 224-pixel transformation defaults scaled to images ``size`` pixels wide:
    distances shrink by ``size / 224`` (rounded up, at least 1), scale and rotation stay.

    >>> scaled_transforms(28) == SCALED_28, scaled_transforms(224).pad
    (True, 12)
    """
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive int (the image width in pixels), got {size!r}.")
    k = size / 224

    def px(d: int) -> int:
        return max(1, math.ceil(d * k - 1e-9))

    return replace(_LUCID_224, pad=px(12), jitter=px(8), jitter_after=px(4))


class FourierImage(nn.Module):
    """``n`` images of shape ``(C, H, W)`` held as scaled Fourier spectra.

    Calling it returns the images ``(n, C, H, W)``: the inverse real FFT of the
    spectra, each frequency scaled by ``1 / max(f, 1/max(H, W)) ** decay``, divided by
    :data:`SOFTEN`, colour mixed by :data:`COLOR_CORRELATION` when ``C == 3``, then put
    through a sigmoid into ``value_range`` (or left unbounded when it is None). The spectra start as
    small Gaussian noise (standard deviation ``init``) drawn from ``seed``: the
    images start close to the middle grey of the range, and each image's start
    depends only on ``(seed, index)``.
    """

    def __init__(self, shape: tuple[int, ...], n: int = 1, *, decay: float = 1.0,
                 value_range: tuple[float, float] | None = None, init: float = 0.01,
                 seed: int = 0, seeds: list[int] | None = None, start: float = 0.5) -> None:
        super().__init__()
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"shape must be (C, H, W), got {shape!r}.")
        if not 0 < start < 1:
            raise ValueError(f"start must be in (0, 1), got {start!r}.")
        if decay < 0:
            raise ValueError(f"decay must be >= 0, got {decay!r}.")
        c, h, w = shape
        self.shape = (c, h, w)
        fy = torch.fft.fftfreq(h)[:, None]
        fx = torch.fft.rfftfreq(w)[None, :]
        freq = torch.sqrt(fx ** 2 + fy ** 2).clamp(min=1.0 / max(h, w))
        # the sqrt(h * w) undoes the 1/(h*w) of the inverse FFT, as Lucid does
        self.register_buffer("scale", freq.pow(-decay) * math.sqrt(h * w))
        seeds = seeds if seeds is not None else [int(seed) * 1_000_003 + i for i in range(n)]
        gen = torch.Generator()
        spec = torch.stack([torch.randn((c, h, w // 2 + 1, 2), generator=gen.manual_seed(s))
                            for s in seeds]) * init
        self.spectrum = nn.Parameter(spec)
        self.value_range = value_range
        self.offset = math.log(start / (1 - start))

    scale: torch.Tensor

    def forward(self) -> torch.Tensor:
        spec = torch.view_as_complex(self.spectrum) * self.scale
        h, w = self.shape[1:]
        x = torch.fft.irfft2(spec, s=(h, w), norm="backward") / SOFTEN
        if self.shape[0] == 3:
            x = torch.einsum("nchw,dc->ndhw", x, COLOR_CORRELATION.to(x))
        if self.value_range is None:
            return x
        low, high = self.value_range
        return low + (high - low) * torch.sigmoid(x + self.offset)


def diversity_penalty(features: torch.Tensor, k: int) -> torch.Tensor:
    """How alike each image's features are to the other ``k - 1`` images of its group:
    ``(n * k,)``, the mean cosine similarity of its Gram matrix (channel by channel
    correlations over positions: what is present, wherever it is) to theirs.

    ``features`` is ``(n * k, C, H, W)`` (or ``(n * k, C)``, then the vectors
    themselves are compared), the ``k`` images of each group consecutive. Penalising
    it pushes the images of a group to excite the channel with different patterns,
    not one pattern in different places (Lucid's diversity objective does the same).

    >>> f = torch.rand(4, 3, 5, 5)
    >>> [round(v, 4) for v in diversity_penalty(torch.cat([f[:1], f[:1]]), 2).tolist()]  # alike
    [1.0, 1.0]
    """
    m = features.shape[0]
    if k < 2:
        return features.new_zeros(m)
    flat = features.flatten(2) if features.dim() > 2 else features.unsqueeze(2)
    gram = flat @ flat.transpose(1, 2) if features.dim() > 2 else flat.squeeze(2)
    g = F.normalize(gram.reshape(m // k, k, -1), dim=2)
    sim = g @ g.transpose(1, 2)                                  # (n, k, k)
    off = sim.sum(dim=2) - torch.diagonal(sim, dim1=1, dim2=2)
    return (off / (k - 1)).reshape(m)


def ascend(image: FourierImage, forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
           steps: int, lr: float, transforms: Transforms | None, fill: float, seed: int,
           k: int = 1, diversity: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Adam on ``image``'s spectra for ``steps`` steps. ``forward(x)`` gives the
    objective ``(m,)`` of a batch and the layer's output (for the diversity term);
    the images, randomly transformed before each pass, climb ``objective - diversity
    * |objective| * similarity``; the last quarter of the steps goes without
    transforms, tuning the image to the exact unit it is measured on. Returns the final images (un-transformed), the
    objective at every step ``(steps, m)`` and, on the final images, ``(m,)``."""
    gen = torch.Generator().manual_seed(int(seed))
    settle = steps // 4   # the last quarter without transforms
    opt = torch.optim.Adam(image.parameters(), lr=lr)
    history = torch.empty(steps, image.spectrum.shape[0])
    for step in range(steps):
        x = image()
        if transforms is not None and step < steps - settle:
            x = transforms(x, gen, fill)
        obj, out = forward(x)
        history[step] = obj.detach().float().cpu()
        loss = -obj.sum()
        if k > 1 and diversity:
            loss = loss + diversity * (obj.detach().abs() * diversity_penalty(out, k)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = image()
        final = forward(x)[0].float().cpu()
    return x.detach(), history, final
