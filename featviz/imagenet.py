"""ImageNet-trained torchvision models, bounded in time and cached, or a clear error.

:func:`imagenet_model` returns a torchvision classifier with its ImageNet
weights, the preprocessing those weights expect and the 1,000 class names. The
weights live where torchvision keeps them, in the PyTorch hub cache
(``torch.hub.get_dir()/checkpoints``, e.g. ``~/.cache/torch/hub/checkpoints``;
``TORCH_HOME`` moves it), so a model fetched once by torchvision, by featviz or
by Binder's build is found again offline.

When the weights are neither cached nor downloadable in time (no network,
``FEATVIZ_OFFLINE=1``), :class:`WeightsUnavailable` is raised, saying why and
how to get them. featviz never hands out a network with random weights in
their place.

>>> try:
...     model, preprocess, classes, source = featviz.imagenet_model("resnet18", download=False)
... except featviz.WeightsUnavailable as exc:
...     model = None                                   # exc.reason says why
"""
from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path
from typing import Any, Callable, NamedTuple

import torch
from torch import nn

from ._assets import pretty_path, run_bounded, staging_folder
from .data import offline

__all__ = ["ImageNetModel", "WeightsUnavailable", "imagenet_model", "imagenet_weights_path",
           "imagenet_weights_cached"]

DOWNLOAD_TIMEOUT_S = 60.0  # ResNet-18's weights are 45 MB


class WeightsUnavailable(RuntimeError):
    """The ImageNet weights are not cached and could not be downloaded.

    ``reason`` is a short phrase in plain words, with no path and no setting's name (fit
    for a notebook's output); the message adds where the weights are expected and how
    to get them.
    """

    def __init__(self, name: str, reason: str, path: Path, fix: str | None = None) -> None:
        self.name, self.reason, self.path = name, reason, path
        fix = fix or (f"with internet access, featviz.imagenet_model({name!r}) downloads them "
                      f"there once")
        super().__init__(
            f"no ImageNet weights for {name}: {reason}. They are looked for in "
            f"{pretty_path(path)}; {fix} (or copy the file there from a machine that has it)."
        )


class ImageNetModel(NamedTuple):
    """What :func:`imagenet_model` returns; unpacks as ``model, preprocess, classes, source``.

    Attributes
    ----------
    model : the network, in eval mode, with its ImageNet weights.
    preprocess : the weights' own transform: a PIL image (or a ``uint8`` tensor)
        -> a normalised ``(3, 224, 224)`` float tensor.
    classes : the 1,000 class names, in the order of the model's outputs.
    source : ``"cache"`` or ``"download"``: where the weights came from.
    """

    model: nn.Module
    preprocess: Callable[[Any], torch.Tensor]
    classes: list[str]
    source: str


def _weights(name: str) -> Any:
    """torchvision's default weights enum for ``name`` (e.g. ResNet18_Weights.IMAGENET1K_V1)."""
    from torchvision import models

    try:
        return models.get_model_weights(name).DEFAULT
    except (ValueError, KeyError) as exc:
        known = ", ".join(n for n in ("resnet18", "resnet50", "vgg16", "alexnet")
                          if n in models.list_models())
        raise ValueError(
            f"{name!r} is not a torchvision model with ImageNet weights; try one of {known} "
            f"(torchvision.models.list_models() lists all).") from exc


def imagenet_weights_path(name: str = "resnet18") -> Path:
    """Where the ImageNet weights of torchvision's ``name`` are (or would be) cached."""
    url = _weights(name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_weights_cached(name: str = "resnet18") -> bool:
    """True when the weights of ``name`` are in the PyTorch hub cache (nothing is downloaded)."""
    return imagenet_weights_path(name).is_file()


def _fetch(url: str, path: Path, timeout: float) -> str | None:
    """Download ``url`` to ``path`` within ``timeout`` seconds; None on success, else why not.

    The file is written in a staging folder beside ``path`` and moved into place
    only once complete and matching the hash in its name, so a failure never
    leaves a partial file where torchvision looks. A download still running at
    the deadline is left to finish in the background (and is then cached).
    """
    try:
        stage = staging_folder(path.parent)
    except OSError as exc:
        return f"cannot write to the cache ({exc.strerror or exc})"
    # torchvision names its files name-<first 8 hex digits of the sha256>.pth
    stem = path.stem.rsplit("-", 1)
    prefix = stem[1] if len(stem) == 2 and len(stem[1]) >= 8 else None

    def work() -> None:
        try:
            torch.hub.download_url_to_file(url, str(stage / path.name), prefix, progress=False)
            os.replace(stage / path.name, path)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    return run_bounded(work, timeout, "weights-download")


def imagenet_model(
    name: str = "resnet18",
    *,
    download: bool = True,
    timeout: float = DOWNLOAD_TIMEOUT_S,
    device: str | torch.device | None = None,
) -> ImageNetModel:
    """A torchvision classifier with its ImageNet weights, preprocessing and class names.

    The weights are read from the PyTorch hub cache; when they are not there,
    they are downloaded into it, for at most ``timeout`` seconds (never when
    ``download`` is False or ``FEATVIZ_OFFLINE=1`` is set).

    Parameters
    ----------
    name : a torchvision model name: ``"resnet18"`` (45 MB), ``"resnet50"``, ...
    download : whether to try the network when the weights are not cached.
    timeout : seconds the download may take.
    device : where to put the model; default the CPU.

    Returns
    -------
    :class:`ImageNetModel` ``(model, preprocess, classes, source)``.

    Raises
    ------
    WeightsUnavailable
        When the weights are neither cached nor downloadable in time; its
        ``reason`` says why. A cached file that cannot be read is reported the
        same way (delete it to download it again).
    """
    from torchvision import models

    weights = _weights(name)
    path = imagenet_weights_path(name)
    source = "cache"
    if not path.is_file():
        if not download:
            raise WeightsUnavailable(name, "they are not cached and download=False", path)
        if offline():
            raise WeightsUnavailable(
                name, "they are not on this computer, and featviz is set to work offline", path,
                fix="featviz works offline while the FEATVIZ_OFFLINE environment variable is "
                    "set; unset it, with internet access, to download them once")
        why = _fetch(weights.url, path, float(timeout))
        if why is not None:
            raise WeightsUnavailable(name, f"they are not cached and {why}", path)
        source = "download"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = models.get_model(name, weights=None)
        model.load_state_dict(state)
    except (OSError, RuntimeError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise WeightsUnavailable(
            name, f"the cached file cannot be loaded ({first}); delete it to download it again",
            path) from exc
    model = model.eval()
    if device is not None:
        model = model.to(device)
    return ImageNetModel(model, weights.transforms(), list(weights.meta["categories"]), source)
