"""Integrated Gradients, and how faithful an attribution map is to the model.

- :func:`integrated_gradients` (Sundararajan et al., 2017): the gradient
  averaged along the straight path from a baseline image to the input, times
  the difference between the two; the attributions add up to the change in the
  class score (completeness).
- :func:`deletion_curve` / :func:`insertion_curve` (one function,
  :func:`faithfulness_curve`, with a ``mode``): remove (or insert) pixels in the
  order a map ranks them and follow the target class's probability. A faithful
  map makes the probability fall fast on deletion (small area under the curve)
  and rise fast on insertion (large area).
- :func:`random_ranking`: a seeded random map, the floor any method must beat.
- :func:`plot_faithfulness`: the mean curves of several maps on one axis.

Maps follow :mod:`featviz.explain`: ``(N, H, W)`` for a batch ``(N, C, H, W)``,
``(H, W)`` for one image ``(C, H, W)``.

>>> model = featviz.pretrained()
>>> images, labels = featviz.digit_examples()
>>> ig = featviz.integrated_gradients(model, images)              # (10, 28, 28)
>>> curve = featviz.deletion_curve(model, images, ig)
>>> curve.area.shape
torch.Size([10])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ._style import fmt
from ._torch import as_batch, inference_mode
from .explain import _finish, _input_gradient, _logits, _targets

__all__ = [
    "FaithfulnessCurve",
    "integrated_gradients",
    "faithfulness_curve",
    "deletion_curve",
    "insertion_curve",
    "random_ranking",
    "plot_faithfulness",
]

MODES = ("deletion", "insertion")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return value


def _baseline(baseline: Any, batch: torch.Tensor) -> torch.Tensor:
    """The baseline image of each image of ``batch``, shaped like ``batch``."""
    if isinstance(baseline, str):
        if baseline != "min":
            raise ValueError(f"baseline must be 'min', a number or a tensor, got {baseline!r}.")
        lo = batch.flatten(1).min(dim=1).values
        return lo.view(-1, 1, 1, 1).expand_as(batch)
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(batch, float(baseline))
    if isinstance(baseline, torch.Tensor):
        b = baseline.to(batch.device, batch.dtype)
        if b.shape == batch.shape[1:]:
            b = b.unsqueeze(0)
        try:
            return b.expand_as(batch)
        except RuntimeError:
            raise ValueError(
                f"baseline has shape {tuple(baseline.shape)}; give one image "
                f"{tuple(batch.shape[1:])} or one per image {tuple(batch.shape)}.") from None
    raise TypeError(f"baseline must be 'min', a number or a tensor, got {type(baseline).__name__}.")


def integrated_gradients(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    baseline: float | str | torch.Tensor = "min",
    steps: int = 64,
    batch_size: int = 256,
) -> torch.Tensor:
    """Integrated Gradients (Sundararajan et al., 2017), summed over colour channels.

    ``(x - baseline) * mean gradient`` of the target's score (the logit) along
    the straight path from ``baseline`` to ``x``, by the midpoint rule with
    ``steps`` points. The attributions of an image add up to
    ``score(x) - score(baseline)`` (completeness), up to the integration error.

    Parameters
    ----------
    x : a batch ``(N, C, H, W)`` or one image ``(C, H, W)``.
    target : an int, one per image, or None for the class predicted on ``x``.
    baseline : the image that means "nothing here": ``"min"`` (default) fills
        each image with its smallest value, the black background of an MNIST
        digit; a number; or a tensor (one image, or one per image).
    steps : points on the path; 64 is usually within 1% of completeness.
    batch_size : path points per forward pass.

    Returns
    -------
    ``(N, H, W)`` (or ``(H, W)``), float32 on the CPU, signed.

    >>> ig = integrated_gradients(model, images, baseline=0.0)
    """
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    batch, single = as_batch(x, model)
    batch = batch.detach()
    base = _baseline(baseline, batch)
    alphas = (torch.arange(steps, device=batch.device, dtype=batch.dtype) + 0.5) / steps
    out = torch.zeros(batch.shape[0], *batch.shape[2:], dtype=torch.float32, device=batch.device)
    with inference_mode(model, requires_grad=False):
        with torch.no_grad():
            t = _targets(target, _logits(model, batch))
        with torch.enable_grad():
            for i in range(batch.shape[0]):
                diff = batch[i] - base[i]
                total = torch.zeros_like(diff)
                for j in range(0, steps, batch_size):
                    a = alphas[j:j + batch_size].view(-1, 1, 1, 1)
                    grad, _ = _input_gradient(model, base[i] + a * diff, t[i].expand(len(a)))
                    total += grad.sum(dim=0)
                out[i] = (diff * total / steps).sum(dim=0).float()
    return _finish(out, single)


@dataclass
class FaithfulnessCurve:
    """A deletion or insertion curve per image, from :func:`faithfulness_curve`.

    Attributes
    ----------
    mode : ``"deletion"`` or ``"insertion"``.
    fractions : ``(S,)``, the fraction of pixels removed (or inserted) at each
        step, from 0 to 1.
    probability : ``(N, S)``, the softmax probability of the target class.
    area : ``(N,)``, the area under each curve (trapezoid rule over
        ``fractions``), in [0, 1]. Lower is more faithful for deletion, higher
        for insertion.
    target : ``(N,)``, the class followed in each image.
    """

    mode: str
    fractions: torch.Tensor
    probability: torch.Tensor
    area: torch.Tensor
    target: torch.Tensor

    def __repr__(self) -> str:
        n, s = self.probability.shape
        return (f"FaithfulnessCurve({self.mode}, {n} images, {s} steps, "
                f"mean area {fmt(float(self.area.mean()), 3)})")


def faithfulness_curve(
    model: nn.Module,
    x: torch.Tensor,
    attribution: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    mode: str = "deletion",
    fill: float | None = None,
    step: int = 1,
    batch_size: int = 256,
) -> FaithfulnessCurve:
    """Remove (or insert) pixels in the order ``attribution`` ranks them.

    Pixels are taken from the highest value of the map down (ties in reading
    order), ``step`` at a time, across all colour channels.

    - ``"deletion"``: start from the image and set the taken pixels to ``fill``.
    - ``"insertion"``: start from an image of ``fill`` and put the taken pixels back.

    At each step the softmax probability of the target class is recorded; the
    curve's area is normalised to the x axis [0, 1].

    Parameters
    ----------
    x : a batch ``(N, C, H, W)`` or one image ``(C, H, W)``.
    attribution : ``(N, H, W)`` maps (``(H, W)`` for one image), as returned by
        ``saliency``, ``grad_cam``, ``occlusion``, ``integrated_gradients``.
    target : an int, one per image, or None for the class predicted on ``x``.
    mode : ``"deletion"`` or ``"insertion"``.
    fill : the value of a removed pixel; None uses each image's smallest value
        (the black background for MNIST).
    step : pixels per step.
    batch_size : perturbed images per forward pass.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}.")
    step = _positive_int(step, "step")
    batch_size = _positive_int(batch_size, "batch_size")
    batch, single = as_batch(x, model)
    batch = batch.detach()
    n, _, h, w = batch.shape
    maps = torch.as_tensor(attribution).detach()
    if single and maps.dim() == 2:
        maps = maps.unsqueeze(0)
    if tuple(maps.shape) != (n, h, w):
        raise ValueError(
            f"attribution has shape {tuple(maps.shape)}; it must be one map per image, "
            f"{(n, h, w) if not single else (h, w)}.")
    counts = list(range(0, h * w, step)) + [h * w]
    fractions = torch.tensor(counts, dtype=torch.float64) / (h * w)
    # taken[k, p] = 1 when pixel p is among the first counts[k] of the ranking
    rank = torch.empty(n, h * w, dtype=torch.long)
    order = torch.sort(maps.flatten(1).float().cpu(), dim=1, descending=True, stable=True).indices
    rank.scatter_(1, order, torch.arange(h * w).expand(n, -1))
    probs = torch.empty(n, len(counts), dtype=torch.float64)
    with inference_mode(model, requires_grad=False), torch.no_grad():
        t = _targets(target, _logits(model, batch))
        for i in range(n):
            lo = batch[i].min() if fill is None else torch.tensor(
                float(fill), device=batch.device, dtype=batch.dtype)
            for j in range(0, len(counts), batch_size):
                c = torch.tensor(counts[j:j + batch_size])
                taken = (rank[i][None, :] < c[:, None]).view(-1, 1, h, w)
                taken = taken.to(batch.device, batch.dtype)
                keep = 1 - taken if mode == "deletion" else taken
                images = batch[i:i + 1] * keep + lo * (1 - keep)
                p = _logits(model, images).softmax(dim=1)[:, t[i]]
                probs[i, j:j + len(c)] = p.double().cpu()
    area = torch.trapezoid(probs, fractions, dim=1)
    return FaithfulnessCurve(mode, fractions, probs, area, t.cpu())


def deletion_curve(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor,
                   target: Any = None, **kwargs: Any) -> FaithfulnessCurve:
    """:func:`faithfulness_curve` with ``mode="deletion"``: lower area is more faithful."""
    return faithfulness_curve(model, x, attribution, target, mode="deletion", **kwargs)


def insertion_curve(model: nn.Module, x: torch.Tensor, attribution: torch.Tensor,
                    target: Any = None, **kwargs: Any) -> FaithfulnessCurve:
    """:func:`faithfulness_curve` with ``mode="insertion"``: higher area is more faithful."""
    return faithfulness_curve(model, x, attribution, target, mode="insertion", **kwargs)


def random_ranking(like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Random maps shaped like ``like`` (a map or a batch of maps): the floor of the curves.

    >>> random_ranking(torch.zeros(2, 28, 28)).shape
    torch.Size([2, 28, 28])
    """
    gen = torch.Generator().manual_seed(int(seed))
    return torch.rand(tuple(like.shape), generator=gen)


def plot_faithfulness(curves: Mapping[str, FaithfulnessCurve], ax: Any = None,
                      title: str | None = None) -> Any:
    """The mean curve over images of each map, its mean area in the legend; returns the axis."""
    import matplotlib.pyplot as plt

    if not curves:
        raise ValueError("curves is empty; pass {name: FaithfulnessCurve}.")
    modes = {c.mode for c in curves.values()}
    if len(modes) != 1:
        raise ValueError(f"curves mix modes {sorted(modes)}; plot deletion and insertion apart.")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for name, c in curves.items():
        ax.plot(c.fractions.numpy(), c.probability.mean(dim=0).numpy(),
                label=f"{name} ({fmt(float(c.area.mean()), 2)})",
                linestyle="--" if name.startswith("random") else "-")
    mode = modes.pop()
    ax.set_xlabel(f"fraction of pixels {'removed' if mode == 'deletion' else 'inserted'}")
    ax.set_ylabel("probability of the class")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(0, 1)
    ax.set_title(title or f"{mode} (mean area)")
    ax.legend(fontsize=8)
    return ax
