"""Save every featviz widget of the lessons as a static page, for the course site.

    python scripts/export_widgets.py                 # into site_exports/
    python scripts/export_widgets.py out/ notebooks/05_explorer.ipynb

Runs each lesson in a fresh kernel, as scripts/render_notebooks.py does (the full
MNIST when it is beside the checkout, else the bundled sample), and after each cell
whose output is a widget saves that widget with ``save_html`` as
``<lesson stem>-<k>.html`` (k counts the lesson's widget cells from 1): the name
scripts/build_site.py looks for. Widgets that are not featviz's (a plain slider, a
progress bar) are counted but not saved: the site shows their saved text. A lesson's
earlier exports that this run did not write again are deleted, so that none outlives
its widget cell. About a minute for lessons 04 and 05 on a laptop's CPU.
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
sys.path.insert(0, str(ROOT / "scripts"))
from render_notebooks import link_full_mnist  # noqa: E402

WIDGET = "application/vnd.jupyter.widget-view+json"
# the cell's result, by its number (the lessons assign `_ = ...`, which IPython then keeps)
SAVE = """import featviz.widgets as _fv_widgets
_fv_shown = Out.get({count})
if isinstance(_fv_shown, (_fv_widgets.Explorer, _fv_widgets.Sketchpad)):
    _fv_shown.save_html({path!r})
    print("saved")"""


def export(path: Path, out: Path, timeout: int) -> list[Path]:
    """Run lesson ``path``; save its featviz widgets into ``out``; the files written."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    saved, k = [], 0
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            client.execute_cell(cell, index)
            if not any(WIDGET in o.get("data", {}) for o in cell.get("outputs", [])):
                continue
            k += 1
            target = out / f"{path.stem}-{k}.html"
            probe = nbformat.v4.new_code_cell(SAVE.format(count=cell.execution_count, path=str(target)))
            nb.cells.append(probe)   # run beside the lesson, never kept in it
            try:
                client.execute_cell(probe, len(nb.cells) - 1)
            finally:
                nb.cells.pop()
            if any("saved" in o.get("text", "") for o in probe.outputs):
                saved.append(target)
            for o in probe.outputs:
                if o.output_type == "error":
                    raise RuntimeError(f"{path.name}, widget {k}: could not save it: "
                                       f"{o.ename}: {o.evalue}")
    return saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", type=Path, default=ROOT / "site_exports")
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    link_full_mnist()
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    out = args.out.resolve()   # the kernel runs beside the lesson, in notebooks/
    out.mkdir(parents=True, exist_ok=True)
    for path in paths:
        start = time.perf_counter()
        files = export(path.resolve(), out, args.timeout)
        for old in out.glob(f"{path.stem}-*.html"):   # a widget cell the lesson no longer has
            if old not in files:
                old.unlink()
        sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in files) or "no featviz widget"
        print(f"{path.name}: {sizes} ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
