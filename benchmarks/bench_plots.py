"""Time drawing the 16 conv1 feature maps of one digit: featviz against the tutorial.

The baseline is the tutorial's own figure function, written out below: a
15x15-inch pyplot figure with an 8x8 grid of subplots (64 axes, 16 used), one
``imshow`` per map. Both figures are rendered the same way, to PNG bytes
through Agg (what a notebook does to show them), in this one process,
alternating, several times; the script prints the median of each and the ratio.

    python benchmarks/bench_plots.py [--repeats 15]

A ratio below 1 means featviz is faster.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import time

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("FEATVIZ_OFFLINE", "1")  # one digit is enough: the bundled sample will do

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the baseline is a pyplot function; featviz never uses pyplot
import torch

import featviz


def tutorial_plot_feature_maps(activation: torch.Tensor, num_cols: int = 8) -> bytes:
    """The tutorial's figure: an 8x8 grid in a 15x15-inch figure, one imshow per map."""
    num_kernels = activation.shape[1]
    fig, axs = plt.subplots(8, num_cols, figsize=(15, 15))
    for i in range(num_kernels):
        ax = axs[i // num_cols, i % num_cols]
        ax.imshow(activation[0, i].detach().cpu().numpy(), cmap="viridis")
        ax.axis("off")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")  # what plt.show() costs in a notebook: an Agg draw to PNG
    plt.close(fig)
    return buf.getvalue()


def featviz_plot_feature_maps(activation: torch.Tensor, image: torch.Tensor) -> bytes:
    fig = featviz.plot_feature_maps(activation, index=0, image=image, title="conv1",
                                    mean=featviz.MNIST_MEAN, std=featviz.MNIST_STD)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def featviz_maps_only(activation: torch.Tensor) -> bytes:
    fig = featviz.plot_feature_maps(activation, index=0, title="conv1")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    torch.manual_seed(0)
    model = featviz.SimpleCNN().eval()
    images, labels = featviz.digit_batch([3])
    with torch.no_grad():
        conv1 = model.conv1(images)  # (1, 16, 24, 24), the tutorial's input
    assert conv1.shape == (1, 16, 24, 24)

    cases = {
        "tutorial (8x8 grid, 15x15 in)": lambda: tutorial_plot_feature_maps(conv1),
        "featviz (maps + input + colour bar)": lambda: featviz_plot_feature_maps(conv1, images),
        "featviz (maps + colour bar)": lambda: featviz_maps_only(conv1),
    }
    sizes = {}
    for name, fn in cases.items():  # warm-up: fonts, colour maps, first-call imports
        sizes[name] = len(fn())
        fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():  # alternate, so machine noise hits all alike
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)

    base = statistics.median(times["tutorial (8x8 grid, 15x15 in)"])
    print(f"16 conv1 maps of one digit, figure built and rendered to PNG, "
          f"median of {args.repeats} (torch {torch.__version__}, matplotlib {matplotlib.__version__})")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"  {name:38s} {med * 1e3:8.1f} ms   ratio {med / base:5.2f}   PNG {sizes[name] / 1024:6.1f} KiB")


if __name__ == "__main__":
    main()
