"""How much activation each set of transforms costs Fourier ascent, against pixel ascent.

On the shipped SimpleCNN, conv2, every channel, the centre unit, 128 steps: the
activation of the final un-transformed image divided by pixel-space ascent's
(median, minimum, and how many channels fall below 1). The numbers quoted in
``featviz.fourier``'s docstring come from this script.

    python scripts/fourier_transforms.py
"""
from __future__ import annotations

import featviz
from featviz import fourier


def main() -> None:
    model = featviz.pretrained().eval()
    kw = dict(value_range=featviz.MNIST_RANGE)
    pixel = featviz.maximize_activation(model, "conv2", **kw)
    rows = [("small (default)", fourier.SMALL), ("Lucid scaled to 28 px", fourier.SCALED_28),
            ("Lucid at 224-px values", fourier.scaled_transforms(224)), ("no transforms", None)]
    print(f"{'transforms':24s} {'median':>7s} {'min':>7s} {'below 1':>8s}")
    for label, tr in rows:
        m = featviz.maximize_activation(model, "conv2", param="fourier", transforms=tr, **kw)
        r = m.scores / pixel.scores
        print(f"{label:24s} {r.median().item():7.3f} {r.min().item():7.3f} "
              f"{int((r < 1).sum()):5d}/{len(r)}")


if __name__ == "__main__":
    main()
