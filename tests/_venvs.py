"""Throwaway virtual environments for the packaging tests, made in seconds.

A fresh venv would need torch again (gigabytes). Instead :func:`make_venv`
creates an empty venv (``python -m venv``, with pip) and adds one ``.pth`` file
that points at a folder of symlinks to the distributions already installed in
the Python running the tests, but only those that the given roots need: their
requirement closure, computed from the installed metadata. Everything else is
absent there, so ``import ipywidgets`` really fails in a core-only venv. pip
inside the venv sees the linked distributions as installed (the folder is on
``sys.path``), so ``pip install --no-index featviz.whl`` resolves the core
dependencies without downloading anything. The folder lies outside the venv,
so a pip in the venv that wants another version never uninstalls a linked one
(it only uninstalls inside its own environment): it installs beside it, and
the venv's site-packages comes first on ``sys.path``.

:func:`featviz_wheel` builds the featviz wheel once per test session, from a
copy of the checkout, so no ``build/`` or ``featviz.egg-info`` is written (or
read, stale) in the working tree.

Used by ``test_core_only.py``, ``test_colab.py`` and ``test_browser_ipywidgets7.py``
(``from _venvs import ...``; pytest puts this folder on ``sys.path``).
"""
from __future__ import annotations

import importlib.metadata as md
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
#: what ``pip install featviz`` needs (pyproject.toml's ``dependencies``)
CORE = ("torch", "torchvision", "numpy", "matplotlib", "pillow", "tqdm")
#: environment variables that would make the venv's Python see other packages
_LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONSAFEPATH",
          "VIRTUAL_ENV", "CONDA_PREFIX", "PIP_TARGET", "PIP_PREFIX", "PIP_USER",
          "PIP_REQUIRE_VIRTUALENV", "__PYVENV_LAUNCHER__")


# --------------------------------------------------------------------------- the closure

def _installed() -> dict[str, md.Distribution]:
    """The distributions this Python imports, by canonical name (the first on sys.path wins,
    as it does for import)."""
    found: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def requirement_closure(roots: Iterable[str]) -> dict[str, md.Distribution]:
    """The installed distributions that ``roots`` (requirement strings such as ``"torch"``
    or ``"featviz[widgets]"``) need, themselves included: ``{canonical name: dist}``.

    Follows ``Requires-Dist`` with its markers evaluated for this Python and the extras
    asked for. Raises ``LookupError`` naming a needed distribution that is not installed.
    """
    installed = _installed()
    todo = [Requirement(r) for r in roots]
    done: dict[str, set[str]] = {}   # name -> extras already followed
    found: dict[str, md.Distribution] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        extras = {canonicalize_name(e) for e in req.extras}
        if name in done and extras <= done[name]:
            continue
        if name not in installed:
            raise LookupError(f"{req.name} is needed ({req}) but not installed in {sys.prefix}")
        done[name] = done.get(name, set()) | extras
        dist = found[name] = installed[name]
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in ("", *sorted(done[name]))):
                todo.append(sub)
    return found


def _site_of(dist: md.Distribution) -> Path:
    return Path(str(dist.locate_file(""))).resolve()


def _top_files(dist: md.Distribution) -> set[PurePosixPath]:
    """The files a distribution installed inside its site-packages, relative to it
    (its console scripts and data files outside it, ``../../bin/...``, are left out)."""
    site = _site_of(dist)
    out = set()
    for f in dist.files or []:
        rel = PurePosixPath(str(f).replace("\\", "/"))
        if not rel.parts or rel.parts[0] in ("..", "") or rel.is_absolute():
            continue
        try:
            (site / rel).resolve().relative_to(site)
        except ValueError:
            continue
        out.add(rel)
    return out


def link_closure(dists: Mapping[str, md.Distribution], folder: Path) -> Path:
    """Fill ``folder`` with symlinks to the files and folders of ``dists`` (from
    :func:`requirement_closure`), their ``.dist-info`` folders included; returns it.

    A top-level entry of site-packages owned only by distributions of ``dists`` is
    linked whole; one shared with a distribution outside them (``__pycache__``, a
    namespace package such as ``nvidia``) becomes a real folder, filled the same way
    one level down, so nothing of the others comes along.
    """
    folder.mkdir(parents=True, exist_ok=True)
    wanted = set(dists)
    sites = {_site_of(d) for d in dists.values()}
    # who owns what, over every distribution installed in the same site folders
    owners: dict[Path, dict[PurePosixPath, set[str]]] = {s: {} for s in sites}
    files: dict[Path, set[PurePosixPath]] = {s: set() for s in sites}
    for name, dist in _installed().items():
        site = _site_of(dist)
        if site not in owners:
            continue
        for rel in _top_files(dist):
            for depth in range(1, len(rel.parts) + 1):
                owners[site].setdefault(PurePosixPath(*rel.parts[:depth]), set()).add(name)
            if name in wanted:
                files[site].add(rel)

    def place(site: Path, rel: PurePosixPath) -> None:
        target = folder / rel
        if owners[site].get(rel, set()) <= wanted or not (site / rel).is_dir():
            if target.is_symlink() or target.exists():
                if target.is_symlink() and target.resolve() == (site / rel).resolve():
                    return
                raise FileExistsError(f"{rel} comes from two places: {target.resolve()} "
                                      f"and {site / rel}")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(site / rel, target_is_directory=(site / rel).is_dir())
            return
        target.mkdir(parents=True, exist_ok=True)
        below = {PurePosixPath(*f.parts[:len(rel.parts) + 1]) for f in files[site]
                 if f.parts[:len(rel.parts)] == rel.parts and len(f.parts) > len(rel.parts)}
        for child in sorted(below):
            place(site, child)

    for site in sorted(sites):
        for top in sorted({PurePosixPath(f.parts[0]) for f in files[site]}):
            if (site / top).exists():
                place(site, top)
    return folder


# --------------------------------------------------------------------------- the venv

@dataclass(frozen=True)
class Venv:
    """A virtual environment made by :func:`make_venv`."""

    path: Path
    links: Path | None

    @property
    def bin(self) -> Path:
        return self.path / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    def env(self, **extra: str) -> dict[str, str]:
        """An environment for a process run in this venv: its ``bin`` first on PATH, no
        PYTHONPATH or user site-packages, ``extra`` on top."""
        env = {k: v for k, v in os.environ.items() if k not in _LEAKY}
        env.update(VIRTUAL_ENV=str(self.path), PYTHONNOUSERSITE="1",
                   PATH=str(self.bin) + os.pathsep + env.get("PATH", ""))
        env.update(extra)
        return env

    def run(self, args: list[str | os.PathLike], *, env: Mapping[str, str] | None = None,
            cwd: str | os.PathLike | None = None, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess:
        """Run ``args`` (``"python"`` as the first is this venv's) in this venv; text output
        captured. ``check``: raise ``AssertionError`` with the output when it fails."""
        cmd = [str(self.python) if str(a) == "python" and i == 0 else str(a)
               for i, a in enumerate(args)]
        done = subprocess.run(cmd, env=dict(env) if env is not None else self.env(),
                              cwd=cwd, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited with {done.returncode}:\n"
                                 f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}")
        return done

    def pip(self, *args: str, timeout: float = 300, check: bool = True,
            **env: str) -> subprocess.CompletedProcess:
        return self.run(["python", "-m", "pip", *args, "--disable-pip-version-check"],
                        env=self.env(**env), timeout=timeout, check=check)

    def python_code(self, code: str, *, timeout: float = 300, check: bool = True,
                    cwd: str | os.PathLike | None = None, **env: str) -> subprocess.CompletedProcess:
        return self.run(["python", "-c", code], env=self.env(**env), cwd=cwd, timeout=timeout,
                        check=check)

    def installed(self) -> dict[str, str]:
        """What pip in this venv says is installed: ``{canonical name: version}``."""
        out = self.pip("list", "--format=json").stdout
        return {canonicalize_name(p["name"]): p["version"] for p in json.loads(out)}

    def site_packages(self) -> Path:
        code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
        return Path(self.python_code(code).stdout.strip())


def make_venv(path: Path, roots: Iterable[str] = CORE) -> Venv:
    """A new venv at ``path`` (with pip) in which the installed distributions that
    ``roots`` need are importable, and nothing else (see the module's docstring).
    The symlinks go to ``path.parent / (path.name + "-links")``, outside the venv."""
    path = Path(path)
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    # the venv module makes it from the base interpreter, never from a venv of a venv
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True,
                   capture_output=True, text=True, timeout=180)
    venv = Venv(path, None)
    roots = list(roots)
    if not roots:
        return venv
    closure = requirement_closure(roots)
    # what venv put there itself (Python 3.11: pip and setuptools 65) would shadow a
    # linked one (torch needs setuptools>=77): the linked one must show through
    shadowing = sorted((set(venv.installed()) & set(closure)) - {"pip"})
    if shadowing:
        venv.pip("uninstall", "-y", "-q", *shadowing)
    links = link_closure(closure, path.parent / f"{path.name}-links")
    (venv.site_packages() / "_linked_distributions.pth").write_text(f"{links}\n")
    return Venv(path, links)


# --------------------------------------------------------------------------- the wheel

_WHEEL: Path | None = None
# what the featviz wheel is built from; the rest of the checkout does not go in it
_SOURCES = ("pyproject.toml", "README.md", "LICENSE", "LICENSE.txt", "LICENSE.md", "featviz")
_JUNK = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache",
                               ".ruff_cache", ".pytest_cache")


def build_featviz_wheel(out: Path) -> Path:
    """Build the featviz wheel from a copy of the checkout into ``out``; returns the
    ``.whl``. The copy keeps setuptools' ``build/`` and ``featviz.egg-info`` out of
    the working tree (and a stale ``build/lib`` out of the wheel)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in _SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=_JUNK)
        elif (REPO / name).is_file():
            shutil.copy2(REPO / name, src / name)
    dist = out / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--disable-pip-version-check", "-w", str(dist), str(src)],
        capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise AssertionError(f"pip wheel failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    wheels = sorted(dist.glob("featviz-*.whl"))
    assert len(wheels) == 1, f"expected one featviz wheel in {dist}, found {wheels}"
    return wheels[0]


def featviz_wheel(tmp_path_factory) -> Path:
    """The featviz wheel of this checkout, built once per test session (pass pytest's
    ``tmp_path_factory``)."""
    global _WHEEL
    if _WHEEL is None or not _WHEEL.is_file():
        _WHEEL = build_featviz_wheel(tmp_path_factory.mktemp("featviz-wheel"))
    return _WHEEL


# --------------------------------------------------------------------------- the registry

def registry_has(venv: Venv, package: str, version: str, timeout: float = 60) -> str | None:
    """None when pip in ``venv`` can find ``package==version`` on its index (PyPI, as
    configured here); otherwise why not, in words."""
    try:
        done = venv.pip("index", "versions", package, "--retries", "1", "--timeout", "20",
                        timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return f"pip index versions {package} took over {timeout:.0f} s"
    versions = done.stdout.split("Available versions:", 1)[-1]
    if done.returncode == 0 and version in [v.strip() for v in versions.split(",")]:
        return None
    said = [line for line in (done.stdout + done.stderr).splitlines()
            if line.strip() and "is ignored" not in line and "experimental" not in line]
    return (f"pip cannot find {package}=={version} on its index (is PyPI reachable?): "
            f"{' / '.join(said[-3:])[-600:]}")
