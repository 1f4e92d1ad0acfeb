"""Exercises of lesson 05 (the explorer).

Every answer is computed from the shipped model and data when checked, never
stored: if the checkpoint is retrained, the checkers follow it.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from . import Exercise, Wrong

#: A relu2 filter "ignores" the digit 1 when its mean response to images of 1s is
#: below this fraction of its mean response to the other digits.
IGNORE_FRACTION = 0.10
#: How many test images the "ignores" statistics use (about 100 per digit).
SAMPLE = 1000


@lru_cache(maxsize=1)
def _model() -> torch.nn.Module:
    from ..models import pretrained

    return pretrained().cpu().eval()


@lru_cache(maxsize=1)
def _explorer_images() -> tuple[torch.Tensor, torch.Tensor]:
    from ..widgets import default_images

    return default_images()


@lru_cache(maxsize=1)
def _relu2_by_digit() -> tuple[torch.Tensor, torch.Tensor]:
    """Mean relu2 activation of each channel on 1s and on the other digits."""
    from ..data import mnist_tensors
    from ..hooks import activations

    images, labels = mnist_tensors(train=False)
    images, labels = images[:SAMPLE], labels[:SAMPLE]
    means = activations(_model(), images, ["relu2"])["relu2"].mean(dim=(2, 3))
    return means[labels == 1].mean(0), means[labels != 1].mean(0)


def ignoring_one() -> list[int]:
    """The relu2 filters that ignore the digit 1 (the answers q1 accepts)."""
    ones, others = _relu2_by_digit()
    return [c for c in range(len(ones))
            if others[c] > 0 and ones[c] < IGNORE_FRACTION * others[c]]


def _channel(answer: Any, channels: int) -> int:
    if isinstance(answer, bool) or not isinstance(answer, int):
        try:
            if isinstance(answer, torch.Tensor) and answer.numel() == 1:
                answer = int(answer)
            else:
                raise TypeError
        except TypeError:
            raise Wrong(f"give a filter number (an int), not {type(answer).__name__}.") from None
    if not 0 <= answer < channels:
        raise Wrong(f"relu2 has {channels} filters, numbered 0 to {channels - 1}; "
                    f"{answer} is not one of them.")
    return int(answer)


def _ignores_one(answer: Any) -> None:
    ones, others = _relu2_by_digit()
    c = _channel(answer, len(ones))
    if others[c] <= 0:
        raise Wrong(f"filter {c} is silent for every digit, so it ignores everything, not "
                    f"the 1s in particular. Find one that lights up for other digits.")
    share = float(ones[c] / others[c])
    if share >= IGNORE_FRACTION:
        raise Wrong(f"filter {c} still answers 1s with {share:.0%} of its response to other "
                    f"digits. Look for a tile that goes dark when the label is 1 but is "
                    f"bright for the other digits.")


q1 = Exercise(
    name="q1",
    prompt="Find a filter of layer relu2 that ignores the digit 1 (give its number).",
    checker=_ignores_one,
    hint_text="Choose layer relu2 and the 'shared' scale, then click through the labels "
              "with the label buttons. A filter that ignores 1s has a black tile for every 1 "
              "but lights up for most other digits.",
    solution_text="Several filters do. They are computed from the model by\n"
                  "featviz.exercises.lesson05.ignoring_one(); answer = any of them.",
)


@lru_cache(maxsize=1)
def _image0_ranking() -> list[int]:
    from ..hooks import activations

    images, _ = _explorer_images()
    means = activations(_model(), images[:1], ["relu2"])["relu2"][0].mean(dim=(1, 2))
    return [int(c) for c in torch.argsort(means, descending=True)]


def _strongest(answer: Any) -> None:
    ranking = _image0_ranking()
    c = _channel(answer, len(ranking))
    if c == ranking[0]:
        return
    place = ranking.index(c) + 1
    if place <= 3:
        raise Wrong(f"close: filter {c} is number {place} by mean activation. Compare the "
                    f"'mean' values in the 'one map' view.")
    raise Wrong(f"filter {c} is only number {place} of {len(ranking)} by mean activation.")


q2 = Exercise(
    name="q2",
    prompt="For image 0 of the explorer (a 0), which relu2 filter has the highest mean "
           "activation?",
    checker=_strongest,
    hint_text="Switch the view to 'one map' and move the filter slider: the mean is written "
              "beside the picture. On the shared scale, the brightest tile of the grid is a "
              "good first guess, but bright and large are not the same as a high mean.",
    solution_text="acts = featviz.activations(model, images[:1], ['relu2'])\n"
                  "answer = int(acts['relu2'][0].mean(dim=(1, 2)).argmax())",
)


@lru_cache(maxsize=1)
def _snapshot_verdicts() -> list[tuple[str, bool]]:
    from ..models import pretrained_snapshots

    images, labels = _explorer_images()
    out = []
    with torch.no_grad():
        for label, model in pretrained_snapshots():
            pred = model(images[:10]).argmax(1)
            out.append((label, bool((pred == labels[:10]).all())))
    return out


def first_all_right() -> str:
    """The earliest snapshot from which on every later one gets images 0-9 right."""
    verdicts = _snapshot_verdicts()
    first = None
    for label, right in verdicts:
        if right and first is None:
            first = label
        elif not right:
            first = None
    if first is None:
        raise RuntimeError("no snapshot classifies the first ten images correctly")
    return first


def _emerges(answer: Any) -> None:
    labels = [label for label, _ in _snapshot_verdicts()]
    if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(labels):
        answer = labels[answer]  # the time slider's position also counts
    if not isinstance(answer, str):
        raise Wrong(f"give the snapshot's label as the slider shows it, e.g. {labels[1]!r}.")
    given = answer.strip().lower()
    known = {label.lower(): label for label in labels}
    if given not in known:
        raise Wrong(f"{answer!r} is not a snapshot; they are {', '.join(labels)}.")
    right = first_all_right()
    if known[given] == right:
        return
    if labels.index(known[given]) < labels.index(right):
        raise Wrong(f"at {known[given]!r} the model still gets at least one of images 0-9 "
                    f"wrong (or does again later). Check each image's prediction there.")
    raise Wrong(f"at {known[given]!r} all ten are right, but an earlier snapshot already "
                f"gets them all right and keeps doing so.")


q3 = Exercise(
    name="q3",
    prompt="Using the training slider: from which snapshot on does the model classify all of "
           "images 0 to 9 (one of each digit) correctly?",
    checker=_emerges,
    hint_text="Put the training slider at 'init' and step it to the right. At each snapshot, "
              "move the image slider over 0..9 and watch the 'predicted' line.",
    solution_text="answer = featviz.exercises.lesson05.first_all_right()\n"
                  "# a snapshot label such as 'step 300': a fraction of one epoch is enough",
)


def dead_maps(index: int = 1, layer: str = "relu2") -> int:
    """How many maps of ``layer`` are zero everywhere for explorer image ``index``."""
    from ..hooks import activations

    images, _ = _explorer_images()
    maps = activations(_model(), images[index:index + 1], [layer])[layer][0]
    return int((maps.flatten(1).abs().amax(1) == 0).sum())


def _count_dead(answer: Any) -> None:
    if isinstance(answer, bool) or not isinstance(answer, int):
        raise Wrong(f"give a count (an int), not {type(answer).__name__}.")
    expected = dead_maps(1)
    if answer != expected:
        more = "more" if answer < expected else "fewer"
        raise Wrong(f"{answer} is not it: there are {more}. Dead maps are the grey hatched "
                    f"tiles of the grid.")


q4 = Exercise(
    name="q4",
    prompt="How many maps of relu2 are zero everywhere (dead) for image 1 of the explorer "
           "(a 1), with the trained model?",
    checker=_count_dead,
    hint_text="Choose image 1 and layer relu2, with the training slider at the end. A map "
              "that is zero everywhere is drawn grey and hatched, and its 'max' is 0.",
    solution_text="acts = featviz.activations(model, images[1:2], ['relu2'])\n"
                  "answer = int((acts['relu2'][0].flatten(1).amax(1) == 0).sum())",
)
