"""Colour policy and grid layout, one home for the static figures and the widgets.

The same values must look the same in a matplotlib figure (:mod:`featviz.plots`)
and in the live tools drawn in the browser, so both ask this module:

* signed values (a convolution's output before its ReLU, filter weights) use a
  diverging map centred at zero (:data:`SIGNED_CMAP`): red positive, blue
  negative, white zero;
* non-negative values (after a ReLU or a pooling of it) use a sequential map
  (:data:`POSITIVE_CMAP`) from 0 to the largest value;
* ``"shared"`` limits put every map of a layer on one scale, so maps compare;
  ``"per-map"`` limits stretch each map to its own range, so weak patterns show.

Only numpy is needed here: pass arrays (``featviz._torch.to_numpy`` turns a
tensor on any device into one).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "SIGNED_CMAP",
    "POSITIVE_CMAP",
    "IMAGE_CMAP",
    "choose_cmap",
    "color_scale",
    "limits",
    "grid_shape",
    "fmt",
]

SIGNED_CMAP = "RdBu_r"
POSITIVE_CMAP = "magma"
IMAGE_CMAP = "gray"

# A value counts as negative only when it is clearly below zero: float noise of
# -1e-9 in a non-negative map must not switch it to the diverging scale.
_SIGN_TOLERANCE = 1e-6

# matplotlib's diverging maps: drawn with one, limits are kept symmetric about zero
_DIVERGING = {"RdBu", "RdGy", "PiYG", "PRGn", "BrBG", "PuOr", "RdYlBu", "RdYlGn",
              "Spectral", "coolwarm", "bwr", "seismic", "berlin", "managua", "vanimo"}


def _finite(values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return arr[np.isfinite(arr)]


def color_scale(values: Any, cmap: str | None = None) -> tuple[str, float, float]:
    """One colour map and one ``(vmin, vmax)`` for showing all of ``values``.

    :data:`SIGNED_CMAP` with limits ``(-m, m)`` when any value is clearly
    negative (zero is then the middle colour), else :data:`POSITIVE_CMAP` with
    ``(0, max)``. ``cmap`` overrides the name; a diverging ``cmap`` keeps the
    limits symmetric even for non-negative values. All-zero, empty or all-NaN
    input gives ``(0, 1)``. NaNs and infinities are ignored.

    >>> color_scale(np.array([-2.0, 0.5]))
    ('RdBu_r', -2.0, 2.0)
    >>> color_scale([0.0, 3.0])
    ('magma', 0.0, 3.0)
    >>> color_scale([0.0, 3.0], cmap="RdBu_r")
    ('RdBu_r', -3.0, 3.0)
    """
    finite = _finite(values)
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    top = max(abs(lo), abs(hi))
    signed = top > 0 and lo < -_SIGN_TOLERANCE * top
    name = cmap or (SIGNED_CMAP if signed else POSITIVE_CMAP)
    if top == 0:
        return name, (-1.0 if _is_diverging(name) else 0.0), 1.0
    if signed or _is_diverging(name):
        return name, -top, top
    return name, 0.0, hi


def choose_cmap(values: Any) -> str:
    """The colour map that shows ``values`` honestly: diverging when signed.

    >>> choose_cmap(np.array([-2.0, 0.5]))
    'RdBu_r'
    >>> choose_cmap(np.array([0.0, 3.0]))
    'magma'
    """
    return color_scale(values)[0]


def _is_diverging(cmap: str) -> bool:
    return cmap.removesuffix("_r") in _DIVERGING


def limits(maps: Any, scale: str = "shared",
           cmap: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Colour limits ``(vmin, vmax)`` for each map of ``maps``, arrays of shape (C,).

    Parameters
    ----------
    maps : (C, ...) array, one map per entry of the first axis (a layer's
        (C, H, W) maps for one image, or filters).
    scale : ``"shared"`` - every map gets the layer's limits from
        :func:`color_scale`; ``"per-map"`` - each map its own range, still
        centred at zero when the layer is signed (or ``cmap`` diverging) and
        starting at 0 otherwise. A map that is zero everywhere gets ``(0, 1)``
        (``(-1, 1)`` when centred), so it is never stretched to look active.
    cmap : the colour map the maps will be drawn with (default
        :func:`choose_cmap` of all maps); a diverging one keeps limits symmetric.

    >>> maps = np.array([[[-1.0, 0.5]], [[0.2, 0.1]]])  # two 1x2 maps
    >>> lo, hi = limits(maps)
    >>> lo.tolist(), hi.tolist()
    ([-1.0, -1.0], [1.0, 1.0])
    >>> lo, hi = limits(maps, "per-map")
    >>> lo.tolist(), hi.tolist()
    ([-1.0, -0.2], [1.0, 0.2])
    """
    if scale not in ("shared", "per-map"):
        raise ValueError(f"scale must be 'shared' or 'per-map', got {scale!r}")
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[0] == 0:
        raise ValueError(
            f"maps must be an array of shape (C, ...) with at least one map, got shape "
            f"{arr.shape}; for a single (H, W) map pass maps[None]"
        )
    count = arr.shape[0]
    name, lo, hi = color_scale(arr, cmap)
    if scale == "shared":
        return np.full(count, lo), np.full(count, hi)
    centred = lo < 0
    # NaN and inf count as 0: they never set a map's range
    flat = np.where(np.isfinite(arr), arr, 0.0).reshape(count, -1)
    top = np.max(np.abs(flat) if centred else flat, axis=1, initial=0.0)
    top = np.where(top > 0, top, 1.0)
    return (-top if centred else np.zeros(count)), top


def grid_shape(n: int, max_cols: int | None = None, aspect: float = 2.0) -> tuple[int, int]:
    """Rows and columns for ``n`` panels: a grid that fits the count.

    Without ``max_cols``, prefers grids with no empty slot whose width/height
    ratio is near ``aspect``; a partly filled last row is accepted only when it
    clearly beats the full grids (7 -> 2x4). With ``max_cols``, rows of that
    many panels (never more columns than panels).

    >>> [grid_shape(n) for n in (1, 7, 16, 32, 512)]
    [(1, 1), (2, 4), (4, 4), (4, 8), (16, 32)]
    >>> grid_shape(16, max_cols=8)
    (2, 8)
    """
    n = positive_int(n, "n")
    if max_cols is not None:
        cols = min(positive_int(max_cols, "max_cols"), n)
        return math.ceil(n / cols), cols
    if not aspect > 0:
        raise ValueError(f"aspect must be a positive number (width / height), got {aspect!r}")
    best: tuple[float, int, int] | None = None
    for cols in range(1, n + 1):
        rows = math.ceil(n / cols)
        spare = rows * cols - n
        cost = abs(math.log2(cols / rows / aspect))
        if spare:
            cost += 1.0 + spare / cols
        # ties go to the squarer grid (fewer columns), hence cols in the key
        key = (round(cost, 9), cols, rows)
        if best is None or key < best:
            best = key
    assert best is not None
    return best[2], best[1]


def positive_int(value: Any, name: str) -> int:
    """``value`` as an int, or a ValueError naming ``name`` when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def fmt(v: float, digits: int = 2) -> str:
    """A number written short, for colour-bar ticks and captions.

    ``digits`` significant digits below 100, whole numbers above; a value that rounds
    up to 100 or more is a whole number too (a tick reads "100", never "1e+02").
    The browser's ``fmt`` (``featviz/widgets/style.js``) writes the same strings.

    >>> fmt(0.01234), fmt(3.0), fmt(-1.5), fmt(1234.4), fmt(0.01234, digits=3), fmt(99.5)
    ('0.012', '3', '-1.5', '1234', '0.0123', '100')
    """
    v = float(v) + 0.0   # -0.0 reads "0"
    short = f"{v:.{digits}g}"
    return short if abs(v) < 100 and "e+" not in short else f"{v:.0f}"
