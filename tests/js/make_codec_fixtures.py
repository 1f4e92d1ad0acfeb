"""Payloads as the kernel writes them, for tests/js/codec.test.mjs: the explorer's for a few
states (explorer_payload.build_payload) and the sketchpad's maps (sketchpad_reader.maps_message),
each with Python's own dequantised values to compare with.

    python tests/js/make_codec_fixtures.py DIR
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def make_fixtures(folder: Path) -> None:
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    import torch

    import featviz
    from featviz.widgets._payload import dequantize
    from featviz.widgets.explorer_data import ExplorerData, Perturbation
    from featviz.widgets.sketchpad_reader import maps_message

    folder.mkdir(parents=True, exist_ok=True)
    data = ExplorerData(featviz.pretrained(), snapshots=None)
    cases = []
    for k, (index, pert) in enumerate([(0, Perturbation()), (7, Perturbation(rotate=20, noise=0.3))]):
        raw, meta = data.payload(index, 0, pert)
        (folder / f"explorer_{k}.bin").write_bytes(raw)
        maps = data.entry(index, 0, pert).maps
        expected = {}
        for L in meta["layers"]:
            c = L["shape"][0]
            floats = np.frombuffer(raw, "<f4", 4 * c, L["floats"])
            q = np.frombuffer(raw, np.uint8, int(np.prod(L["shape"])), L["start"]).reshape(L["shape"])
            expected[L["name"]] = (floats[:c, None, None] + floats[c:2 * c, None, None] * q).reshape(-1).tolist()
            assert np.abs(np.array(expected[L["name"]]) - maps[L["name"]].reshape(-1)).max() <= \
                floats[c:2 * c].max() / 2 + 1e-5
        cases.append({"file": f"explorer_{k}.bin", "meta": meta, "expected": expected})
    torch.manual_seed(0)
    q, meta = maps_message(torch.randn(20, 6, 6), "conv1")
    (folder / "sketchpad.bin").write_bytes(q.data)
    sketch = {"file": "sketchpad.bin", "meta": meta, "expected": dequantize(q).reshape(-1).tolist()}
    (folder / "codec.json").write_text(json.dumps({"explorer": cases, "sketchpad": sketch}))


if __name__ == "__main__":
    make_fixtures(Path(sys.argv[1]))
