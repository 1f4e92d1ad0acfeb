"""What a capture returns: ``Activations`` and ``Gradients``, read-only ``{name: tensor}`` mappings."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import Tensor


class LayerNotCaptured(KeyError):
    """A name that is not in an :class:`Activations` (the message says why)."""

    def __str__(self) -> str:  # KeyError would print the message inside quotes
        return str(self.args[0]) if self.args else ""


class _Passes(Mapping):
    """``{key: {pass index: tensor}}``, concatenated along the batch dimension when read."""

    def __init__(self, order: dict[str, tuple[int, int, int]]) -> None:
        self._parts: dict[str, dict[int, Tensor]] = {}
        self._order = order  # key -> (rank in layers=, call, element): model order

    def __getitem__(self, key: str) -> Tensor:
        parts = self._parts.get(key)
        if not parts:
            raise LayerNotCaptured(self._why_missing(key))  # type: ignore[attr-defined]
        self._check(key, parts)
        if len(parts) > 1:
            ordered = [parts[i] for i in sorted(parts)]
            try:
                merged = torch.stack(ordered) if ordered[0].dim() == 0 else torch.cat(ordered)
            except RuntimeError as exc:
                raise ValueError(
                    f"{key!r} was recorded in {len(parts)} forward passes whose outputs do not stack along "
                    f"the batch dimension (shapes {[tuple(p.shape) for p in ordered]}); capture each pass "
                    "in its own block, or call featviz.activations() per input.") from exc
            parts.clear()
            parts[0] = merged
        return next(iter(parts.values()))

    def __contains__(self, key: object) -> bool:
        return bool(self._parts.get(key))  # type: ignore[call-overload]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted((k for k in self._parts if self._parts[k]), key=self._order.__getitem__))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def _check(self, key: str, parts: dict[int, Tensor]) -> None:
        """Raise if the parts of ``key`` cannot be merged yet."""


class Activations(_Passes):
    """What :func:`capture` recorded: ``{name: tensor}``, usually ``(N, C, H, W)``, in model order.

    Also ``layers`` (the names asked for), ``passes`` (forward passes seen), ``grads`` (a
    :class:`Gradients`, with ``grad=True``), ``output`` (what :func:`activations` got back).
    """

    def __init__(self, layers: list[str]) -> None:
        super().__init__({})
        self.layers, self.passes, self.output = list(layers), 0, None
        self.grads = Gradients(self._order)

    def _add(self, key: str, order: tuple[int, int, int], value: Tensor) -> int:
        """Keep ``value`` for ``key``; returns its index among the key's passes."""
        parts = self._parts.setdefault(key, {})
        self._order.setdefault(key, order)
        parts[len(parts)] = value
        return len(parts) - 1

    def _why_missing(self, key: str) -> str:
        def base(k: str) -> str:
            return k.split("#", 1)[0].split("[", 1)[0]

        if self.passes == 0 and not self._parts:
            return (f"nothing was captured for {key!r}: no forward pass ran. Call the model inside "
                    "the block: with featviz.capture(model, ...) as acts: model(x)")
        if key in self.layers:
            return (f"layer {key!r} was hooked but did not run in the {self.passes} forward pass(es); "
                    "the model's forward() never calls it for this input.")
        if base(key) in self.layers:
            calls = ", ".join(k for k in self if base(k) == base(key))
            return f"{key!r} was not recorded; for layer {base(key)!r} there is: {calls}."
        return (f"{key!r} was not captured. Captured: {', '.join(self) or 'nothing'}. Name the layer "
                "in layers= to record it (featviz.layers(model) lists the names).")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:  # {name: shape} of everything captured
        return {k: tuple(self[k].shape) for k in self}

    def __repr__(self) -> str:
        return "\n  ".join([f"Activations({len(self)} tensors, {self.passes} forward pass(es))", *(
            f"{k}  {tuple(v.shape)}  {str(v.dtype)[6:]}  {v.device}" for k, v in self.items())])


class Gradients(_Passes):
    """Gradients w.r.t. the captured outputs, ``{name: tensor}`` shaped like the activations.

    Filled by ``loss.backward()`` (inside the block or after it) when the capture ran
    with ``grad=True`` and gradients enabled. A second backward replaces the values.
    """

    def __init__(self, order: dict[str, tuple[int, int, int]]) -> None:
        super().__init__(order)
        self._watched: dict[str, int] = {}  # forward passes that may send a gradient

    def _watch(self, key: str, slot: int, output: Tensor, store: Any) -> None:
        """Keep ``store(gradient w.r.t. output)`` in ``slot`` when a backward pass reaches it."""
        self._watched[key] = self._watched.get(key, 0) + 1
        parts = self._parts.setdefault(key, {})
        # registered before any in-place op that follows: the gradient w.r.t. the layer's own output
        output.register_hook(lambda g: parts.__setitem__(slot, store(g)))

    def _check(self, key: str, parts: dict[int, Tensor]) -> None:
        if len(parts) < self._watched[key]:
            raise ValueError(f"the backward pass reached {key!r} in only {len(parts)} of the "
                             f"{self._watched[key]} forward passes recorded; back-propagate a loss "
                             "that depends on every pass, or capture one pass per block.")
        self._watched[key] = 1

    def _why_missing(self, key: str) -> str:
        if key not in self._order:
            return f"no gradient for {key!r}: it was not captured (acts[{key!r}] says why)."
        if key not in self._watched:
            return (f"no gradient for {key!r}: the forward pass did not build a graph through it. Capture "
                    "with grad=True, outside torch.no_grad(), with an input or weights that require grad.")
        return (f"no gradient for {key!r} yet: call backward on something computed from the model's "
                "output (e.g. logits[0, label].backward()).")

    def __repr__(self) -> str:
        return f"Gradients({', '.join(self) or 'none yet'})"
