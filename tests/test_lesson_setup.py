"""Every lesson opens on Colab as well as in a clone: a badge, and one quiet setup cell.

The setup cell installs featviz where it is missing and must never touch what the host
already has (Colab's torch, torchvision and ipywidgets 7). Here its logic runs with pip
replaced by a recorder; tests/test_colab.py runs it for real in a Colab-like venv.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _setup_cell(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return next(c.source for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("path", LESSONS, ids=lambda p: p.name[:2])
def test_each_lesson_has_its_colab_badge_and_the_setup_cell_first(path):
    title = nbformat.read(path, as_version=4).cells[0].source
    url = f"https://colab.research.google.com/github/featviz/featviz/blob/main/notebooks/{path.name}"
    assert f"]({url})" in title and "colab-badge.svg" in title
    assert _setup_cell(path) == _setup_cell(LESSONS[0]), "every lesson's setup cell is the same"


def _run_cell(monkeypatch, present: set[str], **env: str) -> list[list[str]]:
    """Run lesson 00's setup cell as if only the ``present`` modules were installed."""
    calls: list[list[str]] = []
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name in ("featviz", "torch", "torchvision", "ipywidgets"):
            return real_find_spec(name) if name in present else None
        return real_find_spec(name, *args, **kwargs)

    def pip(args, **kwargs):
        calls.append(list(args))
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(subprocess, "run", pip)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    exec(compile(_setup_cell(LESSONS[0]), "setup cell", "exec"), {})
    return calls


def test_the_setup_cell_does_nothing_where_featviz_is_installed(monkeypatch, capsys):
    assert _run_cell(monkeypatch, {"featviz", "torch", "torchvision", "ipywidgets"}) == []
    assert capsys.readouterr().out == ""


def test_the_setup_cell_installs_featviz_and_keeps_the_hosts_packages(monkeypatch):
    calls = _run_cell(monkeypatch, {"torch", "torchvision", "ipywidgets"},
                      FEATVIZ_SOURCE="file:///wheels/featviz-0.1.0-py3-none-any.whl")
    assert len(calls) == 1
    args = calls[0]
    assert args[1:4] == ["-m", "pip", "install"] and "--upgrade" not in args and "-U" not in args
    assert "featviz[widgets] @ file:///wheels/featviz-0.1.0-py3-none-any.whl" in args
    for name in ("torch", "torchvision", "ipywidgets"):   # pinned to what is already here
        assert f"{name}=={importlib.metadata.version(name)}" in args


def test_the_setup_cell_installs_from_the_repository_by_default(monkeypatch):
    monkeypatch.delenv("FEATVIZ_SOURCE", raising=False)
    args = _run_cell(monkeypatch, {"torch"})[0]
    assert "featviz[widgets] @ git+https://github.com/featviz/featviz" in args
    assert not any(a.startswith(("torchvision==", "ipywidgets==")) for a in args), \
        "nothing is pinned that is not installed"


def test_readme_shows_colab_the_practitioners_install_and_the_workshop_section():
    readme = (ROOT / "README.md").read_text()
    assert "colab.research.google.com/github/featviz/featviz/blob/main/notebooks/00_start_here.ipynb" in readme
    assert 'pip install "featviz @ git+https://github.com/featviz/featviz"' in readme
    assert "py course.py lab" in readme and "python3 course.py lab" in readme
    workshop = readme.split("## Running a workshop", 1)[1].split("\n## ", 1)[0]
    for needed in ("singleuser", "guarantee", "Binder", "cull"):
        assert needed in workshop, needed
