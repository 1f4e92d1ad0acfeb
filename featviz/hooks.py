"""Capture what any layer of any model computes: ``capture``, ``activations``, ``layers``.

The heart of featviz. A layer is named by its dotted name in
``model.named_modules()`` (``"conv1"``, ``"layer1.0.conv2"``); ``featviz.layers(model)``
prints them all with their types and output shapes.

>>> with featviz.capture(model, ["conv1", "conv2"]) as acts:
...     logits = model(images)                    # images: (N, 1, 28, 28)
>>> acts["conv1"].shape                           # (N, 16, 24, 24), detached, on the CPU
>>> acts = featviz.activations(model, images, "conv*")   # the same in one call

What a captured value is, exactly:

* **Its own copy.** Nothing that runs later can change a captured value: an
  in-place operation (``nn.ReLU(inplace=True)``, ``out += identity``) or an edit of
  the model's output leaves ``acts["conv1"]`` holding the conv's own output. By
  default it is detached and on the CPU, ready for ``.numpy()``; ``to_cpu=False``
  keeps it on the model's device, ``dtype=torch.float16`` and ``channels=[...]``
  make it smaller.
* **Nearly free.** An output is copied only when something could change it: just
  before an operation writes into its memory, or when the pass ends and its
  memory is still held elsewhere (the returned tensor, tensors kept for
  backward). Intermediates that would be freed anyway are kept as they are, so
  under ``torch.no_grad()`` capturing costs about nothing (``COPY_ON_WRITE``;
  set it to ``False`` to copy every output at once: same values, more time).
* **Every call.** A module used more than once in one forward pass (one ``nn.ReLU``
  shared by two stages) keeps every call: ``acts["relu"]`` is its first call in
  each pass, ``acts["relu#1"]`` its second, ``acts["relu#2"]`` its third, and so on.
* **Every pass.** Several forward passes of the model inside one block are
  concatenated along the batch dimension: two passes of 8 images give
  ``acts["conv1"].shape[0] == 16``, in the order the passes ran. ``acts.passes``
  counts them.
* **Tuples too.** A layer that returns a tuple, list or dict of tensors (an LSTM,
  an attention block) is recorded element by element: ``acts["lstm[0]"]``,
  ``acts["lstm[1][0]"]``. Non-tensor elements are skipped.
* **No leftovers.** Every hook is removed when the block ends, also when it ends
  with an exception.
* **Gradients on request.** With ``grad=True`` the gradient of whatever is
  back-propagated with respect to each captured output is kept in
  ``acts.grads[name]`` (same shape, same copy rules); it is the gradient with
  respect to the layer's true output even when an in-place ReLU follows it.
"""
from __future__ import annotations

import difflib
import fnmatch
import html
import re
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Union

import torch
from torch import Tensor, nn

__all__ = [
    "Activations",
    "Capture",
    "Gradients",
    "LayerInfo",
    "LayerNotCaptured",
    "LayerTable",
    "activations",
    "batched_activations",
    "capture",
    "layers",
    "resolve_layers",
]

#: What ``layers=`` accepts: a name, a glob, an ``nn.Module`` type or instance, or a list of them.
LayerSpec = Union[None, str, type, nn.Module, Iterable[Any]]
#: What ``channels=`` accepts.
ChannelSpec = Union[None, int, slice, range, Iterable[int], Tensor]

try:  # copy-on-write needs a dispatch mode and storage reference counts
    from torch.utils._python_dispatch import TorchDispatchMode as _DispatchMode
    _use_count = torch._C._storage_Use_Count
except (ImportError, AttributeError):  # pragma: no cover - older or exotic builds
    _DispatchMode = None  # type: ignore[assignment,misc]
    _use_count = None

#: Copy captured outputs lazily (see :class:`_CopyOnWrite`). ``False`` copies every
#: output as the layer returns it: the same values, more time and memory traffic.
COPY_ON_WRITE = _DispatchMode is not None

_CPU = torch.device("cpu")
_GLOB_CHARS = re.compile(r"[*?\[]")
_INDEX = re.compile(r"\[(\d+)\]")
_MAX_LISTED = 80  # names listed in an error message before "... and N more"


# ----------------------------------------------------------------------------
# layer names
# ----------------------------------------------------------------------------

def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"expected a torch.nn.Module as the model, got {type(model).__name__}. "
            "Pass the network itself, e.g. featviz.pretrained() or torchvision.models.resnet18()."
        )


def _is_leaf(module: nn.Module) -> bool:
    return next(module.children(), None) is None


def _list_names(names: list[str]) -> str:
    if len(names) <= _MAX_LISTED:
        return ", ".join(names)
    return ", ".join(names[:_MAX_LISTED]) + f", ... and {len(names) - _MAX_LISTED} more"


def _closest(name: str, names: list[str]) -> str | None:
    """The valid name a learner most likely meant."""
    # a bare "conv2" given for a ResNet most likely means a block's "...conv2"
    last = name.rsplit(".", 1)[-1]
    same_tail = [n for n in names if n.rsplit(".", 1)[-1] == last]
    if same_tail:
        close = difflib.get_close_matches(name, same_tail, n=1, cutoff=0.6)
        return close[0] if close else same_tail[0]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
    return close[0] if close else None


def _unknown_name(model: nn.Module, name: str, names: list[str], *, pattern: bool = False) -> ValueError:
    guess = None if pattern else _closest(name, names)
    if pattern:
        msg = f"No layer of {type(model).__name__} matches the pattern {name!r}."
    else:
        msg = f"{type(model).__name__} has no layer named {name!r}."
    if guess is not None:
        msg += f" Did you mean {guess!r}?"
    msg += (
        f" Valid names: {_list_names(names)}. "
        "featviz.layers(model) shows them with their types and output shapes."
    )
    return ValueError(msg)


def _resolve_one(model: nn.Module, named: dict[str, nn.Module], names: list[str], item: Any) -> list[str]:
    if isinstance(item, str):
        spec = _INDEX.sub(r".\1", item.strip())  # "layer1[0].conv1" -> "layer1.0.conv1"
        if spec in named:
            return [spec]
        if _GLOB_CHARS.search(spec):
            found = [n for n in names if fnmatch.fnmatchcase(n, spec)]
            if not found:
                raise _unknown_name(model, item, names, pattern=True)
            return found
        if spec.startswith("model.") and spec[6:] in named:  # written as an attribute path
            return [spec[6:]]
        raise _unknown_name(model, item, names)
    if isinstance(item, type) and issubclass(item, nn.Module):
        found = [n for n in names if isinstance(named[n], item)]
        if not found:
            present = sorted({type(m).__name__ for n, m in named.items() if n})
            raise ValueError(
                f"{type(model).__name__} has no layer of type {item.__name__}. "
                f"Its layer types are: {', '.join(present)}."
            )
        return found
    if isinstance(item, nn.Module):
        for n, m in named.items():
            if m is item:
                return [n]
        raise ValueError(
            f"the {type(item).__name__} module given in layers= is not part of "
            f"{type(model).__name__}. Pass a module of this model, or its name "
            f"(see featviz.layers(model))."
        )
    raise TypeError(
        f"layers= takes layer names (str), glob patterns such as 'layer*.conv2', "
        f"nn.Module types such as nn.Conv2d, or modules of the model; got "
        f"{type(item).__name__}: {item!r}"
    )


def resolve_layers(model: nn.Module, spec: LayerSpec = None) -> list[str]:
    """Turn a layer specification into a list of dotted layer names.

    Parameters
    ----------
    model : the network.
    spec : ``None`` for every leaf module (a module without children); a name
        (``"conv1"``, ``"layer1.0.conv2"``, also ``"layer1[0].conv2"``); a glob
        (``"layer*.conv2"``, ``"conv*"``); an ``nn.Module`` type (``nn.Conv2d``: every
        layer of that type); a module of the model; or a list mixing these.

    Returns
    -------
    list of str : names in the order asked for (a glob or a type expands in model
        order), without duplicates. The name ``""`` is the model itself.

    Raises
    ------
    ValueError : an unknown name (with the valid names and the closest one), a
        pattern or type that matches nothing, or an empty list.

    >>> resolve_layers(featviz.SimpleCNN(), ["conv*", nn.ReLU])
    ['conv1', 'conv2', 'relu1', 'relu2', 'relu3', 'relu4']
    """
    _check_model(model)
    named = dict(model.named_modules())
    names = [n for n in named if n]
    if spec is None:
        leaves = [n for n in names if _is_leaf(named[n])]
        return leaves or [""]
    if isinstance(spec, (str, type, nn.Module)):
        items: list[Any] = [spec]
    elif isinstance(spec, Iterable):
        items = list(spec)
    else:
        items = [spec]
    if not items:
        raise ValueError(
            "layers= is an empty list, so there is nothing to capture. Name the layers "
            f"to record, e.g. [{', '.join(repr(n) for n in names[:2])}], a type such as "
            "nn.Conv2d, or leave layers=None for every leaf layer."
        )
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        for name in _resolve_one(model, named, names, item):
            if name not in seen:
                seen.add(name)
                out.append(name)
    return out


# ----------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------

def _model_tensor(model: nn.Module) -> Tensor | None:
    for t in model.parameters():
        return t
    for t in model.buffers():
        return t
    return None


def _first_conv(model: nn.Module) -> tuple[str, nn.modules.conv._ConvNd] | tuple[None, None]:
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return name, module
    return None, None


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.")


def _pil_message(x: Any) -> str:
    return (
        f"got a PIL image ({getattr(x, 'mode', '?')} mode, size {getattr(x, 'size', '?')}); "
        "models take a float tensor of shape (N, C, H, W), scaled the way the model was "
        "trained. Convert it with torchvision: "
        "x = torchvision.transforms.functional.to_tensor(img).unsqueeze(0), then normalise "
        "(for the course's MNIST models: x = featviz.normalize(x))."
    )


def _integer_message(what: str, dtype: Any) -> str:
    return (
        f"got {what} of integer type {dtype}; models take float tensors scaled the way the "
        "model was trained. For 0-255 pixels: x = torch.as_tensor(x).float() / 255, then "
        "normalise (for the course's MNIST models: x = featviz.normalize(x))."
    )


def as_input(model: nn.Module, x: Any) -> Tensor:
    """``x`` as a tensor the model can take: on the model's device, in its dtype.

    Accepts a tensor, a floating-point numpy array, or a list of same-shaped
    tensors (stacked into a batch). Integer pixels and PIL images raise a
    ``TypeError`` that says how to convert them, because only the caller knows
    how the model's inputs were normalised.
    """
    if isinstance(x, Tensor):
        t = x
    elif type(x).__module__ == "numpy" and hasattr(x, "dtype"):
        import numpy as np

        arr = np.asarray(x)
        if arr.dtype.kind not in "f":
            raise TypeError(_integer_message("a numpy array", arr.dtype))
        t = torch.from_numpy(np.ascontiguousarray(arr))
    elif _is_pil(x):
        raise TypeError(_pil_message(x))
    elif isinstance(x, (list, tuple)) and x and all(isinstance(v, Tensor) for v in x):
        shapes = {tuple(v.shape) for v in x}
        if len(shapes) != 1:
            raise ValueError(
                f"got a list of {len(x)} tensors with different shapes {sorted(shapes)}; "
                "a batch needs images of one shape."
            )
        t = torch.stack(list(x))
    elif isinstance(x, (list, tuple)) and x and _is_pil(x[0]):
        raise TypeError(_pil_message(x[0]) + " Stack several with torch.stack([...]).")
    else:
        raise TypeError(
            f"expected the input as a torch.Tensor of shape (N, C, H, W), got "
            f"{type(x).__name__}. Convert with torch.as_tensor(x, dtype=torch.float32)."
        )
    if not (t.is_floating_point() or t.is_complex()):
        raise TypeError(_integer_message("a tensor", t.dtype))
    ref = _model_tensor(model)
    if ref is not None and (t.device != ref.device or (ref.is_floating_point() and t.dtype != ref.dtype)):
        t = t.to(device=ref.device, dtype=ref.dtype if ref.is_floating_point() else t.dtype)
    return t


def _diagnose_input(model: nn.Module, x: Any) -> Exception | None:
    """After a failed forward pass: an error that explains it by the input, or None."""
    if _is_pil(x):
        return TypeError(_pil_message(x))
    if type(x).__module__ == "numpy" and hasattr(x, "dtype"):
        return TypeError(
            f"got a numpy array of shape {tuple(x.shape)} where the model takes a tensor. "
            "Convert it with torch.as_tensor(x, dtype=torch.float32), or use "
            "featviz.activations(model, x, ...), which converts float arrays itself."
        )
    if not isinstance(x, Tensor):
        return None
    if not (x.is_floating_point() or x.is_complex()):
        return TypeError(_integer_message("a tensor", x.dtype))
    name, conv = _first_conv(model)
    if conv is None:
        return None
    spatial = len(conv.kernel_size)
    c = conv.in_channels
    dims = {1: "L", 2: "H, W", 3: "D, H, W"}.get(spatial, "...")
    expected = f"(N, {c}, {dims})"
    shape = tuple(x.shape)
    if len(shape) == spatial + 2 and shape[1] == c:
        return None  # the channels fit: the failure is about something else
    hint = ""
    if len(shape) == spatial + 1 and shape[0] == c:
        hint = " This looks like a single image: add a batch dimension with x.unsqueeze(0)."
    elif len(shape) == spatial + 1 and c == 1:
        hint = " This looks like a batch without its channel dimension: use x.unsqueeze(1)."
    elif len(shape) == spatial + 2 and shape[-1] == c:
        hint = " The channels seem to be last: use x.permute(0, 3, 1, 2)."
    elif len(shape) == spatial + 2 and c == 1 and shape[1] == 3:
        hint = " This is a colour image for a grey-scale model: use x.mean(1, keepdim=True)."
    elif len(shape) == spatial + 2 and c == 3 and shape[1] == 1:
        hint = " This is a grey-scale image for a colour model: use x.expand(-1, 3, -1, -1)."
    return ValueError(
        f"{type(model).__name__} expects input of shape {expected}: its first layer "
        f"{name!r} is {conv!r}, which takes {c} channel{'s' if c != 1 else ''}. "
        f"Got shape {shape}.{hint}"
    )


def _run(model: nn.Module, x: Any) -> Any:
    """``model(x)``, turning a shape or type failure into an error that names the cause."""
    try:
        return model(x)
    except (RuntimeError, TypeError, ValueError) as exc:
        better = _diagnose_input(model, x)
        if better is not None:
            raise better from exc
        raise


# ----------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------

class LayerNotCaptured(KeyError):
    """A name that is not in an :class:`Activations` (the message says why)."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


def _cat(key: str, parts: list[Tensor]) -> Tensor:
    if parts[0].dim() == 0:
        return torch.stack(parts)
    try:
        return torch.cat(parts, dim=0)
    except RuntimeError as exc:
        shapes = [tuple(p.shape) for p in parts]
        raise ValueError(
            f"{key!r} was recorded in {len(parts)} forward passes whose outputs do not "
            f"stack along the batch dimension (shapes {shapes}); capture each pass in its "
            "own block, or use featviz.activations() once per input."
        ) from exc


class Activations(Mapping):
    """What :func:`capture` recorded: ``{name: tensor}``, usually ``(N, C, H, W)``.

    A read-only mapping, in model order (a layer's later calls, ``"relu#1"``, come
    right after its first). Attributes: ``layers`` (the names asked for), ``passes``
    (forward passes of the model seen), ``grads`` (a :class:`Gradients`, filled by
    a backward pass when capturing with ``grad=True``), ``output`` (what the model
    returned, when filled by :func:`activations`).
    """

    def __init__(self, layers: list[str]) -> None:
        self.layers: list[str] = list(layers)
        self.passes: int = 0
        self.output: Any = None
        self._rank = {n: i for i, n in enumerate(self.layers)}
        self._chunks: dict[str, list[Tensor]] = {}
        self._order: dict[str, tuple[int, int, int]] = {}
        self._count: dict[str, int] = {}
        self._pending: _Pending = {}  # outputs not yet copied, while a pass runs
        self.grads = Gradients(self)

    def __getitem__(self, key: str) -> Tensor:
        parts = self._chunks.get(key)
        if parts is None:
            raise LayerNotCaptured(self._why_missing(key))
        if self._pending:  # read in the middle of a pass: copy now, to be safe
            for entries in self._pending.values():
                _materialize(entries)
            self._pending.clear()
        if len(parts) > 1:
            parts[:] = [_cat(key, parts)]
        return parts[0]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._chunks, key=self._order.__getitem__))

    def __len__(self) -> int:
        return len(self._chunks)

    def __contains__(self, key: object) -> bool:
        return key in self._chunks

    def _why_missing(self, key: str) -> str:
        if self.passes == 0 and not self._chunks:
            return (
                f"nothing was captured for {key!r}: no forward pass ran. Call the model "
                "inside the block: with featviz.capture(model, ...) as acts: model(x)"
            )
        if key in self._rank:
            return (
                f"layer {key!r} was hooked but did not run in the forward pass "
                f"({self.passes} pass{'es' if self.passes != 1 else ''}); the model's "
                "forward() never calls it for this input."
            )
        base = key.split("#", 1)[0].split("[", 1)[0]
        if base in self._rank:
            calls = [k for k in self._chunks if k.split("#", 1)[0].split("[", 1)[0] == base]
            return f"{key!r} was not recorded; for layer {base!r} there is: {', '.join(calls)}."
        return (
            f"{key!r} was not captured. Captured: {', '.join(self) or 'nothing'}. "
            "Name the layer in layers= to record it (featviz.layers(model) lists the names)."
        )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """``{name: shape}`` for everything captured."""
        return {k: tuple(self[k].shape) for k in self}

    def __repr__(self) -> str:
        passes = f"{self.passes} forward pass{'es' if self.passes != 1 else ''}"
        head = f"Activations({len(self)} tensors from {passes})"
        if not self._chunks:
            return head
        width = max(len(k) for k in self)
        lines = [
            f"  {k:<{width}}  {tuple(v.shape)}  {str(v.dtype).replace('torch.', '')}  {v.device}"
            for k, v in self.items()
        ]
        return head + ":\n" + "\n".join(lines)


class Gradients(Mapping):
    """Gradients w.r.t. the captured outputs, ``{name: tensor}`` shaped like the activations.

    Filled during ``loss.backward()`` (inside the block or after it) when the
    capture ran with ``grad=True`` and gradients were enabled. A second backward
    through the same graph replaces the values (they are not summed).
    """

    def __init__(self, acts: Activations) -> None:
        # a weak reference: a strong one would make a cycle with acts.grads, and the
        # captured tensors of every batch would wait for the cycle collector
        self._acts_ref = weakref.ref(acts)
        self._slots: dict[str, dict[int, Tensor]] = {}
        self._watched: dict[str, int] = {}

    def __getitem__(self, key: str) -> Tensor:
        slots = self._slots.get(key)
        if not slots:
            raise LayerNotCaptured(self._why_missing(key))
        expected = self._watched[key]
        if len(slots) < expected:
            raise ValueError(
                f"the backward pass reached {key!r} in only {len(slots)} of the {expected} "
                "forward passes recorded; back-propagate a loss that depends on every pass, "
                "or capture one pass per block."
            )
        if len(slots) > 1:
            merged = _cat(key, [slots[i] for i in sorted(slots)])
            slots.clear()
            slots[0] = merged
            self._watched[key] = 1
        return next(iter(slots.values()))

    @property
    def _acts(self) -> Activations:
        acts = self._acts_ref()
        if acts is None:
            raise ReferenceError("these gradients belong to activations that no longer exist")
        return acts

    def __iter__(self) -> Iterator[str]:
        return iter([k for k in self._acts if self._slots.get(k)])

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _why_missing(self, key: str) -> str:
        if key not in self._acts:
            return self._acts._why_missing(key)
        if key not in self._watched:
            return (
                f"no gradient for {key!r}: the forward pass did not build a graph through it. "
                "Capture with grad=True, outside torch.no_grad(), with an input or weights "
                "that require grad."
            )
        return (
            f"no gradient for {key!r} yet: call backward on something computed from the "
            "model's output (e.g. logits[0, label].backward())."
        )

    def __repr__(self) -> str:
        return f"Gradients({', '.join(self) or 'none yet'})"


# ----------------------------------------------------------------------------
# copying
# ----------------------------------------------------------------------------

def _normalize_channels(channels: ChannelSpec) -> slice | Tensor | None:
    if channels is None:
        return None
    if isinstance(channels, bool):
        raise TypeError("channels= takes channel indices, not a bool")
    if isinstance(channels, int):
        return slice(channels, channels + 1) if channels >= 0 else torch.tensor([channels])
    if isinstance(channels, range) and channels.step > 0:
        return slice(channels.start, channels.stop, channels.step)
    if isinstance(channels, slice):
        return channels
    idx = torch.as_tensor(list(channels) if not isinstance(channels, Tensor) else channels)
    if idx.dim() != 1 or idx.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(
            f"channels= takes an int, a slice/range, or a list of channel indices; got {channels!r}"
        )
    if idx.numel() == 0:
        raise ValueError("channels= is empty; give at least one channel index, or None for all")
    return idx.long()


def _make_copy(*, detach: bool, to_cpu: bool, dtype: torch.dtype | None,
               channels: slice | Tensor | None) -> Callable[[str, Tensor], Tensor]:
    """A function ``(name, tensor) -> private copy`` with the options baked in."""
    if channels is None and dtype is None and detach:
        if to_cpu:
            def copy(name: str, t: Tensor) -> Tensor:
                t = t.detach()
                # a transfer is already a fresh tensor; on the CPU a clone is needed
                return t.clone() if t.device.type == "cpu" else t.to(_CPU)
        else:
            def copy(name: str, t: Tensor) -> Tensor:
                return t.detach().clone()
        return copy

    index_cache: dict[torch.device, Tensor] = {}

    def select(name: str, t: Tensor) -> tuple[Tensor, bool]:
        if t.dim() < 3:  # (N, features) vectors are kept whole
            return t, False
        n = t.shape[1]
        if isinstance(channels, slice):
            start, stop = channels.start or 0, channels.stop
            if start >= n or (stop is not None and stop > n):
                raise ValueError(
                    f"channels={channels} asks for channels up to "
                    f"{max(start, (stop or 0) - 1)} but layer {name!r} has {n} "
                    f"(indices 0..{n - 1})."
                )
            if len(range(n)[channels]) == n:
                return t, False
            return t[:, channels], False
        idx = index_cache.get(t.device)
        if idx is None:
            idx = index_cache[t.device] = channels.to(t.device)
        if idx.numel() and (int(idx.max()) >= n or int(idx.min()) < -n):
            raise ValueError(
                f"channels={channels.tolist()} asks for channel {int(idx.max())} but layer "
                f"{name!r} has {n} (indices 0..{n - 1})."
            )
        return t.index_select(1, idx % n), True

    def copy(name: str, t: Tensor) -> Tensor:
        if detach:
            t = t.detach()
        fresh = False
        if channels is not None:
            t, fresh = select(name, t)
        device = _CPU if to_cpu else t.device
        return t.to(device=device, dtype=dtype or t.dtype, copy=not fresh)

    return copy


# what a lazily-copied output waits for: [list that holds it, index there, the alias]
_Pending = dict  # storage data_ptr -> list[list[Any]]


def _materialize(entries: list[list[Any]]) -> None:
    for parts, index, alias in entries:
        parts[index] = alias.clone()


def _written(func: Any) -> tuple[tuple[int, str], ...]:
    """(position, name) of the arguments an ATen op writes into."""
    schema = getattr(func, "_schema", None)
    if schema is None:  # a higher-order op: the ops it runs come through one by one
        return ()
    return tuple(
        (i, a.name) for i, a in enumerate(schema.arguments)
        if a.alias_info is not None and a.alias_info.is_write
    )


if _DispatchMode is not None:
    class _CopyOnWrite(_DispatchMode):
        """Active while the model runs: copies a captured output just before an op writes into it.

        A layer's output is recorded as an alias (no copy). Every ATen op passes
        through here; one that writes into memory a pending alias shares (an
        in-place ReLU, ``out += identity``, an ``out=`` argument) first replaces
        the alias with a copy. When the pass ends, aliases whose memory is still
        held elsewhere (the model's returned tensor, tensors saved for backward)
        are copied too; the rest - usually all of them, under ``no_grad`` - are
        intermediates nobody else can reach, so they are kept without a copy.
        """

        _writes: dict[Any, tuple[tuple[int, str], ...]] = {}
        supports_higher_order_operators = True

        @classmethod
        def _should_skip_dynamo(cls) -> bool:
            return False  # nothing to compile here; avoids importing dynamo per op

        def __init__(self) -> None:
            super().__init__()
            self.watchers: list[_Pending] = []  # one per capture whose pass is running

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Any = None) -> Any:
            kwargs = kwargs or {}
            writes = self._writes.get(func)
            if writes is None:
                writes = self._writes[func] = _written(func)
            if writes:
                for pending in self.watchers:
                    if not pending:
                        continue
                    for pos, name in writes:
                        value = args[pos] if pos < len(args) else kwargs.get(name)
                        for t in (value if isinstance(value, (list, tuple)) else (value,)):
                            if isinstance(t, Tensor):
                                entries = pending.pop(t.untyped_storage().data_ptr(), None)
                                if entries:
                                    _materialize(entries)
            return func(*args, **kwargs)


# one mode per thread, shared by every capture whose pass is running (captures can nest)
_local = threading.local()


def _watch_writes(pending: _Pending) -> None:
    mode = getattr(_local, "mode", None)
    if mode is None:
        mode = _CopyOnWrite()
        mode.__enter__()
        _local.mode = mode
    mode.watchers.append(pending)


def _unwatch_writes(pending: _Pending) -> None:
    mode = _local.mode
    for i, watched in enumerate(mode.watchers):
        if watched is pending:  # by identity: two empty dicts compare equal
            del mode.watchers[i]
            break
    if not mode.watchers:
        _local.mode = None
        mode.__exit__(None, None, None)


def _runs_on_cpu(model: nn.Module, args: tuple) -> bool:
    for a in args:
        if isinstance(a, Tensor):
            return a.device.type == "cpu"
    ref = _model_tensor(model)
    return ref is None or ref.device.type == "cpu"


def _holders(t: Tensor) -> int:
    """How many references the memory of ``t`` has (tensors and views sharing it, ...)."""
    storage = t.untyped_storage()  # held, so the count is read while it is alive
    return _use_count(storage._cdata)


if _DispatchMode is not None:
    # what the count reads for memory held by one tensor (the query's wrapper adds one)
    _ONE_HOLDER = _holders(torch.empty(1))


def _settle(pending: _Pending) -> None:
    """End of a pass: copy the aliases whose memory anyone but featviz still holds."""
    for entries in pending.values():
        if _holders(entries[0][2]) - _ONE_HOLDER + 1 > len(entries):
            _materialize(entries)
    pending.clear()


def _flatten(obj: Any, path: str = "") -> Iterator[tuple[str, Tensor]]:
    if isinstance(obj, Tensor):
        yield path, obj
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from _flatten(v, f"{path}[{i}]")
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _flatten(v, f"{path}[{k!r}]")


# ----------------------------------------------------------------------------
# capture
# ----------------------------------------------------------------------------

def _as_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype):
        return getattr(torch, dtype)
    raise TypeError(f"dtype= takes a torch dtype such as torch.float16, got {dtype!r}")


class Capture:
    """The context manager returned by :func:`capture`; ``__enter__`` gives the :class:`Activations`.

    Each ``with`` block starts a fresh :class:`Activations`, so a capture built once
    (layer names resolved once) can serve many blocks. Outside a ``with`` block:
    ``acts = cap.start(); ...; cap.stop()``. Hooks are live between the two only.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: LayerSpec = None,
        *,
        to_cpu: bool = True,
        detach: bool = True,
        channels: ChannelSpec = None,
        dtype: torch.dtype | None = None,
        grad: bool = False,
    ) -> None:
        _check_model(model)
        self.model = model
        self.names = resolve_layers(model, layers)
        self.grad = bool(grad)
        dtype = _as_dtype(dtype)
        channels = _normalize_channels(channels)
        self._copy = _make_copy(detach=bool(detach), to_cpu=bool(to_cpu), dtype=dtype,
                                channels=channels)
        self._to_cpu = bool(to_cpu)
        # outputs kept as they are can be copied lazily; converted ones are new tensors anyway
        self._lazy = bool(COPY_ON_WRITE and detach and dtype is None and channels is None)
        self._pending: _Pending = {}
        self._watching = False  # outputs are being kept lazily in this pass
        self.acts = Activations(self.names)
        self.acts._pending = self._pending
        self._handles: list[Any] = []
        self._depth = 0  # > 0 while the model's own forward() runs
        self._pass = 0
        self._last_input: Any = None

    # -- hooks ---------------------------------------------------------------
    def _root_pre(self, module: nn.Module, args: tuple) -> None:
        self._depth += 1
        if self._depth == 1:
            self._pass += 1
            self.acts.passes += 1
            self._last_input = args[0] if args else None
            # on the CPU a copy costs more than watching for writes; on a GPU a copy is one
            # cheap kernel while watching costs Python time on every op, so copy there
            if self._lazy and _runs_on_cpu(module, args):
                _watch_writes(self._pending)
                self._watching = True

    def _root_post(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._end_pass()

    def _end_pass(self) -> None:
        if self._watching:
            self._watching = False
            _unwatch_writes(self._pending)
        _settle(self._pending)

    def _watch(self, key: str, slot: int, output: Tensor) -> None:
        grads = self.acts.grads
        grads._watched[key] = grads._watched.get(key, 0) + 1
        slots = grads._slots
        copy = self._copy

        def keep(g: Tensor) -> None:
            slots.setdefault(key, {})[slot] = copy(key, g)

        # a tensor hook registered before an in-place op sees the gradient w.r.t. the
        # value before that op, i.e. the layer's own output
        output.register_hook(keep)

    def _make_hook(self, name: str, rank: int) -> Callable[..., None]:
        acts = self.acts
        chunks, order, count = acts._chunks, acts._order, acts._count
        copy = self._copy
        grad = self.grad
        pending = self._pending
        to_cpu = self._to_cpu
        state = [0, 0]  # pass number of the last call, calls seen in that pass
        cap = self

        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            if cap._depth:
                if state[0] == cap._pass:
                    state[1] += 1
                else:
                    state[0] = cap._pass
                    state[1] = 0
                call = state[1]
            else:  # a layer called on its own, outside the model: each call is a pass
                call = 0
            key = name if call == 0 else f"{name}#{call}"
            if isinstance(output, Tensor):
                items: Iterable[tuple[str, Tensor]] = (("", output),)
            elif isinstance(output, (tuple, list, Mapping)):
                items = list(_flatten(output))
            else:
                raise TypeError(
                    f"layer {name!r} ({type(module).__name__}) returned a "
                    f"{type(output).__name__}; featviz captures tensors and tuples, lists or "
                    "dicts of tensors. Capture one of its submodules instead "
                    "(featviz.layers(model) lists them)."
                )
            for seq, (path, t) in enumerate(items):
                k = key + path if path else key
                lazy = cap._watching and (not to_cpu or t.device.type == "cpu")
                c = t.detach() if lazy else copy(name, t)
                parts = chunks.get(k)
                if parts is None:
                    parts = chunks[k] = [c]
                    order[k] = (rank, call, seq)
                    count[k] = 1
                else:
                    parts.append(c)
                    count[k] += 1
                if lazy:
                    ptr = c.untyped_storage().data_ptr()
                    entry = [parts, len(parts) - 1, c]
                    waiting = pending.get(ptr)
                    if waiting is None:
                        pending[ptr] = [entry]
                    else:
                        waiting.append(entry)
                if grad and t.requires_grad:
                    cap._watch(k, count[k] - 1, t)

        return hook

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Activations:
        """Register the hooks and return the (live) :class:`Activations`."""
        if self._handles:
            raise RuntimeError("this capture is already active; use it in one `with` block at a time")
        # each block starts empty, so one Capture can be built once and used in many blocks
        self._pending = {}
        self.acts = Activations(self.names)
        self.acts._pending = self._pending
        self._pass = 0
        named = dict(self.model.named_modules())
        try:
            for rank, name in enumerate(self.names):
                self._handles.append(named[name].register_forward_hook(self._make_hook(name, rank)))
            # registered after the layer hooks, so a hook on the model itself still sees the pass
            self._handles.append(self.model.register_forward_pre_hook(self._root_pre))
            self._handles.append(
                self.model.register_forward_hook(self._root_post, always_call=True)
            )
        except BaseException:
            self.stop()
            raise
        return self.acts

    def stop(self) -> None:
        """Remove every hook (safe to call twice)."""
        handles, self._handles = self._handles, []
        for handle in handles:
            handle.remove()
        if self._watching or self._pending:
            self._end_pass()
        self._depth = 0
        self._last_input = None

    def __enter__(self) -> Activations:
        return self.start()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        last_input = self._last_input
        self.stop()
        if isinstance(exc, (RuntimeError, TypeError, ValueError)) and last_input is not None:
            better = _diagnose_input(self.model, last_input)
            if better is not None:
                raise better from exc
        return False

    def __repr__(self) -> str:
        state = "active" if self._handles else "inactive"
        return f"Capture({type(self.model).__name__}, {len(self.names)} layers, {state})"


def capture(
    model: nn.Module,
    layers: LayerSpec = None,
    *,
    to_cpu: bool = True,
    detach: bool = True,
    channels: ChannelSpec = None,
    dtype: torch.dtype | None = None,
    grad: bool = False,
) -> Capture:
    """Record the outputs of some layers during the forward passes inside a ``with`` block.

    Parameters
    ----------
    model : any ``nn.Module``, in train or eval mode, on any device.
    layers : what to record (see :func:`resolve_layers`): names such as
        ``["conv1", "layer1.0.conv2"]``, a glob ``"layer*.conv*"``, a type
        ``nn.Conv2d``; default every leaf layer.
    to_cpu : move the copies to the CPU (default, ready for numpy); ``False``
        keeps them on the model's device.
    detach : record detached copies (default); ``False`` keeps them in the
        autograd graph.
    channels : keep only these channels (dimension 1) of outputs with 3 or more
        dimensions: an int, a slice/range, or a list of indices.
    dtype : store in this dtype, e.g. ``torch.float16`` to halve the memory.
    grad : also record gradients w.r.t. each captured output in ``acts.grads``
        when a backward pass runs (needs gradients enabled).

    Returns
    -------
    Capture : use it in ``with``; it yields an :class:`Activations` mapping
        ``{name: tensor (N, C, H, W)}``, filled as the model runs. Naming of
        repeated calls (``"relu#1"``) and several passes (concatenated along N):
        see the module docstring.

    >>> with featviz.capture(model, ["conv1", "conv2"]) as acts:
    ...     model(images)
    >>> acts["conv2"].shape
    torch.Size([10, 32, 8, 8])
    """
    return Capture(model, layers, to_cpu=to_cpu, detach=detach, channels=channels,
                   dtype=dtype, grad=grad)


def activations(
    model: nn.Module,
    x: Any,
    layers: LayerSpec = None,
    *,
    to_cpu: bool = True,
    detach: bool = True,
    channels: ChannelSpec = None,
    dtype: torch.dtype | None = None,
    grad: bool = False,
) -> Activations:
    """Run ``model(x)`` once and return the outputs of ``layers``.

    ``x`` is a tensor ``(N, C, H, W)`` (or a float numpy array, moved to the
    model's device and dtype). The model's mode (train/eval) is left as it is.
    Without ``grad``/``detach=False`` the pass runs under ``torch.no_grad()``.
    The model's return value is in ``acts.output``; with ``grad=True``,
    ``acts.output[...].backward()`` fills ``acts.grads``. Other options: see
    :func:`capture`.

    >>> acts = featviz.activations(model, images, ["conv1", "conv2"])
    >>> acts["conv1"].shape            # images: (10, 1, 28, 28)
    torch.Size([10, 16, 24, 24])
    """
    cap = Capture(model, layers, to_cpu=to_cpu, detach=detach, channels=channels,
                  dtype=dtype, grad=grad)
    x = as_input(model, x)
    mode = torch.enable_grad() if (grad or not detach) else torch.no_grad()
    with mode, cap as acts:
        acts.output = _run(model, x)
    return acts


def _batches(data: Any, batch_size: int) -> Iterator[tuple[Any, Any]]:
    from torch.utils.data import DataLoader, Dataset

    def split(batch: Any) -> tuple[Any, Any]:
        if isinstance(batch, (tuple, list)):
            if not batch:
                raise ValueError("the data gave an empty batch")
            return batch[0], (batch[1] if len(batch) > 1 else None)
        if isinstance(batch, Mapping):
            raise TypeError(
                "batches given as dicts are not supported: pass (images, labels) "
                "tuples, a tensor, a Dataset or a DataLoader that yields (images, labels)."
            )
        return batch, None

    if isinstance(data, Tensor) or type(data).__module__ == "numpy":
        for i in range(0, len(data), batch_size):
            yield data[i:i + batch_size], None
        return
    if (isinstance(data, tuple) and len(data) == 2
            and (isinstance(data[0], Tensor) or type(data[0]).__module__ == "numpy")):
        images, labels = data
        if labels is not None and len(labels) != len(images):
            raise ValueError(
                f"got {len(images)} images but {len(labels)} labels; pass (images, labels) of equal length."
            )
        for i in range(0, len(images), batch_size):
            yield images[i:i + batch_size], (labels[i:i + batch_size] if labels is not None else None)
        return
    if isinstance(data, DataLoader):
        for batch in data:
            yield split(batch)
        return
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            yield split(batch)
        return
    raise TypeError(
        f"data= takes a tensor of images, an (images, labels) tuple, a Dataset or a "
        f"DataLoader; got {type(data).__name__}."
    )


def batched_activations(
    model: nn.Module,
    data: Any,
    layers: LayerSpec = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    **options: Any,
) -> Iterator[tuple[Tensor, Tensor | None, Activations]]:
    """Stream over a dataset one batch at a time, so memory stays bounded.

    Parameters
    ----------
    data : images ``(N, C, H, W)``; an ``(images, labels)`` tuple; a ``Dataset``
        of ``(image, label)``; or a ``DataLoader`` (its own batch size is used).
    batch_size : images per forward pass (for tensors and Datasets).
    device : where the model is expected to run; default the model's own device.
        The model is not moved: move it first with ``model.to(device)``.
    options : passed to :func:`activations` (``to_cpu``, ``channels``, ``dtype``...).

    Yields
    ------
    (images, labels, acts) : the batch as given (labels ``None`` when there are
        none) and its :class:`Activations`.

    >>> for images, labels, acts in batched_activations(model, (x, y), ["conv2"]):
    ...     best = acts["conv2"].amax(dim=(2, 3))        # (B, 32) per batch
    """
    _check_model(model)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    names = resolve_layers(model, layers)
    ref = _model_tensor(model)
    if device is not None:
        want = torch.device(device)
        have = ref.device if ref is not None else _CPU
        if have.type != want.type or (want.index is not None and have.index != want.index):
            raise ValueError(
                f"device={str(want)!r} but the model is on {str(have)!r}; move the model "
                f"first with model.to({str(want)!r})."
            )
    for images, labels in _batches(data, batch_size):
        acts = activations(model, images, names, **options)
        yield images, labels, acts


# ----------------------------------------------------------------------------
# the layer table
# ----------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layers`: a module, its output shape (first call) and parameters."""

    name: str
    type: str
    shape: str
    params: int
    calls: int
    leaf: bool
    detail: str


class LayerTable:
    """The layers of a model; ``.names`` for the names, ``rows`` for :class:`LayerInfo`.

    Shown as an HTML table in Jupyter and as aligned text by ``print``.
    """

    def __init__(self, model_name: str, rows: list[LayerInfo], total: int, trainable: int,
                 input_shape: tuple[int, ...] | None, output_shape: str | None) -> None:
        self.model_name = model_name
        self.rows = rows
        self.total_params = total
        self.trainable_params = trainable
        self.input_shape = input_shape
        self.output_shape = output_shape

    @property
    def names(self) -> list[str]:
        """Every layer name, in model order (what ``layers=`` accepts)."""
        return [r.name for r in self.rows]

    @property
    def leaves(self) -> list[str]:
        """The names of the leaf layers (what ``capture`` records by default)."""
        return [r.name for r in self.rows if r.leaf]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> LayerInfo:
        if isinstance(key, str):
            for r in self.rows:
                if r.name == key:
                    return r
            raise KeyError(key)
        return self.rows[key]

    def _shape_text(self, r: LayerInfo) -> str:
        if r.calls > 1:
            return f"{r.shape}  (called {r.calls}x)"
        return r.shape

    def _footer(self) -> str:
        parts = [f"{self.total_params:,} parameters ({self.trainable_params:,} trainable)"]
        if self.input_shape is not None:
            parts.append(f"input {self.input_shape}")
            if self.output_shape:
                parts.append(f"output {self.output_shape}")
        else:
            parts.append("pass example_input= to see output shapes")
        return "; ".join(parts)

    def __str__(self) -> str:
        head = ("layer", "type", "output shape", "params")
        body = [
            (("  " * r.name.count(".")) + r.name, r.type, self._shape_text(r), f"{r.params:,}")
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(4)]

        def fmt(row: tuple[str, ...]) -> str:
            return (f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  "
                    f"{row[2]:<{widths[2]}}  {row[3]:>{widths[3]}}").rstrip()

        rule = "-" * len(fmt(tuple("x" * w for w in widths)))
        lines = [f"{self.model_name}", fmt(head), rule, *(fmt(b) for b in body), rule, self._footer()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        esc = html.escape
        cells = []
        for r in self.rows:
            indent = r.name.count(".") * 1.2
            style = "" if r.leaf else " style='color:#777'"
            cells.append(
                f"<tr{style}><td style='text-align:left;padding-left:{indent + 0.4:.1f}em'>"
                f"<code>{esc(r.name)}</code></td>"
                f"<td style='text-align:left' title='{esc(r.detail)}'>{esc(r.type)}</td>"
                f"<td style='text-align:left'>{esc(self._shape_text(r))}</td>"
                f"<td style='text-align:right'>{r.params:,}</td></tr>"
            )
        return (
            f"<div><b>{esc(self.model_name)}</b>"
            "<table><thead><tr><th style='text-align:left'>layer</th>"
            "<th style='text-align:left'>type</th><th style='text-align:left'>output shape</th>"
            "<th style='text-align:right'>params</th></tr></thead><tbody>"
            + "".join(cells)
            + f"</tbody></table><small>{esc(self._footer())}</small></div>"
        )


def _shape_of(output: Any) -> str:
    if isinstance(output, Tensor):
        return str(tuple(output.shape))
    shapes = [str(tuple(t.shape)) for _, t in _flatten(output)]
    if not shapes:
        return type(output).__name__
    return "[" + ", ".join(shapes) + "]"


def layers(model: nn.Module, example_input: Any = None) -> LayerTable:
    """A table of every layer: name, type, output shape and parameter count.

    Parameters
    ----------
    model : the network.
    example_input : a batch the model accepts, e.g. ``torch.zeros(1, 3, 224, 224)``,
        run once (in eval mode, without gradients, the model's mode restored
        after) to find each layer's output shape. Default: built from
        ``model.input_shape`` when the model has one (SimpleCNN does); otherwise
        the shapes are left out.

    Returns
    -------
    LayerTable : ``.names`` lists the names ``capture`` accepts; ``print(table)``
        or leave it last in a Jupyter cell to see it.

    >>> featviz.layers(featviz.SimpleCNN()).names[:3]
    ['conv1', 'relu1', 'pool1']
    """
    _check_model(model)
    named = [(n, m) for n, m in model.named_modules() if n]
    if example_input is None and getattr(model, "input_shape", None) is not None:
        example_input = torch.zeros(1, *tuple(model.input_shape))
    shapes: dict[str, str] = {}
    calls: dict[str, int] = {}
    input_shape = None
    output_shape = None
    if example_input is not None:
        x = as_input(model, example_input)
        input_shape = tuple(x.shape)
        handles = []

        def recorder(name: str) -> Callable[..., None]:
            def hook(module: nn.Module, args: tuple, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                if name not in shapes:
                    shapes[name] = _shape_of(output)
            return hook

        modes = {m: m.training for m in model.modules()}
        try:
            for n, m in named:
                handles.append(m.register_forward_hook(recorder(n)))
            model.eval()  # no batch-norm statistics updated, no dropout
            with torch.no_grad():
                output_shape = _shape_of(_run(model, x))
        finally:
            for h in handles:
                h.remove()
            for m, training in modes.items():
                m.training = training
    rows = []
    for n, m in named:
        detail = m.extra_repr()
        rows.append(LayerInfo(
            name=n,
            type=type(m).__name__,
            shape=shapes.get(n, "not called" if example_input is not None else ""),
            params=sum(p.numel() for p in m.parameters()),
            calls=calls.get(n, 0),
            leaf=_is_leaf(m),
            detail=detail,
        ))
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return LayerTable(type(model).__name__, rows, total, trainable, input_shape, output_shape)
