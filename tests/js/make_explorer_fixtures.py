"""Write what ``tests/js/explorer_local.test.mjs`` holds ``featviz/widgets/explorer_local.js``
to: the explorer's default data (``ExplorerData(featviz.pretrained())``, the bundled
offline sample) as the page gets it, and Python's answers for a set of states.

    python tests/js/make_explorer_fixtures.py DIR   (or FEATVIZ_JS_EXPLORER_FIXTURES=DIR)

DIR gets:

* ``bundle.json`` / ``bundle.bin``: ``browser_bundle(data)``'s ``(meta, bytes)``;
* ``payloads.bin``: Python's payload bytes of every state, end to end;
* ``index.json``: ``states`` (each ``{"name", "image", "snapshot", "perturbation",
  "token", "offset", "size", "meta"}``: where its bytes lie in ``payloads.bin``, and
  ``ExplorerData.payload``'s meta with the token), ``inspections`` (each
  ``{"name", "state", "layer", "channel", "row", "col", "expected"}``:
  ``explorer_inspect.inspection``'s dict) and the versions it was made with.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository, for featviz

import numpy as np  # noqa: E402
import torch  # noqa: E402

import featviz  # noqa: E402
from featviz.widgets.explorer_data import ExplorerData, Perturbation  # noqa: E402
from featviz.widgets.explorer_inspect import inspection  # noqa: E402
from featviz.widgets.explorer_local import browser_bundle  # noqa: E402

USAGE = ("usage: python tests/js/make_explorer_fixtures.py DIR  "
         "(or FEATVIZ_JS_EXPLORER_FIXTURES=DIR)")


def states(images: int, snapshots: int) -> list[dict[str, Any]]:
    """~25 states: several images, the first / middle / last snapshot, each slider alone
    (noise and erase included), combinations."""
    first, middle, last = 0, snapshots // 2, snapshots - 1
    out: list[dict[str, Any]] = []

    def add(name: str, image: int, snap: int, **p: Any) -> None:
        out.append({"name": name, "image": image % images, "snapshot": snap, "perturbation": p})

    for image in (0, 1, 7, 42, images - 1):
        add(f"image {image % images}, last snapshot", image, last)
    add("image 3, first snapshot (untrained)", 3, first)
    add("image 3, middle snapshot", 3, middle)
    add("image 5, first snapshot", 5, first)
    add("shift x", 2, last, shift_x=3)
    add("shift y", 2, last, shift_y=-4)
    add("fractional shift", 2, last, shift_x=0.5, shift_y=-2.25)
    add("rotate", 4, last, rotate=15)
    add("rotate 180", 4, middle, rotate=180)
    add("scale down", 6, last, scale=0.7)
    add("scale up", 6, last, scale=1.5)
    add("erase", 8, last, erase=10)
    add("erase everything", 8, last, erase=28)
    add("noise", 9, last, noise=0.3)
    add("noise, untrained", 9, first, noise=1.0)
    add("shift, rotate", 11, last, shift_x=3, shift_y=-2, rotate=30)
    add("rotate, scale", 12, middle, rotate=-60, scale=1.5)
    add("scale, erase, noise", 13, last, scale=0.7, erase=6, noise=0.3)
    add("every slider at its end", 14, last, shift_x=-7, shift_y=7, rotate=180, scale=0.5,
        erase=28, noise=2.0)
    add("every slider", 15, first, shift_x=7, shift_y=-7, rotate=-180, scale=2.0, erase=1,
        noise=0.05)
    add("long words (:g)", 16, last, rotate=12.345678, scale=1.015625, noise=0.000012)
    for k, s in enumerate(out):
        s["token"] = k + 1
    return out


def inspections(layers: list[str]) -> list[dict[str, Any]]:
    """~15 inspections: conv1 and conv2 at corners, edges and the centre, several channels
    and snapshots (state: an index into :func:`states`), a non-conv layer, wrong input."""
    cases = [
        ("conv1 top-left corner", 0, "conv1", 0, 0, 0),
        ("conv1 bottom-right corner", 0, "conv1", 15, 23, 23),
        ("conv1 centre", 1, "conv1", 7, 12, 12),
        ("conv1 top edge, untrained", 5, "conv1", 3, 0, 11),
        ("conv1 left edge, rotated", 11, "conv1", 9, 14, 0),
        ("conv1 with noise", 17, "conv1", 4, 10, 17),
        ("conv2 top-left corner", 0, "conv2", 0, 0, 0),
        ("conv2 bottom-right corner", 2, "conv2", 31, 7, 7),
        ("conv2 centre", 1, "conv2", 12, 4, 4),
        ("conv2 right edge, middle snapshot", 6, "conv2", 20, 3, 7),
        ("conv2 bottom edge, untrained", 7, "conv2", 5, 7, 2),
        ("conv2 centre, erased and noisy", 21, "conv2", 17, 4, 3),
        ("conv2 centre, shifted", 8, "conv2", 9, 5, 4),
        ("relu1 is not a convolution", 0, "relu1", 0, 3, 3),
        ("pool2 is not a convolution", 0, "pool2", 1, 1, 1),
        ("conv2 channel out of range", 0, "conv2", 32, 0, 0),
        ("conv2 position out of range", 0, "conv2", 0, 8, 0),
    ]
    assert all(layer in layers for _, _, layer, *_ in cases), layers
    return [{"name": n, "state": s, "layer": layer, "channel": c, "row": r, "col": col}
            for n, s, layer, c, r, col in cases]


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """``FEATVIZ_OFFLINE=1`` for the block (the bundled sample, never a download), then as
    it was: the caller may be a pytest process that runs other tests after."""
    old = os.environ.get("FEATVIZ_OFFLINE")
    os.environ["FEATVIZ_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["FEATVIZ_OFFLINE"]
        else:
            os.environ["FEATVIZ_OFFLINE"] = old


def make_fixtures(folder: str | os.PathLike) -> Path:
    """Write every fixture into ``folder``; the path of its ``index.json``."""
    with _offline():
        return _make_fixtures(Path(folder))


def _make_fixtures(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = ExplorerData(featviz.pretrained())
    meta, blob = browser_bundle(data)
    (folder / "bundle.json").write_text(json.dumps(meta))
    (folder / "bundle.bin").write_bytes(blob)
    chosen = states(len(data.images), len(data.snapshots))
    chunks, at = [], 0
    for s in chosen:
        payload, words = data.payload(s["image"], s["snapshot"], Perturbation(**s["perturbation"]))
        words["token"] = s["token"]
        s.update(offset=at, size=len(payload), meta=words)
        chunks.append(payload)
        at += len(payload)
    (folder / "payloads.bin").write_bytes(b"".join(chunks))
    cases = inspections(data.layer_names)
    for case in cases:
        s = chosen[case["state"]]
        p = Perturbation(**s["perturbation"])
        model = data.snapshots[s["snapshot"]][1]
        case["expected"] = inspection(model, data, data.input(s["image"], p), case["layer"],
                                      case["channel"], (case["row"], case["col"]))
    index = {"torch": torch.__version__, "numpy": np.__version__, "states": chosen,
             "inspections": cases}
    path = folder / "index.json"
    path.write_text(json.dumps(index, allow_nan=False))
    return path


def main(argv: list[str]) -> int:
    folder = argv[1] if len(argv) > 1 else os.environ.get("FEATVIZ_JS_EXPLORER_FIXTURES")
    if not folder:
        print(USAGE, file=sys.stderr)
        return 2
    path = make_fixtures(folder)
    index = json.loads(path.read_text())
    size = sum(p.stat().st_size for p in path.parent.iterdir())
    print(f"wrote {len(index['states'])} payloads and {len(index['inspections'])} inspections "
          f"to {path.parent} ({size / 2**20:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
