"""Training and evaluation: ``fit``, ``evaluate``, ``predict``.

``fit`` is a plain PyTorch training loop with the chores done: the device is
picked for you (CUDA, then Apple MPS, then the CPU), progress is shown with the
running loss and accuracy (a widget in Jupyter, a bar in a terminal, one line
per epoch in a notebook without widgets), a :class:`History` is returned for
plotting, snapshots of the weights can be taken along the way, and pressing
*Interrupt* in Jupyter stops training but keeps the model and the history so far.

Data is either a ``DataLoader`` (or a ``Dataset``) or the tensor fast path,
``(images, labels)`` from :func:`featviz.mnist_tensors`: the whole split as two
tensors, batched by indexing, with no per-image transform. On MNIST, ``fit`` on
the fast path trains an epoch about twice as fast as the tutorial loop over a
``DataLoader`` with ``ToTensor`` (``benchmarks/bench_training.py``).

>>> images, labels = featviz.mnist_tensors(train=True)
>>> model = featviz.SimpleCNN()
>>> history = featviz.fit(model, (images[:1000], labels[:1000]), epochs=1, lr=3e-3,
...                       progress=False)     # a taste: 1,000 images, about a second
>>> test_images, test_labels = featviz.mnist_tensors(train=False)
>>> result = featviz.evaluate(model, (test_images[:1000], test_labels[:1000]))
>>> sorted(result), result["accuracy"] > 0.5   # far above chance (0.1) already
(['accuracy', 'loss'], True)

A full epoch on the 60,000 training images reaches about 98% test accuracy.
"""
from __future__ import annotations

import copy
import functools
import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence, Union

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from ._torch import batches, inference_mode, model_device, run_model, tensor_pair
from .models import default_device

__all__ = [
    "History", "Snapshots", "SnapshotInfo", "fit", "evaluate", "predict",
    "confusion_matrix", "random_shift",
]

#: What ``fit``/``evaluate`` accept as data.
Data = Union[DataLoader, Dataset, "tuple[torch.Tensor, torch.Tensor]"]


# --------------------------------------------------------------------------- data

def _is_tensor_pair(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and any(isinstance(d, torch.Tensor) for d in data)


def _is_data(data: Any) -> bool:
    """Something fit/evaluate can batch: a tensor pair, a DataLoader or a Dataset-like."""
    if isinstance(data, (torch.Tensor, str, bytes, dict)):
        return False
    return (_is_tensor_pair(data) or isinstance(data, (DataLoader, Dataset))
            or (hasattr(data, "__getitem__") and hasattr(data, "__len__")))


def _check_data(data: Any, who: str) -> None:
    """Raise, before any work, for data that is not labelled images fit/evaluate can batch."""
    if not _is_data(data):
        raise _describe_bad_data(data, who)
    if _is_tensor_pair(data):
        tensor_pair(data, who, classes=True)


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
    dataset: Any = data.dataset if isinstance(data, DataLoader) else data  # may have no len()
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


def _labelled_batches(
    data: Any,
    batch_size: int,
    device: torch.device,
    who: str,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(images, labels)`` batches on ``device``; batching itself is ``_torch.batches``."""
    _check_data(data, who)
    for xb, yb in batches(data, batch_size, shuffle=shuffle, generator=generator, who=who):
        if yb is None:
            raise ValueError(
                f"{who}: each batch should be (images, labels), got images only. "
                f"Does the dataset return (image, label) pairs?"
            )
        if type(xb).__module__ == "numpy":
            xb, yb = torch.as_tensor(xb), torch.as_tensor(yb)
        if not isinstance(xb, torch.Tensor):
            raise TypeError(
                f"{who}: the images in each batch should be a tensor, got "
                f"{type(xb).__name__}. Give the dataset a transform such as "
                f"featviz.data.mnist_transform() (ToTensor + Normalize)."
            )
        yield xb.to(device, non_blocking=True), torch.as_tensor(yb).to(device, non_blocking=True)


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


# --------------------------------------------------------------------------- progress

def _display_kind() -> str:
    """How progress can be shown here: ``"widget"`` in a Jupyter kernel with ipywidgets,
    ``"lines"`` in one without (a text bar's carriage returns would be saved into the
    notebook as raw text), ``"bar"`` elsewhere (a terminal, a script, a Qt console)."""
    in_kernel = ("ipykernel.zmqshell" in sys.modules
                 or "IPython.utils._process_emscripten" in sys.modules)
    if not in_kernel or any(k == "QT_API" or k.startswith("SPYDER") for k in os.environ):
        return "bar"
    try:
        from tqdm.notebook import IProgress
    except ImportError:
        return "lines"
    return "widget" if IProgress is not None else "lines"


class _EpochProgress:
    """One epoch's progress: a tqdm bar (terminal) or widget (Jupyter) updated as it
    goes, or a one-line summary printed at the end (a notebook without widgets).

    ``show`` takes the running means; ``summary`` is the clean text a saved notebook
    keeps, e.g. ``epoch 1/2: 938 batches in 2.6 s; loss 0.3266, accuracy 90.30%``.
    """

    def __init__(self, total: int | None, desc: str, enabled: bool) -> None:
        self.desc, self.count, self.closed = desc, 0, False
        self.stats: dict[str, float] = {}
        self.start = time.perf_counter()
        self.kind = _display_kind() if enabled else "off"
        self.bar = None
        if self.kind in ("bar", "widget"):
            from tqdm import std

            base = std.tqdm
            if self.kind == "widget":
                from tqdm.notebook import tqdm_notebook

                base = _notebook_bar_class(tqdm_notebook)
            self.bar = base(total=total, desc=desc, leave=True, unit="batch", dynamic_ncols=True)

    @property
    def live(self) -> bool:
        """Whether running values are shown as training goes (worth computing)."""
        return self.bar is not None

    def advance(self) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    def show(self, loss: float, accuracy: float, val_accuracy: float | None = None) -> None:
        self.stats.update(loss=loss, accuracy=accuracy)
        post = {"loss": f"{loss:.4f}", "acc": f"{100 * accuracy:.2f}%"}
        if val_accuracy is not None:
            self.stats["val_accuracy"] = val_accuracy
            post["val_acc"] = f"{100 * val_accuracy:.2f}%"
        if self.bar is not None:
            self.bar.set_postfix(refresh=False, **post)

    def summary(self) -> str:
        s = self.stats
        text = f"{self.desc}: {self.count} batches in {time.perf_counter() - self.start:.1f} s"
        if "loss" in s:
            text += f"; loss {s['loss']:.4f}, accuracy {100 * s['accuracy']:.2f}%"
        if "val_accuracy" in s:
            text += f", validation accuracy {100 * s['val_accuracy']:.2f}%"
        return text

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.bar is not None:
            self.bar.featviz_summary = self.summary()
            self.bar.close()
        elif self.kind == "lines":
            print(self.summary(), flush=True)


def _widget_bundle(widget: Any, text: str | None) -> dict[str, Any] | None:
    """The widget's display data with ``text`` as its plain-text form, or None."""
    bundle = getattr(widget, "_repr_mimebundle_", None)
    data = bundle() if callable(bundle) else None
    if not text or not isinstance(data, dict) or not any("widget-view" in k for k in data):
        return None
    return {**data, "text/plain": text}


@functools.lru_cache(maxsize=None)
def _notebook_bar_class(base: type) -> type:
    """tqdm's notebook bar, redisplayed with a clean text form when it closes.

    A notebook saved after running keeps, next to the widget, a text version of
    each output for readers without widgets (GitHub, nbviewer). tqdm's widget
    writes that text once, at 0%; showing the bar again when it closes replaces
    it with the epoch's one-line summary (batches, time, loss and accuracy).
    """

    class NotebookBar(base):
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
            if handle is None:
                return
            bundle = _widget_bundle(self.container, getattr(self, "featviz_summary", None))
            if bundle is None:
                handle.update(self.container)
            else:
                handle.update(bundle, raw=True)

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
        """Loss and error rate (100 % - accuracy) against epochs, both on a log scale (where
        every value is above 0), as a ``matplotlib.figure.Figure``.

        ``smooth`` averages that many logged points for the training curves (1 = raw).
        """
        from matplotlib.figure import Figure

        fig = Figure(figsize=(9, 3.4), layout="constrained")
        ax_loss, ax_err = fig.subplots(1, 2)

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
        # the error rate, 100 % - accuracy, on a log scale like the loss: the first steps
        # (90 % wrong) and the last fraction of a percent both stay in view
        ax_err.plot(self.epoch, [100 * (1 - a) for a in smoothed(self.accuracy)], lw=1.2,
                    label="training (running)")
        val = [e for e in self.epochs if "val_loss" in e]
        if val:
            ax_loss.plot([e["epoch"] for e in val], [e["val_loss"] for e in val], "o-",
                         label="validation")
            ax_err.plot([e["epoch"] for e in val], [100 * (1 - e["val_accuracy"]) for e in val],
                        "o-", label="validation")
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="Loss")
        ax_err.set(xlabel="epoch", ylabel="misclassified (%)", title="Error rate (100 % − accuracy)")
        for ax in (ax_loss, ax_err):
            ys = [y for line in ax.lines for y in line.get_ydata()]
            if ys and min(ys) > 0:
                ax.set_yscale("log")
        if ax_err.get_yscale() == "log":
            from matplotlib.ticker import FuncFormatter
            ax_err.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        for ax in (ax_loss, ax_err):
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
    >>> history = fit(featviz.SimpleCNN(), (images, labels), epochs=2, batch_size=4,
    ...               snapshot=snaps, snapshot_steps=[1, 4], progress=False)
    >>> [s["label"] for s in snaps]          # 10 images in batches of 4: 3 steps an epoch
    ['init', 'step 1', 'epoch 1', 'step 4', 'epoch 2']

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

    >>> shift = random_shift(2)
    >>> shift(images).shape          # the same batch, each image moved by up to 2 pixels
    torch.Size([10, 1, 28, 28])
    >>> history = fit(featviz.SimpleCNN(), (images, labels), augment=shift, progress=False)
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


class _Tally:
    """Running sums over some steps: loss times batch size, correct predictions, examples.

    The sums stay on the training device, so a step never waits for it; they are
    read (one synchronisation) only when a window of steps is logged.
    """

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.seen = self.steps = 0

    def add(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss += loss
        self.correct += correct
        self.seen += n
        self.steps += 1

    def absorb(self, other: "_Tally") -> None:
        """Add ``other``'s sums to these and empty ``other``."""
        self.loss += other.loss
        self.correct += other.correct
        self.seen += other.seen
        other.loss.zero_()
        other.correct.zero_()
        other.seen = other.steps = 0

    def means(self) -> tuple[float, float]:
        """Mean loss and accuracy over the examples seen (0 when there were none)."""
        seen = max(self.seen, 1)
        return float(self.loss) / seen, int(self.correct) / seen


class _Recorder:
    """The bookkeeping of :func:`fit`: every ``log_every`` steps a window of steps
    becomes one point of the :class:`History`; every epoch, one record."""

    def __init__(self, device: torch.device, opt: torch.optim.Optimizer, log_every: int) -> None:
        self.device, self.opt, self.log_every = device, opt, log_every
        self.history = History(device=str(device))
        self.window, self.epoch_sums = _Tally(device), _Tally(device)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Count one training batch (its mean ``loss`` and ``logits``) into the window."""
        n = len(labels)
        with torch.no_grad():
            self.window.add(loss.detach() * n, (logits.argmax(1) == labels).sum(), n)
        self.history.examples += n

    def due(self, last: bool) -> bool:
        """Whether the window should be logged now (full, or the epoch's last batch)."""
        return self.window.steps >= self.log_every or last

    def log(self, step: int, epoch_pos: float) -> None:
        """Close the current window: one history point; its sums move to the epoch's."""
        loss, accuracy = self.window.means()
        h = self.history
        h.step.append(step)
        h.epoch.append(epoch_pos)
        h.loss.append(loss)
        h.accuracy.append(accuracy)
        h.lr.append(float(self.opt.param_groups[0]["lr"]))
        self.epoch_sums.absorb(self.window)

    def start_epoch(self) -> None:
        self.epoch_sums = _Tally(self.device)

    def end_epoch(self, ep: int, started: float, val: dict[str, float] | None) -> dict:
        """The epoch's record: training loss and accuracy, validation scores, seconds."""
        loss, accuracy = self.epoch_sums.means()
        record = {"epoch": ep + 1, "train_loss": loss, "train_accuracy": accuracy}
        if val is not None:
            record["val_loss"], record["val_accuracy"] = val["loss"], val["accuracy"]
        record["seconds"] = time.perf_counter() - started
        self.history.epochs.append(record)
        return record


_INTERRUPTED = ("Training interrupted after {} steps; the model keeps the weights it "
                "reached, and the history so far is returned.")


class _Loop:
    """One call of :func:`fit`: ``step`` trains on one batch, ``epoch`` is one pass
    over the data, ``end_epoch`` validates, reports and snapshots, and ``run`` does
    the epochs, keeping what was reached when interrupted. The bookkeeping is a
    :class:`_Recorder`'s, the display an :class:`_EpochProgress`'s."""

    def __init__(self, model: nn.Module, opt: torch.optim.Optimizer, sched: Any,
                 recorder: _Recorder, *, loss_fn: Callable, augment: Callable | None,
                 channels_last: bool, per_epoch: int | None, snapshot: Callable | None,
                 snap_at: set[int]) -> None:
        self.model, self.opt, self.sched, self.rec = model, opt, sched, recorder
        self.loss_fn, self.augment, self.channels_last = loss_fn, augment, channels_last
        self.per_epoch, self.snapshot, self.snap_at = per_epoch, snapshot, snap_at
        self.steps = 0
        self.progress = _EpochProgress(None, "", enabled=False)

    def take(self, label: str, epoch_pos: float) -> None:
        """Call the snapshot callback, with the model in eval mode for the call."""
        if self.snapshot is not None:
            with inference_mode(self.model):
                self.snapshot(self.model, SnapshotInfo(label, self.steps, round(epoch_pos, 4)))

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        try:
            return run_model(self.model, xb)
        except RuntimeError as exc:
            # a forward that calls x.view() on a convolution's output cannot take
            # channels-last tensors: go back to the ordinary layout, once, and retry
            if not (self.channels_last and self.steps == 0 and "view" in str(exc)):
                raise
            self.channels_last = False
            self.model.to(memory_format=torch.contiguous_format)
            return run_model(self.model, xb.contiguous())

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if self.augment is not None:
            xb = self.augment(xb)
        if self.channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        logits = self.forward(xb)
        loss = self.loss_fn(logits, yb)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.steps += 1
        self.rec.add(loss, logits, yb)

    def epoch(self, ep: int, epochs: int, batches_of: Callable[[], Iterable],
              progress: bool) -> None:
        """One pass over the data; ``batches_of()`` gives this epoch's batches."""
        self.model.train()
        self.rec.start_epoch()
        self.progress = _EpochProgress(self.per_epoch, f"epoch {ep + 1}/{epochs}", progress)
        per = self.per_epoch
        for i, (xb, yb) in enumerate(batches_of()):
            self.step(xb, yb)
            if self.rec.due(last=per is not None and i + 1 == per):
                self.rec.log(self.steps, ep + (i + 1) / per if per else ep + 1)
                if self.progress.live:
                    self.progress.show(*self.rec.epoch_sums.means())
            self.progress.advance()
            if self.steps in self.snap_at:
                self.take(f"step {self.steps}", ep + (i + 1) / per if per else ep)
        if self.rec.window.seen:  # data without a length: the last, partial window
            self.rec.log(self.steps, ep + 1.0)

    def end_epoch(self, ep: int, started: float, val: Callable[[], dict] | None) -> None:
        record = self.rec.end_epoch(ep, started, None if val is None else val())
        self.progress.show(record["train_loss"], record["train_accuracy"],
                           record.get("val_accuracy"))
        self.progress.close()
        self.take(f"epoch {ep + 1}", ep + 1.0)

    def run(self, epochs: int, batches_of: Callable[[], Iterable],
            val: Callable[[], dict] | None, progress: bool) -> History:
        """All epochs; on Ctrl-C the model keeps its weights and the history is marked."""
        start = time.perf_counter()
        try:
            self.take("init", 0.0)
            for ep in range(epochs):
                started = time.perf_counter()
                self.epoch(ep, epochs, batches_of, progress)
                self.end_epoch(ep, started, val)
        except KeyboardInterrupt:
            self.rec.history.interrupted = True
            self.progress.close()
            if progress:
                from tqdm import std

                std.tqdm.write(_INTERRUPTED.format(self.steps))
        finally:
            self.progress.close()
            if self.channels_last:
                self.model.to(memory_format=torch.contiguous_format)
            self.model.eval()
            self.rec.history.seconds = time.perf_counter() - start
        return self.rec.history


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
    progress : show the running loss and accuracy: a bar in a terminal, a widget in
        Jupyter, one summary line per epoch in a notebook without widgets.
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

    >>> train_images, train_labels = featviz.mnist_tensors()
    >>> test_images, test_labels = featviz.mnist_tensors(train=False)
    >>> history = fit(featviz.SimpleCNN(), (train_images[:1000], train_labels[:1000]),
    ...               lr=3e-3, val_data=(test_images[:500], test_labels[:500]), progress=False)
    >>> len(history.epochs), history.epochs[-1]["val_accuracy"] > 0.5
    (1, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"fit expects a torch.nn.Module as model, got {type(model).__name__}.")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    _check_data(data, "fit")
    dev = _resolve_device(device)

    model.to(dev)
    if channels_last is None:
        channels_last = dev.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in model.modules())
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _make_optimizer(model, optimizer, float(lr), weight_decay)
    per_epoch = _num_batches(data, batch_size)
    sched = _make_schedule(schedule, opt, float(lr), per_epoch * epochs if per_epoch else None)
    loop = _Loop(model, opt, sched, _Recorder(dev, opt, max(1, int(log_every))),
                 loss_fn=loss_fn, augment=augment, channels_last=bool(channels_last),
                 per_epoch=per_epoch, snapshot=snapshot, snap_at={int(s) for s in snapshot_steps})

    generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None

    def batches_of() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return _labelled_batches(data, batch_size, dev, "fit", shuffle=True, generator=generator)

    val = None if val_data is None else functools.partial(
        evaluate, model, val_data, batch_size=max(batch_size, 500))

    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices, enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(int(seed))
        return loop.run(epochs, batches_of, val, progress)


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

    >>> test_images, test_labels = featviz.mnist_tensors(train=False)
    >>> result = evaluate(featviz.pretrained(), (test_images[:1000], test_labels[:1000]))
    >>> sorted(result), result["accuracy"] > 0.95
    (['accuracy', 'loss'], True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"evaluate expects a torch.nn.Module as model, got {type(model).__name__}.")
    _check_data(data, "evaluate")
    dev = model_device(model) if device is None else _resolve_device(device)
    model.to(dev).eval()
    total_loss = torch.zeros((), device=dev, dtype=torch.float64)
    correct = torch.zeros((), device=dev, dtype=torch.long)
    seen = 0
    for xb, yb in _labelled_batches(data, batch_size, dev, "evaluate"):
        logits = run_model(model, xb)
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
    if not isinstance(x, torch.Tensor) and not _is_data(x):
        raise TypeError(
            f"predict expects images as a tensor (N, C, H, W) or data as for evaluate, got "
            f"{type(x).__name__}."
        )
    dev = model_device(model) if device is None else _resolve_device(device)
    model.to(dev).eval()
    probs = [F.softmax(run_model(model, torch.as_tensor(xb).to(dev)).float(), dim=1).cpu()
             for xb, _ in batches(x, batch_size, who="predict")]
    prob = torch.cat(probs) if probs else torch.zeros(0, 0)
    return prob.argmax(1), prob


@torch.no_grad()
def confusion_matrix(model: nn.Module, data: Data, num_classes: int | None = None,
                     batch_size: int = 1000) -> torch.Tensor:
    """Counts of (true class, predicted class): ``(classes, classes)`` int64, rows = truth.

    >>> test_images, test_labels = featviz.mnist_tensors(train=False)
    >>> cm = confusion_matrix(model, (test_images[:1000], test_labels[:1000]))
    >>> cm.shape, int(cm.sum())
    (torch.Size([10, 10]), 1000)
    >>> bool(cm.diag().sum() / cm.sum() > 0.95)     # the diagonal holds the hits
    True
    """
    truth, preds = [], []
    dev = model_device(model)
    model.eval()
    for xb, yb in _labelled_batches(data, batch_size, dev, "confusion_matrix"):
        preds.append(run_model(model, xb).argmax(1).cpu())
        truth.append(yb.cpu())
    y, p = torch.cat(truth).long(), torch.cat(preds).long()
    k = num_classes or int(max(int(y.max()), int(p.max())) + 1)
    return torch.bincount(y * k + p, minlength=k * k).reshape(k, k)
