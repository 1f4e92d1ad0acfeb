"""No lesson shows an exercise's answer above the question, and every prediction is asked
before the cell that reveals it.

The answer of an exercise, as a reader could meet it, is a list of texts:

- its ``giveaways`` (``Exercise.expected_texts()``), verbatim: the sentences, shapes and
  numbers its author knows would give it away;
- its ``reference()`` (one right answer, computed), written the ways a notebook writes it.
  Only values specific enough to mean something are used, so that a ``2`` or a ``10`` does
  not match every cell:

  * a whole number of three digits or more (``938``, ``12832`` and ``12,832``); smaller
    ones are left to the giveaways;
  * a fraction written with two to four decimals (``-0.42``, ``-0.424``, ``-0.4242``) or
    two to four significant digits, when the written form has at least two significant
    digits, two decimals or three significant digits (``0.73``, ``2.30``, ``-0.424``,
    never ``2.3`` or ``0.5``) and is not a round quarter (``0.25``, ``1.50``);
  * a shape of two or more sizes, as a tuple or a list (``(16, 24, 24)``, ``[16, 24, 24]``),
    and for three or more also as ``16x24x24`` / ``16 × 24 × 24``;
  * a name (a layer, a class) of four characters or more, but only in outputs and figure
    texts: a lesson's code and prose name layers all the time, a printed result does not;
    and not where an output lists the alternatives (a line of three or more comma-separated
    items, or a table of three or more ``label: ...`` or ``label   value`` rows), nor where a figure shows it only
    as one panel label among others: the menu is not the answer;
  * a dict as Python prints it. Yes/no and other short choices are left to the giveaways.

A text matches as a whole token (``938`` is not in ``9380``, ``1,938`` or ``0.938``; ``0.42``
is not in ``-0.42``), ignoring the difference between ``-`` and matplotlib's ``−`` and the
spacing after commas or between words.

Where it is looked for: in every cell above the cell that calls ``<alias>.<label>.check(``
-- markdown and code sources, text outputs (stream, plain, markdown, HTML without its tags)
and figure texts -- and in the source of the check cell itself (an answer filled in).
Figure texts are the titles, axis labels, tick labels, legends and annotations that
``scripts/render_notebooks.py`` records in each PNG output's metadata
(``output.metadata["image/png"]["featviz"]["texts"]``).

The one exception: a value question whose prompt tells the reader to read the answer off
what is shown, with the words "look above" (also "looking above", "look back above"), in
the exercise's ``prompt`` or in the markdown between the previous code cell and the check
cell. A prediction has no such exception: it is asked before the first cell that shows its
answer.

References run on the data the tests have (the bundled sample); the notebooks are rendered
on the full MNIST where it is at hand. A value that depends on the training split (the
sample has 10,000 of its 60,000 images) is then covered by its giveaways only.
"""
from __future__ import annotations

import contextlib
import html
import importlib
import io
import json
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable

import nbformat
import pytest

from featviz.exercises import Exercise, Wrong

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))

LOOK_ABOVE = re.compile(r"\blook(?:ing)?\s+(?:back\s+)?above\b", re.IGNORECASE)

ALL = "all"          # a text looked for in sources, outputs and figures
SHOWN = "shown"      # a text looked for in outputs and figures only


# --------------------------------------------------------------------------- reading cells

def _text(value: Any) -> str:
    return value if isinstance(value, str) else "".join(value)


def _normalise(text: str) -> str:
    return text.replace("\u2212", "-").replace("\u00a0", " ")


@dataclass(frozen=True)
class Piece:
    """One text a reader sees in a cell: where it is, what it says."""
    cell: int
    where: str      # "markdown", "code", "output" or "figure"
    text: str

    @property
    def scope(self) -> str:
        return SHOWN if self.where in ("output", "figure") else ALL


def figure_texts(output: dict) -> list[str]:
    """The texts render_notebooks.py recorded for a PNG output (empty if none)."""
    meta = output.get("metadata", {}).get("image/png", {})
    return [str(t) for t in meta.get("featviz", {}).get("texts", [])]


def pieces(index: int, cell: dict, *, outputs: bool = True) -> list[Piece]:
    """What a reader sees of one cell, as text."""
    found = [Piece(index, "markdown" if cell["cell_type"] == "markdown" else "code",
                   _text(cell.get("source", "")))]
    if cell["cell_type"] != "code" or not outputs:
        return found
    for out in cell.get("outputs", []):
        if "text" in out:
            found.append(Piece(index, "output", _text(out["text"])))
        data = out.get("data", {})
        for kind in ("text/plain", "text/markdown", "text/latex"):
            if kind in data:
                found.append(Piece(index, "output", _text(data[kind])))
        if "text/html" in data:
            plain = html.unescape(re.sub(r"<[^>]+>", " ", _text(data["text/html"])))
            found.append(Piece(index, "output", plain))
        texts = figure_texts(out)
        if texts:
            found.append(Piece(index, "figure", "\n".join(texts)))
    return found


# --------------------------------------------------------------------------- the answer as text

def _significant(form: str) -> int:
    digits = form.lstrip("-").replace(".", "").lstrip("0").rstrip("0")
    return len(digits)


def _float_forms(x: float) -> list[str]:
    forms = []
    for spec in (".2f", ".3f", ".4f", ".2g", ".3g", ".4g"):
        form = format(x, spec)
        if "e" in form or "." not in form:
            continue
        decimals = len(form.split(".")[1])
        sig = _significant(form)
        if sig < 2 or (sig < 3 and decimals < 2) or float(form) * 4 == round(float(form) * 4):
            continue
        forms.append(form)
    return forms


def reference_texts(value: Any) -> list[tuple[str, str]]:
    """How a notebook would write the answer ``value``: ``(text, scope)`` pairs (see the
    module docstring for which values are specific enough to be looked for)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.item() if value.numel() == 1 else (
            tuple(value.tolist()) if value.dim() == 1 and value.numel() <= 6 else None)
    elif hasattr(value, "tolist") and hasattr(value, "shape"):   # numpy
        value = value.tolist()
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, numbers.Integral):
        n = int(value)
        return [(t, ALL) for t in dict.fromkeys((str(n), f"{n:,}"))] if abs(n) >= 100 else []
    if isinstance(value, numbers.Real):
        return [(t, ALL) for t in dict.fromkeys(_float_forms(float(value)))]
    if isinstance(value, (tuple, list)) and len(value) >= 2 and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        sizes = [str(int(v)) for v in value]
        forms = ["(" + ", ".join(sizes) + ")", "[" + ", ".join(sizes) + "]"]
        if len(sizes) >= 3:
            forms += ["x".join(sizes), " × ".join(sizes)]
        return [(t, ALL) for t in forms]
    if isinstance(value, str):
        if len(value) >= 4 and value.lower() not in ("yes", "true", "false", "none"):
            return [(value, SHOWN)]
        return []
    if isinstance(value, dict):
        return [(str(value), ALL)]
    return []


def answer_texts(exercise: Exercise) -> tuple[list[tuple[str, str]], str | None]:
    """The texts that show ``exercise``'s answer, and an error if its reference raised."""
    texts = [(t, ALL) for t in exercise.expected_texts() if t.strip()]
    error = None
    if exercise.reference is not None:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                texts += reference_texts(exercise.reference())
        except Exception as exc:  # noqa: BLE001 - reported by the test
            error = f"{exercise.name}.reference() raised {type(exc).__name__}: {exc}"
    return list(dict.fromkeys(texts)), error


def shows(text: str, answer: str) -> bool:
    """Whether ``answer`` appears in ``text`` as a whole token."""
    answer = _normalise(answer).strip()
    body = "".join(r",\s*" if part.startswith(",") else r"\s+" if part.isspace() else re.escape(part)
                   for part in re.split(r"(,\s*|\s+)", answer) if part)
    before = r"(?<![\w.])(?<!\d,)" + (r"(?<!-)" if answer[:1].isdigit() else "")
    after = r"(?![\w])(?![.,]\d)"
    return re.search(before + body + after, _normalise(text)) is not None


# --------------------------------------------------------------------------- the rule

@dataclass
class Asked:
    """One exercise checked in a notebook: the cell that checks it, and its prompt there."""
    label: str
    exercise: Exercise
    cell: int
    prompt: str


def asked_exercises(cells: list[dict], module: Any, alias: str) -> list[Asked]:
    """The exercises a notebook checks, each at the first cell that calls its ``check``."""
    asked: dict[str, Asked] = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        for label in re.findall(rf"\b{alias}\.(\w+)\.check\(", _text(cell["source"])):
            exercise = getattr(module, label, None)
            if isinstance(exercise, Exercise) and label not in asked:
                j = i
                while j > 0 and cells[j - 1]["cell_type"] == "markdown":
                    j -= 1
                markdown = "\n".join(_text(c["source"]) for c in cells[j:i])
                asked[label] = Asked(label, exercise, i, exercise.prompt + "\n" + markdown)
    return list(asked.values())


def says_look_above(asked: Asked) -> bool:
    return LOOK_ABOVE.search(asked.prompt) is not None


# "step 300: ..." or "conv1      416": a row of a printed table, a label then a colon or a gap
TABLE_ROW = re.compile(r"\s*[\w.'-][\w .'-]{0,29}?(?::\s|\s{2,}\S)")


def _menu_lines(text: str) -> str:
    """``text`` without the lines that list alternatives: a line of three or more
    comma-separated items, or a row of a table of three or more rows that each start with a
    label and a colon (or a label and a gap of two spaces or more). A name printed there is one option among several, not the answer."""
    lines = _normalise(text).splitlines()
    is_row = [TABLE_ROW.match(line) is not None for line in lines]
    table = sum(is_row) >= 3
    return "\n".join(line for line, row in zip(lines, is_row)
                     if line.count(",") < 2 and not (table and row))


def matches(texts: Iterable[tuple[str, str]], seen: Iterable[Piece]) -> list[tuple[str, Piece]]:
    """Each (answer text, piece) where the piece shows the text. Names (the texts looked for
    in outputs and figures only) are not counted in lists of alternatives (``_menu_lines``)."""
    seen = list(seen)
    return [(text, piece) for text, scope in texts for piece in seen
            if (scope == ALL and shows(piece.text, text))
            or (scope == SHOWN and piece.scope == SHOWN and shows(_menu_lines(piece.text), text)
                and not (piece.where == "figure" and _only_as_label(piece.text, text)))]


def _only_as_label(figure: str, name: str) -> bool:
    """Whether a figure shows ``name`` only as a panel label of its own (a text that is just
    the name) beside two or more other panel labels: one option among its panels."""
    texts = [t.strip() for t in _normalise(figure).splitlines()]
    labels = [t for t in texts if t and not re.fullmatch(r"[-\d.,\s]+", t) and len(t.split()) <= 3]
    inside = [t for t in texts if t != name and shows(t, name)]
    return not inside and name in labels and len(labels) >= 3


def above(cells: list[dict], index: int) -> list[Piece]:
    """What a reader has seen when they reach cell ``index``: every cell above it, and the
    check cell's own source."""
    seen = [p for i, cell in enumerate(cells[:index]) for p in pieces(i, cell)]
    return seen + pieces(index, cells[index], outputs=False)


def leaks(cells: list[dict], module: Any, alias: str, *, predictions: bool) -> list[str]:
    """The give-aways in one notebook, one line each: for value and code exercises
    (``predictions=False``) or for predictions (``predictions=True``)."""
    found = []
    for asked in asked_exercises(cells, module, alias):
        is_prediction = asked.exercise.kind == "predict"
        if is_prediction != predictions:
            continue
        if not is_prediction and says_look_above(asked):
            continue
        texts, error = answer_texts(asked.exercise)
        if error:
            found.append(error)
        hits = matches(texts, above(cells, asked.cell))
        if not hits:
            continue
        if is_prediction:
            text, first = min(hits, key=lambda hit: hit[1].cell)
            found.append(f"{asked.label} (predict) is asked in cell {asked.cell}, after cell "
                         f"{first.cell} reveals it: {text!r} in its {first.where}")
        else:
            found += [f"{asked.label} ({asked.exercise.kind}): {text!r} is in cell {piece.cell}'s "
                      f"{piece.where}, above the question in cell {asked.cell}"
                      for text, piece in dict.fromkeys(hits)]
    return found


def lesson_of(cells: list[dict]) -> tuple[Any, str]:
    code = "\n".join(_text(c["source"]) for c in cells if c["cell_type"] == "code")
    m = re.search(r"from featviz\.exercises import (lesson\d\d) as (\w+)", code)
    assert m, "the notebook does not import its exercises"
    return importlib.import_module(f"featviz.exercises.{m.group(1)}"), m.group(2)


# --------------------------------------------------------------------------- the lessons

def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_no_answer_is_shown_above_its_question(path):
    cells = _cells(path)
    module, alias = lesson_of(cells)
    found = leaks(cells, module, alias, predictions=False)
    assert not found, (f"{path.name}: answers shown above their question (say 'look above' in "
                       "the prompt if the reader is meant to read it there):\n  " + "\n  ".join(found))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem[:2] for p in NOTEBOOKS])
def test_each_prediction_is_asked_before_it_is_revealed(path):
    cells = _cells(path)
    module, alias = lesson_of(cells)
    found = leaks(cells, module, alias, predictions=True)
    assert not found, f"{path.name}: predictions revealed before they are asked:\n  " + "\n  ".join(found)


def test_the_committed_figures_carry_their_texts():
    """render_notebooks.py records each figure's texts; without them the figure part of the
    rule above would pass for nothing."""
    bare = []
    for path in NOTEBOOKS:
        for i, cell in enumerate(_cells(path)):
            for out in cell.get("outputs", []):
                if "image/png" in out.get("data", {}) and not figure_texts(out) and \
                        _text(out["data"].get("text/plain", "")).startswith("<Figure size"):
                    bare.append(f"{path.name} cell {i}")
    assert not bare, ("figures rendered without their texts (render them with "
                      "scripts/render_notebooks.py):\n  " + "\n  ".join(bare))


# --------------------------------------------------------------------------- the matcher itself

def _exercise(name: str, kind: str = "value", giveaways=(), reference=None, prompt="?") -> Exercise:
    def checker(answer):
        raise Wrong("no")
    return Exercise(name, prompt, checker, "hint", "solution", kind=kind, giveaways=giveaways,
                    reference=reference)


def _figure_output(*texts: str) -> dict:
    return nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=",
                                                        "text/plain": "<Figure size 640x480 with 1 Axes>"},
                                  metadata={"image/png": {"featviz": {"texts": list(texts)}}})


def _notebook(*cells: dict) -> list[dict]:
    setup = nbformat.v4.new_code_cell("from featviz.exercises import lesson99 as ex")
    return json.loads(nbformat.writes(nbformat.v4.new_notebook(cells=[setup, *cells])))["cells"]


def _check(label: str) -> dict:
    return nbformat.v4.new_code_cell(f"answer = ...\nex.{label}.check(answer)")


def _found(cells, *, predictions=False, **exercises) -> list[str]:
    return leaks(cells, SimpleNamespace(**exercises), "ex", predictions=predictions)


def test_an_answer_in_an_earlier_code_cell_is_found():
    q1 = _exercise("q1", reference=lambda: 938)
    cells = _notebook(nbformat.v4.new_code_cell("steps = 938   # one epoch"), _check("q1"))
    assert _found(cells, q1=q1) == ["q1 (value): '938' is in cell 1's code, above the question in cell 2"]
    # the same number further down, after the question, is no leak; nor is a longer number
    cells = _notebook(nbformat.v4.new_code_cell("n = 9380; m = 1,938; x = 0.938"), _check("q1"),
                      nbformat.v4.new_code_cell("steps = 938"))
    assert _found(cells, q1=q1) == []


def test_an_answer_in_a_figure_title_is_found():
    q1 = _exercise("q1", reference=lambda: -0.4242)
    plot = nbformat.v4.new_code_cell("fig")
    plot.outputs = [_figure_output("mean pixel \u22120.42", "0", "1")]
    found = _found(_notebook(plot, _check("q1")), q1=q1)
    assert found == ["q1 (value): '-0.42' is in cell 1's figure, above the question in cell 2"]
    # tick labels of round numbers do not count as an answer
    plot.outputs = [_figure_output("\u22120.4", "0.5", "2", "10")]
    assert _found(_notebook(plot, _check("q1")), q1=q1) == []


def test_an_answer_in_markdown_and_a_giveaway_sentence_are_found():
    q2 = _exercise("q2", giveaways=("16 maps",), reference=lambda: (16, 24, 24))
    cells = _notebook(nbformat.v4.new_markdown_cell("conv1 gives 16 maps of\n(16,24,24) each"),
                      _check("q2"))
    found = _found(cells, q2=q2)
    assert any("'16 maps' is in cell 1's markdown" in f for f in found), found
    assert any("'(16, 24, 24)' is in cell 1's markdown" in f for f in found), found


def test_a_printed_table_of_layers_is_a_list_of_alternatives():
    table = "conv1      416\nconv2   12,832\nfc1     61,560\ntotal   85,822\n"
    assert "conv2" not in _menu_lines(table)
    assert "conv2" in _menu_lines("the most work: conv2\n")


def test_a_name_counts_in_outputs_but_not_in_code():
    q1 = _exercise("q1", reference=lambda: "pool2")
    code = nbformat.v4.new_code_cell("maps = capture(model, ['conv1', 'pool2'])")
    assert _found(_notebook(code, _check("q1")), q1=q1) == []
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="largest: pool2\n")]
    assert _found(_notebook(code, _check("q1")), q1=q1) == [
        "q1 (value): 'pool2' is in cell 1's output, above the question in cell 2"]
    code.outputs = [nbformat.v4.new_output("stream", name="stdout",
                                           text="layers: conv1, pool1, conv2, pool2, fc1\n")]
    assert _found(_notebook(code, _check("q1")), q1=q1) == []          # a list of options
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="".join(
        f"{name}: {n} maps\n" for name, n in (("conv1", 16), ("pool2", 32), ("fc1", 1))))]
    assert _found(_notebook(code, _check("q1")), q1=q1) == []          # a table of options
    code.outputs = [_figure_output("conv1", "pool1", "pool2", "fc1", "0", "5")]
    assert _found(_notebook(code, _check("q1")), q1=q1) == []          # panels, one per option
    code.outputs = [_figure_output("conv1", "pool1", "the largest maps: pool2")]
    assert len(_found(_notebook(code, _check("q1")), q1=q1)) == 1      # a title that says it


def test_look_above_lets_a_value_question_read_what_is_shown():
    q1 = _exercise("q1", reference=lambda: 938)
    shown = nbformat.v4.new_code_cell("print(steps)")
    shown.outputs = [nbformat.v4.new_output("stream", name="stdout", text="938\n")]
    ask = nbformat.v4.new_markdown_cell("**q1.** Look above: how many steps did the epoch take?")
    assert _found(_notebook(shown, ask, _check("q1")), q1=q1) == []
    ask = nbformat.v4.new_markdown_cell("**q1.** How many steps did the epoch take?")
    assert len(_found(_notebook(shown, ask, _check("q1")), q1=q1)) == 1


def test_a_prediction_revealed_before_it_is_asked_is_found():
    p1 = _exercise("p1", kind="predict", reference=lambda: 938,
                   prompt="Predict: how many steps? (look above for the batch size)")
    run = nbformat.v4.new_code_cell("train()")
    run.outputs = [nbformat.v4.new_output("stream", name="stdout", text="938 steps\n")]
    ask = nbformat.v4.new_markdown_cell("**Predict (p1).** How many steps?")
    found = _found(_notebook(run, ask, _check("p1")), predictions=True, p1=p1)
    assert found == ["p1 (predict) is asked in cell 3, after cell 1 reveals it: '938' in its output"]
    # asked first, revealed after: right; and value questions are not this test's business
    assert _found(_notebook(ask, _check("p1"), run), predictions=True, p1=p1) == []
    assert _found(_notebook(run, ask, _check("p1")), predictions=False, p1=p1) == []


def test_a_reference_that_raises_is_reported():
    def broken():
        raise RuntimeError("no model")
    q1 = _exercise("q1", reference=broken)
    assert _found(_notebook(_check("q1")), q1=q1) == ["q1.reference() raised RuntimeError: no model"]


@pytest.mark.parametrize("value, texts", [
    (938, ["938"]), (12832, ["12832", "12,832"]), (22.0, []), (7, []), (True, []),
    (-0.42424, ["-0.42", "-0.424", "-0.4242"]), (0.5, []), (2.302585, ["2.30", "2.303", "2.3026"]),
    ((16, 24, 24), ["(16, 24, 24)", "[16, 24, 24]", "16x24x24", "16 × 24 × 24"]),
    ([24, 24], ["(24, 24)", "[24, 24]"]), ("pool2", ["pool2"]), ("yes", []), ("no", []),
])
def test_which_reference_values_are_looked_for(value, texts):
    assert [t for t, _ in reference_texts(value)] == texts


def test_reference_values_from_torch_and_numpy():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert reference_texts(torch.tensor(938)) == [("938", ALL)]
    assert reference_texts(np.int64(938)) == [("938", ALL)]
    assert reference_texts(torch.Size([16, 24, 24]))[0] == ("(16, 24, 24)", ALL)
