"""The explorer in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Starts JupyterLab on a free 127.0.0.1 port, serving a copy of ``notebooks/``
(so nothing the browser does can change the course files), opens
``05_explorer.ipynb``, runs all cells from the Run menu, then moves the filter
slider with the keyboard and changes the layer, checking each time that the
explorer shows a new image. It reports the slider-to-new-image time seen in
the browser and saves a screenshot.

Needs Chromium (``/usr/bin/chromium``, or the path in ``FEATVIZ_CHROMIUM``) and
the ``playwright`` Python package; without them the test is skipped, unless
``FEATVIZ_REQUIRE_BROWSER=1`` (as in CI), where it fails instead. Set
``FEATVIZ_ARTIFACTS`` to a folder (or to 1 for ``artifacts/``) to keep the
screenshot and the timings.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "05_explorer.ipynb"
SERVER_START_S = 60   # JupyterLab answers /lab
BROWSER_S = 150       # everything in the browser, from opening the page to the screenshot
STEP_S = 20           # one slider or dropdown step
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]


def _missing(reason: str) -> None:
    if os.environ.get("FEATVIZ_REQUIRE_BROWSER", "").strip() in ("1", "true", "yes"):
        pytest.fail(f"FEATVIZ_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _chromium() -> str:
    path = os.environ.get("FEATVIZ_CHROMIUM") or "/usr/bin/chromium"
    if not Path(path).is_file():
        _missing(f"no Chromium at {path} (install Debian's chromium, or set FEATVIZ_CHROMIUM "
                 f"to a Chromium/Chrome executable)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


@pytest.fixture
def chromium() -> str:
    """The Chromium to drive; skips (or fails, in CI) when it or Playwright is missing."""
    path = _chromium()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright)")
    return path


@pytest.fixture
def lab(tmp_path, chromium):
    """A JupyterLab server on a copy of notebooks/; yields (base URL, served root, log file)."""
    root = tmp_path / "root"
    shutil.copytree(REPO / "notebooks", root / "notebooks")
    for sub in ("config", "runtime", "settings", "workspaces"):
        (tmp_path / sub).mkdir()
    env = dict(os.environ)
    env.update({
        # a private Jupyter home: no user settings, no saved workspace, no leftovers
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "FEATVIZ_OFFLINE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "PYTHONUNBUFFERED": "1",
    })
    settings = {
        # no "get notified about Jupyter news?" toast over the page, no update check
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        # never write to the served files, and no "Select Kernel" dialog
        "docmanager-extension/plugin": {"autosave": False},
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
    }
    for plugin, values in settings.items():
        file = tmp_path / "settings" / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(values))
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "jupyterlab.log"
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
        f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
        f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
        "--ServerApp.terminals_enabled=False",
        "--ServerApp.allow_root=True",  # CI containers often run as root
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_http(f"{base}/lab", proc, SERVER_START_S, log)
        yield base, root, log
    finally:
        _stop(proc, base)


def _artifacts_dir() -> Path | None:
    value = os.environ.get("FEATVIZ_ARTIFACTS", "").strip()
    if not value:
        return None
    folder = REPO / "artifacts" if value.lower() in ("1", "true", "yes") else Path(value)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Records, in the page, when a key goes down and when the explorer's <img> gets a
# new src and finishes loading it.
_WATCH = """() => {
  const img = document.querySelector('img.featviz-explorer-image');
  const w = {key: null, src: null, load: null};
  window.__featviz = w;
  document.addEventListener('keydown', () => { if (w.key === null) w.key = performance.now(); },
                            {capture: true, once: true});
  new MutationObserver(() => { if (w.src === null) w.src = performance.now(); })
    .observe(img, {attributes: true, attributeFilter: ['src']});
  img.addEventListener('load', () => { if (w.load === null) w.load = performance.now(); },
                       {once: true});
}"""


def _start_session(base: str, path: str, timeout: float) -> None:
    body = json.dumps({"path": path, "name": Path(path).name, "type": "notebook",
                       "kernel": {"name": "python3"}}).encode()
    req = urllib.request.Request(f"{base}/api/sessions", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        assert r.status in (200, 201), f"could not start a kernel: HTTP {r.status}"


def _run_complete(page) -> bool:
    """Every code cell has run: each prompt shows a number, none shows [*]."""
    # text_content, not inner_text: cells scrolled out of view are not laid out
    prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
    return bool(prompts) and all(re.fullmatch(r"\[\d+\]:", p.strip()) for p in prompts)


def _sessions(base: str, path: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/api/sessions", timeout=10) as r:
        return [x for x in json.load(r) if x.get("path") == path]


def _wait_until(check, timeout: float, page) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        _accept_dialog(page)
        page.wait_for_timeout(250)
    return False


def _wait_connected(base: str, path: str, page, timeout: float) -> None:
    """Until one session of ``path`` has a kernel the page is connected to, for a second."""
    def connected() -> bool:
        found = _sessions(base, path)
        return len(found) == 1 and found[0]["kernel"].get("connections", 0) >= 1 \
            and found[0]["kernel"].get("execution_state") == "idle"

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _wait_until(connected, deadline - time.monotonic(), page):
            page.wait_for_timeout(1000)
            if connected():
                return
    raise AssertionError(f"the page did not connect to a kernel for {path} within {timeout:.0f} s: "
                         f"sessions {_sessions(base, path)}")


def _accept_dialog(page) -> None:
    """Accept a dialog in the way (such as "Select Kernel"), if one is open."""
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()


def _wait_for_explorer(page, timeout: float):
    """The explorer's <img> once it shows a picture; dialogs in the way are accepted."""
    deadline = time.monotonic() + timeout
    selector = "img.featviz-explorer-image[src^='blob:']"
    while time.monotonic() < deadline:
        found = page.query_selector(selector)
        if found is not None:
            return found
        _accept_dialog(page)
        failed = page.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
        if failed.count():
            raise AssertionError(f"a notebook cell failed:\n{failed.first.inner_text()[-2000:]}")
        page.wait_for_timeout(250)
    raise AssertionError(f"the explorer did not appear within {timeout:.0f} s of Run All "
                         f"(the notebook runs on the bundled data in well under a minute)")


class _Deadline:
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


@pytest.mark.timeout(SERVER_START_S + BROWSER_S + 60)
def test_explorer_in_jupyterlab(chromium, lab, tmp_path, capsys, record_property):
    from playwright.sync_api import sync_playwright

    base, root, log = lab
    original = REPO / "notebooks" / NOTEBOOK
    assert original.is_file(), f"{original} is missing"
    before = _sha(original)
    shot = tmp_path / "explorer.png"
    timings: dict[str, object] = {}

    with sync_playwright() as pw:
        problems: list[str] = []
        left = _Deadline(BROWSER_S)
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS,
                                     timeout=left.ms(60))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(STEP_S * 1000)
            page.on("pageerror", lambda e: problems.append(str(e)))
            # start the notebook's kernel first, so that the page finds it running instead
            # of racing to start (and sometimes replace) one while it loads
            _start_session(base, f"notebooks/{NOTEBOOK}", left(60))
            page.goto(f"{base}/lab/tree/notebooks/{NOTEBOOK}", timeout=left.ms(60))
            page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=left.ms(60))
            # the page must be connected to its kernel before "Run All": while it is still
            # settling its session it may replace the kernel and drop queued cells
            page.wait_for_selector(".jp-NotebookPanel-toolbar [data-status='idle']",
                                   timeout=left.ms(60))
            _wait_connected(base, f"notebooks/{NOTEBOOK}", page, left(45))

            def run_all() -> None:
                page.click("li.lm-MenuBar-item:has-text('Run')")
                page.click('li.lm-Menu-item[data-command="runmenu:run-all"]')

            run_all()
            prompts = page.locator(".jp-CodeCell .jp-InputPrompt")
            if not _wait_until(lambda: any(re.fullmatch(r"\[(\d+|\*)\]:", t.strip())
                                           for t in prompts.all_text_contents()), left(20), page):
                _wait_connected(base, f"notebooks/{NOTEBOOK}", page, left(30))
                run_all()  # the first request was lost while the page settled

            img = _wait_for_explorer(page, left(120))
            # later cells drive the explorer too: let them finish before touching it
            if not _wait_until(lambda: _run_complete(page), left(120), page):
                raise AssertionError("Run All did not finish in the time left")
            widget = page.locator(".featviz-explorer").first
            widget.scroll_into_view_if_needed()
            first_src = img.get_attribute("src")

            # the filter slider, by keyboard: focus its handle, press the right arrow
            handle = page.locator(".featviz-filter-slider .noUi-handle").first
            readout = page.locator(".featviz-filter-slider .widget-readout").first
            start_value = readout.inner_text().strip()
            delays, srcs = [], [first_src]
            for _ in range(5):
                # step towards the side with room (the notebook may leave it at the end)
                now = float(handle.get_attribute("aria-valuenow") or 0)
                top = float(handle.get_attribute("aria-valuemax") or 0)
                key = "ArrowRight" if now < top else "ArrowLeft"
                page.evaluate(_WATCH)
                handle.focus()
                page.keyboard.press(key)
                page.wait_for_function("() => window.__featviz.load !== null",
                                       timeout=left.ms(STEP_S))
                w = page.evaluate("() => window.__featviz")
                delays.append(w["load"] - w["key"])
                srcs.append(img.get_attribute("src"))
                assert srcs[-1] != srcs[-2], "the filter slider moved but the image did not change"
            assert readout.inner_text().strip() != start_value
            timings["slider_to_new_image_ms"] = {"median": statistics.median(delays),
                                                 "all": [round(d, 1) for d in delays]}

            # the layer dropdown: the image changes again, and so does the slider's range
            select = page.locator(".featviz-layer select").first
            current = select.input_value()
            # an ipywidgets <option> carries the label ("conv2  (32 maps 8×8)") as its value
            options = [o for o in select.locator("option").evaluate_all(
                "els => els.map(e => e.value)") if o != current]
            assert options, "the layer dropdown offers only one layer"
            target = next((o for o in options if o.startswith(("conv2", "conv1"))), options[-1])
            page.evaluate(_WATCH)
            t0 = time.monotonic()
            select.select_option(target)
            page.wait_for_function("() => window.__featviz.load !== null",
                                   timeout=left.ms(STEP_S))
            timings["layer_change_s"] = round(time.monotonic() - t0, 3)
            assert img.get_attribute("src") != srcs[-1], "the layer changed but the image did not"
            maps = int(re.search(r"\((\d+) maps", target).group(1))
            assert _wait_until(lambda: handle.get_attribute("aria-valuemax") in
                               (str(maps - 1), f"{maps - 1}.0"), left(STEP_S), page), (
                f"after choosing {target!r} the filter slider ends at "
                f"{handle.get_attribute('aria-valuemax')}, not {maps - 1}")

            page.wait_for_timeout(300)  # let the text beside the image settle
            widget.screenshot(path=str(shot))
            page.screenshot(path=str(tmp_path / "page.png"), full_page=False)
            assert not [p for p in problems if "featviz" in p.lower()], problems
        except Exception:
            # leave evidence: what the page looked like and what the server said
            with contextlib.suppress(Exception):
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                folder = _artifacts_dir()
                if folder is not None:
                    shutil.copy(tmp_path / "failure.png", folder / "explorer_failure.png")
            print(f"server log (tail):\n{log.read_text()[-4000:]}\n"
                  f"page errors: {problems}\nscreenshot: {tmp_path / 'failure.png'}")
            raise
        finally:
            browser.close()

    record_property("slider_to_new_image_ms", timings["slider_to_new_image_ms"])
    with capsys.disabled():
        ms = timings["slider_to_new_image_ms"]
        print(f"\n[browser] slider-to-new-image: median {ms['median']:.0f} ms "
              f"(all: {ms['all']}); layer change {timings['layer_change_s']} s; "
              f"screenshot {shot}")
    folder = _artifacts_dir()
    if folder is not None:
        shutil.copy(shot, folder / "explorer.png")
        (folder / "browser_timings.json").write_text(json.dumps(timings, indent=2))
    assert shot.stat().st_size > 10_000
    assert _sha(original) == before, "the browser run changed the course notebook"
