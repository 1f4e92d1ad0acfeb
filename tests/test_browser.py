"""The explorer in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Runs lesson 05 (set :data:`NOTEBOOK` to None for a one-cell notebook with an explorer).
The course's network runs in the page (the browser engine), so every control must
work with the kernel process frozen (SIGSTOP, then SIGCONT; with ipykernel 7 a
sleeping cell would still answer widget messages): the filter slider, the layer,
the colour scale, a new image, the rotation slider, and the convolution inspector,
whose sum on the page equals the activation computed here in Python. Then the same
steps with the kernel running again.

Reports medians measured in the page with ``performance.now()``: from the key
press / click / selection to the canvas drawn (``data-drawn``, set by the
front end) and to the next animation frame (the frame that shows it).

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

import pytest
from _browser import (REPO, SERVER_START_S, Deadline, artifacts_dir, cell_error, find_chromium,
                      frozen_kernel, jupyter_lab, kernel_is_stopped, launch, open_and_run_all,
                      run_complete, wait_until)

# The notebook to run, relative to notebooks/ (for example "05_explorer.ipynb"), or None
# for a one-cell notebook with an explorer written to the test's temporary folder. Its
# first explorer must be the default one, featviz.explorer(featviz.pretrained()).
NOTEBOOK: str | None = "05_explorer.ipynb"
EXPLORER_CELL = "import time\nimport featviz\n\nex = featviz.explorer(featviz.pretrained())\nex"
BROWSER_S = 300       # everything in the browser, from opening the page to the last screenshot
STEP_S = 20           # one slider step, click or selection
CANVAS = "canvas.featviz-explorer-canvas"

# Records, in the page, the first input event (key, pointer, selection) and the first
# redraw of the canvas after it, then the animation frame that follows.
_WATCH = """(needPayload) => {
  const cv = document.querySelector('%s');
  const token = (cv.dataset.state || '').split('|')[0];
  const w = {start: null, drawn: null, frame: null, draws: Number(cv.dataset.draws),
             state: cv.dataset.state};
  window.__fvx = w;
  const first = () => { if (w.start === null) w.start = performance.now(); };
  for (const kind of ['keydown', 'pointerdown', 'change']) {
    document.addEventListener(kind, first, {capture: true, once: true});
  }
  new MutationObserver(() => {
    const fresh = !needPayload || cv.dataset.state.split('|')[0] !== token;
    if (w.drawn === null && Number(cv.dataset.draws) > w.draws && fresh) {
      w.drawn = Number(cv.dataset.drawn);
      w.ms = Number(cv.dataset.ms);
      w.state = cv.dataset.state;
      requestAnimationFrame(() => { w.frame = performance.now(); });
    }
  }).observe(cv, {attributes: true, attributeFilter: ['data-draws']});
}""" % CANVAS


def _notebook(root: Path) -> str:
    """Put the notebook to run under ``root``; returns its path relative to ``root``."""
    nbformat = pytest.importorskip("nbformat")
    if NOTEBOOK is not None:
        shutil.copytree(REPO / "notebooks", root / "notebooks")
        path = f"notebooks/{NOTEBOOK}"
        nb = nbformat.read(root / path, as_version=4)
    else:
        path = "explorer.ipynb"
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(EXPLORER_CELL)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
    nbformat.write(nb, root / path)
    return path


class _Page:
    """The explorer on the page: steps that each must redraw the canvas, timed."""

    def __init__(self, page, left: Deadline) -> None:
        self.page, self.left = page, left
        self.canvas = page.locator(CANVAS).first
        self.times: dict[str, list[tuple[float, float]]] = {}

    def pixels(self) -> str:
        return self.canvas.evaluate("c => c.toDataURL()")

    def state(self) -> list[str]:
        return (self.canvas.get_attribute("data-state") or "").split("|")

    def step(self, what: str, act, *, new_payload: bool = False) -> dict:
        """Do ``act()``; wait for the canvas to be redrawn (with a new payload from the
        kernel if ``new_payload``); check its pixels changed; record the delays."""
        before = self.pixels()
        self.page.evaluate(_WATCH, new_payload)
        act()
        self.page.wait_for_function("() => window.__fvx.frame !== null",
                                    timeout=self.left.ms(STEP_S))
        w = self.page.evaluate("() => window.__fvx")
        assert w["start"] is not None, f"{what}: no input event reached the page"
        assert self.pixels() != before, f"{what}: the canvas did not change"
        self.times.setdefault(what, []).append(
            (w["drawn"] - w["start"], w["frame"] - w["start"], w["ms"]))
        return w

    def key(self, selector: str, key: str) -> None:
        handle = self.page.locator(f"{selector} .noUi-handle").first
        handle.focus()
        self.page.keyboard.press(key)

    def towards_room(self, selector: str) -> str:
        handle = self.page.locator(f"{selector} .noUi-handle").first
        now = float(handle.get_attribute("aria-valuenow") or 0)
        top = float(handle.get_attribute("aria-valuemax") or 0)
        return "ArrowRight" if now < top else "ArrowLeft"

    def filter_step(self, what: str) -> None:
        key = self.towards_room(".featviz-filter-slider")
        self.step(what, lambda: self.key(".featviz-filter-slider", key))

    def layer_step(self, what: str, name: str) -> None:
        select = self.page.locator(".featviz-layer select").first
        option = next(o for o in select.locator("option").evaluate_all(
            "els => els.map(e => e.value)") if o.startswith(name + " "))
        self.step(what, lambda: select.select_option(option))

    def scale_step(self, what: str, label: str) -> None:
        self.step(what, lambda: self.page.locator(
            f".featviz-scale button:has-text('{label}')").first.click())

    def medians(self) -> dict:
        out = {}
        for what, pairs in self.times.items():
            out[what] = {"n": len(pairs),
                         "drawn_ms": round(statistics.median(p[0] for p in pairs), 2),
                         "next_frame_ms": round(statistics.median(p[1] for p in pairs), 2),
                         "draw_only_ms": round(statistics.median(p[2] for p in pairs), 2),
                         "all_drawn_ms": [round(p[0], 2) for p in pairs]}
        return out


def _steps(ex: _Page, when: str, layers: tuple[str, ...]) -> None:
    """Filter, layer and scale steps, each of which must change the canvas."""
    for _ in range(5):
        ex.filter_step(f"filter ({when})")
    for name in layers:
        ex.layer_step(f"layer ({when})", name)
    for label in ("per map", "shared", "per map", "shared"):
        ex.scale_step(f"scale ({when})", label)


def _expected_value(image: int, layer: str, channel: int, row: int, col: int) -> float:
    """The activation the inspector takes apart, computed here, as capture gives it."""
    import featviz
    from featviz.widgets.explorer_data import default_images

    images, _ = default_images()
    acts = featviz.activations(featviz.pretrained().eval(), images[image:image + 1], [layer])
    return float(acts[layer][0, channel, row, col])


def _inspect(ex: _Page) -> dict:
    """Single view of conv2, click one map position; returns what the page and Python say."""
    page = ex.page
    ex.layer_step("layer (idle)", "conv2")
    ex.step("view", lambda: page.locator(".featviz-view button:has-text('one map')").first.click())
    box = json.loads(ex.canvas.get_attribute("data-map"))
    row, col = 3, 5
    x = box["x0"] + (col + 0.5) * box["mw"] / box["w"]
    y = box["y0"] + (row + 0.5) * box["mh"] / box["h"]
    ex.canvas.click(position={"x": x, "y": y})
    total = page.locator(".fv-insp-total").first
    total.wait_for(timeout=ex.left.ms(STEP_S))
    _, layer_index, channel, _, _ = ex.state()
    image = int(page.locator(".featviz-image-slider .widget-readout").first.inner_text())
    return {"image": image, "layer": "conv2", "channel": int(channel), "row": row, "col": col,
            "page_total": float(total.get_attribute("data-value")),
            "page_total_text": total.inner_text(),
            "page_value": float(page.locator(".fv-insp-value").first.get_attribute("data-value")),
            "head": page.locator(".fv-insp-head").first.inner_text()}


@pytest.mark.timeout(SERVER_START_S + BROWSER_S + 120)
def test_explorer_in_jupyterlab(tmp_path, capsys, record_property):
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    root = tmp_path / "root"
    root.mkdir()
    path = _notebook(root)
    shots: dict[str, Path] = {}
    result: dict[str, object] = {"notebook": NOTEBOOK or "one explorer cell"}

    with jupyter_lab(tmp_path / "home", root) as (base, log), sync_playwright() as pw:
        problems: list[str] = []
        left = Deadline(BROWSER_S)
        browser = launch(pw, chromium, left.ms(60))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(STEP_S * 1000)
            page.on("pageerror", lambda e: problems.append(str(e)))
            open_and_run_all(page, base, path, left)
            # the explorer has drawn what the kernel sent (the token of its first payload)
            drawn = (f"() => {{ const c = document.querySelector('{CANVAS}'); "
                     f"return c ? (c.dataset.state || '') : ''; }}")
            if not wait_until(lambda: page.evaluate(drawn).split("|")[0] not in ("", "undefined"),
                              left(120), page):
                raise AssertionError(f"no explorer drawn after Run All: {cell_error(page)}")
            widget = page.locator(".featviz-explorer").first
            widget.scroll_into_view_if_needed()
            ex = _Page(page, left)
            shots["explorer_start.png"] = tmp_path / "start.png"
            widget.screenshot(path=str(shots["explorer_start.png"]))

            if not wait_until(lambda: run_complete(page), left(150), page):
                raise AssertionError(f"Run All did not finish: {cell_error(page)}")
            assert widget.get_attribute("data-engine") == "browser" or \
                page.locator(".fv-explorer-view[data-engine=browser]").count(), \
                "the course's network should run in the page"

            # -- the kernel frozen: everything is computed in the page
            with frozen_kernel(base, path) as pid:
                _steps(ex, "kernel frozen", layers=("conv2", "pool1", "relu2", "relu1"))
                handle = page.locator(".featviz-filter-slider .noUi-handle").first
                assert handle.get_attribute("aria-valuemax") in ("15", "15.0"), \
                    "the filter slider's range follows the layer (relu1: 16 maps)"
                for _ in range(5):
                    key = ex.towards_room(".featviz-image-slider")
                    ex.step("image (kernel frozen)", lambda k=key: ex.key(".featviz-image-slider", k),
                            new_payload=True)
                found = _inspect(ex)
                for _ in range(3):  # rotation: 5 degrees a step
                    ex.step("rotation (kernel frozen)", lambda: ex.key(".featviz-rotate", "ArrowRight"),
                            new_payload=True)
                still_busy = kernel_is_stopped(pid)
                assert still_busy, "the kernel ran during the frozen phase"
                shots["explorer_kernel_frozen.png"] = tmp_path / "frozen.png"
                widget.screenshot(path=str(shots["explorer_kernel_frozen.png"]))
            found["python_value"] = _expected_value(found["image"], found["layer"],
                                                    found["channel"], found["row"], found["col"])
            result["inspector"] = found
            assert found["page_total"] == pytest.approx(found["python_value"], abs=1e-4)
            assert found["page_value"] == pytest.approx(found["python_value"], abs=1e-4)
            assert float(found["page_total_text"]) == pytest.approx(found["python_value"],
                                                                    rel=1e-3, abs=1e-4)

            # -- the kernel running again
            _steps(ex, "idle", layers=("pool2", "conv1", "relu2", "pool1", "conv2", "relu1"))
            for _ in range(2):
                ex.step("rotation (idle)", lambda: ex.key(".featviz-rotate", "ArrowRight"),
                        new_payload=True)
            shots["explorer_inspector.png"] = tmp_path / "inspector.png"
            ex.page.locator(".featviz-view button:has-text('one map')").first.click()
            widget.screenshot(path=str(shots["explorer_inspector.png"]))
            readout = page.locator(".featviz-rotate .widget-readout").first.inner_text()
            assert readout.strip() == "25", f"the rotation slider reads {readout!r}"
            shots["explorer_rotated.png"] = tmp_path / "rotated.png"
            widget.screenshot(path=str(shots["explorer_rotated.png"]))
            assert not [p for p in problems if "featviz" in p.lower() or "explorer" in p.lower()], \
                problems
        except Exception:
            with contextlib.suppress(Exception):
                shots["explorer_failure.png"] = tmp_path / "failure.png"
                page.screenshot(path=str(shots["explorer_failure.png"]), full_page=True)
            print(f"server log (tail):\n{log.read_text()[-4000:]}\npage errors: {problems}")
            raise
        finally:
            browser.close()

    result["timings"] = ex.medians()
    result["pass_while_busy"] = still_busy
    folder = artifacts_dir() or tmp_path
    for name, file in shots.items():
        if file.is_file() and folder != tmp_path:
            shutil.copy(file, folder / name)
    (folder / "explorer_browser.json").write_text(json.dumps(result, indent=2))
    record_property("explorer_timings", result["timings"])
    with capsys.disabled():
        print("\n[browser] explorer, medians (key/click/selection -> canvas drawn / next "
              "frame; the draw itself):")
        for what, t in result["timings"].items():
            print(f"  {what:<22} {t['drawn_ms']:>7.1f} ms / {t['next_frame_ms']:>6.1f} ms; "
                  f"{t['draw_only_ms']:>5.1f} ms  (n={t['n']})")
        print(f"  inspector: page {found['page_total_text']} vs Python "
              f"{found['python_value']:.6f}; artifacts in {folder}")
