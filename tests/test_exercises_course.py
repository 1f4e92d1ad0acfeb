"""The exercise checkers of the lessons (lesson 01's are in test_exercises.py): the right
answer passes, and each typical wrong answer gets a message that says what went wrong.
Then the lessons themselves: no exercise's answer is printed above its question, and every
exercise of a lesson's module is asked in its notebook.

Right answers are computed the way the solutions say (from featviz, torch or torchvision),
not typed in, so a checker that drifts from the library fails here. (The code exercises are
in test_code_exercises.py.)
"""
from __future__ import annotations

import importlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import ResNet18_Weights, resnet18

import featviz
from featviz.exercises import (Exercise, lesson00, lesson02, lesson03, lesson04, lesson05, lesson06,
                               lesson07, lesson08)

import _verdicts
from _verdicts import assert_wrong, verdict


def assert_right(capsys, exercise: Exercise, answer) -> None:
    _verdicts.assert_right(capsys, exercise, answer, exact=True)


# --------------------------------------------------------------------------- lesson 00

@pytest.fixture(scope="module")
def conv1_maps() -> torch.Tensor:
    torch.manual_seed(0)
    return featviz.activations(featviz.SimpleCNN(), torch.zeros(2, 1, 28, 28), ["conv1"])["conv1"]


def test_lesson00_right_answers(capsys, conv1_maps):
    n_batch = len(featviz.digit_examples()[0])
    assert_right(capsys, lesson00.p1, n_batch * conv1_maps.shape[1])
    assert_right(capsys, lesson00.p1, torch.tensor(n_batch * conv1_maps.shape[1]))   # 0-d tensor
    assert_right(capsys, lesson00.p2, tuple(conv1_maps.shape[2:]))
    assert_right(capsys, lesson00.p2, conv1_maps.shape[2:])                  # a torch.Size
    assert_right(capsys, lesson00.q1, sum(p.numel() for p in featviz.SimpleCNN().conv1.parameters()))


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson00.p1, 16, "maps of ONE image"),
    (lesson00.p1, 10, "number of images"),
    (lesson00.p1, 10 * 16 * 24 * 24, "numbers in the maps"),
    (lesson00.p1, 24, "not a number of maps"),
    (lesson00.p1, "16", "give a whole number"),
    (lesson00.p1, True, "give a whole number"),
    (lesson00.p2, (28, 28), "28 x 28 is the input"),
    (lesson00.p2, (5, 5), "size of a filter"),
    (lesson00.p2, (12, 12), "after pool1"),
    (lesson00.p2, "24x24", "give (height, width)"),
    (lesson00.p2, (20, 20), "28 - 5 + 1"),
    (lesson00.q1, 400, "one bias"),
    (lesson00.q1, 25, "conv1 has 16 of them"),
    (lesson00.q1, 16, "5 x 5 weights too"),
])
def test_lesson00_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


# --------------------------------------------------------------------------- lesson 02

def test_lesson02_right_answers(capsys):
    with torch.no_grad():
        net = featviz.SimpleCNN()
        x = torch.zeros(1, 1, 32, 32)
        flat = net.pool2(net.relu2(net.conv2(net.pool1(net.relu1(net.conv1(x)))))).numel()
        padded = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 5, padding=2), torch.nn.MaxPool2d(2),
                                     torch.nn.Conv2d(16, 32, 5, padding=2), torch.nn.MaxPool2d(2))
        conv2 = net.conv2(net.pool1(net.conv1(torch.zeros(1, 1, 28, 28))))
    assert_right(capsys, lesson02.q1, padded(torch.zeros(1, 1, 28, 28)).numel())
    assert_right(capsys, lesson02.p1, tuple(conv2.shape))
    assert_right(capsys, lesson02.p1, conv2.shape[1:])                  # (C, H, W) as a torch.Size
    assert_right(capsys, lesson02.p2, sum(p.numel() for p in featviz.SimpleCNN().conv2.parameters()))
    assert_right(capsys, lesson02.q2, flat)


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson02.q1, 32 * 4 * 4, "without padding"),
    (lesson02.q1, 32 * 5 * 5, "pads conv1 only"),
    (lesson02.q1, 32 * 6 * 6, "pads conv2 only"),
    (lesson02.q1, 32 * 14 * 14, "still halve"),
    (lesson02.q1, 1568.5, "whole number"),
    (lesson02.p1, (1, 32, 4, 4), "after pool2"),
    (lesson02.p1, (1, 16, 8, 8), "makes 32"),
    (lesson02.p1, (1, 32, 20, 20), "skips pool1"),
    (lesson02.p2, 32 * 16 * 5 * 5, "bias too"),
    (lesson02.p2, 32 * 5 * 5 + 32, "all 16 channels"),
    (lesson02.q2, 32 * 4 * 4, "28 x 28 images"),
    (lesson02.q2, 32 * 10 * 10, "second pooling"),
    (lesson02.q2, "800", "whole number"),
])
def test_lesson02_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


# --------------------------------------------------------------------------- lesson 03

def _topk(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()


def _topk_by_sorting(logits, labels, k):
    """The same by another route: sort each row, then look for the label in the first k."""
    order = logits.numpy().argsort(axis=1)[:, ::-1][:, :k]
    return float((order == labels.numpy()[:, None]).any(axis=1).mean())     # a numpy answer


def test_lesson03_right_answers(capsys):
    steps = len(DataLoader(TensorDataset(torch.zeros(60_000, 1)), batch_size=64))
    assert_right(capsys, lesson03.p1, steps)
    assert_right(capsys, lesson03.q2, 0.3 + (-0.1))        # backward() adds to .grad
    assert_right(capsys, lesson03.q3, _topk)
    assert_right(capsys, lesson03.q3, _topk_by_sorting)
    assert_right(capsys, lesson03.q3, lambda z, y, k: torch.tensor(_topk(z, y, k)))   # 0-d tensor


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson03.p1, 60_000 // 64, "last, smaller batch"),
    (lesson03.p1, 60_000 / 64, "whole number of batches"),
    (lesson03.p1, "938", "not str"),
    (lesson03.q2, -0.1, "WITH zero_grad()"),
    (lesson03.q2, 0.4, "keep the signs"),
    (lesson03.q2, 0.1, "mean of the two"),
    (lesson03.q2, "0.2", "not str"),
    (lesson03.q3, lambda z, y, k: 100 * _topk(z, y, k), "percentage"),
    (lesson03.q3, lambda z, y, k: _topk(z, y, 1), "top-1 accuracy"),
    (lesson03.q3, lambda z, y, k: len(y) * _topk(z, y, k), "counts the rows"),
    (lesson03.q3, lambda z, y, k: _topk(-z, y, k), "SMALLEST"),
    (lesson03.q3, lambda z, y, k: _topk(z, y, k) + 0.1, "expected"),
    (lesson03.q3, lambda z, y, k: "high", "not str"),
    (lesson03.q3, 0.9, "topk_accuracy(logits, labels, k)"),
])
def test_lesson03_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


# --------------------------------------------------------------------------- lesson 04

@pytest.fixture(scope="module")
def stroke_preference() -> torch.Tensor:
    """Per conv1 channel of the pretrained model: mean relu1 on horizontal minus vertical bars."""
    model = featviz.pretrained()
    horizontal, vertical = lesson04.stroke_images()
    h = featviz.activations(model, horizontal, ["relu1"])["relu1"].mean(dim=(0, 2, 3))
    v = featviz.activations(model, vertical, ["relu1"])["relu1"].mean(dim=(0, 2, 3))
    return h - v


def test_lesson04_right_answers(capsys, stroke_preference):
    assert_right(capsys, lesson04.q3, int((stroke_preference > 0.1).sum()))
    pool1 = featviz.activations(featviz.SimpleCNN(), torch.zeros(1, 1, 28, 28), ["pool1"])["pool1"]
    assert_right(capsys, lesson04.p1, tuple(pool1.shape[1:]))
    net = featviz.SimpleCNN()
    with torch.no_grad():
        big = net.conv2(net.pool1(net.relu1(net.conv1(torch.zeros(1, 1, 56, 56)))))
    assert_right(capsys, lesson04.q4, int(big.shape[-1]))
    images, _ = featviz.digit_examples()
    relu2 = featviz.activations(featviz.pretrained(), images, ["relu2"])["relu2"][3]
    assert_right(capsys, lesson04.q5, int((relu2.flatten(1).amax(dim=1) == 0).sum()))


def test_lesson04_q3_the_slips_are_named(capsys, stroke_preference):
    assert_wrong(capsys, lesson04.q3, int((stroke_preference < -0.1).sum()), "VERTICAL")
    assert_wrong(capsys, lesson04.q3, int((stroke_preference > 0).sum()), "by any margin")
    assert_wrong(capsys, lesson04.q3, 4, "the text above names")     # 5, 6, 7 and 14 in the text
    assert_wrong(capsys, lesson04.q3, "5", "not str")


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson04.p1, (1, 16, 12, 12), "batch dimension"),
    (lesson04.p1, (16, 24, 24), "conv1's size"),
    (lesson04.p1, (32, 12, 12), "number of maps is wrong"),
    (lesson04.p1, torch.zeros(16, 12, 12), "not a tensor"),
    (lesson04.q4, 8, "twice as large"),
    (lesson04.q4, 16, "fixed 4 pixels"),
    (lesson04.q4, (22, 22), "give one number"),
    (lesson04.q5, 2.5, "whole number"),
])
def test_lesson04_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


# --------------------------------------------------------------------------- lesson 05

@pytest.fixture(scope="module")
def explorer_images() -> tuple[torch.Tensor, torch.Tensor]:
    """The explorer's images: one test image of each digit, in turn (image i is a digit i % 10)."""
    return featviz.digit_batch([d for _ in range(2) for d in range(10)])


@pytest.fixture(scope="module")
def relu2_ones_vs_others() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    images, labels = images[:lesson05.SAMPLE], labels[:lesson05.SAMPLE]
    means = featviz.activations(featviz.pretrained(), images, ["relu2"])["relu2"].mean(dim=(2, 3))
    return means[labels == 1].mean(0), means[labels != 1].mean(0)


def test_lesson05_right_answers(capsys, explorer_images, relu2_ones_vs_others):
    model = featviz.pretrained()
    images, labels = explorer_images
    ones, others = relu2_ones_vs_others
    ignoring = [c for c in range(len(ones)) if others[c] > 0 and ones[c] < 0.1 * others[c]]
    assert ignoring, "the pretrained model should have relu2 filters that ignore 1s"
    for c in ignoring:
        assert_right(capsys, lesson05.q1, c)
    relu2 = featviz.activations(model, images[:1], ["relu2"])["relu2"][0]
    assert_right(capsys, lesson05.q2, int(relu2.mean(dim=(1, 2)).argmax()))
    right = [all(featviz.predict(m, images[:10])[0] == labels[:10])
             for _, m in featviz.pretrained_snapshots()]
    names = [label for label, _ in featviz.pretrained_snapshots()]
    first = next(i for i in range(len(right)) if all(right[i:]))
    assert_right(capsys, lesson05.q3, names[first])
    assert_right(capsys, lesson05.q3, first)                   # the slider position counts too
    dead = featviz.activations(model, images[1:2], ["relu2"])["relu2"][0]
    assert_right(capsys, lesson05.q4, int((dead.flatten(1).amax(1) == 0).sum()))


def test_lesson05_wrong_answers_explain_themselves(capsys, explorer_images, relu2_ones_vs_others):
    ones, others = relu2_ones_vs_others
    fond_of_ones = int(torch.where(others > 0, ones / others.clamp_min(1e-9), 0).argmax())
    assert_wrong(capsys, lesson05.q1, fond_of_ones, "still answers 1s")
    assert_wrong(capsys, lesson05.q1, 99, "numbered 0 to")
    assert_wrong(capsys, lesson05.q1, "2", "give a filter number")
    images, _ = explorer_images
    relu2 = featviz.activations(featviz.pretrained(), images[:1], ["relu2"])["relu2"][0]
    ranking = relu2.mean(dim=(1, 2)).argsort(descending=True).tolist()
    assert_wrong(capsys, lesson05.q2, ranking[1], "close:")
    assert_wrong(capsys, lesson05.q2, ranking[-1], f"only number {len(ranking)}")
    assert_wrong(capsys, lesson05.q3, "step 7", "is not a snapshot")
    assert_wrong(capsys, lesson05.q3, "init", "still gets at least one")
    assert_wrong(capsys, lesson05.q3, 2.5, "give the snapshot's label")
    dead = lesson05.dead_maps(1)
    assert_wrong(capsys, lesson05.q4, dead + 1, "there are fewer")
    assert_wrong(capsys, lesson05.q4, "3", "give a count")


# --------------------------------------------------------------------------- lesson 06

def test_lesson06_right_answers(capsys):
    model = featviz.pretrained()
    assert_right(capsys, lesson06.q1, featviz.receptive_field(model, "pool2").size[0])
    assert_right(capsys, lesson06.q2, featviz.receptive_field(model, "conv2").box(2, 5))
    assert_right(capsys, lesson06.q3, featviz.maximize_activation(
        model, "conv2", 6, position=(0, 0), value_range=featviz.MNIST_RANGE).images[0])


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson06.q1, 14, "conv2's field"),
    (lesson06.q1, 15, "jump"),
    (lesson06.q1, 4, "pool2's stride"),
    (lesson06.q1, 28, "whole image"),
    (lesson06.q1, "sixteen", "whole number"),
    (lesson06.q2, (10, 4, 24, 18), "rows first"),
    (lesson06.q2, (4, 10, 17, 23), "half-open"),
    (lesson06.q2, (2, 5, 16, 19), "not a pixel"),
    (lesson06.q2, (4, 10, 18), "four numbers"),
    (lesson06.q3, "image", "should be a tensor"),
    (lesson06.q3, torch.zeros(3, 28, 28), "one image of shape"),
])
def test_lesson06_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


def test_lesson06_the_centre_unit_is_named(capsys):
    centre = featviz.maximize_activation(featviz.pretrained(), "conv2", 6,
                                         value_range=featviz.MNIST_RANGE).images[0]
    ok, out = verdict(capsys, lesson06.q3, centre)
    assert not ok and "(4, 4)" in out and "position=" in out


# --------------------------------------------------------------------------- lesson 07

@pytest.fixture(scope="module")
def test_predictions() -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = featviz.mnist_tensors(train=False)
    pred, _ = featviz.predict(featviz.pretrained(), images)
    return labels, pred


def test_lesson07_right_answers(capsys, test_predictions):
    labels, pred = test_predictions
    d = lesson07.DIGIT
    assert d != 4, "the lesson analyses the 4s itself: the exercise asks about another digit"
    assert_right(capsys, lesson07.q3, featviz.receptive_field(featviz.SimpleCNN(), "pool2").center(3, 3)[0])
    assert_right(capsys, lesson07.q4, int(((labels == d) & (pred != d)).sum()))
    wrong = pred[(labels == d) & (pred != d)]
    assert_right(capsys, lesson07.q5, int(torch.bincount(wrong, minlength=10).argmax()))


@pytest.mark.parametrize("answer, expected", [
    (24.0, "STRETCHING"),
    (20.5, "relu2's last unit"),
    (18.5, "14-pixel box"),
    ("pool2", "give a pixel position"),
])
def test_lesson07_q3_wrong_answers(capsys, answer, expected):
    assert_wrong(capsys, lesson07.q3, answer, expected)


def test_lesson07_q4_q3_typical_confusions(capsys, test_predictions):
    labels, pred = test_predictions
    d = lesson07.DIGIT
    called_d = int(((pred == d) & (labels != d)).sum())
    every_mistake = int((pred != labels).sum())
    assert_wrong(capsys, lesson07.q4, called_d, f"label {d}, prediction not {d}")
    assert_wrong(capsys, lesson07.q4, every_mistake, "every mistake")
    assert_wrong(capsys, lesson07.q4, 2.5, "whole number")
    assert_wrong(capsys, lesson07.q5, d, "true label")
    assert_wrong(capsys, lesson07.q5, 12, "digit 0-9")


# --------------------------------------------------------------------------- lesson 08

@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(weights=None).eval()


def test_lesson08_right_answers(capsys, resnet):
    x = torch.zeros(1, 3, 224, 224)
    with torch.no_grad():
        size = featviz.activations(resnet, x, ["layer4"])["layer4"].shape[-1]
    assert_right(capsys, lesson08.p2, 224 // size)
    assert_right(capsys, lesson08.p1, len(featviz.hooks.resolve_layers(resnet, torch.nn.Conv2d)))
    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert_right(capsys, lesson08.q3, (1.0 - preset.mean[0]) / preset.std[0])
    assert_right(capsys, lesson08.q3, torch.tensor((1.0 - preset.mean[0]) / preset.std[0]))


def test_lesson08_exercise_constants_are_torchvisions():
    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    assert np.allclose(lesson08.IMAGENET_MEAN, preset.mean)
    assert np.allclose(lesson08.IMAGENET_STD, preset.std)


@pytest.mark.parametrize("exercise, answer, expected", [
    (lesson08.p2, 7, "height and width of layer4's maps"),
    (lesson08.p2, 224, "divide it by the size"),
    (lesson08.p2, 16, "earlier stage"),
    (lesson08.p2, "32", "one number"),
    (lesson08.p1, 17, "downsample"),
    (lesson08.p1, 18, "fc layer included"),
    (lesson08.p1, 8, "residual blocks"),
    (lesson08.q3, 1.0, "before Normalize"),
    (lesson08.q3, (1 - 0.1307) / 0.3081, "MNIST's mean and std"),
    (lesson08.q3, (0 - 0.485) / 0.229, "black pixel"),
    (lesson08.q3, (1 - 0.406) / 0.225, "blue channel"),
    (lesson08.q3, [2.2], "a number"),
])
def test_lesson08_wrong_answers_explain_themselves(capsys, exercise, answer, expected):
    assert_wrong(capsys, exercise, answer, expected)


def test_lesson05_and_lesson01_new_checks(capsys):
    assert_wrong(capsys, lesson05.q4, lesson05.dead_maps(1) + 1, "there are fewer")
    from featviz.exercises import lesson01
    assert_wrong(capsys, lesson01.q3, 7, "the label")


# --------------------------------------------------------------------------- the notebooks

#: Status of the two notebook tests below: they hold once the lessons carry the exercise
#: cells and move the outputs that gave answers away. Until the lessons are edited they fail
#: and their messages list what is left to do, lesson by lesson. Not skipped on purpose.
NOTEBOOKS_AWAIT_EXERCISE_CELLS = True

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _output_text(cell: dict) -> str:
    """What a reader sees of a code cell's outputs, as text (images are not text)."""
    parts = []
    for out in cell.get("outputs", []):
        if "text" in out:
            parts.append(_source({"source": out["text"]}))
        for kind in ("text/plain", "text/markdown", "text/latex"):
            if kind in out.get("data", {}):
                parts.append(_source({"source": out["data"][kind]}))
    return "\n".join(parts)


def _shows(text: str, answer: str) -> bool:
    """Whether ``answer`` appears in ``text`` as a whole token (938 is not in 9380)."""
    pattern = r"(?<![\w.])" + re.escape(answer) + r"(?![\w]|\.\d)"
    return re.search(pattern, text) is not None


def _exercise_module(path: Path):
    cells = _cells(path)
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    m = re.search(r"from featviz\.exercises import (lesson\d\d) as (\w+)", code)
    assert m, f"{path.name} does not import its exercises"
    return importlib.import_module(f"featviz.exercises.{m.group(1)}"), m.group(2), cells


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_no_exercise_answer_is_printed_above_it(path, capsys):
    module, alias, cells = _exercise_module(path)
    leaks = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        for name in re.findall(rf"\b{alias}\.(\w+)\.check\(", _source(cell)):
            exercise = getattr(module, name, None)
            if not isinstance(exercise, Exercise):
                continue
            for j, earlier in enumerate(cells[:i]):
                if earlier["cell_type"] != "code":
                    continue
                shown = _output_text(earlier)
                leaks += [f"{name} ({exercise.kind}): {answer!r} is printed by cell {j}, above "
                          f"the question in cell {i}"
                          for answer in exercise.expected_texts() if _shows(shown, answer)]
    capsys.readouterr()
    assert not leaks, f"{path.name}: answers printed above their question:\n  " + "\n  ".join(leaks)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_every_exercise_of_the_lesson_is_asked_in_it(path):
    module, alias, cells = _exercise_module(path)
    code = "\n".join(_source(c) for c in cells if c["cell_type"] == "code")
    asked = set(re.findall(rf"\b{alias}\.(\w+)\.check\(", code))
    defined = {name for name, v in vars(module).items() if isinstance(v, Exercise)}
    missing = sorted(defined - asked)
    assert not missing, (f"{path.name} never checks {', '.join(missing)} "
                         f"({', '.join(getattr(module, n).kind for n in missing)})")
    md = "\n".join(_source(c) for c in cells)
    assert "questionnaire" in md.lower() and "further reading" in md.lower(), (
        f"{path.name} should end with its questionnaire and further reading")
