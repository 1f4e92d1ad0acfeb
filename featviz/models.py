"""The course's network, its checkpoints, and the shipped pretrained weights.

``SimpleCNN`` is the classic tutorial network (conv 1->16 5x5, pool, conv
16->32 5x5, pool, fc 512->120->84->10) with one named module per stage, so that
every intermediate a learner wants to look at has a name in
``model.named_modules()``: ``conv1``, ``relu1``, ``pool1``, ``conv2``, ...
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, cast

import torch
import torch.fx
from torch import nn

from ._assets import verified_asset

PRETRAINED_FILE = "simplecnn_mnist.pt"
SNAPSHOTS_FILE = "simplecnn_snapshots.pt"
VARIANTS_FILE = "simplecnn_variants.pt"
_FORMAT = "featviz-checkpoint"


class AntialiasedMaxPool2d(nn.Module):
    """Max pooling that blurs before it subsamples (Zhang 2019, "Making Convolutional
    Networks Shift-Invariant Again"): a 2x2 max with stride 1, then a fixed 3x3 binomial
    blur ([1, 2, 1] outer [1, 2, 1] / 16) applied with stride 2 and padding 1.

    Its output has the size of ``nn.MaxPool2d(2)``'s on even inputs. Both steps are
    ordinary modules (``max``, ``blur``), so receptive fields and hooks see through it;
    the blur is fixed (``requires_grad`` False) and is not trained.

    >>> AntialiasedMaxPool2d(16)(torch.randn(1, 16, 24, 24)).shape
    torch.Size([1, 16, 12, 12])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.max = nn.MaxPool2d(2, stride=1)
        self.blur = nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels,
                              bias=False)
        row = torch.tensor([1.0, 2.0, 1.0])
        kernel = (row[:, None] * row[None, :]) / 16
        with torch.no_grad():
            self.blur.weight.copy_(kernel.expand(channels, 1, 3, 3))
        self.blur.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blur(self.max(x))


class SimpleCNN(nn.Module):
    """The tutorial's small CNN for 28x28 grey-scale digits.

    Shapes for an input of ``(N, 1, 28, 28)``::

        conv1 (N, 16, 24, 24) -> relu1 -> pool1 (N, 16, 12, 12)
        conv2 (N, 32, 8, 8)   -> relu2 -> pool2 (N, 32, 4, 4)
        flatten (N, 512) -> fc1 (N, 120) -> relu3 -> fc2 (N, 84) -> relu4 -> fc3 (N, 10)

    Every ReLU is its own, not in-place, module, so each stage can be captured.

    ``antialias=True`` makes ``pool1`` and ``pool2`` :class:`AntialiasedMaxPool2d`
    (Zhang 2019): the same names and shapes, maps that move more smoothly with the image.
    """

    input_shape = (1, 28, 28)
    featviz_meta: dict[str, Any]  # set by load_checkpoint and pretrained_snapshots

    def __init__(self, num_classes: int = 10, *, antialias: bool = False) -> None:
        super().__init__()
        self.antialias = bool(antialias)
        pool: Callable[[int], nn.Module] = (
            AntialiasedMaxPool2d if antialias else (lambda channels: nn.MaxPool2d(2)))
        self.conv1 = nn.Conv2d(1, 16, kernel_size=5)
        self.relu1 = nn.ReLU()
        self.pool1 = pool(16)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=5)
        self.relu2 = nn.ReLU()
        self.pool2 = pool(32)
        self.flatten = nn.Flatten()
        self.fc1 = nn.Linear(32 * 4 * 4, 120)
        self.relu3 = nn.ReLU()
        self.fc2 = nn.Linear(120, 84)
        self.relu4 = nn.ReLU()
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.fx traces with Proxy objects (create_feature_extractor): skip the checks then
        if not isinstance(x, torch.fx.Proxy):
            self._check_input(x)
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu3(self.fc1(x))
        x = self.relu4(self.fc2(x))
        return self.fc3(x)

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"SimpleCNN expects a torch.Tensor of shape (N, 1, 28, 28), got "
                f"{type(x).__name__}; convert with torch.as_tensor(x, dtype=torch.float32)."
            )
        if x.dim() != 4 or tuple(x.shape[1:]) != self.input_shape:
            hint = ""
            if x.dim() == 3 and tuple(x.shape) == self.input_shape:
                hint = " This looks like a single image: add a batch dimension with x.unsqueeze(0)."
            elif x.dim() == 3 and tuple(x.shape[1:]) == (28, 28):
                hint = " This looks like a batch without a channel dimension: use x.unsqueeze(1)."
            elif x.dim() == 2 and tuple(x.shape) == (28, 28):
                hint = " This looks like a single 28x28 image: use x[None, None]."
            raise ValueError(
                f"SimpleCNN expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}.{hint}"
            )


_ARCHITECTURES: dict[str, type[nn.Module]] = {"SimpleCNN": SimpleCNN}


def default_device() -> torch.device:
    """The best device available: CUDA, then Apple MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta: Any) -> Path:
    """Save ``model``'s weights with its architecture name and any metadata.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = save_checkpoint(model, Path(folder) / "my_model.pt", test_accuracy=0.987)
    ...     load_checkpoint(path).featviz_meta
    {'test_accuracy': 0.987}
    """
    path = Path(path)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(
        {"format": _FORMAT, "architecture": type(model).__name__, "meta": meta,
         "state_dict": state},
        path,
    )
    return path


def _read_checkpoint(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise FileNotFoundError(
            f"No checkpoint at {path}. Save one first with "
            f"featviz.save_checkpoint(model, {str(path)!r})."
        )
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint (it may be truncated or "
            f"corrupt): {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    if isinstance(data, dict) and data.get("format") == _FORMAT:
        return data
    if isinstance(data, dict) and all(isinstance(v, torch.Tensor) for v in data.values()):
        return {"format": _FORMAT, "architecture": None, "meta": {}, "state_dict": data}
    raise ValueError(
        f"{path} holds a {type(data).__name__}, not a featviz checkpoint or a state_dict."
    )


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """Load ``state`` into ``model``, naming every mismatching key on failure."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append("missing from the checkpoint: " + ", ".join(missing))
        if unexpected:
            parts.append("not in the model: " + ", ".join(unexpected))
        if shapes:
            parts.append("shape mismatch: " + "; ".join(shapes))
        raise ValueError(
            f"The {source} does not fit {type(model).__name__} (was it saved from another "
            f"architecture?) - " + " | ".join(parts)
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model


def load_checkpoint(
    path: str | os.PathLike, model: nn.Module | None = None, map_location: Any = "cpu"
) -> nn.Module:
    """Load a checkpoint saved by :func:`save_checkpoint` (or a plain state_dict).

    With ``model=None`` the architecture recorded in the file is built. The model
    is returned in eval mode; its metadata is in ``model.featviz_meta``.
    """
    path = Path(path)
    data = _read_checkpoint(path)
    if model is None:
        arch = data.get("architecture") or "SimpleCNN"
        if arch not in _ARCHITECTURES:
            raise ValueError(
                f"{path} was saved from a {arch}, which featviz cannot build by itself; "
                f"pass the model: load_checkpoint(path, model={arch}(...))."
            )
        # an anti-aliased SimpleCNN is told apart by its blur weights
        extra = {"antialias": True} if arch == "SimpleCNN" and "pool1.blur.weight" in data["state_dict"] else {}
        model = _ARCHITECTURES[arch](**extra)
    load_state(model, data["state_dict"], source=f"checkpoint {path}")
    # torch types Module.__setattr__ for tensors and modules, but any attribute may be set
    model.featviz_meta = dict(data.get("meta") or {})  # type: ignore[assignment]
    return model.to(map_location).eval()


def pretrained(device: str | torch.device | None = None) -> SimpleCNN:
    """The SimpleCNN trained on the full MNIST training set, in eval mode.

    Its test accuracy (recorded in ``featviz/assets/manifest.json``) is in
    ``model.featviz_meta["test_accuracy"]``.
    """
    model = cast(SimpleCNN, load_checkpoint(verified_asset(PRETRAINED_FILE)))  # the file holds one
    return model.to(device) if device is not None else model


def pretrained_snapshots(device: str | torch.device | None = None) -> list[tuple[str, SimpleCNN]]:
    """The training history of :func:`pretrained`: a list of ``(label, model)``.

    From the random initialisation to the final weights, so that lessons can
    show features emerging. Labels read like ``"step 300"`` or ``"epoch 2"``.
    """
    path = verified_asset(SNAPSHOTS_FILE)
    data = torch.load(path, map_location="cpu", weights_only=True)
    out = []
    for snap in data["snapshots"]:
        model = SimpleCNN()
        load_state(model, snap["state_dict"], source=f"snapshot {snap['label']!r}")
        model.featviz_meta = {k: v for k, v in snap.items() if k != "state_dict"}
        model.eval()
        out.append((snap["label"], model.to(device) if device is not None else model))
    return out



def pretrained_variant(variant: str = "baseline", seed: int = 0,
                       device: str | torch.device | None = None) -> SimpleCNN:
    """A SimpleCNN variant trained on the full MNIST by ``scripts/train_lesson09.py``.

    variant : ``"baseline"`` (the recipe of :func:`pretrained`), ``"augmented"`` (shifts
        up to 6 px and rotations up to 30 degrees), ``"antialiased"`` (anti-aliased
        pooling), ``"both"``, or ``"targeted"`` (the baseline with the loss on 4s and 9s
        weighted up). ``featviz_meta`` holds the recipe and the test accuracy.
    seed : which initialisation; the seeds shipped are listed in the manifest.

    The file is made by ``python scripts/train_lesson09.py``; until it is, this raises
    ``FileNotFoundError``.
    """
    data = torch.load(verified_asset(VARIANTS_FILE), map_location="cpu", weights_only=True)
    variants = data["variants"]
    if variant not in variants:
        raise ValueError(f"variant={variant!r} is not shipped; choose one of {sorted(variants)}.")
    entry = variants[variant]
    runs = entry["seeds"]
    if str(seed) not in runs:
        raise ValueError(f"seed={seed!r}: {variant!r} is shipped with seeds "
                         f"{sorted(int(k) for k in runs)}.")
    run = runs[str(seed)]
    model = SimpleCNN(antialias=bool(entry["antialias"]))
    load_state(model, run["state_dict"], source=f"variant {variant!r}, seed {seed}")
    model.featviz_meta = {"variant": variant, "seed": seed, "recipe": entry["recipe"],
                          "test_accuracy": run["test_accuracy"]}
    model.eval()
    return model.to(device) if device is not None else model
