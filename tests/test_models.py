"""SimpleCNN, checkpoints and the shipped pretrained weights."""
from __future__ import annotations

import shutil

import pytest
import torch
from torch import nn

import featviz
from featviz import _assets
from featviz.models import PRETRAINED_FILE, SNAPSHOTS_FILE, SimpleCNN, load_checkpoint, save_checkpoint
from featviz.training import evaluate


@pytest.fixture(scope="module")
def test_split():
    images, labels = featviz.mnist_tensors(train=False)
    return images[:2000], labels[:2000]


def test_every_stage_has_a_name_and_the_documented_shape():
    model = SimpleCNN()
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, name=name: shapes.__setitem__(name, tuple(out.shape)))
             for name, m in model.named_modules() if name]
    model(torch.zeros(3, 1, 28, 28))
    for h in hooks:
        h.remove()
    assert shapes == {
        "conv1": (3, 16, 24, 24), "relu1": (3, 16, 24, 24), "pool1": (3, 16, 12, 12),
        "conv2": (3, 32, 8, 8), "relu2": (3, 32, 8, 8), "pool2": (3, 32, 4, 4),
        "flatten": (3, 512), "fc1": (3, 120), "relu3": (3, 120), "fc2": (3, 84),
        "relu4": (3, 84), "fc3": (3, 10),
    }
    assert sum(p.numel() for p in model.parameters()) == (
        16 * 25 + 16 + 32 * 16 * 25 + 32 + 512 * 120 + 120 + 120 * 84 + 84 + 84 * 10 + 10)


def test_wrong_input_shape_says_how_to_fix_it():
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        SimpleCNN()(torch.zeros(1, 28, 28))
    with pytest.raises(TypeError, match="torch.Tensor"):
        SimpleCNN()([[0.0]])


def test_pretrained_loads_verified_in_eval_mode_and_is_accurate(test_split):
    model = featviz.pretrained()
    assert isinstance(model, SimpleCNN) and not model.training
    recorded = _assets.read_manifest()["checkpoints"][PRETRAINED_FILE]["test_accuracy"]
    assert model.featviz_meta["test_accuracy"] == pytest.approx(recorded, abs=1e-4)
    assert recorded >= 0.99
    # a 2,000-image slice of the official test set: same model, so well above 98%
    assert evaluate(model, test_split)["accuracy"] >= 0.98


def test_shipped_checkpoints_fit_the_size_budget():
    files = _assets.read_manifest()["files"]
    total = files[PRETRAINED_FILE]["bytes"] + files[SNAPSHOTS_FILE]["bytes"]
    assert total <= 2_000_000


def test_snapshots_are_ordered_differ_and_improve(test_split):
    snaps = featviz.pretrained_snapshots()
    labels = [label for label, _ in snaps]
    assert labels[0] == "init" and labels[-1].startswith("epoch")
    steps = [m.featviz_meta["step"] for _, m in snaps]
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[0] == 0
    weights = [m.conv1.weight.detach() for _, m in snaps]
    for a, b in zip(weights, weights[1:]):
        assert not torch.equal(a, b)
    first = evaluate(snaps[0][1], test_split)["accuracy"]
    last = evaluate(snaps[-1][1], test_split)["accuracy"]
    assert first < 0.3 and last > 0.98
    # the last snapshot is the final model, stored at half precision
    final = featviz.pretrained()
    assert torch.allclose(snaps[-1][1].fc1.weight, final.fc1.weight, atol=1e-3)


def test_checkpoint_round_trip_keeps_weights_and_meta(tmp_path):
    torch.manual_seed(1)
    model = SimpleCNN()
    path = save_checkpoint(model, tmp_path / "sub" / "mine.pt", test_accuracy=0.5, note="hi")
    loaded = load_checkpoint(path)
    assert isinstance(loaded, SimpleCNN) and not loaded.training
    assert loaded.featviz_meta == {"test_accuracy": 0.5, "note": "hi"}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    path = save_checkpoint(SimpleCNN(), tmp_path / "ok.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(path)


def test_checkpoint_of_another_architecture_names_the_keys(tmp_path):
    other = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 26 * 26, 10))
    path = tmp_path / "other.pt"
    torch.save(other.state_dict(), path)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert "conv1.weight" in msg and "0.weight" in msg and "another architecture" in msg

    wide = SimpleCNN()
    wide.fc3 = nn.Linear(84, 5)
    save_checkpoint(wide, path)
    with pytest.raises(ValueError, match=r"fc3.weight: checkpoint \(5, 84\) vs model \(10, 84\)"):
        load_checkpoint(path, model=SimpleCNN())


def test_tampered_asset_fails_its_sha256(tmp_path, monkeypatch):
    assets = tmp_path / "assets"
    assets.mkdir()
    shutil.copy(_assets.ASSETS / "manifest.json", assets / "manifest.json")
    data = bytearray((_assets.ASSETS / PRETRAINED_FILE).read_bytes())
    data[-100] ^= 0xFF
    (assets / PRETRAINED_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(_assets, "ASSETS", assets)
    _assets._verified.cache_clear()
    try:
        with pytest.raises(ValueError, match="corrupt"):
            featviz.pretrained()
    finally:
        _assets._verified.cache_clear()


# --------------------------------------------------------------------------- lesson 02 exercises

def _verdict(capsys, exercise, answer):
    capsys.readouterr()
    ok = exercise.check(answer)
    return ok, capsys.readouterr().out


def test_lesson02_right_answers_are_what_pytorch_says(capsys):
    from featviz.exercises import lesson02

    model = SimpleCNN()
    padded = nn.Sequential(nn.Conv2d(1, 16, 5, padding=2), nn.MaxPool2d(2),
                           nn.Conv2d(16, 32, 5, padding=2), nn.MaxPool2d(2))
    inputs = padded(torch.zeros(1, 1, 28, 28)).flatten(1).shape[1]
    assert _verdict(capsys, lesson02.q1, inputs) == (True, "q1: correct!\n")
    conv2 = sum(p.numel() for p in model.conv2.parameters())
    assert _verdict(capsys, lesson02.p2, conv2) == (True, "p2: correct!\n")
    assert _verdict(capsys, lesson02.p2, torch.tensor(conv2))[0]
    x = torch.zeros(1, 1, 32, 32)
    flat = model.pool2(model.conv2(model.pool1(model.conv1(x)))).flatten(1).shape[1]
    assert _verdict(capsys, lesson02.q2, flat) == (True, "q2: correct!\n")


@pytest.mark.parametrize("name, answer, expected", [
    ("q1", 512, "without padding"),
    ("q1", 32 * 28 * 28, "still halve"),
    ("q1", "1568", "whole number"),
    ("p2", 32 * 16 * 25, "bias"),
    ("p2", 32 * 25 + 32, "all 16 channels"),
    ("q2", 512, "28 x 28"),
    ("q2", 3200, "pool2 halves"),
    ("q2", 1, "Follow the width"),
])
def test_lesson02_wrong_answers_explain_themselves(capsys, name, answer, expected):
    from featviz.exercises import lesson02

    ok, out = _verdict(capsys, getattr(lesson02, name), answer)
    assert not ok and "not quite" in out and expected in out, out
