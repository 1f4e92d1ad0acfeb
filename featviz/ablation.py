"""Switch channels off: what a network loses without them.

:func:`ablate` replaces chosen output channels of one layer by a constant while a
``with`` block runs, the way pruning would remove them, without touching the
weights. With :func:`featviz.channel_stats` it answers the practitioner's
question "which channels can go, and what does each cost?":

>>> import featviz, torch
>>> model, x = featviz.SimpleCNN().eval(), torch.randn(2, 1, 28, 28)
>>> with ablate(model, "relu2", [0, 5]):
...     maps = featviz.activations(model, x, ["relu2"])["relu2"]
>>> bool(maps[:, [0, 5]].eq(0).all())
True
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from numbers import Integral
from typing import Any

import torch
from torch import nn

from .geometry import one_layer

__all__ = ["ablate"]


def _channels(channels: Any, count: int, layer: str) -> list[int]:
    if isinstance(channels, torch.Tensor):
        channels = channels.flatten().tolist()
    if isinstance(channels, Integral) and not isinstance(channels, bool):
        channels = [channels]
    if isinstance(channels, (str, bytes)) or not isinstance(channels, Iterable):
        raise TypeError(f"channels must be channel numbers (an int or a list of ints), got "
                        f"{type(channels).__name__}.")
    out = []
    for c in channels:
        if isinstance(c, bool) or not isinstance(c, Integral):
            raise TypeError(f"channels must be whole numbers, got {c!r}.")
        if not 0 <= int(c) < count:
            raise ValueError(f"channel {int(c)} does not exist: {layer!r} has {count} channels, "
                             f"0 to {count - 1}.")
        out.append(int(c))
    return sorted(set(out))


@contextmanager
def ablate(model: nn.Module, layer: str, channels: Any, *, value: float = 0.0) -> Iterator[nn.Module]:
    """Within the ``with`` block, the output ``channels`` of ``layer`` are ``value`` (0 by
    default: the channel is gone, as if pruned) in every forward pass of ``model``.

    ``layer`` is one layer name (``featviz.layers(model)`` lists them) whose output is
    ``(N, C, ...)``; ``channels`` an int, a list or a tensor of channel numbers, possibly
    empty. The weights are not changed: the hook that does it is removed when the block
    ends, even on an error. A channel that is dead on the data (never above 0 after a
    ReLU) costs nothing to remove: its ablation changes no output. Ablating a layer
    called twice in one pass affects both calls.

    Yields the model, so ``with ablate(model, "relu2", dead) as pruned:`` reads well.
    """
    name, module = one_layer(model, layer)
    if "#" in name:
        raise ValueError(f"{name!r} is one call of a module called several times in a pass; "
                         f"ablate the module itself ({name.split('#')[0]!r}), which affects "
                         f"every call.")
    checked: list[list[int]] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        if not isinstance(output, torch.Tensor) or output.dim() < 2:
            raise TypeError(f"ablate needs a layer whose output is a tensor (N, C, ...); "
                            f"{name!r} returned {type(output).__name__}"
                            + (f" of shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else "")
                            + ".")
        if not checked:
            checked.append(_channels(channels, output.shape[1], name))
        chosen = checked[0]
        if not chosen:
            return output
        out = output.clone()
        out[:, chosen] = value
        return out

    if isinstance(channels, (str, bytes)):
        raise TypeError(f"channels must be channel numbers (an int or a list of ints), got "
                        f"{type(channels).__name__}.")
    handle = module.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()
