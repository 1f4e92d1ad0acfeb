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
from typing import Any

import numpy as np

__all__ = ["Quantized", "quantize", "dequantize", "colormap_table"]


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
    c = arr.shape[0]
    flat = arr.reshape(c, -1)
    finite = np.isfinite(flat)
    if not finite.all():
        flat = np.where(finite, flat, np.nan)
        lo = np.nan_to_num(np.nanmin(flat, axis=1, initial=np.inf), posinf=0.0)
        hi = np.nan_to_num(np.nanmax(flat, axis=1, initial=-np.inf), neginf=0.0)
        flat = np.where(finite, flat, lo[:, None])
    elif flat.shape[1]:
        lo, hi = flat.min(axis=1), flat.max(axis=1)
    else:
        lo = hi = np.zeros(c, np.float32)
    scale = ((hi - lo) / 255.0).astype(np.float32)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.rint((flat - lo[:, None]) / safe[:, None])
    q = np.clip(q, 0, 255).astype(np.uint8)
    return Quantized(q.tobytes(), tuple(int(v) for v in arr.shape),  # type: ignore[arg-type]
                     lo.astype(np.float32), scale)


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
