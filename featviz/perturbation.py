"""Input transforms for probing a model: ``perturb`` (shift, rotate, scale, erase,
noise) and ``mnist_style`` (a drawing made into an input the way MNIST digits were).

Both return new tensors; the input is never modified.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._torch import as_batch

__all__ = ["perturb", "mnist_style"]

MNIST_BOX = 20     # MNIST digits were scaled to fit a 20x20 box ...
MNIST_SIZE = 28    # ... then centred by centre of mass in a 28x28 field
INK = 1e-3         # above this a pixel is ink: a quarter of one 8-bit grey level


# --------------------------------------------------------------------------- checks

def _number(value: Any, name: str, example: str) -> float:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, got {value!r} "
                        f"({type(value).__name__}); for example {example}.")
    return float(value)


def _pair(value: Any, name: str, example: str) -> tuple[float, float]:
    if isinstance(value, Tensor):
        value = value.tolist()
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise TypeError(f"{name} must be a pair (dx, dy) of pixels, got {value!r}; "
                        f"for example {example}.")
    return (_number(value[0], f"{name}[0]", example), _number(value[1], f"{name}[1]", example))


def _erase_box(erase: Any) -> tuple[int, int, int, int]:
    example = "erase=(10, 8, 6, 6) for a 6x6 box whose top-left pixel is at x=10, y=8"
    if isinstance(erase, Tensor):
        erase = erase.tolist()
    if not isinstance(erase, Sequence) or isinstance(erase, str) or len(erase) != 4:
        raise TypeError(f"erase must be None or a box (x, y, w, h) in pixels, got {erase!r}; "
                        f"{example}.")
    x, y, w, h = (round(_number(v, "erase", example)) for v in erase)
    if w < 0 or h < 0:
        raise ValueError(f"erase=(x, y, w, h) needs a width and height >= 0, got w={w}, h={h}; "
                         f"{example}.")
    return x, y, w, h


def _fill_values(batch: Tensor, fill: Any) -> Tensor:
    """The background value per image and channel, shape ``(N, C, 1, 1)``."""
    n, c = batch.shape[:2]
    if fill is None:
        return batch.detach().amin(dim=(2, 3), keepdim=True)
    if isinstance(fill, Real) and not isinstance(fill, bool):
        return torch.full((1, 1, 1, 1), float(fill), dtype=batch.dtype,
                          device=batch.device).expand(n, c, 1, 1)
    try:
        values = torch.as_tensor(fill, dtype=batch.dtype).to(batch.device).flatten()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"fill must be None, a number or one number per channel, got "
                        f"{type(fill).__name__}.") from exc
    if values.numel() == 1:
        return values.reshape(1, 1, 1, 1).expand(n, c, 1, 1)
    if values.numel() != c:
        raise ValueError(f"fill has {values.numel()} values but the images have {c} channels; "
                         f"give one number, or one per channel (e.g. fill=[0.0] * {c}).")
    return values.reshape(1, c, 1, 1).expand(n, c, 1, 1)


# --------------------------------------------------------------------------- transforms

def _integer_shift(batch: Tensor, dx: int, dy: int, fill: Tensor) -> Tensor:
    """Exact translation by whole pixels: ``out[y, x] = in[y - dy, x - dx]``."""
    h, w = batch.shape[-2:]
    out = fill.expand_as(batch).clone()
    if abs(dx) < w and abs(dy) < h:
        out[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
            batch[..., max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _affine(batch: Tensor, dx: float, dy: float, rotate: float, scale: float,
            fill: Tensor) -> Tensor:
    """Rotate and scale about the image centre, then shift; bilinear, ``fill`` outside."""
    n, _, h, w = batch.shape
    a = math.radians(rotate)
    cos, sin = math.cos(a), math.sin(a)
    # Output pixel p (relative to the centre) comes from input M^-1 (p - t), where
    # M = scale * R(a) turns counter-clockwise on screen (y points down). In
    # grid_sample's coordinates [-1, 1] a pixel offset x becomes x * 2 / w.
    inv = [[cos / scale, -sin / scale], [sin / scale, cos / scale]]
    theta = torch.tensor([
        [inv[0][0], inv[0][1] * h / w, -(inv[0][0] * dx + inv[0][1] * dy) * 2 / w],
        [inv[1][0] * w / h, inv[1][1], -(inv[1][0] * dx + inv[1][1] * dy) * 2 / h],
    ], dtype=batch.dtype, device=batch.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    # sampling (x - fill) with zero padding, then adding fill back, blends edges into fill
    moved = F.grid_sample(batch - fill, grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return moved + fill


def perturb(
    images: Any,
    shift: Sequence[float] = (0.0, 0.0),
    rotate: float = 0.0,
    scale: float = 1.0,
    erase: Sequence[int] | None = None,
    noise: float = 0.0,
    seed: int = 0,
    fill: float | Sequence[float] | Tensor | None = None,
) -> Tensor:
    """A transformed copy of images: shifted, rotated, scaled, with a box erased and noise added.

    Parameters
    ----------
    images : ``(C, H, W)`` or ``(N, C, H, W)`` float tensor (or float numpy array), on
        any device; it is never modified.
    shift : ``(dx, dy)`` in pixels: ``dx`` to the right, ``dy`` down. Whole-pixel
        shifts without rotation or scaling are exact (pixels are moved, not resampled).
    rotate : degrees, counter-clockwise as seen on screen, about the image centre.
    scale : zoom factor about the image centre (2.0 doubles the size; > 0).
    erase : ``(x, y, w, h)``: a box of ``w`` x ``h`` pixels whose top-left pixel is at
        column ``x``, row ``y`` (after the move), set to the background.
    noise : standard deviation of Gaussian noise added last (in the images' units).
    seed : seed of the noise; the same seed gives the same noise on every device.
    fill : the background that moves in from the border and fills ``erase``. Default:
        each image's minimum per channel, which is the value of blank paper for
        normalised digits (``(0 - 0.1307) / 0.3081 = -0.4242`` for MNIST), not 0.
        Give a number, or one number per channel, to choose it.

    Returns
    -------
    Tensor : a new tensor of the same shape, device and dtype as ``images``.

    Order: rotate and scale, then shift, then erase, then noise.

    >>> x = torch.zeros(1, 5, 5); x[0, 2, 2] = 1.0
    >>> perturb(x, shift=(1, 0))[0, 2].tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0]
    """
    batch, single = as_batch(images, what="images")
    dx, dy = _pair(shift, "shift", "shift=(2, 0) moves 2 pixels to the right")
    rotate = _number(rotate, "rotate", "rotate=15.0 (degrees, counter-clockwise)")
    scale = _number(scale, "scale", "scale=1.5 (zoom in) or scale=0.8 (zoom out)")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}; 1.0 keeps the size, 0.5 halves it.")
    noise = _number(noise, "noise", "noise=0.3 (standard deviation)")
    if noise < 0:
        raise ValueError(f"noise is a standard deviation and must be >= 0, got {noise}.")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, got {seed!r} ({type(seed).__name__}).")
    box = None if erase is None else _erase_box(erase)
    if batch.is_complex():
        raise TypeError("perturb takes real-valued images, got a complex tensor.")
    back = _fill_values(batch, fill)

    if rotate % 360 == 0 and scale == 1.0 and dx.is_integer() and dy.is_integer():
        out = _integer_shift(batch, int(dx), int(dy), back)
    else:
        out = _affine(batch, dx, dy, rotate, scale, back)
    if box is not None:
        x, y, w, h = box
        out[..., max(y, 0):max(y + h, 0), max(x, 0):max(x + w, 0)] = back
    if noise > 0:
        gen = torch.Generator().manual_seed(seed)
        out = out + noise * torch.randn(out.shape, generator=gen).to(out.device, out.dtype)
    return out[0] if single else out


# --------------------------------------------------------------------------- MNIST style

def _drawing(pixels: Any) -> Tensor:
    """A drawing as a float32 CPU tensor ``(H, W)`` in [0, 1], with clear errors."""
    if isinstance(pixels, Tensor):
        t = pixels.detach()
    elif isinstance(pixels, (np.ndarray, list, tuple)):
        arr = np.asarray(pixels)
        if arr.dtype.kind not in "fiub":
            raise TypeError(f"pixels must be numbers, got an array of dtype {arr.dtype}.")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    else:
        raise TypeError(f"pixels must be an (H, W) numpy array or tensor in [0, 1] (ink = 1), "
                        f"got {type(pixels).__name__}.")
    if t.dtype == torch.bool:  # a mask: ink where True
        t = t.float()
    if not t.is_floating_point():
        raise TypeError(f"pixels are integers ({t.dtype}); mnist_style takes floats in [0, 1] "
                        "with ink = 1. For 0-255 pixels use pixels / 255.")
    while t.dim() > 2 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != 2 or t.numel() == 0:
        raise ValueError(f"pixels must be one drawing of shape (H, W), got shape "
                         f"{tuple(pixels.shape) if hasattr(pixels, 'shape') else '?'}.")
    t = t.to("cpu", torch.float32)
    lo, hi = float(t.min()), float(t.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < -1e-3 or hi > 1 + 1e-3:
        raise ValueError(
            f"pixels must lie in [0, 1] with ink = 1 and paper = 0, got values from {lo:.4g} "
            f"to {hi:.4g}. For 0-255 pixels use pixels / 255; a normalised MNIST image is "
            "already a model input, not a drawing."
        )
    return t.clamp(0.0, 1.0)


def _fit_box(ink: Tensor, box: int) -> Tensor:
    """Scale the cropped ink so its longer side is ``box`` pixels, keeping the aspect ratio."""
    h, w = ink.shape
    f = box / max(h, w)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    # antialias: a big drawing shrinks by averaging (grey edges, as MNIST's) not by skipping
    return F.interpolate(ink[None, None], size=size, mode="bilinear", align_corners=False,
                         antialias=f < 1)[0, 0].clamp_(0.0, 1.0)


def mnist_style(pixels: Any) -> Tensor:
    """A drawing made into a model input the way the MNIST digits were made.

    Crop to the ink, scale it to fit a 20x20 box keeping the aspect ratio
    (anti-aliased), paste it into a 28x28 field so that its centre of mass sits
    at pixel (14, 14) (moved just enough to stay whole inside the field), then
    normalise with MNIST's mean and standard deviation.

    Parameters
    ----------
    pixels : the drawing, an ``(H, W)`` array or tensor of any size in [0, 1]
        (ink = 1, paper = 0).

    Returns
    -------
    Tensor : ``(1, 1, 28, 28)`` float32 on the CPU, normalised. A drawing without
        ink gives a blank image (every pixel the normalised background, -0.4242).

    >>> drawing = np.zeros((280, 280), dtype=np.float32)
    >>> drawing[40:240, 130:150] = 1.0                    # a vertical stroke
    >>> x = mnist_style(drawing)
    >>> tuple(x.shape), round(float(x.min()), 4)
    ((1, 1, 28, 28), -0.4242)
    """
    from .data import mnist_normalize  # lazily: featviz.data imports torchvision

    t = _drawing(pixels)
    out = torch.zeros(MNIST_SIZE, MNIST_SIZE)
    rows = torch.nonzero(t.amax(dim=1) > INK).flatten()
    if len(rows):
        cols = torch.nonzero(t.amax(dim=0) > INK).flatten()
        digit = _fit_box(t[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1], MNIST_BOX)
        h, w = digit.shape
        mass = digit.sum()
        if float(mass) > 0:
            cy = float((digit.sum(dim=1) * torch.arange(h)).sum() / mass)
            cx = float((digit.sum(dim=0) * torch.arange(w)).sum() / mass)
        else:
            cy, cx = (h - 1) / 2, (w - 1) / 2
        top = min(max(round(MNIST_SIZE / 2 - cy), 0), MNIST_SIZE - h)
        left = min(max(round(MNIST_SIZE / 2 - cx), 0), MNIST_SIZE - w)
        out[top:top + h, left:left + w] = digit
    return mnist_normalize(out)[None, None]
