"""What a checker says, read the way a learner reads it under the cell.

Used by the checker tests (``from _verdicts import ...``; pytest puts ``tests/`` on the path).
A checker's first call in a fresh process may load the data and say so in a ``featviz: ...``
line; the verdict is what follows.
"""
from __future__ import annotations


def verdict(capsys, exercise, answer) -> tuple[bool, str]:
    capsys.readouterr()                      # what came before the check is not its verdict
    ok = bool(exercise.check(answer))
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines(keepends=True) if not line.startswith("featviz: ")]
    return ok, "".join(lines)


def assert_right(capsys, exercise, answer, *, exact: bool = False) -> None:
    """The check passes and says so first (``exact``: and says nothing else)."""
    ok, out = verdict(capsys, exercise, answer)
    if exact:
        assert ok and out == f"{exercise.name}: correct!\n", out
    else:
        assert ok and out.startswith(f"{exercise.name}: correct!"), out


def assert_wrong(capsys, exercise, answer, *expected: str) -> None:
    """The check fails with "not quite" and a message that contains each of ``expected``."""
    ok, out = verdict(capsys, exercise, answer)
    assert not ok and "not quite" in out, out
    for text in expected:
        assert text in out, out
