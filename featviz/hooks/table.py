"""``layers(model)``: every layer's name, type, output shape and parameters, as a table."""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .._torch import as_tensor, inference_mode, run_model, tensors_in
from .names import check_model, is_leaf


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One row of :func:`layers`: a module, its output shape (first call) and parameters."""
    name: str
    type: str
    shape: str
    params: int
    calls: int
    leaf: bool
    detail: str


@dataclasses.dataclass
class LayerTable:
    """The layers of a model: ``names``, ``leaves``, ``rows`` of :class:`LayerInfo`; shown
    as an HTML table in Jupyter and as aligned text by ``print``."""
    model_name: str
    rows: list[LayerInfo]
    total_params: int
    trainable_params: int
    input_shape: tuple[int, ...] | None = None
    output_shape: str | None = None

    @property
    def names(self) -> list[str]:  # every layer, in model order: what ``layers=`` accepts
        return [r.name for r in self.rows]

    @property
    def leaves(self) -> list[str]:  # what ``capture`` records by default
        return [r.name for r in self.rows if r.leaf]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[LayerInfo]:
        return iter(self.rows)

    def __getitem__(self, key: int | str) -> LayerInfo:
        if isinstance(key, str):
            key = {r.name: i for i, r in enumerate(self.rows)}[key]  # KeyError for an unknown name
        return self.rows[key]

    def _cells(self) -> list[tuple[LayerInfo, str, str, str, str]]:
        return [(r, "  " * r.name.count(".") + r.name, r.type, r.shape + (
            f"  (called {r.calls}x)" if r.calls > 1 else ""), f"{r.params:,}") for r in self.rows]

    def _footer(self) -> str:
        shapes = ("pass example_input= to see output shapes" if self.input_shape is None else
                  f"input {self.input_shape}" + (f"; output {self.output_shape}" * bool(self.output_shape)))
        return f"{self.total_params:,} parameters ({self.trainable_params:,} trainable); {shapes}"

    def __str__(self) -> str:
        rows = [("layer", "type", "output shape", "params")] + [c[1:] for c in self._cells()]
        w = [max(len(row[i]) for row in rows) for i in range(4)]
        lines = [f"{a:<{w[0]}}  {b:<{w[1]}}  {c:<{w[2]}}  {d:>{w[3]}}".rstrip() for a, b, c, d in rows]
        rule = "-" * (sum(w) + 6)
        return "\n".join([self.model_name, lines[0], rule, *lines[1:], rule, self._footer()])

    __repr__ = __str__

    def _repr_html_(self) -> str:
        esc, td = html.escape, "<td style='text-align:left'"
        body = "".join(
            f"<tr{'' if r.leaf else ' style=color:#777'}>{td[:-1]};padding-left:{r.name.count('.') * 1.2 + 0.4:.1f}"
            f"em'><code>{esc(r.name)}</code></td>{td} title='{esc(r.detail)}'>{esc(kind)}</td>{td}>"
            f"{esc(shape)}</td><td style='text-align:right'>{params}</td></tr>"
            for r, _, kind, shape, params in self._cells())
        head = "".join(f"<th style='text-align:{a}'>{h}</th>" for h, a in
                       [("layer", "left"), ("type", "left"), ("output shape", "left"), ("params", "right")])
        return (f"<div><b>{esc(self.model_name)}</b><table><thead><tr>{head}</tr></thead><tbody>{body}"
                f"</tbody></table><small>{esc(self._footer())}</small></div>")


def _shape_of(output: Any) -> str:
    shapes = [str(tuple(t.shape)) for _, t in tensors_in(output)]
    return shapes[0] if isinstance(output, torch.Tensor) else f"[{', '.join(shapes)}]" if shapes else type(output).__name__


def layers(model: nn.Module, example_input: Any = None) -> LayerTable:
    """A table of every layer: name, type, output shape and parameter count (``.names``: what
    ``capture`` accepts). The shapes come from one pass of ``example_input`` (default: zeros of
    ``model.input_shape`` if the model has one) in eval mode, the model's mode restored after.

    >>> import featviz
    >>> layers(featviz.SimpleCNN()).names[:3]
    ['conv1', 'relu1', 'pool1']
    """
    check_model(model)
    named = [(n, m) for n, m in model.named_modules() if n]
    input_shape = getattr(model, "input_shape", None)
    if example_input is None and input_shape is not None:
        example_input = torch.zeros(1, *tuple(input_shape))
    shapes: dict[str, str] = {}
    calls: dict[str, int] = {}
    x, output = None, None
    if example_input is not None:
        def record(name: str, output: Any) -> None:
            calls[name] = calls.get(name, 0) + 1
            shapes.setdefault(name, _shape_of(output))

        x = as_tensor(example_input, model, what="example_input")
        handles = [m.register_forward_hook(lambda _, __, out, n=n: record(n, out)) for n, m in named]
        try:
            with inference_mode(model), torch.no_grad():  # no batch-norm statistics updated
                output = _shape_of(run_model(model, x))
        finally:
            for h in handles:
                h.remove()
    rows = [LayerInfo(n, type(m).__name__, shapes.get(n, "" if x is None else "not called"),
                      sum(p.numel() for p in m.parameters()), calls.get(n, 0), is_leaf(m),
                      m.extra_repr()) for n, m in named]
    return LayerTable(type(model).__name__, rows, sum(p.numel() for p in model.parameters()),
                      sum(p.numel() for p in model.parameters() if p.requires_grad),
                      None if x is None else tuple(x.shape), output)
