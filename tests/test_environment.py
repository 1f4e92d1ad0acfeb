"""The three environment descriptions agree, and Binder builds from binder/."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# conda-forge spells a few packages differently from PyPI
CONDA_TO_PYPI = {"pytorch-cpu": "torch", "pytorch": "torch"}
BUILD_TOOLS = {"python", "pip", "setuptools"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _extra(project: dict, extra: str) -> set[str]:
    """The packages an extra adds, following the extras it names (``featviz[widgets]``)."""
    names = set()
    for requirement in project["optional-dependencies"][extra]:
        inner = re.fullmatch(r"featviz\[(\w+)\]", requirement.strip())
        names |= _extra(project, inner.group(1)) if inner else {_name(requirement)}
    return names


def _pyproject() -> tuple[set[str], set[str]]:
    """(what the course needs: core, widgets and JupyterLab; what the tests add)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    course = {_name(r) for r in project["dependencies"]} | _extra(project, "course")
    test = _extra(project, "test") - course
    return course, test


def test_the_core_needs_no_notebook_tools():
    """`pip install featviz` is for scripts too: no widgets, no JupyterLab."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_name(r) for r in project["dependencies"]}
    assert core == {"torch", "torchvision", "numpy", "matplotlib", "pillow", "tqdm"}
    assert _extra(project, "widgets") == {"ipywidgets", "anywidget"}
    assert "ipywidgets>=7.6" in project["optional-dependencies"]["widgets"], \
        "Colab ships ipywidgets 7.7: featviz must not force 8"
    assert _extra(project, "course") == {"ipywidgets", "anywidget", "jupyterlab"}


def _conda(path: Path) -> set[str]:
    deps = yaml.safe_load(path.read_text())["dependencies"]
    names = {CONDA_TO_PYPI.get(_name(d), _name(d)) for d in deps if isinstance(d, str)}
    return names - BUILD_TOOLS


def test_root_environment_has_exactly_the_runtime_and_test_packages():
    runtime, test = _pyproject()
    env = _conda(ROOT / "environment.yml")
    assert env == runtime | test, (
        f"only in environment.yml: {sorted(env - runtime - test)}; "
        f"only in pyproject.toml: {sorted(runtime | test - env)}"
    )


def test_binder_environment_has_exactly_the_runtime_packages():
    runtime, _ = _pyproject()
    env = _conda(ROOT / "binder" / "environment.yml")
    assert env == runtime, (
        f"only in binder/environment.yml: {sorted(env - runtime)}; "
        f"only in pyproject.toml: {sorted(runtime - env)}"
    )


def test_environments_use_cpu_pytorch_from_conda_forge():
    for path in (ROOT / "environment.yml", ROOT / "binder" / "environment.yml"):
        spec = yaml.safe_load(path.read_text())
        assert spec["channels"] == ["conda-forge"], path
        assert any(str(d).startswith("pytorch-cpu") for d in spec["dependencies"]), path


def test_postbuild_installs_featviz_and_stops_on_error():
    post = ROOT / "binder" / "postBuild"
    text = post.read_text()
    assert post.stat().st_mode & 0o111, "postBuild must be executable"
    assert re.search(r"^set -e", text, re.M), "postBuild must stop at the first failing command"
    assert re.search(r"pip install .*-e \.$", text, re.M), "postBuild must install featviz"


def test_repo2docker_dry_run_builds_from_binder_folder():
    exe = shutil.which("jupyter-repo2docker") or str(Path(sys.executable).parent / "jupyter-repo2docker")
    if not Path(exe).exists():
        pytest.skip("jupyter-repo2docker is not installed (pip install -e '.[test]')")
    # --no-build only writes the Dockerfile: no Docker engine is needed
    out = subprocess.run([exe, "--no-build", "--debug", str(ROOT)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    dockerfile = out.stdout + out.stderr
    assert 'binder/environment.yml' in dockerfile
    assert "env update" in dockerfile, "the conda environment must come from binder/environment.yml"
    assert "./binder/postBuild" in dockerfile, "postBuild (which installs featviz) must run"
    # the root environment.yml is for local conda users and must not be what Binder builds
    assert '--file "environment.yml"' not in dockerfile


def test_readme_opens_with_the_two_commands_and_ci_runs_the_test_one():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:\w+)?\n(.*?)```", readme, re.S)
    assert block, "README.md needs a code block with the two commands"
    lines = [l for l in block.group(1).splitlines() if l.strip() and not l.lstrip().startswith("#")]
    assert lines == ["python course.py lab", "python course.py test"], lines
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()
