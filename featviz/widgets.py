"""The explorer: pick an image, a layer, a filter and a moment of training, and see.

>>> ex = featviz.explorer(featviz.pretrained())
>>> ex                       # last expression of a cell: the live widget
>>> ex.snapshot()            # a plain PNG of the current state, for readers without a kernel

How it stays fast: the activations of every layer worth seeing are captured in
one forward pass per (image, training snapshot) and cached; moving a slider
only picks arrays out of that cache and draws them with :mod:`featviz.render`
straight into the bytes of a PNG, which replace the value of one
``widgets.Image``. No matplotlib figure is built, no output area is cleared, so
nothing flickers and nothing piles up.

This is the only featviz module that imports ipywidgets; ``import featviz``
never loads it.
"""
from __future__ import annotations

import contextlib
import html
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence

import ipywidgets as widgets
import numpy as np
import torch
from torch import nn

from . import render
from .plots import choose_cmap

__all__ = ["Explorer", "explorer", "ExplorerError", "default_images", "find_kernel_layer",
           "feature_layers"]

DEFAULT_IMAGES_PER_DIGIT = 10
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
_CALL_SUFFIX = re.compile(r"#\d+$")


class ExplorerError(ValueError):
    """A state the explorer cannot show; its message is shown in the widget area."""


# --------------------------------------------------------------------------- model helpers

def default_images(per_digit: int = DEFAULT_IMAGES_PER_DIGIT) -> tuple[torch.Tensor, torch.Tensor]:
    """The explorer's default images: ``per_digit`` test images of each digit, the digits
    in turn (0, 1, ..., 9, 0, 1, ...), so image ``i`` is a digit ``i % 10``.

    Returns ``(images (10 * per_digit, 1, 28, 28), labels (10 * per_digit,))``.
    """
    from .data import digit_batch

    return digit_batch([d for _ in range(per_digit) for d in range(10)])


def _snapshot_list(snapshots: Any, model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``snapshots`` as ``[(label, model)]``: a list of pairs, of models, or a
    ``featviz.training.Snapshots`` record (turned into copies of ``model``)."""
    if hasattr(snapshots, "models") and callable(snapshots.models):
        return list(snapshots.models(model))
    try:
        items = list(snapshots)
    except TypeError:
        raise ExplorerError(
            f"snapshots must be a list of (label, model) pairs, 'default' or None; got "
            f"{type(snapshots).__name__}."
        ) from None
    out = []
    for i, item in enumerate(items):
        if isinstance(item, nn.Module):
            out.append((f"snapshot {i}", item))
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[1], nn.Module):
            out.append((str(item[0]), item[1]))
        else:
            raise ExplorerError(
                f"snapshots[{i}] is a {type(item).__name__}; expected a (label, model) pair "
                f"such as ('epoch 1', model), as featviz.pretrained_snapshots() gives."
            )
    return out


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    for k, va in sa.items():
        vb = sb[k]
        if va.shape != vb.shape:
            return False
        if va.is_floating_point():
            # snapshots may be stored in float16: equal up to that rounding
            if not torch.allclose(va.detach().float().cpu(), vb.detach().float().cpu(),
                                  rtol=2e-3, atol=1e-4):
                return False
        elif not torch.equal(va.cpu(), vb.cpu()):
            return False
    return True


def _default_snapshots(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The shipped training history, when ``model`` is the shipped pretrained model."""
    from .models import SimpleCNN, pretrained_snapshots

    if type(model) is not SimpleCNN:
        return []
    try:
        snaps = pretrained_snapshots()
    except (FileNotFoundError, ValueError, KeyError):
        return []
    if snaps and _same_weights(snaps[-1][1], model):
        return snaps
    return []


def _base_name(key: str) -> str:
    return _CALL_SUFFIX.sub("", key)


def find_kernel_layer(model: nn.Module, layer: str, channels: int) -> str | None:
    """The convolution whose filters made ``layer``'s channels, or None.

    A conv layer is its own; a ReLU, pooling or batch-norm layer after it is
    traced back to the nearest convolution before it (in module order) with as
    many output channels.

    >>> find_kernel_layer(featviz.SimpleCNN(), "pool1", 16)
    'conv1'
    """
    named = list(model.named_modules())
    base = _base_name(layer)
    names = [n for n, _ in named]
    if base not in names:
        return None
    pos = names.index(base)
    for name, module in reversed(named[:pos + 1]):
        if isinstance(module, nn.Conv2d) and module.out_channels == channels:
            return name
    return None


def feature_layers(model: nn.Module, acts: Any) -> list[str]:
    """The captured layers worth exploring: outputs ``(N, C, H, W)`` with ``H * W > 1``."""
    keep = []
    for key in acts:
        t = acts[key]
        if isinstance(t, torch.Tensor) and t.dim() == 4 and t.shape[2] * t.shape[3] > 1:
            keep.append(key)
    return keep


@contextlib.contextmanager
def _few_threads(x: torch.Tensor):
    """One CPU thread for the forward pass of one small image.

    Splitting a 28x28 convolution over threads gains nothing, and on a shared
    machine (Binder, a busy laptop) waiting for a descheduled thread costs tens
    of milliseconds per pass; a single thread takes well under one.
    """
    small = x.device.type == "cpu" and x[0].numel() <= 16384
    before = torch.get_num_threads()
    if small and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if small and before > 1:
            torch.set_num_threads(before)


# --------------------------------------------------------------------------- cache

@dataclass
class _Entry:
    maps: dict[str, np.ndarray]   # layer -> (C, H, W) float32
    probs: np.ndarray | None      # (classes,) softmax of the output, if it is (1, K)
    nbytes: int


class _Cache:
    """Least-recently-used activations, bounded in bytes (a big network's layers are large)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.items: OrderedDict[tuple[int, int], _Entry] = OrderedDict()
        self.nbytes = 0
        self.misses = 0

    def get(self, key: tuple[int, int]) -> _Entry | None:
        entry = self.items.get(key)
        if entry is not None:
            self.items.move_to_end(key)
        return entry

    def put(self, key: tuple[int, int], entry: _Entry) -> None:
        self.items[key] = entry
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes and len(self.items) > 1:
            _, old = self.items.popitem(last=False)
            self.nbytes -= old.nbytes


# --------------------------------------------------------------------------- explorer

_CSS = """<style>
.featviz-explorer .widget-toggle-buttons { display: flex; flex: 0 0 auto; align-items: baseline; }
.featviz-explorer .widget-toggle-buttons > .widget-label {
  flex: 0 0 60px; text-align: right; margin-right: 8px; overflow: visible; }
.featviz-explorer .featviz-digits .widget-toggle-button { padding: 0; }
.featviz-explorer .featviz-message { color: #b71c1c; }
.featviz-explorer .featviz-info { font-size: 13px; line-height: 1.5; min-width: 230px; padding-left: 12px; }
</style>"""


def _single_limits(maps: np.ndarray, c: int, norm: str) -> tuple[str, float, float]:
    """Colours of map ``c`` shown alone, agreeing with the grid: the layer's colour
    map, with the layer's limits ("shared") or the map's own ("per-map")."""
    name, lo, hi = choose_cmap(maps)
    if norm == "shared":
        return name, lo, hi
    m = maps[c]
    top = float(np.abs(m).max()) if lo < 0 else float(m.max())
    top = top if top > 0 else 1.0
    return name, (-top if lo < 0 else 0.0), top


def _fmt(v: float) -> str:
    return f"{v:.3g}"


class Explorer(widgets.VBox):
    """The feature-map explorer widget; build it with :func:`explorer`.

    Controls (public attributes, for scripts and tests): ``image_slider``,
    ``digit_chooser``, ``layer_dropdown``, ``filter_slider``, ``view``, ``norm``,
    ``time_slider`` (None without snapshots); displays: ``image`` (the
    ``widgets.Image``), ``info`` (prediction and statistics), ``message`` (what is
    wrong, when something is). ``ok`` is False when the explorer could not start.
    """

    def __init__(
        self,
        model: nn.Module | None,
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
    ) -> None:
        super().__init__()
        self.add_class("featviz-explorer")
        self.message = widgets.HTML(value="")
        self.message.add_class("featviz-message")
        self.image = widgets.Image(format="png")
        self.image.add_class("featviz-explorer-image")
        self.info = widgets.HTML(value="")
        self.info.add_class("featviz-info")
        self.image_slider: widgets.IntSlider | None = None
        self.digit_chooser: widgets.ToggleButtons | None = None
        self.layer_dropdown: widgets.Dropdown | None = None
        self.filter_slider: widgets.IntSlider | None = None
        self.view: widgets.ToggleButtons | None = None
        self.norm: widgets.ToggleButtons | None = None
        self.time_slider: widgets.SelectionSlider | None = None
        self.ok = False
        self.problem = ""  # what is wrong, in plain text, when the explorer cannot start
        self.last_render_s = 0.0
        self._suspend = False
        self._classes = list(classes) if classes is not None else None
        self._cache = _Cache(int(cache_mb * 2**20))
        self._kernels: dict[str, str | None] = {}
        try:
            self._setup(model, images, labels, snapshots, layers, layer, view, norm)
        except ExplorerError as exc:
            self._fail(str(exc))
            return
        self.ok = True
        self._build()
        self.redraw()

    # -- setup --------------------------------------------------------------
    def _setup(self, model: Any, images: Any, labels: Any, snapshots: Any, layers: Any,
               layer: str | None, view: str, norm: str) -> None:
        from .hooks import resolve_layers

        if model is None:
            from .models import pretrained

            model = pretrained()
        if not isinstance(model, nn.Module):
            raise ExplorerError(
                f"explorer needs a PyTorch model (a torch.nn.Module), got "
                f"{type(model).__name__}. Try featviz.explorer(featviz.pretrained())."
            )
        if view not in ("grid", "single"):
            raise ExplorerError(f"view must be 'grid' or 'single', got {view!r}.")
        if norm not in ("shared", "per-map"):
            raise ExplorerError(f"norm must be 'shared' or 'per-map', got {norm!r}.")
        self.model = model
        self.images, self.labels = self._images(images, labels)

        if isinstance(snapshots, str):
            if snapshots != "default":
                raise ExplorerError(f"snapshots must be 'default', None or a list of "
                                    f"(label, model) pairs; got {snapshots!r}.")
            snaps = _default_snapshots(model)
        elif snapshots is None:
            snaps = []
        else:
            snaps = _snapshot_list(snapshots, model)
            if not snaps:
                raise ExplorerError("snapshots is an empty list; pass None for no "
                                    "training-time slider.")
            if not _same_weights(snaps[-1][1], model):
                snaps.append(("your model", model))
        self.snapshots: list[tuple[str, nn.Module]] = snaps or [("model", model)]

        # one forward pass over every candidate layer finds those with feature maps
        try:
            if layers is None:
                spec = [n for n, m in model.named_modules()
                        if n and not isinstance(m, _CONTAINERS)]
                if not spec:
                    spec = None
            else:
                spec = layers
            self._spec = resolve_layers(model, spec)
        except ValueError as exc:
            raise ExplorerError(str(exc)) from None
        probe = self._forward(self.model, 0)
        self.layer_names = feature_layers(model, probe)
        if not self.layer_names:
            seen = ", ".join(f"{k} {tuple(v.shape)}" for k, v in list(probe.items())[:8]
                             if isinstance(v, torch.Tensor))
            raise ExplorerError(
                f"{type(model).__name__} has no layer with feature maps to show: the explorer "
                f"needs outputs of shape (N, C, H, W), as convolution layers give. "
                f"Layers captured: {seen or 'none'}. For a model without convolutions, "
                f"look at its activations with featviz.activations() instead."
            )
        self._shapes = {k: tuple(probe[k].shape[1:]) for k in self.layer_names}
        if layer is not None and layer not in self.layer_names:
            raise ExplorerError(f"layer {layer!r} has no feature maps to show; choose one of "
                                f"{', '.join(self.layer_names)}.")
        self._first_layer = layer or self.layer_names[0]
        self._first_view, self._first_norm = view, norm

    def _images(self, images: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
        if images is None:
            return default_images()
        if isinstance(images, (tuple, list)) and len(images) == 2 and labels is None \
                and isinstance(images[0], torch.Tensor):
            images, labels = images
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise ExplorerError(
                f"images must be a tensor (N, C, H, W) or an (images, labels) pair, got "
                f"{type(images).__name__}. For example: featviz.digit_examples()."
            )
        if images.dim() == 3 and images.shape[0] > 0:
            raise ExplorerError(
                f"images has shape {tuple(images.shape)}: that is one image or a batch without "
                f"its channel dimension. Use images.unsqueeze(0) for one image (C, H, W), or "
                f"images.unsqueeze(1) for a batch of (H, W) images."
            )
        if images.dim() != 4 or images.shape[0] == 0:
            raise ExplorerError(
                f"images is empty or not a batch: shape {tuple(images.shape)}, expected "
                f"(N, C, H, W) with N >= 1. For example: images, labels = featviz.digit_examples()."
            )
        if labels is not None:
            labels = torch.as_tensor(labels).reshape(-1).long().cpu()
            if len(labels) != len(images):
                raise ExplorerError(f"{len(labels)} labels for {len(images)} images; give "
                                    f"one label per image, or none.")
        return images.detach(), labels

    # -- data ---------------------------------------------------------------
    def _forward(self, model: nn.Module, index: int, who: str = "the model") -> Any:
        from .hooks import activations

        x = self.images[index:index + 1]
        # looking must not change the model: eval mode (no dropout, no batch-norm
        # statistics updated) for the pass, the caller's modes restored after
        modes = {m: m.training for m in model.modules()}
        try:
            model.eval()
            with _few_threads(x):
                return activations(model, x, self._spec)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ExplorerError(
                f"{who} could not run on image {index} (shape "
                f"{tuple(self.images[index].shape)}): {exc}"
            ) from None
        finally:
            for m, training in modes.items():
                m.training = training

    def _entry(self, index: int, snap: int) -> _Entry:
        key = (index, snap)
        entry = self._cache.get(key)
        if entry is None:
            self._cache.misses += 1
            label, model = self.snapshots[snap]
            who = "the model" if len(self.snapshots) == 1 else f"snapshot {label!r}"
            acts = self._forward(model, index, who)
            maps = {}
            for k in self.layer_names:
                if k not in acts:
                    raise ExplorerError(
                        f"snapshot {label!r} has no layer {k!r}: are the "
                        f"snapshots from another architecture than the model?")
                maps[k] = acts[k][0].float().numpy()
            out = acts.output
            probs = None
            if isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == 1:
                probs = torch.softmax(out.detach().float().cpu(), dim=1)[0].numpy()
            nbytes = sum(m.nbytes for m in maps.values())
            entry = _Entry(maps, probs, nbytes)
            self._cache.put(key, entry)
        return entry

    def activations(self, index: int | None = None, snapshot: int | None = None) -> dict[str, np.ndarray]:
        """The cached maps ``{layer: (C, H, W) array}`` of one image at one snapshot
        (default: the current ones)."""
        s = self.state
        entry = self._entry(s["image"] if index is None else index,
                            s["snapshot"] if snapshot is None else snapshot)
        return entry.maps

    def kernel(self, layer: str, channel: int, snapshot: int | None = None) -> np.ndarray | None:
        """The filter ``(in_channels, kh, kw)`` that made ``channel`` of ``layer``, or None."""
        if layer not in self._kernels:
            self._kernels[layer] = find_kernel_layer(self.model, layer, self._shapes[layer][0])
        name = self._kernels[layer]
        if name is None:
            return None
        snap = self.state["snapshot"] if snapshot is None else snapshot
        module = dict(self.snapshots[snap][1].named_modules()).get(name)
        if module is None:
            return None
        return module.weight[channel].detach().float().cpu().numpy()

    # -- widgets ------------------------------------------------------------
    def _build(self) -> None:
        n = len(self.images)
        desc = {"description_width": "60px"}
        wide = widgets.Layout(width="360px")
        self.image_slider = widgets.IntSlider(
            value=0, min=0, max=n - 1, description="image", continuous_update=True,
            style=desc, layout=wide)
        self.image_slider.add_class("featviz-image-slider")
        top = [self.image_slider]
        if self.labels is not None:
            present = sorted({int(v) for v in self.labels.tolist()})
            self.digit_chooser = widgets.ToggleButtons(
                options=[(self._class_name(d), d) for d in present],
                value=int(self.labels[0]), description="label",
                tooltips=[f"jump to the next image labelled {self._class_name(d)}"
                          for d in present],
                style={**desc, "button_width": "32px"})
            self.digit_chooser.add_class("featviz-digits")
            top.append(self.digit_chooser)
        options = []
        for k in self.layer_names:
            c, h, w = self._shapes[k]
            options.append((f"{k}  ({c} maps {h}×{w})", k))
        self.layer_dropdown = widgets.Dropdown(options=options, value=self._first_layer,
                                               description="layer", style=desc, layout=wide)
        self.layer_dropdown.add_class("featviz-layer")
        channels = self._shapes[self._first_layer][0]
        self.filter_slider = widgets.IntSlider(
            value=0, min=0, max=channels - 1, description="filter",
            continuous_update=True, style=desc, layout=wide)
        self.filter_slider.add_class("featviz-filter-slider")
        self.view = widgets.ToggleButtons(
            options=[("all maps", "grid"), ("one map", "single")], value=self._first_view,
            description="view", style={**desc, "button_width": "84px"},
            tooltips=["every map of the layer, the chosen filter framed in green",
                      "the chosen map large, beside the input and the filter that made it"])
        self.norm = widgets.ToggleButtons(
            options=[("shared", "shared"), ("per map", "per-map")], value=self._first_norm,
            description="scale", style={**desc, "button_width": "84px"},
            tooltips=["one colour scale for the whole layer: maps compare",
                      "each map stretched to its own range: weak patterns show"])
        rows = [top, [self.layer_dropdown, self.filter_slider], [self.view, self.norm]]
        if len(self.snapshots) > 1:
            self.time_slider = widgets.SelectionSlider(
                options=[(label, i) for i, (label, _) in enumerate(self.snapshots)],
                value=len(self.snapshots) - 1, description="training",
                continuous_update=True, style=desc, layout=widgets.Layout(width="560px"))
            self.time_slider.add_class("featviz-time-slider")
            rows.append([self.time_slider])

        self.image_slider.observe(self._on_image, names="value")
        if self.digit_chooser is not None:
            self.digit_chooser.observe(self._on_digit, names="value")
        self.layer_dropdown.observe(self._on_layer, names="value")
        for w in (self.filter_slider, self.view, self.norm, self.time_slider):
            if w is not None:
                w.observe(self._on_change, names="value")
        self.children = [
            widgets.HTML(_CSS),
            *[widgets.HBox(row, layout=widgets.Layout(flex_flow="row wrap")) for row in rows],
            self.message,
            widgets.HBox([self.image, self.info], layout=widgets.Layout(align_items="flex-start")),
        ]

    def _fail(self, text: str) -> None:
        self.problem = text
        self.message.value = (
            "<b>The explorer cannot start:</b> " + html.escape(text))
        self.children = [widgets.HTML(_CSS), self.message]

    def _class_name(self, k: int) -> str:
        if self._classes is not None and 0 <= k < len(self._classes):
            return str(self._classes[k])
        return str(k)

    # -- callbacks ----------------------------------------------------------
    def _on_image(self, change: dict) -> None:
        if self.digit_chooser is not None and self.labels is not None:
            self._suspend = True
            try:
                self.digit_chooser.value = int(self.labels[change["new"]])
            finally:
                self._suspend = False
        self.redraw()

    def _on_digit(self, change: dict) -> None:
        if self._suspend or self.labels is None:
            return
        digit, n, start = change["new"], len(self.labels), self.image_slider.value
        if int(self.labels[start]) == digit:
            return
        for step in range(1, n + 1):
            i = (start + step) % n
            if int(self.labels[i]) == digit:
                self.image_slider.value = i  # redraws through _on_image
                return

    def _on_layer(self, change: dict) -> None:
        channels = self._shapes[change["new"]][0]
        self._suspend = True
        try:
            # the range follows the layer; keep the channel number when it still exists
            if self.filter_slider.value > channels - 1:
                self.filter_slider.value = channels - 1
            self.filter_slider.max = channels - 1
        finally:
            self._suspend = False
        self.redraw()

    def _on_change(self, change: dict) -> None:
        if not self._suspend:
            self.redraw()

    # -- drawing ------------------------------------------------------------
    @property
    def state(self) -> dict[str, Any]:
        """The current choice: image, layer, channel, view, norm and snapshot (indices)."""
        if not self.ok:
            return {}
        return {
            "image": int(self.image_slider.value),
            "layer": self.layer_dropdown.value,
            "channel": int(self.filter_slider.value),
            "view": self.view.value,
            "norm": self.norm.value,
            "snapshot": int(self.time_slider.value) if self.time_slider is not None
            else len(self.snapshots) - 1,
        }

    def render_png(self, state: dict[str, Any] | None = None) -> bytes:
        """The PNG the explorer shows for ``state`` (default: the current one)."""
        s = self.state if state is None else {**self.state, **state}
        entry = self._entry(s["image"], s["snapshot"])
        maps = entry.maps[s["layer"]]
        if s["view"] == "grid":
            return render.render_grid(maps, norm=s["norm"], highlight=s["channel"])
        c = s["channel"]
        cmap, vmin, vmax = _single_limits(maps, c, s["norm"])
        return render.render_single(
            maps[c], image=self.images[s["image"]], cmap=cmap, vmin=vmin, vmax=vmax,
            kernel=self.kernel(s["layer"], c, s["snapshot"]),
            captions=("input", f"{s['layer']} #{c}", "filter"))

    def redraw(self) -> None:
        """Draw the current state into ``image`` and ``info``. Problems are shown in
        ``message``, never raised into the notebook's log."""
        if not self.ok:
            return
        t0 = time.perf_counter()
        try:
            png = self.render_png()
        except ExplorerError as exc:
            self.message.value = "<b>Cannot show this:</b> " + html.escape(str(exc))
            return
        self.image.value = png
        self.info.value = self._info_html()
        if self.message.value:
            self.message.value = ""
        self.last_render_s = time.perf_counter() - t0

    def _info_html(self) -> str:
        s = self.state
        entry = self._entry(s["image"], s["snapshot"])
        lines = []
        if entry.probs is not None:
            k = int(entry.probs.argmax())
            lines.append(f"predicted <b>{html.escape(self._class_name(k))}</b> "
                         f"({100 * float(entry.probs[k]):.1f}% sure)")
        if self.labels is not None:
            truth = int(self.labels[s["image"]])
            mark = ""
            if entry.probs is not None:
                mark = " ✔" if int(entry.probs.argmax()) == truth else " ✘ wrong"
            lines.append(f"label {html.escape(self._class_name(truth))}{mark}")
        m = entry.maps[s["layer"]][s["channel"]]
        c, h, w = entry.maps[s["layer"]].shape
        lines.append(f"<b>{html.escape(s['layer'])}</b> filter {s['channel']} of {c} "
                     f"({h}×{w})")
        lines.append(f"min {_fmt(float(m.min()))} · max {_fmt(float(m.max()))} · "
                     f"mean {_fmt(float(m.mean()))}")
        if not m.any():
            lines.append("this map is zero everywhere (dead for this image)")
        if len(self.snapshots) > 1:
            lines.append(f"training: {html.escape(self.snapshots[s['snapshot']][0])}")
        return "<br>".join(lines)

    def caption(self) -> list[str]:
        """The current state in words, as written above :meth:`snapshot`'s picture."""
        s = self.state
        entry = self._entry(s["image"], s["snapshot"])
        m = entry.maps[s["layer"]][s["channel"]]
        first = f"image {s['image']}"
        if self.labels is not None:
            first += f"  label {self._class_name(int(self.labels[s['image']]))}"
        if entry.probs is not None:
            k = int(entry.probs.argmax())
            first += f"  predicted {self._class_name(k)} ({100 * float(entry.probs[k]):.1f}%)"
        if len(self.snapshots) > 1:
            first += f"  training: {self.snapshots[s['snapshot']][0]}"
        second = (f"{s['layer']}  filter {s['channel']}  min {_fmt(float(m.min()))}  "
                  f"max {_fmt(float(m.max()))}  mean {_fmt(float(m.mean()))}  "
                  f"({'shared scale' if s['norm'] == 'shared' else 'each map own scale'})")
        return [first, second]

    def snapshot(self, caption: bool = True) -> Any:
        """A still picture of the current state (an ``IPython.display.Image``; its
        ``.data`` holds the PNG bytes), for readers where widgets do not run."""
        from IPython.display import Image

        if not self.ok:
            raise ExplorerError(self.problem)
        png = self.render_png()
        if caption:
            png = render.encode_png(render.add_caption(render.decode_png(png), self.caption()))
        return Image(data=png, format="png")


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
) -> Explorer:
    """An interactive feature-map explorer for a model.

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
    view : ``"grid"`` (all maps) or ``"single"`` (one map large, with its filter and input).
    norm : ``"shared"`` or ``"per-map"`` colour scale.
    classes : class names for the prediction (default: the class numbers).
    cache_mb : memory for cached activations.

    Returns
    -------
    Explorer : an ``ipywidgets.VBox``; leave it last in a cell to show it. Problems
        (no convolution layer, no images) are shown in it as a message.

    >>> ex = featviz.explorer(featviz.pretrained())
    >>> ex.layer_dropdown.value = "conv2"; ex.filter_slider.value = 5
    """
    return Explorer(model, images, labels, snapshots=snapshots, layers=layers, layer=layer,
                    view=view, norm=norm, classes=classes, cache_mb=cache_mb)
