"""Lesson 08's ImageNet cells, run offline: with weights in the torch cache they take the photo
path (predictions, filters, maps, Grad-CAM); without them they say so once and draw nothing.

The cells tagged ``imagenet`` in notebooks/08_beyond_mnist.ipynb are executed after the
lesson's first cell (its imports), with ``TORCH_HOME`` pointing at a temporary cache. The
weights put there are a seeded random ResNet-18's, a stand-in of the right shapes, so the
loading code itself is exercised without a network.
"""
from __future__ import annotations

import ast
import contextlib
import io
from pathlib import Path

import nbformat
import pytest
import torch

torchvision = pytest.importorskip("torchvision")
matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
from matplotlib.figure import Figure  # noqa: E402

from featviz.imagenet import imagenet_weights_path  # noqa: E402

LESSON = Path(__file__).resolve().parents[1] / "notebooks" / "08_beyond_mnist.ipynb"


def _cells() -> list[str]:
    """The lesson's first code cell (setup), then every cell tagged ``imagenet``, in order."""
    code = [c for c in nbformat.read(LESSON, as_version=4).cells if c.cell_type == "code"]
    tagged = [c for c in code[2:] if "imagenet" in c.metadata.get("tags", [])]
    return [code[1].source] + [c.source for c in tagged]   # code[0] is the setup cell


def _run(source: str, ns: dict, shown: list) -> str:
    """Execute one cell as a notebook would (its last expression is shown); return its prints."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith("%")]
    tree = ast.parse("\n".join(lines))
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(tree, "<cell>", "exec"), ns)
        if last is not None:
            shown.append(eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns))
        ns["display"] = shown.append        # the setup cell imports IPython's; collect instead
    return out.getvalue()


def _lesson(hub_home: Path, monkeypatch) -> tuple[dict, list, list[str]]:
    monkeypatch.setenv("TORCH_HOME", str(hub_home))
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")          # the cache must be enough
    ns: dict = {"__name__": "lesson08"}
    shown: list = []
    prints = [_run(src, ns, shown) for src in _cells()]
    return ns, shown, prints


@pytest.fixture
def figures_closed():
    import matplotlib.pyplot as plt

    plt.close("all")
    yield
    plt.close("all")


def _pyplot_titles() -> list[str]:
    import matplotlib.pyplot as plt

    return [ax.get_title() for n in plt.get_fignums() for ax in plt.figure(n).axes]


def test_the_lesson_tags_its_imagenet_cells():
    sources = _cells()[1:]
    assert any("featviz.imagenet_model(" in s for s in sources)
    assert any("featviz.grad_cam(resnet" in s for s in sources)
    assert any("plot_filters(resnet.conv1" in s for s in sources)


def test_with_weights_in_the_torch_cache_the_photo_path_runs(tmp_path, monkeypatch, figures_closed):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(0)
    stand_in = torchvision.models.resnet18(weights=None).state_dict()
    path = imagenet_weights_path("resnet18")
    path.parent.mkdir(parents=True)
    torch.save(stand_in, path)

    ns, shown, prints = _lesson(tmp_path / "torch", monkeypatch)

    assert prints[1].strip() == "ResNet-18 with its ImageNet weights (from the cache)."
    model = ns["imagenet"].model
    assert ns["resnet"] is model
    assert all(torch.equal(v, stand_in[k]) for k, v in model.state_dict().items())
    top5 = [p for p in prints if p.count("%") == 5]
    assert len(top5) == 1, prints
    names = [line.split("%", 1)[1].strip() for line in top5[0].strip().splitlines() if "%" in line]
    assert len(names) == 5 and set(names) <= set(ns["imagenet"].classes)
    assert ns["imagenet"].classes[ns["target"]] == names[0]

    figures = [f for f in shown if isinstance(f, Figure)]
    titles = [f.texts[0].get_text() for f in figures if f.texts]
    assert _pyplot_titles() == ["What the network sees: the 224 x 224 crop"]   # the photo
    assert any(t.startswith("conv1: 64 filters") for t in titles)
    assert any(t.startswith("conv1: the 16 most active") for t in titles)
    assert any(t.startswith("layer4: the 32 most active") for t in titles)
    assert f"Grad-CAM for '{names[0]}', placed by receptive field" in titles
    cam = ns["cam"]
    assert cam.shape == (1, 224, 224) and (cam >= 0).all() and cam.max() > 0


def test_without_weights_the_cells_say_so_once_and_draw_no_network_figure(
        tmp_path, monkeypatch, figures_closed):
    ns, shown, prints = _lesson(tmp_path / "empty", monkeypatch)

    assert ns["imagenet"] is None
    assert prints[1].startswith("No ImageNet weights here (") and prints[1].count("\n") == 1
    assert str(tmp_path) not in "".join(prints)               # no path of this machine
    assert sum("No ImageNet weights" in p for p in prints) == 1
    assert not [f for f in shown if isinstance(f, Figure)]         # no figure of a network
    assert _pyplot_titles() == ["What the network sees: the 224 x 224 crop"]   # the photo only
    assert "target" not in ns and "cam" not in ns
