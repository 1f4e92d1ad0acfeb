"""Capture what any layer of any model computes: ``capture``, ``activations``, ``layers``.

Layers are named by their dotted names in ``model.named_modules()`` (``"layer1.0.conv2"``).

* **Its own copy.** Each output is copied in the hook as the layer returns it, so an
  in-place op that runs later (``nn.ReLU(inplace=True)``, ``out += x``) cannot change it.
  By default it is detached and on the CPU (on a GPU the transfer is the copy).
* **Every call, every pass.** A module used twice in one pass keeps both calls,
  ``"relu"`` and ``"relu#1"``; several passes in one block are concatenated along
  the batch dimension (``acts.passes`` counts them).
* **Tuples too.** A tuple, list or dict output is kept element by element: ``"lstm[1][0]"``.
* **No leftovers.** Every hook is removed when the block ends, also on an exception.
* **Gradients on request.** With ``grad=True``, ``acts.grads[name]`` is the gradient
  w.r.t. the layer's true output, even when an in-place ReLU follows it.

Modules: ``names`` (layer names), ``results`` (the mappings), ``core`` (the options
and the hooks), ``table`` (the layer table); inputs are checked by ``featviz._torch``.
"""
from .core import Capture, CaptureOptions, activations, batched_activations, capture, channel_max
from .names import LayerSpec, resolve_layers
from .results import Activations, Gradients, LayerNotCaptured
from .table import LayerInfo, LayerTable, layers

__all__ = ["Activations", "Capture", "CaptureOptions", "Gradients", "LayerInfo", "LayerNotCaptured",
           "LayerSpec", "LayerTable", "activations", "batched_activations", "capture",
           "channel_max", "layers", "resolve_layers"]
