"""Dataset-wide statistics of a model, streamed batch by batch like ``top_activating``:

- :func:`channel_stats`: each channel's mean, maximum, how often it fires, and which never do;
- :func:`robustness`: accuracy on the clean data and under shifts and rotations;
- :func:`map_stability`: how much a layer's maps keep their pattern when the image moves.

Only running sums are kept, never the maps of more than one batch, so memory does not
grow with the dataset. The sums are what the partial results of several processes add
up to, so the same functions merge across ranks when ``torch.distributed`` runs.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from numbers import Integral
from typing import Any, Callable, Iterator, Sequence, Union

import torch
from torch import Tensor, nn

from . import distributed as _dist
from . import hooks
from ._torch import as_batch, batches, check_device, inference_mode, run_model
from .geometry import one_layer, receptive_field
from .perturbation import _affine, _fill_values, _integer_shift

__all__ = ["ChannelStats", "Robustness", "MapStability", "channel_stats", "robustness",
           "map_stability"]

Shift = Union[int, tuple[int, int]]


# --------------------------------------------------------------------------- helpers

def _scan(model: nn.Module, data: Any, batch_size: int, device: Any, who: str,
          split: bool) -> Iterator[tuple[Tensor, Any]]:
    """``(images on the model's device, labels_or_None)`` batches of ``data`` (this rank's
    shard of it when ``split``)."""
    check_device(model, device)
    for images, labels in batches(_dist.shard(data, batch_size) if split else data, batch_size,
                                  who=who):
        x, _ = as_batch(images, model, what=f"{who}: the images")
        yield x, labels


def _directions(shift: Any, name: str) -> list[tuple[int, int]]:
    """``d`` -> the four axis shifts ``(dy, dx)``; a pair ``(dy, dx)`` -> itself."""
    if isinstance(shift, Integral) and not isinstance(shift, bool):
        d = int(shift)
        if d < 0:
            raise ValueError(f"{name}: a shift of {d} px; give a distance >= 0 (it is applied in "
                             f"all four directions) or an exact pair (dy, dx) such as (0, -{-d}).")
        return [(d, 0), (-d, 0), (0, d), (0, -d)]
    if (isinstance(shift, (tuple, list)) and len(shift) == 2
            and all(isinstance(v, Integral) and not isinstance(v, bool) for v in shift)):
        return [(int(shift[0]), int(shift[1]))]
    raise TypeError(f"{name} takes whole pixels: an int d (the four shifts by d px up, down, left "
                    f"and right) or a pair (dy, dx) of ints; got {shift!r}.")


def _shifted(x: Tensor, dy: int, dx: int, fill: Any) -> Tensor:
    """``x`` moved ``dy`` px down and ``dx`` px right, no wrap-around, background moving in."""
    return _integer_shift(x, dx, dy, _fill_values(x, fill))


def _rotated(x: Tensor, degrees: float, fill: Any) -> Tensor:
    """``x`` rotated counter-clockwise about its centre, bilinear, background filling the corners."""
    return _affine(x, 0.0, 0.0, float(degrees), 1.0, _fill_values(x, fill))


def _logits(model: nn.Module, x: Tensor) -> Tensor:
    out = run_model(model, x)
    if not isinstance(out, Tensor) or out.dim() != 2:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"robustness needs a model that returns class scores (N, classes); "
                         f"this one returned {got}.")
    return out


def _fmt(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.4g}"


def _rows(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(header)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _reduce_sums(sums: dict[str, Tensor], split: bool) -> dict[str, Tensor]:
    """The running sums over all ranks (O(C) numbers each), or as they are."""
    return _dist.merge_sums(sums) if split else sums


# --------------------------------------------------------------------------- channel_stats

@dataclass(frozen=True)
class ChannelStats:
    """What :func:`channel_stats` returns.

    layer : the layer's name; n_images : how many images were scanned.
    mean : ``(C,)`` each channel's mean activation over images and positions.
    max : ``(C,)`` the largest activation seen anywhere.
    fraction_active : ``(C,)`` the fraction of images on which the channel's maximum
        exceeds ``threshold``.
    dead : the channels never above ``threshold`` on any image.
    """

    layer: str
    n_images: int
    threshold: float
    mean: Tensor
    max: Tensor
    fraction_active: Tensor
    dead: list[int]

    def table(self) -> str:
        """One row per channel: mean, max, fraction active, and whether it is dead."""
        rows = [(c, _fmt(float(self.mean[c])), _fmt(float(self.max[c])),
                 f"{float(self.fraction_active[c]):.3f}", "dead" if c in self.dead else "")
                for c in range(len(self.mean))]
        head = (f"{self.layer}: {len(self.mean)} channels over {self.n_images} images, "
                f"{len(self.dead)} dead (never above {self.threshold:g})")
        return head + "\n" + _rows(["channel", "mean", "max", "active", ""], rows)

    def __str__(self) -> str:
        return self.table()


def _per_image(t: Tensor) -> Tensor:
    """Maps ``(N, C, ...)`` -> ``(N, C, 2)``: each image's mean and maximum per channel."""
    flat = t.flatten(2) if t.dim() >= 3 else t.unsqueeze(2)
    flat = flat.to(torch.promote_types(flat.dtype, torch.float32))
    return torch.stack([flat.mean(2), flat.amax(2)], -1)


def channel_stats(model: nn.Module, data: Any, layer: str, *, threshold: float = 0.0,
                  batch_size: int = 256, device: str | torch.device | None = None,
                  distributed: bool | None = None, stop_after: bool | str = "auto") -> ChannelStats:
    """Each channel's mean and maximum activation over ``data``, how often it fires, and
    which channels are dead (never above ``threshold`` on any image).

    ``data`` is anything ``featviz.hooks.batched_activations`` takes; ``layer`` has maps
    ``(N, C, H, W)`` (or ``(N, C, L)``) or features ``(N, C)`` (a linear layer's units).
    ``distributed`` (all three functions): with ``torch.distributed`` initialised (``None``:
    auto), each rank scans its shard and the sums are merged, so every rank returns what
    one process returns (:mod:`featviz.distributed`); ``False`` opts out. ``stop_after``:
    end each pass at ``layer`` where safe (:class:`featviz.hooks.Capture`).

    >>> import featviz, torch
    >>> s = channel_stats(featviz.SimpleCNN(), torch.zeros(4, 1, 28, 28), "relu1")
    >>> s.n_images, len(s.mean), s.fraction_active.shape
    (4, 16, torch.Size([16]))
    """
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
            or not math.isfinite(threshold):
        raise TypeError(f"threshold must be a finite number, got {threshold!r}.")
    name, _ = one_layer(model, layer)
    sums: dict[str, Tensor] = {}
    split = _dist.active(distributed)
    with inference_mode(model, requires_grad=False):
        for _, _, acts in hooks.batched_activations(model, data, [name], batch_size=batch_size,
                                                    device=device, reduce=_per_image,
                                                    distributed=split, stop_after=stop_after):
            a = acts[name].double()  # (b, C, [mean, max])
            if a.dim() != 3:
                raise ValueError(f"layer {name!r} outputs {tuple(a.shape)[:-1]}: channel_stats "
                                 "needs maps (N, C, H, W) or features (N, C).")
            part = {"n": torch.tensor([float(len(a))], dtype=torch.float64),
                    "sum": a[..., 0].sum(0), "active": (a[..., 1] > threshold).double().sum(0)}
            for key, v in part.items():
                sums[key] = sums[key] + v if key in sums else v
            best = a[..., 1].amax(0)
            sums["max"] = torch.maximum(sums["max"], best) if "max" in sums else best
    if not sums:
        raise ValueError("data holds no images; channel_stats needs at least one.")
    sums = _reduce_sums(sums, split)
    n = int(sums["n"].item())
    frac = (sums["active"] / n).float()
    return ChannelStats(layer=name, n_images=n, threshold=float(threshold),
                        mean=(sums["sum"] / n).float(), max=sums["max"].float(),
                        fraction_active=frac, dead=[int(c) for c in (sums["active"] == 0).nonzero()[:, 0]])


# --------------------------------------------------------------------------- robustness

@dataclass(frozen=True)
class Robustness:
    """What :func:`robustness` returns: accuracies between 0 and 1.

    clean : on the data as given. n_images : how many images.
    shift : ``{d: accuracy}``; an int ``d`` is the mean over the four shifts by ``d`` px
        (down, up, right, left), a pair ``(dy, dx)`` that exact shift.
    rotation : ``{degrees: accuracy}``, counter-clockwise about the centre.
    """

    clean: float
    shift: dict[Any, float]
    rotation: dict[float, float]
    n_images: int

    def table(self) -> str:
        """One row per transform, with the accuracy and its change from clean."""
        rows = [("clean", f"{self.clean:.4f}", "")]
        rows += [(f"shift {d} px" if not isinstance(d, tuple) else f"shift (dy, dx)={d}",
                  f"{a:.4f}", f"{a - self.clean:+.4f}") for d, a in self.shift.items()]
        rows += [(f"rotate {g:g} deg", f"{a:.4f}", f"{a - self.clean:+.4f}")
                 for g, a in self.rotation.items()]
        return f"accuracy over {self.n_images} images\n" + _rows(["transform", "accuracy", "change"], rows)

    def __str__(self) -> str:
        return self.table()


def robustness(model: nn.Module, data: Any, *, shifts: Sequence[Shift] = (1, 2, 3, 4, 5, 6),
               rotations: Sequence[float] = (-30, -15, 15, 30), fill: Any = None,
               batch_size: int = 256, device: str | torch.device | None = None,
               distributed: bool | None = None) -> Robustness:
    """Classification accuracy on ``data`` (images with labels) as given, shifted and rotated.

    shifts : ints ``d`` (the mean accuracy over the shifts by ``d`` px down, up, right and
        left) or exact pairs ``(dy, dx)`` (``dy`` down, ``dx`` right; note the order: rows
        first, unlike ``perturb``'s ``shift=(dx, dy)``). Shifts are whole pixels without
        wrap-around: the background moves in from the border.
    rotations : degrees, counter-clockwise about the image centre (bilinear).
    fill : the background: default each image's minimum (blank paper for normalised
        digits), or a number / one number per channel.

    >>> import featviz, torch
    >>> r = robustness(featviz.SimpleCNN(), (torch.zeros(4, 1, 28, 28), torch.zeros(4).long()),
    ...                shifts=(2,), rotations=(15,))
    >>> sorted(r.shift), sorted(r.rotation)
    ([2], [15])
    """
    plans: list[tuple[str, Any, list[Callable[[Tensor], Tensor]]]] = [("clean", None, [lambda x: x])]
    for d in shifts:
        moves = _directions(d, "shifts")
        key = tuple(int(v) for v in d) if isinstance(d, (tuple, list)) else int(d)
        plans.append(("shift", key, [functools.partial(_shifted, dy=m[0], dx=m[1], fill=fill) for m in moves]))
    for g in rotations:
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g):
            raise TypeError(f"rotations takes angles in degrees, got {g!r}.")
        plans.append(("rotation", g, [functools.partial(_rotated, degrees=g, fill=fill)]))
    correct = torch.zeros(sum(len(p[2]) for p in plans), dtype=torch.float64)
    n, split = 0, _dist.active(distributed)
    with inference_mode(model, requires_grad=False):
        for x, labels in _scan(model, data, batch_size, device, "robustness", split):
            if labels is None:
                raise ValueError("robustness needs labels: pass (images, labels), or a Dataset "
                                 "or DataLoader that yields (image, label).")
            y = torch.as_tensor(labels).long().to(x.device)
            col = 0
            for _, _, fns in plans:
                for fn in fns:
                    correct[col] += float((_logits(model, fn(x)).argmax(1) == y).sum())
                    col += 1
            n += len(x)
    if n == 0:
        raise ValueError("data holds no images; robustness needs at least one.")
    sums = _reduce_sums({"correct": correct, "n": torch.tensor([float(n)], dtype=torch.float64)},
                        split)
    acc, total = (sums["correct"] / sums["n"]).tolist(), int(sums["n"].item())
    col, out = 0, {"clean": {}, "shift": {}, "rotation": {}}  # type: ignore[var-annotated]
    for kind, key, fns in plans:
        out[kind][key] = sum(acc[col:col + len(fns)]) / len(fns)
        col += len(fns)
    return Robustness(clean=out["clean"][None], shift=out["shift"], rotation=out["rotation"],
                      n_images=total)


# --------------------------------------------------------------------------- map_stability

@dataclass(frozen=True)
class MapStability:
    """What :func:`map_stability` returns.

    layer, shift : as asked. stride : the layer's stride in pixels; units : the
    ``(dy, dx)`` by which each shifted image's maps were moved back, in map units.
    per_channel : ``(C,)`` each channel's mean cosine similarity
    between its maps of the shifted image, shifted back, and of the original (1: the map
    moved with the image; lower: its pattern changed). Images on which both maps are zero
    are left out of a channel's mean; a channel zero on every image is ``nan``.
    mean : the mean over channels (``nan`` channels left out).
    """

    layer: str
    shift: Shift
    per_channel: Tensor
    mean: float
    stride: tuple[int, int]
    units: list[tuple[int, int]]
    n_images: int

    def table(self) -> str:
        """One row per channel with its cosine similarity."""
        rows = [(c, _fmt(float(v))) for c, v in enumerate(self.per_channel)]
        head = (f"{self.layer}: maps of images shifted by {self.shift} px, shifted back by "
                f"{self.units} units (stride {self.stride}); mean cosine {_fmt(self.mean)} over {self.n_images} images")
        return head + "\n" + _rows(["channel", "cosine"], rows)

    def __str__(self) -> str:
        return self.table()


def _overlap(a: Tensor, b: Tensor, my: int, mx: int) -> tuple[Tensor, Tensor]:
    """The parts of maps ``a`` (original) and ``b`` (of the image moved by ``(my, mx)`` units)
    that show the same place: ``b[i, j]`` against ``a[i - my, j - mx]``."""
    h, w = a.shape[-2:]
    a_part = a[..., max(-my, 0):h - max(my, 0), max(-mx, 0):w - max(mx, 0)]
    b_part = b[..., max(my, 0):h + min(my, 0), max(mx, 0):w + min(mx, 0)]
    return a_part, b_part


def _units(pixels: int, stride: int) -> int:
    """``pixels / stride`` rounded to the nearest int, halves away from zero."""
    return int(math.copysign(math.floor(abs(pixels) / stride + 0.5), pixels))


def map_stability(model: nn.Module, data: Any, layer: str, *, shift: Shift = 4,
                  exact: bool = False, fill: Any = None, batch_size: int = 256,
                  device: str | torch.device | None = None, distributed: bool | None = None,
                  stop_after: bool | str = "auto") -> MapStability:
    """How stable the maps of ``layer`` are when the image moves by ``shift`` pixels.

    Each image is shifted (an int ``d``: the four shifts by ``d`` px down, up, right and
    left, averaged; a pair ``(dy, dx)``: that shift), its maps are shifted back by
    ``shift / stride`` units (the layer's stride from :func:`featviz.receptive_field`),
    the border that left the frame is cropped, and the cosine similarity with the
    original maps is taken per image and channel. A shift that is not a multiple of the
    stride is shifted back by the nearest whole number of units (halves away from zero;
    ``units`` in the result says by how many); ``exact=True`` raises a ``ValueError``
    instead. A network without padding moves its maps exactly with a shift by a
    multiple of the stride (cosine 1 away from the border), so the interesting shifts
    are the others.

    >>> import featviz, torch
    >>> s = map_stability(featviz.SimpleCNN(), torch.randn(4, 1, 28, 28), "conv2", shift=2)
    >>> s.stride, s.per_channel.shape
    ((2, 2), torch.Size([32]))
    """
    name, _ = one_layer(model, layer)
    moves = _directions(shift, "shift")
    key = tuple(int(v) for v in shift) if isinstance(shift, (tuple, list)) else int(shift)
    rf, units = None, []
    total = torch.zeros(0, dtype=torch.float64)
    count = torch.zeros(0, dtype=torch.float64)
    n, split = 0, _dist.active(distributed)
    cap = hooks.capture(model, [name], stop_after=stop_after)
    with inference_mode(model, requires_grad=False):
        for x, _ in _scan(model, data, batch_size, device, "map_stability", split):
            if rf is None:
                rf = receptive_field(model, name, input_size=tuple(x.shape[1:]))
                sy, sx = rf.stride
                bad = [m for m in moves if m[0] % sy or m[1] % sx]
                if bad and exact:
                    raise ValueError(
                        f"shift={shift!r}: layer {name!r} has stride {rf.stride}, so its maps can "
                        f"only be shifted back by whole units when the shift is a multiple of it "
                        f"(e.g. shift={sy}); or pass exact=False to round to the nearest unit.")
                units = [(_units(m[0], sy), _units(m[1], sx)) for m in moves]
                if any(abs(my) >= rf.output_size[0] or abs(mx) >= rf.output_size[1] for my, mx in units):
                    raise ValueError(f"shift={shift!r} moves the maps of {name!r} (size "
                                     f"{rf.output_size}) out of the frame; give a smaller shift.")
            stack = torch.cat([x] + [_shifted(x, dy, dx, fill) for dy, dx in moves])
            maps = cap.run(stack)[name].double()
            b = len(x)
            orig = maps[:b]
            for i, (my, mx) in enumerate(units):
                a_part, b_part = _overlap(orig, maps[b * (i + 1):b * (i + 2)], my, mx)
                a_flat, b_flat = a_part.flatten(2), b_part.flatten(2)  # (b, C, positions)
                na, nb = a_flat.norm(dim=2), b_flat.norm(dim=2)
                cos = (a_flat * b_flat).sum(2) / (na * nb).clamp_min(1e-300)
                defined = (na > 0) | (nb > 0)  # one zero map against a non-zero one: cosine 0
                if not len(total):
                    total = torch.zeros(cos.shape[1], dtype=torch.float64)
                    count = torch.zeros(cos.shape[1], dtype=torch.float64)
                total += torch.where(defined, cos, torch.zeros_like(cos)).sum(0)
                count += defined.double().sum(0)
            n += b
    if rf is None:
        raise ValueError("data holds no images; map_stability needs at least one.")
    sums = _reduce_sums({"total": total, "count": count,
                         "n": torch.tensor([float(n)], dtype=torch.float64)}, split)
    per = (sums["total"] / sums["count"]).float()  # 0 / 0: nan for a channel always zero
    good = per[~per.isnan()]
    return MapStability(layer=name, shift=key, per_channel=per,  # type: ignore[arg-type]
                        mean=float(good.mean()) if len(good) else math.nan,
                        stride=rf.stride, units=units, n_images=int(sums["n"].item()))
