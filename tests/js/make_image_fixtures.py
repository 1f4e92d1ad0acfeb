"""Write what ``tests/js/imageops.test.mjs`` holds ``featviz/widgets/imageops.js`` to.

    python tests/js/make_image_fixtures.py DIR      (or FEATVIZ_JS_IMAGE_FIXTURES=DIR)

DIR gets Python's answers, all float32 little-endian, and ``index.json`` listing
the cases with their offsets (in float32 values) into these files:

* ``mnist.inputs.f32`` / ``mnist.expected.f32``: drawings (pen strokes made by
  ``stroke_pixels``, real MNIST digits, edge cases) and ``featviz.mnist_style`` of
  each, ``(28, 28)`` normalised; ``mnist.accepted.f32``: other answers a case accepts,
  each with why: the digit pasted one pixel over where its centre of mass falls on a
  half pixel (a tie, which PyTorch's float32 sums break one way or the other), and
  the answer without a PyTorch bug (an antialiased resize to one pixel wide repeats
  its first row: very tall, thin drawings);
* ``perturb.images.f32`` / ``perturb.expected.f32``: test images and
  ``featviz.perturb`` of each under the explorer's slider settings
  (``explorer_data.Perturbation.apply``); ``noise.*.f32``: the unit noise field per
  image shape, which Python sends the browser once (JavaScript cannot draw torch's
  random numbers);
* ``resize.inputs.f32`` / ``resize.expected.f32``: ``F.interpolate(bilinear,
  align_corners=False)``, with and without antialias (and, in the same file, the
  answer without PyTorch's one-pixel-wide bug where it shows).
"""
from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository, for featviz

from featviz import mnist_style  # noqa: E402
from featviz.data import MNIST_MEAN, MNIST_STD, mnist_normalize, mnist_tensors  # noqa: E402
from featviz.perturbation import INK, MNIST_BOX, MNIST_SIZE, _drawing, _fit_box  # noqa: E402
from featviz.widgets.explorer_data import Perturbation  # noqa: E402
from featviz.widgets.sketchpad_widget import RESOLUTION, stroke_pixels  # noqa: E402

TOLERANCE = 1e-4
TIE = 2e-4  # a centre within this of a half pixel is flagged (imageops.js treats 1e-4 as one)
USAGE = "usage: python tests/js/make_image_fixtures.py DIR  (or FEATVIZ_JS_IMAGE_FIXTURES=DIR)"


class Blob:
    """One float32 file written case by case; ``add`` gives the offset in values."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.size = 0

    def add(self, array: Any) -> int:
        a = np.ascontiguousarray(np.asarray(array, dtype="<f4").ravel())
        self.parts.append(a)
        self.size += a.size
        return self.size - a.size

    def write(self, path: Path) -> None:
        data = np.concatenate(self.parts) if self.parts else np.zeros(0, "<f4")
        path.write_bytes(data.astype("<f4").tobytes())


# --------------------------------------------------------------------------- drawings

def _bytes(ink: np.ndarray) -> np.ndarray:
    """The drawing as the kernel reads the sketchpad: one byte per pixel, then / 255
    (``SketchpadState.pixels``)."""
    return np.rint(np.clip(ink, 0, 1) * 255).astype(np.uint8).astype(np.float32) / 255


def _strokes(*strokes: list, shape: tuple[int, int] = (RESOLUTION, RESOLUTION),
             width: float = 12) -> np.ndarray:
    ink = np.zeros(shape, np.float32)
    for points in strokes:
        ink = np.maximum(ink, stroke_pixels(points, shape, width))
    return ink


def _circle(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> list:
    return [(cx + rx * math.cos(2 * math.pi * k / n), cy + ry * math.sin(2 * math.pi * k / n))
            for k in range(n + 1)]


def drawings() -> list[tuple[str, np.ndarray, bool]]:
    """``(name, pixels (H, W) float32 in [0, 1], as_bytes)``: ~100 drawings. ``as_bytes``:
    the drawing is a whole number of 1/255 steps, and the browser hands it over as bytes."""
    out: list[tuple[str, np.ndarray, bool]] = []
    side = RESOLUTION
    blank = np.zeros((side, side), np.float32)
    out.append(("empty", blank, True))
    faint = blank.copy()
    faint[70, 70] = 0.5 / 255  # below one grey level but above INK: ink to mnist_style
    out.append(("faint pixel", faint, False))
    below = blank.copy()
    below[50:60, 50:60] = INK  # not above INK: no ink
    out.append(("ink at the threshold", below, False))
    one = blank.copy()
    one[33, 101] = 1.0
    out.append(("one pixel (upscaled 20x)", one, True))
    out.append(("a dot", _bytes(_strokes([(0.5, 0.5)])), True))
    out.append(("a dot off centre", _bytes(_strokes([(0.23, 0.71)], width=7)), True))
    out.append(("vertical 1 (the docstring's)", _bytes(_strokes([(0.5, 0.15), (0.5, 0.85)])), True))
    out.append(("slanted 1", _bytes(_strokes([(0.55, 0.12), (0.42, 0.88)])), True))
    out.append(("seven", _bytes(_strokes([(0.25, 0.2), (0.75, 0.2), (0.4, 0.85)])), True))
    out.append(("zero", _bytes(_strokes(_circle(0.5, 0.5, 0.25, 0.35))), True))
    out.append(("four", _bytes(_strokes([(0.6, 0.85), (0.6, 0.15), (0.2, 0.6), (0.8, 0.6)])), True))
    out.append(("plus", _bytes(_strokes([(0.2, 0.5), (0.8, 0.5)], [(0.5, 0.2), (0.5, 0.8)])), True))
    out.append(("square frame", _bytes(_strokes([(0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8),
                                                  (0.2, 0.2)])), True))
    out.append(("very wide (thin dash)", _bytes(_strokes([(0.05, 0.5), (0.95, 0.5)], width=3)), True))
    out.append(("very tall (thin bar)", _bytes(_strokes([(0.4, 0.02), (0.4, 0.98)], width=2)), True))
    out.append(("wide, one row tall", _rows(side, 80, 10, 130)[0], True))
    out.append(("tall, one column wide", _rows(side, 80, 10, 130)[1], True))
    out.append(("ink touching every border", _bytes(_strokes([(0, 0), (1, 1)], [(1, 0), (0, 1)])),
                True))
    border = blank.copy()
    border[0, :] = border[-1, :] = border[:, 0] = border[:, -1] = 1.0
    out.append(("the border only", border, True))
    out.append(("full page", np.ones((side, side), np.float32), True))
    out.append(("top-left corner", _bytes(_strokes([(0.0, 0.0), (0.12, 0.1)])), True))
    out.append(("bottom-right corner", _bytes(_strokes([(0.9, 0.95), (1.0, 1.0)])), True))
    out.append(("small stroke (upscaled)", _bytes(_strokes([(0.45, 0.45), (0.52, 0.5)], width=4)),
                True))
    out.append(("tiny L (upscaled)", _bytes(_strokes([(0.5, 0.5), (0.5, 0.55), (0.53, 0.55)],
                                                      width=2)), True))
    out.append(("exactly 20 px tall", _bytes(_strokes([(0.5, 0.43), (0.5, 0.5)], width=4)), True))
    for (h, w), why in (((40, 5), "5 * 0.5 = 2.5 px wide, rounds to 2"),
                        ((8, 5), "5 * 2.5 = 12.5 px wide, rounds to 12")):
        box = blank.copy()
        box[50:50 + h, 60:60 + w] = 0.8
        out.append((f"{h}x{w} box ({why})", box, False))
    out.append(("big heavy stroke", _bytes(_strokes([(0.1, 0.1), (0.9, 0.3), (0.2, 0.9)],
                                                     width=30)), True))
    out.append(("float drawing (not bytes)", _strokes([(0.3, 0.2), (0.7, 0.5), (0.35, 0.8)]),
                False))
    # other pad sizes: a 28x28 drawing, a large and a non-square one
    out.append(("28x28 pad", _bytes(_strokes([(0.3, 0.3), (0.7, 0.7)], shape=(28, 28))), True))
    out.append(("280x280 pad", _bytes(_strokes(_circle(0.45, 0.5, 0.2, 0.3), shape=(280, 280))),
                True))
    out.append(("100x160 pad", _bytes(_strokes([(0.1, 0.3), (0.9, 0.6)], shape=(100, 160))), True))
    out.append(("160x100 pad", _bytes(_strokes([(0.5, 0.1), (0.4, 0.9)], shape=(160, 100))), True))
    # real digits, as drawings in [0, 1] (what pad.pixels = image would give)
    images, labels = mnist_tensors(train=False, download=False)
    for k in range(8):
        grey = (images[k, 0] * MNIST_STD + MNIST_MEAN).clamp(0, 1).numpy().astype(np.float32)
        out.append((f"MNIST test digit {k} (a {int(labels[k])})", grey, False))
    # random scribbles: 1-3 strokes of 1-6 points, brushes 4-24 px
    rng = np.random.default_rng(2024)
    while len(out) < 104:
        n = rng.integers(1, 4)
        strokes = [[tuple(p) for p in rng.uniform(0.05, 0.95, size=(rng.integers(1, 7), 2))]
                   for _ in range(n)]
        width = float(rng.uniform(4, 24))
        out.append((f"scribble {len(out)} ({n} strokes, brush {width:.1f})",
                    _bytes(_strokes(*strokes, width=width)), True))
    return out


def _rows(side: int, at: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    wide = np.zeros((side, side), np.float32)
    wide[at, lo:hi] = 1.0
    return wide, wide.T.copy()


# --------------------------------------------------------------------------- mnist_style

def separable(x: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """``F.interpolate(x, size, bilinear, align_corners=False)`` one axis at a time, each
    as a width: what PyTorch computes, except where its antialiased height pass is wrong
    (torch 2.x on the CPU: an output one pixel wide gets every row equal to the first)."""
    kw = {"mode": "bilinear", "align_corners": False, "antialias": antialias}
    x = F.interpolate(x, size=(x.shape[-2], size[1]), **kw)
    return F.interpolate(x.transpose(-1, -2), size=(size[1], size[0]), **kw).transpose(-1, -2)


def _crop(pixels: np.ndarray) -> torch.Tensor | None:
    """The drawing cropped to its ink, as ``mnist_style`` crops it; None without ink."""
    t = _drawing(pixels)
    rows = torch.nonzero(t.amax(dim=1) > INK).flatten()
    if not len(rows):
        return None
    cols = torch.nonzero(t.amax(dim=0) > INK).flatten()
    return t[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _fit_box_separable(ink: torch.Tensor) -> torch.Tensor:
    """``_fit_box(ink, MNIST_BOX)`` through :func:`separable`."""
    h, w = ink.shape
    f = MNIST_BOX / max(h, w)
    size = (max(1, round(h * f)), max(1, round(w * f)))
    return separable(ink[None, None], size, f < 1)[0, 0].clamp(0.0, 1.0)


def _pastes(digit: torch.Tensor) -> tuple[list[torch.Tensor], list[str]]:
    """The inputs ``mnist_style`` makes of a fitted digit: pasted with its centre of mass
    rounded both ways along an axis where it falls on a half pixel (a tie, which
    PyTorch's float32 sums break either way), else the one way; and the tied axes."""
    d = digit.double()
    h, w = d.shape
    mass = float(d.sum())
    cy = float((d.sum(dim=1) * torch.arange(h)).sum()) / mass
    cx = float((d.sum(dim=0) * torch.arange(w)).sum()) / mass
    choices, ties = [], []
    for name, c, n in (("y", cy, h), ("x", cx, w)):
        offset = MNIST_SIZE / 2 - c
        near = abs(offset - math.floor(offset) - 0.5) <= TIE
        ways = {math.floor(offset), math.floor(offset) + 1} if near else {round(offset)}
        choices.append(sorted({min(max(v, 0), MNIST_SIZE - n) for v in ways}))
        if len(choices[-1]) > 1:
            ties.append(name)
    pastes = []
    for top, left in itertools.product(*choices):
        out = torch.zeros(MNIST_SIZE, MNIST_SIZE)
        out[top:top + h, left:left + w] = digit
        pastes.append(mnist_normalize(out))
    return pastes, ties


def mnist_cases(inputs: Blob, expected: Blob, accepted: Blob) -> list[dict[str, Any]]:
    """Each drawing, Python's answer, and the other answers the test accepts, with why:
    the other side of a tie, or the answer without PyTorch's width-one resize bug."""
    cases = []
    for name, pixels, as_bytes in drawings():
        want = mnist_style(pixels)[0, 0]
        crop = _crop(pixels)
        h, w = pixels.shape
        case = {"name": name, "height": h, "width": w, "bytes": as_bytes,
                "input": inputs.add(pixels), "expected": expected.add(want), "ties": [],
                "accept": []}
        cases.append(case)
        if crop is None:
            continue
        pastes, case["ties"] = _pastes(_fit_box(crop, MNIST_BOX))
        # the pastes above are mnist_style's own: one of them is its answer
        same = [bool(torch.equal(p, want)) for p in pastes]
        assert any(same), f"{name}: mnist_style pasted its digit elsewhere"
        case["accept"] += [{"why": "the other side of a tie", "offset": accepted.add(p)}
                           for p, s in zip(pastes, same) if not s]
        fixed = _fit_box_separable(crop)
        if float((fixed - _fit_box(crop, MNIST_BOX)).abs().max()) > 1e-5:
            why = (f"PyTorch's antialiased resize to one pixel wide "
                   f"({tuple(crop.shape)} -> {tuple(fixed.shape)}) repeats its first row")
            case["accept"] += [{"why": why, "offset": accepted.add(p)} for p in _pastes(fixed)[0]]
    return cases


# --------------------------------------------------------------------------- perturb

def settings() -> list[dict[str, float]]:
    """The explorer's sliders (explorer_controls._perturb_sliders for 28x28): each alone at
    several values including the extremes, then combinations."""
    alone: list[dict[str, float]] = [{}]
    alone += [{"shift_x": v} for v in (-7, -3, -1, 1, 4, 7)]
    alone += [{"shift_y": v} for v in (-7, -2, 1, 5, 7)]
    alone += [{"shift_x": 0.5}, {"shift_y": -2.25}]  # perturb takes fractions too (resampled)
    alone += [{"rotate": v} for v in (-180, -90, -45, -5, 5, 15, 90, 135, 180)]
    alone += [{"scale": v} for v in (0.5, 0.55, 0.8, 0.95, 1.05, 1.5, 2.0)]
    alone += [{"erase": v} for v in (1, 2, 5, 10, 15, 27, 28)]
    alone += [{"noise": v} for v in (0.05, 0.5, 1.0, 2.0)]
    combos = [{"shift_x": 3, "shift_y": -2, "rotate": 30},
              {"rotate": -60, "scale": 1.5},
              {"shift_x": -7, "shift_y": 7, "rotate": 180, "scale": 0.5, "erase": 28, "noise": 2.0},
              {"shift_x": 7, "shift_y": -7, "rotate": -180, "scale": 2.0, "erase": 1, "noise": 0.05},
              {"shift_x": 2, "erase": 8},
              {"scale": 0.7, "erase": 6, "noise": 0.3},
              {"rotate": 45, "noise": 1.0}]
    rng = np.random.default_rng(7)
    for _ in range(8):
        combos.append({"shift_x": int(rng.integers(-7, 8)), "shift_y": int(rng.integers(-7, 8)),
                       "rotate": 5 * int(rng.integers(-36, 37)),
                       "scale": round(0.5 + 0.05 * int(rng.integers(0, 31)), 2),
                       "erase": int(rng.integers(0, 29)),
                       "noise": round(0.05 * int(rng.integers(0, 41)), 2)})
    return alone + combos


def test_images() -> list[tuple[str, torch.Tensor]]:
    """``(name, (C, H, W))``: ~50 images the explorer could perturb."""
    images, labels = mnist_tensors(train=False, download=False)
    out = [(f"MNIST test {k} (a {int(labels[k])})", images[k]) for k in range(40)]
    for k, (name, pixels, _) in enumerate(drawings()[4:10]):
        out.append((f"mnist_style of {name}", mnist_style(pixels)[0]))
    gen = torch.Generator().manual_seed(3)
    out.append(("random values", torch.randn(1, 28, 28, generator=gen) * 2 + 0.5))
    out.append(("constant", torch.full((1, 28, 28), 0.25)))
    out.append(("colour 3x32x32", torch.rand(3, 32, 32, generator=gen) * 4 - 2))
    out.append(("non-square 1x20x36", torch.rand(1, 20, 36, generator=gen)))
    return out


def noise_field(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """What ``perturb(..., noise=s, seed=seed)`` adds, divided by ``s``, for one image."""
    return torch.randn((1, *shape), generator=torch.Generator().manual_seed(seed))[0]


def perturb_cases(images: Blob, expected: Blob, fields: dict[str, Blob]) -> dict[str, Any]:
    cases, shown, noise = [], [], {}
    for name, image in test_images():
        shape = tuple(image.shape)
        key = "x".join(map(str, shape))
        if key not in noise:
            fields[key] = Blob()
            fields[key].add(noise_field(shape))
            noise[key] = f"noise.{key}.f32"
        at = images.add(image)
        shown.append({"name": name, "shape": list(shape), "offset": at, "noise": noise[key]})
        x = image[None]
        for s in settings():
            p = Perturbation(**s)
            want = p.apply(x)[0]
            if p.noise:  # the noise is the field sent once: hold Python to it first
                quiet = Perturbation(**{**s, "noise": 0.0}).apply(x)[0]
                drift = float((want - quiet - p.noise * noise_field(shape)).abs().max())
                assert drift < 1e-5, f"perturb's noise is not noise * noise_field ({drift})"
            cases.append({"image": len(shown) - 1, "settings": s, "expected": expected.add(want)})
    return {"images": shown, "cases": cases}


# --------------------------------------------------------------------------- resize

def resize_cases(inputs: Blob, expected: Blob) -> list[dict[str, Any]]:
    """F.interpolate as sketchpad_reader._model_input (28x28 to a model's size, no
    antialias) and as mnist_style (antialias when shrinking) use it."""
    gen = torch.Generator().manual_seed(11)
    sizes = [((28, 28), (64, 64), False), ((28, 28), (16, 16), False), ((28, 28), (20, 36), False),
             ((28, 28), (28, 28), False), ((28, 28), (224, 224), False), ((1, 9), (3, 20), False),
             ((140, 140), (28, 28), True), ((100, 60), (20, 12), True), ((137, 3), (20, 1), True),
             ((30, 200), (3, 20), True), ((21, 20), (20, 19), True), ((40, 28), (20, 14), True),
             ((28, 28), (64, 64), True), ((50, 10), (20, 24), True)]
    cases = []
    for (h, w), (oh, ow), aa in sizes:
        x = torch.rand(1, 1, h, w, generator=gen)
        y = F.interpolate(x, size=(oh, ow), mode="bilinear", align_corners=False, antialias=aa)
        case = {"name": f"{h}x{w} -> {oh}x{ow}{' antialias' if aa else ''}",
                "height": h, "width": w, "out_height": oh, "out_width": ow, "antialias": aa,
                "input": inputs.add(x), "expected": expected.add(y), "accept": []}
        fixed = separable(x, (oh, ow), aa)
        if float((fixed - y).abs().max()) > 1e-5:
            case["accept"].append({"why": "PyTorch's antialiased resize to one pixel wide "
                                   "repeats its first row", "offset": expected.add(fixed)})
        cases.append(case)
    return cases


# --------------------------------------------------------------------------- all

def make_fixtures(folder: str | os.PathLike) -> Path:
    """Write every fixture into ``folder``; the path of its ``index.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    blobs = {name: Blob() for name in ("mnist.inputs", "mnist.expected", "mnist.accepted",
                                       "perturb.images", "perturb.expected",
                                       "resize.inputs", "resize.expected")}
    fields: dict[str, Blob] = {}
    index = {
        "tolerance": TOLERANCE, "mnist_mean": MNIST_MEAN, "mnist_std": MNIST_STD,
        "torch": torch.__version__,
        "mnist": mnist_cases(blobs["mnist.inputs"], blobs["mnist.expected"],
                             blobs["mnist.accepted"]),
        "perturb": perturb_cases(blobs["perturb.images"], blobs["perturb.expected"], fields),
        "resize": resize_cases(blobs["resize.inputs"], blobs["resize.expected"]),
    }
    for name, blob in blobs.items():
        blob.write(folder / f"{name}.f32")
    for key, blob in fields.items():
        blob.write(folder / f"noise.{key}.f32")
    path = folder / "index.json"
    path.write_text(json.dumps(index))
    return path


def main(argv: list[str]) -> int:
    folder = argv[1] if len(argv) > 1 else os.environ.get("FEATVIZ_JS_IMAGE_FIXTURES")
    if not folder:
        print(USAGE, file=sys.stderr)
        return 2
    path = make_fixtures(folder)
    index = json.loads(path.read_text())
    ties = sum(1 for c in index["mnist"] if c["ties"])
    bug = sum(1 for c in index["mnist"] + index["resize"]
              if any(a["why"].startswith("PyTorch") for a in c["accept"]))
    print(f"wrote {len(index['mnist'])} drawings ({ties} with a tied centre of mass, {bug} "
          "cases of PyTorch's one-pixel-wide resize bug), "
          f"{len(index['perturb']['cases'])} perturbations of "
          f"{len(index['perturb']['images'])} images, {len(index['resize'])} resizes to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
