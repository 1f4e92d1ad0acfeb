"""``featviz.doctor()``: check that this environment can run the course, and say how to fix it.

>>> report = featviz.doctor(show=False)   # show=True, the default, prints one line per check
>>> report.names
['python', 'featviz', 'torch', ..., 'device', 'data', 'checkpoints', 'imagenet']
>>> report["data"].status in ("ok", "warn")  # "warn": the bundled sample; report["data"].fix says more
True

``report.ok`` is False when any check failed; ``report.problems`` lists the
checks that did not pass, failures first.

The checks: the versions of Python and the course's packages; whether the
widget frontend is installed where the Jupyter server runs (the classic
failure: a slider drawn as the text ``IntSlider(value=0)``); the device
PyTorch will use; which MNIST is in use (the full set or the bundled sample);
whether the bundled checkpoints match their sha256; and whether ResNet-18's ImageNet
weights are in the PyTorch hub cache (lesson 08).

Every check is cheap (a few seconds in all, most of it importing torch) and
never touches the network. ``doctor`` itself never raises: a check that breaks
is reported as a failed check.
"""
from __future__ import annotations

import functools
import html
import importlib.metadata
import importlib.util
import os
import platform
import re
import shlex
import shutil
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ._assets import pretty_path

__all__ = ["Check", "Report", "doctor"]

OK, WARN, FAIL = "ok", "warn", "fail"
_STATUSES = (OK, WARN, FAIL)

# The oldest versions the course is tested with (pyproject.toml says the same).
MINIMUM_VERSIONS: dict[str, str] = {
    "torch": "2.3",
    "torchvision": "0.18",
    "numpy": "1.23",
    "matplotlib": "3.7",
    "ipywidgets": "7.6",
    "jupyterlab": "4.0",
}
# ipywidgets 8 talks to the JupyterLab extension of jupyterlab_widgets 3
# (labextension @jupyter-widgets/jupyterlab-manager 5); 7 to 1 (manager 3).
_WIDGET_FRONTEND_MAJOR = {8: 3, 7: 1}
_IPYWIDGETS_7_FRONTEND = '"jupyterlab_widgets<2"'   # not -U: that would move to ipywidgets 8
_MANAGER = ("@jupyter-widgets", "jupyterlab-manager")
_TEXT_LABEL = {OK: "ok", WARN: "warn", FAIL: "FAIL"}
_HTML_ICON = {OK: "\u2705", WARN: "\u26a0\ufe0f", FAIL: "\u274c"}


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    ``status`` is ``"ok"``, ``"warn"`` (works, but could be better) or
    ``"fail"`` (a lesson will break); ``fix`` says what to do, and is empty
    when there is nothing to do.
    """

    name: str
    status: str
    detail: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {self.status!r}")


@dataclass
class Report:
    """All the checks of :func:`doctor`: a sequence of :class:`Check`.

    Index by position or by name (``report["device"]``); ``str(report)`` is the
    text table, and in Jupyter it is shown as an HTML table.
    """

    checks: list[Check]
    _shown_at: int | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings are allowed)."""
        return all(c.status != FAIL for c in self.checks)

    @property
    def problems(self) -> list[Check]:
        """The checks that warn or fail, failures first."""
        return sorted((c for c in self.checks if c.status != OK),
                      key=lambda c: c.status != FAIL)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.checks]

    def __len__(self) -> int:
        return len(self.checks)

    def __iter__(self) -> Iterator[Check]:
        return iter(self.checks)

    def __getitem__(self, key: int | str) -> Check:
        if isinstance(key, str):
            for c in self.checks:
                if c.name == key:
                    return c
            raise KeyError(f"no check named {key!r}; the checks are {', '.join(self.names)}")
        return self.checks[key]

    def summary(self) -> str:
        counts = {s: sum(c.status == s for c in self.checks) for s in _STATUSES}
        if counts[FAIL]:
            verdict = "something needs fixing before the lessons will run: see FAIL above"
        elif counts[WARN]:
            verdict = "the course will run; the warnings say what could be better"
        else:
            verdict = "all set: the course will run"
        return (f"{counts[OK]} ok, {counts[WARN]} warning{'s' * (counts[WARN] != 1)}, "
                f"{counts[FAIL]} failed: {verdict}.")

    def __str__(self) -> str:
        width = max(len(c.name) for c in self.checks) if self.checks else 0
        lines = ["featviz doctor"]
        indent = " " * (width + 12)
        for c in self.checks:
            head = f"  [{_TEXT_LABEL[c.status]:<4}] {c.name:<{width}}   "
            lines.append(_fill(c.detail, head, indent))
            if c.fix:
                lines.append(_fill(c.fix, indent + "fix: ", indent + "     "))
        lines.append(self.summary())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        rows = []
        for c in self.checks:
            fix = (f"<br><b>fix:</b> {_html_code(c.fix)}" if c.fix else "")
            rows.append(
                f"<tr><td>{_HTML_ICON[c.status]}</td><td><b>{html.escape(c.name)}</b></td>"
                f"<td style=\"text-align:left\">{_html_code(c.detail)}{fix}</td></tr>"
            )
        return (
            "<table><thead><tr><th></th><th>check</th><th style=\"text-align:left\">"
            "featviz doctor</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            f"<p>{html.escape(self.summary())}</p>"
        )

    def _ipython_display_(self) -> None:
        from IPython.display import display

        # doctor() has already shown this report in the current cell; when the
        # cell ends with `featviz.doctor()` IPython would show it a second time
        shell = _ipython_kernel_shell()
        if shell is not None and self._shown_at == shell.execution_count:
            return
        display({"text/plain": str(self), "text/html": self._repr_html_()}, raw=True)


def _fill(text: str, first: str, rest: str) -> str:
    # paths and `commands` stay whole, so that they can be copied from the output
    parts = text.split("`")
    glued = "`".join(p.replace(" ", "\0") if i % 2 else p for i, p in enumerate(parts))
    return textwrap.fill(glued, 100, initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False).replace("\0", " ")


def _html_code(text: str) -> str:
    """Escape ``text``; spans in backticks become <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


# --------------------------------------------------------------------------- probes
# Small functions the checks call to look at the world, one place each, so
# that the tests can stand in for a broken environment.

def _version(dist: str) -> str | None:
    """The installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _labextension_paths() -> list[Path]:
    """The folders this environment's Jupyter looks in for JupyterLab extensions."""
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]
    return [Path(p) for p in jupyter_path("labextensions")]


def _ipython_kernel_shell():
    """The IPython shell when running inside a Jupyter kernel, else None."""
    if "IPython" not in sys.modules:
        return None
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


def _in_kernel() -> bool:
    return _ipython_kernel_shell() is not None


def _process_cmdline(pid: int) -> list[str] | None:
    try:
        import psutil

        return list(psutil.Process(pid).cmdline())
    except ImportError:
        pass
    except Exception:  # gone, or not ours to look at
        return None
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


@dataclass(frozen=True)
class ServerInfo:
    """What the kernel can tell about the process that started it."""

    pid: int
    cmdline: list[str]
    python: Path | None    # the server's interpreter, as it was invoked
    prefix: Path | None    # the environment it runs from


def _kernel_server() -> ServerInfo | None:
    """The process that started this kernel (a Jupyter server, nbclient...), when known.

    jupyter_client puts the parent's pid in ``JPY_PARENT_PID`` for every kernel it
    starts; its command line tells which Python, hence which environment, it runs.
    """
    pid = os.environ.get("JPY_PARENT_PID", "")
    if not pid.isdigit():
        return None
    cmdline = _process_cmdline(int(pid))
    if not cmdline:
        return None
    python = None
    for arg in cmdline[:2]:
        if re.match(r"python(\d+(\.\d+)?)?(\.exe)?$", Path(arg).name, re.I):
            python = Path(arg)
            break
    if python is None and len(cmdline) > 1 and "jupyter" in Path(cmdline[1]).name:
        python = Path(cmdline[1]).parent / "python"   # a console script beside its python
    if python is None and "jupyter" in Path(cmdline[0]).name:
        python = Path(cmdline[0]).parent / "python"
    if python is not None and not python.is_absolute():
        # started as plain `python` from PATH: the best guess is what PATH gives here
        found = shutil.which(str(python))
        python = Path(found) if found else python
    prefix = None
    if python is not None and python.is_absolute():
        # bin/python (POSIX) or Scripts\python.exe / python.exe (Windows) in the prefix
        prefix = python.parent.parent if python.parent.name in ("bin", "Scripts") else python.parent
    return ServerInfo(int(pid), cmdline, python, prefix)


def _manager_in(folders: Sequence[Path]) -> Path | None:
    for folder in folders:
        candidate = folder.joinpath(*_MANAGER)
        if (candidate / "package.json").is_file():
            return candidate
    return None


def _major(version: str | None) -> int | None:
    m = re.match(r"(\d+)", version or "")
    return int(m.group(1)) if m else None


def _older(version: str, minimum: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", v.split("+")[0])[:3])
    return parts(version) < parts(minimum)


def _pip(*packages: str, python: str | os.PathLike | None = None) -> str:
    exe = pretty_path(python) if python else "python"
    if exe != "python" and " " in exe:
        exe = shlex.quote(exe)
    return f"`{exe} -m pip install {' '.join(packages)}`"


# --------------------------------------------------------------------------- checks

def _python_version() -> tuple[int, int, int]:
    return tuple(sys.version_info[:3])  # type: ignore[return-value]


def _check_python() -> Check:
    v = _python_version()
    detail = f"{'.'.join(map(str, v))} ({pretty_path(sys.executable)})"
    if v < (3, 10):
        return Check("python", FAIL, detail,
                     "featviz needs Python 3.10 or newer: create the environment with a newer "
                     "Python (`./course lab` does, or `conda env create -f environment.yml`).")
    return Check("python", OK, detail)


def _check_featviz() -> Check:
    from . import __version__

    where = Path(__file__).resolve().parent
    return Check("featviz", OK, f"{__version__} ({pretty_path(where)})")


def _check_package(dist: str, why: str) -> Check:
    version = _version(dist)
    minimum = MINIMUM_VERSIONS.get(dist)
    if version is None:
        return Check(dist, FAIL, f"not installed ({why})",
                     f"install it into this kernel's environment: {_pip(dist, python=sys.executable)}.")
    if minimum and _older(version, minimum):
        spec = f'"{dist}>={minimum}"'
        return Check(dist, WARN, f"{version}, older than the {minimum} the course is tested with",
                     f"upgrade: {_pip(spec, python=sys.executable)}.")
    if dist == "torch":
        import torch

        version = torch.__version__    # with its build tag: +cpu, +cu124...
    return Check(dist, OK, version)


def _check_jupyterlab() -> Check:
    version = _version("jupyterlab")
    server = _kernel_server() if _in_kernel() else None
    if version is None:
        if _on_colab():
            return Check("jupyterlab", OK, "not needed: Colab runs the notebooks")
        if server is not None and server.prefix is not None and not _same_env(server.prefix):
            return Check("jupyterlab", OK,
                         f"not in this kernel's environment; the Jupyter server runs from {pretty_path(server.prefix)}")
        return Check("jupyterlab", WARN, "not installed in this environment",
                     f"to open the course: {_pip('jupyterlab', python=sys.executable)} "
                     "(or run `./course lab`, which sets everything up).")
    minimum = MINIMUM_VERSIONS["jupyterlab"]
    if _older(version, minimum):
        spec = f'"jupyterlab>={minimum}"'
        return Check("jupyterlab", WARN, f"{version}, older than the {minimum} the course is tested with",
                     f"upgrade: {_pip(spec, python=sys.executable)}, then restart JupyterLab.")
    return Check("jupyterlab", OK, version)


def _same_env(prefix: Path) -> bool:
    try:
        return Path(prefix).resolve() == Path(sys.prefix).resolve()
    except OSError:
        return False


def _on_colab() -> bool:
    """Google Colab: its own front end and widget manager, no Jupyter server of ours."""
    return "google.colab" in sys.modules


def _check_widgets() -> Check:
    """Is the widget frontend installed where the Jupyter server runs?"""
    name = "widgets"
    ipyw = _version("ipywidgets")
    symptom = "sliders and dropdowns would show as plain text such as `IntSlider(value=0)`"
    if ipyw is None:
        return Check(name, FAIL, "ipywidgets is not installed in this kernel's environment, "
                     "so lesson 05's explorer cannot run",
                     f"{_pip('ipywidgets', 'jupyterlab_widgets', python=sys.executable)}, then restart the kernel.")
    if _on_colab():
        return Check(name, OK, f"ipywidgets {ipyw} on Colab, drawn by Colab's widget manager "
                               "(anywidget switches it on)")
    classic = _classic_notebook_server()
    if classic is not None:
        return _check_classic_widgets(ipyw, classic)
    want = _WIDGET_FRONTEND_MAJOR.get(_major(ipyw) or 0)
    frontend = _version("jupyterlab_widgets")
    here_ok = _importable("jupyterlab_widgets") and frontend is not None
    manager = _manager_in(_labextension_paths())

    server = _kernel_server() if _in_kernel() else None
    if server is not None and server.prefix is not None and not _same_env(server.prefix):
        # the kernel runs in one environment, the Jupyter server in another: the
        # frontend must be in the server's (or in a shared user/system folder)
        shared = [p for p in _labextension_paths() if not _is_under(p, Path(sys.prefix))]
        found = _manager_in([server.prefix / "share" / "jupyter" / "labextensions", *shared])
        where = f"the Jupyter server runs from {pretty_path(server.prefix)}, this kernel from {pretty_path(sys.prefix)}"
        if found is None:
            return Check(name, FAIL,
                         f"ipywidgets {ipyw} is here, but {where}, and the widget frontend "
                         f"(jupyterlab_widgets) is not installed there: {symptom}.",
                         f"install the frontend where the server runs: "
                         f"{_pip('jupyterlab_widgets', python=server.python)}, then restart JupyterLab "
                         f"(or start JupyterLab from this environment: `{pretty_path(Path(sys.executable).parent / 'jupyter')} lab`).")
        return Check(name, OK, f"ipywidgets {ipyw} in this kernel; the widget frontend is installed "
                     f"where the server runs ({pretty_path(found)}); {where}.")

    if not here_ok or manager is None:
        missing = "jupyterlab_widgets is not installed" if not here_ok else \
            "the JupyterLab extension @jupyter-widgets/jupyterlab-manager is not in any of " \
            + ", ".join(pretty_path(p) for p in _labextension_paths())
        return Check(name, FAIL, f"ipywidgets {ipyw}, but {missing}: {symptom}.",
                     f"{_pip('jupyterlab_widgets', python=sys.executable)} in the environment that "
                     "runs JupyterLab, then restart JupyterLab (a browser reload is not enough).")
    if want is not None and _major(frontend) != want:
        return Check(name, FAIL,
                     f"ipywidgets {ipyw} needs jupyterlab_widgets {want}.x, but {frontend} is "
                     f"installed: widgets would show an error or plain text such as `IntSlider(value=0)`.",
                     (f"{_pip(_IPYWIDGETS_7_FRONTEND, python=sys.executable)} (the "
                      "front end of ipywidgets 7; upgrading both to 8 is the other way)"
                      if want == 1 else
                      f"{_pip('-U', 'ipywidgets', 'jupyterlab_widgets', python=sys.executable)} so that "
                      "the two match") + ", then restart JupyterLab.")
    if server is None:
        context = "not running in a Jupyter kernel; checked this environment"
    else:
        context = "the Jupyter server that started this kernel runs from this environment too"
    return Check(name, OK, f"ipywidgets {ipyw}, jupyterlab_widgets {frontend}, extension at "
                 f"{pretty_path(manager)}; {context}.")


def _classic_notebook_server() -> str | None:
    """The classic Notebook's version (below 7) when it is the server of this kernel."""
    server = _kernel_server() if _in_kernel() else None
    if server is None or not any("notebook" in Path(a).name for a in server.cmdline[:3]):
        return None
    version = _version("notebook")
    return version if version is not None and (_major(version) or 0) < 7 else None


def _check_classic_widgets(ipyw: str, notebook: str) -> Check:
    """The classic Notebook (< 7) draws widgets with widgetsnbextension: 3 for ipywidgets 7,
    4 for ipywidgets 8."""
    want = {7: 3, 8: 4}.get(_major(ipyw) or 0)
    ext = _version("widgetsnbextension")
    if ext is None or (want is not None and _major(ext) != want):
        spec = f'"widgetsnbextension=={want}.*"' if want else "widgetsnbextension"
        return Check("widgets", FAIL, f"ipywidgets {ipyw} in the classic Notebook {notebook} needs "
                     f"widgetsnbextension {want}.x, but {ext or 'none'} is installed: widgets "
                     "would show as plain text such as `IntSlider(value=0)`.",
                     f"{_pip(spec, python=sys.executable)}, then restart the Notebook server.")
    return Check("widgets", OK, f"ipywidgets {ipyw} in the classic Notebook {notebook}, with "
                 f"widgetsnbextension {ext}")


def _check_anywidget() -> Check:
    """Is anywidget's frontend (it draws the explorer and the sketchpad) where the server runs?"""
    version = _version("anywidget")
    symptom = "the explorer's and the sketchpad's pictures would not appear (an empty box or an error)"
    if version is None:
        return Check("anywidget", FAIL, f"anywidget is not installed in this kernel's environment: "
                     f"{symptom}.", f"{_pip('anywidget', python=sys.executable)}, then restart JupyterLab.")
    if _on_colab():
        return Check("anywidget", OK, f"{version}; on Colab its front end comes with the widget")
    server = _kernel_server() if _in_kernel() else None
    folders = _labextension_paths()
    python: str | Path = sys.executable
    if server is not None and server.prefix is not None and not _same_env(server.prefix):
        shared = [p for p in folders if not _is_under(p, Path(sys.prefix))]
        folders = [server.prefix / "share" / "jupyter" / "labextensions", *shared]
        python = server.python or python
    found = next((f / "anywidget" for f in folders if (f / "anywidget" / "package.json").is_file()), None)
    if found is None:
        return Check("anywidget", FAIL,
                     f"anywidget {version} is here, but its JupyterLab extension is not in any of "
                     f"{', '.join(pretty_path(f) for f in folders)}: {symptom}.",
                     f"{_pip('anywidget', python=python)} in the environment that runs JupyterLab, "
                     "then restart JupyterLab (a browser reload is not enough).")
    return Check("anywidget", OK, f"anywidget {version}, extension at {pretty_path(found)}.")


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def _check_device() -> Check:
    import torch

    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        name = torch.cuda.get_device_name(0)
        more = f" (and {count - 1} more)" if count > 1 else ""
        return Check("device", OK, f"CUDA: {name}{more}, CUDA {torch.version.cuda}; "
                     "featviz.default_device() is cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return Check("device", OK, "Apple MPS (the Mac's GPU); featviz.default_device() is mps")
    cpu = platform.processor() or platform.machine()
    detail = (f"CPU ({cpu}, {os.cpu_count()} cores, torch uses {torch.get_num_threads()} threads); "
              "no GPU is needed: every lesson runs on a laptop CPU")
    if torch.version.cuda is None and shutil.which("nvidia-smi"):
        detail += ("; this machine seems to have an NVIDIA GPU but torch is a CPU-only build "
                   "(optional: the CUDA build from https://pytorch.org would use it)")
    return Check("device", OK, detail)


def _data_source():
    """Which MNIST the lessons get, without printing and without downloading."""
    from . import data

    known = data.remembered_source()
    if known is not None:
        return known, True
    # quiet: the line about the sample is kept for the learner's first load_mnist()
    return data.data_source(download=False, quiet=True), False


def _check_data() -> Check:
    from . import data
    from ._assets import read_manifest, verified_asset

    sample = [n for n in read_manifest().get("files", {}) if n.startswith(data.SAMPLE_DIR + "/")]
    try:
        for n in sample:
            verified_asset(n)
    except (OSError, ValueError) as exc:
        return Check("data", FAIL, f"the bundled MNIST sample is damaged: {exc}",
                     "restore it: `git checkout -- featviz/assets` in the course folder, or reinstall "
                     "featviz (`pip install -e .` there).")
    source, tried = _data_source()
    if not source.is_sample:
        return Check("data", OK, source.describe())
    raw = source.root / "MNIST" / "raw"
    if data.offline():
        why = "FEATVIZ_OFFLINE is set, so featviz does not try to download"
        how = "unset FEATVIZ_OFFLINE and run `featviz.load_mnist()` with internet access"
    elif tried:
        why = source.reason or "the download did not work"
        how = "run `featviz.load_mnist()` again with internet access"
    else:
        why = f"no full MNIST under {pretty_path(source.root)} yet; the first `featviz.load_mnist()` tries to " \
              f"download it (20 s at most)"
        how = "run `featviz.load_mnist()` with internet access"
    return Check(
        "data", WARN,
        f"the bundled MNIST sample (10,000 training / 10,000 test images): {why}. "
        "Every lesson works with it; training and accuracies use fewer images",
        f"for the full 70,000 images, {how} (about 12 MB, once, into {pretty_path(raw)}), or copy the four "
        f"MNIST raw files into {pretty_path(raw)}, or point FEATVIZ_DATA_ROOT at a folder that holds MNIST/raw.",
    )


def _check_checkpoints() -> Check:
    from . import models
    from ._assets import ASSETS, verified_asset

    names = [models.PRETRAINED_FILE, models.SNAPSHOTS_FILE]
    try:
        for n in names:
            verified_asset(n)
        model = models.pretrained()
    except (OSError, ValueError, KeyError) as exc:
        return Check("checkpoints", FAIL, f"the pretrained SimpleCNN cannot be used: {exc}",
                     f"restore the files in {pretty_path(ASSETS)}: `git checkout -- featviz/assets` in the course "
                     "folder (or a fresh clone), or reinstall featviz (`pip install -e .` there).")
    acc = (getattr(model, "featviz_meta", {}) or {}).get("test_accuracy")
    acc_text = f", test accuracy {acc:.2%}" if isinstance(acc, (int, float)) else ""
    return Check("checkpoints", OK,
                 f"pretrained SimpleCNN and its training snapshots match their sha256{acc_text}")


_PACKAGES = [
    ("torch", "the network and the hooks"),
    ("torchvision", "MNIST and the ResNet of lesson 08"),
    ("numpy", "arrays"),
    ("matplotlib", "every figure"),
    ("ipywidgets", "the explorer of lesson 05"),
]


def _check_imagenet() -> Check:
    from .imagenet import imagenet_weights_path

    path = imagenet_weights_path("resnet18")
    if path.is_file():
        return Check("imagenet", OK, "ResNet-18's ImageNet weights are in the PyTorch hub cache "
                                     "(lesson 08 uses them)")
    return Check("imagenet", WARN,
                 "ResNet-18's ImageNet weights are not in the PyTorch hub cache: lesson 08 trains a "
                 "small ResNet on MNIST instead",
                 f"to see lesson 08 on ImageNet, run `featviz.imagenet_model()` once with internet "
                 f"access (45 MB, into {pretty_path(path.parent)}).")


def _all_checks() -> list[tuple[str, Callable[[], Check]]]:
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("python", _check_python), ("featviz", _check_featviz)]
    checks += [(dist, functools.partial(_check_package, dist, why)) for dist, why in _PACKAGES]
    checks += [("jupyterlab", _check_jupyterlab), ("widgets", _check_widgets),
               ("anywidget", _check_anywidget),
               ("device", _check_device), ("data", _check_data), ("checkpoints", _check_checkpoints),
               ("imagenet", _check_imagenet)]
    return checks


_PATH = r"(?<![\w/])~?/[^\s,;()`]+"


def _without_machine(check: Check) -> Check:
    """``check`` without this machine's folders and core count (``doctor(paths=False)``)."""
    def clean(text: str) -> str:
        text = re.sub(rf" \({_PATH}\)", "", text)             # "3.11.7 (/opt/.../python)"
        text = re.sub(rf"\bat {_PATH}", "installed", text)     # "extension at /..."
        text = re.sub(rf" from {_PATH}$", "", text)            # "... from ~/.cache/featviz"
        text = re.sub(r", \d+ cores?, torch uses \d+ threads?", "", text)
        # a command keeps working: `/opt/env/bin/python -m pip ...` -> `python -m pip ...`
        return re.sub(_PATH, lambda m: "python" if re.search(r"/python[\d.]*$", m[0]) else "…", text)

    return Check(check.name, check.status, clean(check.detail), clean(check.fix))


def doctor(*, show: bool = True, paths: bool = True) -> Report:
    """Check that this environment can run the course; print what is wrong and how to fix it.

    Parameters
    ----------
    show : print the report (as text; in a Jupyter notebook, as a table).
    paths : False leaves out what is particular to this machine - its folders and
        its number of cores - for a report to paste into a question or commit.

    Returns
    -------
    Report
        The checks, each with ``name``, ``status`` (``"ok"``, ``"warn"``,
        ``"fail"``), ``detail`` and ``fix``; ``report.ok`` is False when any
        check failed.

    Example
    -------
    >>> report = featviz.doctor(show=False)
    >>> report["checkpoints"].status
    'ok'
    """
    results = []
    for name, run in _all_checks():
        try:
            results.append(run())
        except Exception as exc:  # a check must not take the whole report down
            results.append(Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}",
                                 "reinstall featviz and its requirements (`./course lab` does it) "
                                 "and run featviz.doctor() again."))
    if not paths:
        results = [_without_machine(c) for c in results]
    report = Report(results)
    if show:
        shell = _ipython_kernel_shell()
        if shell is not None:
            from IPython.display import display

            display({"text/plain": str(report), "text/html": report._repr_html_()}, raw=True)
            report._shown_at = shell.execution_count
        else:
            print(report)
    return report
