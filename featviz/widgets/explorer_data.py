"""The explorer's state without its widgets: model, images, training snapshots, the
perturbation of the input, and the activations of every layer for one
(image, snapshot, perturbation), computed once and cached.

:meth:`ExplorerData.payload` turns one such state into what the browser needs
to draw every layer, filter, view and colour scale: the maps as uint8 with a
per-map offset and scale, the colour limits of both scales, the grid layout,
the input picture, the filters and the prediction (built by
:mod:`featviz.widgets.explorer_payload`).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Sequence, cast

import numpy as np
import torch
from torch import nn

from .._style import grid_shape
from ..hooks import resolve_layers
from ._payload import quantize
from ._run import Passes
from .explorer_payload import build_payload

__all__ = ["ExplorerError", "ExplorerData", "Filters", "Perturbation", "default_images",
           "find_kernel_layer", "feature_layers"]

DEFAULT_IMAGES_PER_DIGIT = 10
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CALL_SUFFIX = re.compile(r"#\d+$")
#: filters of a layer are sent to the browser (for the single view) up to this many weights
MAX_KERNEL_VALUES = 1 << 17


class ExplorerError(ValueError):
    """A state the explorer cannot show; its message is shown in the widget area."""


def default_images(per_digit: int = DEFAULT_IMAGES_PER_DIGIT) -> tuple[torch.Tensor, torch.Tensor]:
    """The explorer's default images: ``per_digit`` test images of each digit, the digits
    in turn (0, 1, ..., 9, 0, 1, ...), so image ``i`` is a digit ``i % 10``.

    Returns ``(images (10 * per_digit, 1, 28, 28), labels (10 * per_digit,))``.
    """
    from ..data import digit_batch

    return digit_batch([d for _ in range(per_digit) for d in range(10)])


# --------------------------------------------------------------------------- snapshots

def _snapshot_list(snapshots: Any, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``snapshots`` as ``[(label, model)]``: a list of pairs, of models, or a
    ``featviz.training.Snapshots`` record (turned into copies of ``model``)."""
    if hasattr(snapshots, "models") and callable(snapshots.models):
        return list(snapshots.models(model))
    try:
        items = list(snapshots)
    except TypeError:
        raise ExplorerError(
            f"snapshots must be a list of (label, model) pairs, 'default' or None; got "
            f"{type(snapshots).__name__}."
        ) from None
    out = []
    for i, item in enumerate(items):
        if isinstance(item, nn.Module):
            out.append((f"snapshot {i}", item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], nn.Module):
            out.append((str(item[0]), item[1]))
        else:
            raise ExplorerError(
                f"snapshots[{i}] is a {type(item).__name__}; expected a (label, model) pair "
                f"such as ('epoch 1', model), as featviz.pretrained_snapshots() gives."
            )
    return out


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    for k, va in sa.items():
        vb = sb[k]
        if va.shape != vb.shape:
            return False
        if va.is_floating_point():
            # snapshots may be stored in float16: equal up to that rounding
            if not torch.allclose(va.detach().float().cpu(), vb.detach().float().cpu(),
                                  rtol=2e-3, atol=1e-4):
                return False
        elif not torch.equal(va.cpu(), vb.cpu()):
            return False
    return True


def _default_snapshots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The shipped training history, when ``model`` is the shipped pretrained model."""
    from ..models import SimpleCNN, pretrained_snapshots

    if type(model) is not SimpleCNN:
        return []
    try:
        snaps = pretrained_snapshots()
    except (FileNotFoundError, ValueError, KeyError):
        return []
    if snaps and _same_weights(snaps[-1][1], model):
        return list(snaps)
    return []


def resolve_snapshots(snapshots: Any, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The training moments to offer, as ``[(label, model)]``; ``[("model", model)]`` for none."""
    if isinstance(snapshots, str):
        if snapshots != "default":
            raise ExplorerError(f"snapshots must be 'default', None or a list of "
                                f"(label, model) pairs; got {snapshots!r}.")
        snaps = _default_snapshots(model)
    elif snapshots is None:
        snaps = []
    else:
        snaps = _snapshot_list(snapshots, model)
        if not snaps:
            raise ExplorerError("snapshots is an empty list; pass None for no "
                                "training-time slider.")
        if not _same_weights(snaps[-1][1], model):
            snaps.append(("your model", model))
    if snaps and snaps[-1][1] is not model:
        # the last moment is the model itself, not a (possibly float16) copy of it
        snaps[-1] = (snaps[-1][0], model)
    return snaps or [("model", model)]


# --------------------------------------------------------------------------- layers

def find_kernel_layer(model: nn.Module, layer: str, channels: int) -> str | None:
    """The convolution whose filters made ``layer``'s channels, or None.

    A conv layer is its own; a ReLU, pooling or batch-norm layer after it is
    traced back to the nearest convolution before it (in module order) with as
    many output channels.

    >>> import featviz
    >>> find_kernel_layer(featviz.SimpleCNN(), "pool1", 16)
    'conv1'
    """
    named = list(model.named_modules())
    base = _CALL_SUFFIX.sub("", layer)
    names = [n for n, _ in named]
    if base not in names:
        return None
    pos = names.index(base)
    for name, module in reversed(named[:pos + 1]):
        if isinstance(module, nn.Conv2d) and module.out_channels == channels:
            return name
    return None


def feature_layers(acts: Any) -> list[str]:
    """The captured layers worth exploring: outputs ``(N, C, H, W)`` with ``H * W > 1``."""
    return [k for k in acts if isinstance(acts[k], torch.Tensor) and acts[k].dim() == 4
            and acts[k].shape[2] * acts[k].shape[3] > 1]


# --------------------------------------------------------------------------- perturbation

@dataclass(frozen=True)
class Perturbation:
    """How the input is changed before the model sees it (see ``featviz.perturb``).

    ``erase`` is the side of a square box, in pixels, centred on the image (0: none).
    """

    shift_x: float = 0.0
    shift_y: float = 0.0
    rotate: float = 0.0
    scale: float = 1.0
    erase: int = 0
    noise: float = 0.0

    @property
    def none(self) -> bool:
        return self == Perturbation()

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (1, C, H, W) perturbed; ``x`` itself when nothing is changed."""
        if self.none:
            return x
        from .. import perturb

        h, w = x.shape[-2:]
        side = int(self.erase)
        box = None if side <= 0 else ((w - side) // 2, (h - side) // 2, side, side)
        return perturb(x, shift=(self.shift_x, self.shift_y), rotate=self.rotate,
                       scale=self.scale, erase=box, noise=self.noise, seed=0)

    def describe(self) -> str:
        """The changes in words (empty when none)."""
        bits = []
        if self.shift_x or self.shift_y:
            bits.append(f"shifted ({self.shift_x:g}, {self.shift_y:g}) px")
        if self.rotate:
            bits.append(f"rotated {self.rotate:g}°")
        if self.scale != 1.0:
            bits.append(f"scaled {self.scale:g}x")
        if self.erase:
            bits.append(f"{self.erase}x{self.erase} patch erased")
        if self.noise:
            bits.append(f"noise {self.noise:g}")
        return ", ".join(bits)


# --------------------------------------------------------------------------- cache

@dataclass
class Entry:
    """What one forward pass gives: every layer's maps, the class probabilities, the input."""

    maps: dict[str, np.ndarray]   # layer -> (C, H, W) float32
    probs: np.ndarray | None      # (classes,) softmax of the output, if it is (1, K)
    x: torch.Tensor               # (1, C, H, W) the input the model saw, on the CPU
    nbytes: int = field(default=0)


class _Cache:
    """Least-recently-used entries, bounded in bytes (a big network's layers are large)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[Any, Entry] = OrderedDict()
        self.nbytes = 0
        self.misses = 0

    def get(self, key: Any) -> Entry | None:
        entry = self.items.get(key)
        if entry is not None:
            self.items.move_to_end(key)
        return entry

    def put(self, key: Any, entry: Entry) -> None:
        self.items[key] = entry
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.nbytes -= old.nbytes


# --------------------------------------------------------------------------- the data

def _as_images(images: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    if images is None:
        return default_images()
    if isinstance(images, (tuple, list)) and len(images) == 2 and labels is None \
            and isinstance(images[0], torch.Tensor):
        images, labels = images
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ExplorerError(
            f"images must be a tensor (N, C, H, W) or an (images, labels) pair, got "
            f"{type(images).__name__}. For example: featviz.digit_examples()."
        )
    if images.dim() == 3 and images.shape[0] > 0:
        raise ExplorerError(
            f"images has shape {tuple(images.shape)}: that is one image or a batch without "
            f"its channel dimension. Use images.unsqueeze(0) for one image (C, H, W), or "
            f"images.unsqueeze(1) for a batch of (H, W) images."
        )
    if images.dim() != 4 or images.shape[0] == 0:
        raise ExplorerError(
            f"images is empty or not a batch: shape {tuple(images.shape)}, expected "
            f"(N, C, H, W) with N >= 1. For example: images, labels = featviz.digit_examples()."
        )
    if labels is not None:
        labels = torch.as_tensor(labels).reshape(-1).long().cpu()
        if len(labels) != len(images):
            raise ExplorerError(f"{len(labels)} labels for {len(images)} images; give "
                                f"one label per image, or none.")
    return images.detach(), labels


def _as_model(model: Any) -> nn.Module:
    if model is None:
        from ..models import pretrained

        return pretrained()
    if not isinstance(model, nn.Module):
        raise ExplorerError(
            f"explorer needs a PyTorch model (a torch.nn.Module), got "
            f"{type(model).__name__}. Try featviz.explorer(featviz.pretrained())."
        )
    return model


def _first_spec(model: nn.Module, layers: Any) -> list[str]:
    """The layers to try: those asked for, or every layer but the containers."""
    spec = layers
    if layers is None:
        spec = [n for n, m in model.named_modules() if n and not isinstance(m, _CONTAINERS)] or None
    try:
        return resolve_layers(model, spec)
    except ValueError as exc:
        raise ExplorerError(str(exc)) from None


def _no_maps(model: nn.Module, probe: Any) -> ExplorerError:
    seen = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(probe.items())[:8]
                     if isinstance(v, torch.Tensor))
    return ExplorerError(
        f"{type(model).__name__} has no layer with feature maps to show: the explorer "
        f"needs outputs of shape (N, C, H, W), as convolution layers give. "
        f"Layers captured: {seen or 'none'}. For a model without convolutions, "
        f"look at its activations with featviz.activations() instead."
    )


class Filters:
    """The filters that made each layer, at each training moment: a convolution's own, or
    the convolution before a ReLU or pooling layer (``kernel_layers``)."""

    def __init__(self, snapshots: list[tuple[str, nn.Module]],
                 kernel_layers: dict[str, str | None]) -> None:
        self.snapshots, self.kernel_layers = snapshots, kernel_layers
        self._packed: dict[tuple[str | None, int], Any] = {}

    def module(self, layer: str, snap: int) -> nn.Conv2d | None:
        name = self.kernel_layers.get(layer)
        found = dict(self.snapshots[snap][1].named_modules()).get(name) if name else None
        return cast("nn.Conv2d | None", found)  # find_kernel_layer names only Conv2d layers

    def weights(self, layer: str, channel: int, snap: int) -> np.ndarray | None:
        """The filter ``(in_channels, kh, kw)`` that made ``channel`` of ``layer``, or None."""
        module = self.module(layer, snap)
        return None if module is None else module.weight[channel].detach().float().cpu().numpy()

    def packed(self, layer: str, snap: int) -> tuple[bytes, bytes, list[int]] | None:
        """The filters that made ``layer``, quantised per filter, as ``(uint8 values,
        float32 offsets then scales, dims)``; None when too large (kept per snapshot)."""
        key = (self.kernel_layers.get(layer), snap)
        if key not in self._packed:
            module, found = self.module(layer, snap), None
            if module is not None and module.weight.numel() <= MAX_KERNEL_VALUES:
                w = module.weight.detach().float().cpu().numpy()
                q = quantize(w.reshape(w.shape[0], -1, w.shape[-1]))
                found = (q.data, np.concatenate([q.offset, q.scale]).astype("<f4").tobytes(),
                         list(w.shape))
            self._packed[key] = found
        return self._packed[key]


class ExplorerData:
    """Model, images and snapshots of an explorer, and the activations it shows: one forward
    pass per (image, snapshot, perturbation), cached; :meth:`payload` packs one for the browser.

    Raises :class:`ExplorerError` with a readable message for anything it cannot show.
    """

    def __init__(self, model: Any, images: Any = None, labels: Any = None, *,
                 snapshots: Any = "default", layers: Any = None,
                 classes: Sequence[str] | None = None, cache_mb: float = 256.0) -> None:
        self.model = model = _as_model(model)
        self.images, self.labels = _as_images(images, labels)
        self.snapshots = resolve_snapshots(snapshots, model)
        self.classes = list(classes) if classes is not None else None
        self.cache = _Cache(int(cache_mb * 2**20))
        self._passes = Passes()
        self.spec = _first_spec(model, layers)
        probe = self._forward(model, self.images[:1])
        self.layer_names = feature_layers(probe)
        if not self.layer_names:
            raise _no_maps(model, probe)
        self.shapes = {k: tuple(probe[k].shape[1:]) for k in self.layer_names}
        self.spec = list(self.layer_names)  # from now on, capture only what is shown
        self.kernel_layers = {k: find_kernel_layer(model, k, self.shapes[k][0])
                              for k in self.layer_names}
        self.filters = Filters(self.snapshots, self.kernel_layers)
        self.grids = {k: list(grid_shape(self.shapes[k][0])) for k in self.layer_names}

    def class_name(self, k: int) -> str:
        if self.classes is not None and 0 <= k < len(self.classes):
            return str(self.classes[k])
        return str(k)

    def _forward(self, model: nn.Module, x: torch.Tensor, who: str = "the model",
                 index: int = 0) -> Any:
        """One pass of ``model`` on ``x`` capturing ``self.spec`` (eval mode for the pass,
        the caller's modes restored after; the capture is reused from pass to pass)."""
        try:
            return self._passes(model, x, self.spec)
        except (TypeError, ValueError, RuntimeError, KeyError) as exc:  # KeyError: a layer gone
            raise ExplorerError(
                f"{who} could not run on image {index} (shape "
                f"{tuple(self.images[index].shape)}): {exc}"
            ) from None

    def input(self, index: int, perturbation: Perturbation = Perturbation()) -> torch.Tensor:
        """Image ``index`` as the model sees it, ``(1, C, H, W)``, perturbed."""
        return perturbation.apply(self.images[index:index + 1])

    def entry(self, index: int, snap: int, perturbation: Perturbation = Perturbation()) -> Entry:
        """The activations of one state, from the cache or from one forward pass."""
        key = (index, snap, perturbation)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        self.cache.misses += 1
        label, model = self.snapshots[snap]
        who = "the model" if len(self.snapshots) == 1 else f"snapshot {label!r}"
        x = self.input(index, perturbation)
        acts = self._forward(model, x, who, index)
        maps = {}
        for k in self.layer_names:
            if k not in acts:
                raise ExplorerError(f"snapshot {label!r} has no layer {k!r}: are the snapshots "
                                    f"from another architecture than the model?")
            maps[k] = acts[k][0].float().numpy()
        out, probs = acts.output, None
        if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == 1:
            probs = torch.softmax(out.detach().float().cpu(), dim=1)[0].numpy()
        entry = Entry(maps, probs, x.detach().float().cpu(),
                      sum(m.nbytes for m in maps.values()))
        self.cache.put(key, entry)
        return entry

    def kernel(self, layer: str, channel: int, snap: int) -> np.ndarray | None:
        """The filter ``(in_channels, kh, kw)`` that made ``channel`` of ``layer``, or None."""
        return self.filters.weights(layer, channel, snap)

    def payload(self, index: int, snap: int,
                perturbation: Perturbation = Perturbation()) -> tuple[bytes, dict[str, Any]]:
        """Everything the browser draws for one state: ``(bytes, meta)``; the layout is
        :func:`~featviz.widgets.explorer_payload.build_payload`'s."""
        entry = self.entry(index, snap, perturbation)
        return build_payload(self, entry, index, snap, perturbation)
