"""What excites a channel, and where the model looks.

Two questions, six functions, one calling convention (``model, ..., layer,
channel`` or ``model, x, target``):

What does a channel look for?

- :func:`receptive_field` (from :mod:`featviz.geometry`): which input pixels one
  unit of a layer can see.
- :func:`top_activating`: the dataset images (and the patches under the
  receptive field) that excite a channel most, found in one streaming pass.
- :func:`maximize_activation`: an input synthesised by gradient ascent to
  excite a channel (or a class logit) as much as possible.

Where does the model look for this decision?

- :func:`saliency`: the gradient of the class score with respect to the pixels
  (optionally SmoothGrad).
- :func:`grad_cam`: Grad-CAM on a convolutional layer, each unit drawn at the
  centre of its receptive field.
- :func:`occlusion`: how much the class score drops when a window is hidden.

The three attribution maps all have the input's height and width: ``(N, H, W)``
for a batch ``(N, C, H, W)``, ``(H, W)`` for one image ``(C, H, W)``; they are
float32 CPU tensors, ready for ``featviz.plot_overlay``. Attributions are
computed in eval mode; every function leaves the model as it found it (its
train/eval mode, each parameter's ``requires_grad``, no hooks, no ``.grad``).

>>> model = featviz.pretrained()
>>> images, labels = featviz.digit_examples()
>>> cam = featviz.grad_cam(model, images, "conv2")          # (10, 28, 28)
>>> tops = featviz.top_activating(model, images, "conv2")   # {channel: TopActivations}
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import distributed as _dist
from . import hooks
from ._torch import as_batch, inference_mode, model_device, model_dtype, run_model
from .geometry import ReceptiveField, place_by_receptive_field, receptive_field
from .geometry import input_shape as _input_shape
from .geometry import one_layer as _one_layer

__all__ = [
    "ReceptiveField",
    "TopActivations",
    "Maximized",
    "receptive_field",
    "top_activating",
    "maximize_activation",
    "saliency",
    "grad_cam",
    "occlusion",
]

Size2 = tuple[int, int]


# --------------------------------------------------------------------------- helpers


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = run_model(model, x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"attributions need a model that returns class scores of shape (N, classes); "
            f"this model returned {shape}."
        )
    return out


def _targets(target: Any, logits: torch.Tensor) -> torch.Tensor:
    """The class to explain for each image: given, or the predicted one."""
    n, k = logits.shape
    if target is None:
        return logits.detach().argmax(dim=1)
    t = torch.as_tensor(target, device=logits.device)
    if t.dtype.is_floating_point or t.dtype == torch.bool:
        raise TypeError(f"target must be a class index (int) or one per image, got {target!r}.")
    t = t.long().flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise ValueError(
            f"target has {t.numel()} class indices for {n} images; give one int for all "
            f"images or one per image."
        )
    if int(t.min()) < 0 or int(t.max()) >= k:
        raise ValueError(f"target must be a class index in 0..{k - 1}, got {target!r}.")
    return t


def _pair(v: Any, what: str) -> Size2:
    if isinstance(v, int):
        return (v, v)
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return (int(v[0]), int(v[1]))
    raise TypeError(f"{what} must be an int or a pair of ints (height, width), got {v!r}.")


def _finish(maps: torch.Tensor, single: bool) -> torch.Tensor:
    maps = maps.detach().to("cpu", torch.float32)
    return maps[0] if single else maps


# --------------------------------------------------------------------------- top activating


@dataclass
class TopActivations:
    """The ``k`` inputs that excite one channel most, best first.

    Attributes
    ----------
    layer, channel : what was scanned.
    scores : ``(k,)`` the channel's strongest response in each image (its maximum
        over positions), descending.
    indices : ``(k,)`` each image's position in the scan order (the dataset index
        for tensors, datasets and unshuffled loaders).
    images : ``(k, C, H, W)`` the images, on the CPU; ``labels`` ``(k,)`` their labels,
        or None.
    positions : ``(k, 2)`` the ``(row, col)`` of the strongest unit in the layer's
        maps; None for layers without spatial maps.
    boxes : ``(k, 4)`` ``(top, left, bottom, right)`` of that unit's receptive
        field in the image, clipped at the border (half-open); None as above.
    patches : ``k`` tensors ``(C, h, w)``, the images cropped to ``boxes`` (the
        whole image for layers without spatial maps). Patches cut by the border
        are smaller than ``receptive_field.size``.
    """

    layer: str
    channel: int
    scores: torch.Tensor
    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor | None
    positions: torch.Tensor | None
    boxes: torch.Tensor | None
    patches: list[torch.Tensor]
    receptive_field: ReceptiveField | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        s = ", ".join(f"{v:.3g}" for v in self.scores.tolist())
        return (f"TopActivations(layer={self.layer!r}, channel={self.channel}, "
                f"k={len(self.scores)}, scores=[{s}])")


def _random_access(data: Any) -> tuple[torch.Tensor | Any, torch.Tensor | Any] | None:
    """A way to fetch images by scan index after the scan, or None (keep them instead)."""
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return data[0], data[1]
    if isinstance(data, torch.utils.data.DataLoader):
        if isinstance(data.sampler, torch.utils.data.SequentialSampler) and isinstance(
                data.dataset, torch.utils.data.Dataset) and hasattr(data.dataset, "__getitem__"):
            return data.dataset, "dataset"
        return None
    if isinstance(data, torch.utils.data.Dataset):
        return data, "dataset"
    return None


def _fetch(source: tuple[Any, Any], idx: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    store, labels = source
    if isinstance(labels, str):  # a Dataset: items are images or (image, label)
        items = [store[i] for i in idx]
        if items and isinstance(items[0], (tuple, list)):
            ims = torch.stack([torch.as_tensor(it[0]) for it in items])
            labs = torch.as_tensor([int(it[1]) for it in items])
            return ims, labs
        return torch.stack([torch.as_tensor(it) for it in items]), None
    i = torch.as_tensor(idx, dtype=torch.long)
    ims = store[i.to(store.device)].detach().cpu()
    return ims, (torch.as_tensor(labels)[i].cpu() if labels is not None else None)


def top_activating(
    model: nn.Module,
    data: Any,
    layer: str,
    channel: int | Sequence[int] | None = None,
    k: int = 9,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    patches: bool = True,
    distributed: bool | None = None,
    stop_after: bool | str = "auto",
) -> TopActivations | dict[int, TopActivations]:
    """The ``k`` images of ``data`` that excite a channel of ``layer`` most.

    Streams over ``data`` batch by batch, keeping only a running top-``k`` per
    channel, so memory does not grow with the dataset: all 32 conv2 channels of
    the SimpleCNN over the 60,000 MNIST training images is one pass.

    Parameters
    ----------
    data : images ``(N, C, H, W)``, an ``(images, labels)`` pair, a Dataset or a
        DataLoader (anything ``featviz.hooks.batched_activations`` accepts).
    layer : the layer to scan, e.g. ``"conv2"`` or ``"relu2"`` (or ``"fc3"``:
        its "channels" are the units, here the class logits).
    channel : one channel (returns a :class:`TopActivations`), a list of
        channels, or None for all of them (returns ``{channel: TopActivations}``).
    k : how many images per channel (fewer if ``data`` is smaller).
    patches : crop each image to the receptive field of the strongest unit;
        False skips the receptive-field calculation (for layers it cannot follow).

    distributed : with ``torch.distributed`` initialised (``None``: auto), each rank
        scans its shard and the top ``k`` are merged, so every rank returns what one
        process returns (see :mod:`featviz.distributed`); ``False`` opts out.
    stop_after : end each forward pass at ``layer`` (early exit; ``"auto"``: where safe,
        see :class:`featviz.hooks.Capture`).

    An image's score for a channel is the channel's maximum over positions.
    Ties go to the earlier image.

    >>> test_images, test_labels = featviz.mnist_tensors(train=False)
    >>> data = (test_images[:1000], test_labels[:1000])
    >>> tops = top_activating(model, data, "conv2")     # every channel
    >>> len(tops), tops[5].images.shape
    (32, torch.Size([9, 1, 28, 28]))
    >>> len(tops[5].patches)       # crops of up to 14x14 pixels: what channel 5 responds to
    9
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")
    name, _ = _one_layer(model, layer)
    single = isinstance(channel, int)
    wanted: list[int] | None = [channel] if isinstance(channel, int) else (
        None if channel is None else [int(c) for c in channel])

    top = None  # running best (values, positions, scan indices), each (m, C[, 2]), m <= k
    pool: dict[int, tuple[torch.Tensor, Any]] = {}  # scan index -> (image, label), if kept
    source = _random_access(data)
    split = _dist.active(distributed)
    seen = 0
    spatial, image_size, n_channels = False, None, None
    reduce = _TopReduce(wanted)
    with inference_mode(model, requires_grad=False):
        for images, labels, acts in hooks.batched_activations(
                model, _dist.shard(data, batch_size) if split else data, [name],
                batch_size=batch_size, device=device, reduce=reduce, distributed=False,
                stop_after=stop_after):
            a = acts[name].detach()  # maps reduced in the hook: (b, C, [max, row, col])
            images = torch.as_tensor(images)  # numpy batches come as they were given
            labels = torch.as_tensor(labels) if labels is not None else None
            if n_channels is None:
                n_channels = _check_scanned(a, name, wanted, reduce.n_channels)
                spatial = a.dim() == 3
                image_size = tuple(images.shape[1:])
            a = a.cpu()
            b = a.shape[0]
            if spatial:
                vals, where = a[..., 0].float(), a[..., 1:].long()  # (b, C), (b, C, 2)
            else:
                vals, where = a.float(), torch.zeros(*a.shape, 2, dtype=torch.long)
            idx = torch.arange(seen, seen + b).unsqueeze(1).expand_as(vals)
            top = _merge_top(top, vals, where, _dist.global_index(idx) if split else idx, k)
            reduce.above = top[0][-1] if len(top[0]) == k else None
            if source is None:
                _keep_ranked(pool, top[2], images, labels,
                             (_dist.global_index(idx[:, 0]) if split else idx[:, 0]).tolist())
            seen += b
    if top is None or n_channels is None:  # set together, by the first batch
        raise ValueError("data holds no images; top_activating needs at least one.")
    if split:
        top = _dist.merge_top(top, k)

    rf = None
    if spatial and patches:
        rf = receptive_field(model, name, input_size=image_size)
    channels = wanted if wanted is not None else list(range(n_channels))
    # each top image is read once, after the merge: by index where the data allows it,
    # else from the images kept (in a distributed scan, sent by the rank that holds each)
    ids = sorted(set(top[2].flatten().tolist()))
    ims, labs = (_fetch(source, ids) if source is not None else
                 _dist.share_held(pool, ids) if split else _from_pool(pool, ids))
    row = {g: j for j, g in enumerate(ids)}

    def fetch(want: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
        at = torch.tensor([row[g] for g in want], dtype=torch.long)
        return ims[at], (labs[at] if labs is not None else None)

    results = {ch: _top_result(name, ch, col, top, fetch, spatial, rf)
               for col, ch in enumerate(channels)}
    return results[channels[0]] if single else results


class _TopReduce:
    """The reduction ``top_activating`` runs in the hook: maps ``(N, C, H, W)`` ->
    ``(N, C', 3)``, each (wanted) channel's ``[maximum, row, column]`` like
    :func:`featviz.hooks.channel_max`, but the position (the costly part) is found only
    where the maximum beats ``above``, the running ``k``-th best of each channel (the
    others cannot enter the top: a tie goes to the earlier image, already there);
    elsewhere it is 0. Features ``(N, F)`` are kept whole."""

    def __init__(self, wanted: list[int] | None) -> None:
        self.wanted = wanted
        self.above: torch.Tensor | None = None  # (C',) set by the scan after each batch
        self.n_channels: int | None = None  # the layer's, seen by the first call

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        self.n_channels = t.shape[1] if t.dim() >= 2 else None
        if self.wanted is not None and t.dim() >= 2 and max(self.wanted) < t.shape[1]:
            t = t[:, self.wanted]
        if t.dim() < 3:
            return t
        flat = t.flatten(2)
        values = flat.amax(dim=2)
        where = torch.zeros(values.shape, dtype=torch.long, device=t.device)
        if self.above is None:
            ask = torch.ones_like(values, dtype=torch.bool)
        else:  # NaN sorts first, like the largest value
            ask = (values > self.above.to(values.device)) | values.isnan()
        if bool(ask.any()):
            where[ask] = flat[ask].max(dim=1).indices  # the first maximum, as channel_max
        kind, width = torch.promote_types(t.dtype, torch.float32), t.shape[-1]
        return torch.stack([values.to(kind), (where // width).to(kind),
                            (where % width).to(kind)], -1)


def _check_scanned(a: torch.Tensor, name: str, wanted: list[int] | None,
                   n_channels: int | None) -> int:
    """The layer's channel count, after checking its reduced output and ``wanted``."""
    if a.dim() not in (2, 3) or n_channels is None:
        raise ValueError(
            f"layer {name!r} outputs shape {tuple(a.shape)}; top_activating "
            f"needs maps (N, C, H, W) or features (N, F).")
    bad = [c for c in (wanted or []) if not 0 <= c < n_channels]
    if bad:
        raise ValueError(
            f"channel {bad[0]} does not exist: {name!r} has {n_channels} "
            f"channels (0..{n_channels - 1}).")
    return n_channels


def _merge_top(top: tuple[torch.Tensor, ...] | None, vals: torch.Tensor, where: torch.Tensor,
               idx: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The running top-``k`` per channel after one more batch: (values, positions, indices)."""
    if top is not None and len(top[0]) == k:  # only images above a k-th best can enter
        enter = ((vals > top[0][-1]) | vals.isnan()).any(1)
        if not bool(enter.any()):
            return top[0], top[1], top[2]
        vals, where, idx = vals[enter], where[enter], idx[enter]
    if top is not None:
        vals = torch.cat([top[0], vals])
        where = torch.cat([top[1], where])
        idx = torch.cat([top[2], idx])
    # a stable sort keeps earlier images first among equal scores: the running
    # best (all earlier) comes before the batch, and the batch is in order
    order = torch.sort(vals, dim=0, descending=True, stable=True).indices[:k]
    return (vals.gather(0, order), where.gather(0, order[..., None].expand(-1, -1, 2)),
            idx.gather(0, order))


def _keep_ranked(pool: dict[int, tuple[torch.Tensor, Any]], top_idx: torch.Tensor,
                 images: torch.Tensor, labels: torch.Tensor | None, ids: list[int]) -> None:
    """Keep (in ``pool``) only the images some channel still ranks, for data that
    cannot be fetched again by index; ``ids`` are the batch's scan indices."""
    keep = set(top_idx.unique().tolist())
    for j, i in enumerate(ids):
        if i in keep and i not in pool:
            lab = labels[j].cpu() if labels is not None else None
            pool[i] = (images[j].detach().cpu().clone(), lab)
    for i in [i for i in pool if i not in keep]:
        del pool[i]


def _from_pool(pool: dict[int, tuple[torch.Tensor, Any]],
               ids: list[int]) -> tuple[torch.Tensor, torch.Tensor | None]:
    ims = torch.stack([pool[i][0] for i in ids])
    labs = (torch.stack([torch.as_tensor(pool[i][1]) for i in ids])
            if pool[ids[0]][1] is not None else None)
    return ims, labs


def _top_result(name: str, ch: int, col: int, top: tuple[torch.Tensor, ...], fetch: Any,
                spatial: bool, rf: ReceptiveField | None) -> TopActivations:
    """One channel's :class:`TopActivations` from column ``col`` of the scan's running best."""
    top_vals, top_pos, top_idx = top
    idx = top_idx[:, col]
    ims, labs = fetch(idx.tolist())
    pos = boxes = None
    crops = list(ims)
    if spatial:
        pos = top_pos[:, col]
        if rf is not None:
            boxes = torch.tensor([rf.box(int(r), int(c)) for r, c in pos.tolist()],
                                 dtype=torch.long)
            crops = [im[:, t:b, l:r] for im, (t, l, b, r) in zip(ims, boxes.tolist())]
    return TopActivations(
        layer=name, channel=ch, scores=top_vals[:, col].clone(), indices=idx.clone(),
        images=ims, labels=labs, positions=pos, boxes=boxes, patches=crops,
        receptive_field=rf)


# --------------------------------------------------------------------------- maximisation


@dataclass
class Maximized:
    """Inputs synthesised to excite channels, one per channel.

    Attributes
    ----------
    layer : the layer; ``channels`` the channel (or class) for each image.
    images : ``(n, C, H, W)`` the synthesised inputs, in the model's input space
        (normalised, like the data).
    scores : ``(n,)`` the objective reached by each image (without jitter).
    history : ``(steps, n)`` the objective at every step.
    param : ``"pixel"`` or ``"fourier"``, how the images were parameterised.
    variants : ``(n, k, C, H, W)`` with ``n_images=k``: the ``k`` diverse images of
        each channel (``images`` is ``variants[:, 0]``); None for one image each.
    variant_scores : ``(n, k)`` the objective each variant reaches; or None.
    """

    layer: str
    channels: list[int]
    images: torch.Tensor
    scores: torch.Tensor
    history: torch.Tensor
    param: str = "pixel"
    variants: torch.Tensor | None = None
    variant_scores: torch.Tensor | None = None

    def __repr__(self) -> str:
        return (f"Maximized(layer={self.layer!r}, channels={self.channels}, "
                f"images={tuple(self.images.shape)})")


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    g = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    pad = F.conv2d(pad, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(pad, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _objective(out: torch.Tensor, channels: torch.Tensor, position: Any, name: str) -> torch.Tensor:
    rows = torch.arange(out.shape[0], device=out.device)
    sel = out[rows, channels]  # (n, H, W) or (n,)
    if sel.dim() == 1:
        return sel
    if position == "mean":
        return sel.flatten(1).mean(dim=1)
    if position == "center":
        return sel[:, sel.shape[1] // 2, sel.shape[2] // 2]
    r, c = position
    if not (0 <= r < sel.shape[1] and 0 <= c < sel.shape[2]):
        raise ValueError(
            f"position {position!r} is outside {name!r}'s {sel.shape[1]}x{sel.shape[2]} maps.")
    return sel[:, r, c]


def maximize_activation(
    model: nn.Module,
    layer: str,
    channel: int | Sequence[int] | None = None,
    *,
    steps: int = 128,
    lr: float | None = None,
    jitter: int = 1,
    blur: float = 0.4,
    decay: float = 0.01,
    position: str | tuple[int, int] = "center",
    value_range: tuple[float, float] | None = None,
    input_size: Sequence[int] | None = None,
    seed: int = 0,
    param: str = "pixel",
    n_images: int = 1,
    diversity: float = 1.0,
    transforms: Any = "small",
) -> Maximized:
    """Synthesise inputs that excite channels of ``layer``, by gradient ascent from noise.

    Each image starts as faint noise and climbs the channel's activation with
    Adam for ``steps`` steps. Regularisers keep it image-like: at each step the
    image is shifted by up to ``jitter`` pixels before the forward pass, then
    blurred (Gaussian, ``blur`` pixels) and pulled towards the dark background by
    ``decay``, and kept in ``value_range``. Several channels are optimised
    together, one image each.

    ``param="fourier"`` instead holds each image as a Fourier spectrum scaled by
    1/frequency and mapped into ``value_range`` by a sigmoid, and makes it robust
    to random padding, shifts, scaling and rotation (``transforms``; see
    :mod:`featviz.fourier`, which says what the defaults are and why): images with
    fewer high-frequency artefacts, that reach a higher activation too (on the
    course's SimpleCNN, for every conv2 channel).
    There ``jitter``, ``blur`` and ``decay`` are not used.

    Parameters
    ----------
    layer : a layer name; for a class, the logits layer (``"fc3"`` for the
        SimpleCNN) with ``channel`` = the class.
    channel : one channel, a list, or None for every channel of the layer.
    position : for maps ``(N, C, H, W)``, which unit to excite: ``"center"`` (the
        central unit: a pattern the size of its receptive field), ``"mean"`` (all
        units: a texture over the whole image) or a ``(row, col)``.
    value_range : clamp the image to ``(low, high)``, the range of the model's
        normalised inputs, and decay towards ``low`` (black); for the course's
        MNIST models ``featviz.MNIST_RANGE``. None (the default) never clamps
        and decays towards 0.
    input_size : ``(C, H, W)``, default the model's ``input_shape``.
    seed : the noise and the jitter are drawn from this seed: same seed, same image
        (on one device; gradient ascent magnifies rounding, so a CPU and a GPU run
        reach different images of the same kind).
    lr : Adam's step, default 0.1 (of the value range for ``"pixel"``; on the
        spectrum for ``"fourier"``: Lucid's 0.05 climbs less far in 128 steps).
    param : ``"pixel"`` (the default) or ``"fourier"``.
    n_images : with ``"fourier"``, how many images per channel (``variants``),
        pushed apart by ``diversity`` times a penalty on how alike their feature
        maps are (:func:`featviz.fourier.diversity_penalty`); 0 lets them be alike.
    transforms : with ``"fourier"``, a :class:`featviz.fourier.Transforms`, None for
        none, ``"small"`` (the default, :data:`featviz.fourier.SMALL`) or ``"scaled"``
        (Lucid's defaults scaled to the image's width).

    Returns
    -------
    :class:`Maximized` with ``images`` ``(n, C, H, W)``, ``scores`` and ``history``.

    >>> m = maximize_activation(model, "conv1", steps=16)     # all 16 conv1 channels
    >>> m.images.shape, m.history.shape                      # history: (steps, channels)
    (torch.Size([16, 1, 28, 28]), torch.Size([16, 16]))
    >>> digit = maximize_activation(model, "fc3", 4, steps=32, value_range=featviz.MNIST_RANGE)
    >>> featviz.predict(model, digit.images)[0]              # the model's idea of a 4
    tensor([4])
    >>> smooth = maximize_activation(model, "conv2", [6], steps=16, param="fourier",
    ...                              n_images=2, value_range=featviz.MNIST_RANGE)
    >>> smooth.images.shape, smooth.variants.shape
    (torch.Size([1, 1, 28, 28]), torch.Size([1, 2, 1, 28, 28]))
    """
    name, _ = _one_layer(model, layer)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}.")
    if jitter < 0 or blur < 0 or not 0 <= decay < 1:
        raise ValueError(
            f"need jitter >= 0, blur >= 0 and 0 <= decay < 1; got jitter={jitter}, "
            f"blur={blur}, decay={decay}.")
    shape = _input_shape(model, input_size)
    chans = _ascent_channels(model, name, shape, channel)
    if isinstance(position, str) and position not in ("center", "mean"):
        raise ValueError(f"position must be 'center', 'mean' or (row, col), got {position!r}.")
    keep = _Keep.make(blur, decay, value_range)
    if param == "fourier":
        return _maximize_fourier(model, name, shape, chans, position, keep, steps=steps,
                                 lr=0.1 if lr is None else lr, seed=seed, n_images=n_images,
                                 diversity=diversity, transforms=transforms)
    if param != "pixel":
        raise ValueError(f"param must be 'pixel' or 'fourier', got {param!r}.")
    if n_images != 1:
        raise ValueError(f"n_images={n_images!r}: several images per channel need "
                         "param='fourier'.")
    lr = 0.1 if lr is None else lr

    gen = torch.Generator()
    # each channel's start is drawn from (seed, channel), so its image does not depend
    # on which other channels are optimised alongside
    x0 = torch.stack([
        torch.rand(shape, generator=gen.manual_seed(int(seed) * 1_000_003 + c)) for c in chans])
    x = (keep.low + keep.span * (0.05 + 0.05 * x0)).to(
        device=model_device(model), dtype=model_dtype(model)).requires_grad_(True)
    shifts = torch.randint(-jitter, jitter + 1, (steps, 2),
                           generator=gen.manual_seed(int(seed))).tolist()
    history, final = _ascend(model, name, x, chans, position, shifts, lr * keep.span, keep)
    return Maximized(layer=name, channels=chans, images=x.detach().to("cpu", torch.float32),
                     scores=final, history=history)


def _maximize_fourier(model: nn.Module, name: str, shape: tuple[int, ...], chans: list[int],
                      position: Any, keep: _Keep, *, steps: int, lr: float, seed: int,
                      n_images: int, diversity: float, transforms: Any) -> Maximized:
    """``maximize_activation(..., param="fourier")``: ``n_images`` per channel."""
    from . import fourier

    if not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be a positive int, got {n_images!r}.")
    if transforms == "small":
        transforms = fourier.SMALL
    elif transforms == "scaled":
        transforms = fourier.scaled_transforms(shape[-1])
    elif transforms is not None and not isinstance(transforms, fourier.Transforms):
        raise ValueError(f"transforms must be 'small', 'scaled', None or a featviz.fourier.Transforms, "
                         f"got {transforms!r}.")
    k = n_images
    image = fourier.FourierImage(
        shape, value_range=keep.value_range,
        seeds=[int(seed) * 1_000_003 + c * 1_009 + j for c in chans for j in range(k)]).to(
        device=model_device(model), dtype=model_dtype(model))
    target = torch.tensor([c for c in chans for _ in range(k)], device=image.spectrum.device)

    def forward(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with hooks.capture(model, [name], to_cpu=False, detach=False) as acts:
            model(x)
        return _objective(acts[name], target, position, name), acts[name]

    with inference_mode(model, requires_grad=False), torch.enable_grad():
        x, history, final = fourier.ascend(image, forward, steps, lr, transforms, keep.low,
                                           seed, k=k, diversity=diversity)
    x = x.to("cpu", torch.float32).reshape(len(chans), k, *shape)
    scores = final.reshape(len(chans), k)
    return Maximized(layer=name, channels=chans, images=x[:, 0].clone(), scores=scores[:, 0].clone(),
                     history=history[:, ::k].clone(), param="fourier",
                     variants=x if k > 1 else None, variant_scores=scores if k > 1 else None)


def _ascent_channels(model: nn.Module, name: str, shape: tuple[int, ...],
                     channel: int | Sequence[int] | None) -> list[int]:
    """The channels to climb, checked against the layer's (found by one forward pass)."""
    with inference_mode(model, requires_grad=False), torch.no_grad(), \
            hooks.capture(model, [name]) as acts:
        model(torch.zeros((1, *shape), device=model_device(model), dtype=model_dtype(model)))
    n_channels = acts[name].shape[1]
    chans = list(range(n_channels)) if channel is None else (
        [int(channel)] if isinstance(channel, int) else [int(c) for c in channel])
    bad = [c for c in chans if not 0 <= c < n_channels]
    if bad or not chans:
        raise ValueError(
            f"channel {bad[0] if bad else channel!r} does not exist: {name!r} has "
            f"{n_channels} channels (0..{n_channels - 1}).")
    return chans


@dataclass(frozen=True)
class _Keep:
    """What keeps a synthesised input image-like after each ascent step: a blur, a
    decay towards the background ``low``, a clamp to ``value_range``."""

    blur: float
    decay: float
    value_range: tuple[float, float] | None
    low: float
    span: float

    @classmethod
    def make(cls, blur: float, decay: float, value_range: Any) -> "_Keep":
        if value_range is None:
            return cls(blur, decay, None, 0.0, 1.0)
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            low = high = math.nan  # not a pair of numbers: refused below
        if not low < high:
            raise ValueError(
                f"value_range must be (low, high) with low < high, or None, got "
                f"{value_range!r}; for the course's MNIST models use featviz.MNIST_RANGE.")
        return cls(blur, decay, (low, high), low, high - low)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> None:
        if self.blur:
            x.copy_(_gaussian_blur(x, self.blur))
        if self.decay:
            x.sub_(self.low).mul_(1 - self.decay).add_(self.low)
        if self.value_range is not None:
            x.clamp_(self.value_range[0], self.value_range[1])


def _ascend(model: nn.Module, name: str, x: torch.Tensor, chans: list[int], position: Any,
            shifts: list[list[int]], lr: float, keep: _Keep) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient ascent on ``x`` in place, one step per shift; the objective at every
    step ``(steps, n)`` and, unshifted, at the end ``(n,)``."""
    target = torch.tensor(chans, device=x.device)
    opt = torch.optim.Adam([x], lr=lr)
    history = torch.empty(len(shifts), len(chans))

    def forward(image: torch.Tensor) -> torch.Tensor:
        # one capture per pass: a capture concatenates the passes it sees
        with hooks.capture(model, [name], to_cpu=False, detach=False) as acts:
            model(image)
        return _objective(acts[name], target, position, name)

    with inference_mode(model, requires_grad=False), torch.enable_grad():
        for step, (dy, dx) in enumerate(shifts):
            obj = forward(torch.roll(x, shifts=(dy, dx), dims=(2, 3)) if dy or dx else x)
            history[step] = obj.detach().float().cpu()
            opt.zero_grad(set_to_none=True)
            (-obj.sum()).backward()
            opt.step()
            keep(x)
        with torch.no_grad():
            final = forward(x).float().cpu()
    return history, final


# --------------------------------------------------------------------------- attribution


def _input_gradient(model: nn.Module, x: torch.Tensor, target: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """d(score of the target class)/d(input) for a batch, and the targets used."""
    xg = x.detach().clone().requires_grad_(True)
    logits = _logits(model, xg)
    t = _targets(target, logits)
    score = logits.gather(1, t[:, None]).sum()
    (grad,) = torch.autograd.grad(score, xg)
    return grad, t


def saliency(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    smoothgrad: int = 0,
    noise: float = 0.15,
    seed: int = 0,
) -> torch.Tensor:
    """Gradient saliency: how strongly each pixel sways the class score.

    The map is ``|d score / d pixel|``, the largest over colour channels
    (Simonyan et al., 2014). With ``smoothgrad=n`` it is the average of the maps
    of ``n`` noisy copies of the image (Smilkov et al., 2017), which removes most
    of the speckle.

    Parameters
    ----------
    x : a batch ``(N, C, H, W)`` or one image ``(C, H, W)``, as the model takes it.
    target : the class to explain: an int, one per image, or None for the
        class the model predicts (for SmoothGrad, predicted on the clean image).
    smoothgrad : number of noisy samples; 0 for the plain gradient.
    noise : the noise's standard deviation, as a fraction of each image's value
        range (max - min); 0.1-0.2 works well.
    seed : seed of the SmoothGrad noise.

    Returns
    -------
    ``(N, H, W)`` (or ``(H, W)`` for one image), non-negative, float32 on the CPU.

    >>> sal = saliency(model, images, smoothgrad=20)     # (N, 28, 28)
    """
    if not isinstance(smoothgrad, int) or smoothgrad < 0:
        raise ValueError(f"smoothgrad must be 0 (off) or a number of samples, got {smoothgrad!r}.")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}.")
    batch, single = as_batch(x, model)
    device, dtype = batch.device, batch.dtype
    with inference_mode(model, requires_grad=False), torch.enable_grad():
        if smoothgrad == 0:
            grad, _ = _input_gradient(model, batch, target)
            return _finish(grad.abs().amax(dim=1), single)
        with torch.no_grad():
            t = _targets(target, _logits(model, batch))
        lo = batch.flatten(1).min(dim=1).values
        hi = batch.flatten(1).max(dim=1).values
        sigma = (noise * (hi - lo)).view(-1, 1, 1, 1)
        gen = torch.Generator().manual_seed(int(seed))
        total = torch.zeros(batch.shape[0], *batch.shape[2:], device=device, dtype=dtype)
        for _ in range(smoothgrad):
            eps = torch.randn(batch.shape, generator=gen).to(device=device, dtype=dtype)
            grad, _ = _input_gradient(model, batch + sigma * eps, t)
            total += grad.abs().amax(dim=1)
        return _finish(total / smoothgrad, single)


def grad_cam(
    model: nn.Module,
    x: torch.Tensor,
    layer: str,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    upsample: str | None = "rf",
) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al., 2017): the class-relevant regions of a layer's maps.

    Each channel of ``layer`` is weighted by the mean gradient of the class score
    over its map; the weighted sum of the maps, after a ReLU, is the coarse
    Grad-CAM map, which is then drawn over the input.

    Parameters
    ----------
    x : a batch ``(N, C, H, W)`` or one image ``(C, H, W)``.
    layer : a layer with maps ``(N, C, h, w)``, usually the last convolutional
        stage (``"conv2"`` or ``"relu2"`` for the SimpleCNN, ``"layer4"`` for a ResNet).
    target : an int, one per image, or None for the predicted class.
    upsample : how the coarse ``(h, w)`` map reaches the input's ``(H, W)``:

        - ``"rf"`` (default): each unit at the centre of its receptive field,
          bilinear between neighbouring centres, fading to zero within one
          stride beyond the outermost ones, so that every unit covers the same
          area (:func:`featviz.place_by_receptive_field`). Where the
          layer's geometry cannot be traced (a functional pooling call, an
          interpolation), a warning says so and the map is stretched as with
          ``"bilinear"``; call ``place_by_receptive_field`` on the coarse map
          to get an error instead.
        - ``"bilinear"`` / ``"nearest"``: the map stretched edge to edge over the
          image, as an image resize does (``"nearest"`` shows the layer's grid).
        - None: the coarse map itself, ``(N, h, w)``.

    Returns
    -------
    ``(N, H, W)`` (or ``(H, W)``; ``(N, h, w)`` for ``upsample=None``),
    non-negative, float32 on the CPU. Values are not normalised, so maps of
    different images can be compared.

    >>> cam = grad_cam(model, images, "relu2")                   # (10, 28, 28), placed
    >>> coarse = grad_cam(model, images, "relu2", upsample=None)   # (10, 8, 8)
    """
    if upsample not in ("rf", "bilinear", "nearest", None):
        raise ValueError(
            f"upsample must be 'rf', 'bilinear', 'nearest' or None, got {upsample!r}.")
    name, _ = _one_layer(model, layer)
    batch, single = as_batch(x, model)
    xg = batch.detach().clone().requires_grad_(True)
    with inference_mode(model, requires_grad=False), torch.enable_grad():
        with hooks.capture(model, [name], to_cpu=False, grad=True) as acts:
            logits = _logits(model, xg)
            t = _targets(target, logits)
            logits.gather(1, t[:, None]).sum().backward()
            maps, grads = acts[name], acts.grads[name]
    if maps.dim() != 4:
        raise ValueError(
            f"grad_cam needs a layer with maps (N, C, H, W); {name!r} gives "
            f"{tuple(maps.shape)}. Pick a convolutional layer such as 'conv2'.")
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * maps).sum(dim=1)).float()
    if upsample is not None:
        cam = _to_input(cam, model, name, tuple(batch.shape[1:]), upsample)
    return _finish(cam, single)


def _to_input(cam: torch.Tensor, model: nn.Module, name: str, size: tuple[int, ...],
              upsample: str) -> torch.Tensor:
    """A coarse ``(N, h, w)`` map brought to the input's ``(H, W)`` (see grad_cam)."""
    if upsample == "rf":
        try:
            return place_by_receptive_field(cam, receptive_field(model, name, size))
        except ValueError as exc:
            warnings.warn(
                f"grad_cam: cannot place {name!r} by receptive field, so its map is "
                f"stretched over the image instead ({exc}) Pass upsample='bilinear' "
                f"to choose this explicitly.", stacklevel=3)
            upsample = "bilinear"
    kwargs = {"align_corners": False} if upsample == "bilinear" else {}
    return F.interpolate(cam[:, None], size=size[-2:], mode=upsample, **kwargs)[:, 0]


def occlusion(
    model: nn.Module,
    x: torch.Tensor,
    target: int | Sequence[int] | torch.Tensor | None = None,
    *,
    window: int | tuple[int, int] = 6,
    stride: int | tuple[int, int] = 2,
    baseline: float | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """Occlusion (Zeiler & Fergus, 2014): how much the class score drops when a window is hidden.

    A ``window`` is slid over the image in steps of ``stride`` (the last window
    sits on the border, so every pixel is covered) and filled with ``baseline``.
    Each pixel's value is the mean drop in the target's score (the logit) over
    the windows that cover it: positive where hiding the pixels hurts the class,
    negative where it helps.

    Parameters
    ----------
    x : a batch ``(N, C, H, W)`` or one image ``(C, H, W)``.
    target : an int, one per image, or None for the predicted class.
    window, stride : ints or ``(height, width)`` pairs, in pixels.
    baseline : the fill value; None uses each image's smallest value (the black
        background for MNIST).
    batch_size : occluded copies per forward pass.

    Returns
    -------
    ``(N, H, W)`` (or ``(H, W)``), float32 on the CPU, signed.
    """
    wh, ww = _pair(window, "window")
    sh, sw = _pair(stride, "stride")
    if min(wh, ww, sh, sw) < 1:
        raise ValueError(f"window and stride must be positive, got window={window}, stride={stride}.")
    batch, single = as_batch(x, model)
    n, c, h, w = batch.shape
    if wh > h or ww > w:
        raise ValueError(f"window {(wh, ww)} is larger than the {h}x{w} image.")
    device, dtype = batch.device, batch.dtype
    batch = batch.detach()

    def starts(size: int, win: int, step: int) -> list[int]:
        s = list(range(0, size - win + 1, step))
        return s if s[-1] == size - win else s + [size - win]

    boxes = [(r, q) for r in starts(h, wh, sh) for q in starts(w, ww, sw)]
    masks = torch.zeros(len(boxes), 1, h, w, device=device, dtype=dtype)
    for i, (r, q) in enumerate(boxes):
        masks[i, :, r:r + wh, q:q + ww] = 1
    count = masks[:, 0].sum(dim=0)  # >= 1 everywhere

    out = torch.zeros(n, h, w, device=device, dtype=torch.float32)
    with inference_mode(model, requires_grad=False), torch.no_grad():
        logits = _logits(model, batch)
        t = _targets(target, logits)
        base_scores = logits.gather(1, t[:, None])[:, 0].float()
        for i in range(n):
            fill = batch[i].min() if baseline is None else torch.tensor(
                float(baseline), device=device, dtype=dtype)
            drop = torch.empty(len(boxes), device=device, dtype=torch.float32)
            for j in range(0, len(boxes), batch_size):
                m = masks[j:j + batch_size]
                hidden = batch[i:i + 1] * (1 - m) + fill * m
                drop[j:j + len(m)] = base_scores[i] - _logits(model, hidden)[:, t[i]].float()
            out[i] = (drop.view(-1, 1, 1) * masks[:, 0].float()).sum(dim=0) / count.float()
    return _finish(out, single)
