#!/usr/bin/env python3
"""The featviz course, one command each, on Linux, macOS and Windows:

    python course.py lab     set up .venv if needed, then serve the course in JupyterLab
    python course.py test    set up .venv (with the test tools) if needed, then lint,
                             type-check and run every test

Extra arguments go to jupyter lab / pytest. Running either twice reuses the environment.

Settings (environment variables):
    FEATVIZ_VENV         where the environment lives (default: .venv beside this file)
    FEATVIZ_TORCH        auto (default), cpu or cuda: which PyTorch build to install. auto
                         takes the CPU build on Linux without an NVIDIA GPU (0.2-0.9 GB
                         instead of several GB), and PyPI's default build elsewhere.
    FEATVIZ_TORCH_INDEX  the wheel index for the CPU build (default: PyTorch's CPU index)
    PORT                 JupyterLab's port (default 8888)
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import venv
from pathlib import Path

HERE = Path(__file__).absolute().parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH = ["torch", "torchvision"]
PROBE_TIMEOUT_S = 10
# what the test command checks before pytest: the linter, then the type checker
LINT = [["ruff", "check", "featviz", "tests", "scripts", "benchmarks", "conftest.py", "course.py"],
        ["mypy", "featviz"]]


def say(message: str) -> None:
    print(f"course: {message}", flush=True)


def die(message: str) -> None:
    print(f"course: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def venv_dir() -> Path:
    return Path(os.environ.get("FEATVIZ_VENV") or HERE / ".venv")


def venv_bin(env: Path, name: str) -> Path:
    """A program installed in the environment ``env``, on Windows or elsewhere."""
    if os.name == "nt":
        return env / "Scripts" / (name if name.endswith(".exe") else f"{name}.exe")
    return env / "bin" / name


def run(*command: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], **kwargs)


def pip(python: Path, *args: str) -> subprocess.CompletedProcess:
    return run(python, "-m", "pip", *args)


# -- PyTorch: which build ------------------------------------------------------------------

def has_nvidia_gpu() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia/gpus").is_dir()


def torch_index(mode: str | None = None, system: str | None = None,
                nvidia: bool | None = None) -> str | None:
    """The wheel index to take torch and torchvision from, or None for the default index.

    ``mode`` is FEATVIZ_TORCH: "cpu" always takes the CPU index, "cuda" the default
    index (PyPI's Linux wheels are CUDA builds), "auto" the CPU index on Linux
    without an NVIDIA GPU. PyPI's macOS and Windows wheels are CPU builds already.
    """
    mode = (mode or os.environ.get("FEATVIZ_TORCH") or "auto").strip().lower()
    if mode not in ("auto", "cpu", "cuda"):
        die(f"FEATVIZ_TORCH is {mode!r}; use auto, cpu or cuda")
    index = os.environ.get("FEATVIZ_TORCH_INDEX") or CPU_INDEX
    if mode == "cpu":
        return index
    if mode == "cuda":
        return None
    system = system or platform.system()
    nvidia = has_nvidia_gpu() if nvidia is None else nvidia
    return index if system == "Linux" and not nvidia else None


def index_reachable(index: str) -> str | None:
    """None if ``index`` answers for torch within the probe's time, else why not."""
    url = index.rstrip("/") + "/torch/"
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_S) as reply:
            return None if reply.status == 200 else f"HTTP {reply.status}"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return str(getattr(exc, "reason", exc))


def install_torch(python: Path) -> None:
    """Install torch and torchvision first, from the index ``torch_index()`` chooses.

    Where that index cannot be reached, say so in one line and leave torch to the
    default index (the featviz install that follows pulls it in).
    """
    index = torch_index()
    if index is None:
        return
    why = index_reachable(index)
    if why is None:
        say(f"installing the CPU build of PyTorch from {index}")
        if pip(python, "install", "-q", *TORCH, "--index-url", index).returncode == 0:
            return
        why = "pip could not install from it"
    say(f"the CPU wheel index {index} cannot be reached ({why}); installing PyTorch from the default index instead")


# -- the environment -----------------------------------------------------------------------

def requirements_stamp(env: Path, extra: str) -> Path:
    """A file whose presence says: ``extra`` was installed for these requirements."""
    digest = hashlib.sha256((HERE / "pyproject.toml").read_bytes())
    constraint = Path(os.environ.get("PIP_CONSTRAINT") or os.devnull)
    if constraint.is_file():   # CI's pinned versions
        digest.update(constraint.read_bytes())
    return env / f".featviz-{extra}-{digest.hexdigest()[:12]}"


def setup(extra: str) -> Path:
    """Create the environment if needed and install featviz with ``extra``; its Python."""
    env = venv_dir()
    python = venv_bin(env, "python")
    if not python.exists():
        if sys.version_info < (3, 10):
            die(f"needs Python 3.10 or newer, {platform.python_version()} runs this "
                "(start it with a newer one, e.g. python3.12 course.py ...)")
        say(f"creating the environment in {env} (first run only)")
        try:
            venv.EnvBuilder(with_pip=True).create(env)
        except (OSError, subprocess.CalledProcessError) as exc:
            die(f"could not create a virtual environment ({exc}); on Debian/Ubuntu: "
                "sudo apt-get install python3-venv")
        pip(python, "install", "-q", "--upgrade", "pip")
        install_torch(python)
    # the test tools include the course's packages: either stamp will do for the course
    wanted = [extra] + (["test"] if extra == "course" else [])
    if not any(requirements_stamp(env, e).exists() for e in wanted):
        say(f"installing featviz and its requirements ({extra}) into {env}")
        if pip(python, "install", "-q", "-e", f"{HERE}[{extra}]").returncode != 0:
            die("pip could not install featviz's requirements (see above); run the command again "
                "once that is fixed")
        requirements_stamp(env, extra).touch()
    return python


def ensure_browser() -> None:
    """The browser tests drive Debian's chromium: install it where we can, else say so."""
    chromium = os.environ.get("FEATVIZ_CHROMIUM", "/usr/bin/chromium")
    if Path(chromium).exists() or shutil.which("chromium"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        say("installing chromium for the browser tests")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if run("apt-get", "install", "-y", "-q", "chromium", **quiet).returncode != 0:
            run("apt-get", "update", "-q", **quiet)
            if run("apt-get", "install", "-y", "-q", "chromium", **quiet).returncode != 0:
                say("could not install chromium; the browser tests will be skipped")
        return
    say(f"no chromium at {chromium}; the browser tests will be skipped (install Chromium, "
        "or set FEATVIZ_CHROMIUM to its path)")


# -- the two commands ----------------------------------------------------------------------

def lab(args: list[str]) -> int:
    setup("course")
    port = os.environ.get("PORT", "8888")
    command = [str(venv_bin(venv_dir(), "jupyter")), "lab", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", f"--ServerApp.root_dir={HERE}",
               "--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb"]
    if platform.system() == "Linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        command.append("--no-browser")   # no screen to open a browser on: the URL is printed
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")   # containers and cloud machines often run as root
    say("starting JupyterLab; open the URL printed below (Ctrl-C to stop)")
    return foreground(command + args)


def test(args: list[str]) -> int:
    python = setup("test")
    ensure_browser()
    failed = []
    for tool, *rest in LINT:
        say(f"{tool} {' '.join(rest)}")
        if run(python, "-m", tool, *rest, cwd=HERE).returncode != 0:
            failed.append(tool)
    status = foreground([str(python), "-m", "pytest", "tests", "notebooks", "--nbval-lax",
                         "--nbval-current-env", "--nbval-cell-timeout=600", "-p", "no:cacheprovider",
                         *args])
    if failed:
        say(f"{' and '.join(failed)} found problems (see above)")
    return status or (1 if failed else 0)


def foreground(command: list[str]) -> int:
    """Run ``command`` in this folder until it ends; Ctrl-C stops it, not us first."""
    proc = subprocess.Popen(command, cwd=HERE)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue   # the child got the Ctrl-C too, and ends on its own


def main(argv: list[str]) -> int:
    command, args = (argv[0], argv[1:]) if argv else ("help", [])
    if command == "lab":
        return lab(args)
    if command == "test":
        return test(args)
    if command not in ("help", "-h", "--help"):
        say(f"unknown command {command!r}; the commands are lab and test")
    print(__doc__.split("Settings")[0].strip().split("\n", 1)[1].rstrip())
    return 0 if command in ("help", "-h", "--help") else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
