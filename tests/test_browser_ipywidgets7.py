"""The explorer and the sketchpad on an ipywidgets 7 front end, in a real browser.

Colab runs ipywidgets 7.7 with a front end of its own, which no test can start;
the closest one that can is the classic Notebook 6.5 with widgetsnbextension 3.6
(the front end of ipywidgets 7) and anywidget's classic-notebook extension. A
venv like ``test_colab.py``'s (this Python's torch stack linked; ipywidgets 7.7.1,
``notebook<7``, ipykernel from PyPI; featviz installed from the wheel of this
checkout, with anywidget) serves a notebook that builds the default explorer and
a sketchpad. Headless Chromium (Playwright) opens it, runs it, and checks that the
explorer draws its canvas and redraws it for a filter step and a new layer (the
filter slider's range following the layer, in the browser), that the sketchpad
shows its layer chooser and reads a vertical stroke drawn with the mouse as a 1,
and that a reload of the page draws the explorer again from the kernel's state.

Needs Chromium, Playwright and PyPI: skipped without them, failed instead when
``FEATVIZ_REQUIRE_BROWSER=1`` (as in CI). Screenshots go to ``FEATVIZ_ARTIFACTS``
(see ``tests/_browser.py``), else they stay in the test's temporary folder.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import pytest
from _browser import (CLASSIC_WATCH, SERVER_START_S, Deadline, artifacts_dir, canvas_pixels,
                      classic_notebook, classic_widgets_ready, draw_stroke, find_chromium, launch,
                      missing)
from _venvs import CORE, featviz_wheel, make_venv, registry_has

IPYWIDGETS = "7.7.1"
FRONT_END = (f"ipywidgets=={IPYWIDGETS}", "notebook<7", "jupyterlab_widgets<2", "ipykernel")
CELLS = [
    "import ipywidgets, featviz\nprint('ipywidgets', ipywidgets.__version__)",
    "explorer = featviz.explorer(featviz.pretrained())\nexplorer",
    "pad = featviz.sketchpad()\npad",
]
SETUP_S = 420         # the venv: PyPI installs
BROWSER_S = 180       # everything in the browser, from opening the page to the last screenshot
STEP_S = 20           # one key press, selection or stroke
CANVAS = "canvas.featviz-explorer-canvas"


@pytest.fixture(scope="module")
def front_end(tmp_path_factory):
    """The venv with the ipywidgets 7 front end and featviz, and its nbextension list."""
    find_chromium()    # before minutes of installing
    wheel = featviz_wheel(tmp_path_factory)
    venv = make_venv(tmp_path_factory.mktemp("ipywidgets7") / "venv", CORE)
    why = registry_has(venv, "ipywidgets", IPYWIDGETS)
    if why:
        missing(why)
    venv.pip("install", "-q", *FRONT_END, timeout=SETUP_S)
    # as the lessons' setup cell does it: featviz with its widget packages, ipywidgets kept
    venv.pip("install", "-q", f"featviz[widgets] @ {wheel.as_uri()}", f"ipywidgets=={IPYWIDGETS}",
             timeout=SETUP_S)
    listed = venv.run(["jupyter", "nbextension", "list"], check=False,
                      env=venv.env(JUPYTER_CONFIG_DIR=str(venv.path.parent / "no-user-config")))
    return venv, listed.stdout + listed.stderr


def test_the_classic_notebook_enables_the_widget_extensions(front_end):
    venv, listed = front_end
    text = re.sub(r"\x1b\[[0-9;]*m", "", listed)   # no colours
    for extension in ("jupyter-js-widgets/extension", "anywidget/extension"):
        assert re.search(rf"{re.escape(extension)}\s+enabled", text), \
            f"{extension} is not enabled in the classic notebook:\n{text}"
    versions = venv.installed()
    assert versions["ipywidgets"] == IPYWIDGETS
    assert versions["widgetsnbextension"].startswith("3.6")
    assert versions["notebook"].startswith("6.")
    assert "anywidget" in versions and "featviz" in versions


def _notebook(root: Path) -> str:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "widgets7.ipynb")
    return "widgets7.ipynb"


def _ran(page) -> bool:
    """Every cell has run, or one failed."""
    return page.evaluate("""() => Jupyter.notebook.get_cells().every(c =>
        c.cell_type !== 'code' || Number.isInteger(c.input_prompt_number))""")


def _errors(page) -> list[str]:
    return page.evaluate("""() => Jupyter.notebook.get_cells().flatMap(c =>
        (c.output_area ? c.output_area.outputs : []).filter(o => o.output_type === 'error')
        .map(o => o.ename + ': ' + o.evalue))""")


def _state(page) -> list[str]:
    """The explorer canvas's data-state: token|layer|channel|view|scale ('' before)."""
    return (page.evaluate(f"() => (document.querySelector('{CANVAS}') || {{dataset: {{}}}})"
                          ".dataset.state || ''") or "").split("|")


def _wait(page, check, what: str, seconds: float) -> None:
    for _ in range(int(seconds * 4)):
        if check():
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"{what} (within {seconds:.0f} s); errors: {_errors(page)}")


@pytest.mark.timeout(SETUP_S * 2 + SERVER_START_S + BROWSER_S + 60)
def test_explorer_and_sketchpad_on_ipywidgets_7(front_end, tmp_path, capsys):
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    venv, _ = front_end
    root = tmp_path / "root"
    root.mkdir()
    path = _notebook(root)
    out = artifacts_dir() or tmp_path
    shots: list[Path] = []
    env = venv.env(FEATVIZ_DATA_ROOT=str(tmp_path / "data"), OMP_NUM_THREADS="2")
    with classic_notebook(tmp_path / "jupyter", root, venv.bin / "jupyter", env) as (base, log), \
            sync_playwright() as pw:
        left = Deadline(BROWSER_S)
        problems: list[str] = []
        browser = launch(pw, chromium, left.ms(60))
        page = browser.new_page(viewport={"width": 1300, "height": 1500})
        try:
            page.set_default_timeout(STEP_S * 1000)
            page.on("pageerror", lambda e: problems.append(e.stack or str(e)))
            page.on("dialog", lambda d: d.accept())
            page.add_init_script(CLASSIC_WATCH)
            page.goto(f"{base}/notebooks/{path}", timeout=left.ms(60))
            classic_widgets_ready(page, left.ms(60))
            page.evaluate("() => Jupyter.notebook.execute_all_cells()")
            _wait(page, lambda: _ran(page), "the notebook did not run", left(120))
            assert _errors(page) == [], f"a cell failed: {_errors(page)}"
            printed = page.locator(".output_stdout").first.inner_text()
            assert f"ipywidgets {IPYWIDGETS}" in printed, printed

            # -- the explorer: drawn from what the kernel sent, then redrawn in the browser
            _wait(page, lambda: _state(page)[0] not in ("", "undefined"),
                  "the explorer drew nothing", left(60))
            canvas = page.locator(CANVAS).first
            first = canvas_pixels(canvas)
            assert first["width"] > 300 and first["colours"] > 50 and first["inked"] > 0.2, \
                {k: v for k, v in first.items() if k != "url"}
            widget = page.locator(".featviz-explorer").first
            widget.scroll_into_view_if_needed()
            shots.append(out / "ipywidgets7_explorer.png")
            widget.screenshot(path=str(shots[-1]))

            handle = page.locator(".featviz-filter-slider .ui-slider-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")     # filter 0 -> 1
            _wait(page, lambda: _state(page)[2] == "1", "the filter step did not redraw", STEP_S)
            readout = page.locator(".featviz-filter-slider .widget-readout").first.inner_text()
            assert readout.strip() == "1", readout
            filtered = canvas_pixels(canvas)
            assert filtered["url"] != first["url"], "the filter step did not change the canvas"

            select = page.locator(".featviz-layer select").first
            option = next(o for o in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if o.startswith("conv2 "))
            select.select_option(option)
            _wait(page, lambda: _state(page)[1] == "3", "the new layer was not drawn", STEP_S)
            layered = canvas_pixels(canvas)
            assert layered["url"] != filtered["url"], "the new layer did not change the canvas"
            handle.focus()
            page.keyboard.press("End")            # the last filter of conv2: its range followed
            _wait(page, lambda: _state(page)[2] == "31", "the filter slider did not reach conv2's "
                  "last filter, 31", STEP_S)
            readout = page.locator(".featviz-filter-slider .widget-readout").first.inner_text()
            assert readout.strip() == "31", f"conv2 has 32 filters, the slider reads {readout}"
            shots.append(out / "ipywidgets7_explorer_conv2.png")
            widget.screenshot(path=str(shots[-1]))

            # -- the sketchpad: its layer chooser above the pad; a stroke read as a 1
            view = page.locator(".featviz-sketchpad-view").first
            view.scroll_into_view_if_needed()
            assert page.locator(".featviz-sketchpad-layer select").count() == 1, \
                "the sketchpad's layer chooser is not shown"
            pad_root = page.locator(".featviz-sketchpad[data-version]").first
            pad_root.wait_for(timeout=left.ms(STEP_S))
            draw_stroke(page, pad_root.locator("canvas.fvs-pad"),
                        [(0.5, 0.14), (0.51, 0.5), (0.52, 0.86)])
            page.wait_for_function(
                "r => r.dataset.pending === '0' && Number(r.dataset.seq) >= Number(r.dataset.sent)"
                " && Number(r.dataset.sent) > 0", arg=pad_root.element_handle(),
                timeout=left.ms(STEP_S))
            shown = pad_root.locator(".fvs-prediction").inner_text()
            shots.append(out / "ipywidgets7_sketchpad.png")
            view.screenshot(path=str(shots[-1]))
            assert shown == "1", f"a vertical stroke was read as {shown!r}"

            # -- saved and reloaded: the widget manager restores the widgets from the kernel
            page.evaluate("() => Jupyter.notebook.save_notebook()")
            page.wait_for_function("() => !Jupyter.notebook.dirty", timeout=left.ms(STEP_S))
            page.reload(timeout=left.ms(60))
            _wait(page, lambda: _state(page)[0] not in ("", "undefined"),
                  "after a reload the explorer drew nothing", left(60))
            again = page.locator(CANVAS).first
            restored = canvas_pixels(again)
            assert restored["colours"] > 50 and restored["inked"] > 0.2
            assert _state(page)[1:3] == ["3", "31"], \
                f"the reloaded explorer forgot its layer and filter: {_state(page)}"
            shots.append(out / "ipywidgets7_reloaded.png")
            page.locator(".featviz-explorer").first.screenshot(path=str(shots[-1]))
            assert not [p for p in problems if "featviz" in p.lower() or "child view" in p], problems
        except Exception:
            with contextlib.suppress(Exception):
                page.screenshot(path=str(out / "ipywidgets7_failure.png"), full_page=True)
            print(f"server log (tail):\n{log.read_text()[-4000:]}\npage errors: {problems}")
            raise
        finally:
            browser.close()
    (out / "ipywidgets7_browser.json").write_text(json.dumps(
        {"screenshots": [str(s) for s in shots], "page_errors": problems}, indent=2))
    with capsys.disabled():
        print(f"\n[browser] ipywidgets {IPYWIDGETS} (classic Notebook): explorer and sketchpad "
              f"work; screenshots in {out}")
