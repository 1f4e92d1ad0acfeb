"""How long one slider step of the explorer costs in Python, against the tutorial redraw.

The tutorial way to make feature maps interactive is ``@interact`` around a
function that builds a new matplotlib figure with one subplot per map and
draws it (into an ``Output`` that is cleared each time). featviz's explorer
instead picks the cached activations and renders them straight to PNG bytes
for a ``widgets.Image``. Both are timed here in the same process, interleaved,
on the same layer and image, with the PNG encode included on both sides:

* featviz: ``explorer.filter_slider.value = k`` (the whole callback: render,
  swap the image's value, update the text);
* tutorial: a new pyplot figure with ``rows x cols`` subplots, ``imshow`` each
  map, ``savefig`` to PNG, close - with the activations already computed, so
  the comparison is about drawing only.

Run: ``.venv/bin/python benchmarks/bench_explorer.py`` (about a minute).
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
import torch  # noqa: E402

import featviz  # noqa: E402
from featviz._style import grid_shape  # noqa: E402


def tutorial_redraw(maps: torch.Tensor, channel: int) -> bytes:
    """The classic per-change redraw: a new figure of subplots, drawn to a PNG."""
    n = maps.shape[0]
    rows, cols = grid_shape(n)
    fig = plt.figure(figsize=(cols * 1.2, rows * 1.2))
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(maps[i], cmap="magma")
        ax.set_title(str(i), fontsize=7, color="green" if i == channel else "black")
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def median_ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=25, help="tutorial redraws per layer")
    parser.add_argument("--steps", type=int, default=400, help="explorer slider steps per layer")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    try:
        model, which = featviz.pretrained(), "featviz.pretrained()"
    except (FileNotFoundError, ValueError) as exc:  # the checkpoint not built yet
        torch.manual_seed(0)
        model, which = featviz.SimpleCNN().eval(), f"a seeded SimpleCNN ({exc.__class__.__name__})"
    images, labels = featviz.digit_examples()
    ex = featviz.explorer(model, images, labels, snapshots=None)
    assert ex.ok, ex.message.value
    print(f"model: {which}; image 0 (a {int(labels[0])}); torch threads: {torch.get_num_threads()}")
    print(f"{'layer':<8}{'maps':>6}{'explorer step':>16}{'tutorial redraw':>18}{'ratio':>9}")

    ratios = []
    for layer in ("conv1", "conv2", "relu2"):
        ex.layer_dropdown.value = layer
        maps = featviz.activations(model, images[:1], [layer])[layer][0]
        n = maps.shape[0]
        for k in range(n):  # warm: caches, colour tables, layout frames
            ex.filter_slider.value = k
        fast, slow = [], []
        per_round = max(1, args.steps // args.repeats)
        step = 0
        for r in range(args.repeats):
            # interleaved so that a noisy neighbour hurts both sides alike
            for _ in range(per_round):
                step += 1
                t0 = time.perf_counter()
                ex.filter_slider.value = step % n
                fast.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            tutorial_redraw(maps, r % n)
            slow.append(time.perf_counter() - t0)
        f, s = median_ms(fast), median_ms(slow)
        ratios.append(s / f)
        print(f"{layer:<8}{n:>6}{f:>13.2f} ms{s:>15.1f} ms{s / f:>8.0f}x")

    # a new image is a cache miss: one forward pass capturing every layer, then the render
    cold = []
    ex.layer_dropdown.value = "conv2"
    for i in range(1, len(images)):
        ex._cache.items.clear()
        t0 = time.perf_counter()
        ex.image_slider.value = i
        cold.append(time.perf_counter() - t0)
    print(f"new image (cache miss, forward pass + render): median {median_ms(cold):.2f} ms "
          f"over {len(cold)}")
    print(f"ratio tutorial / explorer, median over layers: {statistics.median(ratios):.0f}x")


if __name__ == "__main__":
    main()
