"""`python course.py lab` serves the course: the URL it prints opens /lab and lists the notebooks.

It runs from a clone whose path has a space in it, with this test's own environment as the
course's (it was set up by `course.py test`, so the launcher finds it ready).
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mark_ready(env: Path) -> None:
    """Tell the launcher that ``env`` holds the course's requirements (it runs this test)."""
    spec = importlib.util.spec_from_file_location("course_launcher", ROOT / "course.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    launcher.requirements_stamp(env, "course").touch()


def test_course_lab_serves_the_notebooks(tmp_path):
    port = free_port()
    clone = tmp_path / "my course clone"   # a space in the path must not matter
    clone.symlink_to(ROOT, target_is_directory=True)
    _mark_ready(Path(sys.prefix))
    env = dict(os.environ, PORT=str(port), FEATVIZ_VENV=sys.prefix, HOME=str(tmp_path),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.Popen([sys.executable, str(clone / "course.py"), "lab"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            found = re.search(rf"(http://127\.0\.0\.1:{port}/lab\S*token=\S+)", "".join(lines))
            url = found.group(1) if found else None
            time.sleep(0.5)
        assert url, "no URL printed:\n" + "".join(lines)[-3000:]
        assert "/lab/tree/notebooks/00_start_here.ipynb" in url, "the course opens on lesson 00"
        token = url.split("token=")[1]
        page = urllib.request.urlopen(url, timeout=30)
        assert page.status == 200 and "JupyterLab" in page.read().decode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/notebooks",
                                     headers={"Authorization": f"token {token}"})
        listing = json.load(urllib.request.urlopen(req, timeout=30))
        names = {item["name"] for item in listing["content"]}
        expected = {p.name for p in (ROOT / "notebooks").glob("*.ipynb")}
        assert expected and expected <= names
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
