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


def _wait_http(url: str, proc: subprocess.Popen, timeout: float, log: Path,
               what: str = "JupyterLab") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{what} did not answer {url} within {timeout:.0f} s:\n"
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


@contextlib.contextmanager
def classic_notebook(home: Path, root: Path, jupyter: Path,
                     env: dict[str, str]) -> Iterator[tuple[str, Path]]:
    """The classic Notebook (``notebook<7``, as ipywidgets 7 front ends are) on 127.0.0.1
    serving ``root``: ``jupyter`` is the ``jupyter`` command of the environment to run,
    ``env`` its environment; a private Jupyter home in ``home``. Yields (base URL, log)."""
    for sub in ("config", "data", "runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = dict(env)
    env.update({
        "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTER_PREFER_ENV_PATH": "1",
        "FEATVIZ_OFFLINE": "1", "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
    })
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = home / "notebook.log"
    cmd = [str(jupyter), "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           "--NotebookApp.port_retries=0", "--NotebookApp.token=", "--NotebookApp.password=",
           "--NotebookApp.disable_check_xsrf=True", f"--NotebookApp.notebook_dir={root}",
           "--NotebookApp.allow_root=True"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_http(f"{base}/tree", proc, SERVER_START_S, log, what="Jupyter Notebook")
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


def kernel_pid(base: str, path: str) -> int:
    """The process id of the kernel running ``path``: the process whose command line names
    its connection file (``kernel-<id>.json``)."""
    found = sessions(base, path)
    assert len(found) == 1, f"expected one session for {path}, found {found}"
    needle = f"kernel-{found[0]['kernel']['id']}.json".encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if needle in (proc / "cmdline").read_bytes():
                    return int(proc.name)
            except OSError:
                continue
    raise AssertionError(f"no process runs the kernel of {path} ({needle.decode()})")


@contextlib.contextmanager
def frozen_kernel(base: str, path: str) -> Iterator[int]:
    """The kernel of ``path`` stopped (SIGSTOP) for the block, continued (SIGCONT) after it,
    whatever happens: "busy" as a learner's long cell is, answering no widget message
    (with ipykernel 7's subshells a sleeping cell still answers them)."""
    if not hasattr(signal, "SIGSTOP"):
        pytest.skip("stopping a process needs a POSIX system")
    pid = kernel_pid(base, path)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield pid
    finally:
        os.kill(pid, signal.SIGCONT)


def kernel_is_stopped(pid: int) -> bool:
    """True while the process is stopped (state T in /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] in "Tt"


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


# Run before the page's own scripts: notes when the classic widget manager falls back to
# asking the kernel for its widgets one by one (see classic_widgets_ready).
CLASSIC_WATCH = """(() => {
  const warn = console.warn.bind(console);
  console.warn = (...args) => {
    if (String(args[0]).includes('jupyter.widget.control')) window.__fvWidgetsFallback = true;
    warn(...args);
  };
})()"""


def classic_widgets_ready(page, timeout_ms: float) -> None:
    """Wait until the classic Notebook's page can show widgets, for a page that ran
    :data:`CLASSIC_WATCH` first (``page.add_init_script``): the kernel connected, the
    widget manager made, anywidget's module known to require.js, and the manager done
    restoring the kernel's widgets.

    The last matters: once restored, the manager renders again every widget output
    on the page, removing views still being drawn ("Could not add child view to
    box", and an empty output). With a new kernel it asks for them with a
    ``comm_info`` request, which the kernel answers only after the cells queued
    before it: cells run at once would have their views removed. A ``comm_info``
    round trip of our own, sent after the manager's, ends after it.
    """
    page.wait_for_function(
        """() => window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel
                 && Jupyter.notebook.kernel.is_connected()
                 && Jupyter.notebook.kernel.widget_manager !== undefined
                 && ((requirejs.s.contexts._.config.map || {})['*'] || {}).anywidget !== undefined""",
        timeout=timeout_ms)
    try:  # a new kernel has not imported ipywidgets: no control comm, so the fallback
        page.wait_for_function("() => window.__fvWidgetsFallback === true", timeout=timeout_ms)
    except Exception as exc:
        raise AssertionError("the classic widget manager never asked a new kernel for its "
                             "widgets (no 'jupyter.widget.control' warning): was "
                             "CLASSIC_WATCH added before the page opened?") from exc
    page.evaluate("""() => new Promise(done =>
        Jupyter.notebook.kernel.comm_info('jupyter.widget', () => done(true)))""")
    page.wait_for_timeout(300)   # the manager's own callbacks, queued before ours, have run


def draw_stroke(page, target, points, steps: int = 4) -> None:
    """Draw through ``points`` (fractions of ``target``'s box) with the mouse, button held."""
    box = target.bounding_box()
    xy = [(box["x"] + x * box["width"], box["y"] + y * box["height"]) for x, y in points]
    page.mouse.move(*xy[0])
    page.mouse.down()
    for x, y in xy[1:]:
        page.mouse.move(x, y, steps=steps)
    page.mouse.up()


def canvas_pixels(canvas) -> dict:
    """What a canvas shows: ``colours`` (distinct RGBA values) and ``inked`` (the share of
    pixels unlike its top-left one), and ``url`` (its PNG data URL, to compare)."""
    return canvas.evaluate("""c => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      const seen = new Set(); let inked = 0;
      for (let i = 0; i < d.length; i += 4) {
        const v = ((d[i] << 24) | (d[i + 1] << 16) | (d[i + 2] << 8) | d[i + 3]) >>> 0;
        seen.add(v);
        if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2] || d[i + 3] !== d[3]) inked++;
      }
      return {colours: seen.size, inked: inked / (d.length / 4), url: c.toDataURL(),
              width: c.width, height: c.height};
    }""")


def copy_to_artifacts(files: dict[str, Path]) -> Path | None:
    """Copy ``{name: file}`` into the artifacts folder, if one is set; returns the folder."""
    folder = artifacts_dir()
    if folder is not None:
        for name, file in files.items():
            if Path(file).is_file():
                shutil.copy(file, folder / name)
    return folder
