"""Static figures: feature-map grids, filters, digit grids, heat-map overlays, comparisons.

Every function builds a :class:`matplotlib.figure.Figure` directly (never
pyplot) and returns it, so it works the same in a notebook, a script and a
headless test. In a notebook, leave the figure as the last expression of a
cell to show it; in a script, ``fig.savefig("maps.png")``.

Colour conventions, shared by every figure and by the widgets:

* signed values (a convolution's output before its ReLU, filter weights) use a
  diverging map centred at zero (:data:`SIGNED_CMAP`): red is positive, blue is
  negative, white is zero;
* non-negative values (after a ReLU or a pooling of it) use a sequential map
  (:data:`POSITIVE_CMAP`) from 0 (black) to the largest value (pale yellow);
* a channel that is zero everywhere is *dead*: its panel is grey and hatched,
  never stretched to look active.

The colour maps, their limits and the grid layout come from
:mod:`featviz._style`, which the widgets use too.

Images are model inputs, usually normalised. Pass the normalisation to show
true pixels: ``mean=`` and ``std=`` as given to ``transforms.Normalize`` (for
the course's MNIST, ``featviz.MNIST_MEAN`` and ``featviz.MNIST_STD``). Without
them, images with values in [0, 1] are shown as they are (so pixels undone by
any other means show exactly), and others are rescaled to [0, 1] over the
batch shown.

Every panel's ``Axes`` carries a label (``ax.get_label()``) saying what it
shows: ``"channel 7"``, ``"filter 3"``, ``"image 12"``, ``"input"``,
``"overlay Grad-CAM"`` or ``"colorbar"``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence, cast

import numpy as np
import torch
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from ._style import (IMAGE_CMAP, POSITIVE_CMAP, SIGNED_CMAP, color_scale, fmt, grid_shape,
                     limits, positive_int)
from ._torch import to_numpy

__all__ = [
    "plot_feature_maps",
    "plot_filters",
    "plot_images",
    "plot_overlay",
    "plot_comparison",
    "plot_top_activating",
    "plot_attribution_grid",
]

WRONG_COLOR = "#c62828"
TEXT_COLOR = "#222222"
MUTED_COLOR = "#666666"
DEAD_FACE = "#ececec"
DEAD_HATCH = "#bdbdbd"
FRAME_COLOR = "#9e9e9e"

Array = Any  # torch.Tensor | np.ndarray | nested sequence of numbers
Stats = float | Sequence[float] | None  # a normalisation's mean or std, per channel


# --------------------------------------------------------------------------- helpers

def _pick(arr: np.ndarray, index: int | None, what: str) -> tuple[np.ndarray, str]:
    """(N, ...) -> one item; returns the item and a note like 'image 3' (the index passed)."""
    n = arr.shape[0]
    i = 0 if index is None else index
    if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"index must be an integer, got {index!r}")
    if not -n <= i < n:
        raise ValueError(
            f"index={index} is out of range for {what} holding {n} images "
            f"(valid: 0 to {n - 1})"
        )
    return arr[i], (f"image {int(i) % n}" if n > 1 else "")


def _select_maps(maps: Any, index: int | None, what: str = "maps") -> tuple[np.ndarray, str]:
    """(C, H, W) or (N, C, H, W) + index -> (C, H, W) numpy and a note."""
    arr = to_numpy(maps, what)
    if arr.ndim == 4:
        return _pick(arr, index, what)
    if arr.ndim == 3:
        if index is not None:
            raise ValueError(
                f"{what} has shape {tuple(arr.shape)}, already one image's (C, H, W) maps, "
                f"so index={index} has nothing to pick from; drop index= (or pass the whole "
                f"(N, C, H, W) batch)"
            )
        return arr, ""
    hint = ""
    if arr.ndim == 2:
        hint = (" A 2-D array looks like one map (H, W) - add a channel axis with "
                "maps[None] - or the (N, features) output of a Linear layer, which has no "
                "spatial maps to draw.")
    raise ValueError(
        f"{what} must have shape (C, H, W) or (N, C, H, W) with index=, "
        f"got {arr.ndim}-D shape {tuple(arr.shape)}.{hint}"
    )


@dataclass(frozen=True)
class _Pixels:
    """How model inputs become pixels in [0, 1]: undo the normalisation
    (``mean``/``std``) when given; without it, values in [0, 1] as they are and
    anything else rescaled to [0, 1]."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @classmethod
    def make(cls, mean: Stats, std: Stats) -> "_Pixels":
        """Check the normalisation up front, with errors that say how to give it."""
        if mean is None and std is None:
            return cls()
        if mean is None or std is None:
            raise ValueError(
                "mean and std go together: pass both, as given to transforms.Normalize(mean, "
                "std) (for the course's MNIST: mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)"
            )
        m = to_numpy(mean, "mean").reshape(-1)
        sd = to_numpy(std, "std").reshape(-1)
        if m.size == 0 or sd.size == 0 or not np.all(sd > 0):
            raise ValueError(f"std must hold positive numbers (and mean at least one), got "
                             f"mean={mean!r}, std={std!r}")
        return cls(m, sd)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) model inputs -> (N, H, W) grey or (N, H, W, 3) RGB in [0, 1]."""
        channels = batch.shape[1]
        if channels not in (1, 3):
            raise ValueError(
                f"images must have 1 (grey) or 3 (RGB) channels, got {channels} in shape "
                f"{tuple(batch.shape)}"
            )
        if self.mean is not None and self.std is not None:
            if self.mean.size not in (1, channels) or self.std.size not in (1, channels):
                raise ValueError(
                    f"mean has {self.mean.size} and std {self.std.size} values, but the "
                    f"images have {channels} channel(s); give one value, or one per channel"
                )
            out = batch * self.std.reshape(-1, 1, 1) + self.mean.reshape(-1, 1, 1)
        else:
            out = batch
            lo, hi = float(np.nanmin(batch)), float(np.nanmax(batch))
            if lo < -1e-3 or hi > 1.0 + 1e-3:
                out = (batch - lo) / (hi - lo) if hi > lo else np.zeros_like(batch)
        out = np.clip(out, 0.0, 1.0)
        return out[:, 0] if channels == 1 else np.moveaxis(out, 1, -1)


def _one_image(image: Any, index: int | None, pixels: _Pixels,
               what: str = "image") -> np.ndarray:
    """One image in any common layout -> (H, W) grey or (H, W, 3) RGB in [0, 1]."""
    arr = to_numpy(image, what)
    if arr.ndim == 4:
        if arr.shape[0] > 1 and index is None:
            raise ValueError(
                f"{what} is a batch of {arr.shape[0]} images {tuple(arr.shape)}; pass "
                f"index= to choose one, or pass {what}[i]"
            )
        arr, _ = _pick(arr, index, what)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3 and arr.shape[0] not in (1, 3) and arr.shape[-1] in (1, 3):
        arr = np.moveaxis(arr, -1, 0)  # (H, W, C) as PIL and numpy users hold images
    if arr.ndim != 3 or arr.shape[0] not in (1, 3):
        raise ValueError(
            f"{what} must be one image of shape (1, H, W), (3, H, W) or (H, W) "
            f"(or a batch with index=), got shape {tuple(np.shape(image))}"
        )
    return pixels(arr[None])[0]


def _input_image(image: Any, index: int | None, pixels: _Pixels) -> np.ndarray:
    """The input shown beside maps: a batch is indexed like the maps (a batch of one
    is taken whole), a single image is used as it is."""
    arr = to_numpy(image, "image")
    if arr.ndim == 4:
        arr, _ = _pick(arr, 0 if arr.shape[0] == 1 else index, "image")
    return _one_image(arr, None, pixels)


def _labels_list(values: Any, n: int, what: str) -> list[int] | None:
    if values is None:
        return None
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    elif isinstance(values, np.ndarray):
        values = values.reshape(-1).tolist()
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{what} has {len(values)} entries but there are {n} images")
    return [int(v) for v in values]


def _check_norm(norm: str, allowed: Sequence[str]) -> str:
    if norm not in allowed:
        raise ValueError(f"norm must be one of {', '.join(map(repr, allowed))}, got {norm!r}")
    return norm


def _is_dead(m: np.ndarray) -> bool:
    return m.size > 0 and not np.any(m != 0)


# --------------------------------------------------------------------------- layout

@dataclass
class _Panel:
    """One small axes of a grid."""

    axes_label: str
    label: str = ""
    data: np.ndarray | None = None  # (H, W), or (H, W, 3|4) colour
    cmap: str | None = None
    vmin: float | None = None
    vmax: float | None = None
    color: str = TEXT_COLOR
    dead: bool = False
    under: np.ndarray | None = None  # image drawn below data (overlays)
    colorbar: tuple[str, float, float] | None = None  # small bar below the panel


@dataclass
class _Block:
    """A titled grid of panels, with an optional colour bar on its right."""

    panels: list[_Panel]
    rows: int
    cols: int
    title: str = ""
    colorbar: tuple[str, float, float, str] | None = None  # cmap, vmin, vmax, label
    aspect: float = 1.0  # panel height / width
    labels: bool = True
    label_size: float = 8.0


_IN = dict(margin=0.14, title=0.34, subtitle=0.24, block_title=0.3, block_gap=0.22,
           image_gap=0.35, cbar_gap=0.14, cbar_w=0.13, cbar_text=0.62,
           pcbar=0.1, pcbar_text=0.3)


#: the smallest panel, in inches: a 5 x 5 kernel or a 28 x 28 map still reads at this size
MIN_PANEL = 0.5


def _panel_size(max_cols: int, limit: float = 1.25) -> float:
    # about 7.5 inches of panels: with the input and the colour bar the figure
    # stays near 10 inches, the width of a notebook cell, so text is not shrunk;
    # a row of more than 13 panels makes the figure wider rather than the panels tiny
    return float(np.clip(7.5 / max_cols - 0.05, MIN_PANEL, max(limit, MIN_PANEL)))


def _compose(
    blocks: list[_Block],
    *,
    panel: float,
    title: str = "",
    subtitle: str = "",
    image: np.ndarray | None = None,
    image_title: str = "input",
    shared_colorbar: tuple[str, float, float, str] | None = None,
) -> Figure:
    """Lay out blocks of panels (top to bottom) with an input image on the left.

    All sizes are worked out in inches, so a panel has the same size whatever
    the number of panels and the text never overlaps; positions are then
    converted to figure fractions for ``add_axes`` (cheaper than gridspecs or
    layout engines, which matters for 512 panels).
    """
    gap = max(0.045, 0.07 * panel)

    # vertical layout, in inches from the top
    y = _IN["margin"]
    title_y = subtitle_y = None
    if title:
        title_y = y
        y += _IN["title"]
    if subtitle:
        subtitle_y = y
        y += _IN["subtitle"]
    placed, y = _place_blocks(blocks, y + 0.04, panel, gap)
    grid_top, grid_bottom = placed[0][2][0][0], y
    height = y + _IN["margin"]

    # horizontal layout
    x = _IN["margin"]
    image_x = image_size = 0.0  # the input picture's place, when there is one
    if image is not None:
        image_size = float(np.clip(0.5 * (grid_bottom - grid_top), 1.1, 2.0))
        image_size = min(image_size, max(grid_bottom - grid_top, 1.0))
        image_x = x
        x += image_size + _IN["image_gap"]
    grid_x = x
    grid_w = max(b.cols * panel + (b.cols - 1) * gap for b in blocks)
    x += grid_w
    cbar_x = x + _IN["cbar_gap"]  # the colour bar's place, when there is one
    if shared_colorbar or any(b.colorbar for b in blocks):
        x = cbar_x + _IN["cbar_w"] + _IN["cbar_text"]
    else:
        x += _IN["margin"]
    width = max(x, 3.2)
    if image is not None:
        height = max(height, grid_top + image_size + 0.3 + _IN["margin"])

    fig = Figure(figsize=(width, height), dpi=100, facecolor="white")

    def rect(x0: float, top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (x0 / width, 1.0 - (top + h) / height, w / width, h / height)

    if title_y is not None:
        fig.text(_IN["margin"] / width, 1 - title_y / height, title, ha="left", va="top",
                 fontsize=12, fontweight="bold", color=TEXT_COLOR)
    if subtitle_y is not None:
        fig.text(_IN["margin"] / width, 1 - subtitle_y / height, subtitle, ha="left",
                 va="top", fontsize=8.5, color=MUTED_COLOR)

    for block, btitle_y, row_tops in placed:
        if btitle_y is not None:
            fig.text(grid_x / width, 1 - btitle_y / height, block.title, ha="left",
                     va="top", fontsize=10, fontweight="bold", color=TEXT_COLOR)
        for i, p in enumerate(block.panels):
            r, c = divmod(i, block.cols)
            top, ph = row_tops[r]
            ax = fig.add_axes(rect(grid_x + c * (panel + gap), top, panel, ph),
                              label=p.axes_label)
            _draw_panel(ax, p, block.label_size)
            if p.colorbar is not None:
                cax = fig.add_axes(rect(grid_x + c * (panel + gap) + 0.1 * panel,
                                        top + ph + 0.06, 0.8 * panel, _IN["pcbar"]),
                                   label="colorbar")
                _colorbar(fig, cax, *p.colorbar, orientation="horizontal", label="")
        if block.colorbar is not None and shared_colorbar is None:
            btop = row_tops[0][0]
            bbottom = row_tops[-1][0] + row_tops[-1][1]
            _block_colorbar(fig, rect, cbar_x, btop, bbottom, block.colorbar)
    if shared_colorbar is not None:
        _block_colorbar(fig, rect, cbar_x, grid_top, grid_bottom, shared_colorbar)

    if image is not None:
        centre = 0.5 * (grid_top + grid_bottom)
        itop = max(grid_top, centre - 0.5 * image_size)
        ax = fig.add_axes(rect(image_x, itop, image_size, image_size), label="input")
        _draw_panel(ax, _Panel(axes_label="input", label=image_title, data=image,
                               cmap=IMAGE_CMAP, vmin=0.0, vmax=1.0), 9.0)
    return fig


def _place_blocks(blocks: list[_Block], y: float, panel: float, gap: float
                  ) -> tuple[list[tuple[_Block, float | None, list[tuple[float, float]]]], float]:
    """Blocks stacked from ``y`` (inches from the top): for each, its title's y
    and its rows' (top, height); and the y where the last block ends."""
    placed = []
    for bi, block in enumerate(blocks):
        btitle_y = None
        if block.title:
            btitle_y = y
            y += _IN["block_title"]
        row_tops = []
        ph = panel * block.aspect
        has_pcbar = any(p.colorbar for p in block.panels)
        for r in range(block.rows):
            y += 0.2 if block.labels else 0.0
            row_tops.append((y, ph))
            y += ph
            if has_pcbar:
                y += 0.06 + _IN["pcbar"] + _IN["pcbar_text"]
            if r < block.rows - 1:
                y += gap
        placed.append((block, btitle_y, row_tops))
        if bi < len(blocks) - 1:
            y += _IN["block_gap"]
    return placed, y


def _block_colorbar(fig: Figure, rect: Callable, x: float, top: float, bottom: float,
                    spec: tuple[str, float, float, str]) -> None:
    h = bottom - top
    ch = min(h, 4.0) if h > 0.6 else h
    cax = fig.add_axes(rect(x, top + 0.5 * (h - ch), _IN["cbar_w"], ch), label="colorbar")
    _colorbar(fig, cax, spec[0], spec[1], spec[2], orientation="vertical", label=spec[3])


def _colorbar(fig: Figure, cax: Any, cmap: str, vmin: float, vmax: float, *,
              orientation: str, label: str) -> None:
    sm = ScalarMappable(norm=Normalize(vmin=vmin, vmax=vmax), cmap=cmap)
    cb = fig.colorbar(sm, cax=cax, orientation=orientation)
    cb.outline.set_linewidth(0.5)
    cb.outline.set_edgecolor(FRAME_COLOR)
    cax.tick_params(labelsize=7, length=2, width=0.5, pad=1.5, colors=MUTED_COLOR)
    if orientation == "horizontal":
        cb.set_ticks([vmin, vmax])
        cb.set_ticklabels([fmt(vmin), fmt(vmax)])
        # the end labels point inwards, so the bars of neighbouring panels do not collide
        for text, ha in zip(cax.get_xticklabels(), ("left", "right")):
            text.set_horizontalalignment(ha)
    if label:
        cb.set_label(label, fontsize=8, color=MUTED_COLOR, labelpad=3)
    cax.set_label("colorbar")


def _draw_panel(ax: Any, p: _Panel, label_size: float) -> None:
    ax.xaxis.set_visible(False)
    ax.yaxis.set_visible(False)
    for spine in ax.spines.values():
        spine.set_linewidth(0.5)
        spine.set_edgecolor(FRAME_COLOR)
    if p.label:
        ax.set_title(p.label, fontsize=label_size, pad=2.5, color=p.color)
    if p.dead:
        ax.set_facecolor(DEAD_FACE)
        ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, fill=False,
                               hatch="////", edgecolor=DEAD_HATCH, linewidth=0))
        ax.text(0.5, 0.5, "dead", transform=ax.transAxes, ha="center", va="center",
                fontsize=max(5.0, label_size - 0.5), color=MUTED_COLOR)
        return
    if p.under is not None:
        grey = p.under.ndim == 2
        ax.imshow(p.under, cmap=IMAGE_CMAP if grey else None, vmin=0.0, vmax=1.0,
                  interpolation="nearest")
    if p.data is not None:
        ax.imshow(p.data, cmap=p.cmap if p.data.ndim == 2 else None, vmin=p.vmin,
                  vmax=p.vmax, interpolation="nearest")


def _map_panels(
    maps: np.ndarray,
    channels: Sequence[int],
    *,
    norm: str,
    cmap: str | None,
    spec: tuple[str, float, float],
    kind: str = "channel",
    labels: bool = True,
    show_range: bool = False,
) -> list[_Panel]:
    """Panels for ``maps[i]`` (already selected), labelled by ``channels[i]``.

    ``spec`` is the shared ``(cmap, vmin, vmax)``; per-map limits keep its centring.
    """
    name, vmin, vmax = spec
    signed = vmin < 0
    if norm == "per-map":
        lows, highs = limits(maps, "per-map", cmap=SIGNED_CMAP if signed else POSITIVE_CMAP)
    else:
        lows, highs = np.full(len(maps), vmin), np.full(len(maps), vmax)
    panels = []
    for m, ch, lo, hi in zip(maps, channels, lows.tolist(), highs.tolist()):
        p = _Panel(axes_label=f"{kind} {ch}", label=str(ch) if labels else "")
        if _is_dead(m):
            p.dead = True
        else:
            p.data, p.cmap, p.vmin, p.vmax = m, cmap or name, lo, hi
            if norm == "per-map" and show_range and labels:
                p.label = f"{ch}  " + (f"±{fmt(hi)}" if signed else f"≤{fmt(hi)}")
        panels.append(p)
    return panels


# --------------------------------------------------------------------------- public

def plot_feature_maps(
    maps: Array,
    index: int | None = None,
    *,
    image: Array | None = None,
    norm: str = "shared",
    cmap: str | None = None,
    top_k: int | None = None,
    channels: Sequence[int] | None = None,
    ncols: int | None = None,
    title: str | None = None,
    mean: Stats = None,
    std: Stats = None,
    max_channels: int = 1024,
) -> Figure:
    """One image's feature maps as a grid, one panel per channel.

    Parameters
    ----------
    maps : (C, H, W) maps of one image, or an (N, C, H, W) batch with ``index``
        (default 0). A torch tensor on any device (detached for you) or an array.
    index : which image of a batch to show.
    image : the input image, shown on the left: (1, H, W), (3, H, W), (H, W) or
        the (N, ...) batch the maps came from (then ``index`` picks it too).
    norm : ``"shared"`` - one colour scale for all maps, with a colour bar, so
        maps can be compared; ``"per-map"`` - each map stretched to its own
        range (shows the pattern of weak maps; the range is in the label).
    cmap : colour map name; default from :func:`choose_cmap` (diverging for
        signed maps, sequential for non-negative ones).
    top_k : show only the ``k`` channels with the highest mean activation, most
        active first, labelled with their real channel numbers.
    channels : show only these channel numbers, in this order.
    ncols : number of columns; default from :func:`grid_shape`.
    title : figure title; a grey line under it always says what is shown
        (counts, size, scale, dead channels).
    mean, std : the normalisation to undo to show ``image`` (see :func:`plot_images`).
    max_channels : above this many channels only the ``max_channels`` most active
        are drawn (the subtitle says so), since thousands of panels help no one.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> acts = featviz.activations(model, images, ["conv1"])
    >>> fig = plot_feature_maps(acts["conv1"], index=3, image=images,
    ...                         mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    >>> sum(ax.get_label().startswith("channel") for ax in fig.axes)
    16
    """
    norm = _check_norm(norm, ("shared", "per-map"))
    pixels = _Pixels.make(mean, std)
    arr, note = _select_maps(maps, index)
    num, height, width = arr.shape
    if num == 0:
        raise ValueError(f"maps has no channels (shape {tuple(arr.shape)})")
    order, how = _pick_channels(arr, channels, top_k, max_channels)
    shown = arr[order]
    rows, cols = grid_shape(len(order), ncols)
    panel = _panel_size(cols)
    labels = len(order) <= 128 or panel >= 0.45
    spec = color_scale(shown)
    panels = _map_panels(shown, order, norm=norm, cmap=cmap, labels=labels,
                         spec=spec, show_range=panel >= 0.75)
    dead = sum(p.dead for p in panels)

    bits = [how or (f"{num} channels" if num > 1 else "1 channel"), f"{height}×{width} each"]
    bits.append("shared colour scale" if norm == "shared" else "each map on its own scale")
    if dead:
        bits.append(f"{dead} dead (zero everywhere)")
    if note:
        bits.append(note)
    if not labels:
        bits.append("channel 0 top left, in reading order")
    colorbar = None
    if norm == "shared":
        colorbar = (cmap or spec[0], spec[1], spec[2], "activation")
    block = _Block(panels, rows, cols, colorbar=colorbar, aspect=_aspect(height, width),
                   labels=labels, label_size=_label_size(panel))
    shown_image = None if image is None else _input_image(image, index, pixels)
    return _compose([block], panel=panel,
                    title="Feature maps" if title is None else title,
                    subtitle=" · ".join(bits), image=shown_image)


def _channel_order(channels: Any, num: int, where: str = "") -> list[int]:
    """``channels`` as a list of ints, each a channel of ``num``; ValueError otherwise."""
    order = [int(c) for c in channels]
    if not order or any(not 0 <= c < num for c in order):
        raise ValueError(
            f"channels must be a non-empty list of channel numbers 0 to {num - 1}{where}, "
            f"got {list(channels)!r}"
        )
    return order


def _pick_channels(arr: np.ndarray, channels: Sequence[int] | None, top_k: int | None,
                   max_channels: int) -> tuple[list[int], str]:
    """The channels to draw, in order, and how they were chosen (for the subtitle)."""
    num = arr.shape[0]
    if channels is not None and top_k is not None:
        raise ValueError("pass either channels= or top_k=, not both")
    if channels is not None:
        order = _channel_order(channels, num)
        if len(order) <= 6:
            return order, f"channels {', '.join(map(str, order))}"
        return order, f"{len(order)} chosen channels"
    k = top_k
    if k is None and num > max_channels:
        k = max_channels
    if k is None:
        return list(range(num)), ""
    k = min(positive_int(k, "top_k"), num)
    means = np.nan_to_num(arr.reshape(num, -1).mean(axis=1), nan=-np.inf)
    order = [int(i) for i in np.argsort(-means, kind="stable")[:k]]
    return order, f"top {k} of {num} channels by mean activation"


def _aspect(height: int, width: int) -> float:
    return float(np.clip(height / max(width, 1), 0.25, 4.0))


def _label_size(panel: float) -> float:
    return float(np.clip(panel * 72 * 0.11, 6.5, 9.0))


def plot_filters(
    weight: Array | nn.Module,
    *,
    in_channel: int | None = None,
    rgb: bool | None = None,
    norm: str = "shared",
    cmap: str | None = None,
    ncols: int | None = None,
    title: str | None = None,
) -> Figure:
    """A convolution's kernels, one panel per output channel (filter).

    Parameters
    ----------
    weight : (out, in, kh, kw) kernels, or the ``nn.Conv2d`` itself
        (``model.conv1``).
    in_channel : for layers with several input channels, show the kernel slice
        that reads this input channel; by default the kernels are averaged over
        their inputs (the subtitle says which).
    rgb : for 3 input channels, show each kernel as a colour image (default when
        ``in == 3`` and ``in_channel`` is None).
    norm : ``"shared"`` (one symmetric scale, with a colour bar) or ``"per-map"``.
    cmap : default :data:`SIGNED_CMAP`, centred at zero: red weights add to the
        response where the image is bright, blue ones subtract.

    >>> fig = plot_filters(model.conv2, in_channel=3)   # or plot_filters(model.conv1)
    >>> fig.texts[1].get_text()
    '32 filters · 5×5 kernels, the slice reading input channel 3 of 16 · shared scale'
    """
    norm = _check_norm(norm, ("shared", "per-map"))
    name = ""
    if isinstance(weight, nn.Module):
        name = type(weight).__name__
        w = getattr(weight, "weight", None)
        if not isinstance(w, torch.Tensor):
            raise TypeError(f"{name} has no weight tensor to plot; pass a conv layer such as model.conv1")
        weight = w
    arr = to_numpy(weight, "weight")
    if arr.ndim != 4:
        hint = (" This looks like a Linear layer's (out, in) weight, which has no kernels to draw."
                if arr.ndim == 2 else "")
        raise ValueError(
            f"weight must be conv kernels of shape (out, in, kh, kw), got shape "
            f"{tuple(arr.shape)}.{hint}"
        )
    n_out, n_in, kh, kw = arr.shape
    if in_channel is not None:
        if isinstance(in_channel, bool) or not isinstance(in_channel, (int, np.integer)) \
                or not 0 <= in_channel < n_in:
            raise ValueError(f"in_channel must be an input channel 0 to {n_in - 1}, got {in_channel!r}")
        rgb = False
    use_rgb = (n_in == 3 and in_channel is None) if rgb is None else bool(rgb)
    if use_rgb and n_in != 3:
        raise ValueError(f"rgb=True needs kernels with 3 input channels, these have {n_in}")

    if n_in == 1:
        kernels, what = arr[:, 0], f"{kh}×{kw} kernels"
    elif in_channel is not None:
        kernels, what = arr[:, in_channel], f"{kh}×{kw} kernels, the slice reading input channel {in_channel} of {n_in}"
    elif use_rgb:
        kernels, what = arr, f"{kh}×{kw}×3 kernels in colour, each scaled to its own range (grey = 0)"
    else:
        kernels, what = arr.mean(axis=1), f"{kh}×{kw} kernels averaged over their {n_in} input channels (in_channel=k shows one)"

    rows, cols = grid_shape(n_out, ncols)
    panel = _panel_size(cols, limit=1.0)
    labels = n_out <= 128 or panel >= 0.45
    colorbar = None
    if use_rgb:
        panels = []
        for i, k in enumerate(kernels):
            p = _Panel(axes_label=f"filter {i}", label=str(i) if labels else "")
            top = float(np.abs(k).max())
            if top == 0:
                p.dead = True
            else:
                p.data = np.moveaxis(k / (2 * top) + 0.5, 0, -1)
            panels.append(p)
    else:
        # weights are signed by nature: always the diverging scale, even if all happen to be >= 0
        _, lo, hi = color_scale(kernels, SIGNED_CMAP)
        spec = (cmap or SIGNED_CMAP, lo, hi)
        panels = _map_panels(kernels, range(n_out), norm=norm, cmap=spec[0],
                             kind="filter", labels=labels, spec=spec)
        if norm == "shared":
            colorbar = (spec[0], spec[1], spec[2], "weight")
    dead = sum(p.dead for p in panels)
    bits = [f"{n_out} filters", what]
    if not use_rgb:
        bits.append("shared scale" if norm == "shared" else "each on its own scale")
    if dead:
        bits.append(f"{dead} all zero")
    block = _Block(panels, rows, cols, colorbar=colorbar, aspect=_aspect(kh, kw),
                   labels=labels, label_size=_label_size(panel))
    default = f"Filters of {name}" if name else "Filters"
    return _compose([block], panel=panel, title=default if title is None else title,
                    subtitle=" · ".join(bits))


def plot_images(
    images: Array,
    labels: Array | Sequence[int] | None = None,
    predictions: Array | Sequence[int] | None = None,
    *,
    ncols: int | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    mean: Stats = None,
    std: Stats = None,
    max_images: int = 100,
) -> Figure:
    """A grid of images with their true and predicted labels.

    Parameters
    ----------
    images : (N, 1, H, W) or (N, 3, H, W) (or (N, H, W) grey), normalised or in [0, 1].
    labels : N true labels (tensor, array or list), shown above each image.
    predictions : N predicted labels; wrong ones are written in red as
        ``"pred 5 (true 3)"``.
    class_names : names for the label numbers (default: the numbers).
    mean, std : the normalisation the images went through, as given to
        ``transforms.Normalize(mean, std)`` (one value, or one per channel):
        undone for exact pixels. For the course's MNIST: ``featviz.MNIST_MEAN``
        and ``featviz.MNIST_STD``. Without them, images in [0, 1] are shown as
        they are and others are rescaled to [0, 1] over the batch.
    max_images : at most this many are drawn (the first ones); the subtitle says so.

    >>> images, labels = featviz.digit_examples()
    >>> pred, _ = featviz.predict(model, images)
    >>> fig = plot_images(images, labels, pred, mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    >>> fig.texts[1].get_text()
    '10 images · all predicted correctly'
    """
    pixels = _Pixels.make(mean, std)
    arr = to_numpy(images, "images")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4 or arr.shape[1] not in (1, 3):
        raise ValueError(
            f"images must have shape (N, 1, H, W), (N, 3, H, W) or (N, H, W), got "
            f"{tuple(arr.shape)}"
        )
    total = arr.shape[0]
    if total == 0:
        raise ValueError("images is empty (no images to show)")
    truth = _labels_list(labels, total, "labels")
    pred = _labels_list(predictions, total, "predictions")
    n = min(total, positive_int(max_images, "max_images"))
    shown = pixels(arr[:n])

    def name(v: int) -> str:
        return str(class_names[v]) if class_names is not None else str(v)

    rows, cols = grid_shape(n, ncols or (min(n, 10) if n > 8 else None))
    panel = _panel_size(cols, limit=1.2)
    panels = []
    wrong = 0
    for i in range(n):
        p = _Panel(axes_label=f"image {i}", data=shown[i], cmap=IMAGE_CMAP, vmin=0.0, vmax=1.0)
        if pred is not None:
            if truth is None or pred[i] == truth[i]:
                p.label = f"pred {name(pred[i])}"
            else:
                p.label = f"pred {name(pred[i])} (true {name(truth[i])})"
                p.color = WRONG_COLOR
                wrong += 1
        elif truth is not None:
            p.label = name(truth[i])
        panels.append(p)
    bits = [(f"{n} images" if n > 1 else "1 image") if n == total
            else f"first {n} of {total} images"]
    if pred is not None and truth is not None:
        bits.append(f"{wrong} wrong (in red)" if wrong else "all predicted correctly")
    elif truth is not None:
        bits.append("labels above")
    show_labels = truth is not None or pred is not None
    block = _Block(panels, rows, cols, aspect=_aspect(*shown.shape[1:3]), labels=show_labels,
                   label_size=_label_size(panel) + 0.5)
    return _compose([block], panel=panel, title="Images" if title is None else title,
                    subtitle=" · ".join(bits))


def _heatmap(h: Any, size: tuple[int, int], index: int | None, what: str,
             rf: Any = None) -> np.ndarray:
    """A heat map in (h, w), (1, h, w) or (1, 1, h, w) -> (H, W) at the image's size;
    a coarse one placed by the receptive field ``rf`` when given, else stretched."""
    arr = to_numpy(h, what)
    if arr.ndim == 4:
        if arr.shape[0] > 1 and index is None:
            raise ValueError(f"{what} is a batch {tuple(arr.shape)}; pass index= to choose one")
        arr, _ = _pick(arr, index, what)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(
            f"{what} must be one heat map of shape (H, W) or (1, H, W), got {tuple(np.shape(h))}"
        )
    if arr.shape != size and rf is not None:
        from .geometry import place_by_receptive_field

        if tuple(rf.input_size) != size:
            raise ValueError(f"rf is for a {rf.input_size} input, the image is {size}; "
                             "pass the receptive field traced at the image's size")
        arr = place_by_receptive_field(arr, rf).numpy()
    if arr.shape != size:
        # bilinear up (coarse Grad-CAM maps), area-average down: never invent detail
        t = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
        smaller = arr.shape[0] <= size[0] and arr.shape[1] <= size[1]
        t = torch.nn.functional.interpolate(
            t, size=size, mode="bilinear" if smaller else "area",
            **({"align_corners": False} if smaller else {}),
        )
        arr = t[0, 0].numpy()
    return arr


def plot_overlay(
    image: Array,
    heatmap: Array | Mapping[str, Array],
    *,
    index: int | None = None,
    alpha: float = 0.85,
    cmap: str | None = None,
    title: str | None = None,
    mean: Stats = None,
    std: Stats = None,
    colorbar: bool = True,
    ncols: int | None = None,
    rf: Any = None,
) -> Figure:
    """A heat map drawn over the image it explains; a dict gives one panel per map.

    Parameters
    ----------
    image : (1, H, W) grey or (3, H, W) RGB (or (H, W), or a batch with ``index``).
    heatmap : (H, W) or (1, H, W) values - saliency, Grad-CAM, occlusion... -
        upsampled to the image's size when smaller; or a dict ``{title: heatmap}``
        for side-by-side panels, each with its own colour scale.
    alpha : opacity of the strongest values; weak values fade out so the image
        shows through where the map says little.
    cmap : default from :func:`choose_cmap` per map (diverging for signed maps).
    mean, std : the normalisation to undo to show ``image``; see :func:`plot_images`.
    colorbar : a small colour bar under each overlay.
    rf : for coarse maps of one layer, its ``featviz.receptive_field(model, layer)``:
        each unit is then drawn at the centre of its field
        (:func:`featviz.place_by_receptive_field`) instead of stretched edge to edge.

    >>> image = images[3]                                # one digit, normalised
    >>> sal = featviz.saliency(model, image)            # (28, 28)
    >>> cam = featviz.grad_cam(model, image, "conv2")   # (28, 28)
    >>> fig = plot_overlay(image, {"saliency": sal, "Grad-CAM": cam},
    ...                    mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    base = _one_image(image, index, _Pixels.make(mean, std))
    size = tuple(base.shape[:2])
    items = heatmap.items() if isinstance(heatmap, Mapping) else [("", heatmap)]
    panels = [_Panel(axes_label="input", label="input", data=base, cmap=IMAGE_CMAP,
                     vmin=0.0, vmax=1.0)]
    from matplotlib import colormaps

    # under a heat map the image is toned down, so the colours stay readable on
    # bright strokes while the shape still shows
    dimmed = 0.12 + 0.45 * base
    for name, h in items:
        what = f"heatmap[{name!r}]" if name else "heatmap"
        arr = _heatmap(h, size, index, what, rf)
        cname, vmin, vmax = color_scale(arr)
        cname = cmap or cname
        strength = np.nan_to_num(np.abs(arr) / max(abs(vmin), abs(vmax)), nan=0.0)
        rgba = colormaps[cname](Normalize(vmin=vmin, vmax=vmax)(arr))
        rgba[..., 3] = alpha * np.clip(strength, 0.0, 1.0) ** 0.7
        panels.append(_Panel(axes_label=f"overlay {name}".rstrip(), label=str(name),
                             data=rgba, under=dimmed,
                             colorbar=(cname, vmin, vmax) if colorbar else None))
    count = len(panels)
    rows, cols = grid_shape(count, ncols or count)
    panel = _panel_size(cols, limit=1.9)
    block = _Block(panels, rows, cols, aspect=_aspect(*size), labels=True,
                   label_size=_label_size(panel) + 1)
    n_maps = count - 1
    bits = [f"{n_maps} heat map{'s' if n_maps > 1 else ''} over the image",
            "each on its own scale" if n_maps > 1 else "", "faint where the map is weak"]
    return _compose([block], panel=panel, title="Where the model looks" if title is None else title,
                    subtitle=" · ".join(b for b in bits if b))


def plot_comparison(
    entries: Mapping[str, Array],
    index: int | None = None,
    *,
    image: Array | None = None,
    norm: str = "row",
    cmap: str | None = None,
    channels: Sequence[int] | None = None,
    ncols: int | None = None,
    title: str | None = None,
    mean: Stats = None,
    std: Stats = None,
) -> Figure:
    """Several sets of maps side by side, one titled row (block) per entry.

    For "untrained vs trained", or "conv vs ReLU vs pool" for one image.

    Parameters
    ----------
    entries : ``{title: maps}`` with maps (C, H, W), or (N, C, H, W) with ``index``.
        Entries may differ in channels and size.
    norm : ``"row"`` - each entry its own colour scale and bar (the default: the
        range of conv1 before and after training differs a lot); ``"shared"`` -
        one scale for all, to compare magnitudes; ``"per-map"`` - every map its own.
    channels : show only these channel numbers in every entry.
    ncols : panels per row (default: all channels in one row, up to 16).
    image : the input image, shown on the left.
    mean, std : the normalisation to undo to show ``image``; see :func:`plot_images`.

    >>> acts = featviz.activations(model, images, ["conv1", "relu1", "pool1"])
    >>> fig = plot_comparison({"conv1": acts["conv1"], "relu1": acts["relu1"],
    ...                        "pool1": acts["pool1"]}, index=0, image=images,
    ...                       channels=[0, 1, 2, 3])
    >>> [ax.get_label() for ax in fig.axes].count("colorbar")   # one scale per row
    3
    """
    norm = _check_norm(norm, ("row", "shared", "per-map"))
    pixels = _Pixels.make(mean, std)
    if not isinstance(entries, Mapping) or not entries:
        raise TypeError(
            f"entries must be a non-empty dict {{title: maps}}, got {type(entries).__name__}"
        )
    selected = []
    for name, maps in entries.items():
        arr, note = _select_maps(maps, index, what=f"entries[{name!r}]")
        num = arr.shape[0]
        order = list(range(num))
        if channels is not None:
            order = _channel_order(channels, num, f" in entries[{name!r}]")
        selected.append((str(name), arr[order], order, note))
    counts = {len(o) for _, _, o, _ in selected}
    max_count = max(counts)
    cols_default = min(max_count, 16) if ncols is None else ncols
    panel = _panel_size(min(cols_default, max_count), limit=1.1)
    shared_spec = None
    if norm == "shared":
        shared_spec = color_scale(np.concatenate([a.reshape(-1) for _, a, _, _ in selected]))
    blocks = []
    dead_total = 0
    for name, arr, order, _ in selected:
        rows, cols = grid_shape(len(order), min(cols_default, len(order)))
        spec = shared_spec or color_scale(arr)
        # every set of maps carries its channel numbers: the text may point at any of them
        labels = len(order) <= 128 or panel >= 0.45
        panels = _map_panels(arr, order, norm="per-map" if norm == "per-map" else "shared",
                             cmap=cmap, labels=labels, spec=spec)
        dead = sum(p.dead for p in panels)
        dead_total += dead
        colorbar = None if norm == "per-map" else (cmap or spec[0], spec[1], spec[2], "value")
        btitle = name + (f"  ({dead} dead)" if dead else "")
        blocks.append(_Block(panels, rows, cols, title=btitle, colorbar=colorbar,
                             aspect=_aspect(*arr.shape[1:]), labels=labels,
                             label_size=_label_size(panel)))
    shared_bar = None
    if shared_spec is not None:
        shared_bar = (cmap or shared_spec[0], shared_spec[1], shared_spec[2], "value")
    scale = {"row": "each set of maps on its own colour scale",
             "shared": "one colour scale for all", "per-map": "each map on its own scale"}[norm]
    bits = [scale]
    if dead_total:
        bits.append("dead = zero everywhere")
    if selected[0][3]:
        bits.append(selected[0][3])
    shown_image = None if image is None else _input_image(image, index, pixels)
    return _compose(blocks, panel=panel, title="" if title is None else title,
                    subtitle=" · ".join(bits), image=shown_image, shared_colorbar=shared_bar)


# --------------------------------------------------------------------------- top-activating inputs

def _top_rows(tops: Any, channels: Sequence[int] | None) -> list[Any]:
    """``tops`` (one result or ``{channel: result}``) -> the results to draw, in order."""
    if hasattr(tops, "patches") and hasattr(tops, "scores"):
        tops = {int(tops.channel): tops}
    if not isinstance(tops, Mapping) or not tops or not all(
            hasattr(t, "patches") and hasattr(t, "scores") for t in tops.values()):
        raise TypeError(
            f"tops must be what featviz.top_activating returns (a TopActivations, or a dict "
            f"{{channel: TopActivations}}), got {type(tops).__name__}")
    order = list(tops) if channels is None else [int(c) for c in channels]
    missing = [c for c in order if c not in tops]
    if missing or not order:
        raise ValueError(f"channels {missing or order!r} are not in tops, which holds channels "
                         f"{sorted(tops)}; scan them with top_activating(..., channel=None)")
    return [tops[c] for c in order]


def _first_panel(first: Any, channel: int, label: str, score: Any) -> _Panel:
    """The compared item of one row: a layer's filter (signed weights) or an image."""
    p = _Panel(axes_label=f"channel {channel} {label}")
    p.label = label if score is None else f"{label} · {fmt(score, 3)}"
    if isinstance(first, nn.Module):
        weight = cast(torch.Tensor, first.weight)  # a tensor: plot_top_activating checks it
        k = to_numpy(weight[channel], "first.weight")   # (in, kh, kw)
        k = k.mean(axis=0) if k.shape[0] != 3 else k
        top = float(np.abs(k).max()) or 1.0
        if k.ndim == 3:   # RGB kernel: grey is zero, as in plot_filters
            p.data = np.moveaxis(k / (2 * top) + 0.5, 0, -1)
        else:
            p.data, p.cmap, p.vmin, p.vmax = k, SIGNED_CMAP, -top, top
    return p


def _top_pixels(rows: list, first: Any, whole: bool, mean: Stats,
                std: Stats) -> list[list[np.ndarray]]:
    """Each row's images (the first column's images first, if any) as display pixels: every
    image of the figure through one normalisation, so the rows compare."""
    shown = [list(t.images) if whole else list(t.patches) for t in rows]
    if first is not None and not isinstance(first, nn.Module):
        for t, row in zip(rows, shown):
            row.insert(0, first[t.channel])
    flat = [to_numpy(im, "image") for row in shown for im in row]
    joined = _Pixels.make(mean, std)(np.concatenate([a.reshape(a.shape[0], 1, 1, -1) for a in flat],
                                                    axis=-1).transpose(1, 0, 2, 3))[0, 0]
    cuts = np.cumsum([0] + [a[0].size for a in flat])
    each = iter([joined[a:b].reshape(*im.shape[1:], *joined.shape[1:]) for a, b, im
                 in zip(cuts[:-1], cuts[1:], flat)])
    return [[next(each) for _ in row] for row in shown]


def _top_titles(fig: Figure, size: tuple[float, float], rows: list, whole: bool,
                first_label: str | None, title: str | None) -> None:
    """The title and the subtitle of :func:`plot_top_activating` (``first_label`` None: no
    first column)."""
    width, height = size
    what = "whole images, the winning unit's field boxed" if whole else "receptive-field patches"
    fig.text(_IN["margin"] / width, 1 - _IN["margin"] / height,
             f"{rows[0].layer}: the inputs that excite each channel most" if title is None else title,
             ha="left", va="top", fontsize=12, fontweight="bold", color=TEXT_COLOR)
    bits = [f"{len(rows)} channel{'s' if len(rows) > 1 else ''}", what + ", best first",
            "above each: label · score"]
    if first_label is not None:
        bits.insert(1, f"first column: {first_label}")
    fig.text(_IN["margin"] / width, 1 - (_IN["margin"] + _IN["title"]) / height, " · ".join(bits),
             ha="left", va="top", fontsize=8.5, color=MUTED_COLOR)


def _top_images(fig: Figure, rects: list, t: Any, images: list, size: float, whole: bool) -> None:
    """One row's top inputs, best first, at ``rects``; ``whole``: the winning unit's
    receptive field boxed in orange."""
    labs = [None] * len(images) if t.labels is None else t.labels.tolist()
    for i, (im, score, lab, where) in enumerate(zip(images, t.scores.tolist(), labs, rects)):
        p = _Panel(axes_label=f"channel {t.channel} top {i}", data=im, cmap=IMAGE_CMAP,
                   vmin=0.0, vmax=1.0, label=fmt(score, 3) if lab is None else f"{lab} · {fmt(score, 3)}")
        ax = fig.add_axes(where, label=p.axes_label)
        _draw_panel(ax, p, size)
        if whole:
            b_top, b_left, b_bottom, b_right = t.boxes[i].tolist()
            ax.add_patch(Rectangle((b_left - 0.5, b_top - 0.5), b_right - b_left,
                                   b_bottom - b_top, fill=False, edgecolor="tab:orange",
                                   linewidth=1.5))


def plot_top_activating(
    tops: Any,
    channels: Sequence[int] | None = None,
    *,
    first: Any = None,
    first_label: str | None = None,
    first_scores: Any = None,
    whole: bool = False,
    mean: Stats = None,
    std: Stats = None,
    title: str | None = None,
) -> Figure:
    """What excites channels most: one row per channel, its top inputs best first.

    Draws what :func:`featviz.top_activating` found. Each row is named by its
    channel on the left; each panel is titled ``label · score`` (the image's
    label and the channel's strongest response in it). An optional first column,
    set apart by a line, holds something to compare with the real inputs.

    Parameters
    ----------
    tops : a ``TopActivations``, or the ``{channel: TopActivations}`` that
        ``top_activating`` returns for several channels.
    channels : the rows to draw, in this order (default: every channel of ``tops``).
    first : the first column: a conv layer (``model.conv1``), whose filter for
        each channel is drawn in red (positive weight) and blue (negative), each
        on its own symmetric scale; or images indexed by channel number (a tensor
        ``(channels, C, h, w)`` or ``{channel: (C, h, w)}``), such as the synthetic
        inputs of ``maximize_activation`` cropped to the receptive field.
    first_label : the first column's heading (default ``"filter"`` for a layer,
        ``"synthetic"`` for images); ``first_scores`` its scores, indexed by channel.
    whole : draw the whole images with the winning unit's receptive field boxed
        in orange, instead of the cropped patches.
    mean, std : the normalisation to undo; see :func:`plot_images`.

    >>> tops = featviz.top_activating(model, (images, labels), "conv2", [3, 5], k=4)
    >>> fig = plot_top_activating(tops, mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    >>> [t.get_text() for t in fig.texts[2:]]   # after the title and subtitle: the rows
    ['ch 3', 'ch 5']
    """
    rows = _top_rows(tops, channels)
    if whole and any(t.boxes is None for t in rows):
        raise ValueError(f"whole=True draws each winning unit's box, but layer {rows[0].layer!r} "
                         f"has no boxes (no spatial maps); use whole=False")
    if first_label is None:
        first_label = "filter" if isinstance(first, nn.Module) else "synthetic"
    if isinstance(first, nn.Module) and not isinstance(getattr(first, "weight", None), torch.Tensor):
        raise TypeError(f"first is a {type(first).__name__} without weights; pass a conv "
                        f"layer such as model.conv1, or images")
    pix = _top_pixels(rows, first, whole, mean, std)
    k = max(len(t.scores) for t in rows)
    extra = 0 if first is None else 1
    panel = _panel_size(k + extra, limit=1.1)
    gap, label_w, sep = max(0.045, 0.07 * panel), 0.45, 0.22 if extra else 0.0
    top0 = _IN["margin"] + _IN["title"] + _IN["subtitle"] + 0.04
    width = _IN["margin"] + label_w + (k + extra) * (panel + gap) + sep + _IN["margin"]
    height = top0 + len(rows) * (0.2 + panel + gap) + _IN["margin"]
    fig = Figure(figsize=(max(width, 3.2), height), dpi=100, facecolor="white")
    width = max(width, 3.2)

    def rect(x0: float, top: float) -> tuple[float, float, float, float]:
        return (x0 / width, 1.0 - (top + panel) / height, panel / width, panel / height)

    _top_titles(fig, (width, height), rows, whole, first_label if extra else None, title)
    size = _label_size(panel) + 0.5
    x_grid = _IN["margin"] + label_w
    for r, (t, row) in enumerate(zip(rows, pix)):
        top = top0 + r * (0.2 + panel + gap) + 0.2
        fig.text((x_grid - 0.08) / width, 1 - (top + panel / 2) / height, f"ch {t.channel}",
                 ha="right", va="center", fontsize=size + 0.5, fontweight="bold", color=TEXT_COLOR)
        if extra:
            score = None if first_scores is None else float(first_scores[t.channel])
            p = _first_panel(first, t.channel, first_label, score)
            if p.data is None:
                p.data, p.cmap, p.vmin, p.vmax = row[0], IMAGE_CMAP, 0.0, 1.0
            _draw_panel(fig.add_axes(rect(x_grid, top), label=p.axes_label), p, size)
        images = row[1:] if extra and not isinstance(first, nn.Module) else row
        _top_images(fig, [rect(x_grid + (extra + i) * (panel + gap) + sep, top)
                          for i in range(len(images))], t, images, size, whole)
    if extra:
        from matplotlib.lines import Line2D

        x = (x_grid + panel + gap / 2 + sep / 2) / width
        fig.add_artist(Line2D([x, x], [1 - (top0 + 0.1) / height, _IN["margin"] / height],
                              color=MUTED_COLOR, linewidth=1.0, label="separator"))
    return fig


# --------------------------------------------------------------------------- attribution grids

def _batch_maps(maps: Any, n: int, what: str) -> np.ndarray:
    """``(N, h, w)`` or ``(N, 1, h, w)`` maps of a batch of ``n`` images -> ``(N, h, w)``."""
    arr = to_numpy(maps, what)
    if arr.ndim == 4 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 3 or arr.shape[0] != n:
        raise ValueError(
            f"{what} must hold one map per image, shape ({n}, H, W), got "
            f"{tuple(np.shape(arr))}; pass what saliency, grad_cam or occlusion return "
            f"for the same batch")
    return arr


def plot_attribution_grid(
    images: Array,
    rows: Mapping[str, Array],
    titles: Sequence[str] | None = None,
    *,
    scale: str = "per-map",
    alpha: float = 0.85,
    mean: Stats = None,
    std: Stats = None,
    title: str | None = None,
    rf: Any = None,
) -> Figure:
    """Attribution maps of a batch over their images: one column per image, one row per map.

    The top row shows the images; under them, each entry of ``rows`` is a titled
    row of heat maps drawn over the image they explain (the image toned down,
    the map faint where it is weak), with colour bars: a good way to compare
    methods, or models, on several inputs at once.

    Parameters
    ----------
    images : ``(N, C, H, W)`` (or ``(N, H, W)``) model inputs, ``C`` 1 or 3.
    rows : ``{name: maps}``, maps ``(N, H, W)`` - what ``featviz.saliency``,
        ``grad_cam`` or ``occlusion`` return for the batch - or coarse ``(N, h, w)``
        maps, stretched over the image (placed by ``rf`` when given).
    titles : N column titles, shown above the images.
    scale : ``"per-map"`` (default): every map on its own colour scale, with a
        small bar under it; ``"row"``: one scale for each row, its bar on the
        right, to compare magnitudes across images.
    alpha : opacity of the strongest values.
    mean, std : the normalisation to undo to show the images; see :func:`plot_images`.
    rf : for coarse maps of one layer, its ``featviz.receptive_field(model, layer)``.

    >>> images, labels = featviz.digit_examples()
    >>> maps = {"Grad-CAM": featviz.grad_cam(model, images[:3], "relu2"),
    ...         "occlusion": featviz.occlusion(model, images[:3])}
    >>> fig = plot_attribution_grid(images[:3], maps, ["0", "1", "2"],
    ...                             mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    >>> sum(ax.get_label() == "colorbar" for ax in fig.axes)   # one bar per map
    6
    """
    if scale not in ("per-map", "row"):
        raise ValueError(f"scale must be 'per-map' or 'row', got {scale!r}")
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    arr = to_numpy(images, "images")
    arr = arr[:, None] if arr.ndim == 3 else arr
    if arr.ndim != 4 or not 1 <= arr.shape[0] <= 24:
        raise ValueError(f"images must be a batch (N, C, H, W) of 1 to 24 images, got shape "
                         f"{tuple(np.shape(images))}; show a larger batch in parts")
    n, size = arr.shape[0], tuple(arr.shape[-2:])
    if not isinstance(rows, Mapping) or not rows:
        raise TypeError(f"rows must be a non-empty dict {{name: maps}}, got {type(rows).__name__}")
    names = None if titles is None else [str(t) for t in titles]
    if names is not None and len(names) != n:
        raise ValueError(f"titles has {len(names)} entries but there are {n} images")
    base = _Pixels.make(mean, std)(arr)
    dimmed = 0.12 + 0.45 * base
    panel = _panel_size(n, limit=1.3)
    panels = [_Panel(axes_label=f"image {j}", label=names[j] if names else "", data=base[j],
                     cmap=IMAGE_CMAP, vmin=0.0, vmax=1.0) for j in range(n)]
    blocks = [_Block(panels, 1, n, aspect=_aspect(*size), labels=names is not None,
                     label_size=_label_size(panel) + 0.5)]
    for name, maps in rows.items():
        what = f"rows[{name!r}]"
        full = np.stack([_heatmap(m, size, None, what, rf) for m in _batch_maps(maps, n, what)])
        shared = color_scale(full) if scale == "row" else None
        panels = []
        for j in range(n):
            cname, vmin, vmax = shared or color_scale(full[j])
            panels.append(_Panel(axes_label=f"overlay {name} {j}", data=_overlay_rgba(
                full[j], cname, vmin, vmax, alpha), under=dimmed[j],
                colorbar=None if shared else (cname, vmin, vmax)))
        bar = (shared[0], shared[1], shared[2], "value") if shared else None
        blocks.append(_Block(panels, 1, n, title=str(name), colorbar=bar,
                             aspect=_aspect(*size), labels=False))
    bits = [f"{n} image{'s' if n > 1 else ''}",
            "each map on its own scale (bar below it)" if scale == "per-map"
            else "one scale per row", "faint where the map is weak"]
    return _compose(blocks, panel=panel, title="Where the model looks" if title is None else title,
                    subtitle=" · ".join(bits))


def _overlay_rgba(arr: np.ndarray, cmap: str, vmin: float, vmax: float,
                  alpha: float) -> np.ndarray:
    """A heat map as RGBA over an image: opaque where strong, fading out where weak."""
    from matplotlib import colormaps

    strength = np.nan_to_num(np.abs(arr) / (max(abs(vmin), abs(vmax)) or 1.0), nan=0.0)
    rgba = colormaps[cmap](Normalize(vmin=vmin, vmax=vmax)(arr))
    rgba[..., 3] = alpha * np.clip(strength, 0.0, 1.0) ** 0.7
    return rgba
