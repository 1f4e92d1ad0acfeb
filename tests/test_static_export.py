"""A widget saved as one HTML page (featviz.widgets._static): no kernel, no network.

Unit tests: the state as the page gets it (bytes apart, as base64, round-trip;
widget references), the page escapes what it shows, and ControlSpecs made from
ipywidgets controls carry their ranges, options and links. In Chromium (file://):
the default explorer saved with its layer, filter, view and scale controls draws,
asks nothing of the network, and each control changes the picture; a small test
widget checks what the page hands a front end (DataView, as ipywidgets does), the
lifecycle, a button and the sliders' readouts against Python's.

Browser tests are skipped without Chromium or Playwright (failed instead when
``FEATVIZ_REQUIRE_BROWSER=1``); screenshots go to ``FEATVIZ_ARTIFACTS`` when set.
"""
from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import featviz

widgets = pytest.importorskip("ipywidgets")
anywidget = pytest.importorskip("anywidget")
import traitlets  # noqa: E402

from featviz.widgets._static import (ControlSpec, controls_from_widgets, save_html,  # noqa: E402
                                     serialize_state, static_html)

CANVAS = "canvas.featviz-explorer-canvas"
EVIL = "<script>alert(1)</script>"

_PROBE_ESM = """
export default () => {
  const calls = [];
  return {
    initialize({ model }) { calls.push("initialize"); model.on("change:count", () => calls.push("count")); },
    render({ model, el }) {
      calls.push("render");
      const blob = model.get("blob"), nested = model.get("luts").a;
      const sum = (v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength).reduce((a, b) => a + b, 0);
      el.dataset.probe = JSON.stringify({ calls, kind: blob.constructor.name, length: blob.byteLength,
        sum: sum(blob), nested: nested.constructor.name, nestedSum: sum(nested), ref: model.get("peer") });
      const show = () => { el.dataset.state = JSON.stringify({ count: model.get("count"),
        word: model.get("word"), level: model.get("level"), calls }); };
      model.on("change:count", show); model.on("change:word", show); model.on("change:level", show);
      show();
      el.addEventListener("click", () => model.send({ ask: "the kernel" }));
      el.textContent = "probe";
    },
  };
};
"""


class Probe(anywidget.AnyWidget):
    """A test view: binary traits (one nested in a dict), a widget reference, numbers."""

    _esm = _PROBE_ESM
    blob = traitlets.Bytes(b"").tag(sync=True)
    luts = traitlets.Dict().tag(sync=True)
    peer = traitlets.Instance(widgets.Widget, allow_none=True).tag(sync=True, **widgets.widget_serialization)
    count = traitlets.Int(0).tag(sync=True)
    word = traitlets.Unicode("").tag(sync=True)
    level = traitlets.Float(0.0).tag(sync=True)


def _probe() -> tuple[Probe, dict]:
    view = Probe(blob=bytes(range(256)) * 3, luts={"a": b"\x01\x02\x03", "n": 5})
    c = {"count": widgets.IntSlider(value=2, min=0, max=9, description="count"),
         "word": widgets.Dropdown(options=[("one", "w1"), ("two", "w2")], value="w2", description="word"),
         "level": widgets.FloatSlider(value=0.3, min=0.0, max=2.0, step=0.05, description="level",
                                      readout_format=".2f"),
         "mode": widgets.SelectionSlider(options=["low", "mid", "high"], value="mid", description="mode"),
         "reset": widgets.Button(description="reset")}
    view.peer = c["count"]
    return view, c


# --------------------------------------------------------------------------- the state

def test_the_state_keeps_bytes_apart_and_they_round_trip():
    view, c = _probe()
    state, buffers = serialize_state(view)
    assert "_esm" not in state and "_css" not in state, "the module travels apart from the state"
    assert {"blob", "luts", "peer", "count"} <= set(state)
    paths = {tuple(b["path"]): base64.b64decode(b["data"]) for b in buffers}
    assert paths == {("blob",): bytes(range(256)) * 3, ("luts", "a"): b"\x01\x02\x03"}
    assert state["luts"] == {"a": None, "n": 5}, "a buffer leaves its place empty, as ipywidgets does"
    assert state["peer"] == "IPY_MODEL_" + c["count"].model_id
    json.dumps(state, allow_nan=False)


def test_overrides_change_the_saved_page_only():
    view, c = _probe()
    page = static_html(view, [], title="t", overrides={"blob": b"\x09", "word": "saved"})
    parsed = _Page()
    parsed.feed(page)
    data = json.loads(parsed.data["featviz-static"])
    assert data["state"]["word"] == "saved" and view.word == ""
    assert [b for b in data["buffers"] if b["path"] == ["blob"]] == [{"path": ["blob"], "data": "CQ=="}]
    with pytest.raises(ValueError, match="no synced trait 'wrod'"):
        static_html(view, [], title="t", overrides={"wrod": 1})


def test_a_state_that_is_not_json_is_named():
    view, _ = _probe()
    view.luts = {"bad": float("nan")}
    with pytest.raises(ValueError, match="'luts'"):
        serialize_state(view)


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.data: dict[str, str] = {}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in = dict(attrs).get("id") if tag == "script" else None

    def handle_data(self, data):
        if self._in:
            self.data[self._in] = self.data.get(self._in, "") + data
        else:
            self.text.append(data)


def test_the_page_escapes_what_it_shows():
    view, c = _probe()
    c["word"].options = [(EVIL, "w1"), ("two", "w2")]
    specs = controls_from_widgets(view, [(c["word"], "index", "word")])
    view.luts = {"a": b"\x01", "label": EVIL + "</script><!--"}
    page = static_html(view, specs, title=EVIL, note='<img src=x onerror="alert(2)">')
    parsed = _Page()
    parsed.feed(page)
    scripts = [a for t, a in parsed.tags if t == "script"]
    assert len(scripts) == 2 and not [t for t, _ in parsed.tags if t == "img"], "nothing was injected"
    assert EVIL not in page and "<img" not in page
    assert EVIL in "".join(parsed.text), "the title is shown as text"
    data = json.loads(parsed.data["featviz-static"])   # the embedded JSON survives whole
    assert data["controls"][0]["options"][0] == EVIL
    assert data["state"]["luts"]["label"] == EVIL + "</script><!--"
    assert data["esm"] == _PROBE_ESM


def _loads_from_the_network(page: str) -> list[str]:
    """The http(s) URLs in ``page`` that the browser would load (a src, a link that is not
    an <a>, a CSS url() or @import, a JS import); the page's CSP must forbid any request."""
    assert re.search(r"""http-equiv="Content-Security-Policy" content="default-src 'none';""", page)
    loads = r"""(?:<(?!a\b)\w+[^>]*\s(?:src|href)=|url\(|@import|\bimport\s*\(?|\bfrom)\s*["']?(https?://[^"')\s]+)"""
    return re.findall(loads, page)


def test_the_page_needs_no_network():
    view, c = _probe()
    page = static_html(view, controls_from_widgets(view, [(c["count"], "value", "count")]), title="t")
    assert _loads_from_the_network(page) == []
    csp = """<meta http-equiv="Content-Security-Policy" content="default-src 'none';">"""
    for loads in ('<script src="http://x.org/a.js">', "import m from 'https://x.org/a.js'",
                  "<link href=https://x.org/a.css>", "b { background: url(http://x.org/a.png) }"):
        assert len(_loads_from_the_network(csp + loads)) == 1, loads   # the check sees each kind
    assert _loads_from_the_network(csp + '<a href="https://pytorch.org">PyTorch</a>') == []
    with pytest.raises(ValueError, match="network"):
        class Remote(anywidget.AnyWidget):
            _esm = "https://esm.sh/some-widget@1"
        static_html(Remote(), [], title="t")


def test_a_module_that_imports_another_cannot_be_saved():
    class Importer(anywidget.AnyWidget):
        _esm = 'import { forward } from "./forward.js";\nexport default { render() {} };'
    with pytest.raises(ValueError, match=r"imports \./forward\.js"):
        static_html(Importer(), [], title="t")


# --------------------------------------------------------------------------- the controls

def test_controls_from_ipywidgets_carry_ranges_options_and_links():
    view, c = _probe()
    specs = controls_from_widgets(
        view, [(c["count"], "value", "count"), (c["word"], "value", "word"),
               (c["level"], "value", "level"), (c["mode"], "index", "count")],
        buttons=[(c["reset"], {"count": 0, "level": 1.0})])
    count, word, level, mode, reset = specs
    assert (count.kind, count.min, count.max, count.step, count.value, count.readout) == \
        ("slider", 0, 9, 1, 2, "d")
    assert count.drives == {"count": "value"} and count.id == c["count"].model_id
    assert (word.kind, word.options, word.values, word.value) == ("select", ("one", "two"), ("w1", "w2"), 1)
    assert (level.min, level.max, level.step, level.value, level.readout) == (0.0, 2.0, 0.05, 0.3, ".2f")
    assert (mode.kind, mode.options, mode.value, mode.max, mode.drives) == \
        ("slider", ("low", "mid", "high"), 1, 2, {"count": "index"})
    assert (reset.kind, reset.label, reset.sets) == ("button", "reset", {"count": 0, "level": 1.0})


def test_the_explorers_jslinks_give_its_controls():
    ex = featviz.explorer(featviz.pretrained(), torch.zeros(2, 1, 28, 28))
    v = ex.canvas
    links = [widgets.jslink((ex.layer_dropdown, "index"), (v, "layer_index")),
             widgets.jslink((v, "channel"), (ex.filter_slider, "value")),   # either end
             widgets.jslink((ex.view, "index"), (v, "view_index")),
             widgets.jslink((ex.norm, "index"), (v, "scale_index"))]
    specs = controls_from_widgets(v, links)
    layer, filt, view, scale = specs
    assert layer.kind == "select" and layer.options[3].startswith("conv2") and layer.drives == \
        {"layer_index": "index"}
    assert (filt.kind, filt.min, filt.max, filt.drives) == ("slider", 0, 15, {"channel": "value"})
    assert filt.id == ex.filter_slider.model_id, "the view's filter_control refers to it by this id"
    assert (view.kind, view.options, scale.options) == ("toggle", ("all maps", "one map"), ("shared", "per map"))
    assert view.tooltips and view.tooltips[1].startswith("the chosen map")
    triples = controls_from_widgets(v, [(ex.layer_dropdown, "index", "layer_index"),
                                        (ex.filter_slider, "value", "channel"),
                                        (ex.view, "index", "view_index"), (ex.norm, "index", "scale_index")])
    assert triples == specs


def test_wrong_controls_say_how_to_fix_them():
    view, c = _probe()
    with pytest.raises(ValueError, match="Did you mean 'count'"):
        controls_from_widgets(view, [(c["count"], "value", "cuont")])
    with pytest.raises(TypeError, match="IntSlider, FloatSlider"):
        controls_from_widgets(view, [(widgets.Text(description="t"), "value", "word")])
    with pytest.raises(ValueError, match="'index'"):
        controls_from_widgets(view, [(c["count"], "index", "count")])
    with pytest.raises(ValueError, match="from a control to the view"):
        controls_from_widgets(view, [widgets.jsdlink((view, "count"), (c["count"], "value"))])
    with pytest.raises(ValueError, match="index of an option"):
        ControlSpec("toggle", "v", 5, options=["a", "b"], drives={"count": "index"})
    with pytest.raises(ValueError, match="readout"):
        ControlSpec("slider", "v", 0, min=0, max=1, step=1, readout=",.3s", drives={"count": "value"})
    with pytest.raises(ValueError, match="sets"):
        ControlSpec("button", "b", drives={"count": "value"})


def test_save_html_writes_utf8(tmp_path):
    out = save_html(tmp_path / "page.html", "<p>24×24</p>")
    assert out == tmp_path / "page.html" and out.read_bytes() == "<p>24×24</p>".encode("utf-8")


# --------------------------------------------------------------------------- in Chromium



class Page:
    """A saved page open in Chromium, with what it asked for and what went wrong."""

    def __init__(self, browser, path: Path, width: int = 900) -> None:
        self.page = browser.new_page(viewport={"width": width, "height": 900})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(path.as_uri())
        self.page.wait_for_function("document.body.dataset.featvizReady === '1'", timeout=15_000)

    def pixels(self) -> dict:
        """A fingerprint of the canvas: a hash of its pixels, how many are not white."""
        return self.page.evaluate("""(sel) => {
          const cv = document.querySelector(sel);
          const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
          let h = 2166136261, ink = 0;
          const colours = new Set();
          for (let i = 0; i < d.length; i += 4) {
            const rgb = d[i] | (d[i + 1] << 8) | (d[i + 2] << 16);
            if (rgb !== 0xffffff) ink++;
            if (colours.size < 5000) colours.add(rgb);
            h = Math.imul(h ^ rgb, 16777619) >>> 0;
          }
          return {hash: h, ink: ink / (d.length / 4), colours: colours.size, state: cv.dataset.state};
        }""", CANVAS)

    def redraw(self, action) -> dict:
        """Do ``action``, wait for the canvas to be drawn again, return its fingerprint."""
        draws = self.page.eval_on_selector(CANVAS, "c => Number(c.dataset.draws)")
        action()
        self.page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).dataset.draws) > n",
                                    arg=[CANVAS, draws], timeout=5_000)
        self.page.wait_for_timeout(50)
        return self.pixels()

    def slider(self, label: str) -> dict:
        return self.page.evaluate("""(label) => {
          const row = [...document.querySelectorAll('.fvh-control')].find(
            (r) => r.querySelector('.fvh-label')?.textContent === label);
          const i = row.querySelector('input');
          return {value: Number(i.value), max: Number(i.max), readout: row.querySelector('output')?.textContent};
        }""", label)

    def shot(self, path: Path) -> None:
        self.page.screenshot(path=str(path), full_page=True)
        from _browser import copy_to_artifacts

        copy_to_artifacts({path.name: path})


@pytest.fixture(scope="module")
def saved_explorer(tmp_path_factory) -> Path:
    """A model the kernel computes (engine="kernel"): the page holds three images' maps."""
    ex = featviz.explorer(featviz.pretrained(), engine="kernel")
    return ex.save_html(tmp_path_factory.mktemp("static") / "explorer.html", max_images=3)


@pytest.fixture(scope="module")
def explorer_page(browser, saved_explorer) -> Page:
    page = Page(browser, saved_explorer)
    yield page
    page.page.close()


def test_the_saved_explorer_draws_with_no_network(explorer_page, saved_explorer):
    page = explorer_page
    text = saved_explorer.read_text(encoding="utf-8")
    assert len(text.encode()) < 600_000, "the page stays small (three images' activations)"
    assert _loads_from_the_network(text) == []
    first = page.pixels()
    assert first["ink"] > 0.15 and first["colours"] > 50, f"the canvas is blank: {first}"
    assert first["state"].split("|")[1:] == ["0", "0", "0", "0"], first["state"]
    # layer, filter, view, scale, and the image and label of the three saved images
    assert page.page.locator(".fvh-control").count() == 6
    local = ("file:", "blob:", "data:")
    assert [u for u in page.requests if not u.startswith(local)] == [], "the page asked the network"
    page.shot(saved_explorer.with_suffix(".png"))


def test_each_control_changes_the_picture(explorer_page):
    page, seen = explorer_page, []
    p = page.page
    seen.append(page.pixels()["hash"])
    p.focus(".fvh-kind-slider input")
    for _ in range(3):
        after = page.redraw(lambda: p.keyboard.press("ArrowRight"))
    assert after["state"].split("|")[2] == "3" and page.slider("filter")["readout"] == "3"
    seen.append(after["hash"])
    after = page.redraw(lambda: p.select_option(".fvh-select-input", index=3))   # conv2
    assert after["state"].split("|")[1] == "3"
    assert page.slider("filter")["max"] == 31, "the view set the filter slider's range (filter_control)"
    seen.append(after["hash"])
    p.focus(".fvh-kind-slider input")
    page.redraw(lambda: p.keyboard.press("End"))
    assert page.slider("filter")["value"] == 31
    page.redraw(lambda: p.select_option(".fvh-select-input", index=0))   # conv1: 16 maps
    assert page.slider("filter") == {"value": 15, "max": 15, "readout": "15"}, "the filter follows the layer"
    assert page.pixels()["state"].split("|")[2] == "15"
    seen.append(page.pixels()["hash"])
    after = page.redraw(lambda: p.click(".fvh-toggle:has-text('per map')"))
    assert after["state"].split("|")[4] == "1"
    seen.append(after["hash"])
    after = page.redraw(lambda: p.click(".fvh-toggle:has-text('one map')"))
    assert after["state"].split("|")[3] == "1"
    seen.append(after["hash"])
    assert len(set(seen)) == len(seen), "a control left the picture as it was"
    assert p.get_attribute(".fvh-toggle:has-text('one map')", "aria-pressed") == "true"


def test_a_click_on_a_map_moves_the_slider_and_a_kernel_question_is_answered_politely(explorer_page):
    page = explorer_page
    p = page.page
    if page.pixels()["state"].split("|")[3] != "0":
        page.redraw(lambda: p.click(".fvh-toggle:has-text('all maps')"))
    before = page.slider("filter")["value"]
    after = page.redraw(lambda: p.click(CANVAS, position={"x": 140, "y": 150}))   # another map's tile
    chosen = int(after["state"].split("|")[2])
    assert chosen != before and page.slider("filter")["value"] == chosen, \
        "the view's channel went back to the slider (linked both ways)"
    assert p.is_hidden("#featviz-notice")
    page.redraw(lambda: p.click(".fvh-toggle:has-text('one map')"))
    box = json.loads(p.eval_on_selector(CANVAS, "c => c.dataset.map"))
    for _ in range(2):   # the inspector asks the kernel: the page says it needs one, once
        p.click(CANVAS, position={"x": box["x0"] + 5, "y": box["y0"] + 5})
    p.wait_for_selector("#featviz-notice:not([hidden])", timeout=5_000)
    assert "running notebook" in p.inner_text("#featviz-notice")
    assert p.locator("#featviz-notice").count() == 1


def test_the_saved_explorer_fits_a_phone(browser, saved_explorer):
    page = Page(browser, saved_explorer, width=390)
    try:
        p = page.page
        widths = p.evaluate("""() => ({doc: document.documentElement.scrollWidth, win: innerWidth,
          controls: [...document.querySelectorAll('.fvh-control')].map((c) => c.getBoundingClientRect().right)})""")
        assert widths["doc"] <= widths["win"], "the page scrolls sideways on a phone"
        assert max(widths["controls"]) <= widths["win"], "a control runs off a phone's screen"
        assert page.pixels()["ink"] > 0.15
        page.shot(saved_explorer.with_name("explorer-phone.png"))
        assert page.errors == []
    finally:
        page.page.close()


def test_the_saved_explorer_runs_in_the_course_sites_frame(browser, saved_explorer):
    """As scripts/build_site.py shows an export: <iframe sandbox="allow-scripts"> (an opaque
    origin), resized by the height the page posts to its parent."""
    frame_page = saved_explorer.with_name("site.html")
    frame_page.write_text(
        '<!DOCTYPE html><html><body><iframe sandbox="allow-scripts" src="explorer.html" '
        'style="width: 860px; height: 200px"></iframe><script>window.heights = [];'
        'addEventListener("message", (e) => { if (e.data && e.data.featviz === "height") '
        'heights.push(e.data.height); });</script></body></html>', encoding="utf-8")
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(frame_page.as_uri())
        page.wait_for_function("window.heights.length > 0", timeout=15_000)
        inner = page.frames[1]
        assert inner.eval_on_selector(CANVAS, "c => Number(c.dataset.draws)") >= 1
        assert page.evaluate("Math.max(...window.heights)") > 500, "the framed page tells its height"
        assert errors == [], errors
    finally:
        page.close()


def test_the_saved_explorer_shows_no_error(explorer_page):
    assert explorer_page.errors == [], explorer_page.errors


def test_a_layer_named_like_a_script_stays_text(browser, tmp_path):
    model = nn.Sequential()
    model.add_module(EVIL, nn.Conv2d(1, 4, 3))
    model.add_module("relu", nn.ReLU())
    ex = featviz.explorer(model, torch.rand(2, 1, 12, 12), snapshots=None)
    assert ex.ok, ex.problem
    specs = controls_from_widgets(ex.canvas, [(ex.layer_dropdown, "index", "layer_index")])
    path = save_html(tmp_path / "evil.html", static_html(ex.canvas, specs, title=EVIL, note=EVIL))
    page = Page(browser, path)
    try:
        p = page.page
        assert p.eval_on_selector(".fvh-select-input option", "o => o.textContent").startswith(EVIL)
        assert p.inner_text("h1") == EVIL
        assert p.locator("script").count() == 2 and page.dialogs == [] and page.errors == []
        assert page.pixels()["ink"] > 0.05
    finally:
        page.page.close()


def test_the_saved_sketchpad_shows_its_answer_and_reads_a_new_drawing_or_says_it_cannot(browser, tmp_path):
    """The sketchpad saved as it is: its drawing, prediction and maps. Where its network runs
    in the browser (``_engine`` "browser"), a new drawing is read in the page and the layer
    chooser works; where the kernel reads it, drawing saves ``_seq`` (a kernel trait): the
    page says that needs a kernel."""
    pad = featviz.sketchpad()
    pad.draw([(0.5, 0.15), (0.5, 0.85)])
    assert pad.prediction == 1
    in_page = getattr(pad, "_engine", "kernel") == "browser"
    specs = controls_from_widgets(pad, [(pad.layer_dropdown, "index", "_layer_index")]) if in_page else []
    path = save_html(tmp_path / "pad.html", static_html(pad, specs, title="featviz sketchpad",
                                                        kernel_traits=[] if in_page else ["_seq"]))
    page = Page(browser, path)
    try:
        p = page.page
        assert p.inner_text(".fvs-prediction") == "1", "the saved answer is shown"
        assert p.locator(".fvs-maps-row").is_visible(), "and the saved maps"
        box = p.locator("canvas.fvs-pad").bounding_box()
        p.mouse.move(box["x"] + 40, box["y"] + 60)   # a diagonal across the 1: a 4
        p.mouse.down()
        p.mouse.move(box["x"] + 200, box["y"] + 200, steps=6)
        p.mouse.up()
        if in_page:
            p.wait_for_function("document.querySelector('.fvs-prediction').textContent !== '1'", timeout=5_000)
            title = p.inner_text(".fvs-maps .fvs-title")
            p.select_option(".fvh-select-input", index=1)
            p.wait_for_function("(t) => document.querySelector('.fvs-maps .fvs-title').textContent !== t",
                                arg=title, timeout=5_000)
            assert p.is_hidden("#featviz-notice"), "the page needed no kernel"
        else:
            p.wait_for_selector("#featviz-notice:not([hidden])", timeout=5_000)
            assert "running notebook" in p.inner_text("#featviz-notice")
        assert page.errors == [] and [u for u in page.requests if not u.startswith(("file:", "blob:"))] == []
    finally:
        page.page.close()


def test_a_kernel_trait_brings_the_note_once(browser, tmp_path):
    view, c = _probe()
    specs = controls_from_widgets(view, [(c["count"], "value", "count"), (c["level"], "value", "level")])
    page = Page(browser, save_html(tmp_path / "asks.html",
                                   static_html(view, specs, title="probe", kernel_traits=["level"])))
    try:
        p = page.page
        count, level = p.locator(".fvh-kind-slider input").all()
        count.focus()
        p.keyboard.press("ArrowRight")
        assert json.loads(p.get_attribute("#featviz-view", "data-state"))["count"] == 3
        assert p.is_hidden("#featviz-notice"), "count is the page's own"
        level.focus()
        p.keyboard.press("ArrowRight")
        p.wait_for_selector("#featviz-notice:not([hidden])", timeout=5_000)
        assert page.errors == []
    finally:
        page.page.close()


def test_what_the_page_hands_a_front_end(browser, tmp_path):
    view, c = _probe()
    specs = controls_from_widgets(view, [(c["count"], "value", "count"), (c["word"], "value", "word"),
                                         (c["level"], "value", "level")],
                                  buttons=[(c["reset"], {"count": 7, "level": 1.55, "word": "w1"})])
    page = Page(browser, save_html(tmp_path / "probe.html", static_html(view, specs, title="probe")))
    try:
        p = page.page
        probe = json.loads(p.get_attribute("#featviz-view", "data-probe"))
        # binary traits reach the front end as DataView, as ipywidgets 7 and 8 hand them
        assert probe == {"calls": ["initialize", "render"], "kind": "DataView", "length": 768,
                         "sum": 3 * sum(range(256)), "nested": "DataView", "nestedSum": 6,
                         "ref": "IPY_MODEL_" + c["count"].model_id}
        state = lambda: json.loads(p.get_attribute("#featviz-view", "data-state"))  # noqa: E731
        assert state() | {"calls": None} == {"count": 2, "word": "w2", "level": 0.3, "calls": None}
        p.click(".fvh-button")      # one click sets several traits, and the linked controls follow
        assert state()["count"] == 7 and state()["word"] == "w1" and state()["level"] == 1.55
        assert p.eval_on_selector(".fvh-select-input", "s => s.selectedIndex") == 0
        level = [r for r in p.locator(".fvh-kind-slider").all() if r.inner_text().startswith("level")][0]
        readouts = []
        for value in (0.3, 1.55, 0.05, 2.0, 0.7):   # no exact ties: there JS rounds half up, Python half even
            level.locator("input").evaluate("(i, v) => { i.value = v; i.dispatchEvent(new Event('input')); }",
                                            value)
            readouts.append((level.locator("output").inner_text(), format(value, ".2f")))
            assert state()["level"] == pytest.approx(value)
        assert [a for a, _ in readouts] == [b for _, b in readouts]
        assert state()["calls"].count("initialize") == 1 and "count" in state()["calls"]
        p.click("#featviz-view")
        p.wait_for_selector("#featviz-notice:not([hidden])", timeout=5_000)
        assert page.errors == [] and [u for u in page.requests if not u.startswith(("file:", "blob:"))] == []
    finally:
        page.page.close()


# --------------------------------------------------------------------------- ipywidgets 7

# Builds controls of each kind, links them to a small view (jslink and triples) and
# prints their specs and the view's state as JSON: run under ipywidgets 8 (here) and
# 7.7.1 (Colab's), the two must agree.
_EITHER_IPYWIDGETS = """
import json, sys
sys.path.insert(0, %(repo)r)
import anywidget, ipywidgets as widgets, traitlets
from featviz.widgets._compat import set_tooltip
from featviz.widgets._static import controls_from_widgets, serialize_state, static_html

class V(anywidget.AnyWidget):
    _esm = "export default { render({ el }) { el.textContent = 'v'; } };"
    blob = traitlets.Bytes(b"").tag(sync=True)
    luts = traitlets.Dict().tag(sync=True)
    peer = traitlets.Instance(widgets.Widget, allow_none=True).tag(sync=True, **widgets.widget_serialization)
    n = traitlets.Int(0).tag(sync=True)
    x = traitlets.Float(0).tag(sync=True)
    k = traitlets.Int(0).tag(sync=True)

v = V(blob=b"\\x00\\x01\\xff", luts={"a": b"ab"})
c = dict(s=widgets.IntSlider(value=3, min=0, max=9, description="n"),
         f=widgets.FloatSlider(value=0.5, min=0, max=2, step=0.05, description="x", readout_format=".1f"),
         d=widgets.Dropdown(options=[("one", 1), ("two", 2)], value=2, description="k"),
         t=widgets.ToggleButtons(options=["a", "b"], tooltips=["A", "B"], description="k2"),
         ss=widgets.SelectionSlider(options=["lo", "hi"], value="hi", description="k3"),
         b=widgets.Button(description="reset", tooltip="back"))
set_tooltip(c["s"], "the n")
v.peer = c["s"]
links = [widgets.jslink((c["s"], "value"), (v, "n")), widgets.jslink((v, "x"), (c["f"], "value")),
         (c["d"], "index", "k"), widgets.jslink((c["t"], "index"), (v, "k")), (c["ss"], "index", "k"),
         (c["d"], "value", "n")]
specs = controls_from_widgets(v, links, buttons=[(c["b"], {"n": 0})])
names = {w.model_id: name for name, w in c.items()}
state, buffers = serialize_state(v)
print(json.dumps({"ipywidgets": widgets.__version__,
                  "specs": [dict(s.to_json(), id=names[s.id]) for s in specs],
                  "state": {k: state[k] for k in ("blob", "luts", "n")}, "buffers": buffers,
                  "peer": state["peer"] == "IPY_MODEL_" + c["s"].model_id,
                  "page": "featviz-static" in static_html(v, specs, title="t")}, sort_keys=True))
"""


def test_controls_and_state_are_the_same_on_ipywidgets_7(tmp_path):
    from _browser import missing
    from _venvs import CORE, REPO, make_venv, registry_has

    script = _EITHER_IPYWIDGETS % {"repo": str(REPO)}
    env = {"FEATVIZ_OFFLINE": "1", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "2"}
    here = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, **env})
    assert here.returncode == 0, here.stderr[-3000:]
    eight = json.loads(here.stdout.strip().splitlines()[-1])
    venv = make_venv(tmp_path / "venv", (*CORE, "anywidget", "ipykernel"))
    why = registry_has(venv, "ipywidgets", "7.7.1")
    if why:
        missing(why)
    # ipywidgets 7.7.1 in the venv, before the linked 8; its front-end packages are not needed
    venv.pip("install", "-q", "--no-deps", "ipywidgets==7.7.1", "ipython_genutils==0.2.0", timeout=200)
    seven = json.loads(venv.python_code(script, cwd=tmp_path, timeout=120, **env).stdout.strip().splitlines()[-1])
    assert (seven.pop("ipywidgets"), eight.pop("ipywidgets")) == ("7.7.1", widgets.__version__)
    assert seven == eight
    assert eight["peer"] and eight["page"]
    assert eight["buffers"] == [{"path": ["blob"], "data": "AAH/"}, {"path": ["luts", "a"], "data": "YWI="}]
    assert [s["kind"] for s in eight["specs"]] == ["slider", "slider", "select", "toggle", "slider", "button"]
    assert eight["specs"][0]["tooltip"] == "the n" and eight["specs"][1]["readout"] == ".1f"
    assert eight["specs"][2]["drives"] == {"k": "index", "n": "value"} and eight["specs"][2]["values"] == [1, 2]
