"""Screenshots of the live explorer (and sketchpad) in JupyterLab, for the lessons' markdown.

Opens lesson 05 in a private JupyterLab server in headless Chromium (the browser
tests' machinery, ``tests/_browser.py``), runs it, then changes a control of the
first explorer in the page - the layer dropdown, to ``conv2`` - and saves what the
reader would see::

    python scripts/screenshots.py                 # writes notebooks/images/*.png
    python scripts/screenshots.py --out /tmp/shots

Needs Chromium (``/usr/bin/chromium`` or ``FEATVIZ_CHROMIUM``) and Playwright.
The PNGs are reduced to a 256-colour palette, which keeps them small (well under
200 KB) without changing what they show.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

NOTEBOOK = "05_explorer.ipynb"
LAYER = "conv2"                      # the control change shown in the screenshot
CANVAS = "canvas.featviz-explorer-canvas"
BROWSER_S = 420
EXPLORER_PNG, SKETCHPAD_PNG = "explorer_live.png", "sketchpad_live.png"

def _small_png(path: Path, limit: int = 200_000) -> None:
    """Re-encode a screenshot over ``limit`` bytes with a 256-colour palette."""
    from PIL import Image

    if path.stat().st_size <= limit:
        return
    with Image.open(path) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            path, optimize=True)


def tiles_on_canvas(png: Path) -> tuple[int, int, float]:
    """(rows, columns, ink) of the map grid in a screenshot of the explorer's canvas: the
    tiles are the wide blocks of drawn pixels between white gaps, below the header lines;
    ink is the share of drawn (non-white) pixels inside the grid."""
    import numpy as np
    from PIL import Image

    with Image.open(png) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    drawn = (px < 245).any(axis=2)
    height, width = drawn.shape
    below = drawn[int(0.18 * height):]                      # under the two header lines

    def runs(line: np.ndarray, least: int) -> list[tuple[int, int]]:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], line.astype(int), [0]])))
        return [(a, b) for a, b in zip(edges[::2], edges[1::2]) if b - a >= least]

    cols = runs(below.any(axis=0), least=width // 30)       # the colour bar is narrower
    left, right = cols[0][0], cols[-1][1]
    rows = runs(below[:, left:cols[0][1]].any(axis=1), least=height // 30)
    top, bottom = rows[0][0], rows[-1][1]
    ink = float(below[top:bottom, left:right].mean())
    return len(rows), len(cols), ink


def capture(out: Path, work: Path) -> dict:
    """Run lesson 05 in JupyterLab, switch the first explorer to LAYER, save the
    screenshots in ``out`` (and the canvas alone in ``work``); returns what the page
    showed: the layer dropdown's label, the canvas state and the canvas screenshot."""
    from _browser import (Deadline, cell_error, find_chromium, jupyter_lab, launch,
                          open_and_run_all, run_complete, wait_until)
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    root = work / "root"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    path = f"notebooks/{NOTEBOOK}"
    out.mkdir(parents=True, exist_ok=True)
    with jupyter_lab(work / "home", root) as (base, _log), sync_playwright() as pw:
        left = Deadline(BROWSER_S)
        browser = launch(pw, chromium, left.ms(60))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            open_and_run_all(page, base, path, left)
            if not wait_until(lambda: run_complete(page), left(300), page):
                raise RuntimeError(f"Run All did not finish: {cell_error(page)}")
            widget = page.locator(".featviz-explorer").first
            widget.scroll_into_view_if_needed()
            canvas = page.locator(CANVAS).first
            before = canvas.get_attribute("data-state")
            select = page.locator(".featviz-layer select").first
            option = next(o for o in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if o.startswith(LAYER + " "))
            select.select_option(option)
            page.wait_for_function(
                f"() => document.querySelector('{CANVAS}').dataset.state !== {json.dumps(before)}",
                timeout=left.ms(20))
            page.wait_for_timeout(300)
            found = {"layer_label": select.evaluate("s => s.options[s.selectedIndex].text"),
                     "state": canvas.get_attribute("data-state"),
                     "canvas_png": work / "canvas.png"}
            canvas.screenshot(path=str(found["canvas_png"]))
            widget.screenshot(path=str(out / EXPLORER_PNG))
            _small_png(out / EXPLORER_PNG)
            pad = page.locator(".featviz-sketchpad").first
            if pad.count():
                pad.scroll_into_view_if_needed()
                pad.screenshot(path=str(out / SKETCHPAD_PNG))
                _small_png(out / SKETCHPAD_PNG)
        finally:
            browser.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "notebooks" / "images")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        found = capture(args.out, Path(work))
        rows, cols, ink = tiles_on_canvas(found["canvas_png"])
    print(f"explorer: {found['layer_label']}; a grid of {rows} x {cols} tiles, {ink:.0%} drawn")
    for name in (EXPLORER_PNG, SKETCHPAD_PNG):
        if (args.out / name).exists():
            print(f"wrote {args.out.name}/{name} ({(args.out / name).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
