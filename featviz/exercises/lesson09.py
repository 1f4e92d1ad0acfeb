"""Exercises of lesson 09 (from insight to a better model).

Every answer is computed from the shipped model, the bundled data or a short training
run when checked, never stored.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from . import (Exercise, Questionnaire, Wrong, as_choice, as_int, call_on_model,
               need_function, on_input)
from . import reading as _reading

#: The learning rate of the shipped recipe (its peak, with the one-cycle schedule),
#: and the ten times larger one that lesson 09 trains with.
LR = 3e-3
HIGH_LR = 3e-2
#: How p1 names a fall in accuracy, in percentage points.
DROPS = {"hardly": (-100.0, 1.0), "a few points": (1.0, 5.0), "many points": (5.0, 100.0)}
#: How p2 names a number of dead channels.
COUNTS: dict[str, tuple[float, float]] = {"none": (0, 0), "a few": (1, 4), "many": (5, 10_000)}


@lru_cache(maxsize=1)
def _model() -> torch.nn.Module:
    from ..models import pretrained

    return pretrained().cpu().eval()


@lru_cache(maxsize=1)
def _test() -> tuple[torch.Tensor, torch.Tensor]:
    from ..data import mnist_tensors

    return mnist_tensors(train=False)


def _probe() -> tuple[torch.Tensor, torch.Tensor]:
    """The lesson's probe: the first 1,000 test digits."""
    images, labels = _test()
    return images[:1000], labels[:1000]


def train_briefly(seed: int = 0, lr: float = LR, conv_bias: float | None = None) -> torch.nn.Module:
    """A SimpleCNN trained for one epoch on the bundled 10,000 training digits (about a
    second on a laptop CPU), from seed ``seed``, with peak learning rate ``lr`` and, if
    given, both convolutions' biases initialised to ``conv_bias``. The same on every CPU.
    """
    from ..data import BundledMNIST, mnist_normalize
    from ..models import SimpleCNN
    from ..training import fit

    sample = BundledMNIST(train=True)
    images = mnist_normalize(sample.data[:, None] / 255.0)
    torch.manual_seed(seed)
    net = SimpleCNN()
    if conv_bias is not None:
        with torch.no_grad():
            for conv in (net.conv1, net.conv2):
                if conv.bias is not None:
                    conv.bias.fill_(conv_bias)
    fit(net, (images, sample.targets), epochs=1, lr=lr, batch_size=64, seed=seed,
        schedule="onecycle", device="cpu", progress=False)
    return net.eval()


# --------------------------------------------------------------------------- p1: a 4-pixel shift

@lru_cache(maxsize=1)
def shift4_drop() -> float:
    """How many percentage points the shipped model's accuracy on the probe (the first 1,000
    test digits) falls under 4-pixel shifts."""
    from ..stats import robustness

    rob = robustness(_model(), _probe(), shifts=(4,), rotations=())
    return 100 * (rob.clean - rob.shift[4])


def _bucket(value: float, buckets: dict[str, tuple[float, float]]) -> str:
    """The first bucket whose ``(low, high)`` range holds ``value``."""
    for name, (low, high) in buckets.items():
        if low <= value <= high:
            return name
    return list(buckets)[-1]


def _shift_drop(answer: Any) -> None:
    choice = as_choice(answer, {"hardly": ("none", "no", "hardly at all"),
                                "a few points": ("a few", "few", "some"),
                                "many points": ("many", "a lot", "much")},
                       "'hardly', 'a few points' or 'many points'")
    drop = shift4_drop()
    truth = _bucket(drop, DROPS)
    if choice == truth:
        return
    raise Wrong(f"not quite: the accuracy falls by {truth} (the table below shows it). "
                "Training moved the digits by up to 2 pixels only; convolution follows a moved "
                "digit, but fc1 reads pool2's 4 x 4 grid cell by cell.")


def _p1_giveaways() -> tuple[str, ...]:
    from ..stats import robustness

    rob = robustness(_model(), _probe(), shifts=(4,), rotations=())
    return (f"{rob.shift[4]:.4f}", f"{rob.shift[4]:.1%}")


p1 = Exercise(
    name="p1",
    prompt="Predict: the shipped network reads 99.3% of the test digits right. Moved 4 pixels "
           "(up, down, left or right), does it read 'hardly' fewer (under 1 point less), "
           "'a few points' fewer (1 to 5) or 'many points' fewer (over 5)?",
    checker=_shift_drop,
    hint_text="Lesson 05 moved one digit and watched pool2's maps change shape. fc1 was trained "
              "on digits moved by at most 2 pixels.",
    solution_text="answer = 'a few points'   # about 3 points: 99.2% -> 96.0% on the probe",
    kind="predict",
    reference=lambda: _bucket(shift4_drop(), DROPS),
    giveaways=_p1_giveaways,
)


# --------------------------------------------------------------------------- p2: dead channels

@lru_cache(maxsize=1)
def high_lr_dead() -> list[int]:
    """relu2's dead channels (on the test set) after one epoch at ten times the learning rate."""
    from ..stats import channel_stats

    return channel_stats(train_briefly(0, lr=HIGH_LR), _test(), "relu2").dead


def _dead_count(answer: Any) -> None:
    choice = as_choice(answer, {"none": ("0", "no", "zero"), "a few": ("few", "some"),
                                "many": ("a lot", "lots")}, "'none', 'a few' or 'many'")
    truth = _bucket(len(high_lr_dead()), COUNTS)
    if choice == truth:
        return
    raise Wrong(f"not so: {truth}. A large step can push a channel's bias so far down that its "
                "ReLU gives 0 for every image; its gradient is then 0 too, and nothing brings "
                "it back.")


p2 = Exercise(
    name="p2",
    prompt="Predict: trained for one epoch with a learning rate ten times the recipe's (0.03), "
           "how many of relu2's 32 channels are dead on the test set: 'none', 'a few' (1 to 4) "
           "or 'many' (5 or more)?",
    checker=_dead_count,
    hint_text="A ReLU channel whose input is negative for every image gives 0 and gets no "
              "gradient: once there, it stays. Large steps get there more easily.",
    solution_text="answer = 'many'   # about a third of them",
    kind="predict",
    reference=lambda: _bucket(len(high_lr_dead()), COUNTS),
    giveaways=lambda: (f"dead relu2 channels: {high_lr_dead()}",
                       f"{len(high_lr_dead())} of 32 relu2 channels dead"),
)


# --------------------------------------------------------------------------- q1: dead channels, code

def _dead_cases() -> list[tuple[str, torch.nn.Module, torch.Tensor, str]]:
    from ..models import SimpleCNN

    images = _test()[0][:300]
    killed = SimpleCNN()
    killed.load_state_dict(_model().state_dict())
    bias1, bias2 = killed.conv1.bias, killed.conv2.bias
    assert bias1 is not None and bias2 is not None
    with torch.no_grad():
        bias2[[3, 17, 30]] = -1e3                  # never above 0 on any image
        bias1[5] = -1e3
    return [("the shipped model, relu2", _model(), images, "relu2"),
            ("a model with relu2 channels 3, 17 and 30 switched off", killed.eval(), images, "relu2"),
            ("the same model, relu1", killed.eval(), images, "relu1"),
            ("the same model, conv2 (before the ReLU: negative values)", killed.eval(), images, "conv2")]


def _as_channels(got: Any, what: str) -> list[int]:
    if isinstance(got, torch.Tensor) or hasattr(got, "__array__"):
        got = torch.as_tensor(got).flatten().tolist()
    if isinstance(got, (int, bool)) or not hasattr(got, "__iter__"):
        raise Wrong(f"return the list of dead channel numbers, not a {type(got).__name__} "
                    f"({got!r}); for {what}.")
    try:
        return sorted(int(c) for c in got)
    except (TypeError, ValueError):
        raise Wrong(f"return channel numbers (ints), got {list(got)[:4]!r} for {what}.") from None


def _dead_channels(answer: Any) -> str:
    from ..stats import channel_stats

    fn = need_function(answer, "dead_channels(model, images, layer)")
    for what, model, images, layer in _dead_cases():
        got = call_on_model(fn, model, images, layer, returns="the list of dead channels",
                            hook_fix="remove it in a `finally:` block, or use "
                                     "featviz.activations, which removes its own.", on=what)
        got_list = _as_channels(got, what)
        stats = channel_stats(model, images, layer)
        expected = stats.dead
        if got_list == expected:
            continue
        alive = [c for c in range(len(stats.mean)) if c not in expected]
        if alive and set(got_list) == set(alive):
            raise Wrong(f"for {what} you returned the live channels; return those that are never "
                        f"above 0.")
        zero = [c for c in range(len(stats.mean)) if float(stats.max[c]) == 0.0]
        if layer == "conv2" and got_list == zero:
            raise Wrong(f"for {what} you listed the channels that are exactly 0; before the ReLU "
                        f"a dead channel is negative everywhere: test `> 0`, not `!= 0`.")
        first = channel_stats(model, images[:1], layer).dead
        if got_list == first and first != expected:
            raise Wrong(f"for {what} you looked at the first image only; a channel is dead when "
                        f"it is never above 0 on any image of the batch.")
        raise Wrong(f"for {what} the dead channels are {expected}, you returned {got_list}.")
    return "Right on all four cases, before and after the ReLU."


q1 = Exercise(
    name="q1",
    prompt="Write dead_channels(model, images, layer): the sorted list of the channels of "
           "`layer` that are never above 0, at any position, on any of the images.",
    checker=_dead_channels,
    hint_text="maps = featviz.activations(model, images, [layer])[layer] is (N, C, H, W). A "
              "channel is alive where its largest value over images and positions is above 0.",
    solution_text="def dead_channels(model, images, layer):\n"
                  "    maps = featviz.activations(model, images, [layer])[layer]\n"
                  "    peak = maps.amax(dim=(0, 2, 3))             # each channel's largest value\n"
                  "    return (peak <= 0).nonzero().flatten().tolist()\n"
                  "answer = dead_channels",
    kind="code",
)


# --------------------------------------------------------------------------- q2: confusions, code

def _confusions(answer: Any) -> str:
    from ..training import confusion_matrix

    fn = need_function(answer, "confusions(model, images, labels, a, b)")
    images, labels = _test()
    images, labels = images[:3000], labels[:3000]
    cm = confusion_matrix(_model(), (images, labels), num_classes=10)
    for a, b in ((4, 9), (9, 4), (3, 5), (7, 2)):
        what = f"a={a}, b={b} on 3,000 test digits"
        got = as_int(call_on_model(fn, _model(), images, labels, a, b, returns="a count",
                                   hook_fix="the function needs no hook at all.", on=what),
                     "a count (a whole number)")
        expected = int(cm[a, b] + cm[b, a])
        if got == expected:
            continue
        if got == int(cm[a, b]) or got == int(cm[b, a]):
            raise Wrong(f"for {what} you counted one direction only; count the {a}s read as "
                        f"{b} and the {b}s read as {a}.")
        if got == int(cm[a, :].sum() + cm[b, :].sum() - cm[a, a] - cm[b, b]):
            raise Wrong(f"for {what} you counted every mistake on {a}s and {b}s; count only "
                        f"those that confuse the two.")
        raise Wrong(f"for {what} there are {expected} such mistakes, you counted {got}.")
    return "Right for four pairs, in both orders."


q2 = Exercise(
    name="q2",
    prompt="Write confusions(model, images, labels, a, b): how many images of digit a the "
           "model reads as b, plus how many of b it reads as a.",
    checker=_confusions,
    hint_text="pred, _ = featviz.predict(model, images) gives the predicted classes; count where "
              "(labels == a) & (pred == b), and the other way round.",
    solution_text="def confusions(model, images, labels, a, b):\n"
                  "    pred, _ = featviz.predict(model, images)\n"
                  "    return int(((labels == a) & (pred == b)).sum() + ((labels == b) & (pred == a)).sum())\n"
                  "answer = confusions",
    kind="code",
)


# --------------------------------------------------------------------------- q3: pool2's step

def _pool2_stride() -> int:
    from ..geometry import receptive_field

    return int(receptive_field(_model(), "pool2").stride[0])


def _one_cell(answer: Any) -> None:
    value = as_int(answer, "a number of pixels")
    expected = _pool2_stride()
    if value == expected:
        return
    if value == 2:
        raise Wrong("2 pixels move conv2's and pool1's maps by one cell; pool2 halves the "
                    "maps once more.")
    if value == 16:
        raise Wrong("16 is the width of what one pool2 unit sees (its receptive field); the "
                    "question is how far apart two neighbouring units look.")
    if value == 1:
        raise Wrong("1 pixel moves conv1's maps by one cell; each pooling doubles the step.")
    raise Wrong(f"{value} is not it: each 2 x 2 pooling doubles the step between units.")


q3 = Exercise(
    name="q3",
    prompt="By how many pixels must a digit move for pool2's maps to move by exactly one cell?",
    checker=_one_cell,
    hint_text="conv1 and conv2 keep the step between units; pool1 and pool2 each double it. "
              "featviz.receptive_field(model, 'pool2').stride says it.",
    solution_text="answer = featviz.receptive_field(model, 'pool2').stride[0]   # 4",
    reference=_pool2_stride,
)


def confusion_pair(model: torch.nn.Module, a: int = 4, b: int = 9) -> list[int]:
    """The indices of the test images of ``a`` read as ``b`` or of ``b`` read as ``a``."""
    from ..training import predict

    images, labels = _test()
    with on_input(f"confusion_pair(a={a}, b={b})"):
        pred, _ = predict(model, images, batch_size=500)
    mask = ((labels == a) & (pred == b)) | ((labels == b) & (pred == a))
    return mask.nonzero().flatten().tolist()


questionnaire = Questionnaire((
    ("What does featviz.robustness measure, and why average over four directions?",
     "The accuracy on the data shifted by d pixels (or rotated); a digit can move any way, and "
     "one direction alone can hide or exaggerate a weakness."),
    ("Map stability and accuracy under a shift are two different measures. What does each "
     "say, and which did anti-aliased pooling improve?",
     "Stability: how much the maps only move when the image moves (cosine after shifting "
     "back); accuracy: whether the answer survives. Anti-aliasing made pool2's maps more "
     "stable but hardly changed the accuracy; the augmentation did the opposite."),
    ("Why does blurring before subsampling make maps more stable?",
     "A max-pool with stride 2 keeps one value of each 2 x 2 block: a one-pixel move changes "
     "which value wins, so the map changes shape (aliasing). A blur first spreads each value, "
     "so the subsampled map changes smoothly with the shift."),
    ("Why train and measure each variant from several seeds?",
     "Two runs of the same recipe differ; a difference between recipes means something only "
     "when it is larger than the spread between seeds."),
    ("What is a dead channel, and why does it not come back during training?",
     "A channel whose ReLU output is 0 on every image; its gradient is then 0, so no update "
     "changes the weights that feed it."),
    ("Removing a dead channel costs no accuracy at all. Why, and what does removing a live "
     "but quiet channel cost?",
     "A dead channel contributes 0 to every later layer already; a live one carries some "
     "evidence, and its cost is measured, not assumed: the pruning curve shows it."),
    ("A targeted change lowers the 4-vs-9 confusions of one seed. What else must you check "
     "before you keep it?",
     "The spread over seeds (is the fall larger than the seeds' own differences?), the other "
     "confusions and the overall accuracy: a change can move mistakes rather than remove them."),
))

reading = _reading(
    ("zhang2019", "anti-aliased pooling: blur before subsampling, measured on ImageNet networks."),
    ("azulay2019", "how a shift of one pixel can change a modern network's answer, and why."),
    ("simard2003", "augmentation with distorted digits, on MNIST."),
    ("lu2020", "why ReLU units die, and how initialisation makes it more or less likely."),
    ("li2017", "pruning whole filters by their size, and what it costs."),
    ("bouthillier2021", "why one training run is not a measurement: variance across seeds."),
)
