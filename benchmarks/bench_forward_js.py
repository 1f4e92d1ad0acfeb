"""The browser engine's forward pass (featviz/widgets/forward.js) of the pretrained
SimpleCNN, timed in Node: median over 200 runs, and its ratio to a plain JavaScript
loop doing the same number of multiply-adds in the same process
(``bench_forward_js.mjs``). Target: well under 16 ms (one frame) per image.

For context only (another process, another language), the same image through
PyTorch on one CPU thread, as the widgets' kernel path runs it.

Run: ``.venv/bin/python benchmarks/bench_forward_js.py`` (a few seconds; needs ``node``).
"""
from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FEATVIZ_OFFLINE", "1")

import torch  # noqa: E402

import featviz  # noqa: E402
from featviz.netspec import browser_network  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = 200


def torch_one_image_ms(model: torch.nn.Module, runs: int = RUNS) -> float:
    x = featviz.digit_examples()[0][:1]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for _ in range(20):
                model(x)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                model(x)
                times.append((time.perf_counter() - t) * 1e3)
    finally:
        torch.set_num_threads(before)
    return statistics.median(times)


def main() -> int:
    node = shutil.which("node")
    if node is None:
        print("node is not installed: nothing to measure", file=sys.stderr)
        return 1
    model = featviz.pretrained()
    with tempfile.TemporaryDirectory() as folder:
        payload = Path(folder) / "simplecnn.json"
        payload.write_text(browser_network(model).to_json())
        subprocess.run([node, str(HERE / "bench_forward_js.mjs"), str(payload), str(RUNS)],
                       check=True)
    print(f"(context) PyTorch, one image, 1 thread: median {torch_one_image_ms(model):.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
