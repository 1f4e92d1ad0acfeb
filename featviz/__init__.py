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
ipywidgets or picks a matplotlib backend; the ``TYPE_CHECKING`` block below
shows the same names to IDEs and type checkers.

The library needs only PyTorch, numpy, matplotlib and pillow. The live widgets
(``explorer``, ``sketchpad``) need ``pip install "featviz[widgets]"``; without
it, calling them raises an ``ImportError`` that says so.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, NoReturn

if TYPE_CHECKING:  # what the lazy table below exports, spelled out for IDEs and type checkers
    from . import convolution as convolution, data as data, exercises as exercises
    from . import explain as explain, geometry as geometry, hooks as hooks, imagenet as imagenet
    from . import models as models, perturbation as perturbation, plots as plots
    from . import netspec as netspec, resnets as resnets, selfcheck as selfcheck, training as training, widgets as widgets
    from .convolution import ConvArithmetic, conv_arithmetic
    from .data import (MNIST_MEAN, MNIST_RANGE, MNIST_STD, data_source, digit_batch,
                       digit_examples, load_mnist, mnist_denormalize, mnist_normalize,
                       mnist_tensors)
    from .explain import grad_cam, maximize_activation, occlusion, saliency, top_activating
    from . import ablation as ablation, attribution as attribution
    from .ablation import ablate
    from .attribution import (FaithfulnessCurve, deletion_curve, faithfulness_curve, insertion_curve,
                              integrated_gradients, plot_faithfulness, random_ranking)
    from .geometry import place_by_receptive_field, receptive_field
    from .hooks import activations, batched_activations, capture, layers, resolve_layers
    from .imagenet import WeightsUnavailable, imagenet_model
    from .netspec import UnsupportedModel, browser_network, why_not_browser
    from . import stats as stats
    from .models import (SimpleCNN, default_device, load_checkpoint, pretrained,
                         pretrained_snapshots, pretrained_variant, save_checkpoint)
    from .perturbation import mnist_style, perturb
    from .plots import (plot_attribution_grid, plot_comparison, plot_feature_maps,
                        plot_filters, plot_images, plot_overlay, plot_top_activating)
    from .resnets import SmallResNet
    from .selfcheck import doctor
    from .stats import channel_stats, map_stability, robustness
    from .training import confusion_matrix, evaluate, fit, predict
    from .confusion import plot_confusion, top_confusions
    from .widgets.explorer_widget import explorer
    from .widgets.sketchpad_widget import sketchpad

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
    "pretrained_variant": "models",
    "save_checkpoint": "models",
    "load_checkpoint": "models",
    "default_device": "models",
    # training
    "fit": "training",
    "evaluate": "training",
    "predict": "training",
    "confusion_matrix": "training",
    "top_confusions": "confusion",
    "plot_confusion": "confusion",
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
    "integrated_gradients": "attribution",
    "faithfulness_curve": "attribution",
    "deletion_curve": "attribution",
    "insertion_curve": "attribution",
    "random_ranking": "attribution",
    "plot_faithfulness": "attribution",
    "FaithfulnessCurve": "attribution",
    # probing the input, one convolution taken apart
    "perturb": "perturbation",
    "mnist_style": "perturbation",
    "conv_arithmetic": "convolution",
    "ConvArithmetic": "convolution",
    # the network in the browser
    "browser_network": "netspec",
    "why_not_browser": "netspec",
    "UnsupportedModel": "netspec",
    # deeper networks
    "SmallResNet": "resnets",
    "imagenet_model": "imagenet",
    "WeightsUnavailable": "imagenet",
    # dataset-wide statistics
    "channel_stats": "stats",
    "robustness": "stats",
    "map_stability": "stats",
    "ablate": "ablation",
    # course
    "doctor": "selfcheck",
}

_SUBMODULES = {
    "data", "models", "training", "hooks", "plots", "widgets",
    "explain", "exercises", "selfcheck", "perturbation", "convolution",
    "geometry", "imagenet", "resnets", "netspec", "stats", "confusion", "attribution",
    "ablation",
}

__all__ = [  # the lazy names below, spelled out (tests/test_package.py holds them equal)
    "ConvArithmetic", "FaithfulnessCurve", "MNIST_MEAN", "MNIST_RANGE", "MNIST_STD", "SimpleCNN",
    "SmallResNet", "UnsupportedModel", "WeightsUnavailable", "ablate", "activations", "batched_activations",
    "browser_network", "capture", "channel_stats", "confusion_matrix", "conv_arithmetic",
    "data_source", "default_device", "deletion_curve", "digit_batch", "digit_examples", "doctor",
    "evaluate", "explorer", "faithfulness_curve", "fit", "grad_cam", "imagenet_model",
    "insertion_curve", "integrated_gradients", "layers", "load_checkpoint", "load_mnist",
    "map_stability", "maximize_activation", "mnist_denormalize", "mnist_normalize", "mnist_style",
    "mnist_tensors", "occlusion", "perturb", "place_by_receptive_field", "plot_attribution_grid",
    "plot_comparison", "plot_confusion", "plot_faithfulness", "plot_feature_maps", "plot_filters",
    "plot_images", "plot_overlay", "plot_top_activating", "predict", "pretrained",
    "pretrained_snapshots", "pretrained_variant", "random_ranking", "receptive_field",
    "resolve_layers", "robustness", "saliency", "save_checkpoint", "sketchpad", "top_activating",
    "top_confusions", "why_not_browser",
    "__version__",
]

# the optional front-end packages behind featviz.explorer and featviz.sketchpad
_WIDGET_PACKAGES = ("ipywidgets", "anywidget")
WIDGETS_INSTALL = 'pip install "featviz[widgets]"'


def _missing_widgets(error: ModuleNotFoundError) -> bool:
    return (error.name or "").split(".")[0] in _WIDGET_PACKAGES


def _widgets_needed(name: str, error: ModuleNotFoundError) -> Callable[..., NoReturn]:
    """A stand-in for a widget function, raising why it cannot run and how to fix it."""
    def unavailable(*args: Any, **kwargs: Any) -> NoReturn:
        raise ImportError(
            f"featviz.{name} needs the widget packages (ipywidgets and anywidget), but "
            f"{error.name} is not installed in this Python. Install them with: "
            f"{WIDGETS_INSTALL}   (in a notebook: %pip install \"featviz[widgets]\", then "
            f"restart the kernel). capture, plots and explain work without them.",
            name=error.name) from error
    unavailable.__name__ = unavailable.__qualname__ = name
    return unavailable


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        try:
            module = importlib.import_module(f"featviz.{_EXPORTS[name]}")
        except ModuleNotFoundError as error:
            if not _missing_widgets(error):
                raise
            # not cached: once the packages are installed, the next lookup finds the real one
            return _widgets_needed(name, error)
        value = getattr(module, name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f"featviz.{name}")
        except ModuleNotFoundError as error:
            if _missing_widgets(error) and hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"featviz.{name} needs the widget packages: {WIDGETS_INSTALL}")
            raise
    raise AttributeError(f"module 'featviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
