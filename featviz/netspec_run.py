"""A small network as data: its steps, the payload the browser gets, and numpy running it.

:func:`featviz.netspec.browser_network` builds a :class:`NetSpec` from a PyTorch
model; this module holds what needs no torch: the spec itself, its payload
(what ``featviz/widgets/forward.js`` decodes) and a reference executor in numpy,
one small function per step kind, written to match PyTorch's arithmetic (the
browser is held to the same answer by ``tests/js/forward.test.mjs``).

Step kinds, with what each step carries beside ``name``, ``kind`` and ``shape``
(the output of one image, without the batch dimension):

==========  ==============================================================
conv2d      ``stride [sy, sx]``, ``padding [top, bottom, left, right]``,
            ``dilation [dy, dx]``, ``groups``; tensors ``weight``
            ``(OC, IC / groups, KH, KW)`` and ``bias`` ``(OC,)`` (optional).
            ``folded``: the name of the conv whose weights this step holds
            with a batch norm folded in (the step is named after the norm).
linear      tensors ``weight (OUT, IN)``, ``bias (OUT,)`` (optional)
relu        -
maxpool2d   ``kernel [kh, kw]``, ``stride``, ``padding [ph, pw]``, ``dilation``,
            ``ceil_mode``; padding counts as -infinity
avgpool2d   ``kernel``, ``stride``, ``padding``, ``ceil_mode``,
            ``count_include_pad``, ``divisor_override`` (null or an int)
affine      per channel (dim 0): tensors ``scale (C,)`` and ``shift (C,)``
            (a batch norm with no conv before it)
reshape     - (nn.Flatten, or ``x.view(x.size(0), -1)`` between modules:
            the values stay in the same order; such a step has ``name`` null)
identity    - (Dropout and nn.Identity, in eval mode)
==========  ==============================================================

Payload (:meth:`NetSpec.to_payload`), a JSON-able dict except for ``weights``::

    {"format": "featviz-netspec", "version": 1,
     "input_shape": [1, 28, 28], "output_shape": [10], "n_values": 85822,
     "steps": [{"name": "conv1", "kind": "conv2d", "shape": [16, 24, 24],
                "stride": [1, 1], "padding": [0, 0, 0, 0], "dilation": [1, 1],
                "groups": 1,
                "tensors": {"weight": {"offset": 0, "shape": [16, 1, 5, 5]},
                            "bias": {"offset": 400, "shape": [16]}}}, ...],
     "weights": b"..."}   # n_values little-endian float32, every tensor C-order,
                          # end to end; "offset" counts float32 values, not bytes

As an anywidget trait the dict travels as is (the bytes as one binary buffer);
:meth:`NetSpec.to_json` gives the same with ``weights`` as a base64 string, for
a static HTML page. ``forward.js`` decodes either.
"""
from __future__ import annotations

import base64
import functools
import json
import math
from dataclasses import dataclass, field
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "KINDS", "Step", "NetSpec", "pool_out_size"]

FORMAT = "featviz-netspec"
VERSION = 1


@dataclass(frozen=True)
class Step:
    """One step of a :class:`NetSpec`: ``name`` is the layer's dotted name in
    ``model.named_modules()`` (``"relu#1"`` for a second call), ``None`` for a step
    no module stands for; ``shape`` is the output of one image."""

    name: str | None
    kind: str
    shape: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown step kind {self.kind!r}; expected one of {sorted(KINDS)}")


@dataclass(frozen=True)
class NetSpec:
    """A network the browser can run: its input shape and its steps, in order."""

    input_shape: tuple[int, ...]
    steps: tuple[Step, ...]

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self.steps[-1].shape if self.steps else self.input_shape

    @property
    def names(self) -> list[str]:
        """The layer names whose outputs :meth:`run` (and the browser) give, in order."""
        return [s.name for s in self.steps if s.name is not None]

    @property
    def n_values(self) -> int:
        """How many float32 values the weights hold (the parameters, batch norms folded)."""
        return sum(int(t.size) for s in self.steps for t in s.tensors.values())

    def run(self, x: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Run the steps in numpy on ``x`` (one image ``input_shape``, or a batch of them):
        ``(output, {name: output of that step})``, float32, batched as ``x`` is.

        >>> import featviz
        >>> from featviz.netspec import browser_network
        >>> logits, maps = browser_network(featviz.SimpleCNN()).run(np.zeros((1, 28, 28)))
        >>> logits.shape, maps["pool1"].shape
        ((10,), (16, 12, 12))
        """
        x = np.asarray(x, dtype=np.float32)
        single = x.shape == self.input_shape
        if not single and x.shape[1:] != self.input_shape:
            raise ValueError(f"NetSpec.run expects one input of shape {self.input_shape} or a "
                             f"batch (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        x = x[None] if single else x
        maps = {}
        for step in self.steps:
            x = np.ascontiguousarray(_OPS[step.kind](step, x), dtype=np.float32)
            if x.shape[1:] != step.shape:  # the recorded shape is what the browser allocates
                raise ValueError(f"step {step.name or step.kind!r} gives shape {x.shape[1:]}, "
                                 f"but the spec records {step.shape}")
            if step.name is not None:
                maps[step.name] = x[0] if single else x
        return (x[0] if single else x), maps

    def to_payload(self) -> dict[str, Any]:
        """The spec for the browser: a JSON-able dict, the weights as little-endian
        float32 ``bytes`` under ``"weights"`` (see the module docstring)."""
        chunks, offset, steps = [], 0, []
        for step in self.steps:
            entry: dict[str, Any] = {"name": step.name, "kind": step.kind,
                                     "shape": list(step.shape), **step.params}
            refs = {}
            for key, array in step.tensors.items():
                refs[key] = {"offset": offset, "shape": list(array.shape)}
                chunks.append(np.ascontiguousarray(array, dtype="<f4").tobytes())
                offset += int(array.size)
            if refs:
                entry["tensors"] = refs
            steps.append(entry)
        return {"format": FORMAT, "version": VERSION, "input_shape": list(self.input_shape),
                "output_shape": list(self.output_shape), "n_values": offset, "steps": steps,
                "weights": b"".join(chunks)}

    def to_json(self) -> str:
        """:meth:`to_payload` as one JSON text, the weights base64-encoded: for a static page."""
        payload = self.to_payload()
        payload["weights"] = base64.b64encode(payload["weights"]).decode("ascii")
        return json.dumps(payload, separators=(",", ":"))

    @classmethod
    def from_payload(cls, payload: dict[str, Any] | str) -> NetSpec:
        """The spec back from :meth:`to_payload` or :meth:`to_json`."""
        data: dict[str, Any] = json.loads(payload) if isinstance(payload, str) else payload
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} payload version {VERSION}: format="
                             f"{data.get('format')!r}, version={data.get('version')!r}")
        raw = data["weights"]
        raw = base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
        values = np.frombuffer(raw, dtype="<f4")
        steps = []
        for entry in data["steps"]:
            params = {k: v for k, v in entry.items()
                      if k not in ("name", "kind", "shape", "tensors")}
            tensors = {}
            for key, ref in entry.get("tensors", {}).items():
                size = math.prod(ref["shape"])
                tensors[key] = values[ref["offset"]:ref["offset"] + size].reshape(ref["shape"])
            steps.append(Step(entry["name"], entry["kind"], tuple(entry["shape"]), params,
                              tensors))
        return cls(tuple(data["input_shape"]), tuple(steps))


# --------------------------------------------------------------------------- numpy steps
# Each takes a step and a batch x (N, ...) float32 and returns the batch of outputs.

def pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                  ceil_mode: bool) -> int:
    """PyTorch's pooling output size: the last window must start inside the input or
    its left padding, even in ceil mode.

    >>> pool_out_size(5, 2, 2, 0, 1, False), pool_out_size(5, 2, 2, 0, 1, True)
    (2, 3)
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _windows(xp: np.ndarray, kernel: Sequence[int], stride: Sequence[int],
             dilation: Sequence[int], out: Sequence[int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(ky, kx, view)``: for each kernel position, the (N, C, OH, OW) input values
    it meets in the padded batch ``xp``."""
    (kh, kw), (sy, sx), (dy, dx), (oh, ow) = kernel, stride, dilation, out
    for i in range(kh):
        for j in range(kw):
            yield i, j, xp[:, :, i * dy:i * dy + sy * (oh - 1) + 1:sy,
                           j * dx:j * dx + sx * (ow - 1) + 1:sx]


# Output sizes come from the parameters, not from step.shape: NetSpec.run then checks the
# recorded shape, which the browser allocates without computing it.

def _conv2d(step: Step, x: np.ndarray) -> np.ndarray:
    weight, bias = step.tensors["weight"], step.tensors.get("bias")
    top, bottom, left, right = step.params["padding"]
    (sy, sx), (dy, dx), groups = step.params["stride"], step.params["dilation"], step.params["groups"]
    oc, icg, kh, kw = weight.shape
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    oh = (xp.shape[2] - dy * (kh - 1) - 1) // sy + 1
    ow = (xp.shape[3] - dx * (kw - 1) - 1) // sx + 1
    cols = np.empty((x.shape[0], x.shape[1], kh, kw, oh, ow), np.float32)
    for i, j, view in _windows(xp, (kh, kw), (sy, sx), (dy, dx), (oh, ow)):
        cols[:, :, i, j] = view
    ocg, parts = oc // groups, []
    for g in range(groups):
        w = weight[g * ocg:(g + 1) * ocg]
        c = cols[:, g * icg:(g + 1) * icg]
        parts.append(np.tensordot(c, w, axes=([1, 2, 3], [1, 2, 3])))  # (N, OH, OW, ocg)
    out = np.concatenate(parts, axis=3).transpose(0, 3, 1, 2)
    return out + bias[:, None, None] if bias is not None else out


class _Pool:
    """A pooling step's sizes, per axis (height, width), for an input batch ``x``."""

    def __init__(self, step: Step, x: np.ndarray) -> None:
        p = step.params
        self.kernel, self.stride, self.padding = p["kernel"], p["stride"], p["padding"]
        self.dilation = p.get("dilation", [1, 1])  # average pooling has none
        self.size = x.shape[2:]
        self.out = [pool_out_size(self.size[a], self.kernel[a], self.stride[a], self.padding[a],
                                  self.dilation[a], p["ceil_mode"]) for a in (0, 1)]

    def padded(self, x: np.ndarray, value: float) -> np.ndarray:
        """``x`` padded by the padding, and on the right as far as ceil mode's last window reaches."""
        pads = [(0, 0), (0, 0)]
        for a in (0, 1):
            reach = (self.out[a] - 1) * self.stride[a] + self.dilation[a] * (self.kernel[a] - 1) + 1
            pads.append((self.padding[a], max(0, reach - self.size[a] - self.padding[a])))
        return np.pad(x, pads, constant_values=value)

    def windows(self, xp: np.ndarray) -> Iterator[np.ndarray]:
        return (view for _, _, view in _windows(xp, self.kernel, self.stride, self.dilation,
                                                self.out))


def _maxpool2d(step: Step, x: np.ndarray) -> np.ndarray:
    pool = _Pool(step, x)
    return functools.reduce(np.maximum, pool.windows(pool.padded(x, -np.inf)))  # NaN propagates


def _avg_counts(size: int, out: int, kernel: int, stride: int, padding: int,
                include_pad: bool) -> np.ndarray:
    """Per output position along one axis, how many values PyTorch divides by: with
    count_include_pad the padding counts, the overhang of ceil mode never does."""
    starts = np.arange(out) * stride - padding
    ends = np.minimum(starts + kernel, size + padding)
    if include_pad:
        return ends - starts
    return np.minimum(ends, size) - np.maximum(starts, 0)


def _avgpool2d(step: Step, x: np.ndarray) -> np.ndarray:
    pool = _Pool(step, x)
    total = sum(pool.windows(pool.padded(x, 0.0)))
    if step.params["divisor_override"]:
        return total / np.float32(step.params["divisor_override"])
    rows, cols = (_avg_counts(pool.size[a], pool.out[a], pool.kernel[a], pool.stride[a],
                              pool.padding[a], step.params["count_include_pad"]) for a in (0, 1))
    return total / (rows[:, None] * cols[None, :]).astype(np.float32)


def _linear(step: Step, x: np.ndarray) -> np.ndarray:
    out = x @ step.tensors["weight"].T
    bias = step.tensors.get("bias")
    return out + bias if bias is not None else out


def _affine(step: Step, x: np.ndarray) -> np.ndarray:
    extra = (1,) * (x.ndim - 2)  # per channel: dim 1 of the batch
    scale = step.tensors["scale"].reshape(-1, *extra)
    return x * scale + step.tensors["shift"].reshape(-1, *extra)


_OPS: dict[str, Callable[[Step, np.ndarray], np.ndarray]] = {
    "conv2d": _conv2d,
    "linear": _linear,
    "relu": lambda step, x: np.maximum(x, np.float32(0)),
    "maxpool2d": _maxpool2d,
    "avgpool2d": _avgpool2d,
    "affine": _affine,
    "reshape": lambda step, x: x.reshape(x.shape[0], *step.shape),
    "identity": lambda step, x: x,
}
KINDS = frozenset(_OPS)
