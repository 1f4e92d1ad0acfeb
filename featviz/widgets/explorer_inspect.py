"""The convolution inspector's data: one value of a conv layer taken apart by
:func:`featviz.conv_arithmetic`, as the JSON the explorer's front end draws.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:  # the explorer's state, for the type checker (imports point down)
    from .explorer_data import ExplorerData

#: input channels whose patch, kernel and products are sent (the largest contributions)
MAX_CHANNELS_SHOWN = 16


def _grid(t: torch.Tensor) -> list[list[float]]:
    return [[float(v) for v in row] for row in t.tolist()]


def inspection(model: nn.Module, data: ExplorerData, x: torch.Tensor, layer: str, channel: int,
               position: tuple[int, int]) -> dict[str, Any]:
    """How ``layer``'s value at ``(channel, row, col)`` for input ``x`` was made.

    Returns a dict with ``ok``; then ``layer``, ``channel``, ``row``, ``col``,
    ``value`` (the activation), ``bias``, ``sum`` (of all products), ``total``
    (``sum + bias``), ``channels`` (number of input channels the kernel reads),
    ``ranked`` (``[input channel, contribution]``, largest magnitude first),
    ``shown`` (for up to :data:`MAX_CHANNELS_SHOWN` of them: ``patch``, ``kernel``,
    ``products``, ``sum``), ``origin``, ``stride``, ``dilation``, ``inside``; or
    ``ok`` False and a ``message`` saying why not (a pooling layer, say).
    """
    from .. import conv_arithmetic

    row, col = position
    base = {"layer": layer, "channel": channel, "row": row, "col": col}
    kernel_of = data.kernel_layers.get(layer)
    if kernel_of != layer:
        how = (f"it comes from {kernel_of!r}: choose {kernel_of} to take its values apart"
               if kernel_of else "no convolution made it")
        return {**base, "ok": False,
                "message": f"{layer} is not a convolution layer; {how}."}
    try:
        parts = conv_arithmetic(model, x, layer, channel, (row, col))
    except (TypeError, ValueError, RuntimeError) as exc:
        return {**base, "ok": False, "message": str(exc)}
    ranked = parts.ranked()
    index = {c: i for i, c in enumerate(parts.input_channels)}
    shown = []
    for c, contribution in ranked[:MAX_CHANNELS_SHOWN]:
        i = index[c]
        shown.append({"channel": c, "sum": contribution, "patch": _grid(parts.patch[i]),
                      "kernel": _grid(parts.kernel[i]), "products": _grid(parts.products[i])})
    total = float(parts.products.double().sum())
    return {**base, "ok": True, "value": parts.value, "bias": parts.bias, "sum": total,
            "total": total + parts.bias, "channels": len(parts.input_channels),
            "ranked": [[c, v] for c, v in ranked], "shown": shown,
            "origin": list(parts.origin), "stride": list(parts.stride),
            "dilation": list(parts.dilation),
            "inside": [[bool(v) for v in row] for row in parts.inside.tolist()],
            "input_is_image": _reads_the_image(model, layer)}


def _reads_the_image(model: nn.Module, layer: str) -> bool:
    """Whether ``layer`` is the first convolution (it reads the input image itself)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name == layer
    return False
