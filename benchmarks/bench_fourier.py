"""Compare the Fourier and pixel parameterisations of maximize_activation.

For every conv2 channel of the pretrained SimpleCNN, both run the same number
of steps from the same seed, in this one process; the script prints, per
channel, the activation each reaches on its final, un-transformed image, the
ratio Fourier / pixel, and the wall time of each run and its ratio.

    python benchmarks/bench_fourier.py [--steps 128] [--layer conv2]

The last lines give the median and the smallest activation ratio, how many
channels Fourier leaves below pixel, and the time ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("FEATVIZ_OFFLINE", "1")  # no data needed: the images start from noise

import torch

import featviz


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--layer", default="conv2")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    model = featviz.pretrained().eval()
    kw = dict(steps=args.steps, value_range=featviz.MNIST_RANGE)
    start = time.perf_counter()
    pixel = featviz.maximize_activation(model, args.layer, **kw)
    t_pixel = time.perf_counter() - start
    start = time.perf_counter()
    smooth = featviz.maximize_activation(model, args.layer, param="fourier", **kw)
    t_fourier = time.perf_counter() - start

    ratios = (smooth.scores / pixel.scores).tolist()
    print(f"{args.layer}, {args.steps} steps, {len(ratios)} channels")
    print(f"{'channel':>8} {'pixel':>8} {'fourier':>8} {'ratio':>7}")
    for c, (p, f, r) in enumerate(zip(pixel.scores.tolist(), smooth.scores.tolist(), ratios)):
        print(f"{c:>8} {p:>8.2f} {f:>8.2f} {r:>6.3f}x")
    below = sum(r < 1 for r in ratios)
    print(f"activation fourier/pixel: median {statistics.median(ratios):.3f}x, "
          f"min {min(ratios):.3f}x, below pixel on {below} of {len(ratios)}")
    print(f"time: pixel {t_pixel:.2f} s, fourier {t_fourier:.2f} s, "
          f"fourier/pixel {t_fourier / t_pixel:.2f}x")


if __name__ == "__main__":
    main()
