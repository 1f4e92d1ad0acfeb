"""course.py picks PyTorch's build the way a learner's laptop needs it.

On Linux without an NVIDIA GPU it installs the CPU builds of torch and torchvision
from PyTorch's CPU wheel index; where that index cannot be reached, it says so in
one line and leaves them to the default index. These tests serve two PEP 503
indexes on 127.0.0.1 with stand-in wheels (a "CPU" torch and a "default" torch)
and install into a fresh virtual environment, so nothing leaves this machine.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.util
import os
import socket
import subprocess
import sys
import threading
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
VERSION = "2.14.1"   # within any cap a pip config may set on torch


def _launcher():
    spec = importlib.util.spec_from_file_location("course_launcher", ROOT / "course.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheel(folder: Path, name: str, version: str, build: str) -> Path:
    """A minimal pure-Python wheel whose module says which index it came from."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"__version__ = {version!r}\nBUILD = {build!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    files[f"{dist}.dist-info/RECORD"] = "\n".join(record + [f"{dist}.dist-info/RECORD,,"]) + "\n"
    wheel = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in files.items():
            zf.writestr(path, text)
    return wheel


def _index(root: Path, build: str, local: str) -> Path:
    """A PEP 503 simple index under ``root`` with stand-in torch and torchvision."""
    for name in ("torch", "torchvision"):
        project = root / name
        project.mkdir(parents=True)
        wheel = _wheel(project, name, VERSION + local, build)
        (project / "index.html").write_text(
            f'<!DOCTYPE html><html><body><a href="{wheel.name}">{wheel.name}</a></body></html>')
    (root / "index.html").write_text('<a href="torch/">torch</a> <a href="torchvision/">torchvision</a>')
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def indexes(tmp_path_factory):
    """(cpu_url, default_url, down_url): two live indexes and one nobody answers at."""
    root = tmp_path_factory.mktemp("indexes")
    _index(root / "cpu", "cpu", "+cpu")
    _index(root / "default" / "simple", "default", "")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield f"{base}/cpu", f"{base}/default/simple", f"http://127.0.0.1:{_free_port()}/cpu"
    server.shutdown()


@pytest.fixture
def fresh_python(tmp_path, monkeypatch, indexes):
    """A new venv's Python, with pip told to use only the stand-in default index."""
    env = tmp_path / "venv with space"
    venv.EnvBuilder(with_pip=True).create(env)
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)   # no site or user pip settings
    monkeypatch.setenv("PIP_INDEX_URL", indexes[1])
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.delenv("FEATVIZ_TORCH", raising=False)
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _builds(python: Path) -> list[str]:
    code = "import torch, torchvision; print(torch.BUILD, torch.__version__, torchvision.BUILD)"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout.split()


def test_cpu_index_is_used_when_it_is_up(fresh_python, indexes, monkeypatch, capsys):
    monkeypatch.setenv("FEATVIZ_TORCH", "cpu")
    monkeypatch.setenv("FEATVIZ_TORCH_INDEX", indexes[0])
    _launcher().install_torch(fresh_python)
    assert _builds(fresh_python) == ["cpu", VERSION + "+cpu", "cpu"]
    assert "cannot be reached" not in capsys.readouterr().out


def test_default_index_with_one_line_when_the_cpu_index_is_down(fresh_python, indexes, monkeypatch,
                                                                capsys):
    monkeypatch.setenv("FEATVIZ_TORCH", "cpu")
    monkeypatch.setenv("FEATVIZ_TORCH_INDEX", indexes[2])
    launcher = _launcher()
    launcher.install_torch(fresh_python)
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "cannot be reached" in line]
    assert len(lines) == 1 and indexes[2] in lines[0] and "default index" in lines[0], out
    # nothing installed yet: featviz's own install then takes torch from the default index
    subprocess.run([str(fresh_python), "-m", "pip", "install", "-q", "torch", "torchvision"], check=True)
    assert _builds(fresh_python) == ["default", VERSION, "default"]


def test_auto_chooses_by_system_and_gpu(monkeypatch):
    monkeypatch.delenv("FEATVIZ_TORCH_INDEX", raising=False)
    launcher = _launcher()
    cpu = launcher.CPU_INDEX
    assert launcher.torch_index("auto", system="Linux", nvidia=False) == cpu
    assert launcher.torch_index("auto", system="Linux", nvidia=True) is None
    # PyPI's macOS and Windows wheels are CPU builds already
    assert launcher.torch_index("auto", system="Darwin", nvidia=False) is None
    assert launcher.torch_index("auto", system="Windows", nvidia=False) is None
    assert launcher.torch_index("cuda", system="Linux", nvidia=False) is None
    assert launcher.torch_index("cpu", system="Linux", nvidia=True) == cpu
    monkeypatch.setenv("FEATVIZ_TORCH_INDEX", "http://127.0.0.1:1/cpu")
    assert launcher.torch_index("cpu") == "http://127.0.0.1:1/cpu"


def test_an_unknown_torch_choice_is_a_clear_error(monkeypatch, capsys):
    with pytest.raises(SystemExit):
        _launcher().torch_index("rocm")
    assert "FEATVIZ_TORCH is 'rocm'; use auto, cpu or cuda" in capsys.readouterr().err


def test_the_launcher_needs_no_bash():
    """The README's commands are `python course.py ...`; ./course is only a shim for them."""
    text = (ROOT / "course.py").read_text()
    assert "bash" not in text and "/bin/sh" not in text
    assert "course.py" in (ROOT / "course").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "python course.py lab" in readme and "python course.py test" in readme
    assert "python3 course.py test" in (ROOT / ".ci" / "run").read_text()
    help_text = subprocess.run([sys.executable, str(ROOT / "course.py"), "help"], capture_output=True,
                               text=True, check=True).stdout
    assert "course.py lab" in help_text and "course.py test" in help_text
