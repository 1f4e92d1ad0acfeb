"""Execute the course notebooks in place, so that the committed files show their outputs.

    python scripts/render_notebooks.py                      # all of notebooks/
    python scripts/render_notebooks.py notebooks/04_feature_maps.ipynb

Uses the full MNIST when it can find it (FEATVIZ_DATA_ROOT, else
../shared/data beside the checkout), otherwise the bundled sample.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    full = ROOT.parent / "shared" / "data"
    if "FEATVIZ_DATA_ROOT" not in os.environ and (full / "MNIST" / "raw").is_dir():
        os.environ["FEATVIZ_DATA_ROOT"] = str(full)
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    print(f"data root: {os.environ.get('FEATVIZ_DATA_ROOT', '(default cache)')}")

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try:
            client.execute()
        except Exception as exc:
            failed += 1
            print(f"FAILED {path.name}: {type(exc).__name__}: {str(exc)[-2000:]}")
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
