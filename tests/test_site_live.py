"""The course site with its widgets live, in Chromium, with no Jupyter and no kernel.

The site is built (scripts/build_site.py) around lesson 05's saved widgets: the ones
scripts/export_widgets.py left in ``site_exports/`` (the lessons run on the full MNIST)
when they are there and newer than featviz's widget code and the lesson, else an explorer
and a sketchpad saved here with ``save_html`` under the names of the lesson's widget
cells. It is served from 127.0.0.1 by ``http.server``. On lesson 05's page the explorer's
filter slider, layer, image and rotation each change its canvas; a 7 and a 1 drawn with
the mouse on the sketchpad are read as 7 and 1; each frame is as tall as its page (the
height the saved page posts); nothing the page asks for leaves its origin, and all of it
is a file of the site. The saved files work from file:// too. Pages and exports show no
machine path, object repr or progress-bar debris (the notebooks' hygiene checks).

Skipped without Chromium or Playwright, failed instead when ``FEATVIZ_REQUIRE_BROWSER=1``.
``FEATVIZ_ARTIFACTS`` keeps the screenshots.
"""
from __future__ import annotations

import functools
import http.server
import json
import re
import threading
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

import featviz

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
from _browser import copy_to_artifacts, draw_stroke  # noqa: E402
from _scripts import load_script  # noqa: E402
from test_notebook_hygiene import MACHINE_PATH, OBJECT_REPR, PROGRESS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LESSON = ROOT / "notebooks" / "05_explorer.ipynb"
EXPORTS = ROOT / "site_exports"
CANVAS = "canvas.featviz-explorer-canvas"
PAD = "canvas.fvs-pad"
ONE = [(0.5, 0.14), (0.51, 0.5), (0.52, 0.86)]
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]          # the bar, then the long stroke
SEVEN_KINKED = [(0.22, 0.18), (0.78, 0.18), (0.62, 0.45), (0.47, 0.86)]
HYGIENE = {"machine path": MACHINE_PATH, "object repr": OBJECT_REPR, "progress bar": PROGRESS}


build_site = load_script("build_site")


def _widget_numbers() -> dict[str, int]:
    """k of lesson 05's first explorer and first sketchpad (its widget cells count from 1)."""
    nb = nbformat.read(LESSON, as_version=4)
    found: dict[str, int] = {}
    for k, i in enumerate(build_site.widget_cells(nb), start=1):
        for kind in ("explorer", "sketchpad"):
            if f"featviz.{kind}(" in nb.cells[i].source:
                found.setdefault(kind, k)
    assert set(found) == {"explorer", "sketchpad"}, found
    return found


K = _widget_numbers()
EXPLORER, SKETCHPAD = f"05_explorer-{K['explorer']}.html", f"05_explorer-{K['sketchpad']}.html"


def _exports_ready() -> bool:
    """site_exports/ holds lesson 05's explorer and sketchpad, saved since the code changed."""
    files = [EXPORTS / EXPLORER, EXPORTS / SKETCHPAD]
    if not all(f.is_file() for f in files):
        return False
    sources = [LESSON, *(p for p in (ROOT / "featviz" / "widgets").iterdir()
                         if p.suffix in (".py", ".js", ".css"))]
    return min(f.stat().st_mtime for f in files) > max(f.stat().st_mtime for f in sources)


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Path:
    if _exports_ready():
        return EXPORTS
    folder = tmp_path_factory.mktemp("exports")
    featviz.explorer(featviz.pretrained()).save_html(folder / EXPLORER)
    featviz.sketchpad().save_html(folder / SKETCHPAD)
    return folder


@pytest.fixture(scope="module")
def site(tmp_path_factory, exports) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    built = build_site.build(out, ROOT / "notebooks", exports)
    assert EXPLORER in built.live["05_explorer.html"] and SKETCHPAD in built.live["05_explorer.html"]
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def served(site):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def shots():
    files: dict[str, Path] = {}
    yield files
    copy_to_artifacts(files)


class Watched:
    """A page whose requests and errors (its frames' included) are recorded."""

    def __init__(self, browser, width: int = 1200) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 1000})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("websocket", lambda w: self.requests.append(w.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def frame(self, name: str):
        """The live frame of export ``name``, scrolled into view and running."""
        box = self.page.locator(f'.live[data-src="{name}"] iframe')
        box.scroll_into_view_if_needed()
        frame = self.page.frame_locator(f'.live[data-src="{name}"] iframe')
        frame.locator("body[data-featviz-ready]").wait_for(timeout=30_000)
        return frame


def _pixels(where) -> str:
    return where.locator(CANVAS).evaluate("c => c.toDataURL()")


def _changes(where, act, what: str) -> None:
    before = _pixels(where)
    act()
    for _ in range(100):
        if _pixels(where) != before:
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not change the explorer's canvas")


def _slider(where, label: str):
    """The slider row labelled ``label`` (the colour-scale toggle is also labelled "scale")."""
    return where.locator(".fvh-kind-slider", has=where.locator(f".fvh-label:text-is('{label}')")).first


def _press(page, where, label: str, times: int = 1):
    def act():
        _slider(where, label).locator("input").focus()
        for _ in range(times):
            page.keyboard.press("ArrowRight")
    return act


def _read(page, where, points) -> str:
    where.locator("button.fvs-clear").click()
    draw_stroke(page, where.locator(PAD), points, steps=6)
    page.wait_for_timeout(150)
    return where.locator(".fvs-prediction").inner_text().strip()


def _fits(page, name: str) -> None:
    """The frame shows all of its page and not much more (the height it posts is used)."""
    frame = page.frame_locator(f'.live[data-src="{name}"] iframe')
    measure = "() => [innerHeight, document.documentElement.getBoundingClientRect().height]"
    for _ in range(60):
        inner, content = frame.locator("body").evaluate(measure)
        if content - 1 <= inner <= content + 8:
            return
        time.sleep(0.05)
    raise AssertionError(f"{name}: its frame is {inner} px tall for a page of {content:.0f} px")


def _check_requests(watched: Watched, base: str, site: Path) -> None:
    outside = [u for u in watched.requests if not u.startswith((base + "/", "blob:", "data:", "about:"))]
    assert outside == [], f"the page asked outside its origin: {outside}"
    strays = [u for u in watched.requests if u.startswith(base + "/")
              and not (site / unquote(urlsplit(u).path).lstrip("/")).is_file()]
    assert strays == [], f"asked for what is not a file of the site (a kernel?): {strays}"


def _hygiene(name: str, text: str) -> list[str]:
    return [f"{name} ({kind}): {text[max(0, m.start() - 50):m.end() + 50]!r}"
            for kind, pattern in HYGIENE.items() for m in pattern.finditer(text)]


def _open(w: "Watched", served: str, name: str, ready: str):
    """Lesson 05's page, and the frame of its live widget ``name`` once drawn and fitted."""
    w.page.goto(f"{served}/05_explorer.html")
    frame = w.frame(name)
    frame.locator(ready).wait_for(timeout=20_000)
    _fits(w.page, name)
    return frame


def _shoot(w: "Watched", shots: dict, folder: Path, file: str, name: str) -> None:
    shots[file] = folder / file
    w.page.locator(f'figure.widget:has(.live[data-src="{name}"])').screenshot(path=shots[file])


# --------------------------------------------------------------------------- the tests

def test_the_explorer_runs_in_the_lesson_page(browser, served, site, shots, tmp_path):
    w = Watched(browser)
    try:
        ex = _open(w, served, EXPLORER, CANVAS)
        _changes(ex, _press(w.page, ex, "filter"), "the filter slider")
        _changes(ex, lambda: ex.locator("select.fvh-select-input").first.select_option(index=3), "the layer")
        _changes(ex, _press(w.page, ex, "image"), "the image slider")
        _changes(ex, _press(w.page, ex, "rotate °", times=15), "the rotation")
        _fits(w.page, EXPLORER)
        assert _hygiene(EXPLORER, ex.locator("body").inner_text()) == []
        assert ex.locator("#featviz-notice").is_hidden()
        _shoot(w, shots, tmp_path, "site-05-explorer.png", EXPLORER)
        _check_requests(w, served, site)
        assert w.errors == []
    finally:
        w.page.close()


def test_the_sketchpad_reads_a_7_and_a_1_drawn_in_the_lesson_page(browser, served, site, shots, tmp_path):
    w = Watched(browser)
    try:
        pad = _open(w, served, SKETCHPAD, PAD)
        assert _read(w.page, pad, SEVEN_KINKED) == "7"
        assert _read(w.page, pad, ONE) == "1"
        assert _read(w.page, pad, SEVEN) == "7"
        _shoot(w, shots, tmp_path, "site-05-sketchpad-7.png", SKETCHPAD)
        assert _hygiene(SKETCHPAD, pad.locator("body").inner_text()) == []
        _check_requests(w, served, site)
        assert w.errors == []
    finally:
        w.page.close()


def test_every_live_widget_of_the_page_loads_and_asks_nothing_of_another_origin(browser, served, site):
    w = Watched(browser)
    try:
        w.page.goto(f"{served}/05_explorer.html")
        names = w.page.locator(".live[data-src]").evaluate_all("bs => bs.map(b => b.dataset.src)")
        assert EXPLORER in names and SKETCHPAD in names
        for name in names:   # lazy frames: each loads once scrolled to
            w.frame(name)
            _fits(w.page, name)
        w.page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
        w.page.wait_for_load_state("networkidle")
        assert all(f"{served}/{name}" in w.requests for name in names)
        _check_requests(w, served, site)
        assert w.errors == []
    finally:
        w.page.close()


def test_the_saved_widgets_work_from_file(browser, site):
    w = Watched(browser, width=1000)
    try:
        w.page.goto((site / EXPLORER).as_uri())
        w.page.locator(CANVAS).wait_for(timeout=20_000)
        _changes(w.page, _press(w.page, w.page, "image"), "the image slider")
        w.page.goto((site / SKETCHPAD).as_uri())
        w.page.locator(PAD).wait_for(timeout=20_000)
        assert _read(w.page, w.page, ONE) == "1"
        assert all(u.startswith(("file:", "blob:", "data:")) for u in w.requests), w.requests
        assert w.errors == []
    finally:
        w.page.close()


def test_pages_and_exports_pass_the_notebook_hygiene_checks(site):
    """What a reader sees: a page's text, an export's text outside its scripts and styles,
    and the words its controls show (their labels and options, from its saved state)."""
    found = []
    for path in sorted(site.glob("*.html")):
        text = path.read_text(encoding="utf-8")
        state = re.search(r'<script type="application/json" id="featviz-static">(.*?)</script>', text, re.S)
        shown = re.sub(r"<(script|style)\b.*?</\1>", " ", text, flags=re.S | re.I)
        found += _hygiene(path.name, re.sub(r"<[^>]+>", " ", shown))
        if state:   # an export
            saved = json.loads(state.group(1))
            words = [saved["kernel_note"], *(str(c.get(key, "")) for c in saved["controls"]
                                             for key in ("label", "options", "readout"))]
            found += _hygiene(path.name + " controls", "\n".join(words))
    assert found == [], "\n".join(found[:10])
