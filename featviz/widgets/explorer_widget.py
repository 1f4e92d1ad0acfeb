"""The explorer: pick an image, a layer, a filter and a moment of training, and see.

In a notebook, ``featviz.explorer()`` as the last expression of a cell shows the
live widget; ``ex.snapshot()`` gives a still figure of the same state for readers
without a kernel.

How it stays fast: for the current image, training moment and perturbation the
kernel sends the activations of every layer once, as uint8 with a per-map
offset and scale (:mod:`featviz.widgets._payload`), to :class:`ExplorerView`,
whose front end (``explorer.js``) draws the grid, the single map, the colour
bar and the prediction on a canvas. The layer, filter, view and scale controls
are standard ipywidgets linked to that view in the browser (``jslink``): moving
them draws at once, without the kernel, even while it is busy. Only the image,
the training moment and the perturbation sliders ask the kernel, once per
change. Clicking a position of a convolution's map asks it for the arithmetic
behind that number (:func:`featviz.conv_arithmetic`).
"""
from __future__ import annotations

import html
import pathlib
from typing import Any, Sequence

import anywidget
import ipywidgets as widgets
import traitlets
import torch
from torch import nn

from ..netspec import UnsupportedModel
from ._bundle import bundle
from ._compat import in_notebook
from ._payload import colormap_table
from .explorer_controls import NO_CHANGE, Controls, ControlSync, make_controls
from .explorer_data import ExplorerData, ExplorerError, Perturbation, default_images
from .explorer_inspect import inspection
from .explorer_local import browser_bundle

__all__ = ["Explorer", "ExplorerPicture", "ExplorerState", "ExplorerView", "explorer", "ExplorerError",
           "default_images"]

_HERE = pathlib.Path(__file__).parent
_COLORMAPS = ("magma", "RdBu_r")
_VIEWS = ("grid", "single")
_SCALES = ("shared", "per-map")
_ENGINES = ("auto", "browser", "kernel")

_CSS = """<style>
.featviz-explorer .widget-toggle-buttons { display: flex; flex: 0 0 auto; align-items: baseline; }
.featviz-explorer .widget-toggle-buttons > .widget-label {
  flex: 0 0 60px; text-align: right; margin-right: 8px; overflow: visible; }
.featviz-explorer .featviz-digits .widget-toggle-button { padding: 0; }
.featviz-explorer .featviz-message { color: #b71c1c; }
</style>"""


class ExplorerView(anywidget.AnyWidget):
    """The picture of the explorer, drawn in the browser from compact activations.

    Synced traits: ``payload`` (bytes: every layer's maps as uint8, the filters,
    the input picture), ``meta`` (their layout, offsets and scales, colour limits,
    grid shapes, prediction), ``colormaps`` (256 RGB entries per name in
    ``cmap_names``), ``layer_index`` / ``channel`` / ``view_index`` /
    ``scale_index`` (linked to the controls in the browser), ``filter_control``
    (the filter slider, whose range the browser sets when the layer changes),
    ``inspection`` (the last convolution taken apart, see
    :func:`featviz.widgets.explorer_inspect.inspection`).
    """

    _esm = bundle("explorer.js")   # with forward.js, imageops.js, style.js, explorer_local.js
    _css = _HERE / "explorer.css"
    payload = traitlets.Bytes(b"").tag(sync=True)
    meta = traitlets.Dict().tag(sync=True)
    colormaps = traitlets.Bytes(b"").tag(sync=True)
    cmap_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    layer_index = traitlets.Int(0).tag(sync=True)
    channel = traitlets.Int(0).tag(sync=True)
    view_index = traitlets.Int(0).tag(sync=True)
    scale_index = traitlets.Int(0).tag(sync=True)
    filter_control = traitlets.Instance(widgets.IntSlider, allow_none=True).tag(
        sync=True, **widgets.widget_serialization)
    inspection = traitlets.Dict().tag(sync=True)
    # the browser engine (see featviz.widgets.explorer_local): the network, the images and
    # the state the page computes from, linked to the controls there
    engine = traitlets.Unicode("kernel").tag(sync=True)
    engine_note = traitlets.Unicode("").tag(sync=True)
    local_meta = traitlets.Dict().tag(sync=True)
    local_data = traitlets.Bytes(b"").tag(sync=True)
    # set by the page when it shows the picture: from then on it owns the filter range
    page_open = traitlets.Bool(False).tag(sync=True)
    image_index = traitlets.Int(0).tag(sync=True)
    snapshot_index = traitlets.Int(0).tag(sync=True)
    digit_index = traitlets.Int(0).tag(sync=True)
    shift_x = traitlets.Float(0.0).tag(sync=True)
    shift_y = traitlets.Float(0.0).tag(sync=True)
    rotate = traitlets.Float(0.0).tag(sync=True)
    scale = traitlets.Float(1.0).tag(sync=True)
    erase = traitlets.Int(0).tag(sync=True)
    noise = traitlets.Float(0.0).tag(sync=True)


class ExplorerState:
    """What an explorer shows, read from its controls, and what the model makes of it.

    It holds the explorer's ``data`` and ``controls`` (given, never looked up elsewhere)
    and answers the queries :class:`Explorer` passes on: ``state``, ``perturbation``,
    ``input()``, ``activations()``, ``prediction()``.
    """

    def __init__(self, data: ExplorerData, controls: Controls) -> None:
        self.data, self.controls = data, controls

    @property
    def state(self) -> dict[str, Any]:
        """The current choice: image, layer, channel, view, norm and snapshot (indices)."""
        c = self.controls
        top = self.data.shapes[c.layer_dropdown.value][0] - 1
        return {
            "image": int(c.image_slider.value),
            "layer": c.layer_dropdown.value,
            "channel": min(int(c.filter_slider.value), top),
            "view": c.view.value,
            "norm": c.norm.value,
            "snapshot": int(c.time_slider.value) if c.time_slider is not None
            else len(self.data.snapshots) - 1,
        }

    @property
    def perturbation(self) -> Perturbation:
        """The change made to the input by the perturbation sliders."""
        p = self.controls.perturb
        return Perturbation(shift_x=float(p["shift_x"].value), shift_y=float(p["shift_y"].value),
                            rotate=float(p["rotate"].value), scale=float(p["scale"].value),
                            erase=int(p["erase"].value), noise=float(p["noise"].value))

    def input(self) -> torch.Tensor:
        """The current input as the model sees it (perturbed), ``(1, C, H, W)``."""
        return self.data.input(self.state["image"], self.perturbation)

    def activations(self, index: int | None = None, snapshot: int | None = None) -> dict:
        s = self.state
        return self.data.entry(s["image"] if index is None else index,
                               s["snapshot"] if snapshot is None else snapshot,
                               self.perturbation).maps

    def prediction(self) -> tuple[str, float] | None:
        s = self.state
        probs = self.data.entry(s["image"], s["snapshot"], self.perturbation).probs
        if probs is None:
            return None
        k = int(probs.argmax())
        return self.data.class_name(k), float(probs[k])


class ExplorerPicture:
    """What an explorer sends to its picture (:class:`ExplorerView`): the activations of
    the current state, once per image, training moment and perturbation (the kernel
    engine), and the convolution inspector's answers. It holds the ``state`` it
    reads, the ``view`` it writes and the ``message`` line it shows problems in."""

    def __init__(self, state: ExplorerState, view: ExplorerView, message: widgets.HTML) -> None:
        self.queries, self.view, self.message = state, view, message
        self.sent = 0          # payloads sent to the browser: one per image / moment / perturbation
        self.suspended = False

    def redraw(self) -> None:
        """Send the activations of the current image, moment and perturbation to the
        browser (one message). Problems are shown in ``message``, never raised. With the
        browser engine there is nothing to send: the page computes them itself."""
        if self.suspended or self.view.engine == "browser":
            return
        q, s = self.queries, self.queries.state
        try:
            data, meta = q.data.payload(s["image"], s["snapshot"], q.perturbation)
        except ExplorerError as exc:
            self.message.value = "<b>Cannot show this:</b> " + html.escape(str(exc))
            return
        self.sent += 1
        meta["token"] = self.sent
        old = self.view.inspection
        with self.view.hold_sync():
            self.view.meta = meta
            self.view.payload = data
        if self.message.value:
            self.message.value = ""
        if old.get("ok"):  # the inspector follows the input
            self.inspect(old["layer"], old["channel"], (old["row"], old["col"]))

    def inspect(self, layer: str, channel: int, position: tuple[int, int]) -> dict[str, Any]:
        """Take one value of a convolution layer apart, show it in the inspector and return
        it (the dict the browser draws; ``"ok"`` False with a ``"message"`` when it cannot)."""
        q = self.queries
        _, model = q.data.snapshots[q.state["snapshot"]]
        found = inspection(model, q.data, q.input(), layer, channel, position)
        found["token"] = self.sent
        self.view.inspection = found
        return found

    def on_view_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "inspect":
            try:
                self.inspect(self.queries.data.layer_names[int(content["layer"])],
                             int(content["channel"]), (int(content["row"]), int(content["col"])))
            except (KeyError, ValueError, TypeError, IndexError) as exc:
                self.view.inspection = {"ok": False, "message": str(exc)}


class Explorer(widgets.VBox):
    """The feature-map explorer widget; build it with :func:`explorer`.

    Controls (public attributes): ``image_slider``, ``digit_chooser`` (None without
    labels), ``layer_dropdown``, ``filter_slider``, ``view``, ``norm`` (the colour
    scale), ``time_slider`` (None without snapshots), ``perturb_controls``
    (``{"shift_x", "shift_y", "rotate", "scale", "erase", "noise"}`` sliders) and
    ``reset_button``; ``canvas`` is the :class:`ExplorerView`; ``message`` shows what
    is wrong, when something is. ``ok`` is False when the explorer could not start.

    It is built by composition: it holds its ``data`` (:class:`ExplorerData`), its
    ``controls`` (:class:`Controls`), its view (``canvas``) and two helpers made from
    them, an :class:`ExplorerState` (the queries: ``state``, ``input()``,
    ``activations()``, ``prediction()``) and an :class:`ExplorerPicture` (``redraw()``,
    ``inspect()``), to which its methods of those names pass on.
    """

    data: ExplorerData
    controls: Controls | None
    reset_button: widgets.Button | None

    def __init__(self, model: nn.Module | None, images: Any = None, labels: Any = None, *,
                 snapshots: Any = "default", layers: Any = None, layer: str | None = None,
                 view: str = "grid", norm: str = "shared",
                 classes: Sequence[str] | None = None, cache_mb: float = 256.0,
                 engine: str = "auto") -> None:
        super().__init__()
        self.add_class("featviz-explorer")
        self.message = widgets.HTML(value="")
        self.message.add_class("featviz-message")
        self.ok, self.problem = False, ""
        self.image_slider = self.digit_chooser = self.layer_dropdown = None
        self.filter_slider = self.view = self.norm = self.time_slider = None
        self.reset_button = None
        self.perturb_controls: dict[str, widgets.Widget] = {}
        self.canvas = ExplorerView()
        self.controls = None
        self._queries: ExplorerState | None = None
        self._picture: ExplorerPicture | None = None
        try:
            if view not in _VIEWS:
                raise ExplorerError(f"view must be 'grid' or 'single', got {view!r}.")
            if norm not in _SCALES:
                raise ExplorerError(f"norm must be 'shared' or 'per-map', got {norm!r}.")
            self.data = ExplorerData(model, images, labels, snapshots=snapshots, layers=layers,
                                     classes=classes, cache_mb=cache_mb)
            if layer is not None and layer not in self.data.layer_names:
                raise ExplorerError(f"layer {layer!r} has no feature maps to show; choose one "
                                    f"of {', '.join(self.data.layer_names)}.")
            if engine not in _ENGINES:
                raise ExplorerError(f"engine must be 'auto', 'browser' or 'kernel', got {engine!r}.")
        except ExplorerError as exc:
            self._fail(str(exc))
            return
        self.ok = True
        self._choose_engine(engine)
        self._build(make_controls(self.data, layer or self.data.layer_names[0], view, norm))
        self.redraw()

    # -- building -----------------------------------------------------------
    def _build(self, c: Controls) -> None:
        self.controls = c
        self._queries = ExplorerState(self.data, c)
        self._picture = ExplorerPicture(self._queries, self.canvas, self.message)
        self.image_slider, self.digit_chooser = c.image_slider, c.digit_chooser
        self.layer_dropdown, self.filter_slider = c.layer_dropdown, c.filter_slider
        self.view, self.norm, self.time_slider = c.view, c.norm, c.time_slider
        self.perturb_controls, self.reset_button = c.perturb, c.reset_button
        self._sync = ControlSync(c, self.data)
        self._connect(c, self._picture)
        self.children = [
            widgets.HTML(_CSS),
            *[widgets.HBox(row, layout=widgets.Layout(flex_flow="row wrap")) for row in c.rows],
            self.message, self.canvas,
        ]

    def _choose_engine(self, engine: str) -> None:
        """The browser engine when asked for or possible ("auto"), else the kernel's; the
        page says which, and why not in the page."""
        v = self.canvas
        if engine == "kernel":
            v.engine, v.engine_note = "kernel", "the kernel computes the maps (engine='kernel')"
            return
        try:
            meta, data = browser_bundle(self.data)
        except UnsupportedModel as exc:
            if engine == "browser":
                raise ExplorerError(f"engine='browser': {exc}") from None
            v.engine, v.engine_note = "kernel", f"the kernel computes the maps: {exc}"
            return
        with v.hold_sync():
            v.local_meta, v.local_data = meta, data
            v.engine, v.engine_note = "browser", ""

    @property
    def engine(self) -> str:
        """Where the maps are computed: ``"browser"`` (the page runs the network: no control
        waits for the kernel) or ``"kernel"`` (see ``canvas.engine_note`` for why)."""
        return self.canvas.engine

    def _connect(self, c: Controls, picture: ExplorerPicture) -> None:
        v = self.canvas
        v.cmap_names = list(_COLORMAPS)
        v.colormaps = b"".join(colormap_table(n) for n in _COLORMAPS)
        v.filter_control = c.filter_slider
        # what the browser draws follows these controls there, without the kernel
        v.layer_index, v.channel = c.layer_dropdown.index, c.filter_slider.value
        v.view_index, v.scale_index = c.view.index, c.norm.index
        self._links = [widgets.jslink((c.layer_dropdown, "index"), (v, "layer_index")),
                       widgets.jslink((c.filter_slider, "value"), (v, "channel")),
                       widgets.jslink((c.view, "index"), (v, "view_index")),
                       widgets.jslink((c.norm, "index"), (v, "scale_index"))]
        if v.engine == "browser":
            self._links += self._browser_links(c)
        # the kernel is asked only for a new image, training moment or perturbation (and
        # with the browser engine not even then)
        for w in (c.image_slider, c.time_slider, *c.perturb.values()):
            if w is not None:
                w.observe(lambda _: self.redraw(), names="value")
        c.reset_button.on_click(lambda _: self.reset_perturbation())
        v.observe(self._on_page_open, names="page_open")
        v.on_msg(picture.on_view_msg)

    def _on_page_open(self, change: dict) -> None:
        if change["new"]:
            self._sync.page_owns_range = True

    def _browser_links(self, c: Controls) -> list[Any]:
        """With the browser engine, every control is linked to the picture in the page."""
        v, links = self.canvas, []
        v.image_index = c.image_slider.value
        links.append(widgets.jslink((c.image_slider, "value"), (v, "image_index")))
        if c.time_slider is not None:
            v.snapshot_index = c.time_slider.index
            links.append(widgets.jslink((c.time_slider, "index"), (v, "snapshot_index")))
        else:
            v.snapshot_index = len(self.data.snapshots) - 1
        if c.digit_chooser is not None:
            v.digit_index = c.digit_chooser.index
            links.append(widgets.jslink((c.digit_chooser, "index"), (v, "digit_index")))
            self._sync.label_follows_in_the_page()
        for name, control in c.perturb.items():
            setattr(v, name, control.value)
            links.append(widgets.jslink((control, "value"), (v, name)))
        return links

    def _fail(self, text: str) -> None:
        self.problem = text
        self.message.value = "<b>The explorer cannot start:</b> " + html.escape(text)
        self.children = [widgets.HTML(_CSS), self.message]

    # -- the queries and the picture (passed on to the helpers) --------------
    @property
    def state(self) -> dict[str, Any]:
        """The current choice: image, layer, channel, view, norm and snapshot (indices);
        empty when the explorer could not start."""
        return self._queries.state if self._queries is not None else {}

    @property
    def perturbation(self) -> Perturbation:
        """The change made to the input by the perturbation sliders."""
        return self._queries.perturbation if self._queries is not None else Perturbation()

    @property
    def images(self) -> torch.Tensor | None:
        """The images the explorer shows, ``(N, C, H, W)``."""
        return self.data.images if self.ok else None

    @property
    def snapshots(self) -> list:
        return self.data.snapshots if self.ok else []

    @property
    def sent(self) -> int:
        """Payloads sent to the browser (the kernel engine: one per image, moment, change)."""
        return self._picture.sent if self._picture is not None else 0

    def _ready(self) -> tuple[ExplorerState, ExplorerPicture]:
        if self._queries is None or self._picture is None:
            raise ExplorerError(self.problem)
        return self._queries, self._picture

    def input(self) -> torch.Tensor:
        """The current input as the model sees it (perturbed), ``(1, C, H, W)``."""
        return self._ready()[0].input()

    def activations(self, index: int | None = None, snapshot: int | None = None) -> dict:
        """The maps ``{layer: (C, H, W) array}`` of one image at one snapshot (default: the
        current ones), with the current perturbation."""
        return self._ready()[0].activations(index, snapshot)

    def prediction(self) -> tuple[str, float] | None:
        """``(class name, probability)`` the model gives the current input, if it classifies."""
        return self._ready()[0].prediction()

    def redraw(self) -> None:
        """Send the current state's maps to the page (the kernel engine; see
        :meth:`ExplorerPicture.redraw`). Does nothing when the explorer could not start."""
        if self._picture is not None:
            self._picture.redraw()

    def inspect(self, layer: str, channel: int, position: tuple[int, int]) -> dict[str, Any]:
        """Take one value of a convolution layer apart and show it in the inspector."""
        return self._ready()[1].inspect(layer, channel, position)

    def __repr__(self) -> str:
        # the text a notebook viewer shows where the live widget cannot run
        return "featviz explorer: a live widget (run the notebook to use it)"

    def caption(self) -> list[str]:
        """The current state in words, as written above :meth:`snapshot`'s picture."""
        from .explorer_still import describe

        return describe(self)

    def snapshot(self, caption: bool = True) -> Any:
        """A still picture of the current state (a matplotlib ``Figure``), for readers where
        widgets do not run: the same colours, layout and words as the live widget."""
        from .explorer_still import still

        if not self.ok:
            raise ExplorerError(self.problem)
        return still(self, caption=caption)

    def save_html(self, path: str | pathlib.Path, *, title: str = "featviz explorer",
                  max_images: int = 24) -> pathlib.Path:
        """One self-contained HTML file of the explorer that works with no kernel and no
        network (the page's modules, the network's weights and the images are inside it).

        With the browser engine every control works there: image, label, layer, filter,
        view, scale, training moment, the perturbations and "undo changes", and the
        convolution inspector. With the kernel engine (a model the browser cannot run)
        the page holds the maps of the first ``max_images`` images at the current
        training moment, precomputed here: image, label, layer, filter, view and scale
        work, and the page says that perturbations, other moments and the inspector
        need a kernel. Returns the path written.
        """
        from ._static import controls_from_widgets, save_html, static_html

        if not self.ok:
            raise ExplorerError(self.problem)
        if self.canvas.engine == "browser":
            specs = controls_from_widgets(self.canvas, self._links,
                                          buttons=[(self.reset_button, dict(NO_CHANGE))])
            return save_html(path, static_html(self.canvas, specs, title=title))
        meta, data, count = self._precomputed(max_images)
        links = [*self._links, (self.image_slider, "value", "image_index")]
        if self.digit_chooser is not None:
            links.append((self.digit_chooser, "index", "digit_index"))
        specs = controls_from_widgets(self.canvas, links)
        image = next(s for s in specs if "image_index" in s.drives)
        image.max = count - 1
        image.value = min(int(image.value), count - 1)
        note = (f"A saved copy with the maps of {count} images, computed in the notebook: the "
                "image, label, layer, filter, view and scale work here; perturbations, other "
                f"training moments and the inspector need a kernel ({self.canvas.engine_note}).")
        return save_html(path, static_html(
            self.canvas, specs, title=title, note=note,
            overrides={"engine": "precomputed", "local_meta": meta, "local_data": data}))

    def _precomputed(self, max_images: int) -> tuple[dict[str, Any], bytes, int]:
        """The payloads of the first ``max_images`` images (current moment, no
        perturbation), laid end to end: ``(meta, bytes, count)``; each image's payload
        is ``bytes[start:start + size]`` with the layout of ``data.payload``."""
        snap = self.state["snapshot"]
        count = max(1, min(int(max_images), len(self.data.images)))
        chunks, metas, at = [], [], 0
        for i in range(count):
            data, meta = self.data.payload(i, snap, Perturbation())
            metas.append({**meta, "token": i + 1, "at": at, "size": len(data)})
            chunks.append(data + bytes(-len(data) % 4))
            at += len(chunks[-1])
        labels = None if self.data.labels is None else [int(v) for v in self.data.labels[:count]]
        return {"payloads": metas, "labels": labels}, b"".join(chunks), count

    def reset_perturbation(self) -> None:
        """Put the perturbation sliders back to 'no change' (one redraw)."""
        changed = [k for k, v in NO_CHANGE.items() if self.perturb_controls[k].value != v]
        picture = self._ready()[1]
        for i, k in enumerate(changed):
            picture.suspended = i < len(changed) - 1
            self.perturb_controls[k].value = NO_CHANGE[k]
        picture.suspended = False


def explorer(
    model: nn.Module | None = None,
    images: Any = None,
    labels: Any = None,
    *,
    snapshots: Any = "default",
    layers: Any = None,
    layer: str | None = None,
    view: str = "grid",
    norm: str = "shared",
    classes: Sequence[str] | None = None,
    cache_mb: float = 256.0,
    engine: str = "auto",
) -> Explorer:
    """An interactive feature-map explorer for a model, drawn in the browser.

    Parameters
    ----------
    model : any ``nn.Module`` with convolution layers; default ``featviz.pretrained()``.
    images : ``(N, C, H, W)`` normalised inputs, or an ``(images, labels)`` pair;
        default: 10 test images of each digit, digits in turn.
    labels : ``(N,)`` true classes (optional); they feed the label chooser.
    snapshots : the training-time slider: a list of ``(label, model)`` (from
        ``featviz.pretrained_snapshots()`` or ``Snapshots.models(model)``), a
        ``featviz.training.Snapshots`` record, ``None`` for no slider, or
        ``"default"``: the shipped training history when ``model`` is the shipped
        pretrained model, else none.
    layers : which layers to offer (names, globs or types as for
        ``featviz.capture``); default every layer whose output is ``(N, C, H, W)``.
    layer : the layer shown first.
    view : ``"grid"`` (all maps) or ``"single"`` (one map large, with its input, its
        filter and the convolution inspector).
    norm : ``"shared"`` or ``"per-map"`` colour scale.
    classes : class names for the prediction (default: the class numbers).
    cache_mb : memory for cached activations.
    engine : where the maps are computed. ``"auto"`` (the default): in the page when
        every snapshot is made of layers the browser runs (see
        :func:`featviz.browser_network`; the course's SimpleCNN is), so that no control
        waits for the kernel and :meth:`Explorer.save_html` keeps every control;
        otherwise in the kernel. ``"browser"`` insists (an error says why not),
        ``"kernel"`` never sends the network.

    Returns
    -------
    Explorer : an ``ipywidgets.VBox``; leave it last in a cell to show it.

    Raises
    ------
    ExplorerError : in a script, for a model or images it cannot show (no convolution
        layer, no images, a wrong shape), saying what to change. In a notebook the
        same message is shown in the widget instead, so that Run All goes on; build
        ``Explorer(...)`` directly to get the widget with its message anywhere.

    >>> import torch, featviz
    >>> ex = featviz.explorer(featviz.pretrained(), torch.zeros(2, 1, 28, 28))
    >>> ex.layer_dropdown.value = "conv2"; ex.filter_slider.value = 5
    >>> ex.filter_slider.max
    31
    """
    ex = Explorer(model, images, labels, snapshots=snapshots, layers=layers, layer=layer,
                  view=view, norm=norm, classes=classes, cache_mb=cache_mb, engine=engine)
    if not ex.ok and not in_notebook():
        raise ExplorerError(ex.problem)
    return ex
