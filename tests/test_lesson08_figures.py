"""Lesson 08 as committed shows no sentence about a figure that is not there.

The lesson is rendered where ResNet-18's ImageNet weights may be missing, so its cells that
need them draw nothing. A markdown sentence that reads a figure ("each row", "these maps",
"below", "in this run", a named ImageNet class ...) must sit beside a figure: among the code
cells between it and the markdown cells around it, one has an image output. No sentence a
reader sees (markdown or output) names an environment variable.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

LESSON = Path(__file__).resolve().parents[1] / "notebooks" / "08_beyond_mnist.ipynb"

# phrases that read a figure, rather than explain an idea
FIGURE_WORDS = [
    r"\bthe figure\b", r"\b(figure|map|maps|grid|filters|patches|panels) below\b", r"\bshown here\b", r"\bdrawn here\b", r"\bin this run\b",
    r"\bin the run shown\b", r"\beach row\b", r"\brow by row\b", r"\bthe dots\b",
    r"\bthe crosses\b", r"\bthese (maps|filters|patches|panels|rows)\b",
    r"\b(each|every) (map|panel|filter|row) (picks|lights|shows|shares)\b", r"\btheir maps\b",
    r"\blights? up\b", r"\blit up\b", r"\bexpect the evidence\b", r"\bthe (16|32|64) most active\b",
    r"\bnearly silent\b", r"\bthe stars of the flag\b", r"\bthe classic picture\b",
]
# the ImageNet classes a reading of the photo would name (multi-word, so never ordinary prose)
CLASS_NAMES = ["military uniform", "Windsor tie", "bow tie", "academic gown", "mortarboard",
               "lab coat", "trench coat"]
ENV_VAR = re.compile(r"\b[A-Z][A-Z0-9]+_[A-Z0-9_]*[A-Z0-9]\b")


def _sentences(text: str) -> list[str]:
    text = re.sub(r"```.*?```", " ", text, flags=re.S)           # code blocks are not prose
    return [s.strip() for s in re.split(r"(?<=[.!?:])\s+", " ".join(text.split())) if s.strip()]


def figure_sentences(text: str) -> list[str]:
    """The sentences of a markdown cell that read a figure."""
    words = FIGURE_WORDS + [re.escape(c) for c in CLASS_NAMES]
    return [s for s in _sentences(text) if any(re.search(w, s, re.I) for w in words)]


def _has_image(cell) -> bool:
    return any("image/png" in o.get("data", {}) or "image/svg+xml" in o.get("data", {})
               for o in cell.get("outputs", []))


def unbacked_figure_sentences(nb) -> list[tuple[int, str]]:
    """``(cell index, sentence)`` for each figure-reading sentence with no figure beside it:
    no image among the code cells from the previous markdown cell to the next one."""
    cells = nb.cells
    found = []
    for i, cell in enumerate(cells):
        if cell.cell_type != "markdown":
            continue
        sentences = figure_sentences(cell.source)
        if not sentences:
            continue
        before, after = [], []
        j = i - 1
        while j >= 0 and cells[j].cell_type == "code":
            before.append(cells[j])
            j -= 1
        j = i + 1
        while j < len(cells) and cells[j].cell_type == "code":
            after.append(cells[j])
            j += 1
        if not any(_has_image(c) for c in before + after):
            found += [(i, s) for s in sentences]
    return found


def reader_texts(nb) -> list[tuple[int, str]]:
    """What a reader sees as text: markdown, and the text outputs of code cells."""
    texts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            texts.append((i, re.sub(r"\(https?://[^)]*\)|https?://\S+", "", cell.source)))
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                texts.append((i, out.get("text", "")))
            elif "text/plain" in out.get("data", {}) and "image/png" not in out["data"]:
                texts.append((i, out["data"]["text/plain"]))
    return texts


@pytest.fixture(scope="module")
def lesson():
    return nbformat.read(LESSON, as_version=4)


def test_every_sentence_about_a_figure_has_its_figure(lesson):
    assert unbacked_figure_sentences(lesson) == []


def test_the_lesson_reads_its_own_figures(lesson):
    # the rule has something to hold: the offline story reads figures that are there
    read = [i for i, c in enumerate(lesson.cells)
            if c.cell_type == "markdown" and figure_sentences(c.source)]
    assert len(read) >= 5


def test_no_text_names_an_environment_variable(lesson):
    named = [(i, m) for i, t in reader_texts(lesson) for m in ENV_VAR.findall(t)]
    assert named == []


def test_the_missing_weights_are_said_once_in_plain_words(lesson):
    said = [t for _, t in reader_texts(lesson) if "No ImageNet weights here" in t]
    if said:                                    # rendered without the weights
        assert len(said) == 1 and "45 MB" in said[0] and not ENV_VAR.search(said[0])


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    for kind, source, image in cells:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if image:
                cell.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBOR"})]
            nb.cells.append(cell)
    return nb


def test_the_rule_catches_a_reading_of_a_figure_that_was_not_drawn():
    missing = _notebook(
        ("markdown", "### Late\n\nMost channels are nearly silent for this photo, and each active "
                     "one lights up where one learned part is.", False),
        ("code", "if imagenet is not None:\n    display(fig)", False),
        ("markdown", "Expect the evidence for *military uniform* on the jacket.", False),
        ("code", "if imagenet is not None:\n    display(cam)", False))
    assert [i for i, _ in unbacked_figure_sentences(missing)] == [0, 2]
    drawn = _notebook(
        ("markdown", "Each row shares one part, whatever the digit.", False),
        ("code", "plot_top_activating(tops)", True),
        ("markdown", "Nine convolutions against the SimpleCNN's two.", False),
        ("code", "print(9)", False))
    assert unbacked_figure_sentences(drawn) == []


def test_the_rule_catches_a_setting_named_to_the_reader():
    nb = _notebook(("markdown", "Without them (no internet, or `FEATVIZ_OFFLINE=1`), ...", False))
    assert [m for _, t in reader_texts(nb) for m in ENV_VAR.findall(t)] == ["FEATVIZ_OFFLINE"]
