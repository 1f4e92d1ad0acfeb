"""Exercises of lesson 03 (training)."""
from __future__ import annotations

import copy
import math
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from . import Exercise, Questionnaire, Wrong, as_int, as_number, call, need_function
from . import reading as _reading


def steps_per_epoch() -> int:
    """How many batches a DataLoader makes of 60,000 examples at batch size 64."""
    return len(torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(60_000)),
                                           batch_size=64))


def _steps(answer: Any) -> None:
    value = as_number(answer, "a whole number of steps")
    if abs(value - 60_000 / 64) < 1e-6:
        raise Wrong("a step processes a whole batch: round to a whole number of batches.")
    answer = as_int(answer, "a whole number of steps")
    expected = steps_per_epoch()
    if answer == expected:
        return
    if answer == 60_000 // 64:
        raise Wrong("almost: 60,000 is not a multiple of 64, and the last, smaller batch "
                    "is a step too.")
    raise Wrong(f"{answer} is not it: one step per batch of 64 images.")


p1 = Exercise(
    name="p1",
    prompt="Predict: how many optimizer steps is one epoch over the 60,000 training images at batch size 64?",
    checker=_steps,
    hint_text="One step per batch. The last batch holds whatever is left over.",
    solution_text="answer = math.ceil(60_000 / 64)   # 938: 937 full batches and one of 32",
    kind="predict",
    giveaways=("938",),
    reference=steps_per_epoch,
)


#: The gradients of one weight on two batches, for q2.
GRADS = (0.3, -0.1)


def accumulated_grad() -> float:
    """What .grad holds after two backward() passes without zero_grad() in between, for a
    weight whose gradient is GRADS[0] on the first batch and GRADS[1] on the second."""
    w = torch.zeros((), requires_grad=True, dtype=torch.float64)
    for g in GRADS:
        (w * g).backward()
    assert w.grad is not None
    return float(w.grad)


def _zero_grad(answer: Any) -> None:
    value = as_number(answer, "a number, the value of .grad")
    expected = accumulated_grad()
    if abs(value - expected) < 1e-6:
        return
    first, second = GRADS
    if abs(value - second) < 1e-6:
        raise Wrong(f"{second} is what .grad holds WITH zero_grad() before the second "
                    f"backward(). Without it, backward() does not overwrite .grad.")
    if abs(value - first) < 1e-6:
        raise Wrong("backward() does not skip a batch: the second pass changes .grad too.")
    if abs(value - (abs(first) + abs(second))) < 1e-6:
        raise Wrong("keep the signs: one gradient is negative.")
    if abs(value - (first + second) / 2) < 1e-6:
        raise Wrong("that is the mean of the two; backward() adds, it does not average.")
    raise Wrong(f"{value:g} is not it: what does backward() do to a .grad that already holds "
                f"a value?")


q2 = Exercise(
    name="q2",
    prompt=f"A weight's gradient is {GRADS[0]} on one batch and {GRADS[1]} on the next. Without "
           f"optimizer.zero_grad(), what does its .grad hold after the second loss.backward()?",
    checker=_zero_grad,
    hint_text="backward() adds each new gradient to whatever .grad already holds.",
    solution_text="answer = 0.3 + (-0.1)   # 0.2: backward() accumulates; zero_grad() clears it",
    reference=accumulated_grad,
)


def _topk_cases() -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    gen = torch.Generator().manual_seed(3)
    small = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, 0.5]])
    small_labels = torch.tensor([0, 2, 0, 1])
    wide = torch.randn(50, 10, generator=gen)
    wide_labels = torch.randint(0, 10, (50,), generator=gen)
    return [(small, small_labels, 2), (wide, wide_labels, 1), (wide, wide_labels, 3),
            (wide[:7], wide_labels[:7], 10)]


def _topk_expected(logits: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    return (logits.topk(k, dim=1).indices == labels[:, None]).any(dim=1).float().mean().item()


def _topk_accuracy(answer: Any) -> None:
    fn = need_function(answer, "topk_accuracy(logits, labels, k)")
    for logits, labels, k in _topk_cases():
        n, c = logits.shape
        where = f"{n} rows of {c} logits, k={k}"
        got = call(fn, logits.clone(), labels.clone(), k, returns="the fraction, a number",
                   on=where)
        value = as_number(got, "the fraction, a number")
        expected = _topk_expected(logits, labels, k)
        if abs(value - expected) < 1e-6:
            continue
        if abs(value - 100 * expected) < 1e-4 and expected > 0:
            raise Wrong("that is a percentage: return a fraction between 0 and 1.")
        if abs(value - n * expected) < 1e-4:
            raise Wrong(f"for {where} that counts the rows ({value:g}); return the fraction: "
                        f"divide by the number of rows.")
        if k > 1 and abs(value - _topk_expected(logits, labels, 1)) < 1e-6:
            raise Wrong(f"for {where} it returned the top-1 accuracy: the true label counts "
                        f"when it is ANY of the k largest logits, not only the largest.")
        smallest = (logits.topk(k, dim=1, largest=False).indices == labels[:, None])
        if abs(value - smallest.any(dim=1).float().mean().item()) < 1e-6 and k < c:
            raise Wrong(f"for {where} it counted the k SMALLEST logits: the model's first "
                        f"choices are its largest ones.")
        raise Wrong(f"for {where} it returned {value:.4f}, expected {expected:.4f} "
                    f"({round(expected * n)} of the {n} true labels are among the k largest "
                    f"logits of their row).")


q3 = Exercise(
    name="q3",
    prompt="Write topk_accuracy(logits, labels, k): the fraction of rows whose true label is "
           "among the k largest logits of the row.",
    checker=_topk_accuracy,
    hint_text="logits.topk(k, dim=1).indices holds the k best classes of each row, shape (N, k). "
              "Compare it with labels[:, None] (shape (N, 1), so it broadcasts), ask whether any "
              "of the k matches in each row, and take the mean as floats.",
    solution_text="def topk_accuracy(logits, labels, k):\n"
                  "    best = logits.topk(k, dim=1).indices             # (N, k)\n"
                  "    hit = (best == labels[:, None]).any(dim=1)        # (N,)\n"
                  "    return hit.float().mean().item()\n"
                  "answer = topk_accuracy",
    kind="code",
)


# --------------------------------------------------------------------------- code: one step

STEPS = 5          #: how many steps the check runs, on one fixed batch
LR = 0.05          #: the SGD learning rate of the check


def _one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
              labels: torch.Tensor) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def _train_step(answer: Any) -> str:
    from ..models import SimpleCNN

    fn = need_function(answer, "train_step(model, optimizer, images, labels)")
    gen = torch.Generator().manual_seed(3)
    images = torch.randn(16, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (16,), generator=gen)
    torch.manual_seed(0)
    model = SimpleCNN().eval()          # left in eval mode, as after an evaluation
    ref = copy.deepcopy(model).train()
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=LR)
    names = [name for name, _ in model.named_parameters()]
    losses: list[float] = []
    prev_grads: list[torch.Tensor] | None = None
    for step in range(STEPS):
        x, y = images.clone(), labels.clone()
        before = [p.detach().clone() for p in model.parameters()]
        with _OptimizersMade() as made:
            got = as_number(call(fn, model, opt, x, y,
                                 returns="the loss of the batch (loss.item())"),
                            "the loss as a number (loss.item())")
        if made.count:
            raise Wrong("your function makes a new optimizer on every call: use the one it is "
                        "given. A new one forgets its state (Adam's running averages, momentum) "
                        "and the learning-rate schedule at every step.")
        if not model.training:
            raise Wrong("the model is still in eval mode: call model.train() first, so that "
                        "dropout and batch normalisation behave as in training.")
        if not (torch.equal(x, images) and torch.equal(y, labels)):
            raise Wrong("your function changed the images or labels it was given in place; "
                        "leave its inputs as they are.")
        expected = _one_step(ref, ref_opt, images, labels)
        grads = []
        for p in ref.parameters():
            assert p.grad is not None  # _one_step's backward pass reaches every parameter
            grads.append(p.grad.detach().clone())
        if abs(got - expected * len(labels)) <= 1e-4 * max(1.0, abs(expected * len(labels))):
            raise Wrong(f"your loss is {len(labels)} times too large: it is the sum over the "
                        f"batch (reduction='sum'). Use the mean, F.cross_entropy's default, so "
                        f"the step size does not depend on the batch size.")
        if abs(got - expected) > 1e-4 * max(1.0, abs(expected)):
            raise Wrong(f"at step {step + 1} your function returned a loss of {got:.4f}; the "
                        f"cross-entropy of the model's logits on this batch is {expected:.4f}. "
                        f"Use F.cross_entropy(model(images), labels), before the step.")
        params = list(model.parameters())
        if all(torch.equal(p.detach(), b) for p, b in zip(params, before)):
            _explain_frozen(params)
        for name, p, r, g, b in zip(names, params, ref.parameters(), grads, before):
            if (g.abs().max() > 0 and p.grad is not None
                    and torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4)
                    and torch.allclose(p.detach(), b - 2 * LR * g, atol=1e-6, rtol=1e-5)):
                raise Wrong(f"at step {step + 1} every weight moved twice as far as one step: "
                            f"optimizer.step() ran twice. Call it once per batch.")
            if not torch.allclose(p.detach(), r.detach(), atol=1e-6, rtol=1e-5):
                _explain_drift(step, name, p, g,
                               None if prev_grads is None else prev_grads[names.index(name)])
        prev_grads = grads
        losses.append(got)
    if not losses[-1] < losses[0]:
        raise Wrong(f"the loss did not fall over {STEPS} steps on one batch: {losses[0]:.4f} "
                    f"-> {losses[-1]:.4f}.")
    return (f"Over {STEPS} steps on one batch the loss fell from {losses[0]:.3f} to "
            f"{losses[-1]:.3f}, and every weight moved as one SGD step moves it.")


def _explain_frozen(params: list[torch.nn.Parameter]) -> None:
    has_grad = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params)
    if has_grad:
        raise Wrong("the weights did not move: the gradients are there, but nothing applied "
                    "them. Call optimizer.step() after loss.backward().")
    raise Wrong("the weights did not move, and no gradient was left to apply: call "
                "loss.backward() before optimizer.step(), and optimizer.zero_grad() before "
                "backward, not between backward and step.")


def _explain_drift(step: int, name: str, p: torch.nn.Parameter, grad: torch.Tensor,
                   prev: torch.Tensor | None) -> None:
    mine = p.grad
    if mine is not None and prev is not None and torch.allclose(mine, grad + prev, atol=1e-5,
                                                                rtol=1e-4):
        raise Wrong(f"at step {step + 1} the gradients of step {step} were still in .grad and "
                    f"the new ones were added to them (gradients accumulate): call "
                    f"optimizer.zero_grad() before loss.backward() in every step.")
    if mine is not None and torch.allclose(mine, 2 * grad, atol=1e-5, rtol=1e-4):
        raise Wrong(f"at step {step + 1} the gradients are twice what they should be: "
                    f"loss.backward() ran twice. Call it once per step.")
    raise Wrong(f"after step {step + 1} the weights differ from one step of plain SGD (first "
                f"in {name!r}): zero the gradients, forward, loss, backward, step, each once.")


q1 = Exercise(
    name="q1",
    prompt="Write train_step(model, optimizer, images, labels): one training step on one batch "
           "(training mode, zero the gradients, forward, cross-entropy loss, backward, step); "
           "return the loss as a number.",
    checker=_train_step,
    hint_text="The training loop above does it for every batch: take the body of its loop, "
              "with the mode set first. The loss is a tensor; the function returns a number.",
    solution_text="def train_step(model, optimizer, images, labels):\n"
                  "    model.train()                               # dropout, batch norm: training\n"
                  "    optimizer.zero_grad()                       # clear the last step's gradients\n"
                  "    loss = F.cross_entropy(model(images), labels)\n"
                  "    loss.backward()                             # fill p.grad\n"
                  "    optimizer.step()                            # move every weight\n"
                  "    return loss.item()\n"
                  "answer = train_step",
    kind="code",
    error_hints=(("backward through the graph a second time",
                  "loss.backward() ran twice on the same loss: call it once per step."),
                 ("does not require grad",
                  "the loss has no gradient: compute it from model(images) without "
                  "torch.no_grad() and without .detach()."),),
)


class _OptimizersMade:
    """Counts the optimizers created while it is open."""

    def __enter__(self) -> _OptimizersMade:
        self.count = 0
        self._init = torch.optim.Optimizer.__init__
        outer = self

        def counting(opt: Any, *args: Any, **kwargs: Any) -> None:
            outer.count += 1
            outer._init(opt, *args, **kwargs)

        torch.optim.Optimizer.__init__ = counting  # type: ignore[method-assign, assignment]
        return self

    def __exit__(self, *exc: Any) -> None:
        torch.optim.Optimizer.__init__ = self._init  # type: ignore[method-assign]


# --------------------------------------------------------------------------- predict

def _first_loss(answer: Any) -> None:
    value = as_number(answer)
    expected = math.log(10)
    if abs(value - expected) <= 0.3:
        return
    if abs(value - 0.1) < 0.05 or abs(value - 0.9) < 0.05:
        raise Wrong("that is a probability or an accuracy; the question asks for the "
                    "cross-entropy loss, -log(probability of the true class).")
    if value < 0.5:
        raise Wrong(f"{value:g} would be a model that is already nearly always right and sure "
                    f"of it; an untrained one guesses.")
    raise Wrong(f"{value:g} is not it: a guess that spreads its probability evenly over 10 "
                f"classes gives each 1/10; the loss is -log of the true class's probability.")


p2 = Exercise(
    name="p2",
    prompt="Predict: the cross-entropy loss of the untrained model on its first batch, "
           "roughly?",
    checker=_first_loss,
    hint_text="Untrained, the model spreads its probability about evenly over the 10 digits. "
              "Cross-entropy is -log(probability given to the true class).",
    solution_text="answer = math.log(10)   # about 2.30: -log(1/10)",
    kind="predict",
    reference=lambda: math.log(10),
)


@lru_cache(maxsize=1)
def _confusions() -> list[tuple[int, int, int]]:
    """(count, true digit, predicted digit) of the pretrained model's mistakes, most first."""
    from ..data import mnist_tensors
    from ..models import pretrained

    images, labels = mnist_tensors(train=False)
    model = pretrained().cpu().eval()
    with torch.no_grad():
        pred = torch.cat([model(images[i:i + 2000]).argmax(1) for i in range(0, len(images), 2000)])
    counts = torch.zeros(10, 10, dtype=torch.long)
    counts.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    counts.fill_diagonal_(0)
    return sorted(((int(counts[t, q]), t, q) for t in range(10) for q in range(10) if t != q),
                  reverse=True)


def _confused_pair(answer: Any) -> None:
    try:
        true, said = (as_int(v, "a digit") for v in answer)
    except (TypeError, ValueError):
        raise Wrong(f"give a pair (true digit, predicted digit), e.g. (1, 7), not "
                    f"{answer!r}.") from None
    if not (0 <= true <= 9 and 0 <= said <= 9) or true == said:
        raise Wrong("give two different digits 0-9: (true digit, what the model said).")
    ranked = _confusions()
    top = {(t, q) for c, t, q in ranked if c >= ranked[4][0]}   # the five most frequent, ties in
    if (true, said) in top:
        return
    if (said, true) in top:
        raise Wrong(f"close: the model confuses these two, but mostly the other way round, a "
                    f"{said} taken for a {true}.")
    count = next(c for c, t, q in ranked if (t, q) == (true, said))
    raise Wrong(f"the shipped model takes a {true} for a {said} only {count} time(s) in the "
                f"10,000 test digits; other pairs come up more often. Which digits share "
                f"strokes?")


p3 = Exercise(
    name="p3",
    prompt="Predict: which mistake will the model make most often? Give (true digit, "
           "predicted digit).",
    checker=_confused_pair,
    hint_text="Think of digits that differ by one stroke or one closed loop: 4 and 9, 3 and "
              "5, 7 and 2, 7 and 1.",
    solution_text="answer = (5, 3)   # any of the five most frequent mistakes counts, e.g. "
                  "(4, 9), (9, 4), (7, 2)",
    kind="predict",
    giveaways=(" taken for ",),
    reference=lambda: _confusions()[0][1:],
)


questionnaire = Questionnaire((
    ("Name the four steps of a training step, in order, and the line of PyTorch for each.",
     "forward: logits = model(images); loss: F.cross_entropy(logits, labels); backward: "
     "loss.backward(); step: optimizer.step(), after optimizer.zero_grad() has cleared the "
     "last step's gradients."),
    ("What goes wrong without optimizer.zero_grad()?",
     "backward() adds to .grad, so each step would apply the sum of all gradients so far."),
    ("Why evaluate on the test split, and why under torch.no_grad() and model.eval()?",
     "The test digits were never trained on, so they measure generalisation; no_grad saves "
     "memory and time, eval switches layers such as dropout and batch norm to inference."),
    ("What is an epoch, and how many steps is one epoch of 60,000 images at batch size 64?",
     "One pass over the training set: ceil(60,000 / 64) = 938 steps."),
    ("What does a confusion matrix show that accuracy does not?",
     "Which digits are taken for which: the mistakes pair up digits with similar strokes."),
    ("What does a one-cycle learning-rate schedule do?",
     "It warms the learning rate up, then lowers it smoothly to almost zero, so the last "
     "steps only fine-tune."),
    ("What does featviz.save_checkpoint store, and how do you get the model back?",
     "The weights, the architecture's name and your notes; featviz.load_checkpoint(path) "
     "rebuilds the model."),
))

reading = _reading(
    ("lecun1998", "training a convolutional network by gradient descent and back-propagation, "
                  "and the error analysis of its mistakes on MNIST."),
    ("kingma2015", "the Adam optimiser used in the training loop."),
)
