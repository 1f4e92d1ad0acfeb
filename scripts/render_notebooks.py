"""Execute the course notebooks in place, so that the committed files show their outputs.

    python scripts/render_notebooks.py                      # all of notebooks/
    python scripts/render_notebooks.py notebooks/04_feature_maps.ipynb

Uses the full MNIST when it can find it (in FEATVIZ_DATA_ROOT or the default
cache folder, which is linked to ../shared/data beside the checkout when that
holds a copy), otherwise the bundled sample.
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
sys.path.insert(0, str(ROOT))
from featviz.data import data_root, data_source, has_full_mnist  # noqa: E402
from fullmnist import FULL  # noqa: E402  (this folder is on sys.path when run as a script)



def link_full_mnist() -> None:
    """Make the default data folder show the full MNIST, so the notebooks use it
    the way a learner's would (and print the learner's path, not this machine's)."""
    if "FEATVIZ_DATA_ROOT" in os.environ or has_full_mnist(data_root()) or not has_full_mnist(FULL):
        return
    raw = data_root() / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for src in (FULL / "MNIST" / "raw").iterdir():
        if not (raw / src.name).exists():
            (raw / src.name).symlink_to(src.resolve())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    link_full_mnist()
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    print(f"data: {data_source().describe()}")

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        # no saved widget state: it would hold the widgets' state at the end of the run,
        # not the starting state that the stills under them show
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                store_widget_state=False,
                                resources={"metadata": {"path": str(path.parent)}})
        nb.metadata.pop("widgets", None)
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
