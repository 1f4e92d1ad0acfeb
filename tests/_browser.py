"""Shared pieces of the browser tests: a private JupyterLab server, headless Chromium,
and the waits that make driving a notebook reliable.

Used by the ``test_browser*.py`` files (``from _browser import ...``; pytest puts
this folder on ``sys.path``). Needs Chromium (``/usr/bin/chromium``, or the path
in ``FEATVIZ_CHROMIUM``) and the ``playwright`` Python package; without them a
test is skipped, unless ``FEATVIZ_REQUIRE_BROWSER=1`` (as in CI), where it fails
instead. ``FEATVIZ_ARTIFACTS`` names a folder (or 1 for ``artifacts/``) that
keeps screenshots and timings.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVER_START_S = 60   # JupyterLab answers /lab
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


# --------------------------------------------------------------------------- the browser

def missing(reason: str) -> None:
    """Skip the test, or fail it when ``FEATVIZ_REQUIRE_BROWSER=1``."""
    if os.environ.get("FEATVIZ_REQUIRE_BROWSER", "").strip() in ("1", "true", "yes"):
        pytest.fail(f"FEATVIZ_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def find_chromium() -> str:
    """The Chromium to drive; skips (or fails, in CI) when it or Playwright is missing."""
    path = os.environ.get("FEATVIZ_CHROMIUM") or "/usr/bin/chromium"
    if not Path(path).is_file():
        missing(f"no Chromium at {path} (install Debian's chromium, or set FEATVIZ_CHROMIUM "
                f"to a Chromium/Chrome executable)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the playwright package is not installed (pip install playwright)")
    return path


def launch(pw, chromium: str, timeout_ms: float):
    """A headless Chromium from Playwright's ``sync_playwright()`` handle."""
    return pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                              timeout=timeout_ms)


def artifacts_dir() -> Path | None:
    """The folder named by ``FEATVIZ_ARTIFACTS`` (created), or None when unset."""
    value = os.environ.get("FEATVIZ_ARTIFACTS", "").strip()
    if not value:
        return None
    folder = REPO / "artifacts" if value.lower() in ("1", "true", "yes") else Path(value)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Deadline:
    """One time budget for a sequence of waits: each gets what is left, at most its cap."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def __call__(self, cap: float) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise AssertionError("the browser test ran out of its time budget")
        return min(cap, left)

    def ms(self, cap: float) -> float:
        return 1000 * self(cap)


# --------------------------------------------------------------------------- the server

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer {url} within {timeout:.0f} s:\n"
                         f"{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, base: str) -> None:
    """Stop the server and every process it started (kernels run in their own session)."""
    try:
        import psutil

        family = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing or the server already gone
        family = []
    if proc.poll() is None:
        with contextlib.suppress(Exception):  # a clean shutdown also stops the kernels
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST")
            urllib.request.urlopen(req, timeout=5).close()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    for child in family:
        with contextlib.suppress(Exception):
            if child.is_running():
                child.kill()


def _settings(folder: Path) -> None:
    settings = {
        # no "get notified about Jupyter news?" toast over the page, no update check
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # never write to the served files, and no "Select Kernel" dialog
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
    }
    for plugin, values in settings.items():
        file = folder / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values))


@contextlib.contextmanager
def jupyter_lab(home: Path, root: Path) -> Iterator[tuple[str, Path]]:
    """A JupyterLab server on 127.0.0.1 serving ``root``, with a private Jupyter home in
    ``home`` (no user settings, no saved workspace); yields (base URL, log file)."""
    for sub in ("config", "runtime", "settings", "workspaces"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "FEATVIZ_OFFLINE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
    })
    _settings(home / "settings")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}",
        # offline and quiet: no news feed, no update check, no extension manager fetch
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        f"--LabApp.user_settings_dir={home / 'settings'}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",  # CI containers often run as root
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_http(f"{base}/lab", proc, SERVER_START_S, log)
        yield base, log
    finally:
        _stop(proc, base)


# --------------------------------------------------------------------------- the notebook

def start_session(base: str, path: str, timeout: float) -> None:
    """Start the notebook's kernel through the REST API before the page opens it."""
    body = json.dumps({"path": path, "name": Path(path).name, "type": "notebook",
                       "kernel": {"name": "python3"}}).encode()
    req = urllib.request.Request(f"{base}/api/sessions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        assert r.status in (200, 201), f"could not start a kernel: HTTP {r.status}"


def sessions(base: str, path: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=10) as r:
        return [x for x in json.load(r) if x.get("path") == path]


def accept_dialog(page) -> None:
    """Accept a dialog in the way (such as "Select Kernel"), if one is open."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()


def wait_until(check, timeout: float, page) -> bool:
    """Poll ``check()`` every 250 ms, accepting dialogs in the way; True once it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        accept_dialog(page)
        page.wait_for_timeout(250)
    return False


def wait_connected(base: str, path: str, page, timeout: float) -> None:
    """Until one session of ``path`` has a kernel the page is connected to, for a second."""
    def connected() -> bool:
        found = sessions(base, path)
        return len(found) == 1 and found[0]["kernel"].get("connections", 0) >= 1 \
            and found[0]["kernel"].get("execution_state") == "idle"

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if wait_until(connected, deadline - time.monotonic(), page):
            page.wait_for_timeout(1000)
            if connected():
                return
    raise AssertionError(f"the page did not connect to a kernel for {path} within {timeout:.0f} s: "
                         f"sessions {sessions(base, path)}")


def run_complete(page) -> bool:
    """Every code cell has run: each prompt shows a number, none shows [*]. A cell whose
    input is collapsed (the lessons' tagged check cells) shows an empty prompt: skipped."""
    # text_content, not inner_text: cells scrolled out of view are not laid out
    prompts = [p.strip() for p in page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()]
    shown = [p for p in prompts if p]
    return bool(shown) and all(re.fullmatch(r"\[\d+\]:", p) for p in shown)


def cell_error(page) -> str | None:
    """The text of the first error output on the page, if a cell failed."""
    failed = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    return failed.first.inner_text()[-2000:] if failed.count() else None


def open_and_run_all(page, base: str, path: str, left: Deadline) -> None:
    """Open the notebook at ``path`` (relative to the served root), wait for its kernel,
    and Run All from the Run menu (again, if the first request was lost)."""
    # start the kernel first, so that the page finds it running instead of racing to
    # start (and sometimes replace) one while it loads
    start_session(base, path, left(60))
    page.goto(f"{base}/lab/tree/{path}", timeout=left.ms(60))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=left.ms(60))
    # connected before "Run All": a page still settling its session may drop queued cells
    page.wait_for_selector(".jp-NotebookPanel-toolbar [data-status='idle']", timeout=left.ms(60))
    wait_connected(base, path, page, left(45))

    def run_all() -> None:
        page.click("li.lm-MenuBar-item:has-text('Run')")
        page.click('li.lm-Menu-item[data-command="runmenu:run-all"]')

    run_all()
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
    if not wait_until(lambda: any(re.fullmatch(r"\[(\d+|\*)\]:", t.strip())
                                  for t in prompts.all_text_contents()), left(20), page):
        wait_connected(base, path, page, left(30))
        run_all()


def copy_to_artifacts(files: dict[str, Path]) -> Path | None:
    """Copy ``{name: file}`` into the artifacts folder, if one is set; returns the folder."""
    folder = artifacts_dir()
    if folder is not None:
        for name, file in files.items():
            if Path(file).is_file():
                shutil.copy(file, folder / name)
    return folder
