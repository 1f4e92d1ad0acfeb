"""`pip install featviz` alone: the library works with its core dependencies only.

A fresh venv gets torch, torchvision, numpy, matplotlib, pillow and tqdm (linked
from this Python, see ``tests/_venvs.py``) and the featviz wheel built from this
checkout, installed with ``--no-index``: had featviz's core wrongly required
ipywidgets (or anything else not there), that install would fail. There the
README's "featviz in your own code" example runs and draws its figure, and the
live widgets say how to get them.
"""
from __future__ import annotations

import importlib.metadata as md
import json
import re
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from _venvs import CORE, REPO, Venv, featviz_wheel, make_venv

pytestmark = pytest.mark.timeout(300)
WIDGETS_INSTALL = 'pip install "featviz[widgets]"'


def readme_example() -> str:
    """The python block under "## featviz in your own code" in README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## featviz in your own code\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README.md has no '## featviz in your own code' section"
    block = re.search(r"^```python\s*\n(.*?)^```", section.group(1), re.M | re.S)
    assert block, "the README's 'featviz in your own code' section has no ```python block"
    return block.group(1)


@pytest.fixture(scope="module")
def core(tmp_path_factory) -> tuple[Venv, Path, Path]:
    """(the core-only venv with featviz installed from the wheel, the wheel, a work dir)."""
    wheel = featviz_wheel(tmp_path_factory)
    root = tmp_path_factory.mktemp("core-only")
    venv = make_venv(root / "venv", CORE)
    venv.pip("install", "--no-index", "-q", str(wheel))
    work = root / "work"   # the cwd of every run: no featviz/ folder to import by mistake
    work.mkdir()
    (root / "data").mkdir()
    return venv, wheel, work


def _run(core, code: str) -> dict:
    """Run ``code`` in the core venv (offline, headless); it prints one JSON line last."""
    venv, _, work = core
    done = venv.python_code(code, cwd=work, timeout=240, FEATVIZ_OFFLINE="1", MPLBACKEND="Agg",
                            FEATVIZ_DATA_ROOT=str(work.parent / "data"), OMP_NUM_THREADS="2")
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_pip_sees_the_core_as_installed_and_nothing_else(core):
    venv, _, _ = core
    installed = venv.installed()
    for name in CORE:   # the very distributions of this Python, seen by pip there
        assert installed.get(name) == md.version(name), f"pip in the venv does not see {name}"
    assert installed["featviz"] == "0.1.0"
    for absent in ("ipywidgets", "anywidget", "jupyterlab", "ipykernel", "notebook"):
        assert absent not in installed, f"{absent} should not be in the core-only venv"


def test_the_widget_packages_are_not_importable(core):
    found = _run(core, textwrap.dedent("""
        import importlib.util, json, sys
        import featviz
        print(json.dumps({m: importlib.util.find_spec(m) is not None
                          for m in ("ipywidgets", "anywidget", "jupyterlab", "IPython")}
                         | {"featviz": featviz.__file__, "loaded": sorted(
                            m for m in sys.modules if m.split(".")[0] in ("ipywidgets", "anywidget"))}))
    """))
    for module in ("ipywidgets", "anywidget", "jupyterlab", "IPython"):
        assert not found.pop(module), f"{module} is importable in the core-only venv"
    assert "site-packages" in found["featviz"] and str(REPO) not in found["featviz"], \
        f"featviz was imported from {found['featviz']}, not from the installed wheel"
    assert found["loaded"] == []


def test_the_readme_example_runs_and_draws(core, tmp_path):
    example = readme_example()
    assert "featviz.capture(" in example and "plot_feature_maps" in example
    out = tmp_path / "readme.png"
    found = _run(core, example + textwrap.dedent(f"""
        import json
        from matplotlib.figure import Figure
        assert isinstance(fig, Figure), type(fig)
        fig.savefig({str(out)!r}, dpi=60)
        print(json.dumps({{"conv1": list(acts["conv1"].shape), "conv2": list(acts["conv2"].shape),
                          "axes": len(fig.axes), "image_axes": sum(1 for a in fig.axes if a.images)}}))
    """))
    assert found["conv1"] == [10, 16, 24, 24] and found["conv2"] == [10, 32, 8, 8]
    # the same figure here, from the checkout: same layout (16 maps, the input, a colour bar)
    import featviz

    model = featviz.pretrained()
    images, _ = featviz.digit_examples()
    with featviz.capture(model, ["conv1"]) as acts:
        model(images)
    here = featviz.plot_feature_maps(acts["conv1"][0], image=images[0])
    assert found["image_axes"] == sum(1 for a in here.axes if a.images) >= 17
    assert found["axes"] == len(here.axes)
    pixels = np.asarray(Image.open(out).convert("L"))
    assert pixels.std() > 20, "the README figure is blank"


def test_the_widgets_say_how_to_install_them(core):
    found = _run(core, textwrap.dedent("""
        import json
        import featviz
        out = {}
        for name, call in [("explorer", lambda: featviz.explorer(featviz.pretrained())),
                           ("sketchpad", lambda: featviz.sketchpad())]:
            try:
                call()
                out[name] = None
            except ImportError as exc:
                out[name] = [type(exc).__name__, str(exc), exc.name]
        try:
            import featviz.widgets
            out["module"] = None
        except ModuleNotFoundError as exc:
            out["module"] = [exc.name, getattr(exc, "__notes__", [])]
        print(json.dumps(out))
    """))
    for name in ("explorer", "sketchpad"):
        assert found[name] is not None, f"featviz.{name} did not raise without ipywidgets"
        kind, message, missing = found[name]
        assert kind == "ImportError" and WIDGETS_INSTALL in message, message
        assert missing in ("ipywidgets", "anywidget"), missing   # whichever is imported first
    assert found["module"] is not None and found["module"][0] in ("ipywidgets", "anywidget")


def test_every_public_name_resolves(core):
    found = _run(core, textwrap.dedent("""
        import importlib, json
        import featviz
        out = {}
        for name in featviz.__all__:
            value = getattr(featviz, name)
            if name == "__version__":
                out[name] = value
            elif name in ("explorer", "sketchpad"):
                out[name] = [value.__module__, value.__name__, callable(value)]
            else:
                module = importlib.import_module(f"featviz.{featviz._EXPORTS[name]}")
                out[name] = value is getattr(module, name)
        print(json.dumps(out))
    """))
    import featviz

    assert set(found) == set(featviz.__all__)
    assert found.pop("__version__") == featviz.__version__
    for name in ("explorer", "sketchpad"):   # the stand-in that raises, from featviz/__init__.py
        assert found.pop(name) == ["featviz", name, True]
    assert [name for name, same in found.items() if same is not True] == []


def test_the_wheel_carries_the_assets_and_the_type_marker(core):
    _, wheel, _ = core
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "featviz/py.typed" in names
    assert {"featviz/widgets/explorer.js", "featviz/widgets/sketchpad.js"} <= names
    manifest = json.loads((REPO / "featviz" / "assets" / "manifest.json").read_text())
    shipped = {f"featviz/assets/{name}" for name in manifest["files"]}
    assert shipped, "the asset manifest lists no files"
    assert shipped <= names, f"assets missing from the wheel: {sorted(shipped - names)}"
    assert any(n.startswith("featviz/assets/") and n.endswith(".pt") for n in names)
    assert any(n.startswith("featviz/assets/mnist_sample/") for n in names)
    meta = zipfile.ZipFile(wheel).read("featviz-0.1.0.dist-info/METADATA").decode()
    core_reqs = [line for line in meta.splitlines()
                 if line.startswith("Requires-Dist:") and "extra ==" not in line]
    assert not [r for r in core_reqs if re.search(r"ipywidgets|anywidget|jupyter", r)], core_reqs


def test_a_missing_core_requirement_would_fail_the_install(core, tmp_path):
    """The premise of this file: with --no-index, a wheel needing ipywidgets cannot install
    here (a tiny wheel made for the purpose; the venv is left unchanged)."""
    venv, _, _ = core
    wheel = tmp_path / "needs_widgets-1.0-py3-none-any.whl"
    info = "needs_widgets-1.0.dist-info"
    files = {"needs_widgets.py": "",
             f"{info}/METADATA": "Metadata-Version: 2.1\nName: needs-widgets\nVersion: 1.0\n"
                                 "Requires-Dist: torch\nRequires-Dist: ipywidgets>=7.6\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in [*files, f"{info}/RECORD"]))
    done = venv.pip("install", "--no-index", str(wheel), check=False)
    assert done.returncode != 0
    assert "ipywidgets" in done.stdout + done.stderr
    assert "needs-widgets" not in venv.installed()
