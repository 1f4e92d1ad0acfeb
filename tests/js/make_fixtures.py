"""Write what ``tests/js/forward.test.mjs`` checks the browser engine against.

    FEATVIZ_OFFLINE=1 python tests/js/make_fixtures.py DIR      (or FEATVIZ_JS_FIXTURES=DIR)

For each case (the pretrained SimpleCNN, one training snapshot, the synthetic
networks of ``tests/_netspec_models.py``), DIR gets:

* ``NAME.payload.json``: ``NetSpec.to_json()`` (weights base64, as in a static page);
* ``NAME.weights.bin``: the same weights as raw bytes (as an anywidget trait sends them);
* ``NAME.inputs.f32``: the inputs, float32 little-endian, ``(count, C, H, W)``;
* ``NAME.expected.f32``: PyTorch's answer, per input the model's output then every
  named map in ``maps`` order, computed by ``featviz.activations`` (not by the
  tracer under test);

and ``manifest.json`` lists the cases. The digits are the first 100 images of
``featviz.mnist_tensors(train=False)`` (the bundled sample when offline).
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))     # tests/, for _netspec_models
sys.path.insert(0, str(HERE.parents[1]))  # the repository, for featviz

import _netspec_models as synthetic_models  # noqa: E402

import featviz  # noqa: E402
from featviz.netspec import browser_network  # noqa: E402

DIGITS = 100
SYNTHETIC_INPUTS = 8
SNAPSHOT = "step 300"
USAGE = "usage: FEATVIZ_OFFLINE=1 python tests/js/make_fixtures.py DIR  (or FEATVIZ_JS_FIXTURES=DIR)"  # a model half-way through training: maps unlike the final ones


def _f32(array: Any) -> bytes:
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def write_case(folder: Path, name: str, model: torch.nn.Module, inputs: torch.Tensor,
               input_shape: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Write one case's files into ``folder``; its manifest entry."""
    spec = browser_network(model, input_shape)
    layers = sorted({n.split("#", 1)[0] for n in spec.names})
    with torch.no_grad():
        acts = featviz.activations(model.eval(), inputs, layers)
    expected = [acts.output.reshape(len(inputs), -1)]
    expected += [acts[n].reshape(len(inputs), -1) for n in spec.names]
    (folder / f"{name}.payload.json").write_text(spec.to_json())
    (folder / f"{name}.weights.bin").write_bytes(spec.to_payload()["weights"])
    (folder / f"{name}.inputs.f32").write_bytes(_f32(inputs))
    (folder / f"{name}.expected.f32").write_bytes(_f32(torch.cat(expected, dim=1)))
    return {"name": name, "count": len(inputs), "input_shape": list(spec.input_shape),
            "output_shape": list(spec.output_shape),
            "maps": [{"name": s.name, "shape": list(s.shape)} for s in spec.steps
                     if s.name is not None]}


def _snapshot() -> torch.nn.Module:
    snapshots = featviz.pretrained_snapshots()
    labels = [label for label, _ in snapshots]
    if SNAPSHOT not in labels:
        raise SystemExit(f"no snapshot {SNAPSHOT!r} among {labels}: update SNAPSHOT")
    return dict(snapshots)[SNAPSHOT]


def make_fixtures(folder: Path) -> Path:
    """Write every case into ``folder`` (created if needed); the manifest's path."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    digits = featviz.mnist_tensors(train=False)[0][:DIGITS]
    cases = [write_case(folder, "pretrained", featviz.pretrained(), digits),
             write_case(folder, "snapshot", _snapshot(), digits)]
    with warnings.catch_warnings():  # torch's note on padding='same' with an even kernel
        warnings.simplefilter("ignore", UserWarning)
        for name in synthetic_models.SYNTHETIC:
            model, shape = synthetic_models.synthetic(name)
            inputs = synthetic_models.inputs(shape, SYNTHETIC_INPUTS)
            cases.append(write_case(folder, name, model, inputs, shape))
    manifest = folder / "manifest.json"
    manifest.write_text(json.dumps({"cases": cases}, indent=1))
    return manifest


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else os.environ.get("FEATVIZ_JS_FIXTURES")
    if not target:
        print(USAGE, file=sys.stderr)
        return 2
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    print(make_fixtures(Path(target)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
