"""The kernel side of one sketchpad update, against redrawing the maps with matplotlib.

While the pen moves, the sketchpad's front end sends the drawing (one byte per
pixel) at most every 30 ms; the kernel must answer well within that. One update
here is exactly what such a message causes: ``pad.set_state({"_ink": ..., "_seq":
n})`` - the drawing made MNIST-style, one forward pass capturing the layer, the
probabilities, the maps quantised to uint8 and the changed traits serialised
for the front end (target: at most 5 ms).

Baseline, in the same process and interleaved: what a notebook without the
sketchpad would do for a new drawing - ``featviz.mnist_style``, the forward
pass capturing the layer, then a new matplotlib figure with one subplot per map
saved to PNG.

The drawing grows stroke by stroke (a 7, a 4, an 8), so every update sees new
ink. Each run reports medians; the script does 3 runs and prints the median of
their medians.

Run: ``.venv/bin/python benchmarks/bench_sketchpad.py`` (well under a minute).
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FEATVIZ_OFFLINE", "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import featviz  # noqa: E402
from featviz._style import grid_shape  # noqa: E402
from featviz.widgets.sketchpad_widget import RESOLUTION, stroke_pixels  # noqa: E402

DIGITS = [  # strokes in fractions of the pad
    [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)], [(0.35, 0.52), (0.68, 0.52)]],
    [[(0.6, 0.15), (0.25, 0.6), (0.8, 0.6)], [(0.62, 0.3), (0.62, 0.88)]],
    [[(0.5, 0.5), (0.3, 0.32), (0.5, 0.15), (0.7, 0.32), (0.5, 0.5), (0.28, 0.7),
      (0.5, 0.88), (0.72, 0.7), (0.5, 0.5)]],
]


def growing_drawings(steps_per_stroke: int = 8) -> list[np.ndarray]:
    """The frames a hand drawing these digits would send: each stroke in pieces."""
    frames = []
    for digit in DIGITS:
        ink = np.zeros((RESOLUTION, RESOLUTION), np.float32)
        for stroke in digit:
            pts = np.array(stroke)
            along = np.concatenate([[0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
            for k in range(1, steps_per_stroke + 1):
                upto = along[-1] * k / steps_per_stroke
                part = [tuple(p) for p, d in zip(pts, along) if d <= upto]
                i = len(part)
                if i < len(pts):  # the pen between two corners
                    f = (upto - along[i - 1]) / (along[i] - along[i - 1])
                    part.append(tuple(pts[i - 1] + f * (pts[i] - pts[i - 1])))
                frames.append(np.maximum(ink, stroke_pixels(part)))
            ink = frames[-1]
    return frames


def matplotlib_redraw(model: torch.nn.Module, drawing: np.ndarray, layer: str) -> bytes:
    """The same update without the sketchpad: input, forward, a figure of the maps, PNG."""
    x = featviz.mnist_style(drawing)
    acts = featviz.activations(model, x, [layer])
    maps = acts[layer][0]
    rows, cols = grid_shape(maps.shape[0], max_cols=8)
    fig = plt.figure(figsize=(cols * 1.0, rows * 1.0))
    for i in range(maps.shape[0]):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(maps[i], cmap="RdBu_r")
        ax.axis("off")
    fig.suptitle(f"prediction {int(acts.output.argmax())}")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def one_run(pad, model, frames: list[np.ndarray], layer: str,
            every: int) -> tuple[float, float, float]:
    """Median ms of a sketchpad update (wall clock and CPU time) and of a matplotlib
    redraw (wall clock), interleaved."""
    pad.layer = layer
    fast, cpu, slow = [], [], []
    for i, frame in enumerate(frames):
        ink = memoryview((frame * 255).round().astype(np.uint8).tobytes())
        t0, c0 = time.perf_counter(), time.process_time()
        pad.set_state({"_ink": ink, "_seq": pad._seq + 1})  # what a front-end message does
        fast.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if i % every == 0:
            t0 = time.perf_counter()
            matplotlib_redraw(model, frame, layer)
            slow.append(time.perf_counter() - t0)
    assert pad.message == "" and pad.prediction is not None
    return tuple(1000 * statistics.median(v) for v in (fast, cpu, slow))  # type: ignore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=int, default=6, help="a matplotlib redraw every n updates")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model = featviz.pretrained()
    pad = featviz.sketchpad(model)
    frames = growing_drawings()
    one_run(pad, model, frames[:12], "conv1", args.every)  # warm: imports, first calls
    print(f"{len(frames)} drawings of {RESOLUTION}x{RESOLUTION}; torch threads: "
          f"{torch.get_num_threads()}")
    print(f"{'layer':<8}{'sketchpad update':>18}{'(CPU time)':>12}{'matplotlib redraw':>20}"
          f"{'ratio':>9}")
    for layer in ("conv1", "conv2"):
        runs = [one_run(pad, model, frames, layer, args.every) for _ in range(args.runs)]
        fast, cpu, slow = (statistics.median(r[k] for r in runs) for k in range(3))
        print(f"{layer:<8}{fast:>15.2f} ms{cpu:>9.2f} ms{slow:>17.1f} ms{slow / fast:>8.0f}x   "
              f"(update, runs: {', '.join(f'{r[0]:.2f}' for r in runs)} ms)")


if __name__ == "__main__":
    main()
