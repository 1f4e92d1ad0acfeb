"""The notebooks form a course: each opens the same way, links to its neighbours, ends with
checked exercises, and is committed with its outputs so that a reader on GitHub sees them.

These tests read the committed .ipynb files; running them is nbval's job.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import nbformat
import pytest

from featviz.exercises import Exercise

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LESSONS = {
    "00": "00_start_here", "01": "01_data", "02": "02_model", "03": "03_training",
    "04": "04_feature_maps", "05": "05_explorer", "06": "06_filters",
    "07": "07_where_it_looks", "08": "08_beyond_mnist",
    "09": "09_better_model",
}
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
BINDER = ("https://mybinder.org/v2/gh/featviz/featviz/HEAD?urlpath=lab/tree/notebooks/{name}")
LINK = re.compile(r"\]\(([^)\s]+\.ipynb)(#[^)]*)?\)")
MAX_BYTES = 5_000_000   # GitHub shows notebooks of a few MB; beyond that, images need shrinking


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _first(nb: nbformat.NotebookNode) -> str:
    assert nb.cells and nb.cells[0].cell_type == "markdown", "the first cell must be the title cell"
    return nb.cells[0].source


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _minutes(text: str) -> int | None:
    m = re.search(r"estimated time:?\**\s*:?\s*(?:about\s+)?(\d+)\s*min", text, re.I)
    return int(m.group(1)) if m else None


def _map_times() -> dict[str, int]:
    """Minutes per lesson from the lesson map of 00_start_here."""
    text = "\n".join(c.source for c in _read(NOTEBOOKS / "00_start_here.ipynb").cells
                     if c.cell_type == "markdown")
    rows = re.findall(r"^\|\s*\**\[?(\d\d)\b.*\|\s*(\d+)\s*min\s*\|\s*$", text, re.M)
    return {num: int(minutes) for num, minutes in rows}


ids = [p.stem for p in PATHS]


def test_the_course_has_exactly_the_planned_lessons():
    assert [p.stem for p in PATHS] == list(LESSONS.values())


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_title_cell_has_title_objectives_and_time(path):
    text = _first(_read(path))
    num = path.stem[:2]
    assert re.match(rf"#\s+{num}\b", text), f"the title must start with '# {num} ...'"
    assert _minutes(text), "the title cell must say '**Estimated time:** N minutes'"
    objectives = re.search(r"you will be able to\**\s*\n((?:\s*[-*] .+\n?)+)", text, re.I)
    assert objectives, "the title cell must list what the learner will be able to do"
    assert len(re.findall(r"^\s*[-*] ", objectives.group(1), re.M)) >= 2


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_title_cell_has_binder_badge_to_itself(path):
    text = _first(_read(path))
    badge = f"[![Binder](https://mybinder.org/badge_logo.svg)]({BINDER.format(name=path.name)})"
    assert badge in text


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_title_cell_links_previous_and_next(path):
    text = _first(_read(path))
    links = [m.group(1) for m in LINK.finditer(text)]
    names = list(LESSONS.values())
    i = names.index(path.stem)
    if i > 0:
        assert f"{names[i - 1]}.ipynb" in links, f"no link back to {names[i - 1]}"
    if i < len(names) - 1:
        assert f"{names[i + 1]}.ipynb" in links, f"no link on to {names[i + 1]}"
    else:
        assert f"{names[0]}.ipynb" in links, "the last lesson links back to the start"


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_every_notebook_link_points_to_an_existing_notebook(path):
    for cell in _read(path).cells:
        if cell.cell_type != "markdown":
            continue
        for m in LINK.finditer(cell.source):
            target = m.group(1)
            if target.startswith(("http://", "https://")):
                continue
            assert (path.parent / target).is_file(), f"{path.name} links to missing {target}"


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_estimated_time_matches_the_lesson_map(path):
    time_here = _minutes(_first(_read(path)))
    assert _map_times().get(path.stem[:2]) == time_here, (
        f"00_start_here's lesson map and {path.name} disagree on the time")


def test_readme_lesson_table_matches_the_lesson_map():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\|\s*\[(\d\d)[^\]]*\]\(notebooks/\d\d_\w+\.ipynb\).*\|\s*(\d+)\s*min\s*\|\s*$",
                           readme, re.M))
    assert {k: int(v) for k, v in rows.items()} == _map_times()


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_exercises_use_the_lessons_exercise_module(path):
    nb = _read(path)
    num = path.stem[:2]
    source = "\n".join(c.source for c in _code(nb))
    assert re.search(rf"from featviz\.exercises import lesson{num} as (\w+)", source), (
        f"import the exercises with `from featviz.exercises import lesson{num} as ex`")
    module = importlib.import_module(f"featviz.exercises.lesson{num}")
    alias = re.search(rf"import lesson{num} as (\w+)", source).group(1)
    asked = re.findall(rf"\b{alias}\.(\w+)\.check\(", source)
    assert len(asked) >= 2, "a lesson ends with at least two exercises"
    for name in asked:
        assert isinstance(getattr(module, name, None), Exercise), f"lesson{num} has no exercise {name}"
    for cell in _code(nb):
        if ".check(answer)" in cell.source:
            assert re.search(r"^answer = \.\.\.$", cell.source, re.M), (
                "exercise cells are committed unanswered: `answer = ...`")


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_key_results_are_asserted_in_code(path):
    assert any(re.search(r"^\s*assert ", c.source, re.M) for c in _code(_read(path)))


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_the_cell_after_the_setup_cell_sets_up_inline_figures(path):
    """The first code cell installs featviz where it is missing (tests/test_lesson_setup.py);
    the lesson proper starts with inline figures."""
    first, second = _code(_read(path))[:2]
    assert first.source.startswith("# Setup.")
    assert second.source.lstrip().startswith("%matplotlib inline")


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_kernelspec_is_python3(path):
    nb = _read(path)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert nb.metadata.get("kernelspec", {}).get("language") == "python"


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_committed_with_outputs_in_run_all_order(path):
    cells = _code(_read(path))
    counts = [c.execution_count for c in cells]
    assert None not in counts, "render the notebook: python scripts/render_notebooks.py " + path.name
    assert counts == list(range(1, len(cells) + 1)), "outputs must come from one Run All"
    kinds = {o.output_type for c in cells for o in c.outputs}
    images = sum("image/png" in o.get("data", {}) for c in cells for o in c.outputs)
    assert images >= 1 and kinds, "a reader on GitHub should see the lesson's figures"
    for c in cells:
        if "# NBVAL_CHECK_OUTPUT" in c.source:
            assert c.outputs, "a cell whose output nbval checks must be committed with it"


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_no_error_outputs(path):
    for i, cell in enumerate(_code(_read(path)), 1):
        for out in cell.outputs:
            assert out.output_type != "error", f"code cell {i}: {out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream":
                assert "Traceback (most recent call last)" not in out.text, f"code cell {i}"


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_unanswered_exercises_show_the_prompt(path):
    for cell in _code(_read(path)):
        if re.search(r"^answer = \.\.\.$", cell.source, re.M) and ".check(answer)" in cell.source:
            text = "".join(o.get("text", "") for o in cell.outputs)
            assert "not answered yet" in text


@pytest.mark.parametrize("path", PATHS, ids=ids)
def test_notebook_file_stays_small(path):
    assert path.stat().st_size < MAX_BYTES
