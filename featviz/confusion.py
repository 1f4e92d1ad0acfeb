"""Reading a confusion matrix: its most frequent mistakes, and a figure of them.

``featviz.confusion_matrix`` counts (true class, predicted class) pairs; these two
functions read the result.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["top_confusions", "plot_confusion"]


def _matrix(cm: Any) -> np.ndarray:
    arr = np.asarray(cm.detach().cpu() if isinstance(cm, torch.Tensor) else cm)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"a confusion matrix is square, (classes, classes); got shape "
                         f"{tuple(arr.shape)}")
    if arr.size and (arr.min() < 0 or not np.allclose(arr, np.round(arr))):
        raise ValueError("a confusion matrix holds counts: whole numbers, 0 or more")
    return arr.astype(np.int64)


def top_confusions(cm: Any, k: int = 3) -> list[tuple[int, int, int]]:
    """The ``k`` most frequent mistakes of a confusion matrix, as ``(true, predicted, count)``,
    most frequent first; ties with the ``k``-th are kept, so the list can be longer than ``k``.
    Within a count, pairs come in the matrix's reading order (row by row). The diagonal (the
    hits) and pairs that never occur are left out.

    >>> cm = torch.tensor([[9, 2, 0], [1, 8, 2], [0, 0, 7]])
    >>> top_confusions(cm, k=1)
    [(0, 1, 2), (1, 2, 2)]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k is how many mistakes to list, a whole number of 1 or more; got {k!r}")
    arr = _matrix(cm).copy()
    np.fill_diagonal(arr, 0)
    pairs = [(int(arr[i, j]), i, j) for i in range(len(arr)) for j in range(len(arr))
             if arr[i, j] > 0]
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    if len(pairs) <= k:
        return [(i, j, n) for n, i, j in pairs]
    floor = pairs[k - 1][0]
    return [(i, j, n) for n, i, j in pairs if n >= floor]


def _text_colour(rgba: Sequence[float]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba`` (relative
    luminance, as WCAG defines it, against the midpoint of the two contrasts)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "black" if luminance > 0.179 else "white"


def plot_confusion(cm: Any, *, mistakes_only: bool = True, labels: Sequence[Any] | None = None,
                   title: str | None = None, cmap: str = "Reds"):
    """A confusion matrix as a figure: rows are the true classes, columns the predictions,
    each non-zero cell with its count (in black or white, whichever reads on its colour).

    ``mistakes_only`` leaves the diagonal out, so the colour scale spans the mistakes. The
    title says how many mistakes there are, unless ``title`` is given. Returns a
    ``matplotlib.figure.Figure``.
    """
    from matplotlib import colormaps
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    arr = _matrix(cm)
    n = len(arr)
    names = [str(v) for v in (labels if labels is not None else range(n))]
    if len(names) != n:
        raise ValueError(f"labels has {len(names)} names for {n} classes")
    shown = arr.copy()
    if mistakes_only:
        np.fill_diagonal(shown, 0)
    off = arr.sum() - np.trace(arr)
    fig = Figure(figsize=(1.6 + 0.36 * n, 1.0 + 0.34 * n), layout="constrained")
    ax = fig.subplots()
    norm = Normalize(0, max(1, int(shown.max())))
    colours = colormaps[cmap]
    im = ax.imshow(shown, cmap=colours, norm=norm)
    for i in range(n):
        for j in range(n):
            if shown[i, j] > 0:
                ax.text(j, i, str(int(shown[i, j])), ha="center", va="center", fontsize=8,
                        color=_text_colour(colours(norm(shown[i, j]))))
    ax.set(xticks=range(n), yticks=range(n), xticklabels=names, yticklabels=names,
           xlabel="predicted", ylabel="true class")
    ax.set_title(title if title is not None else
                 f"{int(off):,} mistakes in {int(arr.sum()):,} images")
    fig.colorbar(im, ax=ax, shrink=0.8, label="images")
    return fig
