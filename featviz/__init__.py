"""featviz: see what a convolutional network sees.

A small helper package for visualising the feature maps of PyTorch models, and
the engine of the featviz course (``notebooks/``).

>>> import featviz
>>> model = featviz.pretrained()                      # SimpleCNN trained on MNIST
>>> images, labels = featviz.digit_examples()         # one test image per digit
>>> acts = featviz.activations(model, images, ["conv1", "conv2"])
>>> fig = featviz.plot_feature_maps(acts["conv1"][3], image=images[3])

Submodules are named apart from the functions they export (``featviz.hooks``
defines ``featviz.capture``; ``featviz.selfcheck`` defines ``featviz.doctor``)
so that importing a submodule never shadows a function. Names are imported lazily, so ``import featviz`` stays cheap and never imports
ipywidgets or picks a matplotlib backend.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> submodule that defines it
_EXPORTS: dict[str, str] = {
    # data
    "MNIST_MEAN": "data",
    "MNIST_STD": "data",
    "MNIST_RANGE": "data",
    "load_mnist": "data",
    "mnist_tensors": "data",
    "mnist_denormalize": "data",
    "mnist_normalize": "data",
    "digit_examples": "data",
    "digit_batch": "data",
    "data_source": "data",
    # models
    "SimpleCNN": "models",
    "pretrained": "models",
    "pretrained_snapshots": "models",
    "save_checkpoint": "models",
    "load_checkpoint": "models",
    "default_device": "models",
    # training
    "fit": "training",
    "evaluate": "training",
    "predict": "training",
    # capture
    "capture": "hooks",
    "activations": "hooks",
    "layers": "hooks",
    "batched_activations": "hooks",
    "resolve_layers": "hooks",
    # plots
    "plot_feature_maps": "plots",
    "plot_filters": "plots",
    "plot_images": "plots",
    "plot_overlay": "plots",
    "plot_comparison": "plots",
    "plot_top_activating": "plots",
    "plot_attribution_grid": "plots",
    # widgets (imported only when asked for)
    "explorer": "widgets.explorer_widget",
    "sketchpad": "widgets.sketchpad_widget",
    # explain
    "receptive_field": "geometry",
    "place_by_receptive_field": "geometry",
    "top_activating": "explain",
    "maximize_activation": "explain",
    "saliency": "explain",
    "grad_cam": "explain",
    "occlusion": "explain",
    # probing the input, one convolution taken apart
    "perturb": "perturbation",
    "mnist_style": "perturbation",
    "conv_arithmetic": "convolution",
    "ConvArithmetic": "convolution",
    # deeper networks
    "SmallResNet": "resnets",
    "imagenet_model": "imagenet",
    "WeightsUnavailable": "imagenet",
    # course
    "doctor": "selfcheck",
}

_SUBMODULES = {
    "data", "models", "training", "hooks", "plots", "widgets",
    "explain", "exercises", "selfcheck", "perturbation", "convolution",
    "geometry", "imagenet", "resnets",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"featviz.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"featviz.{name}")
    raise AttributeError(f"module 'featviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
