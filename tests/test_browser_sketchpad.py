"""The sketchpad in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Runs lesson 05 (set :data:`NOTEBOOK` to None for a one-cell notebook instead), draws on
the pad with the mouse and reads the prediction from the page: a vertical stroke is a 1
and a circle a 0. The course's SimpleCNN runs in the page (the browser engine), so the
time from lifting the pen (``pointerup``) to the new prediction on the page, measured
in the page with ``performance.now()``, holds no kernel round trip. The test proves it
with the kernel process frozen (SIGSTOP, then SIGCONT): drawing and changing the layer
still work, at the same speed. Screenshots are saved.

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
from _browser import (REPO, SERVER_START_S, Deadline, artifacts_dir, cell_error, draw_stroke,
                      find_chromium, frozen_kernel, jupyter_lab, kernel_is_stopped, launch, open_and_run_all,
                      run_complete, wait_until)

# The notebook to run, relative to notebooks/ (for example "05_explorer.ipynb"), or None
# for a one-cell notebook with a sketchpad written to the test's temporary folder.
NOTEBOOK: str | None = "05_explorer.ipynb"
SKETCHPAD_CELL = "import featviz\n\npad = featviz.sketchpad()\npad"
BROWSER_S = 150       # everything in the browser, from opening the page to the last screenshot
STEP_S = 20           # one stroke, click or dropdown change
ROUNDS = 3            # a 1 and a 0 drawn this many times

# Records, in the page, each pointerup on the pad and each time the pad has read the
# drawing and drawn the answer (its data-reads attribute counts them).
_WATCH = """(root) => {
  const w = {ups: [], reads: []};
  window.__fvs = w;
  root.querySelector('canvas.fvs-pad').addEventListener(
      'pointerup', () => w.ups.push(performance.now()), {capture: true});
  new MutationObserver(() => w.reads.push(performance.now()))
      .observe(root, {attributes: true, attributeFilter: ['data-reads']});
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


def _circle(n: int = 40) -> list[tuple[float, float]]:
    t = np.linspace(-0.5 * np.pi, 1.6 * np.pi, n)  # a little past closed, as a hand draws it
    return [(0.5 + 0.27 * np.cos(a), 0.5 + 0.34 * np.sin(a)) for a in t]


def _lift_to_answer(page) -> float:
    """The ms from the last pointerup to the first answer drawn after it."""
    page.wait_for_function("() => { const w = window.__fvs; return w.ups.length && "
                           "w.reads.some(t => t >= w.ups.at(-1)); }", timeout=STEP_S * 1000)
    w = page.evaluate("() => window.__fvs")
    up = w["ups"][-1]
    return next(t for t in w["reads"] if t >= up) - up


def _draw_one_and_zero(page, root, pad, shown, delays: list[float]) -> None:
    """Clear, draw a 1, clear, draw a 0: each read as it should be; the delays recorded."""
    for points, digit in (([(0.5, 0.14), (0.51, 0.5), (0.52, 0.86)], "1"), (_circle(), "0")):
        root.locator("button.fvs-clear").click()
        assert shown.inner_text() == "–", "Clear left a prediction on the page"
        draw_stroke(page, pad, points)
        delays.append(_lift_to_answer(page))
        assert shown.inner_text() == digit, f"a {digit} was read as {shown.inner_text()}"


def _median(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "all": [round(d, 2) for d in values]}


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

            assert root.get_attribute("data-engine") == "browser", \
                f"the SimpleCNN should run in the page: {root.locator('.fvs-engine').inner_text()}"
            idle: list[float] = []
            for i in range(ROUNDS):
                _draw_one_and_zero(page, root, pad, shown, idle)
                if i == 0:
                    view.screenshot(path=str(out / "sketchpad_zero.png"))
            timings["pointerup_to_prediction_ms"] = _median(idle)

            # -- the kernel frozen: the pad still reads every drawing, and a new layer shows
            title = root.locator(".fvs-maps .fvs-title")
            select = page.locator(".featviz-sketchpad-layer select").first
            target = next(o for o in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if o.startswith("conv2"))
            busy: list[float] = []
            with frozen_kernel(base, path) as pid:
                for i in range(ROUNDS):
                    _draw_one_and_zero(page, root, pad, shown, busy)
                    if i == 0:
                        view.screenshot(path=str(out / "sketchpad_zero_kernel_frozen.png"))
                select.select_option(target)
                assert wait_until(lambda: "conv2" in title.inner_text(), STEP_S, page), \
                    f"the layer changed but the maps did not: {title.inner_text()!r}"
                assert "32 maps of 8×8" in title.inner_text()
                page.wait_for_timeout(200)
                view.screenshot(path=str(out / "sketchpad_conv2.png"))
                assert kernel_is_stopped(pid), "the kernel ran during the frozen phase"
            timings["pointerup_to_prediction_kernel_frozen_ms"] = _median(busy)
            # the kernel, woken, catches up with the drawing: Python's pad follows the page
            page.wait_for_function(
                "r => r.dataset.pending === '0' && Number(r.dataset.seq) >= Number(r.dataset.sent)",
                arg=root.element_handle(), timeout=STEP_S * 1000)
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
        ms, frozen = timings["pointerup_to_prediction_ms"], timings["pointerup_to_prediction_kernel_frozen_ms"]
        print(f"\n[browser] sketchpad pointerup-to-prediction: median {ms['median']:.1f} ms "
              f"(all: {ms['all']}); kernel frozen: median {frozen['median']:.1f} ms "
              f"(all: {frozen['all']}); screenshots in {out}")
    assert (out / "sketchpad_zero.png").stat().st_size > 10_000
