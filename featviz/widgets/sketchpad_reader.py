"""The model side of the sketchpad: a drawing made into the model's input, the model run
on it, and what comes back packed for the front end.

:class:`SketchReader` knows the model: the input shape it takes, its layers with
feature maps, and what to tell the learner about it (a colour model, no conv
layer). :func:`input_picture`, :func:`prediction_of` and :func:`maps_message`
turn the input and the model's answer into the traits the page draws.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._style import color_scale, fmt, grid_shape
from .._torch import model_device, model_dtype, to_numpy
from ..perturbation import mnist_style
from ._payload import Quantized, quantize_runs
from ._run import Passes, few_threads, looking

__all__ = ["SketchError", "SketchReader", "input_picture", "prediction_of", "maps_message",
           "MAX_MAPS"]

MAX_MAPS = 64        # maps sent for a wide layer (the first ones); the title says how many
_DEFAULT_SIZE = {1: 28, 3: 64}  # input side for models that do not say (grey, colour)


class SketchError(ValueError):
    """A state the sketchpad cannot show; its message is shown in the widget."""


def _input_shape(model: nn.Module, input_size: Any) -> tuple[int, int, int]:
    """``(C, H, W)`` the model takes: its ``input_shape`` if it says, else its first conv's
    channels and 28x28 (grey) or 64x64 (colour); ``input_size`` overrides H and W."""
    shape = getattr(model, "input_shape", None)
    if shape is not None and len(shape) == 3:
        c, h, w = (int(v) for v in shape)
    else:
        first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        c = first.in_channels if first is not None else 1
        h = w = _DEFAULT_SIZE.get(c, 64)
    if input_size is not None:
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    return c, int(h), int(w)


def _model_input(x28: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """The 28x28 MNIST-style input made the model's shape: resized, copied to each channel."""
    c, h, w = shape
    x = x28
    if (h, w) != (28, 28):
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
    return x.expand(1, c, h, w).contiguous() if c != 1 else x


class SketchReader:
    """A model as the sketchpad uses it. ``layers`` lists ``[(name, (C, H, W))]`` of the
    layers whose output is a stack of maps; ``notes`` says what the learner should know
    about the model (empty for the course's own)."""

    def __init__(self, model: Any, input_size: Any = None) -> None:
        if model is None:
            from ..models import pretrained

            model = pretrained()
        if not isinstance(model, nn.Module):
            raise SketchError(f"it must be a torch nn.Module, got {type(model).__name__}; "
                              "pass one, for example featviz.pretrained().")
        self.model, self.shape = model, _input_shape(model, input_size)
        self._passes = Passes()
        self.notes: list[str] = []
        if self.shape[0] != 1 or self.shape[1:] != (28, 28):
            c, h, w = self.shape
            self.notes.append(f"This model takes {c}×{h}×{w} inputs: the drawing is made 28×28 "
                              f"the MNIST way, then resized to {h}×{w}"
                              + (f" and copied to {c} channels" if c > 1 else "")
                              + ". Its prediction means something only if it was trained on digits.")
        acts = self._passes(model, self.to_input(np.zeros((28, 28), np.float32)), None)
        self.layers = [(name, tuple(t.shape[1:])) for name, t in acts.items()
                       if "#" not in name and t.dim() == 4]
        if not self.layers:
            self.notes.append("This model has no layer with feature maps (an output of shape "
                              "(N, C, H, W)): the sketchpad shows its prediction only.")

    def choose(self, layer: str) -> str:
        """``layer`` if it has maps, else the first layer that has (with a note saying so)."""
        names = [name for name, _ in self.layers]
        if names and layer not in names:
            self.notes.append(f"The model has no layer {layer!r} with feature maps; showing "
                              f"{names[0]!r}. Its layers with maps: {', '.join(names[:12])}"
                              + (" …" if len(names) > 12 else "") + ".")
            return names[0]
        return layer

    def to_input(self, pixels: np.ndarray) -> Tensor:
        """The model input for a drawing: :func:`featviz.mnist_style`, in the model's shape,
        device and dtype."""
        x = _model_input(mnist_style(pixels), self.shape)
        return x.to(model_device(self.model), model_dtype(self.model))

    def read(self, x: Tensor, layer: str) -> tuple[Any, Tensor | None]:
        """The model's output for ``x`` and ``layer``'s maps ``(C, H, W)`` (None when the
        layer has none)."""
        if any(layer == name for name, _ in self.layers):
            acts = self._passes(self.model, x, [layer])
            return acts.output, acts[layer][0]
        with looking(self.model), few_threads(x), torch.no_grad():
            return self.model(x), None


def input_picture(x: Tensor, shape: tuple[int, int, int]) -> tuple[list[int], bytes]:
    """The input the model saw, as grey display pixels: ``([H, W], uint8 bytes)``. The
    course's MNIST input shows its own pixels (normalisation undone); any other is
    stretched from its lowest to its highest value."""
    x = x[0].float().cpu()
    if shape == (1, 28, 28):
        from ..data import mnist_denormalize

        grey = mnist_denormalize(x)[0]
    else:
        grey = x.mean(0)
        lo, hi = float(grey.min()), float(grey.max())
        grey = (grey - lo) / (hi - lo) if hi > lo else grey * 0
    return list(grey.shape), (grey.clamp(0, 1) * 255).round().to(torch.uint8).numpy().tobytes()


def prediction_of(logits: Any) -> tuple[int | None, list[float], str]:
    """``(class, probabilities, problem)`` from the model's output; a problem (in words)
    when the output is not ``(1, classes)``."""
    logits = torch.as_tensor(logits).detach().float().cpu()
    if logits.dim() != 2 or logits.shape[0] != 1 or logits.shape[1] < 2:
        return None, [], (f"The model's output has shape {tuple(logits.shape)}, not "
                          "(1, classes): the sketchpad shows no prediction.")
    probs = torch.softmax(logits[0], 0)
    return int(probs.argmax()), [round(p, 6) for p in probs.tolist()], ""


def maps_message(maps: Tensor, layer: str) -> tuple[Quantized, dict[str, Any]]:
    """A layer's maps ``(C, H, W)`` for the page: the first :data:`MAX_MAPS` quantised, and
    their layout and colour scale: one scale for the layer (``featviz._style``'s
    "shared"), diverging around 0 when the maps are signed."""
    arr = to_numpy(maps[:MAX_MAPS])
    c, h, w = arr.shape
    runs = quantize_runs(arr.reshape(-1), np.full(c, h * w))
    cmap, lo, hi = color_scale(np.concatenate([runs.lo, runs.hi]))  # the ends: as from all
    q = Quantized(runs.values.tobytes(), (c, h, w), runs.lo, runs.scale)
    rows, cols = grid_shape(c, max_cols=8 if c <= 32 else 16)
    return q, {**q.meta(), "layer": layer, "total": int(maps.shape[0]), "cmap": cmap,
               "vmin": lo, "vmax": hi, "ticks": [fmt(lo), fmt(0.0), fmt(hi)],
               "rows": rows, "cols": cols}
