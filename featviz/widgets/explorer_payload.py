"""What the kernel sends the explorer's front end for one state, packed for the browser.

One message per image, training moment and perturbation: every layer's maps as
uint8 with, per map, an offset and a scale (quantised together, in one pass over
all the values), each map's colour limits and the layer's (the policy of
:mod:`featviz._style`), the grid layouts, the filters that made each layer, the
input picture and the prediction in words. The browser draws every layer,
filter, view and colour scale from it without asking the kernel again.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .._style import color_scale, limits
from ._payload import quantize_runs

if TYPE_CHECKING:  # the explorer's state, for the type checker (imports point down)
    from .explorer_data import Entry, ExplorerData, Perturbation

__all__ = ["Packer", "build_payload"]


class Packer:
    """Byte chunks laid end to end, each starting at a multiple of 4 (where float32 blocks
    must start); :meth:`add` says where a chunk went."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> int:
        at = self.size
        self.parts.append(chunk)
        self.size += len(chunk)
        pad = -self.size % 4
        if pad:
            self.parts.append(bytes(pad))
            self.size += pad
        return at

    def bytes(self) -> bytes:
        return b"".join(self.parts)


def build_payload(data: ExplorerData, entry: Entry, index: int, snap: int,
                  perturbation: Perturbation) -> tuple[bytes, dict[str, Any]]:
    """``(bytes, meta)`` for the state ``(index, snap, perturbation)`` of ``data`` (an
    :class:`ExplorerData`) whose activations are ``entry``.

    Per layer, ``meta["layers"][i]`` gives ``name``, ``shape`` (C, H, W), ``start``
    (of the C*H*W uint8 values in the bytes), ``floats`` (start of 4*C float32:
    each map's offset and scale, then its own colour limits low and high),
    ``cmap``, ``shared`` (the layer's limits), ``grid`` (rows, cols),
    ``conv`` / ``kernel_of`` (the convolution that made it) and ``kernel``
    (its filters as uint8: ``start``, ``floats`` (offset and scale per
    filter), ``dims`` (C_out, C_in, kh, kw); None when too large).
    ``meta["input"]`` locates the input picture, (H, W, 3) uint8; the rest of
    ``meta`` is the state in words (image, training moment, prediction, label).
    """
    names = list(entry.maps)
    stacks = [entry.maps[k] for k in names]
    counts = np.concatenate([np.full(m.shape[0], m.shape[1] * m.shape[2]) for m in stacks])
    runs = quantize_runs(np.concatenate([m.reshape(-1) for m in stacks]), counts)
    ends = np.stack([runs.lo, runs.hi], axis=1)  # each map's (lowest, highest)
    packer, metas, first, at = Packer(), [], 0, 0
    for name, maps in zip(names, stacks):
        c = maps.shape[0]
        cmap, lo, hi, plo, phi = _colours(ends[first:first + c])
        floats = np.concatenate([runs.lo[first:first + c], runs.scale[first:first + c],
                                 plo, phi]).astype("<f4")
        size = maps.size
        meta = {"name": name, "shape": list(maps.shape),
                "start": packer.add(runs.values[at:at + size].tobytes()),
                "floats": packer.add(floats.tobytes()), "cmap": cmap, "shared": [lo, hi],
                "grid": data.grids[name], "conv": data.kernel_layers[name] == name,
                "kernel_of": data.kernel_layers[name], "kernel": None}
        kernel = data.filters.packed(name, snap)
        if kernel is not None:
            meta["kernel"] = {"start": packer.add(kernel[0]), "floats": packer.add(kernel[1]),
                              "dims": kernel[2]}
        metas.append(meta)
        first, at = first + c, at + size
    picture = _picture(entry.x[0])
    meta_input = {"start": packer.add(picture.tobytes()), "shape": list(picture.shape)}
    return packer.bytes(), {"layers": metas, "input": meta_input,
                            **_words(data, index, snap, perturbation, entry.probs)}


def _colours(ends: np.ndarray) -> tuple[str, float, float, np.ndarray, np.ndarray]:
    """The colour map, the layer's limits and each map's own limits (featviz._style's
    policy) from each map's smallest and largest finite value, ``ends`` (C, 2): the same
    answer as from all the values, at a fraction of the cost."""
    cmap, lo, hi = color_scale(ends)
    plo, phi = limits(ends, "per-map")
    return cmap, lo, hi, plo, phi


def _picture(x: torch.Tensor) -> np.ndarray:
    """An input ``(C, H, W)`` as display pixels ``(H, W, 3)`` uint8: one min-max stretch
    over all channels (a colour image keeps its hues; a grey one is drawn grey)."""
    arr = x.numpy()
    if arr.shape[0] not in (1, 3):
        arr = arr.mean(axis=0, keepdims=True)
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)
    pix = np.rint(scaled * 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(np.repeat(pix, 3, axis=2) if pix.shape[2] == 1 else pix)


def _words(data: ExplorerData, index: int, snap: int, perturbation: Perturbation,
           probs: np.ndarray | None) -> dict[str, Any]:
    """The state in words: image, training moment, perturbation, prediction, label."""
    words: dict[str, Any] = {"image": index, "images": len(data.images),
                             "perturbed": perturbation.describe(),
                             "training": data.snapshots[snap][0]
                             if len(data.snapshots) > 1 else ""}
    if probs is not None:
        k = int(probs.argmax())
        top = np.argsort(-probs)[:3]
        words["prediction"] = {"name": data.class_name(k), "p": float(probs[k]),
                               "top": [[data.class_name(int(t)), float(probs[t])] for t in top]}
    if data.labels is not None:
        truth = int(data.labels[index])
        words["label"] = data.class_name(truth)
        if probs is not None:
            words["correct"] = int(probs.argmax()) == truth
    return words
