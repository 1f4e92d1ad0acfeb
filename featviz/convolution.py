"""One value of a convolution, taken apart: ``conv_arithmetic``.

The patch of the layer's input under one output position, the kernel, their
element-wise products, the sum per input channel and the bias, which add up
to the activation the layer produced.
"""
from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._torch import as_batch, inference_mode, run_model

__all__ = ["ConvArithmetic", "conv_arithmetic"]

_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate",
              "circular": "circular"}


@dataclass(frozen=True, repr=False)
class ConvArithmetic:
    """How one output value of a ``Conv2d`` layer is made: ``products.sum() + bias == value``.

    Attributes
    ----------
    layer, channel, position : which value: the layer's name, its output channel and
        ``(row, col)`` in its output map.
    value : the activation the layer produced there (captured in the forward pass).
    bias : the channel's bias (0.0 for a layer without bias).
    patch : ``(C_in_of_group, kh, kw)``, the input under the kernel; entries that fall
        in the padding are 0 (or the padded values, for ``padding_mode`` other than zeros).
    kernel : ``(C_in_of_group, kh, kw)``, the channel's weights.
    products : ``patch * kernel``.
    per_channel : ``(C_in_of_group,)``, each input channel's contribution (its products summed).
    input_channels : the input channels the kernel reads (all of them, or one group's).
    origin : ``(row, col)`` in the input of ``patch[:, 0, 0]``; negative in the padding.
    stride, dilation : the layer's; input row of ``patch[:, i, j]`` is
        ``origin[0] + i * dilation[0]``.
    inside : ``(kh, kw)`` booleans, True where the patch lies inside the image.
    """

    layer: str
    channel: int
    position: tuple[int, int]
    value: float
    bias: float
    patch: Tensor
    kernel: Tensor
    products: Tensor
    per_channel: Tensor
    input_channels: tuple[int, ...]
    origin: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    inside: Tensor

    @property
    def total(self) -> float:
        """``products.sum() + bias``: equals :attr:`value` up to rounding."""
        return float(self.products.sum()) + self.bias

    def ranked(self) -> list[tuple[int, float]]:
        """``(input_channel, contribution)`` pairs, the largest in absolute value first."""
        pairs = zip(self.input_channels, self.per_channel.tolist())
        return sorted(pairs, key=lambda p: (-abs(p[1]), p[0]))

    def _rows(self, top: int) -> list[tuple[str, float]]:
        ranked = self.ranked()
        rows = [(f"input channel {c}", v) for c, v in ranked[:top]]
        rest = ranked[top:]
        if rest:
            rows.append((f"{len(rest)} other channel{'s' if len(rest) > 1 else ''}",
                         sum(v for _, v in rest)))
        return rows + [("bias", self.bias)]

    def _title(self) -> str:
        r, c = self.position
        return f"{self.layer}, channel {self.channel}, at row {r}, column {c}"

    def table(self, top: int = 5) -> str:
        """A text table: the ``top`` input channels' contributions, the rest, bias, total."""
        rows = self._rows(top) + [("sum", self.total), ("activation", self.value)]
        width = max(len(label) for label, _ in rows)
        lines = [self._title(), f"sum over {len(self.input_channels)} input channel"
                 f"{'s' if len(self.input_channels) > 1 else ''} of patch x kernel, plus bias:"]
        lines += [f"  {label:<{width}}  {value:+.5f}" for label, value in rows]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"ConvArithmetic({self._title()}: value={self.value:.5f}, bias={self.bias:.5f}, "
                f"{len(self.input_channels)} input channel(s) x {tuple(self.kernel.shape[1:])} kernel)")

    def _repr_html_(self) -> str:
        body = "".join(
            f"<tr><td style='text-align:left'>{html.escape(label)}</td>"
            f"<td style='text-align:right'>{value:+.5f}</td></tr>"
            for label, value in self._rows(5))
        foot = (f"<tr><th style='text-align:left'>sum</th><th style='text-align:right'>"
                f"{self.total:+.5f}</th></tr><tr><td style='text-align:left'>activation</td>"
                f"<td style='text-align:right'>{self.value:+.5f}</td></tr>")
        return (f"<table><caption>{html.escape(self._title())}</caption>"
                f"<tr><th>term</th><th>contribution</th></tr>{body}{foot}</table>")


def _conv_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def _conv_layer(model: nn.Module, layer: Any) -> tuple[str, nn.Conv2d]:
    """The ``Conv2d`` named (or given) by ``layer``, with errors that list the conv layers."""
    from . import resolve_layers  # the package's layer lookup: did-you-mean errors

    convs = _conv_names(model)
    listed = ", ".join(convs[:12]) + (f", ... ({len(convs)} in all)" if len(convs) > 12 else "")
    where = (f"Its Conv2d layers: {listed}." if convs
             else f"{type(model).__name__} has no Conv2d layer, so there is nothing to take apart.")
    try:
        names = resolve_layers(model, layer)
    except ValueError as exc:
        raise ValueError(f"{exc} {where}") from None
    if len(names) != 1:
        raise ValueError(f"layer={layer!r} names {len(names)} layers; conv_arithmetic takes one. "
                         f"{where}")
    module = dict(model.named_modules())[names[0]]
    if not isinstance(module, nn.Conv2d):
        raise ValueError(f"layer {names[0]!r} is a {type(module).__name__}, not a Conv2d; "
                         f"conv_arithmetic takes a 2-d convolution apart. {where}")
    return names[0], module


@contextlib.contextmanager
def _full_fp32(on_cuda: bool) -> Iterator[None]:
    """CUDA convolutions in full float32 for the block: TF32 (cuDNN's default on recent
    GPUs) rounds inputs to 10 bits, and the sum shown would then miss the value by ~1e-3."""
    cudnn = torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if not on_cuda:
        yield
    elif conv is not None and hasattr(conv, "fp32_precision"):
        old = conv.fp32_precision
        conv.fp32_precision = "ieee"
        try:
            yield
        finally:
            conv.fp32_precision = old
    else:
        old = cudnn.allow_tf32
        cudnn.allow_tf32 = False
        try:
            yield
        finally:
            cudnn.allow_tf32 = old


def _layer_io(model: nn.Module, conv: nn.Conv2d, batch: Tensor) -> tuple[Tensor, Tensor]:
    """The conv's input and output in one forward pass (its first call), copied in the hooks."""
    seen: dict[str, Tensor] = {}

    def before(_module: nn.Module, args: tuple) -> None:
        if "input" not in seen:
            seen["input"] = args[0].detach().clone()

    def after(_module: nn.Module, _args: tuple, output: Tensor) -> None:
        if "output" not in seen:
            seen["output"] = output.detach().clone()

    handles = [conv.register_forward_pre_hook(before), conv.register_forward_hook(after)]
    try:
        with inference_mode(model), torch.no_grad(), _full_fp32(batch.is_cuda):
            run_model(model, batch)
    finally:
        for h in handles:
            h.remove()
    if "output" not in seen:
        raise ValueError("the layer was not called in the model's forward pass, so it has no "
                         "value to take apart; pick a layer the forward pass uses.")
    return seen["input"], seen["output"]


def _padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """``(left, right, top, bottom)`` padding, also for ``padding="same"`` / ``"valid"``."""
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0, 0, 0)
        # "same": as torch pads it, the odd pixel on the right / bottom
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return (total[1] // 2, total[1] - total[1] // 2, total[0] // 2, total[0] - total[0] // 2)
    ph, pw = conv.padding
    return (pw, pw, ph, ph)


def _position(position: Any, out_hw: tuple[int, int], name: str) -> tuple[int, int]:
    ok = (isinstance(position, (tuple, list)) and len(position) == 2
          and all(isinstance(v, int) and not isinstance(v, bool) for v in position))
    h, w = out_hw
    if not ok:
        raise TypeError(f"position must be (row, col), two integers, got {position!r}; "
                        f"{name}'s maps are {h}x{w}, e.g. position=({h // 2}, {w // 2}).")
    r, c = position
    if not (0 <= r < h and 0 <= c < w):
        raise ValueError(f"position {tuple(position)} is outside {name}'s {h}x{w} maps: "
                         f"row must be in 0..{h - 1} and col in 0..{w - 1}.")
    return r, c


def conv_arithmetic(model: nn.Module, x: Any, layer: Any, channel: int,
                    position: tuple[int, int]) -> ConvArithmetic:
    """Take one output value of a convolution apart: patch x kernel, summed, plus bias.

    Parameters
    ----------
    model : the network (any ``nn.Module``). It runs once in eval mode, as in inference
        (no dropout, batch norm with its running statistics), and its mode is restored.
    x : one image ``(C, H, W)`` or a batch of one ``(1, C, H, W)``, as the model takes it.
    layer : the name of a ``Conv2d`` layer (``"conv2"``, ``"layer1.0.conv1"``) or the module.
    channel : the output channel (the feature map).
    position : ``(row, col)`` in that feature map.

    Returns
    -------
    ConvArithmetic : ``value``, ``bias``, ``patch``, ``kernel``, ``products``,
        ``per_channel`` (tensors on the CPU) and ``ranked()``; ``table()`` prints it.
        Stride, padding (any ``padding_mode``), dilation and groups are accounted for.

    >>> import featviz
    >>> model = featviz.pretrained()
    >>> x = torch.rand(1, 28, 28)                         # one image, (C, H, W)
    >>> parts = conv_arithmetic(model, x, "conv2", channel=3, position=(4, 4))
    >>> tuple(parts.patch.shape), abs(parts.total - parts.value) < 1e-5
    ((16, 5, 5), True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
    name, conv = _conv_layer(model, layer)
    if isinstance(channel, bool) or not isinstance(channel, int) \
            or not 0 <= channel < conv.out_channels:
        raise ValueError(f"channel must be an integer in 0..{conv.out_channels - 1} "
                         f"({name} has {conv.out_channels} output channels), got {channel!r}.")
    batch, _single = as_batch(x, model, what="x")
    if batch.shape[0] != 1:
        raise ValueError(f"conv_arithmetic takes one value of one image apart, but x holds "
                         f"{batch.shape[0]} images; pass one of them, e.g. x[0].")
    inp, out = _layer_io(model, conv, batch)
    r, c = _position(position, (out.shape[-2], out.shape[-1]), name)

    dtype = torch.promote_types(inp.dtype, torch.float32)
    padded = F.pad(inp[0].to("cpu", dtype), _padding(conv), mode=_PAD_MODES[conv.padding_mode])
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    per_group = conv.in_channels // conv.groups
    first = channel // (conv.out_channels // conv.groups) * per_group
    patch = padded[first:first + per_group,
                   r * sh:r * sh + dh * (kh - 1) + 1:dh,
                   c * sw:c * sw + dw * (kw - 1) + 1:dw].contiguous()
    kernel = conv.weight.detach()[channel].to("cpu", dtype)
    products = patch * kernel
    left, _, top, _ = _padding(conv)
    origin = (r * sh - top, c * sw - left)
    rows = origin[0] + dh * torch.arange(kh)
    cols = origin[1] + dw * torch.arange(kw)
    height, width = inp.shape[-2:]
    inside = ((rows >= 0) & (rows < height))[:, None] & ((cols >= 0) & (cols < width))[None, :]
    return ConvArithmetic(
        layer=name, channel=channel, position=(r, c),
        value=float(out[0, channel, r, c]),
        bias=float(conv.bias.detach()[channel]) if conv.bias is not None else 0.0,
        patch=patch, kernel=kernel, products=products, per_channel=products.sum(dim=(1, 2)),
        input_channels=tuple(range(first, first + per_group)),
        origin=origin, stride=(sh, sw), dilation=(dh, dw), inside=inside,
    )
