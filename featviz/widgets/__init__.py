"""The live course tools, drawn in the browser: the explorer and the sketchpad.

Each is a Python object holding the state (model, images, the current choice)
beside a front-end module (anywidget, plain JavaScript) that draws it. The
kernel sends a layer's feature maps once, compactly
(:mod:`featviz.widgets._payload`); the browser draws every filter, view and
colour scale from them, so those controls need no kernel round trip.

This package is the only part of featviz that imports ipywidgets and
anywidget; ``import featviz`` never loads it. Names load lazily.
"""
from __future__ import annotations

import importlib
from typing import Any

# public name -> submodule that defines it (submodules are named apart from them)
_EXPORTS: dict[str, str] = {
    "explorer": "explorer_widget",
    "Explorer": "explorer_widget",
    "ExplorerError": "explorer_widget",
    "sketchpad": "sketchpad_widget",
    "Sketchpad": "sketchpad_widget",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        value = getattr(module, name)
        # cache the name on the package, so the next lookup skips this function
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
