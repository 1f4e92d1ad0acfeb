"""The course site with its widgets live, in Chromium, with no Jupyter and no kernel.

Lesson 05's explorer and sketchpad are saved with ``save_html`` (as
scripts/export_widgets.py saves them for the site), the site is built around them and
served from 127.0.0.1. On lesson 05's page: the filter slider, the layer, the image and
the rotation each change the explorer's canvas; a 7 and a 1 drawn with the mouse on the
sketchpad are read as 7 and 1; and no request leaves the page's own origin. The saved
files work from file:// too.

Skipped without Chromium or Playwright, failed instead when ``FEATVIZ_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import functools
import http.server
import importlib.util
import sys
import threading
import time
from pathlib import Path

import pytest

import featviz

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
from _browser import artifacts_dir, find_chromium, launch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CANVAS = "canvas.featviz-explorer-canvas"
ONE = [(0.5, 0.14), (0.51, 0.5), (0.52, 0.86)]
SEVEN = [(0.22, 0.18), (0.78, 0.18), (0.62, 0.45), (0.47, 0.86)]


def _builder():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, with lesson 05's first explorer (widget cell 1) and its sketchpad (cell 3)."""
    exports = tmp_path_factory.mktemp("exports")
    featviz.explorer(featviz.pretrained()).save_html(exports / "05_explorer-1.html")
    featviz.sketchpad(featviz.pretrained()).save_html(exports / "05_explorer-3.html")
    out = tmp_path_factory.mktemp("site") / "site"
    assert _builder().main([str(out), "--exports", str(exports)]) == 0
    assert (out / "05_explorer.html").is_file() and (out / "05_explorer-1.html").is_file()
    return out


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch(pw, chromium, 30_000)
        yield b
        b.close()


def _pixels(frame) -> str:
    return frame.locator(CANVAS).evaluate("c => c.toDataURL()")


def _changes(frame, act, what: str) -> None:
    before = _pixels(frame)
    act()
    for _ in range(60):
        if _pixels(frame) != before:
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not change the explorer's canvas")


def _slider(frame, label: str):
    return frame.locator(".fvh-kind-slider", has=frame.locator(f".fvh-label:text-is('{label}')")).first


def _draw(page, pad, points) -> None:
    box = pad.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def test_lesson_05_live_on_the_site_with_no_kernel(browser, served, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{served}/05_explorer.html")
        frames = page.locator("iframe")
        assert frames.count() >= 2, "lesson 05 shows its explorer and its sketchpad live"
        # the explorer: the first live widget of the lesson
        frames.nth(0).scroll_into_view_if_needed()
        ex = page.frame_locator("iframe").nth(0)
        ex.locator(CANVAS).wait_for(timeout=20_000)
        for label in ("filter", "image", "rotate °"):
            row = _slider(ex, label)
            _changes(ex, lambda r=row: (r.locator("input").focus(), page.keyboard.press("ArrowRight")), label)
        _changes(ex, lambda: ex.locator(".fvh-select-input").first.select_option(index=3), "the layer")
        frames.nth(0).screenshot(path=str(tmp_path / "site_explorer.png"))
        # the sketchpad
        frames.nth(1).scroll_into_view_if_needed()
        pad = page.frame_locator("iframe").nth(1)
        pad.locator("canvas.fvs-pad").wait_for(timeout=20_000)
        shown = pad.locator(".fvs-prediction")
        for points, digit in ((SEVEN, "7"), (ONE, "1")):
            pad.locator("button.fvs-clear").click()
            _draw(page, pad.locator("canvas.fvs-pad"), points)
            page.wait_for_timeout(100)
            assert shown.inner_text() == digit, f"a {digit} drawn was read as {shown.inner_text()}"
            if digit == "7":
                frames.nth(1).screenshot(path=str(tmp_path / "site_sketchpad_seven.png"))
        outside = [u for u in requests if not u.startswith((served, "blob:", "data:", "about:"))]
        assert outside == [], f"the page asked outside its origin: {outside}"
        assert not errors, errors
    finally:
        page.close()
    folder = artifacts_dir()
    if folder is not None:
        for name in ("site_explorer.png", "site_sketchpad_seven.png"):
            (folder / name).write_bytes((tmp_path / name).read_bytes())


def test_the_saved_widgets_work_from_file(browser, site):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    try:
        page.goto((site / "05_explorer-1.html").as_uri())
        page.locator(CANVAS).wait_for(timeout=20_000)
        row = _slider(page, "image")
        _changes(page, lambda: (row.locator("input").focus(), page.keyboard.press("ArrowRight")), "image")
        page.goto((site / "05_explorer-3.html").as_uri())
        _draw(page, page.locator("canvas.fvs-pad"), ONE)
        page.wait_for_timeout(100)
        assert page.locator(".fvs-prediction").inner_text() == "1"
    finally:
        page.close()
