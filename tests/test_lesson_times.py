"""The lesson times a learner reads (each notebook's "Estimated time" line, lesson 00's table,
README's table and totals) are what scripts/lesson_times.py computes from the committed
notebooks, and the estimator counts what it says it counts."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import nbformat
import pytest
from _browser import REPO
from _scripts import load_script


lt = load_script("lesson_times")
FOUND = lt.estimates()


def test_every_lesson_is_estimated():
    assert sorted(FOUND) == sorted(p.name[:2] for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert all(e.minutes >= 10 for e in FOUND.values())


@pytest.mark.parametrize("lesson", sorted(FOUND))
def test_each_notebook_states_its_estimated_time(lesson):
    nb = json.loads(lt.lessons()[lesson].read_text())
    assert lt.stated_line(nb) == lt.time_line(FOUND[lesson]), (
        "run `python scripts/lesson_times.py --write` after rendering the notebooks")


@pytest.mark.parametrize("where", ["README.md", "notebooks/00_start_here.ipynb"])
def test_the_lesson_tables_and_total_agree(where):
    text = (REPO / where).read_text()
    if where.endswith(".ipynb"):
        text = "\n".join("".join(c["source"]) for c in json.loads(text)["cells"])
    table, totals = lt.stated_table(text)
    assert table == {n: e.minutes for n, e in FOUND.items()}, (
        "run `python scripts/lesson_times.py --write` after rendering the notebooks")
    assert totals == [lt.total_sentence(sum(e.minutes for e in FOUND.values()))]


def _timed_cell(source: str, seconds: float, outputs=()):
    cell = nbformat.v4.new_code_cell(source)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    cell.metadata["execution"] = {
        "iopub.execute_input": start.isoformat().replace("+00:00", "Z"),
        "shell.execute_reply": (start + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")}
    cell.outputs = list(outputs)
    return cell


def test_the_estimator_counts_prose_code_figures_exercises_and_waiting():
    figure = nbformat.v4.new_output("display_data", data={"image/png": "", "text/plain": ""})
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("**Estimated time:** 99 minutes\n\n" + "word " * 400
                                      + "[a link](https://example.org/a/b/c)"),
        _timed_cell("# a comment\nx = 1\n\ny = 2\n", 90, [figure, figure]),
        _timed_cell("answer = ...\nex.p1.check(answer)", 0),
        _timed_cell("answer = ...\nex.q1.check(answer)", 0),
        _timed_cell("def f(x):\n    ...\nex.q2.check(f)", 0),
    ])
    e = lt.estimate(json.loads(nbformat.writes(nb)))
    assert e.reading == pytest.approx(402 / lt.PROSE_WPM + 9 / lt.CODE_LPM)   # "a link"; 9 lines
    assert e.figures == pytest.approx(2 * lt.FIGURE_MIN)
    assert e.exercises == pytest.approx(lt.PREDICT_MIN + lt.VALUE_MIN + lt.CODE_MIN)
    assert e.running == pytest.approx(1.5)
    total = e.reading + e.figures + e.exercises + e.running
    assert e.minutes % 5 == 0 and total <= e.minutes < total + 5
    assert lt.time_line(e) == f"**Estimated time:** {e.minutes} minutes (2 of them waiting for cells to run on a laptop CPU)"


def test_rewriting_a_table_changes_only_the_times():
    text = ("| lesson | what | time |\n| --- | --- | --- |\n"
            "| [00 start here](00.ipynb) | how it works | 10 min |\n"
            "| **01 data** (this one) | MNIST, 10 images | 15 min |\n\n"
            "About three and a half hours in all. In a hurry?")
    found = {"00": lt.Estimate("00", 20, 0, 0, 0), "01": lt.Estimate("01", 61, 0, 0, 0)}
    new = lt.rewrite_table(text, found)
    assert lt.stated_table(new) == ({"00": 20, "01": 65}, ["About 1 h 25 min in all."])
    assert new.replace("20 min", "10 min").replace("65 min", "15 min").replace(
        "About 1 h 25 min in all.", "About three and a half hours in all.") == text
