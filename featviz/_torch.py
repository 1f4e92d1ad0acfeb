"""Torch chores, one home each: a model's device and dtype, the input contract,
running a model with a readable error, batching, eval mode with everything
restored, and tensors to numpy.

Internal (the ground floor): every other featviz module may import it; it
imports nothing from featviz.
"""
from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

__all__ = [
    "model_device", "check_device", "model_dtype", "as_tensor", "as_batch", "run_model", "explain_input", "tensors_in",
    "batches", "tensor_pair", "inference_mode", "to_numpy",
]

_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
               nn.ConvTranspose3d)


# --------------------------------------------------------------------------- the model

def _first_tensor(model: nn.Module) -> Tensor | None:
    for t in model.parameters():
        return t
    for b in model.buffers():
        return b
    return None


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (or buffer); the CPU when it has none."""
    t = _first_tensor(model)
    return t.device if t is not None else torch.device("cpu")


def check_device(model: nn.Module, device: str | torch.device | None) -> None:
    """Raise a ``ValueError`` with the fix when ``device`` is given and the model is elsewhere."""
    want, have = torch.device(device or model_device(model)), model_device(model)
    if have.type != want.type or (want.index is not None and have.index != want.index):
        raise ValueError(f"device={str(want)!r} but the model is on {str(have)!r}; move the "
                         f"model first with model.to({str(want)!r}).")


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (or buffer); else float32."""
    for t in itertools.chain(model.parameters(), model.buffers()):  # stops at the first
        if t.is_floating_point():
            return t.dtype
    return torch.float32


# --------------------------------------------------------------------------- inputs

def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.")


def _pil_error(x: Any) -> TypeError:
    return TypeError(
        f"got a PIL image ({getattr(x, 'mode', '?')} mode, size {getattr(x, 'size', '?')}); "
        "models take a float tensor of shape (N, C, H, W), scaled the way the model was "
        "trained. Convert it with torchvision: "
        "x = torchvision.transforms.functional.to_tensor(img).unsqueeze(0), then normalise "
        "it as the model's training data was (for the course's MNIST models: "
        "x = featviz.mnist_normalize(x))."
    )


def _integer_error(what: str, kind: str, dtype: Any) -> TypeError:
    return TypeError(
        f"{what} is {kind} of integer type {dtype}; models take float tensors scaled the way "
        "the model was trained. For 0-255 pixels: x = torch.as_tensor(x).float() / 255, then "
        "normalise (for the course's MNIST models: x = featviz.mnist_normalize(x))."
    )


def as_tensor(x: Any, model: nn.Module | None = None, *, what: str = "x") -> Tensor:
    """``x`` as a float tensor of any shape, on the model's device and dtype (if a model is given).

    Accepts a tensor, a float numpy array or a list of same-shaped tensors
    (stacked). PIL images and integer pixels raise a ``TypeError`` saying how to
    convert them: only the caller knows how the model's inputs were normalised.
    """
    if isinstance(x, Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        if x.dtype.kind != "f":
            raise _integer_error(what, "a numpy array", x.dtype) if x.dtype.kind in "iub" \
                else TypeError(f"{what} is a numpy array of dtype {x.dtype}; expected float pixels.")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif _is_pil(x) or (isinstance(x, (list, tuple)) and x and _is_pil(x[0])):
        raise _pil_error(x if _is_pil(x) else x[0])
    elif isinstance(x, (list, tuple)) and x and all(isinstance(v, Tensor) for v in x):
        shapes = sorted({tuple(v.shape) for v in x})
        if len(shapes) != 1:
            raise ValueError(f"{what} is a list of {len(x)} tensors with different shapes "
                             f"{shapes}; a batch needs images of one shape.")
        t = torch.stack(list(x))
    else:
        raise TypeError(
            f"{what} must be a torch.Tensor of images (N, C, H, W), got {type(x).__name__}. "
            "Convert with torch.as_tensor(x, dtype=torch.float32)."
        )
    if not (t.is_floating_point() or t.is_complex()):
        raise _integer_error(what, "a tensor", t.dtype)
    if model is not None:
        device, dtype = model_device(model), model_dtype(model)
        if t.device != device or (t.is_floating_point() and t.dtype != dtype):
            # a pinned batch (DataLoader(pin_memory=True)) is copied while the GPU works
            early = device.type != "cpu" and t.device.type == "cpu" and t.is_pinned()
            t = t.to(device=device, dtype=dtype, non_blocking=early)
    return t


def as_batch(x: Any, model: nn.Module | None = None, *, what: str = "x") -> tuple[Tensor, bool]:
    """Images as a float batch ``(N, C, H, W)`` and whether one image ``(C, H, W)`` was given.

    Conversion and errors as :func:`as_tensor`; any other number of dimensions
    is a ``ValueError`` with the fix.
    """
    t = as_tensor(x, model, what=what)
    if t.dim() == 4:
        return t, False
    if t.dim() == 3:
        return t.unsqueeze(0), True
    hint = " For one grey image (H, W) use x[None] to make it (1, H, W)." if t.dim() == 2 else ""
    raise ValueError(
        f"{what} must be a batch (N, C, H, W) or one image (C, H, W), got shape "
        f"{tuple(t.shape)}.{hint}"
    )


def _first_conv(model: nn.Module) -> tuple[str, _ConvNd] | tuple[None, None]:
    for name, module in model.named_modules():
        if isinstance(module, _CONV_TYPES):
            return name, module
    return None, None


def _shape_hint(shape: tuple[int, ...], spatial: int, c: int) -> str:
    if len(shape) == spatial + 1 and shape[0] == c:
        return " This looks like a single image: add a batch dimension with x.unsqueeze(0)."
    if len(shape) == spatial + 1 and c == 1:
        return " This looks like a batch without its channel dimension: use x.unsqueeze(1)."
    if len(shape) == spatial + 2 and shape[-1] == c:
        return " The channels seem to be last: use x.permute(0, 3, 1, 2)."
    if len(shape) == spatial + 2 and c == 1 and shape[1] == 3:
        return " This is a colour image for a grey-scale model: use x.mean(1, keepdim=True)."
    if len(shape) == spatial + 2 and c == 3 and shape[1] == 1:
        return " This is a grey-scale image for a colour model: use x.expand(-1, 3, -1, -1)."
    return ""


def explain_input(model: nn.Module, x: Any) -> Exception | None:
    """After a failed forward pass: an error that explains it by the input, or None."""
    if _is_pil(x):
        return _pil_error(x)
    if isinstance(x, np.ndarray):
        return TypeError(
            f"got a numpy array of shape {tuple(x.shape)} where the model takes a tensor. "
            "Convert it with torch.as_tensor(x, dtype=torch.float32), or use "
            "featviz.activations(model, x, ...), which converts float arrays itself."
        )
    if not isinstance(x, Tensor):
        return None
    if not (x.is_floating_point() or x.is_complex()):
        return _integer_error("the input", "a tensor", x.dtype)
    name, conv = _first_conv(model)
    if conv is None:
        return None
    spatial, c, shape = len(conv.kernel_size), conv.in_channels, tuple(x.shape)
    if len(shape) == spatial + 2 and shape[1] == c:
        return None  # the channels fit: the failure is about something else
    dims = {1: "L", 2: "H, W", 3: "D, H, W"}.get(spatial, "...")
    return ValueError(
        f"{type(model).__name__} expects input of shape (N, {c}, {dims}): its first layer "
        f"{name!r} is {conv!r}, which takes {c} channel{'s' if c != 1 else ''}. "
        f"Got shape {shape}.{_shape_hint(shape, spatial, c)}"
    )


def run_model(model: nn.Module, x: Any) -> Any:
    """``model(x)``, turning a shape or type failure into an error that names the cause."""
    try:
        return model(x)
    except (RuntimeError, TypeError, ValueError) as exc:
        better = explain_input(model, x)
        if better is not None:
            raise better from exc
        raise


def tensors_in(obj: Any, path: str = "") -> Iterator[tuple[str, Tensor]]:
    """``(path, tensor)`` for every tensor in nested tuples, lists and dicts (path ``"[1][0]"``)."""
    if isinstance(obj, Tensor):
        yield path, obj
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from tensors_in(v, f"{path}[{i}]")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from tensors_in(v, f"{path}[{k!r}]")


# --------------------------------------------------------------------------- batching

def _is_array(x: Any) -> bool:
    return isinstance(x, (Tensor, np.ndarray))


def tensor_pair(data: Any, who: str = "data", *, classes: bool = False) -> tuple[Any, Any]:
    """Check an ``(images, labels)`` pair: as many labels as images (``labels`` may be None).

    ``classes=True`` also asks for integer class indices, one per image.
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(
            f"{who} expects data as (images, labels), got a {type(data).__name__} of "
            f"{len(data) if hasattr(data, '__len__') else '?'} items."
        )
    images, labels = data
    if not _is_array(images) or not (labels is None or _is_array(labels)):
        raise TypeError(
            f"{who} expects (images, labels) as two tensors, got ({type(images).__name__}, "
            f"{type(labels).__name__}). Convert with torch.as_tensor()."
        )
    if len(images) == 0:
        raise ValueError(f"{who}: the data is empty (0 images).")
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise ValueError(
            f"{who}: labels should be one per image, shape ({len(images)},); got shape "
            f"{tuple(labels.shape)} for {len(images)} images."
        )
    kind = None if labels is None else torch.as_tensor(labels[:1]).dtype
    if classes and (kind is None or kind.is_floating_point or kind == torch.bool):
        raise TypeError(f"{who}: labels should be integer class indices, got {kind or 'none'}. "
                        "Convert with labels.long().")
    return images, labels


def _split(batch: Any, who: str) -> tuple[Any, Any]:
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise ValueError(f"{who}: the data gave an empty batch.")
        return batch[0], (batch[1] if len(batch) > 1 else None)
    if isinstance(batch, Mapping):
        raise TypeError(f"{who}: batches given as dicts are not supported: pass (images, labels) "
                        "tuples, a tensor, a Dataset or a DataLoader that yields (images, labels).")
    return batch, None


def _loader_batches(loader: Any, who: str) -> Iterator[tuple[Any, Any]]:
    it = iter(loader)
    while True:
        try:
            batch = next(it)
        except StopIteration:
            return
        except TypeError as exc:
            if "collate" not in str(exc):
                raise
            raise TypeError(
                f"{who}: the DataLoader cannot stack the dataset's items into a batch ({exc}). "
                "Most often the dataset returns PIL images: give it a transform such as "
                "torchvision.transforms.ToTensor() followed by the model's normalisation."
            ) from exc
        yield _split(batch, who)


def batches(data: Any, batch_size: int, *, shuffle: bool = False,
            generator: torch.Generator | None = None,
            who: str = "data") -> Iterator[tuple[Any, Any]]:
    """``(images, labels_or_None)`` batches from a tensor, an ``(images, labels)`` pair,
    a Dataset or a DataLoader (whose own batch size and order are used)."""
    from torch.utils.data import DataLoader, Dataset

    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if _is_array(data) or (isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0])):
        images, labels = (data, None) if _is_array(data) else tensor_pair(data, who)
        order = torch.randperm(len(images), generator=generator) if shuffle else None
        for i in range(0, len(images), batch_size):
            idx = slice(i, i + batch_size) if order is None else order[i:i + batch_size]
            yield images[idx], (labels[idx] if labels is not None else None)
        return
    if isinstance(data, DataLoader):
        yield from _loader_batches(data, who)
    elif isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                       and not isinstance(data, (str, bytes, Mapping))):
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
        yield from _loader_batches(loader, who)
    else:
        raise TypeError(f"{who} takes a tensor of images, an (images, labels) tuple, a Dataset "
                        f"or a DataLoader; got {type(data).__name__}.")


# --------------------------------------------------------------------------- state

@contextlib.contextmanager
def inference_mode(model: nn.Module, *, requires_grad: bool | None = None) -> Iterator[nn.Module]:
    """Eval mode for the block (and every parameter's ``requires_grad`` set, if given);
    each module's ``training`` flag and each parameter's ``requires_grad`` restored after."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        if requires_grad is not None:
            for p, _ in flags:
                p.requires_grad_(requires_grad)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def to_numpy(x: Any, what: str = "x") -> np.ndarray:
    """A tensor (any device, with or without grad) or array-like -> float32 numpy array."""
    if isinstance(x, Tensor):
        return x.detach().cpu().float().numpy()
    if isinstance(x, Mapping):
        keys = list(x)[:6]
        raise TypeError(f"{what} is a dict-like object with keys {keys}; pick one entry, e.g. "
                        f"{what}[{keys[0]!r}]" if keys else f"{what} is an empty dict-like object")
    try:
        return np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must be a tensor or an array of numbers, got "
                        f"{type(x).__name__}.") from exc
