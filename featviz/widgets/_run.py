"""Forward passes for the live widgets: one small input at a time, as fast as a pass allows.

A widget runs the model on one image per change (a new image, a stroke of the
pen), so what surrounds the pass counts as much as the pass itself:

* the capture is made once and reused while the model and the layers stay the
  same, so layer names are resolved once, not per image;
* eval mode is set (and every module's mode restored after) only when some module
  is in training mode: the usual model, already in eval mode, is left alone;
* a small image on the CPU runs on one thread: splitting a 28x28 convolution over
  threads gains nothing, and on a shared machine waiting for a descheduled thread
  costs tens of milliseconds.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from .._torch import inference_mode
from ..hooks import Activations, Capture

__all__ = ["Passes", "looking", "few_threads"]

SMALL = 16384  # values in one image below which a pass runs on one thread


def looking(model: nn.Module) -> Any:
    """Eval mode for the block, the caller's modes restored after: looking must not change
    the model (no dropout, no batch-norm statistics updated)."""
    if any(m.training for m in model.modules()):
        return inference_mode(model)
    return contextlib.nullcontext(model)


@contextlib.contextmanager
def few_threads(x: torch.Tensor) -> Iterator[None]:
    """One CPU thread for the block when ``x`` is one small image on the CPU."""
    small = x.device.type == "cpu" and x[0].numel() <= SMALL
    before = torch.get_num_threads()
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small and before > 1:
            torch.set_num_threads(before)


class Passes:
    """Forward passes capturing some layers, one :class:`~featviz.hooks.Capture` kept for
    as long as the model and the layers asked for stay the same.

    >>> import featviz, torch
    >>> passes, model = Passes(), featviz.SimpleCNN()
    >>> passes(model, torch.zeros(1, 1, 28, 28), ["conv1"])["conv1"].shape
    torch.Size([1, 16, 24, 24])
    """

    def __init__(self) -> None:
        self._capture: Capture | None = None
        self._asked: tuple[str, ...] | None = None

    def __call__(self, model: nn.Module, x: torch.Tensor,
                 layers: Sequence[str] | None) -> Activations:
        asked = None if layers is None else tuple(layers)
        cap = self._capture
        if cap is None or cap.model is not model or asked != self._asked:
            cap, self._asked = Capture(model, layers), asked
            self._capture = cap
        with looking(model), few_threads(x):
            return cap.run(x)
