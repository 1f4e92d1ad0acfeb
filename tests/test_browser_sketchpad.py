"""The sketchpad in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Runs a notebook with a sketchpad (by default a one-cell notebook written to a
temporary folder; set :data:`NOTEBOOK` to a course lesson to drive that instead),
draws on the pad with the mouse, and reads the prediction from the page: a
vertical stroke is a 1 and a circle a 0. It reports the time from lifting the pen
(``pointerup``) to the new prediction on the page, measured in the page with
``performance.now()``, changes the layer, and saves screenshots.

Skipped without Chromium or Playwright, failed instead when
``FEATVIZ_REQUIRE_BROWSER=1``; screenshots and timings go to ``FEATVIZ_ARTIFACTS``
(see ``tests/_browser.py``), else they stay in the test's temporary folder.
"""
from __future__ import annotations

import contextlib
import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
from _browser import (REPO, SERVER_START_S, Deadline, artifacts_dir, cell_error, find_chromium,
                      jupyter_lab, launch, open_and_run_all, run_complete, wait_until)

# The notebook to run, relative to notebooks/ (for example "05_explorer.ipynb"), or None
# for a one-cell notebook with a sketchpad written to the test's temporary folder.
NOTEBOOK: str | None = "05_explorer.ipynb"
SKETCHPAD_CELL = "import featviz\n\npad = featviz.sketchpad()\npad"
BROWSER_S = 150       # everything in the browser, from opening the page to the last screenshot
STEP_S = 20           # one stroke, click or dropdown change
ROUNDS = 3            # a 1 and a 0 drawn this many times

# Records, in the page, each pointerup on the pad and each answer the pad shows
# (its data-seq attribute: the number of the drawing the kernel answered).
_WATCH = """(root) => {
  const w = {ups: [], answers: []};
  window.__fvs = w;
  root.querySelector('canvas.fvs-pad').addEventListener(
      'pointerup', () => w.ups.push(performance.now()), {capture: true});
  new MutationObserver(() => w.answers.push([Number(root.dataset.seq), performance.now()]))
      .observe(root, {attributes: true, attributeFilter: ['data-seq']});
}"""


def _notebook(root: Path) -> str:
    """Put the notebook to run under ``root``; returns its path relative to ``root``."""
    if NOTEBOOK is not None:
        shutil.copytree(REPO / "notebooks", root / "notebooks")
        return f"notebooks/{NOTEBOOK}"
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(SKETCHPAD_CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "sketchpad.ipynb")
    return "sketchpad.ipynb"


def _stroke(page, pad, points, steps: int = 4) -> None:
    """Draw through ``points`` (fractions of the pad) with the mouse, button held."""
    box = pad.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def _circle(n: int = 40) -> list[tuple[float, float]]:
    t = np.linspace(-0.5 * np.pi, 1.6 * np.pi, n)  # a little past closed, as a hand draws it
    return [(0.5 + 0.27 * np.cos(a), 0.5 + 0.34 * np.sin(a)) for a in t]


def _answered(page, root, left: Deadline) -> float:
    """Wait until the pad shows the answer to the last drawing (none left to send or
    unanswered); returns the ms from the last pointerup to that answer on the page."""
    page.wait_for_function(
        "r => r.dataset.pending === '0' && Number(r.dataset.seq) >= Number(r.dataset.sent)",
        arg=root.element_handle(), timeout=left.ms(STEP_S))
    sent = int(root.get_attribute("data-sent"))
    w = page.evaluate("() => window.__fvs")
    up = w["ups"][-1] if w["ups"] else float("-inf")
    done = next(t for seq, t in w["answers"] if seq >= sent and t >= up)
    return done - up


@pytest.mark.timeout(SERVER_START_S + BROWSER_S + 90)
def test_sketchpad_in_jupyterlab(tmp_path, capsys, record_property):
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    root_dir = tmp_path / "root"
    root_dir.mkdir()
    path = _notebook(root_dir)
    out = artifacts_dir() or tmp_path
    timings: dict[str, object] = {}
    with jupyter_lab(tmp_path / "jupyter", root_dir) as (base, log), sync_playwright() as pw:
        left = Deadline(BROWSER_S)
        problems: list[str] = []
        browser = launch(pw, chromium, left.ms(60))
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        try:
            page.set_default_timeout(STEP_S * 1000)
            page.on("pageerror", lambda e: problems.append(str(e)))
            open_and_run_all(page, base, path, left)
            ready = ".featviz-sketchpad[data-version]"
            if not wait_until(lambda: page.query_selector(ready) is not None
                              or cell_error(page) is not None, left(120), page):
                raise AssertionError("the sketchpad did not appear after Run All")
            assert cell_error(page) is None, f"a notebook cell failed:\n{cell_error(page)}"
            assert wait_until(lambda: run_complete(page), left(120), page), "Run All did not finish"
            root = page.locator(".featviz-sketchpad").first
            view = page.locator(".featviz-sketchpad-view").first
            pad = root.locator("canvas.fvs-pad")
            shown = root.locator(".fvs-prediction")
            view.scroll_into_view_if_needed()
            root.evaluate(_WATCH)

            clears: list[float] = []

            def clear() -> None:
                t0 = page.evaluate("() => performance.now()")
                root.locator("button.fvs-clear").click()
                _answered(page, root, left)
                clears.append(page.evaluate("() => window.__fvs.answers.at(-1)[1]") - t0)
                assert shown.inner_text() == "–", "Clear left a prediction on the page"

            delays = []
            for i in range(ROUNDS):
                clear()
                _stroke(page, pad, [(0.5, 0.14), (0.51, 0.5), (0.52, 0.86)])
                delays.append(_answered(page, root, left))
                assert shown.inner_text() == "1", \
                    f"a vertical stroke was read as {shown.inner_text()}"
                if i == 0:
                    view.screenshot(path=str(out / "sketchpad_one.png"))
                clear()
                _stroke(page, pad, _circle())
                delays.append(_answered(page, root, left))
                assert shown.inner_text() == "0", f"a circle was read as {shown.inner_text()}"
            view.screenshot(path=str(out / "sketchpad_zero.png"))
            timings["pointerup_to_prediction_ms"] = {"median": statistics.median(delays),
                                                     "all": [round(d, 1) for d in delays]}
            # the same trip without a model run (Clear; includes the click): the floor
            timings["clear_to_blank_ms"] = {"median": statistics.median(clears),
                                            "all": [round(d, 1) for d in clears]}

            # the layer Dropdown: the maps follow (one trip to the kernel)
            title = root.locator(".fvs-maps .fvs-title")
            select = page.locator(".featviz-sketchpad-layer select").first
            target = next(o for o in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if o.startswith("conv2"))
            select.select_option(target)
            assert wait_until(lambda: "conv2" in title.inner_text(), left(STEP_S), page), \
                f"the layer changed but the maps did not: {title.inner_text()!r}"
            assert "32 maps of 8×8" in title.inner_text()
            page.wait_for_timeout(200)
            view.screenshot(path=str(out / "sketchpad_conv2.png"))
            assert shown.inner_text() == "0"
            assert not [p for p in problems if "featviz" in p.lower() or "fvs" in p], problems
        except Exception:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(out / "sketchpad_failure.png"), full_page=True)
            print(f"server log (tail):\n{log.read_text()[-4000:]}\npage errors: {problems}")
            raise
        finally:
            browser.close()

    record_property("pointerup_to_prediction_ms", timings["pointerup_to_prediction_ms"])
    (out / "sketchpad_timings.json").write_text(json.dumps(timings, indent=2))
    with capsys.disabled():
        ms = timings["pointerup_to_prediction_ms"]
        floor = timings["clear_to_blank_ms"]
        print(f"\n[browser] sketchpad pointerup-to-prediction: median {ms['median']:.0f} ms "
              f"(all: {ms['all']}); Clear-to-blank median {floor['median']:.0f} ms; "
              f"screenshots in {out}")
    assert (out / "sketchpad_zero.png").stat().st_size > 10_000
