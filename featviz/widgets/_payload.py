"""What the kernel sends to a widget's front end: feature maps, compactly.

A layer's maps ``(C, H, W)`` travel as one ``uint8`` per value plus, per map,
an ``offset`` and a ``scale``: the value is ``offset + scale * q``. The error is
at most half a step (``scale / 2``); a map's smallest value (0 after a ReLU)
comes back exactly. Colour maps travel as 256 RGB entries computed here from
matplotlib, so the browser paints with the same colours as the static figures.

Shared by the explorer and the sketchpad; numpy only (matplotlib is imported
when a colour table is asked for).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = ["Quantized", "Runs", "quantize", "quantize_runs", "dequantize", "colormap_table"]


@dataclass(frozen=True)
class Quantized:
    """Maps ``(C, H, W)`` as bytes: ``data`` holds ``C * H * W`` uint8 values (C-order),
    ``offset`` and ``scale`` one float each per map."""

    data: bytes
    shape: tuple[int, int, int]
    offset: np.ndarray  # (C,) float32
    scale: np.ndarray   # (C,) float32

    def meta(self) -> dict[str, Any]:
        """The JSON-friendly part (everything but ``data``)."""
        return {"shape": list(self.shape), "offset": self.offset.tolist(),
                "scale": self.scale.tolist()}


class Runs(NamedTuple):
    """Maps laid end to end, quantised: ``values`` uint8, per map ``lo`` and ``hi`` (its
    smallest and largest finite value, 0 for a map without one) and ``scale``."""

    values: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    scale: np.ndarray


def quantize_runs(values: np.ndarray, counts: np.ndarray) -> Runs:
    """Quantise maps stored one after another in ``values`` (1-D float32), ``counts[i]``
    values each (all > 0), in one pass over the values whatever the number of maps:
    how the explorer sends every map of every layer at once.

    >>> r = quantize_runs(np.array([0, 51, 255, -1, 1], np.float32), np.array([3, 2]))
    >>> r.values.tolist(), r.lo.tolist(), r.hi.tolist()
    ([0, 51, 255, 0, 255], [0.0, -1.0], [255.0, 1.0])
    """
    starts = np.cumsum(counts) - counts
    lo, hi = np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):  # NaN or inf in some map
        finite = np.isfinite(values)
        lo = np.minimum.reduceat(np.where(finite, values, np.inf), starts)
        hi = np.maximum.reduceat(np.where(finite, values, -np.inf), starts)
        lo, hi = (np.where(np.isfinite(v), v, 0).astype(np.float32) for v in (lo, hi))
        values = np.where(finite, values, np.repeat(lo, counts))
    scale = ((hi - lo) / 255.0).astype(np.float32)
    q = values - np.repeat(lo, counts)
    q /= np.repeat(np.where(scale > 0, scale, np.float32(1.0)), counts)
    np.clip(np.rint(q, out=q), 0, 255, out=q)
    return Runs(q.astype(np.uint8), lo, hi, scale)


def quantize(maps: Any) -> Quantized:
    """Quantise maps ``(C, H, W)`` (or one ``(H, W)`` map) to uint8, per map.

    Non-finite values are sent as the map's lowest value.

    >>> q = quantize(np.array([[[0.0, 1.0], [2.0, 5.1]]]))
    >>> q.shape, list(q.data), q.offset.tolist()
    ((1, 2, 2), [0, 50, 100, 255], [0.0])
    """
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"quantize expects maps of shape (C, H, W) or (H, W), got shape "
                         f"{arr.shape}")
    shape = tuple(int(v) for v in arr.shape)
    if arr.size == 0:
        zeros = np.zeros(shape[0], np.float32)
        return Quantized(b"", shape, zeros, zeros.copy())  # type: ignore[arg-type]
    runs = quantize_runs(arr.reshape(-1), np.full(shape[0], shape[1] * shape[2]))
    return Quantized(runs.values.tobytes(), shape, runs.lo, runs.scale)  # type: ignore[arg-type]


def dequantize(q: Quantized) -> np.ndarray:
    """The maps back from :func:`quantize`, float32 ``(C, H, W)``.

    >>> maps = np.random.default_rng(0).normal(size=(3, 4, 4))
    >>> q = quantize(maps)
    >>> bool(np.all(np.abs(dequantize(q) - maps) <= q.scale[:, None, None] / 2 + 1e-6))
    True
    """
    c, h, w = q.shape
    u = np.frombuffer(q.data, dtype=np.uint8).reshape(c, h, w).astype(np.float32)
    return q.offset[:, None, None] + q.scale[:, None, None] * u


@functools.lru_cache(maxsize=None)
def colormap_table(name: str) -> bytes:
    """A matplotlib colour map as 256 RGB triples (768 bytes), index 0 = lowest value.

    >>> len(colormap_table("magma")), colormap_table("gray")[:3]
    (768, b'\\x00\\x00\\x00')
    """
    from matplotlib import colormaps

    try:
        cmap = colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colour map {name!r}; use a matplotlib name such as "
                         f"'magma' or 'RdBu_r'") from None
    rgba = cmap(np.linspace(0.0, 1.0, 256))
    return np.rint(rgba[:, :3] * 255).astype(np.uint8).tobytes()
