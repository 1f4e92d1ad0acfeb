"""Where a layer's units look: receptive fields, and coarse maps placed by them.

A unit of a convolutional layer sees a box of the input, its receptive field.
:func:`receptive_field` traces the box's size, the stride between neighbouring
units and the offset of the first one, through any model built from
``nn.Conv2d`` and pooling modules (residual blocks included).

A coarse map of a layer (a Grad-CAM map, one channel's activations) is drawn
over the input by putting each unit at the centre of its receptive field:
:func:`place_by_receptive_field`. Stretching the map edge to edge over the
image, as an image resize does, puts the units somewhere else whenever the
layer's fields do not tile the image evenly: for the unpadded SimpleCNN,
relu2's units look at pixels 6.5 to 20.5 of the 28, but a stretched map spreads
them from 1.25 to 25.75.

>>> rf = receptive_field(featviz.SimpleCNN(), "relu2")
>>> rows, cols = rf.grid_centers()
>>> rows[0].item(), rows[-1].item()
(6.5, 20.5)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import nn

from . import hooks
from ._torch import as_tensor, inference_mode, model_device, model_dtype

__all__ = ["ReceptiveField", "receptive_field", "place_by_receptive_field", "one_layer",
           "input_shape"]

Size2 = tuple[int, int]


def one_layer(model: nn.Module, layer: str) -> tuple[str, nn.Module]:
    """Resolve ``layer`` to exactly one ``(name, module)``; clear errors come from ``hooks``."""
    if not isinstance(layer, str):
        raise TypeError(
            f"layer must be a layer name such as 'conv2', got {type(layer).__name__}. "
            f"featviz.layers(model) lists the names."
        )
    names = hooks.resolve_layers(model, layer)
    if len(names) != 1:
        raise ValueError(
            f"layer {layer!r} matches {len(names)} layers ({', '.join(names[:6])}"
            f"{', ...' if len(names) > 6 else ''}); give exactly one layer name."
        )
    name = names[0]
    return name, dict(model.named_modules())[name]


def input_shape(model: nn.Module, input_size: Sequence[int] | None) -> tuple[int, int, int]:
    """``(C, H, W)`` of one input: ``input_size`` (``(H, W)`` takes C from the first
    convolution) or the model's ``input_shape`` attribute."""
    if input_size is None:
        input_size = getattr(model, "input_shape", None)
        if input_size is None:
            raise ValueError(
                f"{type(model).__name__} does not say what input it expects; pass "
                f"input_size=(C, H, W), for example input_size=(3, 224, 224)."
            )
    size = tuple(int(s) for s in input_size)
    if len(size) == 2:
        conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        size = (conv.in_channels if conv is not None else 1, *size)
    if len(size) != 3 or min(size) < 1:
        raise ValueError(f"input_size must be (C, H, W) or (H, W), got {input_size!r}.")
    return size


# --------------------------------------------------------------------------- receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """Which input pixels each unit of a layer can see.

    Unit ``(row, col)`` of the layer's maps sees the input box starting at
    ``offset + (row, col) * stride`` and ``size`` pixels tall and wide; see
    :meth:`box`. All pairs are ``(height, width)`` in input pixels.

    Attributes
    ----------
    layer : the layer's name.
    size : the side of the box one unit sees (its theoretical receptive field).
    stride : input pixels between neighbouring units (also called the jump).
    offset : input ``(row, col)`` of the top-left corner of unit ``(0, 0)``'s box;
        negative where padding makes the box hang over the border.
    input_size, output_size : the image's and the layer's ``(H, W)``.
    """

    layer: str
    size: Size2
    stride: Size2
    offset: Size2
    input_size: Size2
    output_size: Size2

    def box(self, row: int, col: int, clip: bool = True) -> tuple[int, int, int, int]:
        """Input box ``(top, left, bottom, right)`` seen by unit ``(row, col)``, half-open.

        With ``clip`` (default) the box is cut at the image border, so
        ``image[..., top:bottom, left:right]`` is the patch the unit sees.
        """
        top = self.offset[0] + int(row) * self.stride[0]
        left = self.offset[1] + int(col) * self.stride[1]
        bottom, right = top + self.size[0], left + self.size[1]
        if clip:
            h, w = self.input_size
            top, left = max(0, min(top, h)), max(0, min(left, w))
            bottom, right = max(0, min(bottom, h)), max(0, min(right, w))
        return top, left, bottom, right

    def center(self, row: int, col: int) -> tuple[float, float]:
        """Input coordinates of the centre of unit ``(row, col)``'s (unclipped) box.

        Pixel ``i`` has its centre at coordinate ``i``; a box of even size is
        centred between two pixels (``6.5``).
        """
        top, left, bottom, right = self.box(row, col, clip=False)
        return (top + bottom - 1) / 2, (left + right - 1) / 2

    def grid_centers(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The centres of every row and every column of units: ``(h,)`` and ``(w,)``, float64.

        Unit ``(r, c)`` sits at ``(rows[r], cols[c])`` in input pixels.
        """
        first = self.center(0, 0)
        rows = first[0] + self.stride[0] * torch.arange(self.output_size[0], dtype=torch.float64)
        cols = first[1] + self.stride[1] * torch.arange(self.output_size[1], dtype=torch.float64)
        return rows, cols

    def __str__(self) -> str:
        s, j, o = self.size, self.stride, self.offset
        return (
            f"{self.layer}: each unit sees a {s[0]}x{s[1]} patch of the "
            f"{self.input_size[0]}x{self.input_size[1]} input; neighbouring units are "
            f"{j[0]}x{j[1]} pixels apart; unit (0, 0) starts at {o}."
        )


# (size_h, size_w, stride_h, stride_w, offset_h, offset_w); None: no spatial layout
# left (after flatten/linear); _UNKNOWN: passed through an operation featviz cannot follow.
_Rec = tuple[int, int, int, int, int, int]
_UNKNOWN = "unknown"


def _two(v: Any) -> Size2:
    """A module's int-or-pair attribute (kernel_size, stride, ...) as a pair."""
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _conv_like(rec: _Rec, kernel: Size2, stride: Size2, padding: Size2, dilation: Size2) -> _Rec:
    sh, sw, jh, jw, oh, ow = rec
    kh = dilation[0] * (kernel[0] - 1) + 1
    kw = dilation[1] * (kernel[1] - 1) + 1
    return (sh + (kh - 1) * jh, sw + (kw - 1) * jw, jh * stride[0], jw * stride[1],
            oh - padding[0] * jh, ow - padding[1] * jw)


def _transfer(mod: nn.Module, rec: Any, in_shape: torch.Size, out: Any) -> Any:
    """The receptive field after ``mod``, given the one of its input."""
    if rec is None or rec == _UNKNOWN:
        return rec
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        return None
    if isinstance(mod, nn.Conv2d):
        if isinstance(mod.padding, str):  # "valid" or "same"
            pad = (0, 0) if mod.padding == "valid" else tuple(
                d * (k - 1) // 2 for d, k in zip(mod.dilation, mod.kernel_size))
        else:
            pad = mod.padding
        return _conv_like(rec, _two(mod.kernel_size), _two(mod.stride), _two(pad), _two(mod.dilation))
    if isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _two(mod.kernel_size)
        s = _two(mod.stride if mod.stride is not None else mod.kernel_size)
        return _conv_like(rec, k, s, _two(mod.padding), _two(getattr(mod, "dilation", 1)))
    if isinstance(mod, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        (hi, wi), (ho, wo) = tuple(in_shape[-2:]), tuple(out.shape[-2:])
        if hi % ho or wi % wo:
            return _UNKNOWN  # uneven bins have no single size and stride
        k = (hi // ho, wi // wo)
        return _conv_like(rec, k, k, (0, 0), (1, 1))
    if tuple(out.shape[-2:]) == tuple(in_shape[-2:]):
        return rec  # element-wise or channel-mixing only (ReLU, BatchNorm, Dropout, ...)
    return _UNKNOWN


def _trace(model: nn.Module, target: nn.Module, x: torch.Tensor) -> tuple[Any, Any]:
    """Run ``model(x)`` once; the output of ``target`` and its traced receptive field."""
    records: dict[int, tuple[Any, torch.Tensor]] = {id(x): ((1, 1, 1, 1, 0, 0), x)}

    def lookup(t: Any) -> Any:
        if not isinstance(t, torch.Tensor):
            return None
        if id(t) in records:
            return records[id(t)][0]
        if t.dim() != 4:
            return None
        # A tensor made by a functional op (a residual "+", F.relu): take the largest
        # field among the tensors of the same spatial size, the union of the branches.
        same = [r for r, u in records.values()
                if isinstance(r, tuple) and u.dim() == 4 and u.shape[-2:] == t.shape[-2:]]
        return max(same, key=lambda r: r[0] * r[1]) if same else _UNKNOWN

    def leaf_hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
        first = next((i for i in inputs if isinstance(i, torch.Tensor)), None)
        if first is None or not isinstance(output, torch.Tensor):
            return
        records[id(output)] = (_transfer(mod, lookup(first), first.shape, output), output)

    seen: dict[str, Any] = {}

    def target_hook(mod: nn.Module, inputs: tuple, output: Any) -> None:
        seen["out"], seen["rec"] = output, lookup(output)

    handles = [m.register_forward_hook(leaf_hook)
               for m in model.modules() if not any(True for _ in m.children())]
    handles.append(target.register_forward_hook(target_hook))
    try:
        with inference_mode(model, requires_grad=False), torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen.get("out"), seen.get("rec")


def receptive_field(
    model: nn.Module, layer: str, input_size: Sequence[int] | None = None
) -> ReceptiveField:
    """The receptive field of ``layer``: its size, stride and offset in input pixels.

    Parameters
    ----------
    model : any ``nn.Module`` built from modules (``nn.Conv2d``, ``nn.MaxPool2d``,
        ``nn.AvgPool2d``, adaptive pools, and layers that keep the spatial size,
        like ReLU or BatchNorm).
    layer : a layer name with spatial maps ``(N, C, H, W)``, e.g. ``"conv2"``.
    input_size : ``(C, H, W)`` or ``(H, W)`` of one input image; default the
        model's ``input_shape`` attribute (SimpleCNN has one).

    One forward pass of a blank image traces the layers in the order they run.
    Where branches join (a residual block), the largest receptive field is kept.

    >>> rf = receptive_field(featviz.SimpleCNN(), "conv2")
    >>> rf.size, rf.stride, rf.box(0, 0)
    ((14, 14), (2, 2), (0, 0, 14, 14))
    """
    name, target = one_layer(model, layer)
    shape = input_shape(model, input_size)
    x = torch.zeros((1, *shape), device=model_device(model), dtype=model_dtype(model))
    try:
        out, rec = _trace(model, target, x)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"receptive_field could not run the model on an input of shape {(1, *shape)}: "
            f"{exc} Pass input_size=(C, H, W) matching what the model expects."
        ) from exc
    if out is None:
        raise ValueError(f"layer {name!r} did not run during the model's forward pass.")
    if not isinstance(out, torch.Tensor) or out.dim() != 4:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"layer {name!r} outputs {got}, not spatial maps (N, C, H, W): each of its "
            f"units sees the whole input. Pick a convolutional layer such as 'conv2'."
        )
    if rec is None or rec == _UNKNOWN:
        raise ValueError(
            f"cannot follow the receptive field of {name!r}: between the input and this "
            f"layer an operation changes the spatial size without being an nn.Conv2d or "
            f"pooling module (a functional call like F.max_pool2d, an interpolation, ...). "
            f"Build the model from nn.Conv2d / nn.MaxPool2d modules to use it."
        )
    return ReceptiveField(
        layer=name, size=(rec[0], rec[1]), stride=(rec[2], rec[3]), offset=(rec[4], rec[5]),
        input_size=(int(shape[-2]), int(shape[-1])),
        output_size=(int(out.shape[-2]), int(out.shape[-1])),
    )


# --------------------------------------------------------------------------- placement


def _placement_weights(first: float, step: int, n: int, size: int, edge: str) -> torch.Tensor:
    """``(size, n)`` weights: pixel ``p`` interpolated linearly between the two unit
    centres around it (centre ``i`` at ``first + i * step``). Beyond the outermost
    centres: ``"fade"`` continues the grid with units of value 0 (a linear fall to
    zero over one step), ``"hold"`` keeps the edge unit's value."""
    u = (torch.arange(size, dtype=torch.float64) - first) / step
    u = u.clamp(0, n - 1) if edge == "hold" else u.clamp(-1, n)
    lo = u.floor().clamp(max=n - 1)
    t = u - lo
    # columns of a grid padded with one unit on each side, dropped at the end
    weights = torch.zeros(size, n + 2, dtype=torch.float64)
    rows = torch.arange(size)
    weights[rows, lo.long() + 1] = 1 - t
    weights[rows, lo.long() + 2] += t
    return weights[:, 1:-1]


def place_by_receptive_field(
    coarse: Any,
    model: nn.Module | ReceptiveField,
    layer: str | None = None,
    *,
    input_size: Sequence[int] | None = None,
    edge: str = "fade",
) -> torch.Tensor:
    """Draw a layer's coarse map over the input, each unit at its receptive field's centre.

    Unit ``(r, c)``'s value lands on the centre of the input box it sees (the box
    before it is clipped to the image). Between the centres of neighbouring
    units, values are interpolated bilinearly. Beyond the outermost centres the
    map fades linearly to zero over one stride, as if one more ring of units
    of value 0 lay outside: every unit then covers the same area (a tent of one
    stride on each side of its centre), and an edge unit does not paint the
    whole border band (``edge="hold"`` keeps the edge value instead).

    For a padded network such as a ResNet the centres sit on the stride grid
    (unit ``i`` at pixel ``stride * i``), half a stride up and left of where a
    plain resize draws them; for an unpadded one (the SimpleCNN) the units are
    drawn where they look, not spread out to the image's edges.

    Parameters
    ----------
    coarse : a tensor (or float array) whose last two dims are the layer's
        ``(h, w)``: ``(h, w)``, ``(N, h, w)``, ``(N, C, h, w)``, ...
    model : the model, with ``layer``; or a :class:`ReceptiveField` from
        :func:`receptive_field` (then give no ``layer`` or ``input_size``).
    layer : the layer the map comes from, e.g. ``"relu2"`` or ``"layer4"``.
    input_size : ``(C, H, W)`` or ``(H, W)`` of the input; default the model's
        ``input_shape``.
    edge : ``"fade"`` (default) or ``"hold"``, beyond the outermost centres.

    Returns
    -------
    The map at the input's size: ``(..., H, W)``, float, on ``coarse``'s device.

    >>> model = featviz.SimpleCNN()
    >>> coarse = torch.zeros(8, 8); coarse[0, 0] = 1.0     # one relu2 unit, centred at 6.5
    >>> placed = place_by_receptive_field(coarse, model, "relu2")
    >>> placed.shape, placed[6:8, 6:8].unique().tolist(), placed[:5].abs().sum().item()
    (torch.Size([28, 28]), [0.5625], 0.0)
    """
    if edge not in ("fade", "hold"):
        raise ValueError(f"edge must be 'fade' or 'hold', got {edge!r}.")
    if isinstance(model, ReceptiveField):
        if layer is not None or input_size is not None:
            raise TypeError("with a ReceptiveField, give no layer or input_size: it holds them.")
        rf = model
    elif isinstance(model, nn.Module):
        if layer is None:
            raise TypeError("give the layer the coarse map comes from, e.g. "
                            "place_by_receptive_field(cam, model, 'relu2').")
        rf = receptive_field(model, layer, input_size)
    else:
        raise TypeError(f"model must be an nn.Module (with layer) or a ReceptiveField, got "
                        f"{type(model).__name__}.")
    maps = as_tensor(coarse, what="coarse")
    if maps.dim() < 2 or tuple(maps.shape[-2:]) != rf.output_size:
        raise ValueError(
            f"coarse must end with {rf.layer!r}'s map size {rf.output_size}, got shape "
            f"{tuple(maps.shape)}. Pass the layer's coarse map, e.g. "
            f"grad_cam(..., upsample=None), before it is resized.")
    if not maps.is_floating_point():
        maps = maps.float()
    (y0, x0), (h, w) = rf.center(0, 0), rf.output_size
    wy = _placement_weights(y0, rf.stride[0], h, rf.input_size[0], edge)
    wx = _placement_weights(x0, rf.stride[1], w, rf.input_size[1], edge)
    wy, wx = (m.to(maps.device, maps.dtype) for m in (wy, wx))
    return torch.einsum("yi,...ij,xj->...yx", wy, maps, wx)
