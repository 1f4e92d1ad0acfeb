"""fit / evaluate / predict on small slices of the bundled sample."""
from __future__ import annotations

import sys
import types

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import featviz
from featviz.models import SimpleCNN
from featviz import training
from featviz.training import (
    History, Snapshots, confusion_matrix, evaluate, predict, random_shift,
)


def fit(*args, **kwargs):
    """featviz.fit on the CPU unless a test says otherwise: these tests compare
    weights bit for bit and with CPU tensors (tests/test_cuda.py covers the GPU)."""
    kwargs.setdefault("device", "cpu")
    return training.fit(*args, **kwargs)


@pytest.fixture(scope="module")
def small():
    images, labels = featviz.mnist_tensors(train=True)
    return images[:1024].clone(), labels[:1024].clone()


@pytest.fixture(scope="module")
def held_out():
    images, labels = featviz.mnist_tensors(train=False)
    return images[:500].clone(), labels[:500].clone()


def fresh(seed: int = 0) -> SimpleCNN:
    torch.manual_seed(seed)
    return SimpleCNN()


def test_fit_lowers_the_loss_and_returns_a_history(small, held_out):
    model = fresh()
    before = evaluate(model, held_out)
    history = fit(model, small, epochs=2, batch_size=64, progress=False, val_data=held_out,
                  device="cpu")
    after = evaluate(model, held_out)
    assert isinstance(history, History)
    assert after["loss"] < 0.5 * before["loss"]
    assert after["accuracy"] > before["accuracy"] + 0.5
    assert history.steps == 2 * 1024 // 64
    assert [e["epoch"] for e in history.epochs] == [1, 2]
    assert history.epochs[-1]["val_accuracy"] == pytest.approx(after["accuracy"])
    assert history.loss[-1] < history.loss[0]
    assert history.epoch[-1] == pytest.approx(2.0)
    assert len(history.step) == len(history.loss) == len(history.accuracy) == len(history.lr)
    assert not model.training and not history.interrupted
    assert "2 epochs" in repr(history)


def test_fit_is_reproducible_with_a_seed_and_leaves_global_rng_alone(small):
    data = (small[0][:256], small[1][:256])
    a, b, c = fresh(), fresh(), fresh()
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    fit(a, data, epochs=1, seed=5, progress=False, augment=random_shift(2))
    assert torch.equal(torch.rand(3), expected_next)
    fit(b, data, epochs=1, seed=5, progress=False, augment=random_shift(2))
    fit(c, data, epochs=1, seed=6, progress=False, augment=random_shift(2))
    assert torch.equal(a.fc3.weight, b.fc3.weight)
    assert not torch.equal(a.fc3.weight, c.fc3.weight)


def test_dataloader_and_tensor_paths_both_train(small, held_out):
    loader = DataLoader(TensorDataset(*small), batch_size=32, shuffle=True)
    model = fresh()
    history = fit(model, loader, epochs=1, progress=False)
    assert history.steps == len(loader) == 32
    assert evaluate(model, held_out)["accuracy"] > 0.6
    # a Dataset is batched by fit itself
    history = fit(fresh(), TensorDataset(*small), epochs=1, batch_size=128, progress=False)
    assert history.steps == 8


def test_snapshots_are_taken_at_init_steps_and_epochs(small):
    snaps = Snapshots(dtype=torch.float16)
    model = fresh()
    init = model.conv1.weight.detach().clone()
    fit(model, (small[0][:512], small[1][:512]), epochs=2, batch_size=64, progress=False,
        snapshot=snaps, snapshot_steps=[3, 10])
    steps = {s["label"]: s["step"] for s in snaps}
    assert steps == {"init": 0, "step 3": 3, "epoch 1": 8, "step 10": 10, "epoch 2": 16}
    assert snaps[0]["state_dict"]["conv1.weight"].dtype == torch.float16
    assert torch.allclose(snaps[0]["state_dict"]["conv1.weight"].float(), init, atol=1e-3)
    models = snaps.models(SimpleCNN())
    assert torch.allclose(models[-1][1].fc1.weight, model.fc1.weight, atol=1e-3)
    assert not torch.equal(models[1][1].fc1.weight, models[2][1].fc1.weight)


def test_snapshot_order_follows_training(small):
    snaps = Snapshots()
    fit(fresh(), (small[0][:512], small[1][:512]), epochs=2, batch_size=64, progress=False,
        snapshot=snaps, snapshot_steps=[3, 10])
    # chronological: step 10 happens during epoch 2, after the end of epoch 1
    assert [s["label"] for s in snaps] == ["init", "step 3", "epoch 1", "step 10", "epoch 2"]


def test_keyboard_interrupt_keeps_the_model_and_history(small):
    calls = {"n": 0}

    class Stop(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = SimpleCNN()

        def forward(self, x):
            calls["n"] += 1
            if calls["n"] == 6:
                raise KeyboardInterrupt
            return self.net(x)

    torch.manual_seed(0)
    model = Stop()
    start = model.net.fc3.weight.detach().clone()
    history = fit(model, small, epochs=3, progress=False, log_every=2)
    assert history.interrupted
    assert history.steps == 4 and history.step == [2, 4]
    assert not torch.equal(model.net.fc3.weight, start)
    assert not model.training
    assert "interrupted" in repr(history)


def test_evaluate_matches_a_hand_written_count(held_out):
    model = fresh(3)
    fit(model, held_out, epochs=1, progress=False)
    images, labels = held_out
    with torch.no_grad():
        logits = model(images)
    correct = sum(int(logits[i].argmax()) == int(labels[i]) for i in range(len(labels)))
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    result = evaluate(model, held_out, batch_size=64)
    assert result["accuracy"] == correct / len(labels)
    assert result["loss"] == pytest.approx(loss, rel=1e-5)
    loader = DataLoader(TensorDataset(images, labels), batch_size=100)
    assert evaluate(model, loader)["accuracy"] == result["accuracy"]


def test_predict_returns_classes_and_probabilities(held_out):
    model = featviz.pretrained()
    images, labels = held_out
    pred, prob = predict(model, images[:50], batch_size=16)
    assert pred.shape == (50,) and pred.dtype == torch.int64
    assert prob.shape == (50, 10)
    assert torch.allclose(prob.sum(1), torch.ones(50), atol=1e-5)
    assert torch.equal(pred, prob.argmax(1))
    assert (pred == labels[:50]).float().mean() > 0.95
    pred2, _ = predict(model, (images[:50], labels[:50]))
    assert torch.equal(pred, pred2)


def test_confusion_matrix_rows_are_truth(held_out):
    model = featviz.pretrained()
    cm = confusion_matrix(model, held_out, num_classes=10)
    assert cm.shape == (10, 10)
    assert torch.equal(cm.sum(1), torch.bincount(held_out[1], minlength=10))
    assert cm.diag().sum() / cm.sum() == pytest.approx(evaluate(model, held_out)["accuracy"])


def test_random_shift_moves_pixels_within_bounds():
    torch.manual_seed(0)
    image = torch.full((1, 1, 28, 28), -1.0)
    image[0, 0, 14, 14] = 5.0
    batch = image.repeat(64, 1, 1, 1)
    shifted = random_shift(2)(batch)
    assert shifted.shape == batch.shape
    where = (shifted[:, 0] == 5.0).nonzero()[:, 1:]
    assert len(where) == 64                      # the bright pixel survives in each image
    assert (where - 14).abs().max() <= 2
    assert len({tuple(w.tolist()) for w in where}) > 10   # and lands in many places
    assert (shifted == -1.0).sum() == 64 * (28 * 28 - 1)  # filled with the background


@pytest.mark.parametrize("bad, error, text", [
    (torch.zeros(4, 1, 28, 28), TypeError, "needs the labels"),
    ((torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.long)), ValueError,
     "labels should be one per image"),
    ((torch.zeros(4, 1, 28, 28), torch.zeros(4)), TypeError, "labels.long"),
    ("mnist", TypeError, "mnist_tensors"),
])
def test_bad_data_gets_a_clear_error(bad, error, text):
    with pytest.raises(error, match=text):
        fit(SimpleCNN(), bad, progress=False)


def test_bad_arguments_get_clear_errors(small):
    with pytest.raises(ValueError, match="epochs"):
        fit(SimpleCNN(), small, epochs=0, progress=False)
    with pytest.raises(ValueError, match="optimizer"):
        fit(SimpleCNN(), small, optimizer="adamax", progress=False)
    with pytest.raises(ValueError, match="schedule"):
        fit(SimpleCNN(), small, schedule="linear", progress=False)
    with pytest.raises(ValueError, match="device"):
        fit(SimpleCNN(), small, device="gpu0", progress=False)
    with pytest.raises(TypeError, match="labels"):
        evaluate(SimpleCNN(), small[0])


def test_onecycle_schedule_peaks_at_lr_and_decays(small):
    history = fit(fresh(), small, epochs=1, lr=2e-3, schedule="onecycle", progress=False,
                  log_every=1)
    assert max(history.lr) == pytest.approx(2e-3, rel=0.05)
    assert history.lr[-1] < 1e-4 and history.lr[0] < 0.5 * max(history.lr)


def test_history_plot_draws_loss_and_error_rate_whole(small, held_out):
    history = fit(fresh(), small, epochs=2, progress=False, val_data=held_out)
    fig = history.plot()
    loss_ax, err_ax = fig.axes
    assert loss_ax.get_xlabel() == "epoch" and "misclassified" in err_ax.get_ylabel()
    assert len(loss_ax.lines) == 2 and len(err_ax.lines) == 2
    final = 100 * (1 - history.epochs[-1]["val_accuracy"])
    assert err_ax.lines[1].get_ydata()[-1] == pytest.approx(final)
    for ax in (loss_ax, err_ax):           # every point of both curves is in view, the start too
        low, high = ax.get_ylim()
        ys = [y for line in ax.lines for y in line.get_ydata()]
        assert low <= min(ys) and max(ys) <= high


def test_dataset_without_transform_says_to_add_one():
    from featviz.data import BundledMNIST

    with pytest.raises(TypeError, match="transform"):
        evaluate(SimpleCNN(), BundledMNIST(train=False, transform=None))


def test_models_that_view_conv_outputs_still_train_and_come_back_contiguous(small):
    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 5)
            self.fc = nn.Linear(4 * 24 * 24, 10)

        def forward(self, x):
            x = torch.relu(self.conv(x))
            return self.fc(x.view(x.size(0), -1))  # fails on channels-last tensors

    torch.manual_seed(0)
    net = ViewNet()
    history = fit(net, (small[0][:256], small[1][:256]), epochs=2, progress=False, device="cpu")
    assert history.steps == 8 and history.loss[-1] < history.loss[0]
    assert net.conv.weight.is_contiguous()
    model = fresh()
    fit(model, (small[0][:128], small[1][:128]), epochs=1, progress=False, device="cpu")
    assert all(p.is_contiguous() for p in model.parameters())
    assert model(small[0][:2]).shape == (2, 10)


# --------------------------------------------------------------------------- lesson 03 exercises

def _verdict(capsys, exercise, answer):
    capsys.readouterr()
    ok = exercise.check(answer)
    return ok, capsys.readouterr().out


def test_lesson03_right_answers(capsys):
    import math

    from featviz.exercises import lesson03

    loader = DataLoader(TensorDataset(torch.zeros(60_000, 1)), batch_size=64)
    assert _verdict(capsys, lesson03.p1, len(loader)) == (True, "p1: correct!\n")
    assert math.ceil(60_000 / 64) == len(loader)
    assert _verdict(capsys, lesson03.q2, torch.tensor(0.2))[0]

    def topk_accuracy(logits, labels, k):
        return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()

    assert _verdict(capsys, lesson03.q3, topk_accuracy) == (True, "q3: correct!\n")


@pytest.mark.parametrize("name, answer, expected", [
    ("p1", 937, "last, smaller batch"),
    ("p1", 60_000 / 64, "whole number of batches"),
    ("p1", 60_000, "one step per batch"),
    ("q2", -0.1, "WITH zero_grad()"),
    ("q2", "zero_grad", "not str"),
    ("q3", lambda logits, labels, k: 100 * (logits.topk(k, 1).indices == labels[:, None]).any(1).float().mean(), "percentage"),
    ("q3", lambda logits, labels, k: (logits.argmax(0)[:1] == labels[:1]).float().mean().item(), "expected"),
    ("q3", 0.9, "give the function itself"),
])
def test_lesson03_wrong_answers_explain_themselves(capsys, name, answer, expected):
    from featviz.exercises import lesson03

    ok, out = _verdict(capsys, getattr(lesson03, name), answer)
    assert not ok and "not quite" in out and expected in out, out


def test_progress_bar_shows_epoch_loss_and_accuracy_in_a_terminal(small, capsys):
    fit(fresh(), (small[0][:256], small[1][:256]), epochs=2, progress=True, device="cpu")
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err
    assert "4/4" in err and "loss=" in err and "acc=" in err


def test_a_notebook_without_widgets_gets_one_clean_line_per_epoch(small, held_out, capsys,
                                                                  monkeypatch):
    # a kernel without ipywidgets: a text bar would be saved into the notebook as raw
    # "\r 45%|####" text, so each epoch prints one summary line instead
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
    monkeypatch.setattr("tqdm.notebook.IProgress", None)
    history = fit(fresh(), (small[0][:256], small[1][:256]), epochs=2, progress=True,
                  val_data=held_out)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    last = history.epochs[-1]
    assert lines[1].startswith("epoch 2/2: 4 batches in ")
    assert f"loss {last['train_loss']:.4f}, accuracy {100 * last['train_accuracy']:.2f}%" in lines[1]
    assert f"validation accuracy {100 * last['val_accuracy']:.2f}%" in lines[1]
    assert "\r" not in captured.out + captured.err and "|" not in captured.out + captured.err


def test_the_widget_bar_leaves_a_clean_text_form_for_saved_notebooks(small, monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display

    shown = []

    class Handle:
        def update(self, obj, raw=False):
            shown.append(obj)

    monkeypatch.setattr(IPython.display, "display", lambda obj, display_id=None: Handle())
    monkeypatch.setattr(training, "_display_kind", lambda: "widget")
    history = fit(fresh(), (small[0][:128], small[1][:128]), epochs=1, progress=True)
    final = shown[-1]
    assert "application/vnd.jupyter.widget-view+json" in final
    text = final["text/plain"]
    record = history.epochs[0]
    assert text.startswith("epoch 1/1: 2 batches in ")
    assert text.endswith(f"loss {record['train_loss']:.4f}, "
                         f"accuracy {100 * record['train_accuracy']:.2f}%")


def test_data_without_a_length_logs_its_last_partial_window(small):
    images, labels = small[0][:320], small[1][:320]

    class Stream(IterableDataset):
        def __iter__(self):
            for i in range(0, len(images), 32):
                yield images[i:i + 32], labels[i:i + 32]

    history = fit(fresh(), DataLoader(Stream(), batch_size=None), epochs=2, log_every=4,
                  progress=False)
    assert history.step == [4, 8, 10, 14, 18, 20]
    assert history.epoch == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    assert history.examples == 2 * 320
    window_sizes = [128, 128, 64]
    mean = sum(n * loss for n, loss in zip(window_sizes, history.loss[3:])) / 320
    assert history.epochs[1]["train_loss"] == pytest.approx(mean, rel=1e-5)


def test_snapshots_see_an_eval_model_and_training_resumes_after(small):
    seen = []

    def probe(model, info):
        seen.append((info.label, model.training))

    model = fresh()
    modes = []
    model.register_forward_hook(lambda module, inputs, output: modes.append(module.training))
    fit(model, (small[0][:128], small[1][:128]), epochs=1, batch_size=32, progress=False,
        snapshot=probe, snapshot_steps=[1])
    assert seen == [("init", False), ("step 1", False), ("epoch 1", False)]
    assert modes == [True] * 4  # every training step after a snapshot is in train mode
    assert not model.training
