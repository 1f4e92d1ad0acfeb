"""Training and evaluation: ``fit``, ``evaluate``, ``predict``.

``fit`` is a plain PyTorch training loop with the chores done: the device is
picked for you (CUDA, then Apple MPS, then the CPU), a progress bar shows loss
and accuracy (a widget in Jupyter, text in a terminal), a :class:`History` is
returned for plotting, snapshots of the weights can be taken along the way,
and pressing *Interrupt* in Jupyter stops training but keeps the model and the
history so far.

Data is either a ``DataLoader`` (or a ``Dataset``) or the tensor fast path,
``(images, labels)`` from :func:`featviz.mnist_tensors`: the whole split as two
tensors, batched by indexing, with no per-image transform. On MNIST, ``fit`` on
the fast path trains an epoch about twice as fast as the tutorial loop over a
``DataLoader`` with ``ToTensor`` (``benchmarks/bench_training.py``).

>>> model = featviz.SimpleCNN()
>>> history = featviz.fit(model, featviz.mnist_tensors(train=True), epochs=1)
>>> featviz.evaluate(model, featviz.mnist_tensors(train=False))
{'loss': 0.05..., 'accuracy': 0.98...}
"""
from __future__ import annotations

import copy
import functools
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from .models import default_device

__all__ = [
    "History", "Snapshots", "SnapshotInfo", "fit", "evaluate", "predict",
    "confusion_matrix", "random_shift", "model_device",
]

#: What ``fit``/``evaluate`` accept as data.
Data = Union[DataLoader, Dataset, "tuple[torch.Tensor, torch.Tensor]"]


# --------------------------------------------------------------------------- data

def _check_tensor_pair(data: Any, who: str) -> tuple[torch.Tensor, torch.Tensor]:
    if len(data) != 2:
        raise ValueError(
            f"{who} expects data as (images, labels), got a {type(data).__name__} of "
            f"{len(data)} items. Use featviz.mnist_tensors(), which returns that pair."
        )
    images, labels = data
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"{who} expects (images, labels) as two torch tensors, got "
            f"({type(images).__name__}, {type(labels).__name__}). Convert with torch.as_tensor()."
        )
    if images.dim() < 2:
        raise ValueError(
            f"{who}: images should have a batch dimension, e.g. (N, 1, 28, 28); got shape "
            f"{tuple(images.shape)}."
        )
    if labels.dim() != 1 or len(labels) != len(images):
        raise ValueError(
            f"{who}: labels should be one class index per image, shape ({len(images)},); got "
            f"shape {tuple(labels.shape)} for {len(images)} images."
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        raise TypeError(
            f"{who}: labels should be integer class indices, got dtype {labels.dtype}. "
            f"Convert with labels.long()."
        )
    if len(images) == 0:
        raise ValueError(f"{who}: the data is empty (0 images).")
    return images, labels


def _is_tensor_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and any(isinstance(d, torch.Tensor) for d in data)


def _is_data(data: Any) -> bool:
    """Something fit/evaluate can batch: a tensor pair, a DataLoader or a Dataset-like."""
    if isinstance(data, (torch.Tensor, str, bytes, dict)):
        return False
    return (_is_tensor_pair(data) or isinstance(data, (DataLoader, Dataset))
            or (hasattr(data, "__getitem__") and hasattr(data, "__len__")))


def _describe_bad_data(data: Any, who: str) -> TypeError:
    if isinstance(data, torch.Tensor):
        return TypeError(
            f"{who} got a single tensor of shape {tuple(data.shape)}, but it needs the labels "
            f"too: pass (images, labels), e.g. featviz.mnist_tensors(train=True)."
        )
    return TypeError(
        f"{who} expects a DataLoader, a Dataset or an (images, labels) pair of tensors, got "
        f"{type(data).__name__}. For MNIST use featviz.mnist_tensors() (fast) or "
        f"featviz.load_mnist()."
    )


def _num_examples(data: Any) -> int | None:
    if _is_tensor_pair(data):
        return len(data[0])
    dataset = data.dataset if isinstance(data, DataLoader) else data
    try:
        return len(dataset)
    except TypeError:
        return None


def _num_batches(data: Any, batch_size: int, drop_last: bool = False) -> int | None:
    if isinstance(data, DataLoader):
        try:
            return len(data)
        except TypeError:
            return None
    n = _num_examples(data)
    if n is None:
        return None
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def _batches(
    data: Any,
    batch_size: int,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator | None,
    who: str,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches on ``device`` from any supported data."""
    if _is_tensor_pair(data):
        images, labels = _check_tensor_pair(data, who)
        n = len(images)
        order = torch.randperm(n, generator=generator) if shuffle else None
        for start in range(0, n, batch_size):
            if order is None:
                xb, yb = images[start:start + batch_size], labels[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                xb, yb = images[idx.to(images.device)], labels[idx.to(labels.device)]
            yield xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
        return
    if isinstance(data, DataLoader):
        loader = data
    elif _is_data(data):
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
    else:
        raise _describe_bad_data(data, who)
    for batch in _collated(loader, who):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                f"{who}: each batch should be (images, labels), got a {type(batch).__name__}. "
                f"Does the dataset return (image, label) pairs?"
            )
        xb, yb = batch[0], batch[1]
        if not isinstance(xb, torch.Tensor):
            raise TypeError(
                f"{who}: the images in each batch should be a tensor, got "
                f"{type(xb).__name__}. Give the dataset a transform such as "
                f"featviz.data.default_transform() (ToTensor + Normalize)."
            )
        yield xb.to(device, non_blocking=True), torch.as_tensor(yb).to(device, non_blocking=True)


def _collated(loader: DataLoader, who: str) -> Iterator[Any]:
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
                f"Most often the dataset returns PIL images: give it a transform such as "
                f"featviz.data.default_transform() (ToTensor + Normalize)."
            ) from exc
        yield batch


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model without any."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return default_device()
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a device torch knows; use 'cpu', 'cuda', 'cuda:0' or 'mps' "
            f"(or None to pick the best available)."
        ) from exc


def _progress_bar(total: int | None, desc: str, enabled: bool):
    """A tqdm bar: a widget in Jupyter, text in a terminal, nothing when disabled."""
    from tqdm.auto import tqdm  # imported here: tqdm.auto looks for ipywidgets

    kwargs = dict(total=total, desc=desc, disable=not enabled, leave=True, unit="batch",
                  dynamic_ncols=True)
    if enabled:
        try:
            from tqdm.notebook import tqdm_notebook
        except ImportError:
            tqdm_notebook = None
        if tqdm_notebook is not None and issubclass(tqdm, tqdm_notebook):
            return _notebook_bar_class(tqdm)(**kwargs)
    return tqdm(**kwargs)


@functools.lru_cache(maxsize=None)
def _notebook_bar_class(base: type) -> type:
    """tqdm's notebook bar, redisplayed when it closes.

    A notebook saved after running keeps, next to the widget, a text version of
    each output for readers without widgets (GitHub, nbviewer). tqdm's widget
    writes that text once, at 0%; showing the bar again when it closes makes
    the saved text the final state (100%, loss and accuracy).
    """

    class NotebookBar(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["display"] = False
            super().__init__(*args, **kwargs)
            self._featviz_handle = None
            if not self.disable:
                from IPython.display import display

                self._featviz_handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self) -> None:
            super().close()
            handle, self._featviz_handle = getattr(self, "_featviz_handle", None), None
            if handle is not None:
                handle.update(self.container)

    return NotebookBar


# --------------------------------------------------------------------------- history

@dataclass
class History:
    """What happened during :func:`fit`, ready to plot.

    Attributes
    ----------
    step, epoch, loss, accuracy, lr : lists, one entry per logged point (every
        ``log_every`` optimizer steps): the step count, the (fractional) epoch,
        the mean training loss and accuracy over those steps, the learning rate.
    epochs : one dict per finished epoch: ``epoch``, ``train_loss``,
        ``train_accuracy``, ``seconds``, and ``val_loss``/``val_accuracy`` when
        ``val_data`` was given.
    interrupted : True when training was stopped early (KeyboardInterrupt).
    device : the device it trained on. seconds : total training time.
    """

    step: list[int] = field(default_factory=list)
    epoch: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    interrupted: bool = False
    device: str = "cpu"
    seconds: float = 0.0
    examples: int = 0

    @property
    def steps(self) -> int:
        """Optimizer steps taken."""
        return self.step[-1] if self.step else 0

    def final(self) -> dict[str, float]:
        """The last finished epoch's record (or the last logged point if none finished)."""
        if self.epochs:
            return dict(self.epochs[-1])
        if self.step:
            return {"epoch": self.epoch[-1], "train_loss": self.loss[-1],
                    "train_accuracy": self.accuracy[-1]}
        return {}

    def plot(self, smooth: int = 5):
        """Loss and accuracy against epochs, as a ``matplotlib.figure.Figure``.

        ``smooth`` averages that many logged points for the training curves (1 = raw).
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.4), layout="constrained")
        ax_loss, ax_acc = fig.subplots(1, 2)

        def smoothed(values: Sequence[float]) -> list[float]:
            k = max(1, int(smooth))
            out, total = [], 0.0
            for i, v in enumerate(values):
                total += v
                if i >= k:
                    total -= values[i - k]
                out.append(total / min(i + 1, k))
            return out

        ax_loss.plot(self.epoch, smoothed(self.loss), lw=1.2, label="training (running)")
        ax_acc.plot(self.epoch, [100 * a for a in smoothed(self.accuracy)], lw=1.2,
                    label="training (running)")
        val = [e for e in self.epochs if "val_loss" in e]
        if val:
            ax_loss.plot([e["epoch"] for e in val], [e["val_loss"] for e in val], "o-",
                         label="validation")
            ax_acc.plot([e["epoch"] for e in val], [100 * e["val_accuracy"] for e in val],
                        "o-", label="validation")
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
        if self.loss and min(self.loss) > 0:
            ax_loss.set_yscale("log")
        if self.accuracy:
            low = min(smoothed(self.accuracy)[len(self.accuracy) // 10:] or [0.0])
            ax_acc.set_ylim(max(0.0, 100 * low - 2), 100.5)
        for ax in (ax_loss, ax_acc):
            ax.grid(alpha=0.3)
            ax.legend(loc="best", fontsize=8)
        return fig

    def __repr__(self) -> str:
        state = " (interrupted)" if self.interrupted else ""
        last = self.final()
        parts = [f"{len(self.epochs)} epochs, {self.steps} steps on {self.device} in "
                 f"{self.seconds:.1f} s{state}"]
        if "train_loss" in last:
            parts.append(f"train loss {last['train_loss']:.4f}, "
                         f"accuracy {100 * last['train_accuracy']:.2f}%")
        if "val_accuracy" in last:
            parts.append(f"validation loss {last['val_loss']:.4f}, "
                         f"accuracy {100 * last['val_accuracy']:.2f}%")
        return "History(" + "; ".join(parts) + ")"


# --------------------------------------------------------------------------- snapshots

@dataclass(frozen=True)
class SnapshotInfo:
    """When a snapshot is taken: ``label`` ("init", "step 300", "epoch 2"),
    the optimizer ``step`` and the (fractional) ``epoch``."""

    label: str
    step: int
    epoch: float


class Snapshots:
    """A snapshot callback for :func:`fit` that keeps copies of the weights.

    >>> snaps = Snapshots()
    >>> fit(model, data, epochs=2, snapshot=snaps, snapshot_steps=[30, 300])
    >>> [s["label"] for s in snaps]
    ['init', 'step 30', 'step 300', 'epoch 1', 'epoch 2']

    Each entry is a dict with ``label``, ``step``, ``epoch`` and ``state_dict``
    (CPU tensors, cast to ``dtype`` when given, e.g. ``torch.float16`` to halve
    the size on disk). ``models()`` turns them back into models.
    """

    def __init__(self, dtype: torch.dtype | None = None) -> None:
        self.dtype = dtype
        self.items: list[dict[str, Any]] = []

    def __call__(self, model: nn.Module, info: SnapshotInfo) -> None:
        state = {}
        for k, v in model.state_dict().items():
            v = v.detach().to("cpu").clone(memory_format=torch.contiguous_format)
            if self.dtype is not None and v.is_floating_point():
                v = v.to(self.dtype)
            state[k] = v
        self.items.append({"label": info.label, "step": info.step, "epoch": info.epoch,
                           "state_dict": state})

    def __iter__(self):
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]

    def models(self, model: nn.Module) -> list[tuple[str, nn.Module]]:
        """``(label, model)`` pairs: copies of ``model`` holding each snapshot, in eval mode."""
        from .models import load_state

        out = []
        for item in self.items:
            m = copy.deepcopy(model).cpu()
            load_state(m, item["state_dict"], source=f"snapshot {item['label']!r}")
            out.append((item["label"], m.eval()))
        return out


# --------------------------------------------------------------------------- augmentation

def random_shift(max_pixels: int = 2) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch augmentation for :func:`fit`: shift each image by up to ``max_pixels``
    in x and y (independently per image), filling with the background value.

    Works on a whole batch ``(N, C, H, W)`` at once on its own device, so it keeps
    the tensor fast path fast. Random numbers come from torch's global generator,
    which :func:`fit` seeds.

    >>> fit(model, data, epochs=3, augment=random_shift(2))
    """
    if not isinstance(max_pixels, int) or max_pixels < 0:
        raise ValueError(f"max_pixels must be a non-negative integer, got {max_pixels!r}")
    p = max_pixels

    def shift(images: torch.Tensor) -> torch.Tensor:
        if p == 0:
            return images
        n, c, h, w = images.shape
        background = images.amin()
        padded = F.pad(images, (p, p, p, p), value=float(background))
        dy = torch.randint(0, 2 * p + 1, (n,), device=images.device)
        dx = torch.randint(0, 2 * p + 1, (n,), device=images.device)
        rows = (torch.arange(h, device=images.device)[None, :] + dy[:, None])  # (N, H)
        cols = (torch.arange(w, device=images.device)[None, :] + dx[:, None])  # (N, W)
        batch = torch.arange(n, device=images.device)[:, None, None, None]
        chan = torch.arange(c, device=images.device)[None, :, None, None]
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]

    shift.__name__ = f"random_shift({p})"
    return shift


# --------------------------------------------------------------------------- fit

def _make_optimizer(model: nn.Module, optimizer: str | torch.optim.Optimizer, lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    name = str(optimizer).lower()
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        try:
            # the fused kernel updates each tensor in one call: on a CPU about three
            # times faster than the default per-tensor loop, with the same arithmetic
            return cls(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, TypeError, ValueError):  # older torch, or an unsupported device
            return cls(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    raise ValueError(
        f"optimizer={optimizer!r} is not one fit knows; use 'adam', 'adamw', 'sgd' or pass a "
        f"torch.optim.Optimizer built on model.parameters()."
    )


def _make_schedule(schedule: Any, opt: torch.optim.Optimizer, lr: float, total_steps: int | None):
    if schedule is None:
        return None
    if callable(schedule) and not isinstance(schedule, str):
        return schedule(opt)
    name = str(schedule).lower()
    if name not in ("onecycle", "cosine"):
        raise ValueError(
            f"schedule={schedule!r} is not one fit knows; use None (constant learning rate), "
            f"'onecycle', 'cosine', or a function optimizer -> torch LR scheduler."
        )
    if not total_steps:
        raise ValueError(f"schedule={schedule!r} needs to know the number of batches; the data "
                         f"has no length. Pass schedule=None.")
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps,
                                                   pct_start=0.25)
    return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps)


def fit(
    model: nn.Module,
    data: Data,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    seed: int | None = 0,
    snapshot: Callable[[nn.Module, SnapshotInfo], Any] | None = None,
    progress: bool = True,
    *,
    optimizer: str | torch.optim.Optimizer = "adam",
    schedule: str | Callable | None = None,
    weight_decay: float = 0.0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    val_data: Data | None = None,
    snapshot_steps: Iterable[int] = (),
    log_every: int = 10,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.cross_entropy,
    channels_last: bool | None = None,
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` passes; return a :class:`History`.

    Parameters
    ----------
    model : any classifier mapping a batch of images to logits ``(N, classes)``.
        It is moved to ``device``, trained in place, and left in eval mode there.
    data : ``(images, labels)`` tensors (the fast path, e.g. ``mnist_tensors()``),
        a ``DataLoader`` (its own batch size and shuffling are used) or a ``Dataset``.
    epochs, lr, batch_size : the usual; ``lr`` is the peak rate with a schedule.
    device : ``None`` picks CUDA, then Apple MPS, then the CPU.
    seed : seeds the shuffling, the augmentation and any randomness in the model
        (dropout), without disturbing torch's global random state. ``None``: unseeded.
    snapshot : called as ``snapshot(model, SnapshotInfo)`` before the first step
        ("init"), after each step listed in ``snapshot_steps`` and after every epoch.
        :class:`Snapshots` is a ready-made one that keeps copies of the weights.
    progress : show a progress bar with the running loss and accuracy.
    optimizer : "adam" (default), "adamw", "sgd" (momentum 0.9), or an optimizer.
    schedule : None (constant), "onecycle", "cosine" (stepped every batch), or a
        function ``optimizer -> scheduler``.
    augment : applied to each training batch of images on the device, e.g.
        :func:`random_shift`.
    val_data : evaluated after every epoch (recorded in ``history.epochs``).
    log_every : log the running loss/accuracy every this many steps.
    channels_last : train in the channels-last memory layout, which oneDNN's CPU
        convolutions and pooling run faster in (about 15% for SimpleCNN). ``None``
        (default) uses it on the CPU for models with 2-d convolutions, and falls back
        by itself if the model's ``forward`` cannot take it (``x.view`` after a
        convolution). The model is returned in the ordinary layout either way.

    Interrupting (Ctrl-C, or the stop button in Jupyter) ends training early; the
    model keeps the weights it has reached and the history is returned with
    ``interrupted=True``.

    >>> history = fit(SimpleCNN(), mnist_tensors(), epochs=2, val_data=mnist_tensors(train=False))
    >>> history.epochs[-1]["val_accuracy"]
    0.98...
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit expects a torch.nn.Module as model, got {type(model).__name__}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if not _is_data(data):
        raise _describe_bad_data(data, "fit")
    if _is_tensor_pair(data):
        _check_tensor_pair(data, "fit")
    log_every = max(1, int(log_every))
    snap_at = {int(s) for s in snapshot_steps}
    dev = _resolve_device(device)

    model.to(dev)
    use_cl = channels_last
    if use_cl is None:
        use_cl = dev.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    if use_cl:
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, optimizer, float(lr), weight_decay)
    per_epoch = _num_batches(data, batch_size)
    sched = _make_schedule(schedule, opt, float(lr), per_epoch * epochs if per_epoch else None)

    history = History(device=str(dev))
    generator = None
    if seed is not None:
        generator = torch.Generator().manual_seed(int(seed))
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    step = 0
    start = time.perf_counter()
    bar = None

    def take(label: str, epoch_pos: float) -> None:
        if snapshot is not None:
            was_training = model.training
            model.eval()
            snapshot(model, SnapshotInfo(label, step, round(epoch_pos, 4)))
            model.train(was_training)

    with torch.random.fork_rng(devices=fork_devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        try:
            take("init", 0.0)
            for ep in range(epochs):
                model.train()
                bar = _progress_bar(per_epoch, f"epoch {ep + 1}/{epochs}", progress)
                ep_loss = torch.zeros((), device=dev)
                ep_correct = torch.zeros((), device=dev, dtype=torch.long)
                ep_seen = 0
                win_loss = torch.zeros((), device=dev)
                win_correct = torch.zeros((), device=dev, dtype=torch.long)
                win_seen = 0
                win_steps = 0
                ep_start = time.perf_counter()
                for i, (xb, yb) in enumerate(
                        _batches(data, batch_size, dev, True, generator, "fit")):
                    if augment is not None:
                        xb = augment(xb)
                    if use_cl and xb.dim() == 4:
                        xb = xb.contiguous(memory_format=torch.channels_last)
                    try:
                        logits = model(xb)
                    except RuntimeError as exc:
                        # a forward that calls x.view() on a convolution's output
                        # cannot take channels-last tensors: go back, once, and retry
                        if not (use_cl and step == 0 and "view" in str(exc)):
                            raise
                        use_cl = False
                        model.to(memory_format=torch.contiguous_format)
                        xb = xb.contiguous()
                        logits = model(xb)
                    loss = loss_fn(logits, yb)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    step += 1
                    n = len(yb)
                    with torch.no_grad():
                        batch_loss = loss.detach() * n
                        batch_correct = (logits.argmax(1) == yb).sum()
                    win_loss += batch_loss
                    win_correct += batch_correct
                    win_seen += n
                    win_steps += 1
                    last = per_epoch is not None and i + 1 == per_epoch
                    if win_steps >= log_every or last:
                        wl, wc = float(win_loss), int(win_correct)
                        history.step.append(step)
                        history.epoch.append(ep + (i + 1) / per_epoch if per_epoch else ep + 1)
                        history.loss.append(wl / win_seen)
                        history.accuracy.append(wc / win_seen)
                        history.lr.append(float(opt.param_groups[0]["lr"]))
                        ep_loss += win_loss
                        ep_correct += win_correct
                        ep_seen += win_seen
                        win_loss.zero_()
                        win_correct.zero_()
                        win_seen = win_steps = 0
                        if bar is not None:
                            bar.set_postfix(loss=f"{float(ep_loss) / ep_seen:.4f}",
                                            acc=f"{100 * int(ep_correct) / ep_seen:.2f}%",
                                            refresh=False)
                    if bar is not None:
                        bar.update(1)
                    history.examples += n
                    if step in snap_at:
                        take(f"step {step}", ep + (i + 1) / per_epoch if per_epoch else ep)
                if win_seen:  # data without a length: flush the last partial window
                    history.step.append(step)
                    history.epoch.append(ep + 1.0)
                    history.loss.append(float(win_loss) / win_seen)
                    history.accuracy.append(int(win_correct) / win_seen)
                    history.lr.append(float(opt.param_groups[0]["lr"]))
                    ep_loss += win_loss
                    ep_correct += win_correct
                    ep_seen += win_seen
                record = {"epoch": ep + 1, "train_loss": float(ep_loss) / max(ep_seen, 1),
                          "train_accuracy": int(ep_correct) / max(ep_seen, 1)}
                if val_data is not None:
                    val = evaluate(model, val_data, batch_size=max(batch_size, 500))
                    record["val_loss"], record["val_accuracy"] = val["loss"], val["accuracy"]
                    if bar is not None:
                        bar.set_postfix(loss=f"{record['train_loss']:.4f}",
                                        acc=f"{100 * record['train_accuracy']:.2f}%",
                                        val_acc=f"{100 * val['accuracy']:.2f}%", refresh=False)
                record["seconds"] = time.perf_counter() - ep_start
                history.epochs.append(record)
                if bar is not None:
                    bar.close()
                    bar = None
                take(f"epoch {ep + 1}", ep + 1.0)
        except KeyboardInterrupt:
            history.interrupted = True
            if bar is not None:
                bar.close()
            if progress:
                from tqdm.auto import tqdm

                tqdm.write(f"Training interrupted after {step} steps; the model keeps the "
                           f"weights it reached, and the history so far is returned.")
        finally:
            if bar is not None:
                bar.close()
            if use_cl:
                model.to(memory_format=torch.contiguous_format)
            model.eval()
            history.seconds = time.perf_counter() - start
    return history


# --------------------------------------------------------------------------- evaluate / predict

@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Data,
    batch_size: int = 1000,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Mean cross-entropy loss and accuracy of ``model`` on ``data``.

    ``data`` is ``(images, labels)`` tensors, a DataLoader or a Dataset. The model
    runs in eval mode on its own device (or ``device``) and is left in eval mode.

    >>> evaluate(featviz.pretrained(), featviz.mnist_tensors(train=False))
    {'loss': 0.02..., 'accuracy': 0.99...}
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"evaluate expects a torch.nn.Module as model, got {type(model).__name__}.")
    if not _is_data(data):
        raise _describe_bad_data(data, "evaluate")
    dev = model_device(model) if device is None else _resolve_device(device)
    model.to(dev).eval()
    total_loss = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    for xb, yb in _batches(data, batch_size, dev, False, None, "evaluate"):
        logits = model(xb)
        total_loss += F.cross_entropy(logits, yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
        seen += len(yb)
    if seen == 0:
        raise ValueError("evaluate: the data is empty (0 images).")
    return {"loss": float(total_loss) / seen, "accuracy": int(correct) / seen}


@torch.no_grad()
def predict(
    model: nn.Module,
    x: torch.Tensor | Data,
    batch_size: int = 1000,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and class probabilities, on the CPU.

    Parameters
    ----------
    x : images ``(N, C, H, W)``, or data as for :func:`evaluate` (labels ignored).

    Returns
    -------
    pred : ``(N,)`` int64, the most likely class of each image.
    prob : ``(N, classes)`` float32 softmax probabilities; ``prob.max(1).values`` is
        the model's confidence in ``pred``.

    >>> pred, prob = predict(model, images[:8])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"predict expects a torch.nn.Module as model, got {type(model).__name__}.")
    dev = model_device(model) if device is None else _resolve_device(device)
    model.to(dev).eval()
    if isinstance(x, torch.Tensor):
        chunks = (x[i:i + batch_size].to(dev) for i in range(0, max(len(x), 1), batch_size))
    elif _is_data(x):
        chunks = (xb for xb, _ in _batches(x, batch_size, dev, False, None, "predict"))
    else:
        raise TypeError(
            f"predict expects images as a tensor (N, C, H, W) or data as for evaluate, got "
            f"{type(x).__name__}."
        )
    probs = [F.softmax(model(xb).float(), dim=1).cpu() for xb in chunks]
    prob = torch.cat(probs) if probs else torch.zeros(0, 0)
    return prob.argmax(1), prob


@torch.no_grad()
def confusion_matrix(model: nn.Module, data: Data, num_classes: int | None = None,
                     batch_size: int = 1000) -> torch.Tensor:
    """Counts of (true class, predicted class): ``(classes, classes)`` int64, rows = truth.

    >>> cm = confusion_matrix(model, mnist_tensors(train=False))
    >>> cm.diag().sum() / cm.sum()      # the accuracy
    """
    truth, preds = [], []
    dev = model_device(model)
    model.eval()
    for xb, yb in _batches(data, batch_size, dev, False, None, "confusion_matrix"):
        preds.append(model(xb).argmax(1).cpu())
        truth.append(yb.cpu())
    y, p = torch.cat(truth).long(), torch.cat(preds).long()
    k = num_classes or int(max(int(y.max()), int(p.max())) + 1)
    return torch.bincount(y * k + p, minlength=k * k).reshape(k, k)
