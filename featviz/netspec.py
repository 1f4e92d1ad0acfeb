"""Which models the browser can run, and the spec it runs: trace, translate, verify.

>>> import featviz
>>> spec = browser_network(featviz.pretrained())          # a NetSpec, or UnsupportedModel
>>> spec.names[:3], spec.n_values
(['conv1', 'relu1', 'pool1'], 85822)
>>> print(why_not_browser(featviz.SmallResNet()))        # doctest: +ELLIPSIS
'layer1.shortcut' takes the output of 'stem.2', not of 'layer1.bn2': the network branches...

:func:`browser_network` returns a :class:`~featviz.netspec_run.NetSpec` or raises
:class:`UnsupportedModel` (a ``ValueError``) whose ``reason`` says why, naming the
first layer at fault; :func:`why_not_browser` returns that reason, or ``None``.

How it traces: one forward pass of a seeded dummy batch of two inputs, with a
pre-hook and a hook on every leaf module, each copying its tensor; in execution
order every call becomes a step, translated by its module's type (Conv2d, Linear,
ReLU, MaxPool2d, AvgPool2d, Flatten, BatchNorm, Dropout, Identity). A step's input
must be the previous step's output: the same values reshaped
(``x.view(x.size(0), -1)`` in ``forward``) become a ``reshape`` step; anything
else is a computation that hooks cannot see (``F.relu``, a residual add), and the
model is not supported. Then the numpy executor runs the finished spec and every
named map and the output are compared with PyTorch's: the spec is verified, not
trusted.

A model is traced in eval mode, as the widgets look at it (dropout off, batch
norms using their running statistics); every module's mode is restored after and
no statistic changes. A batch norm right after a conv is folded into it
(``fold_batchnorm=True``): the step is named after the norm and the conv's own
pre-norm map is then not computed; otherwise, a norm is a per-channel affine step.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor, nn

from ._torch import inference_mode, model_device, model_dtype, to_numpy
from .netspec_run import NetSpec, Step

__all__ = ["UnsupportedModel", "browser_network", "why_not_browser", "NetSpec", "Step"]

DUMMY_BATCH = 2   # two inputs, so that a layer mixing the images of a batch shows
RTOL = 1e-4       # verification: max abs diff <= RTOL * max(1, largest |value|)


class UnsupportedModel(ValueError):
    """The model cannot run in the browser: ``reason`` says why, ``layer`` names the
    first layer at fault (``None`` when it is the model as a whole)."""

    def __init__(self, reason: str, layer: str | None = None) -> None:
        super().__init__(f"this model cannot run in the browser: {reason}")
        self.reason, self.layer = reason, layer


@dataclass
class _Call:
    """One call of a leaf module: its copied input and output (CPU float32), in order."""

    name: str
    module: nn.Module
    input: Tensor | None = None
    output: Tensor | None = None
    problem: str | None = None


def browser_network(model: nn.Module, input_shape: tuple[int, ...] | None = None, *,
                    fold_batchnorm: bool = True) -> NetSpec:
    """Trace ``model`` into a :class:`NetSpec` the browser runs, verified against PyTorch.

    ``input_shape`` is one input without the batch dimension, ``(C, H, W)``; by
    default the model's ``input_shape`` attribute (the SimpleCNN has one).
    Raises :class:`UnsupportedModel` when some step cannot run in the browser.
    """
    shape = _input_shape(model, input_shape)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((DUMMY_BATCH, *shape), generator=gen)
    with inference_mode(model), torch.no_grad():
        calls, y = _record(model, x.to(model_device(model), model_dtype(model)))
    if not calls:
        raise UnsupportedModel("forward() calls no module that hooks can see (only functions)")
    steps = _translate(calls, _cpu(x), fold_batchnorm)
    last = steps[-1].name
    if not isinstance(y, Tensor):
        raise UnsupportedModel(f"the model returns a {type(y).__name__}, not one tensor")
    if calls[-1].output is None or not torch.equal(_cpu(y), calls[-1].output):
        raise UnsupportedModel(f"the model's output is not the output of its last module "
                               f"{last!r}: forward() computes something after it (such as "
                               f"F.softmax) that hooks cannot see", last)
    spec = NetSpec(shape, tuple(steps))
    _verify(spec, x, calls, _cpu(y))
    return spec


def why_not_browser(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> str | None:
    """Why ``model`` cannot run in the browser, or ``None`` when it can.

    >>> import featviz
    >>> why_not_browser(featviz.SimpleCNN()) is None
    True
    """
    try:
        browser_network(model, input_shape)
    except UnsupportedModel as error:
        return error.reason
    return None


def _input_shape(model: nn.Module, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    shape = input_shape if input_shape is not None else getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError(f"browser_network needs the shape of one input without the batch "
                         f"dimension, e.g. input_shape=(1, 28, 28); {type(model).__name__} "
                         f"has no input_shape attribute to take it from.")
    if isinstance(shape, Integral):
        shape = (shape,)
    if not all(isinstance(v, Integral) and int(v) > 0 for v in shape):
        raise ValueError(f"input_shape must be positive integers such as (1, 28, 28), got "
                         f"{tuple(shape)!r}")
    return tuple(int(v) for v in shape)


def _cpu(t: Tensor) -> Tensor:
    return t.detach().to("cpu", torch.float32, copy=True)


def _record(model: nn.Module, x: Tensor) -> tuple[list[_Call], Any]:
    """Run ``model(x)`` with every leaf module's input and output copied, in call order."""
    calls: list[_Call] = []
    counts: dict[str, int] = {}
    open_calls: list[_Call] = []

    def before(name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            k = counts[name] = counts.get(name, -1) + 1
            call = _Call(name if k == 0 else f"{name}#{k}", module)  # capture's naming
            if len(args) == 1 and not kwargs and isinstance(args[0], Tensor):
                call.input = _cpu(args[0])
            else:
                call.problem = "it is called with other than one tensor"
            calls.append(call)
            open_calls.append(call)
        return hook

    def after(module: nn.Module, args: tuple, output: Any) -> None:
        call = open_calls.pop()
        if isinstance(output, Tensor):
            call.output = _cpu(output)
        else:
            call.problem = call.problem or f"it returns a {type(output).__name__}, not a tensor"

    leaves = [(n, m) for n, m in model.named_modules() if next(m.children(), None) is None]
    handles = []
    try:
        for name, module in leaves:
            handles.append(module.register_forward_pre_hook(before(name), with_kwargs=True))
            handles.append(module.register_forward_hook(after))
        try:
            y = model(x)
        except Exception as error:
            if hasattr(error, "add_note"):  # Python 3.11+
                error.add_note(f"featviz.browser_network ran the model on a dummy input of "
                               f"shape {tuple(x.shape)}: is input_shape right?")
            raise
    finally:
        for handle in handles:
            handle.remove()
    return calls, y


def _translate(calls: list[_Call], x: Tensor, fold_batchnorm: bool) -> list[Step]:
    """The calls as steps, each input checked to be the previous output."""
    steps: list[Step] = []
    previous, previous_name = x, "the model's input"
    earlier: list[tuple[str, Tensor]] = []  # outputs before the previous one, for the reason
    for call in calls:
        translate = _translator(call)
        if call.problem:
            raise UnsupportedModel(f"{call.name!r} ({type(call.module).__name__}): "
                                   f"{call.problem}", call.name)
        assert call.input is not None and call.output is not None
        if call.input.shape != previous.shape and _same_values(call.input, previous):
            steps.append(Step(None, "reshape", tuple(call.input.shape[1:])))
        elif not torch.equal(call.input, previous):
            raise UnsupportedModel(_broken_chain(call, previous_name, earlier), call.name)
        if call.output.dim() == 0 or call.output.shape[0] != DUMMY_BATCH:
            raise UnsupportedModel(f"{call.name!r} mixes the inputs of a batch (output shape "
                                   f"{tuple(call.output.shape)} for a batch of {DUMMY_BATCH})",
                                   call.name)
        step = translate(call, steps[-1] if steps else None, fold_batchnorm)
        if step.params.get("folded"):
            steps[-1] = step
        else:
            steps.append(step)
        earlier.append((previous_name, previous))
        previous, previous_name = call.output, repr(call.name)
    return steps


def _broken_chain(call: _Call, previous_name: str, earlier: list[tuple[str, Tensor]]) -> str:
    """Why ``call``'s input is not the previous output: a branch, or a hidden computation."""
    assert call.input is not None
    source = next((name for name, t in earlier if _same_values(call.input, t)), None)
    if source is not None:
        return (f"{call.name!r} takes the output of {source}, not of {previous_name}: the "
                f"network branches (a skip connection?), and the browser runs a chain of layers")
    return (f"the input of {call.name!r} is not the output of {previous_name}: forward() "
            f"computes something between them that hooks cannot see (a function such as "
            f"F.relu or F.max_pool2d, a residual add); use an nn module for it")


def _same_values(a: Tensor, b: Tensor) -> bool:
    return a.numel() == b.numel() and torch.equal(a.reshape(b.shape), b)


def _verify(spec: NetSpec, x: Tensor, calls: list[_Call], y: Tensor) -> None:
    """Run ``spec`` in numpy and compare every named map and the output with PyTorch's."""
    output, maps = spec.run(x.numpy())
    torch_maps = {c.name: c.output for c in calls}
    for name in spec.names:
        diff = _mismatch(maps[name], to_numpy(torch_maps[name]))
        if diff is not None:
            kind = next(s.kind for s in spec.steps if s.name == name)
            raise UnsupportedModel(f"the browser's {kind} does not reproduce {name!r} (max abs "
                                   f"diff {diff:.3g}); its module may compute more than its "
                                   f"type says", name)
    diff = _mismatch(output, to_numpy(y))
    if diff is not None:
        raise UnsupportedModel(f"the spec's output differs from the model's (max abs diff "
                               f"{diff:.3g})")


def _mismatch(ours: np.ndarray, theirs: np.ndarray) -> float | None:
    """The max abs difference when it is over tolerance (or the shapes differ), else None."""
    if ours.shape != theirs.shape:
        return float("inf")
    diff = float(np.max(np.abs(ours - theirs), initial=0.0))
    scale = max(1.0, float(np.max(np.abs(theirs), initial=0.0)))
    return diff if not diff <= RTOL * scale else None  # NaN counts as a mismatch


# --------------------------------------------------------------------------- module -> step

def _pair(v: Any) -> list[int]:
    return [int(v), int(v)] if isinstance(v, int) else [int(a) for a in v]


def _array(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(to_numpy(t), dtype=np.float32)


def _out_shape(call: _Call) -> tuple[int, ...]:
    assert call.output is not None
    return tuple(int(v) for v in call.output.shape[1:])


def _needs_dims(call: _Call, dims: int, what: str) -> None:
    assert call.input is not None
    if call.input.dim() != dims:
        raise UnsupportedModel(f"{call.name!r} ({type(call.module).__name__}) gets a "
                               f"{call.input.dim()}-d input; the browser runs it on {what}",
                               call.name)


def _conv_padding(m: nn.Conv2d) -> list[int]:
    """``[top, bottom, left, right]``; 'same' puts the odd pixel at the bottom/right, as torch."""
    if m.padding == "valid":
        return [0, 0, 0, 0]
    if m.padding == "same":
        out = []
        for d, k in zip(m.dilation, m.kernel_size):
            total = d * (k - 1)
            out += [total // 2, total - total // 2]
        return out
    ph, pw = _pair(m.padding)
    return [ph, ph, pw, pw]


def _conv2d(call: _Call, before: Step | None, fold: bool) -> Step:
    m = call.module
    assert isinstance(m, nn.Conv2d)
    _needs_dims(call, 4, "a batch (N, C, H, W)")
    if m.padding_mode != "zeros":
        raise UnsupportedModel(f"{call.name!r} pads with padding_mode={m.padding_mode!r}; the "
                               f"browser pads with zeros only", call.name)
    tensors = {"weight": _array(m.weight)}
    if m.bias is not None:
        tensors["bias"] = _array(m.bias)
    params = {"stride": _pair(m.stride), "padding": _conv_padding(m),
              "dilation": _pair(m.dilation), "groups": int(m.groups)}
    return Step(call.name, "conv2d", _out_shape(call), params, tensors)


def _linear(call: _Call, before: Step | None, fold: bool) -> Step:
    m = call.module
    assert isinstance(m, nn.Linear)
    _needs_dims(call, 2, "a batch of vectors (N, F): flatten before it")
    tensors = {"weight": _array(m.weight)}
    if m.bias is not None:
        tensors["bias"] = _array(m.bias)
    return Step(call.name, "linear", _out_shape(call), {}, tensors)


def _maxpool2d(call: _Call, before: Step | None, fold: bool) -> Step:
    m = call.module
    assert isinstance(m, nn.MaxPool2d)
    _needs_dims(call, 4, "a batch (N, C, H, W)")
    if m.return_indices:
        raise UnsupportedModel(f"{call.name!r} returns indices", call.name)
    params = {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
              "padding": _pair(m.padding), "dilation": _pair(m.dilation),
              "ceil_mode": bool(m.ceil_mode)}
    return Step(call.name, "maxpool2d", _out_shape(call), params)


def _avgpool2d(call: _Call, before: Step | None, fold: bool) -> Step:
    m = call.module
    assert isinstance(m, nn.AvgPool2d)
    _needs_dims(call, 4, "a batch (N, C, H, W)")
    params = {"kernel": _pair(m.kernel_size), "stride": _pair(m.stride or m.kernel_size),
              "padding": _pair(m.padding), "ceil_mode": bool(m.ceil_mode),
              "count_include_pad": bool(m.count_include_pad),
              "divisor_override": int(m.divisor_override) if m.divisor_override else None}
    return Step(call.name, "avgpool2d", _out_shape(call), params)


def _batchnorm(call: _Call, before: Step | None, fold: bool) -> Step:
    m = call.module
    assert isinstance(m, _NORMS)
    if m.running_mean is None or m.running_var is None:
        raise UnsupportedModel(f"{call.name!r} has no running statistics "
                               f"(track_running_stats=False), so its output depends on the "
                               f"batch; the browser runs one input at a time", call.name)
    var, mean = m.running_var.double().cpu(), m.running_mean.double().cpu()
    gamma = m.weight.double().cpu() if m.weight is not None else torch.ones_like(var)
    beta = m.bias.double().cpu() if m.bias is not None else torch.zeros_like(var)
    scale = gamma / torch.sqrt(var + m.eps)
    shift = beta - mean * scale
    if fold and before is not None and before.kind == "conv2d" and before.name is not None \
            and "folded" not in before.params:
        weight = torch.from_numpy(before.tensors["weight"]).double() * scale[:, None, None, None]
        bias = torch.from_numpy(before.tensors.get("bias", np.zeros(len(scale), np.float32)))
        tensors = {"weight": _array(weight), "bias": _array(bias.double() * scale + shift)}
        params = {**before.params, "folded": before.name}
        return Step(call.name, "conv2d", _out_shape(call), params, tensors)
    return Step(call.name, "affine", _out_shape(call), {},
                {"scale": _array(scale), "shift": _array(shift)})


def _plain(kind: str) -> Callable[[_Call, Step | None, bool], Step]:
    def translate(call: _Call, before: Step | None, fold: bool) -> Step:
        return Step(call.name, kind, _out_shape(call))
    return translate


_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
             nn.FeatureAlphaDropout, nn.Identity)
_TRANSLATORS: list[tuple[tuple[type, ...], Callable[[_Call, Step | None, bool], Step]]] = [
    ((nn.Conv2d,), _conv2d),
    ((nn.Linear,), _linear),
    ((nn.ReLU,), _plain("relu")),
    ((nn.MaxPool2d,), _maxpool2d),
    ((nn.AvgPool2d,), _avgpool2d),
    (_NORMS, _batchnorm),
    ((nn.Flatten, nn.Unflatten), _plain("reshape")),
    (_DROPOUTS, _plain("identity")),
]
SUPPORTED = ", ".join(t.__name__ for types, _ in _TRANSLATORS for t in types)


def _translator(call: _Call) -> Callable[[_Call, Step | None, bool], Step]:
    for types, translate in _TRANSLATORS:
        if isinstance(call.module, types):
            return translate
    raise UnsupportedModel(f"{call.name!r} is of type {type(call.module).__name__}, which the "
                           f"browser cannot run (it runs {SUPPORTED})", call.name)
