"""The course on a Colab-like kernel: ipywidgets 7.7.1, its own torch, no featviz.

A fresh venv gets this Python's torch stack (linked, see ``tests/_venvs.py``) and,
from PyPI, ipywidgets 7.7.1 with what nbval needs; featviz is not installed.
Lesson 00's setup cell, taken from the notebook, must install featviz from the
wheel of this checkout (``FEATVIZ_SOURCE=file://...``) and keep ipywidgets 7.7.1
and the same torch. Then lessons 00 and 05 pass under nbval in that venv, from
a copy outside the checkout (so the checkout's ``featviz/`` cannot be imported
instead of the installed one), and the explorer's controls are linked to its
view in the browser (``jslink``), as on ipywidgets 8.

The venv also gets the classic Notebook 6.5 (``notebook<7``: Colab's front end is
not JupyterLab, and a plain ``pip install ipywidgets==7.7.1`` would pull in
Notebook 7 and JupyterLab 4) and ``jupyterlab_widgets<2``, the JupyterLab front
end that matches ipywidgets 7 (pip would pick 3.x, made for ipywidgets 8, and
``featviz.doctor()`` in lesson 00 rightly fails on that pair).

Needs PyPI: skipped when it cannot be reached, failed instead when
``FEATVIZ_REQUIRE_BROWSER=1`` (as in CI).
"""
from __future__ import annotations

import json
import re
import shutil
import textwrap
from types import SimpleNamespace

import pytest
from _browser import missing
from _venvs import CORE, REPO, featviz_wheel, make_venv, registry_has

pytestmark = pytest.mark.timeout(600)
IPYWIDGETS = "7.7.1"
COLAB = (f"ipywidgets=={IPYWIDGETS}", "notebook<7", "jupyterlab_widgets<2",
         "nbval", "pytest", "ipykernel", "pytest-timeout")
LESSONS = ("00_start_here.ipynb", "05_explorer.ipynb")


def setup_cell(lesson: str = "00_start_here.ipynb") -> str:
    """The source of a lesson's setup cell (its first code cell, cell 1)."""
    cells = json.loads((REPO / "notebooks" / lesson).read_text(encoding="utf-8"))["cells"]
    cell = cells[1]
    assert cell["cell_type"] == "code", f"{lesson}: cell 1 is not the setup cell"
    source = "".join(cell["source"])
    assert "FEATVIZ_SOURCE" in source and "pip" in source, f"{lesson}: cell 1 is not the setup cell"
    return source


@pytest.fixture(scope="module")
def colab(tmp_path_factory) -> SimpleNamespace:
    """The Colab-like venv (no featviz yet), the featviz wheel and a work folder."""
    wheel = featviz_wheel(tmp_path_factory)
    root = tmp_path_factory.mktemp("colab")
    venv = make_venv(root / "venv", CORE)
    why = registry_has(venv, "ipywidgets", IPYWIDGETS)
    if why:
        missing(why)
    venv.pip("install", "-q", *COLAB, timeout=500)
    work = root / "work"   # the cwd of every run: no featviz/ folder to import by mistake
    work.mkdir()
    (root / "data").mkdir()
    for sub in ("ipython", "jupyter-config", "jupyter-data"):   # no user profile or config
        (root / sub).mkdir()
    env = dict(FEATVIZ_OFFLINE="1", MPLBACKEND="Agg", FEATVIZ_DATA_ROOT=str(root / "data"),
               OMP_NUM_THREADS="2", IPYTHONDIR=str(root / "ipython"),
               JUPYTER_CONFIG_DIR=str(root / "jupyter-config"),
               JUPYTER_DATA_DIR=str(root / "jupyter-data"))
    return SimpleNamespace(venv=venv, wheel=wheel, root=root, work=work, env=env)


def _run(colab, code: str, timeout: float = 240) -> dict:
    """Run ``code`` in the venv (offline, headless); it prints one JSON line last."""
    done = colab.venv.python_code(code, cwd=colab.work, timeout=timeout, **colab.env)
    return json.loads(done.stdout.strip().splitlines()[-1])


_VERSIONS = textwrap.dedent("""
    import importlib.util, json
    out = {"featviz": importlib.util.find_spec("featviz") is not None}
    import ipywidgets, torch
    out.update(ipywidgets=ipywidgets.__version__, torch=torch.__version__, torch_file=torch.__file__)
    if out["featviz"]:
        import anywidget, featviz
        out.update(featviz_file=featviz.__file__, anywidget=anywidget.__version__)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def installed(colab) -> SimpleNamespace:
    """Lesson 00's setup cell, run once in the venv with FEATVIZ_SOURCE=the wheel."""
    import torch

    before = _run(colab, _VERSIONS)
    assert not before["featviz"], "featviz must not be installed before the setup cell runs"
    assert before["ipywidgets"] == IPYWIDGETS and before["torch"] == torch.__version__
    script = colab.work / "setup_cell.py"
    script.write_text(setup_cell())
    done = colab.venv.run(["python", script], cwd=colab.work, timeout=400,
                          env=colab.venv.env(**colab.env, FEATVIZ_SOURCE=colab.wheel.as_uri()))
    return SimpleNamespace(before=before, after=_run(colab, _VERSIONS), output=done.stdout)


def test_the_setup_cell_installs_featviz_and_keeps_ipywidgets_and_torch(colab, installed):
    import torch

    after = installed.after
    assert installed.output.strip() == "", f"the setup cell said:\n{installed.output}"
    assert after["featviz"], "the setup cell did not install featviz"
    site = str(colab.venv.site_packages())
    assert after["featviz_file"].startswith(site), \
        f"featviz comes from {after['featviz_file']}, not from the venv ({site})"
    assert after["ipywidgets"] == IPYWIDGETS, "the setup cell replaced Colab's ipywidgets"
    assert after["torch"] == torch.__version__, "the setup cell replaced the torch that was there"
    assert after["torch_file"] == installed.before["torch_file"], "torch was reinstalled"
    assert str(colab.venv.links) in after["torch_file"]
    # the same setup cell in every lesson, so that each runs on its own on Colab
    for lesson in LESSONS:
        assert setup_cell(lesson) == setup_cell(), f"{lesson}'s setup cell differs from lesson 00's"


def test_lessons_00_and_05_pass_under_nbval(colab, installed):
    run = colab.root / "nbval"
    (run / "notebooks").mkdir(parents=True)
    for lesson in LESSONS:
        shutil.copy(REPO / "notebooks" / lesson, run / "notebooks" / lesson)
    # a rootdir of its own: no conftest.py, no pyproject.toml of the checkout's
    (run / "pytest.ini").write_text("[pytest]\naddopts = -ra\n")
    done = colab.venv.run(
        ["python", "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "--nbval-cell-timeout=240", "--timeout=500", "-q",
         *[f"notebooks/{lesson}" for lesson in LESSONS]],
        cwd=run, timeout=540, check=False, env=colab.venv.env(**colab.env))
    tail = (done.stdout + done.stderr)[-6000:]
    assert done.returncode == 0, f"nbval failed in the ipywidgets {IPYWIDGETS} venv:\n{tail}"
    passed = re.search(r"(\d+) passed", done.stdout)
    assert passed and int(passed.group(1)) >= 40 and " failed" not in done.stdout, tail


def test_the_explorer_is_linked_and_the_sketchpad_draws(colab, installed):
    found = _run(colab, textwrap.dedent("""
        import json
        import ipywidgets
        from IPython.core.interactiveshell import InteractiveShell
        from IPython.utils.capture import capture_output
        import featviz

        ex = featviz.explorer(featviz.pretrained())
        v = ex.canvas
        pairs = [(ex.layer_dropdown, "index", "layer_index"), (ex.filter_slider, "value", "channel"),
                 (ex.view, "index", "view_index"), (ex.norm, "index", "scale_index"),
                 # the browser engine: every other control too
                 (ex.image_slider, "value", "image_index"), (ex.time_slider, "index", "snapshot_index"),
                 (ex.digit_chooser, "index", "digit_index"),
                 *[(w, "value", name) for name, w in ex.perturb_controls.items()]]
        links = []
        for (control, name, trait), link in zip(pairs, ex._links):
            state = link.get_state()
            links.append({
                "kind": type(link).__name__,
                "objects": link.source == (control, name) and link.target == (v, trait),
                "synced": [list(state["source"]), list(state["target"])] == [
                    ["IPY_MODEL_" + control.model_id, name], ["IPY_MODEL_" + v.model_id, trait]],
                "alive": link.comm is not None})
        tooltip = ex.perturb_controls["erase"]
        pad = featviz.sketchpad()
        pad.draw([(0.5, 0.15), (0.5, 0.85)])
        InteractiveShell.instance()
        with capture_output() as shown:
            pad._ipython_display_()
        bundle = shown.outputs[0].data if shown.outputs else {}
        print(json.dumps({
            "ok": ex.ok, "links": links, "n_links": len(ex._links), "n_pairs": len(pairs),
            "engine": ex.engine,
            "filter_control": v.get_state()["filter_control"] == "IPY_MODEL_" + ex.filter_slider.model_id,
            "tooltip": getattr(tooltip, "description_tooltip", None),
            "prediction": pad.prediction,
            "shown": bundle.get("application/vnd.jupyter.widget-view+json", {}).get("model_id"),
            "view": pad._view.model_id, "chooser_in_view": pad.layer_dropdown in pad._view.children,
            "text": bundle.get("text/plain"),
            "ipywidgets": ipywidgets.__version__}))
    """))
    assert found["ipywidgets"] == IPYWIDGETS
    assert found["ok"] and found["engine"] == "browser"
    assert found["n_links"] == found["n_pairs"] == 13
    for link in found["links"]:
        assert link == {"kind": "Link", "objects": True, "synced": True, "alive": True}, found["links"]
    assert found["filter_control"], "the view does not know the filter slider"
    assert found["tooltip"] == "side of a square erased at the centre, in pixels"
    assert found["prediction"] == 1, "a vertical stroke on the sketchpad is a 1"
    # shown in a notebook: the view with the layer chooser above the pad, and clean text
    assert found["shown"] == found["view"] and found["chooser_in_view"]
    assert found["text"].startswith("featviz sketchpad")
