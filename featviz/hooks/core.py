"""The hook core: the options, :class:`Capture`, and the functions built on it."""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Callable, Union, cast

import torch
from torch import Tensor, nn

from .._torch import as_tensor, batches, check_device, explain_input, run_model, tensors_in
from .names import LayerSpec, check_model, resolve_layers
from .results import Activations

ChannelSpec = Union[None, int, slice, range, Iterable[int], Tensor]


def channel_max(t: Tensor) -> Tensor:
    """``reduce="max"``: maps ``(N, C, H, W)`` or ``(N, C, L)`` -> ``(N, C, 3)``, each channel's
    ``[maximum, row, column]``, computed in the hook; ``(N, F)`` is kept whole.

    >>> channel_max(torch.tensor([[[[1., 5.], [7., 2.]]]])).tolist()
    [[[7.0, 1.0, 0.0]]]
    """
    if t.dim() < 3:
        return t
    values, where = t.flatten(2).max(dim=2)
    kind, width = torch.promote_types(t.dtype, torch.float32), t.shape[-1]  # exact below 2**24
    return torch.stack([values.to(kind), (where // width).to(kind), (where % width).to(kind)], -1)


@dataclasses.dataclass
class CaptureOptions:
    """How captured values are kept: the options of :func:`capture`, :func:`activations`, :func:`batched_activations`.

    to_cpu : copies on the CPU (default, ready for numpy); ``False``: on the model's device.
    detach : detached copies (default); ``False`` keeps them in the autograd graph.
    channels : keep only these channels (dimension 1) of outputs with 3 or more dimensions.
    dtype : store in this dtype, e.g. ``torch.float16`` to halve the memory.
    grad : also keep the gradient w.r.t. each captured output in ``acts.grads`` when a
        backward pass runs (needs gradients enabled); the same options apply.
    reduce : a function applied to each output in the hook (after ``channels``), so whole
        maps are never kept; ``"max"`` is :func:`channel_max`.
    """

    to_cpu: bool = True
    detach: bool = True
    channels: ChannelSpec = None
    dtype: Union[torch.dtype, str, None] = None
    grad: bool = False
    reduce: Union[str, Callable[[Tensor], Tensor], None] = None

    def __post_init__(self) -> None:
        if isinstance(self.dtype, str) and isinstance(getattr(torch, self.dtype, None), torch.dtype):
            self.dtype = getattr(torch, self.dtype)
        if not (self.dtype is None or isinstance(self.dtype, torch.dtype)):
            raise TypeError(f"dtype= takes a torch dtype such as torch.float16, got {self.dtype!r}")
        ch = self.channels
        if isinstance(ch, range) and ch.step > 0:
            ch = slice(ch.start, ch.stop, ch.step)
        if not (ch is None or isinstance(ch, slice)):
            idx = torch.as_tensor([ch] if isinstance(ch, int) else list(ch))
            if idx.dim() != 1 or idx.dtype.is_floating_point or idx.dtype == torch.bool or not len(idx):
                raise TypeError("channels= takes an int, a slice/range, or a non-empty list of "
                                f"channel indices; got {ch!r}")
            ch = idx.long()
        self.channels = ch
        self.reduce = channel_max if self.reduce == "max" else self.reduce
        if self.reduce is not None and not callable(self.reduce):
            raise TypeError(f"reduce= takes 'max' or a function of a tensor, got {self.reduce!r}")

    def _select(self, name: str, t: Tensor) -> Tensor:
        # __post_init__ has turned channels= into a slice or a 1-D tensor of indices
        n, ch = t.shape[1], cast(Union[slice, Tensor], self.channels)
        if isinstance(ch, slice):
            last, below = max(ch.start or 0, (ch.stop or 0) - 1), False
        else:
            last, below = int(ch.max()), int(ch.min()) < -n
        if last >= n or below:
            raise ValueError(f"channels={ch.tolist() if isinstance(ch, Tensor) else ch} asks for "
                             f"channel {last} but layer {name!r} has {n} (indices 0..{n - 1}).")
        if isinstance(ch, slice):
            return t[:, ch]
        return t.index_select(1, ch.to(t.device) % n)

    def store(self, name: str, t: Tensor) -> Tensor:
        """``t``, the output of layer ``name``, as these options keep it: always a new tensor."""
        # __post_init__ has resolved dtype= names and reduce="max" to a dtype and a function
        dtype = cast(Union[torch.dtype, None], self.dtype)
        reduce = cast(Union[Callable[[Tensor], Tensor], None], self.reduce)
        src = t = t.detach() if self.detach else t
        if self.channels is not None and t.dim() >= 3:
            t = self._select(name, t)
        if reduce is not None:
            t = reduce(t)
        fresh = t is not src and t.untyped_storage().data_ptr() != src.untyped_storage().data_ptr()
        # with to_cpu on a GPU the transfer is the copy
        return t.to("cpu" if self.to_cpu else t.device, dtype or t.dtype, copy=not fresh)


class _StopForward(Exception):
    """Raised by the hook of the last layer a pass needs, to end the pass there (early exit)."""


@dataclasses.dataclass
class _Hook:
    """One hooked layer: its name, its rank in ``layers=``, its calls in the current pass."""
    name: str
    rank: int
    pass_no: int = 0
    calls: int = 0


class Capture:
    """What :func:`capture` returns: each ``with`` block (or ``start()`` ... ``stop()``) gives
    a fresh :class:`Activations`, so one capture serves many blocks.

    ``stop_after`` (early exit, used by :meth:`run`, :func:`activations` and
    :func:`batched_activations`): end each forward pass as soon as the last of ``layers``
    has produced its output, so nothing after it runs; ``acts.output`` is then None.
    The first pass checks on one image that it is safe: every layer is reached once
    per pass. It is not safe, and ``stop_after=True`` raises a ``ValueError``, when a
    layer runs twice in one pass (a module reused), when the model is in train mode
    (later layers such as BatchNorm would miss their update), or with ``grad=True`` /
    ``detach=False`` (the output downstream is needed). ``stop_after="auto"`` uses early
    exit where it is safe and full passes otherwise. Hooks are removed and the model's
    state is left as it was in every case. What a stopped pass skips: the model's output
    (``acts.output`` is None), hooks of your own on later layers, and whatever the
    model's ``forward`` would do after the layer (use ``False`` for a forward that
    updates its own state at the end). In a ``with`` block you call the model
    yourself, so its passes always run to the end.
    """

    def __init__(self, model: nn.Module, layers: LayerSpec = None, *,
                 stop_after: Union[bool, str] = False, **options: Any) -> None:
        check_model(model)
        self.model, self.names = model, resolve_layers(model, layers)
        self.options = CaptureOptions(**options)
        if stop_after not in (True, False, "auto"):
            raise ValueError(f"stop_after takes True, False or 'auto', got {stop_after!r}.")
        self.stop_after = stop_after
        self._stop: str | None = None  # the layer whose output ends a pass, while run() runs
        self._plan: str | None | bool = False  # False: not checked yet; None: unsafe
        self.acts = Activations(self.names)
        self._handles: list[Any] = []
        self._depth = 0  # > 0 while the model's own forward() runs
        self._last_input: Any = None

    def _root_pre(self, module: nn.Module, args: tuple) -> None:
        self._depth += 1
        if self._depth == 1:
            self.acts.passes += 1
            self._last_input = args[0] if args else None

    def _root_post(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._depth -= 1  # also when the forward pass fails (always_call)

    def _record(self, hook: _Hook, module: nn.Module, args: tuple, output: Any) -> None:
        acts, opts = self.acts, self.options
        if self._depth and hook.pass_no == acts.passes:
            hook.calls += 1
        else:  # the first call in this pass (a layer called outside the model: every call)
            hook.pass_no, hook.calls = acts.passes, 0
        key = hook.name if hook.calls == 0 else f"{hook.name}#{hook.calls}"
        if not isinstance(output, (Tensor, tuple, list, Mapping)):
            raise TypeError(f"layer {hook.name!r} ({type(module).__name__}) returned a {type(output).__name__}; "
                            "featviz captures tensors and tuples, lists or dicts of tensors. Capture one of "
                            "its submodules instead (featviz.layers(model) lists them).")
        for seq, (path, t) in enumerate(tensors_in(output)):
            slot = acts._add(key + path, (hook.rank, hook.calls, seq), opts.store(hook.name, t))
            if opts.grad and t.requires_grad:
                acts.grads._watch(key + path, slot, t, functools.partial(opts.store, hook.name))
        if self._stop == hook.name and self._depth == 1:
            raise _StopForward

    def _unsafe(self) -> str | None:
        """Why early exit cannot be used with these options, or None."""
        if self.options.grad or not self.options.detach:
            return "grad=True / detach=False need the pass to go on to the output"
        if any(m.training for m in self.model.modules()):
            return "the model is in train mode: the layers after the last one would miss their update"
        return None

    def _check_plan(self, x: Tensor) -> str | None:
        """The layer after which a pass can stop, from one full pass on one image; or None."""
        why = self._unsafe()
        order: list[str] = []
        if why is None:
            named = dict(self.model.named_modules())
            handles = [named[n].register_forward_hook(
                lambda m, a, o, n=n: order.append(n)) for n in self.names]
            try:
                with torch.no_grad():
                    run_model(self.model, x[:1])
            finally:
                for h in handles:
                    h.remove()
            twice = sorted({n for n in order if order.count(n) > 1})
            if twice:
                why = f"layer {twice[0]!r} runs more than once in one pass"
            elif set(order) != set(self.names):
                why = f"layer {sorted(set(self.names) - set(order))[0]!r} does not run in a pass"
        if why is not None:
            if self.stop_after is True:
                raise ValueError(f"stop_after=True is not safe here: {why}. "
                                 "Use stop_after='auto' (full passes where unsafe) or False.")
            return None
        return order[-1]

    def start(self) -> Activations:
        """Register the hooks and return the (live) :class:`Activations`."""
        if self._handles:
            raise RuntimeError("this capture is already active; use it in one `with` block at a time")
        self.acts, self._depth = Activations(self.names), 0
        named = dict(self.model.named_modules())
        try:
            for rank, name in enumerate(self.names):
                record = functools.partial(self._record, _Hook(name, rank))
                self._handles.append(named[name].register_forward_hook(record))
            # after the layer hooks, so that a hook on the model itself still sees the pass
            self._handles.append(self.model.register_forward_pre_hook(self._root_pre))
            self._handles.append(self.model.register_forward_hook(self._root_post, always_call=True))
        except BaseException:
            self.stop()
            raise
        return self.acts

    def stop(self) -> None:
        """Remove every hook (safe to call twice)."""
        handles, self._handles, self._depth = self._handles, [], 0
        for handle in handles:
            handle.remove()

    def run(self, x: Any) -> Activations:
        """``model(x)`` once inside this capture (no graph unless ``grad``/``detach=False``)."""
        x = as_tensor(x, self.model)
        if self.stop_after and self._plan is False:
            self._plan = self._check_plan(x) if x.dim() > 0 and len(x) else False
        self._stop = self._plan if self.stop_after and isinstance(self._plan, str) else None
        try:
            with torch.set_grad_enabled(self.options.grad or not self.options.detach), self as acts:
                try:
                    acts.output = run_model(self.model, x)
                except _StopForward:
                    acts.output = None
        finally:
            self._stop = None
        return acts

    __enter__ = start

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        last_input, self._last_input = self._last_input, None
        self.stop()
        if isinstance(exc, (RuntimeError, TypeError, ValueError)) and last_input is not None:
            better = explain_input(self.model, last_input)
            if better is not None:
                raise better from exc

    def __repr__(self) -> str:
        return f"Capture({type(self.model).__name__}, {len(self.names)} layers{', active' * bool(self._handles)})"


def capture(model: nn.Module, layers: LayerSpec = None, **options: Any) -> Capture:
    """Record the outputs of ``layers`` (:func:`resolve_layers`; default every leaf) of any model, on
    any device, during the passes inside a ``with`` block. Options: :class:`CaptureOptions`.

    >>> import featviz, torch
    >>> model = featviz.SimpleCNN().eval()
    >>> with featviz.capture(model, ["conv1", "conv2"]) as acts:
    ...     logits = model(torch.zeros(10, 1, 28, 28))
    >>> acts["conv2"].shape
    torch.Size([10, 32, 8, 8])
    """
    return Capture(model, layers, **options)


def activations(model: nn.Module, x: Any, layers: LayerSpec = None, **options: Any) -> Activations:
    """Run ``model(x)`` once (``x`` moved to the model's device and dtype, the model's mode
    left as it is) and return the outputs of ``layers`` (see :func:`capture`), the model's
    return value in ``acts.output``. The pass keeps no graph unless ``grad``/``detach=False``.

    >>> import featviz, torch
    >>> featviz.activations(featviz.SimpleCNN(), torch.zeros(10, 1, 28, 28), "conv1")["conv1"].shape
    torch.Size([10, 16, 24, 24])
    """
    return Capture(model, layers, **options).run(x)


def batched_activations(model: nn.Module, data: Any, layers: LayerSpec = None,
                        batch_size: int = 256, device: str | torch.device | None = None, *,
                        distributed: bool | None = None, stop_after: Union[bool, str] = False,
                        **options: Any) -> Iterator[tuple[Tensor, Tensor | None, Activations]]:
    """Stream ``(images, labels_or_None, acts)`` over ``data`` (images, an ``(images, labels)``
    pair, a Dataset or a DataLoader) one batch at a time; ``device``, if given, is checked.

    A DataLoader's own ``num_workers`` and ``pin_memory`` are used; pinned batches go to a
    GPU model with ``non_blocking`` copies. ``stop_after``: early exit, see :class:`Capture`.

    distributed : with ``reduce=`` and ``torch.distributed`` initialised (``None``: auto;
        ``False`` opts out), each rank streams only its shard, images ``rank::world``
        (see :mod:`featviz.distributed`); merging the reduced results is the caller's,
        e.g. with ``featviz.distributed.merge_sums``. Without ``reduce=`` nothing is
        split (whole maps cannot be merged cheaply): every rank streams all of ``data``,
        and ``distributed=True`` raises a ``ValueError``.

    >>> import featviz, torch
    >>> x = torch.zeros(10, 1, 28, 28)
    >>> [a["conv2"].shape for _, _, a in batched_activations(featviz.SimpleCNN(), x, "conv2",
    ...                                                      batch_size=8, reduce="max")]
    [torch.Size([8, 32, 3]), torch.Size([2, 32, 3])]
    """
    from .. import distributed as dist

    if distributed and options.get("reduce") is None:
        raise ValueError("distributed=True needs reduce= (e.g. reduce='max'): whole maps cannot "
                         "be merged across ranks cheaply. Pass reduce=, or distributed=False.")
    split = options.get("reduce") is not None and dist.active(distributed)
    cap = Capture(model, layers, stop_after=stop_after, **options)
    check_device(model, device)
    for images, labels in batches(dist.shard(data, batch_size) if split else data, batch_size):
        yield images, labels, cap.run(images)  # a pinned batch goes to the GPU non_blocking
