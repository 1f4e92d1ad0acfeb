"""The screenshot lesson 05 shows of the live explorer is what the live explorer draws:
lesson 05 run in JupyterLab in headless Chromium, the layer switched to conv2 in the page
(scripts/screenshots.py, into a temporary folder, never the repository), then the canvas
is read back: a drawn grid of as many tiles as conv2 has maps, laid out as the layer's grid.

Skipped without Chromium or Playwright, failed instead when FEATVIZ_REQUIRE_BROWSER=1.
"""
from __future__ import annotations


import pytest
from _browser import REPO, SERVER_START_S, find_chromium
from _scripts import load_script

import featviz
from featviz._style import grid_shape


def _script():
    return load_script("screenshots")


@pytest.mark.timeout(SERVER_START_S + 600)
def test_the_live_explorer_draws_what_the_committed_screenshot_shows(tmp_path):
    find_chromium()
    shots = _script()
    found = shots.capture(tmp_path / "shots", tmp_path)
    channels = featviz.activations(featviz.pretrained(), featviz.digit_batch([3])[0],
                                   [shots.LAYER])[shots.LAYER].shape[1]
    label = " ".join(found["layer_label"].split())          # the page spaces with &nbsp;
    assert label.startswith(f"{shots.LAYER} ({channels} maps"), label
    rows, cols, ink = shots.tiles_on_canvas(found["canvas_png"])
    assert (rows, cols) == grid_shape(channels), (rows, cols)
    assert ink > 0.5, f"the grid is mostly blank ({ink:.0%} drawn)"
    saved = tmp_path / "shots" / shots.EXPLORER_PNG
    assert saved.stat().st_size < 200_000
    # the committed image is a picture of the same layer's grid
    committed = REPO / "notebooks" / "images" / shots.EXPLORER_PNG
    assert committed.exists(), "run scripts/screenshots.py to make the lesson's screenshot"
