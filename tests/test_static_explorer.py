"""The explorer saved as one HTML file, with the network running in the page: every control.

``featviz.explorer(featviz.pretrained()).save_html(path)`` holds the weights of every
training moment and the images. Opened from file:// in Chromium, with no kernel and
no network, each control must change the picture (image, label, layer, filter, view,
scale, training moment, rotation, "undo changes"), the convolution inspector must take
a value apart as Python does, and nothing may be fetched from anywhere.

Skipped without Chromium or Playwright, failed instead when ``FEATVIZ_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import featviz

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")
from test_static_export import Page  # noqa: E402

MAX_MB = 3.5


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    ex = featviz.explorer(featviz.pretrained())
    assert ex.engine == "browser"
    return ex.save_html(tmp_path_factory.mktemp("static") / "explorer.html")


@pytest.fixture(scope="module")
def page(browser, saved):
    p = Page(browser, saved, width=1000)
    yield p
    p.page.close()


def _row(page, label: str):
    """The slider row labelled ``label`` (the colour-scale toggle is also labelled "scale")."""
    return page.page.locator(".fvh-kind-slider",
                             has=page.page.locator(f".fvh-label:text-is('{label}')")).first


def _value(page, label: str) -> float:
    return float(_row(page, label).locator("input").input_value())


def _step(page, label: str, key: str = "ArrowRight") -> dict:
    _row(page, label).locator("input").focus()
    return page.redraw(lambda: page.page.keyboard.press(key))


def test_the_saved_explorer_holds_the_network_and_fetches_nothing(page, saved):
    size = saved.stat().st_size / 1e6
    assert size < MAX_MB, f"the saved explorer weighs {size:.2f} MB"
    assert all(u.startswith(("file:", "blob:", "data:")) for u in page.requests), page.requests
    assert page.page.locator(".fv-explorer-view[data-engine=browser]").count() == 1
    labels = page.page.locator(".fvh-label").all_text_contents()
    for wanted in ("image", "label", "layer", "filter", "view", "scale", "training", "rotate °",
                   "shift x", "noise"):
        assert wanted in labels, f"no {wanted!r} control in {labels}"


def test_every_control_changes_the_picture_with_no_kernel(page):
    p = page.page
    seen = {page.pixels()["hash"]}
    for label in ("image", "filter", "training", "rotate °", "shift x", "noise", "erase", "scale"):
        key = "ArrowLeft" if label == "training" else "ArrowRight"
        after = _step(page, label, key)
        assert after["hash"] not in seen, f"moving {label!r} did not change the picture"
        seen.add(after["hash"])
    page.redraw(lambda: p.click(".fvh-button:has-text('undo changes')"))
    for label in ("rotate °", "shift x", "noise", "erase"):
        assert _value(page, label) == 0, f"undo changes left {label} moved"
    assert _value(page, "scale") == 1
    image = _value(page, "image")
    page.redraw(lambda: p.click(".fvh-toggle:text-is('7')"))
    assert _value(page, "image") != image, "choosing a label jumps to an image with it"
    page.redraw(lambda: p.select_option(".fvh-select-input", index=3))   # conv2
    assert int(_row(page, "filter").locator("input").get_attribute("max")) == 31
    after = page.redraw(lambda: p.click(".fvh-toggle:has-text('per map')"))
    assert after["hash"] not in seen
    assert not page.errors, page.errors


def test_the_inspector_takes_a_value_apart_as_python_does(page, tmp_path):
    p = page.page
    page.redraw(lambda: p.click(".fvh-toggle:has-text('one map')"))
    p.select_option(".fvh-select-input", index=3)   # conv2 (the test above may have chosen it)
    p.wait_for_timeout(100)
    box = p.eval_on_selector("canvas.featviz-explorer-canvas", "c => JSON.parse(c.dataset.map)")
    row, col = 2, 6
    canvas = p.locator("canvas.featviz-explorer-canvas")
    canvas.click(position={"x": box["x0"] + (col + 0.5) * box["mw"] / box["w"],
                           "y": box["y0"] + (row + 0.5) * box["mh"] / box["h"]})
    total = p.locator(".fv-insp-total").first
    total.wait_for(timeout=5_000)
    state = p.eval_on_selector("canvas.featviz-explorer-canvas", "c => c.dataset.state").split("|")
    channel, image = int(state[2]), int(_value(page, "image"))
    snapshot = int(_value(page, "training"))
    from featviz.widgets.explorer_data import default_images

    images, _ = default_images()
    _, model = featviz.pretrained_snapshots()[snapshot]
    with torch.no_grad():
        want = float(featviz.activations(model.eval(), images[image:image + 1], ["conv2"])["conv2"][0, channel, row, col])
    assert float(total.get_attribute("data-value")) == pytest.approx(want, abs=1e-4)
    assert page.dialogs == [] and not page.errors
    page.shot(tmp_path / "static_explorer_inspector.png")


def test_a_model_the_page_cannot_run_is_saved_with_its_maps_per_image(browser, tmp_path):
    """A residual network (the page runs no skip connection): the saved page holds the
    maps of the first images, precomputed, and says what needs a kernel."""
    torch.manual_seed(0)
    images, labels = featviz.digit_examples()
    ex = featviz.explorer(featviz.SmallResNet().eval(), images, labels, snapshots=None)
    assert ex.engine == "kernel" and "cannot run in the browser" in ex.canvas.engine_note
    path = ex.save_html(tmp_path / "resnet.html", max_images=6)
    text = path.read_text(encoding="utf-8")
    assert "maps of 6 images" in text and "perturbations" in text
    page = Page(browser, path, width=1000)
    try:
        assert page.page.locator(".fv-explorer-view[data-engine=precomputed]").count() == 1
        labels_shown = page.page.locator(".fvh-label").all_text_contents()
        assert "image" in labels_shown and "rotate °" not in labels_shown
        row = page.page.locator(".fvh-kind-slider", has=page.page.locator(".fvh-label:text-is('image')"))
        assert row.locator("input").get_attribute("max") == "5"
        seen = {page.pixels()["hash"]}
        for _ in range(3):
            row.locator("input").focus()
            after = page.redraw(lambda: page.page.keyboard.press("ArrowRight"))
            assert after["hash"] not in seen, "a new image changed nothing"
            seen.add(after["hash"])
        assert all(u.startswith(("file:", "blob:", "data:")) for u in page.requests)
        assert not page.errors, page.errors
    finally:
        page.page.close()
