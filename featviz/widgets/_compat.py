"""What differs between ipywidgets 8 and 7 (Colab ships 7.7), in one place.

featviz's widgets are written for ipywidgets 8 and kept working on 7.6+:

* a control's tooltip is the trait ``tooltip`` in 8; in 7 only buttons have one,
  the other controls have ``description_tooltip`` (setting ``tooltip`` there
  would set a plain attribute that no front end ever sees);
* a widget shows itself through ``_repr_mimebundle_`` in 8 and through
  ``_ipython_display_`` in 7, which IPython asks first: a widget that shows
  another in its place (the sketchpad shows its layer chooser above the pad)
  must answer both (:func:`display_in_place`).
"""
from __future__ import annotations

from typing import Any

import ipywidgets as widgets

__all__ = ["IPYWIDGETS_7", "set_tooltip", "display_in_place", "in_notebook"]

#: True under ipywidgets 7, whose widgets display through ``_ipython_display_``
IPYWIDGETS_7 = not hasattr(widgets.Widget, "_repr_mimebundle_")


def set_tooltip(widget: widgets.Widget, text: str) -> None:
    """Show ``text`` when the pointer rests on ``widget``, on ipywidgets 7 and 8."""
    if widget.has_trait("tooltip"):
        widget.tooltip = text
    else:  # ipywidgets 7: a slider's tooltip is its description's
        widget.description_tooltip = text


def display_in_place(view: widgets.Widget, text: str, **kwargs: Any) -> None:
    """Display ``view`` live, with ``text`` as the plain-text form that readers without
    widgets see (a saved notebook keeps it): ipywidgets 7's ``_ipython_display_``."""
    from IPython.display import display

    display({"text/plain": text,
             "application/vnd.jupyter.widget-view+json": {
                 "version_major": 2, "version_minor": 0, "model_id": view.model_id}},
            raw=True)
    view._handle_displayed(**kwargs)


def in_notebook() -> bool:
    """True in a Jupyter kernel (a widget shows its problems as a message there); False in
    a script or a test, where a problem raises."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None
