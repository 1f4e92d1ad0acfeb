"""Time the input probes of the explorer and sketchpad against a plain forward pass.

What is timed, on one digit (1, 1, 28, 28) and the pretrained SimpleCNN, in
this one process, each the median of many runs:

- the baseline: ``model(x)`` under ``torch.no_grad()``;
- ``featviz.perturb`` with a whole-pixel shift (exact path) and with a
  rotation, scaling, erased box and noise (resampling path);
- ``featviz.mnist_style`` on a 280x280 drawing (what the sketchpad does on
  every stroke);
- ``featviz.conv_arithmetic`` for one conv2 value (one forward pass and the parts).

    python benchmarks/bench_probes.py [--repeats 300]

Each line prints the median time and its ratio to the plain forward pass.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

os.environ.setdefault("FEATVIZ_OFFLINE", "1")  # one digit is enough: the bundled sample will do

import numpy as np
import torch

import featviz


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(max(5, repeats // 10)):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300)
    args = parser.parse_args()

    model = featviz.pretrained()
    images, _ = featviz.digit_examples()
    x = images[7:8]
    drawing = np.zeros((280, 280), dtype=np.float32)
    drawing[40:240, 125:155] = 1.0
    drawing[40:70, 60:155] = 1.0  # a 7

    def forward() -> None:
        with torch.no_grad():
            model(x)

    cases = {
        "plain forward (baseline)": forward,
        "perturb shift=(2, 1)": lambda: featviz.perturb(x, shift=(2, 1)),
        "perturb rotate/scale/erase/noise": lambda: featviz.perturb(
            x, shift=(1.5, -2), rotate=20, scale=1.2, erase=(4, 4, 6, 6), noise=0.2),
        "mnist_style 280x280 drawing": lambda: featviz.mnist_style(drawing),
        "conv_arithmetic conv2": lambda: featviz.conv_arithmetic(model, x, "conv2", 3, (4, 4)),
    }
    times = {name: median_ms(fn, args.repeats) for name, fn in cases.items()}
    base = times["plain forward (baseline)"]
    for name, ms in times.items():
        print(f"{name:<36} {ms:7.3f} ms   x{ms / base:5.2f} of a forward pass")


if __name__ == "__main__":
    main()
