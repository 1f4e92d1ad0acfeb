"""Python's answers for tests/js/style.test.mjs: fmt, color_scale, limits and grid_shape
of featviz._style on a table of inputs, written as one JSON file.

    python tests/js/make_style_fixtures.py DIR
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np

from featviz._style import color_scale, fmt, grid_shape, limits

NUMBERS = [0.0, -0.0, 1.0, -1.0, 3.0, 0.5, 0.125, 0.375, 2.5, 1.5, 9.95, 9.949, 99.4, 99.5, 99.9999,
           100.0, 100.5, 101.5, -99.5, 150.0, 1234.4, 1234.5, 0.01234, 0.001, 0.0001, 0.00012345,
           1e-5, 1.25e-5, -2.046233, 0.2317, 0.2318, 0.73, 0.4242, -0.4242, 2.8215, 12.5, 13.8, 18.7,
           1 / 3, 2 / 3, 0.05, 0.15, 0.25, 0.35, 0.45, 0.95, 999.5, 1e6, -7.25e-3, 5e-324, 1e-300,
           math.pi, -math.e, float("nan"), float("inf"), float("-inf")]


def make_fixtures(folder: Path) -> None:
    rng = np.random.default_rng(0)
    numbers = NUMBERS + [float(v) for v in rng.normal(0, 5, 200)] \
        + [float(v) for v in 10.0 ** rng.uniform(-6, 4, 200) * rng.choice([-1, 1], 200)]
    fmts = [[v, d, fmt(v, d)] for v in numbers for d in (1, 2, 3)]
    scales = []
    for values in ([-2.0, 0.5], [0.0, 3.0], [0.0, 0.0], [], [float("nan")], [-1e-9, 5.0],
                   [-1e-5, 5.0], [float("nan"), 2.0, float("inf")], list(rng.normal(0, 1, 50))):
        for cmap in (None, "RdBu_r", "magma", "coolwarm"):
            scales.append([values, cmap, list(color_scale(np.array(values, dtype=np.float64), cmap))])
    lims = []
    for maps in ([[-1.0, 0.5], [0.2, 0.1]], [[0.0, 0.0], [1.0, 2.0]], [[0.0, 3.0], [float("nan"), 1.0]],
                 rng.normal(0, 1, (4, 9)).tolist(), np.abs(rng.normal(0, 1, (3, 6))).tolist()):
        for scale in ("shared", "per-map"):
            lo, hi = limits(np.array(maps), scale)
            lims.append([maps, scale, lo.tolist(), hi.tolist()])
    grids = [[n, mc, list(grid_shape(n, max_cols=mc))] for n in list(range(1, 70)) + [128, 256, 512]
             for mc in (None, 8, 16)]
    data = {"fmt": fmts, "color_scale": scales, "limits": lims, "grid_shape": grids}
    folder.mkdir(parents=True, exist_ok=True)
    # NaN and infinities travel as strings: JSON has none
    (folder / "style.json").write_text(json.dumps(data, default=str).replace("NaN", '"nan"')
                                       .replace("-Infinity", '"-inf"').replace("Infinity", '"inf"'))


if __name__ == "__main__":
    make_fixtures(Path(sys.argv[1]))
