"""What the live widgets cost the kernel, against a matplotlib redraw, in one process.

The tutorial way to make feature maps interactive is ``@interact`` around a
function that builds a new matplotlib figure with one subplot per map and
draws it to a PNG. featviz's explorer draws in the browser: the kernel sends
every layer's maps once per image, and a layer, filter or scale step is drawn
there from them. Its Python side is then only ipywidgets recording the new
value the browser reports. Timed here, interleaved, on the pretrained SimpleCNN:

* step: what the kernel does when the browser reports a filter, layer or scale
  change (``set_state`` on the controls and the picture, as a comm message does);
* image change: the kernel side of a new image (cache cleared): one forward pass
  capturing every layer, quantising, colour limits, the message to the browser
  (target: at most 5 ms);
* sketchpad update: the kernel side of a new drawing (``bench_sketchpad.py``): the
  drawing made MNIST-style, one pass capturing conv1, the maps quantised, the
  traits for the page (target: at most 5 ms);
* baselines: for the explorer, a new figure of ``rows x cols`` subplots, ``imshow``
  each map, ``savefig`` to PNG (activations already computed: drawing only); for
  the sketchpad, the same update done with matplotlib (``bench_sketchpad.py``).

Run: ``.venv/bin/python benchmarks/bench_explorer.py`` (about a minute); it
prints each run's medians and the median over ``--runs`` runs.
"""
from __future__ import annotations

import argparse
import contextlib
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
from bench_sketchpad import growing_drawings  # noqa: E402
from bench_sketchpad import one_run as sketchpad_run  # noqa: E402
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


@contextlib.contextmanager
def one_thread():
    """As the explorer runs one small image: on one thread (see featviz.widgets._run.few_threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def timed(f) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def browser_steps(ex, k: int) -> dict:
    """The kernel side of steps the browser draws itself, as the browser reports them."""
    layers = [v for _, v in ex.layer_dropdown.options]
    li = k % len(layers)
    top = ex.data.shapes[layers[li]][0] - 1
    channel = k % (top + 1)

    def filter_step():
        ex.filter_slider.set_state({"value": min(channel, ex.filter_slider.max)})
        ex.canvas.set_state({"channel": min(channel, ex.filter_slider.max)})

    def layer_step():
        ex.filter_slider.set_state({"max": top, "value": min(ex.filter_slider.value, top)})
        ex.canvas.set_state({"layer_index": li})
        ex.layer_dropdown.set_state({"index": li})

    def scale_step():
        ex.norm.set_state({"index": k % 2})
        ex.canvas.set_state({"scale_index": k % 2})

    return {"filter": timed(filter_step), "layer": timed(layer_step), "scale": timed(scale_step)}


def one_run(ex, model, images, maps, steps: int, redraws: int) -> dict:
    got: dict[str, list[float]] = {k: [] for k in ("filter", "layer", "scale", "image",
                                                   "capture", "payload", "bare forward",
                                                   "tutorial")}
    misses = ex.data.cache.misses
    for r in range(redraws):  # interleaved: a noisy neighbour hurts both sides alike
        for k in range(steps // redraws):
            for name, t in browser_steps(ex, r * steps + k).items():
                got[name].append(t)
        assert ex.data.cache.misses == misses, "a browser-drawn step ran the model"
        ex.data.cache.items.clear()
        i = (ex.image_slider.value + 1) % len(images)
        got["image"].append(timed(lambda: ex.image_slider.set_state({"value": i})))
        got["tutorial"].append(timed(lambda: tutorial_redraw(maps, r % len(maps))))
        # where an image change goes: capture (forward pass with hooks), payload, bare forward
        x = images[i:i + 1]
        ex.data.cache.items.clear()
        got["capture"].append(timed(lambda: ex.data.entry(i, 0)))
        got["payload"].append(timed(lambda: ex.data.payload(i, 0)))
        with torch.no_grad(), one_thread():
            got["bare forward"].append(timed(lambda: model(x)))
        misses = ex.data.cache.misses
    return {name: 1000 * statistics.median(ts) for name, ts in got.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--redraws", type=int, default=6, help="tutorial redraws per run")
    parser.add_argument("--steps", type=int, default=120, help="browser steps per run")
    parser.add_argument("--every", type=int, default=8,
                        help="a matplotlib redraw every n sketchpad updates")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    model = featviz.pretrained()
    images, labels = featviz.digit_examples()
    ex = featviz.explorer(model, images, labels, snapshots=None)
    assert ex.ok, ex.message.value
    pad, frames = featviz.sketchpad(model), growing_drawings()
    maps = featviz.activations(model, images[:1], ["conv2"])["conv2"][0]
    print(f"model: featviz.pretrained(); images {tuple(images.shape)}; tutorial redraw of "
          f"conv2 ({maps.shape[0]} maps); sketchpad: {len(frames)} drawings, conv1; "
          f"torch threads: {torch.get_num_threads()}")
    one_run(ex, model, images, maps, 40, 2)  # warm-up
    sketchpad_run(pad, model, frames[:8], "conv1", args.every)
    runs = []
    for run in range(args.runs):
        m = one_run(ex, model, images, maps, args.steps, args.redraws)
        m["sketchpad"], _, m["sketchpad redraw"] = sketchpad_run(pad, model, frames, "conv1",
                                                                 args.every)
        runs.append(m)
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in m.items()))
    report({k: statistics.median(r[k] for r in runs) for k in runs[0]}, args.runs)


def report(med: dict, runs: int) -> None:
    print(f"\nmedian of {runs} runs (Python side, ms):")
    for name in ("filter", "layer", "scale"):
        print(f"  {name} step (drawn in the browser) {med[name]:8.3f} ms   "
              f"tutorial redraw / step: {med['tutorial'] / med[name]:,.0f}x")
    print(f"  image change (kernel side)     {med['image']:8.3f} ms   "
          f"tutorial redraw / image change: {med['tutorial'] / med['image']:.1f}x   (target <= 5 ms)")
    print(f"    of which: capture of every layer {med['capture']:.3f} ms, payload "
          f"(quantise, colour limits) {med['payload']:.3f} ms; one bare forward pass "
          f"{med['bare forward']:.3f} ms (image change / bare forward: "
          f"{med['image'] / med['bare forward']:.1f}x)")
    print(f"  sketchpad update (kernel side) {med['sketchpad']:8.3f} ms   "
          f"matplotlib redraw / update: {med['sketchpad redraw'] / med['sketchpad']:.1f}x   "
          f"(target <= 5 ms)")
    print(f"  tutorial redraw (matplotlib)   {med['tutorial']:8.1f} ms")
    print(f"  sketchpad redraw (matplotlib)  {med['sketchpad redraw']:8.1f} ms")


if __name__ == "__main__":
    main()
