"""Arrays -> PNG bytes, fast: the drawing engine of the widgets.

A matplotlib figure takes a few hundred milliseconds to build and draw; a slider
that redraws one per step feels sticky. This module draws the same pictures
straight from numpy arrays in about a millisecond:

* colours come from a lookup table made once per colour map from
  ``matplotlib.colormaps`` (so they match :mod:`featviz.plots` exactly);
* maps are upscaled by whole pixels (``np.repeat`` semantics), which keeps every
  activation a crisp square instead of a blur;
* the grid is an 8-bit *palette* image (one byte per pixel), so the PNG encoder
  (``zlib`` at level 1, written out here in a few lines) has a third of the work
  of an RGB image;
* channel numbers and captions use a small built-in bitmap font, so no text
  renderer runs per frame; the frame around the tiles (background, labels) is
  cached per layout.

The colour conventions are those of :mod:`featviz.plots`: a diverging map centred
on zero for signed values, a sequential one for non-negative values, dead
(all-zero) channels grey and hatched.

>>> from featviz import render
>>> png = render.render_grid(acts["conv1"][0])            # bytes of a PNG
>>> rgb = render.grid_rgb(acts["conv1"][0], highlight=3)  # (H, W, 3) uint8
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

import numpy as np

__all__ = [
    "colormap_lut",
    "encode_png",
    "decode_png",
    "text_mask",
    "draw_text",
    "GridStyle",
    "grid_indices",
    "grid_rgb",
    "render_grid",
    "single_rgb",
    "render_single",
    "add_caption",
    "to_numpy",
]

# --------------------------------------------------------------------------- palette

#: Number of palette entries a colour map gets in a grid image (the rest are
#: fixed colours). 240 levels are more than the eye separates in a small tile.
LEVELS = 240
BG, TEXT, MUTED, DEAD_FACE, DEAD_HATCH, HIGHLIGHT, NAN, FRAME = range(LEVELS, LEVELS + 8)

_FIXED = {
    BG: (255, 255, 255),
    TEXT: (0x22, 0x22, 0x22),
    MUTED: (0x66, 0x66, 0x66),
    DEAD_FACE: (0xEC, 0xEC, 0xEC),
    DEAD_HATCH: (0xBD, 0xBD, 0xBD),
    # green stands apart from both the diverging (blue-red) and the sequential
    # (black-orange-yellow) maps, so the chosen channel is found at a glance
    HIGHLIGHT: (0x00, 0xA6, 0x51),
    NAN: (0x9E, 0x9E, 0x9E),
    FRAME: (0x9E, 0x9E, 0x9E),
}


@lru_cache(maxsize=64)
def colormap_lut(name: str, levels: int = 256) -> np.ndarray:
    """The colours of matplotlib's colour map ``name`` as a ``(levels, 3)`` uint8 table.

    Raises ValueError naming a few valid maps when ``name`` is unknown.

    >>> colormap_lut("magma").shape
    (256, 3)
    """
    import matplotlib  # a colour table only: no figure, no backend

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(
            f"unknown colour map {name!r}; use a matplotlib name such as 'magma', "
            f"'viridis', 'RdBu_r' or 'gray'."
        ) from None
    rgba = cmap(np.linspace(0.0, 1.0, levels))
    lut = np.round(rgba[:, :3] * 255).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@lru_cache(maxsize=64)
def _palette(cmap: str) -> np.ndarray:
    pal = np.zeros((256, 3), np.uint8)
    pal[:LEVELS] = colormap_lut(cmap, LEVELS)
    for index, rgb in _FIXED.items():
        pal[index] = rgb
    pal.setflags(write=False)
    return pal


def _default_cmap(values: np.ndarray) -> tuple[str, float, float]:
    from .plots import choose_cmap

    return choose_cmap(values)


# --------------------------------------------------------------------------- PNG

def _chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def encode_png(pixels: np.ndarray, palette: np.ndarray | None = None,
               compress_level: int = 1) -> bytes:
    """Encode an image as PNG bytes.

    Parameters
    ----------
    pixels : uint8 ``(H, W)`` grey (or palette indices when ``palette`` is given),
        or ``(H, W, 3)`` RGB.
    palette : optional ``(K, 3)`` uint8 colours, ``K <= 256``: ``pixels`` are indices.
    compress_level : zlib level, 0-9. Level 1 is several times faster than the
        default and, on these blocky pictures, barely larger.

    Rows are stored unfiltered: upscaled maps repeat whole rows and runs, which
    deflate finds without help, and filtering would cost more than it saves.
    """
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        raise TypeError(f"encode_png expects uint8 pixels, got {arr.dtype}; "
                        f"scale to 0-255 and use .astype(np.uint8).")
    if arr.ndim == 3 and arr.shape[2] == 3:
        color_type, channels = 2, 3
    elif arr.ndim == 2:
        color_type, channels = (3 if palette is not None else 0), 1
    else:
        raise ValueError(f"encode_png expects (H, W) or (H, W, 3) pixels, got shape {arr.shape}")
    if palette is not None and color_type != 3:
        raise ValueError("a palette goes with (H, W) index pixels, not RGB ones")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ValueError(f"cannot encode an empty image of shape {arr.shape}")
    raw = np.empty((height, width * channels + 1), np.uint8)
    raw[:, 0] = 0  # filter type "none" for every row
    raw[:, 1:] = arr.reshape(height, width * channels)
    parts = [b"\x89PNG\r\n\x1a\n",
             _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0))]
    if palette is not None:
        pal = np.asarray(palette, np.uint8)
        if pal.ndim != 2 or pal.shape[1] != 3 or not 1 <= len(pal) <= 256:
            raise ValueError(f"palette must be (K, 3) uint8 with K <= 256, got {pal.shape}")
        parts.append(_chunk(b"PLTE", pal.tobytes()))
    parts.append(_chunk(b"IDAT", zlib.compress(raw.tobytes(), compress_level)))
    parts.append(_chunk(b"IEND", b""))
    return b"".join(parts)


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> ``(H, W, 3)`` uint8 RGB (via Pillow). For tests and checks."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB")).copy()


# --------------------------------------------------------------------------- font

# A 3x5 bitmap font: enough for channel numbers and short captions, drawn
# without a text renderer. Lower case is drawn as upper case.
_GLYPHS = {
    "0": "### #.# #.# #.# ###", "1": ".#. ##. .#. .#. ###", "2": "### ..# ### #.. ###",
    "3": "### ..# .## ..# ###", "4": "#.# #.# ### ..# ..#", "5": "### #.. ### ..# ###",
    "6": "### #.. ### #.# ###", "7": "### ..# ..# .#. .#.", "8": "### #.# ### #.# ###",
    "9": "### #.# ### ..# ###",
    "A": ".#. #.# ### #.# #.#", "B": "##. #.# ##. #.# ##.", "C": ".## #.. #.. #.. .##",
    "D": "##. #.# #.# #.# ##.", "E": "### #.. ##. #.. ###", "F": "### #.. ##. #.. #..",
    "G": ".## #.. #.# #.# .##", "H": "#.# #.# ### #.# #.#", "I": "### .#. .#. .#. ###",
    "J": "..# ..# ..# #.# .#.", "K": "#.# #.# ##. #.# #.#", "L": "#.. #.. #.. #.. ###",
    "M": "#.# ### #.# #.# #.#", "N": "##. #.# #.# #.# #.#", "O": ".#. #.# #.# #.# .#.",
    "P": "##. #.# ##. #.. #..", "Q": ".#. #.# #.# ##. .##", "R": "##. #.# ##. #.# #.#",
    "S": ".## #.. .#. ..# ##.", "T": "### .#. .#. .#. .#.", "U": "#.# #.# #.# #.# ###",
    "V": "#.# #.# #.# #.# .#.", "W": "#.# #.# ### ### #.#", "X": "#.# #.# .#. #.# #.#",
    "Y": "#.# #.# .#. .#. .#.", "Z": "### ..# .#. #.. ###",
    " ": "... ... ... ... ...", ".": "... ... ... ... .#.", ",": "... ... ... .#. #..",
    ":": "... .#. ... .#. ...", "-": "... ... ### ... ...", "+": "... .#. ### .#. ...",
    "=": "... ### ... ### ...", "%": "#.. ..# .#. #.. ..#", "/": "..# ..# .#. #.. #..",
    "(": "..# .#. .#. .#. ..#", ")": "#.. .#. .#. .#. #..", "_": "... ... ... ... ###",
    "#": "#.# ### #.# ### #.#", "?": "### ..# .## ... .#.", "'": ".#. .#. ... ... ...",
    "<": "..# .#. #.. .#. ..#", ">": "#.. .#. ..# .#. #..", "|": ".#. .#. .#. .#. .#.",
}
GLYPH_W, GLYPH_H, ADVANCE = 3, 5, 4


@lru_cache(maxsize=None)
def _glyph(ch: str) -> np.ndarray:
    rows = _GLYPHS.get(ch.upper(), _GLYPHS["?"]).split()
    return np.array([[c == "#" for c in row] for row in rows], bool)


@lru_cache(maxsize=1024)
def text_mask(text: str, scale: int = 1) -> np.ndarray:
    """``text`` in the built-in 3x5 font as a boolean ``(5 * scale, width)`` mask."""
    if not text:
        return np.zeros((GLYPH_H * scale, 0), bool)
    width = ADVANCE * len(text) - 1
    mask = np.zeros((GLYPH_H, width), bool)
    for i, ch in enumerate(text):
        mask[:, i * ADVANCE:i * ADVANCE + GLYPH_W] = _glyph(ch)
    if scale > 1:
        mask = mask.repeat(scale, 0).repeat(scale, 1)
    mask.setflags(write=False)
    return mask


def draw_text(canvas: np.ndarray, text: str, y: int, x: int, value: Any, scale: int = 1) -> None:
    """Draw ``text`` into ``canvas`` (indices ``(H, W)`` or RGB ``(H, W, 3)``) in place,
    its top-left corner at ``(y, x)``, clipped to the canvas."""
    mask = text_mask(text, scale)
    h = min(mask.shape[0], canvas.shape[0] - y)
    w = min(mask.shape[1], canvas.shape[1] - x)
    if h <= 0 or w <= 0 or y < 0 or x < 0:
        return
    canvas[y:y + h, x:x + w][mask[:h, :w]] = value


# --------------------------------------------------------------------------- inputs

def to_numpy(values: Any, what: str = "maps") -> np.ndarray:
    """A tensor (any device, with or without grad) or array -> float32 numpy array."""
    if hasattr(values, "detach"):
        values = values.detach()
        if hasattr(values, "cpu"):
            values = values.cpu()
        values = values.float().numpy()
    try:
        return np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a tensor or an array of numbers, "
                        f"got {type(values).__name__}") from None


def _as_maps(maps: Any) -> np.ndarray:
    arr = to_numpy(maps, "maps")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        hint = " For a batch (N, C, H, W) pick one image: maps[i]." if arr.ndim == 4 else ""
        raise ValueError(f"maps must be (C, H, W) (one image's feature maps), got shape "
                         f"{arr.shape}.{hint}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"maps is empty (shape {arr.shape}): nothing to draw")
    return arr


def _to_indices(maps: np.ndarray, vmin: np.ndarray | float, vmax: np.ndarray | float) -> np.ndarray:
    """Values -> palette indices 0..LEVELS-1 (NaN -> NAN), vectorised over maps."""
    vmin = np.asarray(vmin, np.float32)
    span = np.asarray(vmax, np.float32) - vmin
    span = np.where(span > 0, span, np.float32(1.0))
    k = np.float32(LEVELS) / span
    scaled = (maps - vmin) * k
    np.clip(scaled, 0, LEVELS - 1, out=scaled)
    idx = scaled.astype(np.uint8)
    if not np.isfinite(maps).all():  # rare: keep the common path free of the mask
        idx[np.isnan(maps)] = NAN
    return idx


def _limits(maps: np.ndarray, norm: str, cmap: str | None,
            vmin: float | None, vmax: float | None) -> tuple[str, Any, Any]:
    """Colour map name and per-map (or shared) limits, following plots' conventions."""
    name, lo, hi = _default_cmap(maps)
    name = cmap or name
    if vmin is not None or vmax is not None:
        return name, (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    if norm == "shared":
        return name, lo, hi
    # per-map: signed maps keep zero in the middle, non-negative ones start at 0
    flat = maps.reshape(len(maps), -1)
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.abs(flat), axis=1) if lo < 0 else np.nanmax(flat, axis=1)
    top = np.where(np.isfinite(top) & (top > 0), top, 1.0).astype(np.float32)[:, None, None]
    return name, (-top if lo < 0 else np.float32(0.0)), top


# --------------------------------------------------------------------------- grid

@dataclass(frozen=True)
class GridStyle:
    """How a grid of maps is laid out; ``None`` means "pick from the map size".

    scale : whole-pixel upscaling of each map.
    gap : pixels between tiles (the highlight frame is drawn in it).
    ncols : columns; default from :func:`featviz.plots.grid_shape`.
    labels : channel numbers above the tiles.
    tile : target tile size in pixels when ``scale`` is None.
    max_width : the grid is kept under about this width when ``scale`` is None.
    background : ``"white"``, or ``"grey"`` where the tiles themselves are mostly
        white (filter weights on the diverging map) and the gaps must show.
    """

    scale: int | None = None
    gap: int = 4
    ncols: int | None = None
    labels: bool = True
    tile: int = 72
    max_width: int = 960
    background: str = "white"


@dataclass(frozen=True)
class _Layout:
    n: int
    rows: int
    cols: int
    h: int
    w: int
    scale: int
    ty: int          # tile offset inside its slot
    tx: int
    py: int          # slot pitch
    px: int
    font: int
    label_y: int
    height: int
    width: int


def _layout(n: int, h: int, w: int, style: GridStyle) -> _Layout:
    from .plots import grid_shape

    rows, cols = grid_shape(n, style.ncols)
    gap = max(int(style.gap), 2)
    scale = style.scale
    if scale is None:
        fit = max(1, (style.max_width // cols - gap) // max(w, 1))
        scale = int(max(1, min(round(style.tile / max(h, w)), fit, 32)))
    scale = max(1, int(scale))
    hs, ws = h * scale, w * scale
    font = 2 if ws >= 40 else 1
    half = gap // 2
    label_h = GLYPH_H * font + 2 if style.labels else 0
    ty, tx = half + label_h, half
    py, px = ty + hs + half, ws + gap
    return _Layout(n, rows, cols, h, w, scale, ty, tx, py, px, font, half,
                   rows * py, cols * px)


@lru_cache(maxsize=32)
def _frame(layout: _Layout, labels: tuple[int, ...] | None, background: int = BG) -> np.ndarray:
    """Background and channel numbers for a layout: drawn once, copied per frame."""
    canvas = np.full((layout.height, layout.width), background, np.uint8)
    if labels is not None:
        for i, ch in enumerate(labels):
            r, c = divmod(i, layout.cols)
            draw_text(canvas, str(ch), r * layout.py + layout.label_y,
                      c * layout.px + layout.tx, MUTED, layout.font)
    canvas.setflags(write=False)
    return canvas


@lru_cache(maxsize=32)
def _hatch(h: int, w: int) -> np.ndarray:
    """Diagonal hatching of an ``(h, w)`` tile in screen pixels, as palette indices."""
    period, width = (8, 2) if min(h, w) >= 24 else (4, 1)
    yy, xx = np.mgrid[:h, :w]
    tile = np.where((yy + xx) % period < width, DEAD_HATCH, DEAD_FACE).astype(np.uint8)
    tile.setflags(write=False)
    return tile


def grid_indices(
    maps: Any,
    *,
    norm: str = "shared",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    highlight: int | None = None,
    channels: Sequence[int] | None = None,
    style: GridStyle = GridStyle(),
) -> tuple[np.ndarray, np.ndarray]:
    """A grid of feature maps as palette indices and the palette.

    Parameters
    ----------
    maps : ``(C, H, W)`` one image's maps (tensor or array); ``(H, W)`` is one map.
    norm : ``"shared"`` (one colour scale for all maps, so they compare) or
        ``"per-map"`` (each map on its own scale, to see weak maps' patterns).
    cmap, vmin, vmax : override the colour map / limits chosen by
        :func:`featviz.plots.choose_cmap`.
    highlight : position (0-based, in ``maps``) of a tile to frame in green.
    channels : the channel numbers written above the tiles (default 0..C-1).
    style : layout, see :class:`GridStyle`.

    Returns
    -------
    indices : ``(H_img, W_img)`` uint8; palette : ``(256, 3)`` uint8.
    """
    arr = _as_maps(maps)
    if norm not in ("shared", "per-map"):
        raise ValueError(f"norm must be 'shared' or 'per-map', got {norm!r}")
    n, h, w = arr.shape
    name, lo, hi = _limits(arr, norm, cmap, vmin, vmax)
    small = _to_indices(arr, lo, hi)
    # dead (all-zero) channels are hatched grey, as in the static figures
    dead = np.flatnonzero(~arr.reshape(n, -1).any(axis=1))

    if channels is None:
        labels = tuple(range(n)) if style.labels else None
    else:
        labels = tuple(int(c) for c in channels)
        if len(labels) != n:
            raise ValueError(f"channels has {len(labels)} numbers for {n} maps")
        labels = labels if style.labels else None
    if style.background not in ("white", "grey"):
        raise ValueError(f"background must be 'white' or 'grey', got {style.background!r}")
    lay = _layout(n, h, w, style)
    canvas = _frame(lay, labels, BG if style.background == "white" else FRAME).copy()

    s, rows, cols = lay.scale, lay.rows, lay.cols
    tiles = small
    if rows * cols > n:  # a partly filled last row: pad with background tiles
        tiles = np.concatenate([small, np.full((rows * cols - n, h, w), canvas[0, 0], np.uint8)])
    # write every upscaled tile in one broadcast assignment into a strided view
    slots = canvas.reshape(rows, lay.py, cols, lay.px)
    view = slots[:, lay.ty:lay.ty + h * s, :, lay.tx:lay.tx + w * s]
    view6 = view.reshape(rows, h, s, cols, w, s)
    src = tiles.reshape(rows, cols, h, w).transpose(0, 2, 1, 3)
    view6[...] = src[:, :, None, :, :, None]
    if not np.shares_memory(view6, canvas):  # pragma: no cover - numpy always views here
        raise RuntimeError("grid assembly lost its view of the canvas")
    for k in dead:  # hatched in screen pixels, so the lines stay fine at any scale
        r, c = divmod(int(k), cols)
        y0, x0 = r * lay.py + lay.ty, c * lay.px + lay.tx
        canvas[y0:y0 + h * s, x0:x0 + w * s] = _hatch(h * s, w * s)

    if highlight is not None:
        if not 0 <= int(highlight) < n:
            raise ValueError(f"highlight must be a tile position 0 to {n - 1}, got {highlight}")
        r, c = divmod(int(highlight), cols)
        b = max(1, min(2, lay.tx))
        y0, x0 = r * lay.py + lay.ty, c * lay.px + lay.tx
        y1, x1 = y0 + h * s, x0 + w * s
        canvas[y0 - b:y0, x0 - b:x1 + b] = HIGHLIGHT
        canvas[y1:y1 + b, x0 - b:x1 + b] = HIGHLIGHT
        canvas[y0:y1, x0 - b:x0] = HIGHLIGHT
        canvas[y0:y1, x1:x1 + b] = HIGHLIGHT
        if labels is not None:
            draw_text(canvas, str(labels[int(highlight)]), r * lay.py + lay.label_y,
                      x0, HIGHLIGHT, lay.font)
    return canvas, _palette(name)


def grid_rgb(maps: Any, **kwargs: Any) -> np.ndarray:
    """The grid of :func:`grid_indices` as an ``(H, W, 3)`` uint8 RGB array."""
    idx, pal = grid_indices(maps, **kwargs)
    return pal[idx]


def render_grid(maps: Any, **kwargs: Any) -> bytes:
    """The grid of :func:`grid_indices` as PNG bytes (an 8-bit palette PNG).

    >>> png = render_grid(acts["conv1"][0], norm="per-map", highlight=3)
    """
    idx, pal = grid_indices(maps, **kwargs)
    return encode_png(idx, pal)


# --------------------------------------------------------------------------- single map

def _colorize(values: np.ndarray, cmap: str, vmin: float, vmax: float) -> np.ndarray:
    lut = colormap_lut(cmap, 256)
    span = vmax - vmin if vmax > vmin else 1.0
    idx = np.clip((values - vmin) * (256.0 / span), 0, 255).astype(np.uint8)
    out = lut[idx]
    if not np.isfinite(values).all():
        out[np.isnan(values)] = _FIXED[NAN]
    return out


def _image_rgb(image: Any) -> np.ndarray:
    """An input image ``(C, H, W)`` or ``(H, W)`` -> RGB uint8, stretched to its own range."""
    arr = to_numpy(image, "image")
    if arr.ndim == 3 and arr.shape[0] in (1, 3):
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    if arr.ndim not in (2, 3):
        raise ValueError(f"image must be (C, H, W) with C = 1 or 3, or (H, W); got {arr.shape}")
    lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
    span = hi - lo if hi > lo else 1.0
    grey = np.clip((arr - lo) * (255.0 / span), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2) if grey.ndim == 2 else grey


def _upscale(rgb: np.ndarray, s: int) -> np.ndarray:
    return rgb.repeat(s, 0).repeat(s, 1) if s > 1 else rgb


def single_rgb(
    feature_map: Any,
    *,
    image: Any | None = None,
    kernel: Any | None = None,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    size: int = 264,
    captions: Sequence[str] = ("input", "map", "filter"),
) -> np.ndarray:
    """One feature map large, beside the input image and the filter kernel.

    Parameters
    ----------
    feature_map : ``(H, W)`` one channel of one image.
    image : the input ``(C, H, W)``/``(H, W)``, shown in grey on the left (optional).
    kernel : the filter that made the map: ``(in_channels, kh, kw)`` (drawn as a grid
        with one shared diverging scale) or ``(kh, kw)`` (optional).
    cmap, vmin, vmax : override the colours of the map (default from ``choose_cmap``).
    size : the map's target size in pixels (whole-pixel upscaling).
    captions : the three panel captions, in the built-in font.

    Returns
    -------
    ``(H, W, 3)`` uint8 RGB.
    """
    fmap = to_numpy(feature_map, "feature_map")
    if fmap.ndim == 3 and fmap.shape[0] == 1:
        fmap = fmap[0]
    if fmap.ndim != 2 or fmap.size == 0:
        raise ValueError(f"feature_map must be one (H, W) map, got shape {fmap.shape}")
    name, lo, hi = _default_cmap(fmap)
    name, lo, hi = cmap or name, (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    h, w = fmap.shape
    s = max(1, size // max(h, w))
    if not fmap.any():  # dead: hatched, as in the grid
        big = _palette(name)[_hatch(h * s, w * s)]
    else:
        big = _upscale(_colorize(fmap, name, lo, hi), s)
    panels = []
    if image is not None:
        img = _image_rgb(image)
        si = max(1, min(size, big.shape[0]) // max(img.shape[:2]))
        panels.append((captions[0], _upscale(img, si)))
    panels.append((captions[1], big))
    if kernel is not None:
        kern = to_numpy(kernel, "kernel")
        if kern.ndim == 2:
            kern = kern[None]
        if kern.ndim != 3 or kern.size == 0:
            raise ValueError(f"kernel must be (in_channels, kh, kw) or (kh, kw), got {kern.shape}")
        kname, klo, khi = _default_cmap(kern)
        if len(kern) == 1:
            kh, kw = kern.shape[1:]
            sk = max(1, (size // 2) // max(kh, kw))
            panels.append((captions[2], _upscale(_colorize(kern[0], kname, klo, khi), sk)))
        else:
            ncols = int(np.ceil(np.sqrt(len(kern))))
            tile = max(4, min(size // ncols - 3, 40))
            kstyle = GridStyle(labels=False, gap=2, ncols=ncols, background="grey",
                               scale=max(1, tile // max(kern.shape[1:])))
            idx, pal = grid_indices(kern, cmap=kname, vmin=klo, vmax=khi, style=kstyle)
            panels.append((captions[2], pal[idx]))
    return _side_by_side(panels)


def _side_by_side(panels: list[tuple[str, np.ndarray]], gap: int = 16, font: int = 2) -> np.ndarray:
    cap_h = GLYPH_H * font + 6
    height = cap_h + max(p.shape[0] for _, p in panels) + 4
    width = sum(p.shape[1] for _, p in panels) + gap * (len(panels) + 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    x = gap
    for caption, pix in panels:
        draw_text(canvas, caption, 2, x, _FIXED[TEXT], font)
        canvas[cap_h:cap_h + pix.shape[0], x:x + pix.shape[1]] = pix
        x += pix.shape[1] + gap
    return canvas


def render_single(feature_map: Any, **kwargs: Any) -> bytes:
    """The picture of :func:`single_rgb` as PNG bytes."""
    return encode_png(single_rgb(feature_map, **kwargs))


def add_caption(rgb: np.ndarray, lines: Sequence[str], font: int = 2) -> np.ndarray:
    """``rgb`` with ``lines`` of text above it (built-in font), e.g. for a saved snapshot."""
    rgb = np.asarray(rgb, np.uint8)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    line_h = GLYPH_H * font + 4
    top = 6 + line_h * len(lines)
    width = max([rgb.shape[1]] + [text_mask(t, font).shape[1] + 12 for t in lines])
    out = np.full((top + rgb.shape[0], width, 3), 255, np.uint8)
    for i, text in enumerate(lines):
        draw_text(out, text, 4 + i * line_h, 6, _FIXED[TEXT], font)
    out[top:, :rgb.shape[1]] = rgb
    return out
