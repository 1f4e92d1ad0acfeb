"""A still picture of the sketchpad, drawn with matplotlib, for readers where widgets do
not run (GitHub, nbviewer): the drawing, the 28x28 input the network sees, the
probabilities and the chosen layer's maps, with the colours and limits the live
pad uses (:mod:`featviz._style`), and the state in words on top.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .._style import fmt

ACCENT = "#3b5bdb"
MUTED = "#5b6270"
WIDTH = 9.0    # inches
TOP = 2.7      # inches: the drawing, the input and the bars


def describe(pad: Any) -> str:
    """The pad's state in one line: prediction, layer."""
    layer = pad.layer
    meta = pad._maps_meta
    where = f"{layer} ({meta['total']} maps {meta['shape'][1]}×{meta['shape'][2]})" if meta \
        else layer
    if pad.prediction is None:
        return f"empty pad: draw a digit · feature maps of {where}"
    p = pad.probabilities[pad.prediction]
    name = pad.classes[pad.prediction] if pad.classes else str(pad.prediction)
    return f"predicted {name} ({100 * p:.1f}% sure) · feature maps of {where}"


def still(pad: Any) -> Any:
    """The sketchpad's current state as a matplotlib ``Figure`` (see the module)."""
    from matplotlib.figure import Figure

    meta, maps = pad._maps_meta, pad.maps
    rows, cols = (meta["rows"], meta["cols"]) if maps is not None else (0, 0)
    cell = min(0.9, 7.6 / max(cols, 1))
    height = 0.45 + TOP + 0.45 + (rows * (cell + 0.2) if rows else 0.0) + 0.15
    fig = Figure(figsize=(WIDTH, height), dpi=100, facecolor="white")

    def axes(x: float, y: float, w: float, h: float) -> Any:  # inches from the top left
        return fig.add_axes((x / WIDTH, 1 - (y + h) / height, w / WIDTH, h / height))

    fig.text(0.1 / WIDTH, 1 - 0.12 / height, describe(pad), fontsize=10.5, va="top")
    y = 0.45
    ax = axes(0.1, y + 0.25, 2.4, 2.4)
    ax.imshow(pad.pixels, cmap="gray_r", vmin=0, vmax=1.12, interpolation="antialiased")
    _frame(ax, "your drawing")
    ax = axes(2.8, y + 0.25, 1.4, 1.4)
    grey = np.frombuffer(pad._input, np.uint8).reshape(pad._input_shape) / 255
    ax.imshow(grey, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    _frame(ax, "what the network sees")
    _bars(axes(5.0, y + 0.25, 3.7, 2.35), pad)
    if maps is not None:
        _maps(fig, axes, maps, meta, rows, cols, cell, y + TOP + 0.45)
    return fig


def _frame(ax: Any, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_color("#d9dce1")
    ax.set_title(title, fontsize=9, color=MUTED, loc="left")


def _bars(ax: Any, pad: Any) -> None:
    probs = np.array(pad.probabilities or [0.0] * 10)[:12]
    names = pad.classes or [str(k) for k in range(len(probs))]
    colours = ["#9aa5b8"] * len(probs)
    if pad.prediction is not None and pad.prediction < len(probs):
        colours[pad.prediction] = ACCENT
    ax.barh(range(len(probs)), probs, color=colours, height=0.7)
    for k, p in enumerate(probs):
        if p >= 0.005:  # the value at the end of its bar, inside a long one
            inside = p > 0.86
            ax.text(p - 0.015 if inside else p + 0.015, k,
                    f"{100 * p:.0f}%" if p >= 0.0995 else f"{100 * p:.1f}%", va="center",
                    ha="right" if inside else "left", fontsize=8,
                    color="white" if inside else MUTED)
    ax.set_yticks(range(len(probs)), names[:len(probs)], fontsize=8.5)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.tick_params(axis="x", labelsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_xlabel("probability", fontsize=8.5, color=MUTED)
    ax.set_title("prediction", fontsize=9, color=MUTED, loc="left")


def _maps(fig: Any, axes: Any, maps: np.ndarray, meta: dict, rows: int, cols: int,
          cell: float, top: float) -> None:
    c, h, w = maps.shape
    more = f" (the first {c} shown)" if meta["total"] > c else ""
    fig.text(0.1 / WIDTH, 1 - (top - 0.3) / fig.get_figheight(),
             f"Feature maps of {meta['layer']}: {meta['total']} maps of {h}×{w}{more}, "
             f"one colour scale", fontsize=9.5, color=MUTED, va="bottom")
    image = None
    for m in range(c):
        r, k = divmod(m, cols)
        ax = axes(0.1 + k * (cell + 0.08), top + r * (cell + 0.2), cell, cell * h / w)
        image = ax.imshow(maps[m], cmap=meta["cmap"], vmin=meta["vmin"], vmax=meta["vmax"],
                          interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(str(m), fontsize=7, color=MUTED, labelpad=1)
    cax = axes(0.1 + cols * (cell + 0.08) + 0.1, top, 0.13, rows * (cell + 0.2) - 0.2)
    ticks = [meta["vmin"], 0.0, meta["vmax"]] if meta["vmin"] < 0 else [meta["vmin"], meta["vmax"]]
    bar = fig.colorbar(image, cax=cax, ticks=ticks)
    bar.ax.set_yticklabels([fmt(t) for t in ticks], fontsize=8)
    bar.outline.set_visible(False)
