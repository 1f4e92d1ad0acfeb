"""A widget saved as one HTML page that works with no kernel and no network.

An anywidget view draws in the browser from its synced state; the controls beside
it (standard ipywidgets, ``jslink``-ed to the view) only change that state. So the
part of a widget that needs no kernel can be saved: :func:`static_html` writes one
self-contained page with the view's ES module and CSS inlined, its state embedded
(binary traits as base64, handed to the view as ``DataView`` as ipywidgets 7 and 8
do) and a small host (``static_host.js``) that stands in for the widget manager:
one model per view and control with the anywidget model API the views use
(``get``, ``set``, ``on``/``off``, ``save_changes``, ``send``,
``widget_manager.get_model``), native HTML controls linked to the view both ways as
``jslink`` links them, and anywidget's lifecycle (default export, ``initialize``,
``render``). A message for the kernel is dropped, and the page says once that this
part needs a running notebook. The page's Content-Security-Policy allows no request
at all, so nothing can reach the network.

The controls are :class:`ControlSpec` s, made from the widget's own ipywidgets
controls by :func:`controls_from_widgets`::

    specs = controls_from_widgets(view, [(layer_dropdown, "index", "layer_index"),
                                         (filter_slider, "value", "channel")])
    save_html("explorer.html", static_html(view, specs, title="The explorer"))
"""
from __future__ import annotations

import base64
import difflib
import hashlib
import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import ipywidgets as widgets
from ipywidgets.widgets.widget_link import DirectionalLink  # where it is in 7 and 8

__all__ = ["ControlSpec", "controls_from_widgets", "static_html", "save_html", "serialize_state",
           "KERNEL_NOTE"]

_HERE = Path(__file__).parent
_KINDS = ("slider", "select", "toggle", "button")
_READOUT = re.compile(r"d|\.\d+f")
#: what the page says, once, when the view asks the kernel for something
KERNEL_NOTE = ("This part needs a running notebook: this page is a saved copy with no Python "
               "behind it. Open the notebook and run it to use everything.")
# the view's own traits that are not its state: its code and style travel apart
_NOT_STATE = ("_esm", "_css")


@dataclass
class ControlSpec:
    """One control of a saved page and what it changes in the view.

    Parameters
    ----------
    kind : ``"slider"``, ``"select"`` (a drop-down), ``"toggle"`` (a row of buttons, as
        ipywidgets' ToggleButtons) or ``"button"``.
    label : the text beside it (on a button, the text on it).
    value : a slider's number, or the chosen option's index (select, toggle, and a
        slider over ``options``); None for a button.
    options : the options' labels (select, toggle; a slider over labels, as
        ipywidgets' SelectionSlider).
    values : the options' values, JSON-able, when the view takes the value, not the index.
    min, max, step : a slider's range (one over ``options`` goes over their indices).
    readout : how a slider shows its number, ``"d"`` or ``".2f"`` (None: not shown); a
        slider over options shows the option's label.
    drives : ``{trait: "index" | "value"}``: the view's synced traits this control sets,
        to the option's index or to the value (linked both ways, as ``jslink`` does).
    sets : a button's ``{trait: value}``: what one click sets in the view.
    id : the id the view may refer to the control by (a widget-reference trait holds
        ``"IPY_MODEL_<id>"``); :func:`controls_from_widgets` uses the widget's model id.
    tooltip, tooltips, width : the control's tooltip, one per option, a CSS width.

    >>> ControlSpec("slider", "filter", 0, min=0, max=15, step=1, readout="d",
    ...             drives={"channel": "value"}).max
    15
    """

    kind: str
    label: str
    value: Any = None
    options: Sequence[str] = ()
    values: Sequence[Any] = ()
    min: float | None = None
    max: float | None = None
    step: float | None = None
    readout: str | None = None
    drives: Mapping[str, str] = field(default_factory=dict)
    sets: Mapping[str, Any] = field(default_factory=dict)
    id: str = ""
    tooltip: str = ""
    tooltips: Sequence[str] = ()
    width: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {self.kind!r}")
        self.options, self.values = tuple(map(str, self.options)), tuple(self.values)
        self.tooltips = tuple(map(str, self.tooltips))
        self.drives, self.sets = dict(self.drives), dict(self.sets)
        what = f"the {self.kind} {self.label!r}"
        if self.kind == "button":
            if self.drives or not self.sets:
                raise ValueError(f"{what} sets traits to values: give sets={{trait: value}}, not drives")
            return
        if self.sets:
            raise ValueError(f"{what} is not a button: give drives={{trait: 'index' | 'value'}}, not sets")
        if self.values and len(self.values) != len(self.options):
            raise ValueError(f"{what} has {len(self.options)} options but {len(self.values)} values")
        by_index = self.kind != "slider" or bool(self.options)
        for trait, how in self.drives.items():
            ok = ("index", "value") if by_index and self.values else ("index",) if by_index else ("value",)
            if how not in ok:
                raise ValueError(f"{what} can drive {trait!r} by {' or '.join(map(repr, ok))}, got {how!r}")
        if by_index:
            if not self.options:
                raise ValueError(f"{what} needs options (their labels)")
            if self.value is not None and not 0 <= int(self.value) < len(self.options):
                raise ValueError(f"{what}'s value is the index of an option, 0 to "
                                 f"{len(self.options) - 1}; got {self.value!r}")
        elif None in (self.min, self.max, self.step) or self.value is None:
            raise ValueError(f"{what} needs min, max, step and value; got {self.min}, {self.max}, "
                             f"{self.step} and {self.value}")
        if self.readout is not None and not _READOUT.fullmatch(self.readout):
            raise ValueError(f"{what}: readout must be 'd' or like '.2f', got {self.readout!r}")

    def to_json(self) -> dict[str, Any]:
        """The spec as the page's host reads it."""
        return asdict(self) | {"options": list(self.options), "values": list(self.values),
                               "tooltips": list(self.tooltips)}


# --------------------------------------------------------------------------- from ipywidgets

def _labels(w: widgets.Widget) -> tuple[str, ...]:
    # the labels the front end shows: a synced trait of every selection widget in 7 and 8
    return tuple(str(x) for x in w._options_labels)


def _json_values(w: widgets.Widget) -> tuple[Any, ...]:
    values = tuple(getattr(w, "_options_values", ()))
    try:
        json.dumps(values, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{w.description!r}: its options' values are not JSON ({exc}); link its "
                         f"index instead") from exc
    return values


def _tooltip(w: widgets.Widget) -> str:
    # ipywidgets 8: tooltip; ipywidgets 7: description_tooltip (buttons have tooltip)
    for name in ("tooltip", "description_tooltip"):
        if w.has_trait(name) and getattr(w, name):
            return str(getattr(w, name))
    return ""


def _width(w: widgets.Widget) -> str | None:
    width = getattr(getattr(w, "layout", None), "width", None)
    return str(width) if width else None


def _spec(w: widgets.Widget, drives: dict[str, str]) -> ControlSpec:
    """The spec of one ipywidgets control, driving ``drives``."""
    common = dict(label=str(w.description), drives=drives, id=w.model_id, tooltip=_tooltip(w),
                  width=_width(w))
    by_value = "value" in drives.values()
    if isinstance(w, (widgets.IntSlider, widgets.FloatSlider)):
        return ControlSpec("slider", value=w.value, min=w.min, max=w.max, step=w.step,
                           readout=w.readout_format if w.readout else None, **common)
    if isinstance(w, widgets.SelectionSlider):
        return ControlSpec("slider", value=w.index, options=_labels(w), min=0, max=len(w.options) - 1,
                           step=1, values=_json_values(w) if by_value else (),
                           readout="d" if w.readout else None, **common)
    if isinstance(w, (widgets.Dropdown, widgets.ToggleButtons)):
        tips = tuple(getattr(w, "tooltips", ()) or ()) if isinstance(w, widgets.ToggleButtons) else ()
        return ControlSpec("select" if isinstance(w, widgets.Dropdown) else "toggle", value=w.index,
                           options=_labels(w), values=_json_values(w) if by_value else (),
                           tooltips=tips, **common)
    raise TypeError(f"cannot save a {type(w).__name__} in a page: the controls that can be saved "
                    f"are IntSlider, FloatSlider, SelectionSlider, Dropdown, ToggleButtons and Button")


def _check_trait(view: widgets.Widget, trait: str) -> None:
    synced = sorted(view.traits(sync=True))
    if trait not in synced:
        close = difflib.get_close_matches(trait, synced, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"{type(view).__name__} has no synced trait {trait!r}.{hint} Its synced "
                         f"traits: {', '.join(t for t in synced if not t.startswith('_'))}")


def _link_parts(view: widgets.Widget, link: Any) -> tuple[widgets.Widget, str, str]:
    """``(control, control attribute, view trait)`` of a jslink/jsdlink or a triple."""
    if isinstance(link, (tuple, list)):
        if len(link) != 3:
            raise ValueError(f"a link is (control, 'value' | 'index', view_trait), got {link!r}")
        return link[0], link[1], link[2]
    if not (hasattr(link, "source") and hasattr(link, "target")):
        raise TypeError(f"a link is a widgets.jslink(...) or (control, attribute, trait), got {link!r}")
    (a, a_attr), (b, b_attr) = link.source, link.target
    if b is view and a is not view:
        return a, a_attr, b_attr
    if a is view and b is not view and not isinstance(link, DirectionalLink):
        return b, b_attr, a_attr  # both ways: the view may be either end
    raise ValueError(f"the link {a_attr!r} -> {b_attr!r} does not run from a control to the view "
                     f"{type(view).__name__}")


def controls_from_widgets(view: widgets.Widget, links: Iterable[Any], *,
                          buttons: Iterable[tuple[widgets.Button, Mapping[str, Any]]] = ()
                          ) -> list[ControlSpec]:
    """The :class:`ControlSpec` s of a widget's ipywidgets controls, for :func:`static_html`.

    Parameters
    ----------
    view : the anywidget view the controls are linked to.
    links : each a ``widgets.jslink`` / ``jsdlink`` between a control and ``view`` (as
        the widget made them), or a triple ``(control, "value" | "index", view_trait)``.
        A control in several links drives several traits. IntSlider, FloatSlider,
        SelectionSlider, Dropdown and ToggleButtons can be saved.
    buttons : ``(button, {view_trait: value})`` pairs: what a click sets in the view
        (the Python ``on_click`` handlers stay behind with the kernel).

    Returns
    -------
    list of ControlSpec : in the order given, buttons last.

    Works on ipywidgets 7.6+ and 8.
    """
    order: list[widgets.Widget] = []
    drives: dict[str, dict[str, str]] = {}
    for link in links:
        control, attr, trait = _link_parts(view, link)
        _check_trait(view, trait)
        if attr not in ("value", "index"):
            raise ValueError(f"{control.description!r}: a control drives the view by its 'value' "
                             f"or its 'index', got {attr!r}")
        if control.model_id not in drives:
            order.append(control)
        drives.setdefault(control.model_id, {})[trait] = attr
    specs = [_spec(c, drives[c.model_id]) for c in order]
    for button, sets in buttons:
        if not isinstance(button, widgets.Button):
            raise TypeError(f"buttons are (widgets.Button, {{trait: value}}) pairs, got {button!r}")
        for trait, value in sets.items():
            _check_trait(view, trait)
            json.dumps(value, allow_nan=False)
        specs.append(ControlSpec("button", button.description, sets=dict(sets), id=button.model_id,
                                 tooltip=_tooltip(button), width=_width(button)))
    return specs


# --------------------------------------------------------------------------- the page

def _source(value: Any, what: str) -> str:
    """An ``_esm`` / ``_css``: the text itself, or that of the file it names."""
    if value is None:
        return ""
    if isinstance(value, os.PathLike):
        return Path(value).read_text(encoding="utf-8")
    text = str(value)
    if re.match(r"https?://", text.strip()):
        raise ValueError(f"the view's {what} is a URL ({text.strip()[:80]}); a saved page may not "
                         f"use the network: give the module's text or a file")
    if "\n" not in text and len(text) < 1024 and text.strip().endswith((".js", ".mjs", ".css")):
        if Path(text.strip()).is_file():
            return Path(text.strip()).read_text(encoding="utf-8")
    return text


def _split_buffers(value: Any, path: list, buffers: list) -> Any:
    """``value`` with its bytes taken out into ``buffers`` (path + base64), as ipywidgets
    sends binary state apart from the JSON."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        buffers.append({"path": path, "data": base64.b64encode(bytes(value)).decode("ascii")})
        return None
    if isinstance(value, dict):
        return {k: _split_buffers(v, [*path, k], buffers) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_split_buffers(v, [*path, i], buffers) for i, v in enumerate(value)]
    return value


def serialize_state(view: widgets.Widget) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The view's synced state as the front end gets it: ``(JSON state, buffers)``, each
    buffer ``{"path": [...], "data": base64}``; widget references are ``"IPY_MODEL_<id>"``."""
    full = view.get_state()  # every synced trait, through its own to_json
    state: dict[str, Any] = {}
    buffers: list[dict[str, Any]] = []
    for name in sorted(view.traits(sync=True)):
        if name not in _NOT_STATE and name in full:
            _put(state, buffers, name, full[name], view)
    return state, buffers


def _put(state: dict, buffers: list, name: str, value: Any, view: widgets.Widget) -> None:
    """``state[name] = value``, its bytes into ``buffers`` (in place of any it had)."""
    buffers[:] = [b for b in buffers if b["path"][0] != name]
    state[name] = _split_buffers(value, [name], buffers)
    try:
        json.dumps(state[name], allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"the trait {name!r} of {type(view).__name__} cannot be saved in a "
                         f"page: {exc}") from exc


def _script_json(obj: Any) -> str:
    # JSON that cannot close its <script> element nor open a comment in it
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def _module(view: widgets.Widget) -> str:
    """The view's ES module, which must stand alone: a page has no files beside it."""
    esm = _source(getattr(view, "_esm", None), "_esm")
    imports = re.findall(r"^\s*(?:import|export)\b[^;'\"()=]*?\bfrom\s*[\"']([^\"']+)"
                         r"|^\s*import\s*[\"']([^\"']+)", esm, flags=re.MULTILINE)
    if imports:
        raise ValueError(f"the view's module imports {', '.join(a or b for a, b in imports)}; a saved "
                         f"page has one module only: put what it imports into its text")
    return esm


def _host() -> tuple[str, str]:
    """The host script (without its comment lines) and the page's Content-Security-Policy:
    no request of any kind; the one inline script is the host, by its hash; the view's
    module comes from a blob: URL the host makes; inline styles for the views' own."""
    text = (_HERE / "static_host.js").read_text(encoding="utf-8")
    host = "// featviz/widgets/static_host.js\n" + "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("//"))
    if "</script" in host.lower():
        raise AssertionError("static_host.js must not contain '</script'")
    digest = base64.b64encode(hashlib.sha256(host.encode("utf-8")).digest()).decode("ascii")
    csp = (f"default-src 'none'; script-src 'sha256-{digest}' blob:; style-src 'unsafe-inline'; "
           f"img-src data: blob:; font-src data:")
    return host, csp


def static_html(view: widgets.Widget, controls: Sequence[ControlSpec], *, title: str,
                note: str = "", kernel_note: str = KERNEL_NOTE,
                overrides: Mapping[str, Any] | None = None,
                kernel_traits: Sequence[str] = (), height: int | None = None) -> str:
    """One self-contained HTML page running ``view`` (an anywidget) with ``controls``
    above it, with no kernel and no network.

    Parameters
    ----------
    view : the anywidget whose ``_esm`` (text or file; it may import nothing), ``_css``
        and synced state go in.
    controls : from :func:`controls_from_widgets`, or made by hand.
    title : the page's title and heading (text, escaped).
    note : a line under the heading, such as what the page cannot do (text, escaped).
    kernel_note : what the page says, once, when the view asks for the kernel.
    overrides : ``{trait: value}`` for the saved page only (the live view keeps its own),
        such as a flag that tells the front end there is no kernel behind it.
    kernel_traits : traits the view sets to ask the kernel for an answer (the
        sketchpad's drawing): when the view saves one, the page says ``kernel_note``, as
        it does for a message (``model.send``).
    height : the page's height in CSS pixels, for a frame that shows it before it runs
        (``<meta name="featviz-height">``, read by the course site's build); once running,
        a framed page tells its parent its height (``postMessage``).

    Returns
    -------
    str : the page; :func:`save_html` writes it.
    """
    for c in controls:
        if not isinstance(c, ControlSpec):
            raise TypeError(f"controls are ControlSpec objects (see controls_from_widgets), got {c!r}")
    for trait in [*(t for c in controls for t in [*c.drives, *c.sets]), *(overrides or {}), *kernel_traits]:
        _check_trait(view, trait)
    state, buffers = serialize_state(view)
    for trait, value in (overrides or {}).items():
        _put(state, buffers, trait, value, view)
    data = {"esm": _module(view), "state": state, "buffers": buffers,
            "controls": [c.to_json() | {"id": c.id or f"control-{i}"} for i, c in enumerate(controls)],
            "kernel_note": str(kernel_note), "kernel_traits": list(kernel_traits)}
    host, csp = _host()
    css = (_HERE / "static_host.css").read_text(encoding="utf-8") + "\n" + \
        _source(getattr(view, "_css", None), "_css")
    css = re.sub(r"</(?=style)", r"<\\/", css, flags=re.IGNORECASE)  # cannot end its element
    e = html.escape
    return "\n".join([
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
        # the CSP has no double quote: its single ones may stay as they are
        f'<meta http-equiv="Content-Security-Policy" content="{e(csp, quote=False)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        *([f'<meta name="featviz-height" content="{int(height)}">'] if height else []),
        f"<title>{e(title)}</title>\n<style>\n{css}\n</style>\n</head>\n<body>",
        f'<h1 class="fvh-title">{e(title)}</h1>',
        *([f'<p class="fvh-note">{e(note)}</p>'] if note else []),
        '<div class="fvh-controls" id="featviz-controls"></div>',
        '<div class="fvh-view" id="featviz-view"></div>',
        '<p class="fvh-notice" id="featviz-notice" role="status" hidden></p>',
        f'<script type="application/json" id="featviz-static">{_script_json(data)}</script>',
        f'<script type="module">{host}</script>\n</body>\n</html>\n'])


def save_html(path: str | os.PathLike, html_text: str) -> Path:
    """Write a page from :func:`static_html` to ``path`` (UTF-8); returns the path."""
    path = Path(path)
    path.write_text(html_text, encoding="utf-8")
    return path
