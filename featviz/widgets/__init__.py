"""The live course tools, drawn in the browser: the explorer and the sketchpad.

Each is a Python object holding the state (model, images, the current choice)
beside a front-end module (anywidget, plain JavaScript) that draws it. The
kernel sends a layer's feature maps once, compactly
(:mod:`featviz.widgets._payload`); the browser draws every filter, view and
colour scale from them, so those controls need no kernel round trip.

This package is the only part of featviz that imports ipywidgets and
anywidget; ``import featviz`` never loads it: ``featviz.explorer`` and
``featviz.sketchpad`` import it on first use.
"""
from __future__ import annotations

from .explorer_widget import Explorer, ExplorerError, explorer
from .sketchpad_widget import Sketchpad, sketchpad

__all__ = ["Explorer", "ExplorerError", "Sketchpad", "explorer", "sketchpad"]
