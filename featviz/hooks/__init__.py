"""Capture what any layer (by its dotted name, ``"layer1.0.conv2"``) of any model computes.

* Each output is copied in the hook as the layer returns it (on a GPU with ``to_cpu`` the
  transfer is the copy), so a later in-place op (``nn.ReLU(inplace=True)``) cannot change it.
* A module called twice in a pass keeps both calls, ``"relu"`` and ``"relu#1"``; several
  passes in one block are concatenated along the batch; a tuple, list or dict output is
  kept element by element (``"lstm[1][0]"``); every hook is removed when the block ends,
  also on an exception; ``grad=True`` keeps the gradient w.r.t. each layer's true output.

Modules: ``names`` (layer names), ``results`` (the mappings), ``core`` (the options and the
hooks), ``table`` (the layer table); inputs are checked by ``featviz._torch``.
"""
from .core import Capture, CaptureOptions, activations, batched_activations, capture, channel_max
from .names import LayerSpec, resolve_layers
from .results import Activations, Gradients, LayerNotCaptured
from .table import LayerInfo, LayerTable, layers

__all__ = ["Activations", "Capture", "CaptureOptions", "Gradients", "LayerInfo", "LayerNotCaptured",
           "LayerSpec", "LayerTable", "activations", "batched_activations", "capture",
           "channel_max", "layers", "resolve_layers"]
