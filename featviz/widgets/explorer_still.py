"""A still picture of the explorer's state, drawn with matplotlib (real fonts), for
readers where widgets do not run (GitHub, nbviewer): the controls' state in
words on top (image, layer, filter, colour scale, view, training moment), then
what the live widget draws - the input beside the grid of numbered maps with the
chosen one framed in green, or the input, the chosen map and its filter - with
the same colour maps and limits (:mod:`featviz._style`). In the one-map view,
when a value has been taken apart (``explorer.inspect``), the inspector is drawn
too: the position marked on the map (and its window on the input, for the first
convolution), then the patch, the kernel and their products for the input
channels that contribute most, and the sum, the bias and the result in words.
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


def _single(fig: Any, ex: Any, maps: np.ndarray, s: dict, top: float, bottom: float = 0.06,
            found: dict | None = None) -> None:
    k = s["channel"]
    cmap, _, _ = color_scale(maps)
    los, his = limits(maps, s["norm"])
    kernel = ex.data.kernel(s["layer"], k, s["snapshot"])
    gs = fig.add_gridspec(1, 4, left=0.03, right=0.97, bottom=bottom, top=top, wspace=0.25,
                          width_ratios=[1, 1.6, 0.08, 1])
    _input(fig, ex, gs[0, 0])
    ax = fig.add_subplot(gs[0, 1], label=f"channel {k}")
    _show(ax, maps[k], cmap, los[k], his[k])
    ax.set_title(f"{s['layer']} · filter {k}", fontsize=10)
    if found is not None:
        _mark(ax, found["row"], found["col"])
        if found.get("input_is_image"):       # the window the kernel reads, on the image
            patch = found["shown"][0]["patch"]
            (r0, c0), (dr, dc) = found["origin"], found["dilation"]
            _mark(fig.axes[-2], r0, c0, (len(patch) - 1) * dr + 1, (len(patch[0]) - 1) * dc + 1)
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


#: input channels whose patch, kernel and products the still draws (largest contributions)
STILL_CHANNELS = 3


def _inspection(ex: Any) -> dict | None:
    """The inspector's current result, if it takes apart a value of the map on show."""
    found = getattr(getattr(ex, "canvas", None), "inspection", None) or {}
    s = ex.state
    if (found.get("ok") and s["view"] != "grid" and found.get("layer") == s["layer"]
            and found.get("channel") == s["channel"]):
        return found
    return None


def _mark(ax: Any, row: float, col: float, height: float = 1, width: float = 1) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((col - 0.5, row - 0.5), width, height, fill=False,
                           edgecolor=GREEN, linewidth=2.5))


def _cells(ax: Any, values: np.ndarray, title: str, top: float, numbers: bool) -> None:
    ax.imshow(values, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    if numbers:
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, f"{v:.2f}".replace("-", "−"), ha="center", va="center", fontsize=5.5,
                    color="white" if abs(v) > 0.6 * top else "black")


def _num(v: float) -> str:
    """A number of the inspector's arithmetic: 3 decimals below 1, 2 above; a true minus."""
    return (f"{v:.3f}" if abs(v) < 1 else f"{v:.2f}").replace("-", "−")


def _inspector(fig: Any, found: dict, where: Any) -> None:
    """The strip under the one-map view: patch x kernel = products, per input channel, and
    the arithmetic in words."""
    shown = found["shown"][:STILL_CHANNELS]
    many = found["channels"] > 1
    numbers = not many and len(shown[0]["patch"]) <= 5
    sub = where.subgridspec(3, 4 * len(shown), height_ratios=[0.14 if many else 0.01, 1, 0.14],
                            wspace=0.12, hspace=0.1, width_ratios=[1, 1, 1, 0.35] * len(shown))
    for k, part in enumerate(shown):
        arrays = [np.asarray(part[key], dtype=float) for key in ("patch", "kernel", "products")]
        for i, (a, name) in enumerate(zip(arrays, ("patch", "× kernel", "= products"))):
            ax = fig.add_subplot(sub[1, 4 * k + i], label=f"inspector {name} {part['channel']}")
            _cells(ax, a, name, float(np.abs(a).max()) or 1.0, numbers)
        fig.add_subplot(sub[1, 4 * k + 3]).set_axis_off()
        for row, text in ((0, f"input channel {part['channel']}" if many else ""),
                          (2, f"products summed: {_num(part['sum'])}")):
            ax = fig.add_subplot(sub[row, 4 * k:4 * k + 3], label=f"inspector {row} {k}")
            ax.set_axis_off()
            ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=8.5,
                    weight="bold" if row == 0 else "normal", transform=ax.transAxes)
    where_ = f"{found['layer']} · filter {found['channel']} at (row {found['row']}, column {found['col']})"
    if many:
        rest = found["channels"] - len(shown)
        others = found["sum"] - sum(part["sum"] for part in shown)
        terms = " + ".join(_num(part["sum"]) for part in shown)
        line = (f"{where_}: {found['channels']} input channels; the {len(shown)} largest give "
                f"{terms}, the other {rest} {_num(others)}. Sum {_num(found['sum'])}")
    else:
        n = int(np.asarray(shown[0]["products"]).size)
        line = f"{where_}: the {n} products summed, {_num(found['sum'])}"
    line += (f" + bias {_num(found['bias'])} = {_num(found['total'])}, the value in the map "
             f"({_num(found['value'])})")
    fig.text(0.5, 0.012, line, ha="center", va="bottom", fontsize=8.5, wrap=True)


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
    found = _inspection(ex)
    strip = 0.0
    if found is not None:
        strip = 2.4 if len(found["shown"]) == 1 else 1.9
        height += strip
    fig = Figure(figsize=(width, height), dpi=100, facecolor="white")
    top = 1 - (0.75 if caption else 0.1) / height
    if caption:
        lines = describe(ex)
        fig.text(0.01, 1 - 0.12 / height, lines[0], fontsize=10, weight="bold", va="top")
        fig.text(0.01, 1 - 0.42 / height, lines[1], fontsize=9, color="#333", va="top")
    if s["view"] == "grid":
        _grid(fig, ex, maps, s, top - 0.22 / height)   # room for the input's title
    else:
        bottom = 0.06 if found is None else (strip + 0.25) / height
        _single(fig, ex, maps, s, top - 0.06, bottom, found)
        if found is not None:
            gs = fig.add_gridspec(1, 1, left=0.06, right=0.94, bottom=0.45 / height,
                                  top=(strip - 0.1) / height)
            _inspector(fig, found, gs[0, 0])
    return fig
