"""What a reader of the committed notebooks sees is the lesson, not the machine that ran it.

The notebooks are committed with their outputs so that GitHub and nbviewer show the figures.
These tests read those outputs (they run nothing) and fail on what a reader should never
see there: a folder of the machine that rendered them, an object's memory address, the raw
text of a progress bar, an error. They also keep helpers out of the notebooks: a function
longer than 10 lines belongs in featviz, documented and tested.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_FUNCTION_LINES = 10

# /work/..., /root/..., /tmp/..., /home/<user>, /Users/<user>, C:\Users\<user>; not inside a URL
MACHINE_PATH = re.compile(
    r"(?<![\w.~:/-])(?:/(?:work|root|tmp)(?=[/\s'\")\]:;,]|$)|/home/\w|/Users/\w)"
    r"|\b[A-Za-z]:\\Users\\", re.M)
OBJECT_REPR = re.compile(r"<[^<>\n]*\bat 0x[0-9a-fA-F]+>")
# tqdm's text: carriage returns, "45%|####5 ", "938/938 [00:02<00:00", "363.14it/s]"
PROGRESS = re.compile(r"\r(?!\n)|\d%\|[^\n|]*\||\d+/\d+ \[\d+:\d\d<|\d(?:it|\w+)/s[,\]]|s/it\]")
TEXT_KINDS = ("text/plain", "text/html", "text/markdown", "text/latex")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _texts(nb: nbformat.NotebookNode):
    """(where, text) for every text a reader sees in the outputs of ``nb``."""
    count = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        count += 1
        for out in cell.get("outputs", []):
            where = f"code cell {count} (execution count {cell.get('execution_count')})"
            if out.output_type == "stream":
                yield where, out.text
            elif out.output_type == "error":
                yield where, "\n".join([f"{out.ename}: {out.evalue}", *out.get("traceback", [])])
            else:
                for kind in TEXT_KINDS:
                    value = out.get("data", {}).get(kind)
                    if value:
                        yield where, value if isinstance(value, str) else "".join(value)


def _offences(path: Path, pattern: re.Pattern) -> list[str]:
    found = []
    for where, text in _texts(_read(path)):
        for m in pattern.finditer(text):
            line_start = text.rfind("\n", 0, m.start()) + 1
            line_end = text.find("\n", m.end())
            line = text[line_start:line_end if line_end >= 0 else None].strip()
            found.append(f"{where}: {line[:160]!r}")
            break
    return found


ids = [p.stem for p in PATHS]


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_outputs_show_no_folder_of_the_rendering_machine(path):
    found = _offences(path, MACHINE_PATH)
    assert not found, ("outputs show folders of the machine that rendered them "
                       "(print paths relative to the course, or as the learner's ~):\n"
                       + "\n".join(found))


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_outputs_show_no_object_repr(path):
    found = _offences(path, OBJECT_REPR)
    assert not found, ("outputs show an object's repr with its memory address (end the cell "
                       "with `;`, assign the value, or show something readable):\n"
                       + "\n".join(found))


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_outputs_hold_no_raw_progress_bar_text(path):
    found = _offences(path, PROGRESS)
    assert not found, ("outputs hold the raw text of a progress bar (show a clean final bar "
                       "or a one-line summary):\n" + "\n".join(found))


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_outputs_hold_no_error(path):
    found = []
    for where, text in _texts(_read(path)):
        if "Traceback (most recent call last)" in text or "\x1b[0;31m" in text:
            found.append(where)
    count = 0
    for cell in _read(path).cells:
        if cell.cell_type == "code":
            count += 1
            found += [f"code cell {count}: {o.ename}: {o.evalue}"
                      for o in cell.get("outputs", []) if o.output_type == "error"]
    assert not found, "outputs hold an error:\n" + "\n".join(found)


def _python(source: str) -> str:
    """A code cell's source as plain Python (IPython magics and shell lines made valid)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:       # pragma: no cover - IPython comes with the course
        return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                         for line in source.splitlines())
    return TransformerManager().transform_cell(source)


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int]]:
    """(name, lines) of each function defined in ``source`` that is longer than ``limit``
    lines, counted from its ``def`` line (decorators included) to its last line."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = node.end_lineno - first + 1
            if lines > limit:
                found.append((node.name, lines))
    return found


def test_long_functions_counts_a_defs_lines():
    short = "def f(x):\n" + "    x += 1\n" * 8 + "    return x\n"          # 10 lines
    long = "@decorate\ndef g(x):\n" + "    x += 1\n" * 8 + "    return x\n"  # 11 lines
    nested = "class A:\n    def h(self):\n" + "        pass\n" * 10
    assert long_functions(short) == []
    assert long_functions(long) == [("g", 11)]
    assert long_functions(nested) == [("h", 11)]
    assert long_functions(_python("%matplotlib inline\n" + short)) == []


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_no_function_longer_than_ten_lines_in_the_notebook(path):
    found = []
    count = 0
    for cell in _read(path).cells:
        if cell.cell_type != "code":
            continue
        count += 1
        try:
            tree_source = _python(cell.source)
            found += [f"code cell {count}: {name}() is {n} lines"
                      for name, n in long_functions(tree_source)]
        except SyntaxError as exc:
            found.append(f"code cell {count} is not valid Python: {exc}")
    assert not found, (f"functions longer than {MAX_FUNCTION_LINES} lines belong in featviz "
                       "(documented and tested), not in a notebook:\n" + "\n".join(found))


@pytest.mark.parametrize("text, bad", [
    ("3.11.7 (/work/main/.venv/bin/python)", True),
    ("saved /tmp/x.pt", True),
    ("at /root/.cache/torch", True),
    ("in /home/ada/course", True),
    ("in /Users/ada/course", True),
    ("C:\\Users\\ada\\course", True),
    ("from ~/.cache/featviz", False),
    ("see https://example.org/tmp/page and notebooks/04_feature_maps.ipynb", False),
    ("10,000 training / 10,000 test images", False),
])
def test_machine_path_pattern(text, bad):
    assert bool(MACHINE_PATH.search(text)) == bad


@pytest.mark.parametrize("text, bad", [
    ("epoch 1/2: 100%|##########| 938/938 [00:02<00:00, 363.14batch/s, acc=90.30%]", True),
    (" 45%|####5     | 422/938 [00:01<00:01, 300.00it/s]", True),
    ("loss 0.3\rloss 0.2", True),
    ("epoch 1/2: 938 batches in 2.6 s; loss 0.3266, accuracy 90.30%", False),
    ("step 150/938  loss 0.063", False),
])
def test_progress_pattern(text, bad):
    assert bool(PROGRESS.search(text)) == bad


def test_object_repr_pattern():
    assert OBJECT_REPR.search("<torch._C.Generator at 0x7fc547fe3490>")
    assert OBJECT_REPR.search("<function f at 0x10>")
    assert not OBJECT_REPR.search("<Figure size 864x696 with 18 Axes>")
