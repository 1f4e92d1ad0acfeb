"""How long each lesson takes a learner, estimated from the rendered notebook itself.

    python scripts/lesson_times.py            # print the table
    python scripts/lesson_times.py --write    # and update the notebooks and README.md

A lesson's time is the sum of what a learner does in it, rounded up to 5 minutes:

- **reading prose**: the words of its markdown cells at ``PROSE_WPM`` words a minute.
  Careful reading of technical prose with formulas and code names runs well below the
  ~240 words a minute of ordinary non-fiction reading (Brysbaert 2019, "How many words do we
  read per minute?"); 200 allows for that. Link targets (URLs) are not counted;
- **reading code**: the non-blank, non-comment lines of its code cells at ``CODE_LPM`` lines a
  minute (4 s a line: the code is given, read and run, not written);
- **looking at figures**: ``FIGURE_MIN`` per figure (each PNG output) and ``WIDGET_MIN`` per
  live widget to try (each widget output);
- **exercises**: per prediction ``PREDICT_MIN``, per value question ``VALUE_MIN``, per code
  question ``CODE_MIN``; the questionnaire is counted as prose;
- **waiting**: the run time of its cells, from the start and end times that
  ``scripts/render_notebooks.py`` keeps in each cell's metadata (a 2-core CPU with the full
  MNIST, close to a laptop's; the bundled sample runs faster).

The stated times are written where learners read them: each notebook's
``**Estimated time:** N minutes`` line (with the waiting time when it is over a minute), the
lesson table of lesson 00 and of README.md, and the total under each table.
``tests/test_lesson_times.py`` checks that they agree with this script.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = REPO / "notebooks"
README = REPO / "README.md"

PROSE_WPM = 200
CODE_LPM = 15
FIGURE_MIN = 0.5
WIDGET_MIN = 2.0
PREDICT_MIN = 1.0
VALUE_MIN = 2.0
CODE_MIN = 6.0

TIME_LINE = re.compile(r"\*\*Estimated time:\*\* [^\n]*")
CHECK = re.compile(r"\bex\.([pq])\d+\.check\(")
WIDGET = "application/vnd.jupyter.widget-view+json"


@dataclass
class Estimate:
    lesson: str           # "03"
    reading: float        # minutes of prose and code
    figures: float
    exercises: float
    running: float

    @property
    def minutes(self) -> int:
        """The whole, rounded up to 5 minutes."""
        return 5 * math.ceil((self.reading + self.figures + self.exercises + self.running) / 5)


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def run_seconds(cell: dict) -> float:
    """How long a rendered code cell ran (0 when the notebook kept no times)."""
    times = cell.get("metadata", {}).get("execution", {})
    start, end = times.get("iopub.execute_input"), times.get("shell.execute_reply")
    return max(0.0, (_stamp(end) - _stamp(start)).total_seconds()) if start and end else 0.0


def estimate(nb: dict, lesson: str = "") -> Estimate:
    """The time a learner spends in the notebook ``nb`` (its JSON, as a dict)."""
    words = code_lines = figures = widgets = 0
    exercises = running = 0.0
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            prose = re.sub(r"\(https?://[^)]*\)|https?://\S+", "", TIME_LINE.sub("", source))
            words += len(re.findall(r"[\w'’-]+", prose))
            continue
        if cell["cell_type"] != "code":
            continue
        code_lines += sum(1 for line in source.splitlines()
                          if line.strip() and not line.strip().startswith("#"))
        running += run_seconds(cell) / 60
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            figures += "image/png" in data
            widgets += WIDGET in data
        for kind in CHECK.findall(source):
            if kind == "p":
                exercises += PREDICT_MIN
            elif re.search(r"^\s*def ", source, re.MULTILINE):
                exercises += CODE_MIN
            else:
                exercises += VALUE_MIN
    return Estimate(lesson, reading=words / PROSE_WPM + code_lines / CODE_LPM,
                    figures=figures * FIGURE_MIN + widgets * WIDGET_MIN,
                    exercises=exercises, running=running)


def lessons() -> dict[str, Path]:
    return {p.name[:2]: p for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))}


def estimates() -> dict[str, Estimate]:
    return {n: estimate(json.loads(p.read_text()), n) for n, p in lessons().items()}


def time_line(e: Estimate) -> str:
    """The notebook's line, e.g. ``**Estimated time:** 45 minutes (4 of them running cells)``."""
    line = f"**Estimated time:** {e.minutes} minutes"
    wait = round(e.running)
    if wait >= 1:
        line += f" ({wait} of them waiting for cells to run on a laptop CPU)"
    return line


def total_sentence(total: int) -> str:
    hours, minutes = divmod(total, 60)
    return f"About {hours} h {minutes:02d} min in all." if minutes else f"About {hours} h in all."


TABLE_ROW = re.compile(r"^(\|[^|\n]*?\b(\d\d) [^|\n]*\|[^|\n]*\| )(\d+) min( \|)$", re.MULTILINE)
TOTAL = re.compile(r"About [^.\n]*? in all\.")


def stated_table(text: str) -> tuple[dict[str, int], list[str]]:
    """The per-lesson minutes of a lesson table in ``text``, and its total sentences."""
    return ({m.group(2): int(m.group(3)) for m in TABLE_ROW.finditer(text)},
            TOTAL.findall(text))


def rewrite_table(text: str, found: dict[str, Estimate]) -> str:
    text = TABLE_ROW.sub(lambda m: (m.group(1) + f"{found[m.group(2)].minutes} min" + m.group(4))
                         if m.group(2) in found else m.group(0), text)
    return TOTAL.sub(total_sentence(sum(e.minutes for e in found.values())), text)


def stated_line(nb: dict) -> str | None:
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            m = TIME_LINE.search("".join(cell["source"]))
            if m:
                return m.group(0)
    return None


def write(found: dict[str, Estimate]) -> None:
    for n, path in lessons().items():
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            source = "".join(cell["source"])
            new = TIME_LINE.sub(time_line(found[n]), source, count=1)
            if n == "00":
                new = rewrite_table(new, found)
            if new != source:
                cell["source"] = new
                changed = True
        if changed:
            nbformat.write(nb, path)
    README.write_text(rewrite_table(README.read_text(), found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true",
                        help="update the notebooks' time lines and the lesson tables")
    args = parser.parse_args()
    found = estimates()
    print(f"{'lesson':6} {'reading':>8} {'figures':>8} {'exercises':>9} {'running':>8} {'total':>6}")
    for n, e in found.items():
        print(f"{n:6} {e.reading:8.1f} {e.figures:8.1f} {e.exercises:9.1f} {e.running:8.1f} "
              f"{e.minutes:6d}")
    total = sum(e.minutes for e in found.values())
    print(f"all: {total} minutes ({total_sentence(total)})")
    if args.write:
        write(found)
        print("wrote the notebooks' time lines, lesson 00's table and README.md's")


if __name__ == "__main__":
    main()
