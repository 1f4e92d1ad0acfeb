"""The explorer's controls: standard ipywidgets, made for one :class:`ExplorerData`.

:func:`make_controls` builds them (image, label, layer, filter, view, scale,
training moment and the perturbation sliders) and lays them out in rows;
:class:`ControlSync` keeps them consistent with one another in the kernel (the
label chooser follows the image and jumps to the next image with that label; the
filter slider's range follows the layer). What the picture draws from them is
linked in the browser by the explorer itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ._compat import set_tooltip

if TYPE_CHECKING:  # the explorer's state, for the type checker (imports point down)
    from .explorer_data import ExplorerData

__all__ = ["Controls", "ControlSync", "make_controls", "NO_CHANGE"]

#: the perturbation sliders' values that leave the input as it is
NO_CHANGE = {"shift_x": 0, "shift_y": 0, "rotate": 0, "scale": 1.0, "erase": 0, "noise": 0.0}
_DESC = {"description_width": "60px"}


def _slider(kind: type, description: str, value: Any, lo: Any, hi: Any, step: Any,
            css: str, width: str = "300px") -> widgets.Widget:
    w = kind(value=value, min=lo, max=hi, step=step, description=description,
             continuous_update=True, style=_DESC, layout=widgets.Layout(width=width))
    w.add_class(css)
    return w


@dataclass
class Controls:
    """The explorer's controls and the rows they are shown in."""

    image_slider: widgets.IntSlider
    digit_chooser: widgets.ToggleButtons | None
    layer_dropdown: widgets.Dropdown
    filter_slider: widgets.IntSlider
    view: widgets.ToggleButtons
    norm: widgets.ToggleButtons
    time_slider: widgets.SelectionSlider | None
    perturb: dict[str, widgets.Widget]
    reset_button: widgets.Button
    rows: list[list[widgets.Widget]] = field(default_factory=list)


def _toggles(options: list, value: Any, description: str, tips: list[str], css: str,
             width: str = "84px") -> widgets.ToggleButtons:
    w = widgets.ToggleButtons(options=options, value=value, description=description,
                              style={**_DESC, "button_width": width}, tooltips=tips)
    w.add_class(css)
    return w


def _digit_chooser(data: ExplorerData) -> widgets.ToggleButtons | None:
    if data.labels is None:
        return None
    present = sorted({int(v) for v in data.labels.tolist()})
    return _toggles([(data.class_name(k), k) for k in present], int(data.labels[0]), "label",
                    [f"jump to the next image labelled {data.class_name(k)}" for k in present],
                    "featviz-digits", "32px")


def _time_slider(data: ExplorerData) -> widgets.SelectionSlider | None:
    if len(data.snapshots) < 2:
        return None
    w = widgets.SelectionSlider(
        options=[(label, i) for i, (label, _) in enumerate(data.snapshots)],
        value=len(data.snapshots) - 1, description="training", continuous_update=True,
        style=_DESC, layout=widgets.Layout(width="560px"))
    w.add_class("featviz-time-slider")
    return w


def _perturb_sliders(h: int, w: int) -> dict[str, widgets.Widget]:
    big = max(1, min(h, w) // 4)
    c = {"shift_x": _slider(widgets.IntSlider, "shift x", 0, -big, big, 1, "featviz-shift-x"),
         "shift_y": _slider(widgets.IntSlider, "shift y", 0, -big, big, 1, "featviz-shift-y"),
         "rotate": _slider(widgets.IntSlider, "rotate °", 0, -180, 180, 5, "featviz-rotate"),
         "scale": _slider(widgets.FloatSlider, "scale", 1.0, 0.5, 2.0, 0.05, "featviz-zoom"),
         "erase": _slider(widgets.IntSlider, "erase", 0, 0, min(h, w), 1, "featviz-erase"),
         "noise": _slider(widgets.FloatSlider, "noise", 0.0, 0.0, 2.0, 0.05, "featviz-noise")}
    set_tooltip(c["erase"], "side of a square erased at the centre, in pixels")
    return c


def make_controls(data: ExplorerData, layer: str, view: str, norm: str) -> Controls:
    """The controls for ``data`` (an :class:`ExplorerData`), showing ``layer`` in ``view``
    with the ``norm`` colour scale, laid out in rows."""
    layer_dropdown = widgets.Dropdown(
        options=[(f"{k}  ({c} maps {h}×{w})", k) for k, (c, h, w) in data.shapes.items()],
        value=layer, description="layer", style=_DESC, layout=widgets.Layout(width="360px"))
    layer_dropdown.add_class("featviz-layer")
    reset = widgets.Button(description="undo changes", layout=widgets.Layout(width="120px"))
    reset.add_class("featviz-reset")
    c = Controls(
        image_slider=_slider(widgets.IntSlider, "image", 0, 0, len(data.images) - 1, 1,
                             "featviz-image-slider", "360px"),
        digit_chooser=_digit_chooser(data), layer_dropdown=layer_dropdown,
        filter_slider=_slider(widgets.IntSlider, "filter", 0, 0, data.shapes[layer][0] - 1, 1,
                              "featviz-filter-slider", "360px"),
        view=_toggles([("all maps", "grid"), ("one map", "single")], view, "view",
                      ["every map of the layer, the chosen filter framed in green",
                       "the chosen map large, beside the input and its filter; click it "
                       "to see how a value is computed"], "featviz-view"),
        norm=_toggles([("shared", "shared"), ("per map", "per-map")], norm, "scale",
                      ["one colour scale for the whole layer: maps compare",
                       "each map stretched to its own range: weak patterns show"],
                      "featviz-scale"),
        time_slider=_time_slider(data), perturb=_perturb_sliders(*data.images.shape[-2:]),
        reset_button=reset)
    p = c.perturb
    c.rows = [[c.image_slider] + ([c.digit_chooser] if c.digit_chooser else []),
              [c.layer_dropdown, c.filter_slider], [c.view, c.norm],
              *([[c.time_slider]] if c.time_slider is not None else []),
              [p["shift_x"], p["shift_y"], p["rotate"]], [p["scale"], p["erase"], p["noise"], reset]]
    return c


class ControlSync:
    """Keeps the controls consistent in the kernel: the label chooser shows the image's
    label and jumps to the next image with the label chosen (the page does this itself with
    the browser engine); the filter slider's range follows the layer until the picture
    is open in a page, which then sets it itself (see :meth:`_on_layer`)."""

    def __init__(self, controls: Controls, data: ExplorerData) -> None:
        self.c, self.data, self._suspend = controls, data, False
        self.page_owns_range = False   # set once the picture is open in a page
        controls.layer_dropdown.observe(self._on_layer, names="value")
        if controls.digit_chooser is not None:
            controls.image_slider.observe(self._on_image, names="value")
            controls.digit_chooser.observe(self._on_digit, names="value")

    def _on_image(self, change: dict) -> None:
        chooser, labels = self.c.digit_chooser, self.data.labels
        if chooser is None or labels is None:  # observed only when there is a label chooser
            return
        self._suspend = True
        try:
            chooser.value = int(labels[change["new"]])
        finally:
            self._suspend = False

    def _on_digit(self, change: dict) -> None:
        labels = self.data.labels
        if self._suspend or labels is None:
            return
        digit, n, start = change["new"], len(labels), self.c.image_slider.value
        if int(labels[start]) == digit:
            return
        for step in range(1, n + 1):
            i = (start + step) % n
            if int(labels[i]) == digit:
                self.c.image_slider.value = i  # the explorer redraws for the new image
                return

    def label_follows_in_the_page(self) -> None:
        """The browser engine keeps the label chooser and the image in step in the page
        (explorer.js): the kernel stops doing it, so the two never fight."""
        if self.c.digit_chooser is not None:
            self.c.image_slider.unobserve(self._on_image, names="value")
            self.c.digit_chooser.unobserve(self._on_digit, names="value")

    def _on_layer(self, change: dict) -> None:
        # Once the picture is open in a page, the page owns the filter slider's range: it
        # sets it at once when the layer changes (explorer.js), and the kernel keeps out,
        # so that a reply reaching the page after several layer changes can never narrow
        # the range and clamp the filter chosen there. Without a page (a script, a test,
        # nbval) the kernel keeps the range right itself.
        if self.page_owns_range:
            return
        top = self.data.shapes[change["new"]][0] - 1
        slider = self.c.filter_slider
        if slider.max != top:
            if slider.value > top:
                slider.value = top
            slider.max = top
