"""Peak memory of each lesson's kernel, for the workshop section of the README.

Runs every lesson (or those named) top to bottom in a fresh kernel, as a learner's
Run All does, and reads the kernel's peak resident memory (VmHWM, Linux) at the
end. The baseline, run in the same process, is a kernel that only imports torch
and featviz: the ratio says how much of a lesson's peak is the lesson's own.

    python benchmarks/kernel_memory.py                 # every lesson
    python benchmarks/kernel_memory.py 03 08           # some of them
    python benchmarks/kernel_memory.py --torch-only PY # import torch + a small forward pass in PY

``--torch-only`` compares PyTorch builds: run it with a CUDA build's and a CPU build's
Python to see how much the CUDA build adds to every kernel.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEAK = "import re; print(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1])"
SMALL_FORWARD = ("import torch; m = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), "
                 "torch.nn.MaxPool2d(2), torch.nn.Conv2d(16, 32, 5), torch.nn.Flatten()); "
                 "m(torch.randn(64, 1, 28, 28))")


def lesson_peak_mib(path: Path | None) -> tuple[float, float]:
    """(peak MiB of the kernel, seconds) for running ``path``; None runs only the imports."""
    import nbformat
    from nbclient import NotebookClient

    if path is None:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import torch, featviz")])
    else:
        nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK))
    env = dict(os.environ, FEATVIZ_OFFLINE=os.environ.get("FEATVIZ_OFFLINE", "1"), MPLBACKEND="Agg")
    os.environ.update(env)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "notebooks")}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    out = nb.cells[-1].outputs[0]["text"]
    return int(out.split()[-1]) / 1024, seconds


def torch_only(python: str) -> float:
    code = f"{SMALL_FORWARD}; {PEAK}"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    parser.add_argument("--torch-only", nargs="+", metavar="PYTHON",
                        help="compare Pythons: import torch and run a small forward pass in each")
    args = parser.parse_args()
    if args.torch_only:
        for python in args.torch_only:
            version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"],
                                     capture_output=True, text=True, check=True).stdout.strip()
            print(f"torch {version:>16}: peak {torch_only(python):7.1f} MiB  ({python})")
        return
    paths = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.lessons:
        paths = [p for p in paths if p.name[:2] in args.lessons]
    base, base_s = lesson_peak_mib(None)
    print(f"baseline (import torch, featviz): peak {base:7.1f} MiB  in {base_s:5.1f} s")
    results = []
    for path in paths:
        peak, seconds = lesson_peak_mib(path)
        results.append((peak, path.name))
        print(f"{path.name:28s} peak {peak:7.1f} MiB  ratio to baseline {peak / base:4.2f}  "
              f"run all {seconds:6.1f} s", flush=True)
    if results:
        peak, name = max(results)
        print(f"largest: {name}, {peak:.0f} MiB ({peak / base:.2f} x the baseline)")


if __name__ == "__main__":
    sys.exit(main())
