"""Exercises that answer at once: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``.

Each lesson has a module here (``featviz.exercises.lesson04`` ...) defining its
questions as :class:`Exercise` objects::

    from featviz.exercises import lesson04 as ex
    answer = ...            # the learner replaces ... with their answer
    ex.q1.check(answer)     # prints whether it is right, and why not

A checker is a function that returns ``None`` when the answer is right and
raises :class:`Wrong` with a friendly message when it is not.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["Exercise", "Verdict", "Wrong", "NOT_ANSWERED", "as_int", "as_number", "expect_equal"]

NOT_ANSWERED = Ellipsis


class Wrong(Exception):
    """Raised by a checker with the message the learner should read."""


class Verdict:
    """What :meth:`Exercise.check` returns: true when the answer is right.

    It shows nothing in a notebook (the printed message is the feedback), so a
    cell ending in ``q1.check(answer)`` does not also print ``False``.
    """

    __slots__ = ("ok",)

    def __init__(self, ok: bool) -> None:
        self.ok = bool(ok)

    def __bool__(self) -> bool:
        return self.ok

    def __eq__(self, other: object) -> bool:
        return self.ok == bool(other) if isinstance(other, (bool, Verdict)) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:
        pass


@dataclass
class Exercise:
    """One question: a checker, a hint and a solution.

    ``check`` prints a short verdict and returns a :class:`Verdict`, true when
    the answer is right (so a test can assert on it); it never raises for a
    wrong answer.
    """

    name: str
    prompt: str
    checker: Callable[[Any], None]
    hint_text: str
    solution_text: str
    attempts: int = field(default=0, init=False)

    def check(self, answer: Any = NOT_ANSWERED) -> Verdict:
        if answer is NOT_ANSWERED or answer is None:
            print(f"{self.name}: not answered yet. Replace the ... with your answer and run "
                  f"the cell again. ({self.name}.hint() gives a hint.)")
            return Verdict(False)
        self.attempts += 1
        try:
            self.checker(answer)
        except Wrong as exc:
            extra = "" if self.attempts < 2 else f" Stuck? Try {self.name}.hint()."
            print(f"{self.name}: not quite. {exc}{extra}")
            return Verdict(False)
        except Exception as exc:  # a checker tripping over an odd answer is still feedback
            print(f"{self.name}: could not check this answer ({type(exc).__name__}: {exc}). "
                  f"{self.prompt}")
            return Verdict(False)
        print(f"{self.name}: correct!")
        return Verdict(True)

    def hint(self) -> None:
        print(f"{self.name} hint: {self.hint_text}")

    def solution(self) -> None:
        print(f"{self.name} solution:\n{self.solution_text}")

    def __repr__(self) -> str:
        return f"<Exercise {self.name}: {self.prompt}>"


def expect_equal(expected: Any, message: str) -> Callable[[Any], None]:
    """A checker for answers with one right value (numbers compared loosely)."""

    def checker(answer: Any) -> None:
        if isinstance(expected, (int, float)) and isinstance(answer, (int, float)):
            if abs(answer - expected) <= 1e-6 * max(1.0, abs(expected)):
                return
        elif answer == expected:
            return
        raise Wrong(message.format(answer=answer))

    return checker


def _scalar(answer: Any) -> Any:
    """A one-element tensor or array as a plain Python number; anything else as it is."""
    if hasattr(answer, "item") and not isinstance(answer, (bool, numbers.Number)):
        size = answer.numel() if callable(getattr(answer, "numel", None)) else getattr(answer, "size", None)
        if size == 1:
            return answer.item()
    return answer


def as_int(answer: Any, what: str = "a whole number") -> int:
    """The answer as an int (ints, integral floats, one-element tensors); :class:`Wrong` otherwise."""
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    answer = _scalar(answer)
    if isinstance(answer, numbers.Integral):
        return int(answer)
    if isinstance(answer, float) and answer.is_integer():
        return int(answer)
    raise Wrong(f"give {what}, not {type(answer).__name__} {answer!r}.")


def as_number(answer: Any, what: str = "a number") -> float:
    """The answer as a float (any real number, one-element tensors); :class:`Wrong` otherwise."""
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    answer = _scalar(answer)
    if isinstance(answer, numbers.Real):
        return float(answer)
    raise Wrong(f"give {what}, not {type(answer).__name__} {answer!r}.")
