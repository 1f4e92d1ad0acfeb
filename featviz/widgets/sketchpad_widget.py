"""The sketchpad: draw a digit and watch the model read it, as you draw.

In a notebook::

    pad = featviz.sketchpad()              # the pretrained SimpleCNN, conv1's maps
    pad                                    # last expression of a cell: the live widget
    pad.draw([(0.5, 0.15), (0.5, 0.85)])   # or draw from Python: a vertical stroke
    pad.prediction                         # 1
    featviz.explorer(model, images=pad.image)

The drawing lives in the browser on a canvas. Two ways to read it:

* **in the page** (the course's SimpleCNN, and any model made only of layers the
  browser runs, see :func:`featviz.browser_network`): the kernel sends the
  network's weights once; the front end makes the input the MNIST way
  (``imageops.js``, equal to :func:`featviz.mnist_style`) and runs the network
  (``forward.js``) at every frame the pen moves, so the prediction and the maps
  follow the pen with no kernel round trip, even while the kernel is busy;
* **in the kernel** (any other model): while the pen moves, the front end sends
  the drawing at most every 30 ms (and once more when the pen lifts); the kernel
  makes the input (:func:`featviz.mnist_style`), runs the model and sends back the
  prediction and the chosen layer's maps as uint8 with an offset and a scale per
  map (:mod:`featviz.widgets.sketchpad_reader`, :mod:`featviz.widgets._payload`).

Either way the drawing also reaches the kernel, so ``pad.pixels``,
``pad.prediction`` and ``pad.maps`` answer in Python (Python is the reference:
the browser's numbers are held to it by tests), and the pad says under it which
way it reads. The browser paints the maps with colour tables computed once from
matplotlib, following the colour policy of :mod:`featviz._style`, so they look as
they do in ``featviz.plot_feature_maps``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import anywidget
import ipywidgets as widgets
import numpy as np
import traitlets
from torch import Tensor, nn

from .._style import POSITIVE_CMAP, SIGNED_CMAP
from ..netspec import UnsupportedModel, browser_network
from .._torch import to_numpy
from ..perturbation import mnist_style
from ._bundle import bundle
from ._compat import IPYWIDGETS_7, display_in_place
from ._payload import colormap_table, dequantize
from .sketchpad_reader import (MAX_MAPS, SketchError, SketchReader, input_picture, maps_message,
                               prediction_of)

__all__ = ["Sketchpad", "SketchpadState", "sketchpad", "stroke_pixels", "RESOLUTION", "MAX_MAPS"]

RESOLUTION = 140     # the drawing's pixels per side: 5 per pixel of the 28x28 input
BRUSH = 12           # pen width in drawing pixels at RESOLUTION (MNIST strokes: ~2 of 20)
_EMPTY = 1 / 255     # a drawing whose ink never reaches one grey level is empty
SketchpadError = SketchError  # a state the sketchpad cannot show; shown in the widget


# --------------------------------------------------------------------------- drawing

def stroke_pixels(points: Sequence[tuple[float, float]], shape: tuple[int, int] = (RESOLUTION,
                  RESOLUTION), width: float = BRUSH) -> np.ndarray:
    """One pen stroke through ``points``, rasterised with soft (anti-aliased) edges.

    Parameters
    ----------
    points : ``[(x, y), ...]`` in fractions of the pad, (0, 0) top left, (1, 1)
        bottom right; one point makes a dot.
    shape : ``(H, W)`` of the drawing.
    width : the pen's width in drawing pixels at :data:`RESOLUTION` (scaled with ``W``).

    Returns
    -------
    ndarray : float32 ``(H, W)`` in [0, 1], ink = 1.

    >>> ink = stroke_pixels([(0.5, 0.2), (0.5, 0.8)])
    >>> ink.shape, float(ink[70, 70]), float(ink[70, 10])
    ((140, 140), 1.0, 0.0)
    """
    h, w = (int(v) for v in shape)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0 or not np.isfinite(pts).all():
        raise ValueError(f"points must be a list of (x, y) pairs in [0, 1], got {points!r}")
    pts = pts * [w, h]                                  # fractions -> pixel coordinates
    radius = width * w / RESOLUTION / 2
    yy, xx = np.mgrid[0:h, 0:w] + 0.5                   # pixel centres
    dist = np.full((h, w), np.inf)
    for a, b in zip(pts, pts[1:] if len(pts) > 1 else pts):
        ab = b - a
        t = 0.0 if not ab.any() else np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1])
                                             / (ab @ ab), 0, 1)
        dist = np.minimum(dist, np.hypot(xx - a[0] - t * ab[0], yy - a[1] - t * ab[1]))
    return np.clip(radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)


def _as_pixels(pixels: Any) -> np.ndarray:
    """A drawing as a uint8 ``(H, W)`` array (ink 255), with errors that say how to fix it."""
    arr = to_numpy(pixels, what="pixels") if isinstance(pixels, Tensor) else np.asarray(pixels)
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"pixels must be numbers in [0, 1] (ink = 1), got dtype {arr.dtype}")
    if arr.dtype.kind in "iu" and arr.size and arr.max() > 1:
        raise TypeError(f"pixels are integers up to {arr.max()}; the sketchpad takes floats in "
                        "[0, 1] with ink = 1. For 0-255 pixels use pixels / 255.")
    arr = np.squeeze(arr.astype(np.float32))
    if arr.ndim != 2 or not (8 <= min(arr.shape) and max(arr.shape) <= 1024):
        raise ValueError(f"pixels must be one drawing of shape (H, W) with sides from 8 to "
                         f"1024, got shape {np.shape(pixels)}")
    if not np.isfinite(arr).all() or arr.min() < -1e-3 or arr.max() > 1 + 1e-3:
        raise ValueError(f"pixels must lie in [0, 1] (paper 0, ink 1), got values from "
                         f"{np.nanmin(arr):.4g} to {np.nanmax(arr):.4g}")
    return np.rint(np.clip(arr, 0, 1) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- the widget

def _bytes_from_json(value: Any, widget: Any) -> bytes | None:
    # the front end sends a buffer (a memoryview here); the trait holds bytes
    return None if value is None else bytes(value)


def _layer_chooser() -> widgets.Dropdown:
    chooser = widgets.Dropdown(description="feature maps of", style={"description_width": "initial"},
                               layout=widgets.Layout(width="max-content"))
    chooser.add_class("featviz-sketchpad-layer")
    return chooser


class SketchpadState(anywidget.AnyWidget):
    """What the page and the kernel share: the drawing (``pixels``, settable, and
    :meth:`draw` / :meth:`clear`, which set it), the brush, the layer, and what the model
    made of the drawing (``image``, ``prediction``, ``probabilities``, ``maps``; a still of
    it all from :meth:`snapshot`). :class:`Sketchpad` answers each new drawing."""

    _image: Tensor
    _quantized: Any

    _esm = bundle("sketchpad.js")   # with forward.js, imageops.js and style.js inlined
    _css = Path(__file__).with_name("sketchpad.css")

    # the drawing, either way: one byte per pixel, ink 255; _seq counts the drawings
    _ink = traitlets.Bytes(b"").tag(sync=True, from_json=_bytes_from_json)
    _ink_shape = traitlets.List(traitlets.Int(), [RESOLUTION, RESOLUTION]).tag(sync=True)
    _seq = traitlets.Int(0).tag(sync=True)
    brush = traitlets.Int(BRUSH).tag(sync=True)
    layer = traitlets.Unicode("conv1").tag(sync=True)
    # what the model made of it; _version counts the answers, _answered is the _seq answered
    prediction = traitlets.Int(None, allow_none=True).tag(sync=True)
    probabilities = traitlets.List(traitlets.Float()).tag(sync=True)
    classes = traitlets.List(traitlets.Unicode()).tag(sync=True)
    message = traitlets.Unicode("").tag(sync=True)
    _input = traitlets.Bytes(b"").tag(sync=True)
    _input_shape = traitlets.List(traitlets.Int(), [28, 28]).tag(sync=True)
    _maps = traitlets.Bytes(b"").tag(sync=True)
    _maps_meta = traitlets.Dict().tag(sync=True)
    _luts = traitlets.Dict().tag(sync=True)
    _answered = traitlets.Int(0).tag(sync=True)
    _version = traitlets.Int(0).tag(sync=True)
    # where the drawing is read: "browser" (the network below runs in the page) or
    # "kernel"; _engine_note says why not in the page
    _engine = traitlets.Unicode("kernel").tag(sync=True)
    _engine_note = traitlets.Unicode("").tag(sync=True)
    _network = traitlets.Dict().tag(sync=True)            # forward.js's payload, weights apart
    _network_weights = traitlets.Bytes(b"").tag(sync=True)
    _max_maps = traitlets.Int(MAX_MAPS).tag(sync=True)
    _layer_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    _layer_index = traitlets.Int(0).tag(sync=True)   # linked to the layer chooser in the page

    @property
    def engine(self) -> str:
        """Where the drawing is read: ``"browser"`` (in the page, no kernel round trip) or
        ``"kernel"`` (see :attr:`engine_note` for why)."""
        return self._engine

    @property
    def engine_note(self) -> str:
        return self._engine_note

    @property
    def pixels(self) -> np.ndarray:
        """The drawing, float32 ``(H, W)`` in [0, 1] (ink = 1), in steps of 1/255.

        Setting it (any ``(H, W)`` array or tensor in [0, 1]) is the same as drawing
        it: the pad shows it and the model reads it.
        """
        h, w = self._ink_shape
        return np.frombuffer(self._ink, np.uint8).reshape(h, w).astype(np.float32) / 255

    @pixels.setter
    def pixels(self, value: Any) -> None:
        ink = _as_pixels(value)
        with self.hold_trait_notifications():
            self._ink_shape = list(ink.shape)
            self._seq += 1
            self._ink = ink.tobytes()

    def draw(self, *strokes: Sequence[tuple[float, float]], width: float | None = None) -> None:
        """Add pen strokes to the drawing, each a list of ``(x, y)`` points in fractions of
        the pad ((0, 0) top left); ``width`` in drawing pixels (default: the brush)."""
        ink = self.pixels
        for points in strokes:
            ink = np.maximum(ink, stroke_pixels(points, ink.shape, width or self.brush))
        self.pixels = ink

    def clear(self) -> None:
        """Wipe the pad: no ink, no prediction."""
        self.pixels = np.zeros(self.pixels.shape, np.float32)

    @property
    def image(self) -> Tensor:
        """The model input made from the drawing, ``(1, C, H, W)`` on the model's device:
        ``featviz.mnist_style(pixels)`` for a 28x28 grey model; ready for
        ``featviz.explorer(model, images=pad.image)``."""
        return self._image.clone()

    @property
    def maps(self) -> np.ndarray | None:
        """The maps the pad shows, ``(C, H, W)`` float32, as the browser decodes them
        (within half a quantisation step of the layer's output); None when empty."""
        return None if self._quantized is None else dequantize(self._quantized)

    def __repr__(self) -> str:
        # the text a notebook viewer shows where the live widget cannot run
        return "featviz sketchpad: a live widget (run the notebook to draw)"

    def snapshot(self) -> Any:
        """A still picture of the current state (a matplotlib ``Figure``) for readers where
        widgets do not run: the drawing, the input, the probabilities and the maps, in
        the live pad's colours, with the state in words on top."""
        from .sketchpad_still import still

        return still(self)


class Sketchpad(SketchpadState):
    """Draw a digit; the model's prediction, probabilities and one layer's maps follow.

    Made by :func:`sketchpad`. Python side: ``pixels`` (the drawing, settable),
    ``image`` (the model input), ``prediction``, ``probabilities``, ``layer``,
    ``brush``, ``maps``, ``message``, :meth:`draw`, :meth:`clear`, :meth:`snapshot`.
    Displaying it shows the layer chooser (``layer_dropdown``, an ipywidgets
    Dropdown) above the pad. The model side is a :class:`SketchReader`.
    """

    def __init__(self, model: nn.Module | None, layer: str = "conv1", *,
                 classes: Sequence[Any] | None = None, input_size: Any = None,
                 resolution: int = RESOLUTION) -> None:
        super().__init__(_luts={name: colormap_table(name) for name in
                                (POSITIVE_CMAP, SIGNED_CMAP, "gray")})
        self._reader: SketchReader | None = None
        self._image = mnist_style(np.zeros((28, 28), np.float32))
        self._quantized = None
        self._problem = ""
        self.layer_dropdown = _layer_chooser()
        try:
            self._setup(SketchReader(model, input_size), layer, classes)
        except SketchError as exc:
            self._problem = f"The sketchpad cannot use this model: {exc}"
        except Exception as exc:  # noqa: BLE001 - the widget shows it instead of a traceback
            self._reader = None
            self._problem = f"The sketchpad cannot use this model: {type(exc).__name__}: {exc}"
        with self.hold_sync():
            self.message = self._problem
            self._ink_shape = [int(resolution), int(resolution)]
            self._ink = bytes(int(resolution) ** 2)
        # every drawing sent bumps _seq, even one equal to the last (a pen lifted in place)
        self.observe(self._on_ink, names="_seq")
        self.observe(self._on_ink, names="layer")
        self._on_ink()
        self._view = widgets.VBox([self.layer_dropdown, self],
                                  layout=widgets.Layout(width="max-content"))
        self._view.add_class("featviz-sketchpad-view")

    def _setup(self, reader: SketchReader, layer: str, classes: Any) -> None:
        self._reader = reader
        self._image = reader.to_input(np.zeros((28, 28), np.float32))
        self.layer_dropdown.options = [(f"{name}  ({c} maps {h}×{w})", name)
                                       for name, (c, h, w) in reader.layers]
        if reader.layers:
            self.layer = self.layer_dropdown.value = reader.choose(layer)
            traitlets.link((self.layer_dropdown, "value"), (self, "layer"))
            # and linked in the page too, by index: the browser engine shows a new
            # layer at once, with no kernel round trip
            self._layer_names = [name for name, _ in reader.layers]
            self._layer_index = self.layer_dropdown.index
            self._layer_link = widgets.jslink((self.layer_dropdown, "index"), (self, "_layer_index"))
            traitlets.link((self.layer_dropdown, "index"), (self, "_layer_index"))
        if classes is not None:
            self.classes = [str(c) for c in classes]
        self._problem = " ".join(reader.notes)
        self._use_browser(reader)

    def _use_browser(self, reader: SketchReader) -> None:
        """Send the network to the page when the browser can run it (see the module)."""
        try:
            spec = browser_network(reader.model, reader.shape, fold_batchnorm=False)
        except (UnsupportedModel, ValueError) as exc:
            self._engine, self._engine_note = "kernel", f"{exc}"
            return
        payload = spec.to_payload()
        with self.hold_sync():
            self._network_weights = payload.pop("weights")
            self._network = payload
            self._engine, self._engine_note = "browser", ""

    def _on_ink(self, change: dict | None = None) -> None:
        try:
            self._update()
        except Exception as exc:  # noqa: BLE001 - shown in the widget, never a traceback
            with self.hold_sync():
                self.message = f"The model could not read the drawing: {type(exc).__name__}: {exc}"
                self._answered = self._seq
                self._version += 1

    def _update(self) -> None:
        pixels, reader = self.pixels, self._reader
        self._image = reader.to_input(pixels) if reader is not None else mnist_style(pixels)
        out = None
        if reader is not None and pixels.max() >= _EMPTY:
            out = reader.read(self._image, self.layer)
        with self.hold_sync():
            self._input_shape, self._input = input_picture(
                self._image, reader.shape if reader is not None else (1, 28, 28))
            self._send_output(*(out or (None, None)))
            self.message = self._problem
            self._answered = self._seq
            self._version += 1

    def _send_output(self, logits: Any, maps: Tensor | None) -> None:
        self.prediction, self.probabilities, problem = (None, [], "") if logits is None \
            else prediction_of(logits)
        if problem:
            self._problem = problem
        self._quantized, self._maps_meta = (None, {}) if maps is None \
            else maps_message(maps, self.layer)
        self._maps = b"" if self._quantized is None else self._quantized.data

    def save_html(self, path: str | Path, *, title: str = "featviz sketchpad") -> Path:
        """One self-contained HTML file of the pad that works with no kernel and no network:
        draw, and (with the browser engine: the course's network) watch the prediction and
        the maps follow, and change the layer. With the kernel engine the page shows the
        current drawing and says that reading a new one needs the notebook."""
        from ._static import controls_from_widgets, save_html, static_html

        live = self._engine == "browser"
        specs = controls_from_widgets(self, [(self.layer_dropdown, "index", "_layer_index")]) \
            if live and self.layer_dropdown.options else []
        return save_html(path, static_html(self, specs, title=title,
                                           kernel_traits=() if live else ("_seq",)))

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        # the layer chooser is a standard Dropdown, shown above the pad
        bundle = self._view._repr_mimebundle_(**kwargs)
        if isinstance(bundle, dict) and "text/plain" in bundle:
            bundle["text/plain"] = repr(self)
        return bundle

    if IPYWIDGETS_7:
        # ipywidgets 7 shows a widget through _ipython_display_, which IPython asks
        # before _repr_mimebundle_: there too, the chooser above the pad
        def _ipython_display_(self, **kwargs: Any) -> None:
            display_in_place(self._view, repr(self), **kwargs)


def sketchpad(model: nn.Module | None = None, layer: str = "conv1", *,
              classes: Sequence[Any] | None = None, input_size: Any = None,
              resolution: int = RESOLUTION) -> Sketchpad:
    """A drawing pad whose drawing feeds the model as you draw.

    Draw with the mouse, a pen or a finger; the prediction with its
    probabilities, the 28x28 input the network sees and one layer's feature maps
    follow. Problems (a model without conv layers, an unknown layer, a colour
    model) show as a message in the widget.

    Parameters
    ----------
    model : any ``nn.Module`` classifying images (default ``featviz.pretrained()``).
        A model taking other than 1x28x28 gets the 28x28 MNIST-style input resized
        to its size (``model.input_shape``, or ``input_size``, else 64x64 for
        colour) and copied to each channel.
    layer : the layer whose maps are shown (a Dropdown changes it).
    classes : class names for the probability bars (default the class numbers).
    input_size : the model's input side (or ``(H, W)``), when it has no ``input_shape``.
    resolution : the drawing's pixels per side.

    Returns
    -------
    Sketchpad : traits ``pixels`` (settable drawing), ``image`` (model input),
        ``prediction`` (int, None when empty), ``probabilities``, ``layer``, ``brush``.

    >>> pad = sketchpad()
    >>> pad.draw([(0.5, 0.15), (0.5, 0.85)])
    >>> pad.prediction
    1
    """
    return Sketchpad(model, layer, classes=classes, input_size=input_size,
                     resolution=resolution)
