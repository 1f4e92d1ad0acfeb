"""The course as a static site (scripts/build_site.py), built from the committed notebooks.

What a reader of the site would notice: a lesson missing, a link that leads nowhere, a page
that fetches something from another server (a CDN, a badge image), the check cells' asserts
in the way, a machine's path or a progress bar's debris, a widget that should be live but is
a still (or a still without a word on how to get the live one). The browser test serves the
site like ``python -m http.server`` and records every request lesson 05 makes.
"""
from __future__ import annotations

import functools
import html
import http.server
import importlib.util
import re
import struct
import subprocess
import sys
import threading
import zlib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from _browser import Deadline, copy_to_artifacts, find_chromium, launch
from test_notebook_hygiene import MACHINE_PATH, OBJECT_REPR, PROGRESS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_site.py"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# <a href> may lead to these (navigation); nothing else may leave the site
LINK_HOSTS = ("mybinder.org", "colab.research.google.com", "github.com", "arxiv.org",
              "doi.org", "distill.pub")
FAKE_EXPORT = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="featviz-height" content="420">
<title>fake explorer</title>
<style>body { margin: 0; padding: 1rem; font: 16px sans-serif; background: #eef6ff; }</style>
</head><body>
<p id="state">the fake explorer's still text</p>
<input id="digit" type="range" min="0" max="9" value="3">
<script>
document.getElementById("state").textContent = "live: the fake explorer ran its script";
parent.postMessage({featviz: "height", height: 300}, "*");
</script>
</body></html>
"""


def _builder():
    spec = importlib.util.spec_from_file_location("build_site", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


build_site = _builder()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site without any widget export."""
    out = tmp_path_factory.mktemp("site") / "site"
    build_site.build(out, ROOT / "notebooks", tmp_path_factory.mktemp("no-exports"))
    return out


@pytest.fixture(scope="module")
def live_site(tmp_path_factory) -> Path:
    """The site with a hand-made export of lesson 05's first widget."""
    exports = tmp_path_factory.mktemp("exports")
    (exports / "05_explorer-1.html").write_text(FAKE_EXPORT, encoding="utf-8")
    out = tmp_path_factory.mktemp("live") / "site"
    build_site.build(out, ROOT / "notebooks", exports)
    return out


# --------------------------------------------------------------------------- reading pages

class Page(HTMLParser):
    """A page's links and sources, ids, text, and the text of its highlighted code blocks."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []   # (tag, attribute, url)
        self.ids: set[str] = set()
        self.text: list[str] = []
        self.code: list[str] = []
        self._in_pre = self._in_style = self._after_highlight = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for key in ("href", "src", "data-src", "data", "poster", "srcset", "action"):
            if a.get(key) is not None:
                self.refs.append((tag, key, a[key]))
        self.refs += [(tag, "style", u) for u in _css_urls(a.get("style") or "")]
        self._in_style = tag == "style"
        if tag == "pre" and self._after_highlight:   # Pygments: <div class="highlight"><pre>
            self._in_pre = True
            self.code.append("")
        self._after_highlight = tag == "div" and "highlight" in (a.get("class") or "").split()

    def handle_endtag(self, tag):
        if tag == "pre":
            self._in_pre = False
        self._in_style = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_pre:
            self.code[-1] += data
        if self._in_style:
            self.refs += [("style", "css", u) for u in _css_urls(data)]


def _css_urls(css: str) -> list[str]:
    return re.findall(r"url\(\s*['\"]?([^'\")]*)", css) + re.findall(r"@import\s+['\"]([^'\"]+)", css)


def _pages(folder: Path) -> dict[str, Page]:
    return {p.name: Page(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.html"))}


def _outside(url: str) -> bool:
    return url.startswith("//") or bool(re.match(r"[a-zA-Z][\w+.-]*:", url)) and not url.startswith("data:")


def _shown_source(cell) -> str:
    return "\n".join(line for line in cell.source.splitlines()
                     if not re.fullmatch(r"\s*#\s*NBVAL_\w+\s*", line)).strip()


def _is_check(cell) -> bool:
    return "check" in cell.metadata.get("tags", []) or cell.source.lstrip().startswith("# check:")


def _widget_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"
            and any(WIDGET_VIEW in o.get("data", {}) for o in c.get("outputs", []))]


# --------------------------------------------------------------------------- the pages

def test_one_page_per_lesson_and_the_course_map(site):
    pages = sorted(p.name for p in site.glob("*.html"))
    assert pages == sorted([p.stem + ".html" for p in NOTEBOOKS] + ["index.html"])
    index = (site / "index.html").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        first = next(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")
        title = re.search(r"^#\s+\d+\s*·\s*(.+)$", first, re.M).group(1).strip()
        minutes = re.search(r"\*\*Estimated time:\*\*\s*(\d+)", first).group(1)
        row = re.search(rf'<tr><td><a href="{path.stem}\.html">(.*?)</a></td><td>(.*?)</td></tr>', index)
        assert row, f"the course map has no row for {path.stem}"
        assert html.unescape(re.sub(r"<[^>]+>", "", row.group(1))).endswith(title)
        assert row.group(2) == f"{minutes} min"


def test_every_page_links_to_the_previous_and_next_lesson_and_the_map(site):
    names = [p.stem + ".html" for p in NOTEBOOKS]
    for n, name in enumerate(names):
        links = [(tag, url) for tag, key, url in Page((site / name).read_text()).refs if key == "href"]
        assert ("a", "index.html") in links, name
        for neighbour in (names[n - 1] if n else None, names[n + 1] if n + 1 < len(names) else None):
            if neighbour:
                assert ("a", neighbour) in links, f"{name} does not link to {neighbour}"


def test_every_internal_link_and_source_resolves(live_site):
    pages = _pages(live_site)
    broken = []
    for name, page in pages.items():
        for tag, key, url in page.refs:
            if _outside(url) or url.startswith("data:"):
                continue
            path, _, fragment = url.partition("#")
            target = (live_site / unquote(path)) if path else live_site / name
            if not target.resolve().is_file() or live_site.resolve() not in target.resolve().parents:
                broken.append(f"{name}: <{tag} {key}={url!r}> is not a file of the site")
            elif fragment and target.suffix == ".html" and target.name in pages \
                    and unquote(fragment) not in {unquote(i) for i in pages[target.name].ids}:
                broken.append(f"{name}: <{tag} {key}={url!r}>: no id {fragment!r} there")
    assert not broken, "\n".join(broken)
    lesson_links = [url for page in pages.values() for tag, key, url in page.refs if ".ipynb" in url
                    and not _outside(url)]
    assert not lesson_links, f"links to notebooks instead of pages: {lesson_links[:5]}"


def test_nothing_is_fetched_from_another_origin(live_site):
    found = []
    for name, page in _pages(live_site).items():
        for tag, key, url in page.refs:
            if not _outside(url):
                continue
            host = urlsplit(url).netloc
            if tag != "a" or key != "href":
                found.append(f"{name}: <{tag} {key}={url!r}> would be fetched from {host}")
            elif urlsplit(url).scheme != "https" or not host.endswith(LINK_HOSTS):
                found.append(f"{name}: a link to {url!r}, not to Binder, Colab, GitHub or a paper")
    css = (live_site / "site.css").read_text()
    found += [f"site.css: {u}" for u in _css_urls(css) if _outside(u)]
    assert not found, "\n".join(found)
    badges = (live_site / "05_explorer.html").read_text()
    assert '<span class="badge badge-mybinder">Binder</span>' in badges   # the badge, as a button
    assert "badge_logo.svg" not in badges and "colab-badge.svg" not in badges


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_check_cells_are_left_out_and_the_lesson_code_is_in(site, path):
    nb = nbformat.read(path, as_version=4)
    page = Page((site / (path.stem + ".html")).read_text(encoding="utf-8"))
    shown = {block.strip() for block in page.code}
    text = "".join(page.text)
    checks = [c for c in nb.cells if c.cell_type == "code" and _is_check(c)]
    code = [c for c in nb.cells if c.cell_type == "code" and not _is_check(c) and _shown_source(c)]
    assert code, "a lesson without code"
    if path.stem >= "04":
        assert checks, "lessons 04-08 have check cells"
    for cell in checks:
        assert cell.source.splitlines()[0] not in text, f"a check cell is on the page: {cell.source[:80]!r}"
        assert _shown_source(cell) not in shown
    missing = [c.source[:80] for c in code if _shown_source(c) not in shown]
    assert not missing, f"code cells missing from the page: {missing}"
    setup = next(c for c in nb.cells if c.cell_type == "code")
    assert setup.source.startswith("# Setup.") and _shown_source(setup) in shown


@pytest.mark.parametrize("pattern", [MACHINE_PATH, OBJECT_REPR, PROGRESS],
                         ids=["machine path", "object repr", "progress bar"])
def test_pages_pass_the_notebook_hygiene_checks(site, pattern):
    found = []
    for name, page in _pages(site).items():
        text = "".join(page.text)
        found += [f"{name}: {text[max(0, m.start() - 60):m.end() + 60]!r}" for m in pattern.finditer(text)]
        raw = (site / name).read_text()
        if 'class="output error"' in raw or "Traceback (most recent call last)" in text:
            found.append(f"{name}: shows an error output")
    assert not found, "\n".join(found[:10])


def test_pages_show_the_figures_as_files_and_math_as_tex(site):
    page = (site / "05_explorer.html").read_text()
    figures = re.findall(r'<img src="(img/[0-9a-f]{16}\.png)" width="\d+" height="\d+"', page)
    nb = nbformat.read(ROOT / "notebooks" / "05_explorer.ipynb", as_version=4)
    pngs = [o for c in nb.cells if c.cell_type == "code" and not _is_check(c)
            for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(figures) == len(pngs) > 0
    assert all((site / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    model = (site / "02_model.html").read_text()
    assert '<div class="math" title="TeX">W_\\text{out} = \\left\\lfloor' in model


# --------------------------------------------------------------------------- live widgets

def test_without_exports_each_widget_shows_its_still_and_how_to_get_it_live(site):
    for path in NOTEBOOKS:
        page = (site / (path.stem + ".html")).read_text()
        cells = _widget_cells(nbformat.read(path, as_version=4))
        notes = re.findall(r'<p class="widget-note">(.*?)</p>', page)
        assert len(notes) == len(cells), path.stem
        assert all("needs a Python kernel" in n and "mybinder.org" in n and "colab" in n for n in notes)
        assert 'class="live"' not in page and "<script" not in page
    page = (site / "05_explorer.html").read_text()
    assert '<div class="still"><pre class="output text">featviz explorer: a live widget' in page


def test_an_export_is_embedded_live_with_the_still_as_fallback(live_site, site):
    page = (live_site / "05_explorer.html").read_text()
    live = re.findall(r'<figure class="widget"><div class="live" data-src="([^"]+)" data-height="(\d+)"'
                      r'[^>]*></div><noscript>(.*?)</noscript></figure>', page, re.S)
    assert [(src, height) for src, height, _ in live] == [("05_explorer-1.html", "420")]
    assert (live_site / "05_explorer-1.html").read_text() == FAKE_EXPORT
    assert '<div class="still"><pre class="output text">featviz explorer: a live widget' in live[0][2]
    assert 'frame.setAttribute("sandbox", "allow-scripts")' in page and 'frame.loading = "lazy"' in page
    # the first explorer is live; the lesson's other three widgets keep their still and caption
    cells = _widget_cells(nbformat.read(ROOT / "notebooks" / "05_explorer.ipynb", as_version=4))
    assert page.count('<p class="widget-note">') == len(cells) - 1
    assert (site / "05_explorer.html").read_text().count('<p class="widget-note">') == len(cells)


def test_an_export_that_loads_from_a_cdn_stops_the_build(tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "05_explorer-1.html").write_text(
        '<html><script src="https://unpkg.com/@jupyter-widgets/html-manager"></script></html>')
    with pytest.raises(ValueError, match="05_explorer-1.html loads from outside the site"):
        build_site.build(tmp_path / "site", ROOT / "notebooks", exports)


def test_an_export_that_matches_no_widget_cell_is_reported(tmp_path):
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "05_explorer-9.html").write_text(FAKE_EXPORT)   # lesson 05 has four widget cells
    with pytest.warns(UserWarning, match="match no widget cell of their lesson: 05_explorer-9.html"):
        build_site.build(tmp_path / "site", ROOT / "notebooks", exports)
    assert not (tmp_path / "site" / "05_explorer-9.html").exists()


def _png(width: int = 4, height: int = 3) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def _tiny_course(folder: Path) -> Path:
    """Two lessons; the first has a widget whose output carries its still image."""
    import base64

    folder.mkdir()
    badge = ("[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/o/r/HEAD)\n"
             "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
             "(https://colab.research.google.com/github/o/r/blob/main/notebooks/{name})\n")
    first = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 00 · One: a start\n\n" + badge.format(name="00_one.ipynb")
                                      + "\n**Estimated time:** 5 minutes\n\nNext: [part 2](01_two.ipynb#Part-2),"
                                      " the [readme](../README.md)."),
        nbformat.v4.new_code_cell("w = make_widget()\nw", outputs=[nbformat.v4.new_output(
            "execute_result", execution_count=1, data={
                WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0},
                "image/png": base64.b64encode(_png()).decode(), "text/plain": "a widget"})]),
    ])
    second = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 01 · Two\n\n**Estimated time:** 7 minutes\n\n## Part 2\n\ntext"),
    ])
    nbformat.write(first, folder / "00_one.ipynb")
    nbformat.write(second, folder / "01_two.ipynb")
    return folder


def test_a_widget_still_image_links_and_badges_in_a_small_course(tmp_path):
    course = _tiny_course(tmp_path / "notebooks")
    built = build_site.build(tmp_path / "plain", course, tmp_path / "none")
    page = (tmp_path / "plain" / "00_one.html").read_text()
    assert '<a href="01_two.html#Part-2">part 2</a>' in page
    assert '<a href="https://github.com/o/r/blob/main/README.md">readme</a>' in page
    assert '<a href="https://mybinder.org/v2/gh/o/r/HEAD"><span class="badge badge-mybinder">Binder</span></a>' in page
    assert re.search(r'<div class="still"><div class="output image"><img src="img/\w+\.png" width="4" '
                     r'height="3"[^>]*></div></div>\s*<p class="widget-note">A still picture of a live widget', page)
    assert 'id="Part-2"' in (tmp_path / "plain" / "01_two.html").read_text()
    assert set(built.pages) == {"00_one.html", "01_two.html", "index.html"}
    index = (tmp_path / "plain" / "index.html").read_text()
    assert "<td>in all</td><td>12 min</td>" in index

    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "00_one-1.html").write_text(FAKE_EXPORT)
    build_site.build(tmp_path / "live", course, exports)
    page = (tmp_path / "live" / "00_one.html").read_text()
    assert re.search(r'<div class="live" data-src="00_one-1.html"[^>]*></div><noscript><div class="still">'
                     r'<div class="output image"><img src="img/\w+\.png"', page)
    assert "widget-note" not in page


def test_a_rebuild_replaces_its_own_folder_and_refuses_any_other(tmp_path):
    course = _tiny_course(tmp_path / "notebooks")
    out = tmp_path / "site"
    build_site.build(out, course, tmp_path / "none")
    (out / "stale.html").write_text("left from an old build")
    build_site.build(out, course, tmp_path / "none")
    assert not (out / "stale.html").exists()
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match="not built by this script"):
        build_site.build(precious, course, tmp_path / "none")
    assert (precious / "notes.txt").read_text() == "mine"


def test_the_command_builds_the_site_without_importing_featviz(tmp_path):
    probe = ("import runpy, sys; sys.argv = [sys.argv[1], *sys.argv[2:]]; "
             "code = 0\ntry:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit as e:\n    code = e.code\n"
             "assert 'featviz' not in sys.modules, 'the builder imported featviz'\nsys.exit(code)")
    result = subprocess.run([sys.executable, "-c", probe, str(SCRIPT), str(tmp_path / "out"),
                             "--exports", str(tmp_path / "none")],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "05_explorer.html" in result.stdout and f"{len(NOTEBOOKS) + 1} pages in" in result.stdout
    assert (tmp_path / "out" / "index.html").is_file()


# --------------------------------------------------------------------------- in a browser

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test's output for its own messages
        pass


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """``python -m http.server`` in a thread: the folder at http://127.0.0.1:<port>/."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _scroll_through(page) -> None:
    """Scroll to the end and back, so that every lazy image and frame loads."""
    height = page.evaluate("document.documentElement.scrollHeight")
    for y in range(0, height + 900, 900):
        page.evaluate(f"window.scrollTo(0, {y})")
        page.wait_for_timeout(40)
    page.wait_for_load_state("networkidle")


def test_lesson_05_in_a_browser_asks_nothing_of_another_origin(live_site, tmp_path):
    chromium = find_chromium()
    from playwright.sync_api import sync_playwright

    left = Deadline(150)
    server, base = _serve(live_site)
    shots = {}
    try:
        with sync_playwright() as pw:
            browser = launch(pw, chromium, left.ms(60))
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                requests: list[str] = []
                page.on("request", lambda r: requests.append(r.url))
                page.goto(f"{base}/05_explorer.html", timeout=left.ms(30))
                assert page.title().startswith("05 · The explorer")
                _scroll_through(page)
                # every figure arrived and was decoded
                broken = page.evaluate("[...document.images].filter(i => !i.complete || !i.naturalWidth)"
                                       ".map(i => i.src)")
                assert not broken, f"figures that did not load: {broken[:5]}"
                # the live widget: the export's script ran in its frame, and resized it
                frame = page.frame_locator(".live iframe")
                assert frame.locator("#state").text_content(timeout=left.ms(20)) == \
                    "live: the fake explorer ran its script"
                box = page.locator(".live iframe")
                # the frame shows the 300 px its page posts, its border on top
                page.wait_for_function("document.querySelector('.live iframe').clientHeight === 300",
                                       timeout=left.ms(10))
                assert box.get_attribute("sandbox") == "allow-scripts"
                assert page.locator("figure.widget noscript").count() == 1
                box.scroll_into_view_if_needed()
                shots["site-05-live.png"] = tmp_path / "site-05-live.png"
                page.screenshot(path=shots["site-05-live.png"])
                outside = [u for u in requests if not u.startswith((base + "/", "data:", "about:"))]
                assert not outside, f"requests outside the site: {outside}"
                assert f"{base}/05_explorer-1.html" in requests
                assert not page.evaluate("document.documentElement.scrollWidth > innerWidth")

                # on a phone: one column, nothing wider than the screen
                phone = browser.new_page(viewport={"width": 390, "height": 844})
                for name in ("index.html", "04_feature_maps.html", "05_explorer.html"):
                    phone.goto(f"{base}/{name}", timeout=left.ms(30))
                    wide = phone.evaluate("document.documentElement.scrollWidth")
                    assert wide <= 390, f"{name} is {wide} px wide on a 390 px phone"
                shots["site-index-phone.png"] = tmp_path / "site-index-phone.png"
                phone.goto(f"{base}/index.html", timeout=left.ms(30))
                phone.screenshot(path=shots["site-index-phone.png"])

                # without JavaScript: the still, not the frame
                quiet = browser.new_context(java_script_enabled=False).new_page()
                quiet.goto(f"{base}/05_explorer.html", timeout=left.ms(30))
                assert quiet.locator(".live iframe").count() == 0
                assert quiet.locator("figure.widget .still").first.is_visible()

                # from file://, as a reader who opened the folder: styled, and the widget live
                local = browser.new_page()
                local.goto((live_site / "05_explorer.html").as_uri(), timeout=left.ms(30))
                assert local.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") != "none"
                local.locator(".live iframe").scroll_into_view_if_needed()
                assert local.frame_locator(".live iframe").locator("#state").text_content(
                    timeout=left.ms(20)) == "live: the fake explorer ran its script"
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
        copy_to_artifacts(shots)
