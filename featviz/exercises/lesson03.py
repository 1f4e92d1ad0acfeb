"""Exercises of lesson 03 (training)."""
from __future__ import annotations

import math
from typing import Any

import torch

from . import Exercise, Wrong


def _steps(answer: Any) -> None:
    if isinstance(answer, bool) or not isinstance(answer, (int, float)):
        raise Wrong(f"give a number, not {type(answer).__name__}.")
    expected = math.ceil(60_000 / 64)
    if answer == expected:
        return
    if answer == 60_000 // 64:
        raise Wrong("almost: 60,000 is not a multiple of 64, and the last, smaller batch "
                    "is a step too.")
    if abs(answer - 60_000 / 64) < 1e-6:
        raise Wrong("a step processes a whole batch: round to a whole number of batches.")
    raise Wrong(f"{answer} is not it: one step per batch of 64 images.")


q1 = Exercise(
    name="q1",
    prompt="How many optimizer steps is one epoch over the 60,000 training images at batch size 64?",
    checker=_steps,
    hint_text="One step per batch. The last batch holds whatever is left over.",
    solution_text="answer = math.ceil(60_000 / 64)   # 938: 937 full batches and one of 32",
)


def _zero_grad(answer: Any) -> None:
    if not isinstance(answer, str):
        raise Wrong(f"give the method's name as a string, e.g. \"...\", not "
                    f"{type(answer).__name__}.")
    text = answer.replace(" ", "").lower()
    if "zero_grad" in text:
        return
    if "step" in text:
        raise Wrong("step() applies the gradients; the question asks what clears them.")
    if "backward" in text:
        raise Wrong("backward() computes (and adds to) the gradients; what clears them first?")
    raise Wrong(f"{answer!r} is not it. PyTorch adds new gradients to the old ones unless "
                f"they are cleared.")


q2 = Exercise(
    name="q2",
    prompt="Which optimizer method must run before loss.backward() in every step, and why?",
    checker=_zero_grad,
    hint_text="Without it, .grad would hold the sum of the gradients of every batch so far.",
    solution_text='answer = "optimizer.zero_grad()"   # backward() adds to .grad, it does not overwrite',
)


def _accuracy_fn(answer: Any) -> None:
    if not callable(answer):
        raise Wrong(f"give a function accuracy(logits, labels), not {type(answer).__name__}.")
    gen = torch.Generator().manual_seed(3)
    cases = [
        (torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, 0.0]]),
         torch.tensor([0, 1, 0, 2])),
        (torch.randn(50, 10, generator=gen), torch.randint(0, 10, (50,), generator=gen)),
    ]
    for logits, labels in cases:
        expected = (logits.argmax(1) == labels).float().mean().item()
        got = answer(logits.clone(), labels.clone())
        try:
            value = float(got)
        except (TypeError, ValueError):
            raise Wrong(f"the function should return a number, it returned "
                        f"{type(got).__name__}.") from None
        if abs(value - expected * 100) < 1e-4 and abs(expected) > 1e-9:
            raise Wrong("that is a percentage: return a fraction between 0 and 1.")
        if abs(value - expected) > 1e-6:
            raise Wrong(f"for {len(labels)} examples with {int(round(expected * len(labels)))} "
                        f"correct it returned {value:.4f}, expected {expected:.4f}.")


q3 = Exercise(
    name="q3",
    prompt="Write accuracy(logits, labels): the fraction of rows whose largest logit is at "
           "the true label.",
    checker=_accuracy_fn,
    hint_text="logits.argmax(dim=1) is the predicted class of each row; compare it with labels "
              "and take the mean of the result as floats.",
    solution_text="def accuracy(logits, labels):\n"
                  "    return (logits.argmax(dim=1) == labels).float().mean().item()\n"
                  "answer = accuracy",
)

