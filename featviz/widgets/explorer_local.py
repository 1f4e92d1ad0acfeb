"""What the explorer's page needs to run the network itself: the browser engine.

When every training snapshot of the model is made only of layers the browser runs
(:func:`featviz.browser_network`), the kernel sends this once: each snapshot's
network, the images, the noise the noise slider scales, each layer's grid and
filters. The page (``explorer_local.js``) then builds, for any image, training
moment and perturbation, the same payload :func:`~featviz.widgets.explorer_payload.
build_payload` builds here, and the picture draws it as it draws the kernel's:
no kernel round trip for any control, and a static page (``save_html``) with every
control working. tests/js/explorer_local.test.mjs holds the page's payload to
Python's.

Layout of :func:`browser_bundle`'s ``(meta, bytes)``: every block starts at a
multiple of 4 in the bytes; ``meta`` says where each is:

* ``images``: ``{"start", "shape": [N, C, H, W]}``, float32, as the model takes them;
* ``noise``: ``{"start", "shape": [C, H, W]}``, float32: what ``noise=1`` adds
  (``featviz.perturb``'s seed 0);
* ``snapshots``: per training moment ``{"label", "net", "weights", "filters"}``:
  ``net`` is forward.js's payload without its weights; ``weights`` ``{"start",
  "count", "dtype"}`` ("float16" when the snapshot's weights are float16 values,
  as the shipped snapshots are: half the bytes, nothing lost; else "float32");
  ``filters`` maps a convolution's name to ``{"start", "floats", "dims"}`` (its
  filters quantised as :class:`~featviz.widgets.explorer_data.Filters` packs them);
* ``layers``: in the explorer's order ``{"name", "grid", "conv", "kernel_of"}``;
* ``labels`` (a list or None), ``classes`` (names or None), ``images_count``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..netspec import UnsupportedModel, browser_network
from .explorer_payload import Packer

if TYPE_CHECKING:  # the explorer's state, for the type checker (imports point down)
    from .explorer_data import ExplorerData

__all__ = ["browser_bundle", "BrowserBundle"]

BrowserBundle = tuple[dict[str, Any], bytes]


def _weights_block(packer: Packer, weights: bytes) -> dict[str, Any]:
    values = np.frombuffer(weights, dtype="<f4")
    half = values.astype("<f2")
    if np.array_equal(half.astype("<f4"), values, equal_nan=True):
        return {"start": packer.add(half.tobytes()), "count": int(values.size), "dtype": "float16"}
    return {"start": packer.add(weights), "count": int(values.size), "dtype": "float32"}


def _filters(packer: Packer, data: ExplorerData, snap: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for layer in data.layer_names:
        conv = data.kernel_layers[layer]
        packed = data.filters.packed(layer, snap)
        if conv is None or packed is None or conv in out:
            continue
        values, floats, dims = packed
        out[conv] = {"start": packer.add(values), "floats": packer.add(floats), "dims": dims}
    return out


def browser_bundle(data: ExplorerData) -> BrowserBundle:
    """The explorer ``data`` (an :class:`~featviz.widgets.explorer_data.ExplorerData`) for the
    page to run. Raises :class:`featviz.UnsupportedModel` when some snapshot cannot run in
    the browser, or when a layer the explorer shows is not the output of a module."""
    shape = tuple(int(v) for v in data.images.shape[1:])
    packer, snapshots = Packer(), []
    for snap, (label, model) in enumerate(data.snapshots):
        try:
            spec = browser_network(model, shape, fold_batchnorm=False)
        except UnsupportedModel as exc:
            if len(data.snapshots) > 1:
                exc.args = (f"{exc.args[0]} (training moment {label!r})",)
            raise
        names = {step.name for step in spec.steps}
        missing = [k for k in data.layer_names if k not in names]
        if missing:
            raise UnsupportedModel(f"the layers {missing} are not outputs of modules the "
                                   "browser runs", missing[0])
        net = spec.to_payload()
        weights = net.pop("weights")
        snapshots.append({"label": label, "net": net, "weights": _weights_block(packer, weights),
                          "filters": _filters(packer, data, snap)})
    images = np.ascontiguousarray(data.images.detach().float().cpu().numpy(), dtype="<f4")
    noise = torch.randn((1, *shape), generator=torch.Generator().manual_seed(0))[0]
    meta = {
        "images": {"start": packer.add(images.tobytes()), "shape": list(images.shape)},
        "noise": {"start": packer.add(noise.numpy().astype("<f4").tobytes()), "shape": list(shape)},
        "snapshots": snapshots,
        "layers": [{"name": k, "grid": data.grids[k], "conv": data.kernel_layers[k] == k,
                    "kernel_of": data.kernel_layers[k]} for k in data.layer_names],
        "labels": None if data.labels is None else [int(v) for v in data.labels],
        "classes": None if data.classes is None else [str(c) for c in data.classes],
        "images_count": int(images.shape[0]),
    }
    return meta, packer.bytes()
