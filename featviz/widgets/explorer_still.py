"""A still picture of the explorer's state, drawn with matplotlib (real fonts), for
readers where widgets do not run (GitHub, nbviewer): the controls' state in
words on top (image, layer, filter, colour scale, view, training moment), then
what the live widget draws - the input beside the grid of numbered maps with the
chosen one framed in green, or the input, the chosen map and its filter - with
the same colour maps and limits (:mod:`featviz._style`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._style import color_scale, fmt, grid_shape, limits

GREEN = "#2e7d32"
DEAD = "#d9d9d9"


def describe(ex: Any) -> list[str]:
    """The explorer's state in words: image, label, prediction, moment; layer, filter, scale."""
    s, d = ex.state, ex.data
    m = ex.activations()[s["layer"]][s["channel"]]
    c, h, w = d.shapes[s["layer"]]
    first = f"image {s['image']}"
    if d.labels is not None:
        first += f" · label {d.class_name(int(d.labels[s['image']]))}"
    first += (f" · layer {s['layer']} · filter {s['channel']} · scale "
              f"{'shared' if s['norm'] == 'shared' else 'per map'} · view "
              f"{'all maps' if s['view'] == 'grid' else 'one map'}")
    if len(d.snapshots) > 1:
        first += f" · training: {d.snapshots[s['snapshot']][0]}"
    changed = ex.perturbation.describe()
    if changed:
        first += f" · input {changed}"
    second = ""
    pred = ex.prediction()
    if pred is not None:
        second = f"predicted {pred[0]} ({100 * pred[1]:.1f}% sure) · "
    second += (f"{s['layer']} ({c} maps {h}×{w}) · filter {s['channel']}: min {fmt(m.min())} · "
               f"max {fmt(m.max())} · mean {fmt(m.mean())} · "
               f"{'shared colour scale' if s['norm'] == 'shared' else 'each map on its own scale'}")
    return [first, second]


def _show(ax: Any, m: np.ndarray, cmap: str, lo: float, hi: float) -> Any:
    ax.set_xticks([])
    ax.set_yticks([])
    if not m.any():
        ax.set_facecolor(DEAD)
        ax.imshow(np.zeros_like(m), cmap=cmap, vmin=lo, vmax=hi, alpha=0.0)
        ax.add_patch(_hatch(m.shape))
        return None
    return ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")


def _hatch(shape: tuple[int, int]) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, -0.5), shape[1], shape[0], fill=False, hatch="///",
                     edgecolor="#9e9e9e", linewidth=0)


def _number(ax: Any, i: int) -> None:
    """The filter number in a tile's corner, readable on any colour."""
    ax.text(0.04, 0.96, str(i), transform=ax.transAxes, fontsize=7, color="white",
            va="top", ha="left", bbox={"facecolor": "black", "alpha": 0.6, "pad": 0.8,
                                       "edgecolor": "none"})


def _input(fig: Any, ex: Any, where: Any) -> None:
    x = ex.input()[0].numpy()
    ax = fig.add_subplot(where, label="input")
    pic = x.transpose(1, 2, 0) if x.shape[0] == 3 else x.mean(0)
    pic = (pic - pic.min()) / (np.ptp(pic) or 1.0)
    ax.imshow(pic, cmap="gray", interpolation="nearest")
    ax.set_title("input", fontsize=10)
    ax.set_axis_off()


def _grid(fig: Any, ex: Any, maps: np.ndarray, s: dict, top: float) -> None:
    n = maps.shape[0]
    rows, cols = grid_shape(n)
    cmap, lo, hi = color_scale(maps)
    los, his = limits(maps, s["norm"])
    side_w = max(1.5, cols / 4)   # the input, beside the grid, about two tiles high or more
    gs = fig.add_gridspec(rows, cols + 2, left=0.02, right=0.93, bottom=0.03, top=top,
                          wspace=0.08, hspace=0.08,
                          width_ratios=[side_w] + [1] * cols + [0.25])
    for i in range(n):
        ax = fig.add_subplot(gs[i // cols, 1 + i % cols], label=f"channel {i}")
        _show(ax, maps[i], cmap, los[i], his[i])
        _number(ax, i)
        for side in ax.spines.values():
            side.set_visible(i == s["channel"])
            side.set_color(GREEN)
            side.set_linewidth(3)
    _input(fig, ex, gs[: min(rows, 2), 0] if rows > 1 else gs[0, 0])
    k = s["channel"]
    bar_lo, bar_hi = (lo, hi) if s["norm"] == "shared" else (los[k], his[k])
    _colorbar(fig, fig.add_subplot(gs[:, cols + 1], label="colorbar"), cmap, bar_lo, bar_hi,
              "activation" if s["norm"] == "shared" else f"filter {k}'s own scale")


def _colorbar(fig: Any, cax: Any, cmap: str, lo: float, hi: float, label: str) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(lo, hi), cmap), cax=cax)
    bar.set_ticks([lo, (lo + hi) / 2, hi], labels=[fmt(lo), fmt((lo + hi) / 2), fmt(hi)])
    bar.set_label(label, fontsize=9)


def _single(fig: Any, ex: Any, maps: np.ndarray, s: dict, top: float) -> None:
    k = s["channel"]
    cmap, _, _ = color_scale(maps)
    los, his = limits(maps, s["norm"])
    kernel = ex.data.kernel(s["layer"], k, s["snapshot"])
    gs = fig.add_gridspec(1, 4, left=0.03, right=0.97, bottom=0.06, top=top, wspace=0.25,
                          width_ratios=[1, 1.6, 0.08, 1])
    _input(fig, ex, gs[0, 0])
    ax = fig.add_subplot(gs[0, 1], label=f"channel {k}")
    _show(ax, maps[k], cmap, los[k], his[k])
    ax.set_title(f"{s['layer']} · filter {k}", fontsize=10)
    _colorbar(fig, fig.add_subplot(gs[0, 2], label="colorbar"), cmap, los[k], his[k], "")
    ax = fig.add_subplot(gs[0, 3], label=f"filter {k}")
    ax.set_axis_off()
    if kernel is None:
        ax.text(0.5, 0.5, "no filter\n(not a convolution's map)", ha="center", va="center",
                fontsize=9, color="#555", transform=ax.transAxes)
        return
    rows, cols = grid_shape(kernel.shape[0])
    kh, kw = kernel.shape[1:]
    tiles = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)
    for i, w in enumerate(kernel):
        r, c = divmod(i, cols)
        tiles[r * (kh + 1):r * (kh + 1) + kh, c * (kw + 1):c * (kw + 1) + kw] = w
    top_w = float(np.abs(kernel).max()) or 1.0
    ax.imshow(tiles, cmap="RdBu_r", vmin=-top_w, vmax=top_w, interpolation="nearest")
    ax.set_title(f"filter ({kernel.shape[0]} × {kh}×{kw})", fontsize=10)


def still(ex: Any, caption: bool = True) -> Any:
    """The explorer's current state as a matplotlib ``Figure`` (see the module)."""
    from matplotlib.figure import Figure

    s = ex.state
    maps = ex.activations()[s["layer"]]
    if s["view"] == "grid":
        rows, cols = grid_shape(maps.shape[0])
        h, w = maps.shape[1:]
        width = 9.5
        side = max(1.5, cols / 4)
        height = (min(7.0, 0.83 * width * rows * h / ((cols + side + 0.25) * w))
                  + (1.0 if caption else 0.3))
    else:
        width, height = 9.0, 3.4 + (0.7 if caption else 0.1)
    fig = Figure(figsize=(width, height), dpi=100, facecolor="white")
    top = 1 - (0.75 if caption else 0.1) / height
    if caption:
        lines = describe(ex)
        fig.text(0.01, 1 - 0.12 / height, lines[0], fontsize=10, weight="bold", va="top")
        fig.text(0.01, 1 - 0.42 / height, lines[1], fontsize=9, color="#333", va="top")
    if s["view"] == "grid":
        _grid(fig, ex, maps, s, top - 0.22 / height)   # room for the input's title
    else:
        _single(fig, ex, maps, s, top - 0.06)
    return fig
