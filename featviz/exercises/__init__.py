"""Exercises that answer at once: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()``.

Each lesson has a module here (``featviz.exercises.lesson04`` ...) defining its
questions as :class:`Exercise` objects::

    from featviz.exercises import lesson04 as ex
    answer = ...            # the learner replaces ... with their answer
    ex.q1.check(answer)     # prints whether it is right, and why not

Three kinds of exercise share this interface:

- ``"value"``: the answer is a number, a shape, a name;
- ``"predict"``: the same, asked *before* the cell that shows the result;
- ``"code"``: the answer is a function. ``check(fn)`` runs it on several inputs,
  edge cases included, against a reference, and says what is wrong: a shape,
  a value (where, and by how much), a hook left registered, the model left in
  train mode, the input changed in place. A stub whose body is still ``...``
  (or ``raise NotImplementedError``) is "not answered", and an exception raised
  by the learner's code is reported with the line it came from and the input
  that triggered it (see :func:`call` and :func:`on_input`), never as a traceback.

A checker is a function that returns ``None`` (or a short remark) when the
answer is right and raises :class:`Wrong` with a friendly message when it is not.
Each lesson module also holds its ``questionnaire`` and ``reading`` (further
reading with the primary sources).
"""
from __future__ import annotations

import copy
import dis
import linecache
import numbers
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import torch

__all__ = [
    "Exercise", "Verdict", "Wrong", "NotAnswered", "NOT_ANSWERED", "as_int", "as_number",
    "expect_equal", "as_choice", "is_stub", "need_function", "call", "expect_close", "as_tensor_answer",
    "HookSpy", "ModeGuard", "call_on_model", "Questionnaire", "Reading", "on_input",
    "input_of", "expect_hook_removed_on_failure", "close_enough",
]

NOT_ANSWERED = Ellipsis


class Wrong(Exception):
    """Raised by a checker with the message the learner should read."""


class NotAnswered(Wrong):
    """Raised by a checker when the answer still holds the ``...`` of the stub."""


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
        if isinstance(other, (bool, Verdict)):
            return self.ok == bool(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.ok)

    def __repr__(self) -> str:
        return f"Verdict({self.ok})"

    def _ipython_display_(self) -> None:
        pass


# --------------------------------------------------------------------------- learner code

_STUB_OPS = {"RESUME", "NOP", "LOAD_CONST", "RETURN_VALUE", "RETURN_CONST", "POP_TOP", "CACHE"}


#: What ``raise NotImplementedError`` or ``raise NotImplementedError("...")`` compiles to.
_RAISE_OPS = {"RESUME", "NOP", "CACHE", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_CONST", "PUSH_NULL",
              "PRECALL", "CALL", "CALL_FUNCTION", "RAISE_VARARGS", "POP_TOP"}


def _raises_not_implemented(instructions: list[dis.Instruction]) -> bool:
    names = [i.argval for i in instructions if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    return (names == ["NotImplementedError"]
            and any(i.opname == "RAISE_VARARGS" for i in instructions)
            and all(i.opname in _RAISE_OPS for i in instructions)
            and all(isinstance(i.argval, (str, type(None), type(Ellipsis)))
                    for i in instructions if i.opname == "LOAD_CONST"))


def is_stub(answer: Any) -> bool:
    """True for a function whose body is only ``...`` (or ``pass``, a docstring, or
    ``raise NotImplementedError``, with or without a message): not answered yet."""
    code = getattr(answer, "__code__", None)
    if code is None or not callable(answer):
        return False
    instructions = list(dis.get_instructions(code))
    if _raises_not_implemented(instructions):
        return True
    for ins in instructions:
        if ins.opname not in _STUB_OPS:
            return False
        if ins.opname in ("LOAD_CONST", "RETURN_CONST") and ins.argval not in (None, Ellipsis):
            return False
    return True


def need_function(answer: Any, signature: str) -> Callable[..., Any]:
    """The answer as a function; :class:`Wrong` when it is something else."""
    if not callable(answer):
        raise Wrong(f"give the function itself, {signature}, not {type(answer).__name__} "
                    f"{_short(answer)}: write `answer = {signature.split('(')[0]}` (no brackets).")
    if is_stub(answer):
        raise NotAnswered("replace the ... in your function with your code.")
    return answer


_INPUT_ATTR = "_featviz_input"


def input_of(exc: BaseException) -> str | None:
    """The input named by :func:`on_input` (or ``call(..., on=...)``) when ``exc`` was raised."""
    value = getattr(exc, _INPUT_ATTR, None)
    return value if isinstance(value, str) else None


@contextmanager
def on_input(description: str) -> Iterator[None]:
    """Name the input that the learner's code inside the block runs on.

    An exception their code raises in the block is reported by :meth:`Exercise.check`
    as "your code raised an error on the input <description> (in f, line n: ...)";
    the exception itself goes on unchanged (only the description is attached to it).
    The innermost block wins; a :class:`Wrong` raised by the checker passes untouched.
    Describe the input as the learner would write it, and say what is special about it.

    Examples
    --------
    In a checker, for each case::

        for stack, what in cases:
            with on_input(f"layers={stack!r} ({what})"):      # e.g. "layers=[] (an empty stack)"
                got = call(fn, stack, returns="(size, jump)")

    or, the same for one call::

        got = call(fn, [], returns="(size, jump)", on="layers=[] (an empty stack)")
    """
    try:
        yield
    except Wrong:
        raise
    except Exception as exc:
        if input_of(exc) is None:
            try:
                setattr(exc, _INPUT_ATTR, description)
            except (AttributeError, TypeError):   # an exception type without a __dict__
                pass
        raise


def call(fn: Callable[..., Any], *args: Any, returns: str = "a value",
         on: str | None = None) -> Any:
    """Call the learner's function; its ``...`` or a missing ``return`` are said plainly.

    ``on`` names the input (see :func:`on_input`): an error the function raises, or a
    ``None`` it returns, is reported with it, e.g. ``call(fn, [], on="layers=[] (an empty
    stack)")``.
    """
    if on is None:
        result = fn(*args)
    else:
        with on_input(on):
            result = fn(*args)
    if result is Ellipsis:
        raise NotAnswered("your function still returns `...`: replace it with your code.")
    if result is None:
        where = f" on the input {on}" if on else ""
        raise Wrong(f"your function returned None{where}: end it with `return` and {returns}.")
    return result


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _library_dirs() -> tuple[str, ...]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the featviz package
    roots = {here, sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.__file__)}
    return tuple(os.path.abspath(r) + os.sep for r in roots if r and len(os.path.abspath(r)) > 1)


def _learner_frame(exc: BaseException, answer: Any) -> tuple[str, int, str] | None:
    """(function, line number, line) of the deepest frame of the learner's own code: the
    file (a notebook cell) their function was written in, outside featviz and the libraries."""
    code = getattr(answer, "__code__", None)
    if code is None:
        return None
    files = {code.co_filename}
    libs = _library_dirs()
    found = None
    tb = exc.__traceback__
    while tb is not None:
        frame_code = tb.tb_frame.f_code
        name = frame_code.co_filename
        if name in files and not os.path.abspath(name).startswith(libs):
            line = linecache.getline(name, tb.tb_lineno, tb.tb_frame.f_globals)
            found = (frame_code.co_name, tb.tb_lineno, line.strip())
        tb = tb.tb_next
    return found


def _raised_by_learner(exc: BaseException) -> bool:
    """True when the innermost frame of ``exc`` is the learner's code, not a library's."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_library_dirs())


def as_tensor_answer(value: Any, what: str) -> torch.Tensor:
    """A tensor (or array) answer as a float CPU tensor; :class:`Wrong` otherwise."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu").float()
    if hasattr(value, "__array__") and not isinstance(value, (str, bytes)):
        return torch.as_tensor(value).float()
    raise Wrong(f"{what} should be a tensor, got {type(value).__name__} {_short(value)}.")


def expect_close(got: Any, expected: torch.Tensor, what: str, *, atol: float = 1e-5,
                 rtol: float = 1e-4) -> None:
    """:class:`Wrong` unless ``got`` has ``expected``'s shape and values: says where and by how much."""
    got = as_tensor_answer(got, what)
    expected = expected.detach().to("cpu").float()
    if tuple(got.shape) != tuple(expected.shape):
        raise Wrong(f"{what} has the wrong shape: expected {tuple(expected.shape)}, got "
                    f"{tuple(got.shape)}.")
    diff = (got - expected).abs()
    bad = diff > atol + rtol * expected.abs()
    if torch.isnan(got).any():
        raise Wrong(f"{what} holds NaN values (at {_index(torch.isnan(got))}).")
    if bad.any():
        where = _index(bad & (diff == diff[bad].max()))
        raise Wrong(f"{what} is off: at index {where} expected {float(expected[where]):.5g}, "
                    f"got {float(got[where]):.5g} (a difference of {float(diff[where]):.3g}); "
                    f"{int(bad.sum())} of {bad.numel()} values differ.")


def _index(mask: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in mask.nonzero()[0]) if mask.dim() else ()


class HookSpy:
    """Watches the hooks registered on some modules, to tell whether any is left behind.

    Every ``register_*_hook`` call on the watched modules goes through the spy,
    which counts each later run of the hook. :meth:`live_hooks` runs a probe
    forward and backward pass: a hook that still runs was not removed.
    Uses only public ``nn.Module`` methods.
    """

    METHODS = ("register_forward_hook", "register_forward_pre_hook",
               "register_full_backward_hook", "register_full_backward_pre_hook",
               "register_backward_hook")

    def __init__(self, modules: Iterable[torch.nn.Module]) -> None:
        self.calls = 0
        self.registered = 0
        self.modules = list(modules)
        for module in self.modules:
            for method in self.METHODS:
                if hasattr(module, method):
                    object.__setattr__(module, method, self._wrap(getattr(module, method)))

    def _wrap(self, register: Callable[..., Any]) -> Callable[..., Any]:
        def spied_register(hook: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            def spied(*a: Any, **k: Any) -> Any:
                self.calls += 1
                return hook(*a, **k)

            self.registered += 1
            return register(spied, *args, **kwargs)

        return spied_register

    def live_hooks(self, model: torch.nn.Module, x: torch.Tensor) -> int:
        """How many hook runs one probe forward and backward pass of ``model`` triggers."""
        self.calls = 0
        xg = x.detach().clone().requires_grad_(True)
        try:
            with torch.enable_grad():
                out = model(xg)
                torch.autograd.grad(out.float().sum(), xg, allow_unused=True)
        except Exception:  # a leftover hook that breaks the pass still counts as left
            self.calls = max(self.calls, 1)
        return self.calls

    def release(self) -> None:
        for module in self.modules:
            for method in self.METHODS:
                module.__dict__.pop(method, None)


class ModeGuard:
    """Remembers each module's train/eval mode, to tell whether a function changed it."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.modes = [(name, m, m.training) for name, m in model.named_modules()]

    def changed(self) -> list[tuple[str, bool]]:
        """``(name, now_training)`` of each module whose mode differs from before."""
        return [(name or "model", m.training) for name, m, mode in self.modes
                if m.training != mode]

    def check(self) -> None:
        changed = self.changed()
        if changed:
            name, training = changed[0]
            now = "train" if training else "eval"
            raise Wrong(f"your function left the model in {now} mode ({name}.training is now "
                        f"{training}). Put it back as you found it: remember "
                        f"`was_training = model.training` and call `model.train(was_training)` "
                        f"at the end (in a `finally:` block).")

    def restore(self) -> None:
        for _, m, mode in self.modes:
            m.training = mode


def call_on_model(fn: Callable[..., Any], model: torch.nn.Module, x: torch.Tensor, *args: Any,
                  returns: str, hook_fix: str, also: Callable[[], None] | None = None,
                  on: str | None = None) -> Any:
    """``fn(model, x, *args)`` on a copy of the images ``x``, then what a function given a
    model must not do: change the model's train/eval modes, fail ``also()`` (the exercise's
    own check, raising :class:`Wrong`), change the images in place, leave a hook on the
    model (``hook_fix`` says how to remove it). Modes and hooks are put back either way.
    ``on`` names the input for error reports, as in :func:`call`."""
    guard, spy = ModeGuard(model), HookSpy(model.modules())
    xin = x.clone()
    try:
        got = call(fn, model, xin, *args, returns=returns, on=on)
        guard.check()
        if also is not None:
            also()
        if not torch.equal(xin, x):
            raise Wrong("your function changed the images it was given in place.")
        if spy.live_hooks(model, x):
            raise Wrong(f"a hook you registered is still on the model after your function "
                        f"returned: {hook_fix}")
    finally:
        spy.release()
        guard.restore()
    return got


class _FailedOnPurpose(RuntimeError):
    """The error :func:`expect_hook_removed_on_failure` makes the forward pass raise."""


def expect_hook_removed_on_failure(run: Callable[[torch.nn.Module], Any], model: torch.nn.Module,
                                   fail_at: str, probe: torch.Tensor, *,
                                   message: str | None = None) -> None:
    """:class:`Wrong` unless the learner's hooks go even when the forward pass fails.

    ``run(failing)`` calls the learner's function on ``failing``, a deep copy of ``model``
    whose layer ``fail_at`` (a name of ``named_modules()``) raises an error as soon as
    it is called; pick a layer that runs after the hooked one. Whatever ``run`` raises is
    ignored; then the trap is taken off and a probe pass on ``probe`` (a batch the model
    takes) tells whether a hook the learner registered is still there. A hook removed
    only by the line after the forward pass stays; one removed in ``finally:`` goes.
    ``message`` replaces the default verdict.

    Example
    -------
    ::

        # record_conv2(model, x) hooks conv2; make relu2, which runs after it, fail
        expect_hook_removed_on_failure(lambda m: fn(m, x.clone()), model, "relu2", x)
        # a function given the layer module: hand it the copy's own module
        expect_hook_removed_on_failure(lambda m: fn(m, x, m.relu2, 3), model, "fc1", x)
    """
    failing = copy.deepcopy(model)
    layer = dict(failing.named_modules()).get(fail_at)
    if layer is None:
        raise ValueError(f"fail_at={fail_at!r} is not a layer of the model.")

    def fail(module: torch.nn.Module, args: Any) -> None:
        raise _FailedOnPurpose(f"the layer {fail_at} failed (the check made it fail on purpose)")

    trap = layer.register_forward_pre_hook(fail)   # before the spy: not counted as the learner's
    spy = HookSpy(failing.modules())
    try:
        try:
            run(failing)
        except Exception:  # noqa: BLE001 - the failure is the point; only the hooks matter here
            pass
        trap.remove()
        if spy.live_hooks(failing, probe):
            raise Wrong(message or "when the forward pass raises an error, your hook stays on "
                        "the layer: the line that removes it never runs, and the hook runs at "
                        "every later pass. Put the forward pass in `try:` and handle.remove() "
                        "in `finally:`.")
    finally:
        spy.release()
        trap.remove()


# --------------------------------------------------------------------------- exercise


@dataclass
class Exercise:
    """One question: a checker, a hint and a solution.

    ``check`` prints a short verdict and returns a :class:`Verdict`, true when
    the answer is right (so a test can assert on it); it never raises for a
    wrong answer, nor for an error in the learner's code.

    Parameters
    ----------
    kind : ``"value"``, ``"predict"`` (asked before the cell that shows it) or
        ``"code"`` (the answer is a function; the solution is code that defines it).
    giveaways : the texts that would give the answer away if a cell above the
        question printed them (a tuple, or a function returning them, for answers
        computed from the model); :meth:`expected_texts` returns them.
    error_hints : ``(part of an error message, what to do)`` pairs, added to the
        report when the learner's code raises an error whose message holds the part.
    reference : for a ``"value"`` or ``"predict"`` exercise, a function of no arguments
        that computes one right answer (from the model or the data, never typed in).
        Tests use it to hold the checker to every form of a right answer: an int,
        ``np.int64``, a 0-d tensor, an integral float, a tuple or a list.
    """

    name: str
    prompt: str
    checker: Callable[[Any], Any]
    hint_text: str
    solution_text: str
    kind: str = "value"
    giveaways: Sequence[str] | Callable[[], Sequence[str]] = ()
    error_hints: Sequence[tuple[str, str]] = ()
    reference: Callable[[], Any] | None = None
    attempts: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.kind not in ("value", "predict", "code"):
            raise ValueError(f"kind must be 'value', 'predict' or 'code', got {self.kind!r}.")

    def _not_answered(self, why: str = "") -> Verdict:
        what = "your code" if self.kind == "code" else "your answer"
        why = why or f"Replace the ... with {what} and run the cell again."
        print(f"{self.name}: not answered yet. {why} ({self.name}.hint() gives a hint.)")
        return Verdict(False)

    def check(self, answer: Any = NOT_ANSWERED) -> Verdict:
        if answer is NOT_ANSWERED or answer is None or is_stub(answer):
            return self._not_answered()
        self.attempts += 1
        try:
            with torch.random.fork_rng(devices=[]):
                remark = self.checker(answer)
        except NotAnswered as exc:
            self.attempts -= 1
            return self._not_answered(str(exc))
        except Wrong as exc:
            extra = "" if self.attempts < 2 else f" Stuck? Try {self.name}.hint()."
            print(f"{self.name}: not quite. {exc}{extra}")
            return Verdict(False)
        except Exception as exc:  # noqa: BLE001 - every failure is feedback, never a traceback
            return self._report_error(exc, answer)
        print(f"{self.name}: correct!" + (f" {remark}" if isinstance(remark, str) else ""))
        return Verdict(True)

    def _report_error(self, exc: Exception, answer: Any) -> Verdict:
        where = _learner_frame(exc, answer)
        described = input_of(exc)
        message = f"{type(exc).__name__}: {exc}".strip()
        if len(message) > 200 and ". " in message[:200]:  # torch's long messages: the gist
            message = message[:message.index(". ", 0, 200) + 1]
        if where is None and described is None:  # the checker tripped over an odd answer
            print(f"{self.name}: could not check this answer ({message}). {self.prompt}")
            return Verdict(False)
        on = f" on the input {described}" if described else ""
        at = ""
        if where is not None:
            function, line, text = where
            at = f" (in {function}, line {line}: `{text}`)" if text else f" (line {line})"
        if "ellipsis" in str(exc).lower():
            self.attempts -= 1
            return self._not_answered(f"Your code still has a `...`{at}: replace it with code.")
        if isinstance(exc, NotImplementedError) and _raised_by_learner(exc):
            self.attempts -= 1
            return self._not_answered(f"Your code still raises NotImplementedError{at}: "
                                      f"replace it with your code.")
        hints = [hint for part, hint in self.error_hints if part.lower() in message.lower()]
        sep = " " if message.endswith((".", "!", "?")) else ". "
        print(f"{self.name}: your code raised an error{on}{at}: {message}"
              + (f"{sep}{hints[0]}" if hints else ""))
        return Verdict(False)

    def hint(self) -> None:
        print(f"{self.name} hint: {self.hint_text}")

    def solution(self) -> None:
        print(f"{self.name} solution:\n{self.solution_text}")

    def expected_texts(self) -> list[str]:
        """Texts that give the answer away: none of them may be printed above the question."""
        texts = self.giveaways() if callable(self.giveaways) else self.giveaways
        return [str(t) for t in texts]

    def __repr__(self) -> str:
        return f"<Exercise {self.name} ({self.kind}): {self.prompt}>"


def expect_equal(expected: Any, message: str) -> Callable[[Any], None]:
    """A checker for answers with one right value (numbers compared loosely)."""

    def checker(answer: Any) -> None:
        if isinstance(expected, (int, float)) and not isinstance(expected, bool):
            value = as_number(answer)    # a string or a bool gets "give a number"
            if abs(value - expected) <= 1e-6 * max(1.0, abs(expected)):
                return
            answer = value
        elif answer == expected:
            return
        raise Wrong(message.format(answer=answer))

    return checker


def _scalar(answer: Any) -> Any:
    """A one-element tensor or array as a plain Python number; anything else as it is."""
    if hasattr(answer, "item") and not isinstance(answer, (bool, str, bytes)):
        size = answer.numel() if callable(getattr(answer, "numel", None)) else getattr(answer, "size", None)
        if size == 1:
            try:
                return answer.item()
            except (TypeError, ValueError):
                return answer
    return answer


def _number_text(text: str) -> str | None:
    """The number a string spells (``'784'``, ``' -0.42 '``), or None."""
    try:
        float(text.strip().replace("_", ""))
    except ValueError:
        return None
    return text.strip()


def _not_a_number(answer: Any, what: str) -> Wrong:
    if isinstance(answer, (str, bytes)):
        text = answer.decode(errors="replace") if isinstance(answer, bytes) else answer
        spelled = _number_text(text)
        if spelled is not None:
            return Wrong(f"give {what}, not str: you wrote {answer!r}, a string. Write it "
                         f"without the quotes: {spelled}.")
        return Wrong(f"give {what}, not str {_short(answer)}.")
    if hasattr(answer, "shape") and hasattr(answer, "__len__"):
        return Wrong(f"give {what}, not a {type(answer).__name__} of shape "
                     f"{tuple(answer.shape)}: one number.")
    if isinstance(answer, (tuple, list)):
        return Wrong(f"give {what}, not a {type(answer).__name__} {_short(answer)}: one number.")
    return Wrong(f"give {what}, not {type(answer).__name__} {_short(answer)}.")


def as_int(answer: Any, what: str = "a whole number") -> int:
    """The answer as an int; :class:`Wrong` with a message that says why otherwise.

    Accepts an int, any numpy integer (``np.int64``), an integral float (``22.0``,
    ``np.float32(22.0)``) and a one-element tensor or array (0-d included). A bool,
    a string (even ``'784'``: "give a number, not str"), a non-integral float and
    anything else get a message naming what was given.

    >>> as_int(torch.tensor(22)), as_int(22.0)
    (22, 22)
    """
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    answer = _scalar(answer)
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    if isinstance(answer, numbers.Integral):
        return int(answer)
    if isinstance(answer, numbers.Real):
        value = float(answer)
        if value.is_integer():
            return int(value)
        raise Wrong(f"give {what}, not {type(answer).__name__} {answer!r}: it is not a whole "
                    f"number.")
    raise _not_a_number(answer, what)


def as_number(answer: Any, what: str = "a number") -> float:
    """The answer as a float (any real number, numpy scalars, one-element tensors or arrays);
    :class:`Wrong` otherwise (a bool, a string such as ``'0.13'``: "give a number, not str").

    >>> as_number(torch.tensor(0.5))
    0.5
    """
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    answer = _scalar(answer)
    if isinstance(answer, bool):
        raise Wrong(f"give {what}, not {answer!r}.")
    if isinstance(answer, numbers.Real):
        return float(answer)
    raise _not_a_number(answer, what)


def close_enough(value: float, expected: float, *, within: float, close: float | None = None,
                 what: str = "the value") -> str | None:
    """Judge a predicted number: a remark when it is within ``within`` of ``expected``.

    Returns a remark (a checker may return it, and the learner reads it after "correct!")
    when ``|value - expected| <= within``; raises :class:`Wrong` saying "close" and by how
    much when it is within ``close``; returns None otherwise, for the checker's own
    messages about typical slips.

    >>> close_enough(-0.42, -0.4242, within=0.01)
    '-0.42 is within 0.01 of the value, -0.4242 (off by 0.0042).'
    """
    off = abs(value - expected)
    if off <= within:
        if off <= 1e-9 * max(1.0, abs(expected)):
            return None if value == expected else f"{what.capitalize()} is {expected:.4g}."
        return (f"{value:g} is within {within:g} of {what}, {expected:.4g} (off by "
                f"{off:.2g}).")
    if close is not None and off <= close:
        raise Wrong(f"close: {value:g} is {off:.2g} from {what}; within {within:g} counts as "
                    f"right. Have another look at how it is computed.")
    return None


def as_choice(answer: Any, choices: Mapping[str, Sequence[str]], what: str) -> str:
    """A short text answer as one of ``choices`` (``{choice: accepted spellings}``)."""
    if isinstance(answer, bool):
        answer = "yes" if answer else "no"
    if not isinstance(answer, str):
        raise Wrong(f"give {what} as a string, e.g. {next(iter(choices))!r}, not "
                    f"{type(answer).__name__}.")
    text = answer.strip().lower()
    for choice, spellings in choices.items():
        if text == choice or text in spellings:
            return choice
    raise Wrong(f"{answer!r} is not one of the choices: "
                + ", ".join(repr(c) for c in choices) + ".")


# --------------------------------------------------------------------------- questionnaire


@dataclass(frozen=True)
class Questionnaire:
    """End-of-lesson questions; ``questionnaire()`` prints them, ``answers=True`` with answers."""

    items: tuple[tuple[str, str], ...]

    def __call__(self, answers: bool = False) -> None:
        for i, (question, answer) in enumerate(self.items, start=1):
            print(f"{i}. {question}")
            if answers:
                print(f"   Answer: {answer}")

    def markdown(self, answers: bool = False) -> str:
        """The questions as a numbered markdown list (the answers in a details block)."""
        lines = [f"{i}. {q}" for i, (q, _) in enumerate(self.items, start=1)]
        if answers:
            lines += ["", "<details><summary>Answers</summary>", ""]
            lines += [f"{i}. {a}" for i, (_, a) in enumerate(self.items, start=1)]
            lines += ["", "</details>"]
        return "\n".join(lines)

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Reading:
    """Further reading: ``(reference, link, why read it)`` entries, primary sources first."""

    items: tuple[tuple[str, str, str], ...]

    def __call__(self) -> None:
        for ref, link, why in self.items:
            print(f"- {ref} {link}".rstrip() + f"\n  {why}")

    def markdown(self) -> str:
        return "\n".join(f"- {ref}" + (f" [{link}]({link})" if link else "") + f" — {why}"
                         for ref, link, why in self.items)

    def __len__(self) -> int:
        return len(self.items)


#: Primary sources, cited by the lessons' further reading.
SOURCES = {
    "lecun1998": ("LeCun, Bottou, Bengio and Haffner (1998). Gradient-based learning applied "
                  "to document recognition. Proceedings of the IEEE 86(11).",
                  "https://doi.org/10.1109/5.726791"),
    "erhan2009": ("Erhan, Bengio, Courville and Vincent (2009). Visualizing higher-layer "
                  "features of a deep network. Technical report 1341, Université de Montréal.",
                  ""),
    "zeiler2014": ("Zeiler and Fergus (2014). Visualizing and understanding convolutional "
                   "networks. ECCV.", "https://arxiv.org/abs/1311.2901"),
    "simonyan2014": ("Simonyan, Vedaldi and Zisserman (2014). Deep inside convolutional "
                     "networks: visualising image classification models and saliency maps. "
                     "ICLR workshop.", "https://arxiv.org/abs/1312.6034"),
    "zhou2016": ("Zhou, Khosla, Lapedriza, Oliva and Torralba (2016). Learning deep features "
                 "for discriminative localization. CVPR.", "https://arxiv.org/abs/1512.04150"),
    "selvaraju2017": ("Selvaraju, Cogswell, Das, Vedantam, Parikh and Batra (2017). Grad-CAM: "
                      "visual explanations from deep networks via gradient-based localization. "
                      "ICCV.", "https://arxiv.org/abs/1610.02391"),
    "smilkov2017": ("Smilkov, Thorat, Kim, Viégas and Wattenberg (2017). SmoothGrad: removing "
                    "noise by adding noise.", "https://arxiv.org/abs/1706.03825"),
    "adebayo2018": ("Adebayo, Gilmer, Muelly, Goodfellow, Hardt and Kim (2018). Sanity checks "
                    "for saliency maps. NeurIPS.", "https://arxiv.org/abs/1810.03292"),
    "olah2017": ("Olah, Mordvintsev and Schubert (2017). Feature visualization. Distill.",
                 "https://distill.pub/2017/feature-visualization/"),
    "olah2018": ("Olah, Satyanarayan, Johnson, Carter, Schubert, Ye and Mordvintsev (2018). "
                 "The building blocks of interpretability. Distill.",
                 "https://distill.pub/2018/building-blocks/"),
    "dumoulin2016": ("Dumoulin and Visin (2016). A guide to convolution arithmetic for deep "
                     "learning.", "https://arxiv.org/abs/1603.07285"),
    "kingma2015": ("Kingma and Ba (2015). Adam: a method for stochastic optimization. ICLR.",
                   "https://arxiv.org/abs/1412.6980"),
    "luo2016": ("Luo, Li, Urtasun and Zemel (2016). Understanding the effective receptive "
                "field in deep convolutional neural networks. NeurIPS.",
                "https://arxiv.org/abs/1701.04128"),
    "he2016": ("He, Zhang, Ren and Sun (2016). Deep residual learning for image recognition. "
               "CVPR.", "https://arxiv.org/abs/1512.03385"),
    "ioffe2015": ("Ioffe and Szegedy (2015). Batch normalization: accelerating deep network "
                  "training by reducing internal covariate shift. ICML.",
                  "https://arxiv.org/abs/1502.03167"),
    "zhang2019": ("Zhang (2019). Making convolutional networks shift-invariant again. ICML.",
                  "https://arxiv.org/abs/1904.11486"),
    "azulay2019": ("Azulay and Weiss (2019). Why do deep convolutional networks generalize so "
                   "poorly to small image transformations? JMLR 20(184).",
                   "https://arxiv.org/abs/1805.12177"),
    "simard2003": ("Simard, Steinkraus and Platt (2003). Best practices for convolutional neural "
                   "networks applied to visual document analysis. ICDAR.",
                   "https://doi.org/10.1109/ICDAR.2003.1227801"),
    "lu2020": ("Lu, Shin, Su and Karniadakis (2020). Dying ReLU and initialization: theory and "
               "numerical examples. Communications in Computational Physics 28(5).",
               "https://arxiv.org/abs/1903.06733"),
    "li2017": ("Li, Kadav, Durdanovic, Samet and Graf (2017). Pruning filters for efficient "
               "ConvNets. ICLR.", "https://arxiv.org/abs/1608.08710"),
    "bouthillier2021": ("Bouthillier, Delaunay, Bronzi, Trofimov, Nichyporuk, Szeto, Sepah, "
                        "Raff, Madan, Voleti, Kahou, Michalski, Serdyuk, Arbel, Pal, Varoquaux "
                        "and Vincent (2021). Accounting for variance in machine learning "
                        "benchmarks. MLSys.", "https://arxiv.org/abs/2103.03098"),
}


def reading(*entries: tuple[str, str]) -> Reading:
    """A :class:`Reading` from ``(source key, why read it)`` pairs."""
    return Reading(tuple((*SOURCES[key], why) for key, why in entries))
