"""What an IDE, a type checker and a script see of the package.

featviz exports its names lazily (so ``import featviz`` stays cheap), and spells the
same names out in a ``TYPE_CHECKING`` block for IDEs. These tests hold the two to
each other, and check what a practitioner without the widget packages gets.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import featviz

ROOT = Path(__file__).resolve().parents[1]
INIT = ROOT / "featviz" / "__init__.py"


def _type_checking_imports() -> dict[str, str]:
    """name -> submodule, as the ``if TYPE_CHECKING:`` block of featviz/__init__.py imports it."""
    tree = ast.parse(INIT.read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
    names = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
    return names


def test_every_lazy_name_is_spelled_out_for_type_checkers():
    seen = _type_checking_imports()
    assert set(seen) == set(featviz._EXPORTS), (
        f"missing from the TYPE_CHECKING block: {sorted(set(featviz._EXPORTS) - set(seen))}; "
        f"there but not exported: {sorted(set(seen) - set(featviz._EXPORTS))}")
    for name, module in seen.items():
        assert module == featviz._EXPORTS[name], f"{name}: imported from .{module}, exported from .{featviz._EXPORTS[name]}"


def test_every_exported_name_resolves_to_what_its_module_defines():
    import importlib

    for name in featviz.__all__:
        value = getattr(featviz, name)
        if name == "__version__":
            assert value == featviz.__version__
            continue
        module = importlib.import_module(f"featviz.{featviz._EXPORTS[name]}")
        assert value is getattr(module, name), name
    assert set(featviz._SUBMODULES) <= set(dir(featviz))


def test_the_package_is_marked_typed():
    assert (ROOT / "featviz" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


def test_without_ipywidgets_the_widgets_say_how_to_install_them():
    """Scripts work with the core alone; a widget call names the exact install command."""
    code = """
import sys
class NoWidgets:   # as if ipywidgets were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ipywidgets", "anywidget"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoWidgets())
import featviz
model = featviz.pretrained()
images, _ = featviz.digit_examples()
acts = featviz.activations(model, images[:2], ["conv1"])
print("capture", tuple(acts["conv1"].shape))
try:
    featviz.explorer(model)
except ImportError as exc:
    print("error", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "capture (2, 16, 24, 24)" in out.stdout
    assert 'error featviz.explorer needs the widget packages' in out.stdout
    assert 'pip install "featviz[widgets]"' in out.stdout


def test_all_is_the_lazy_table():
    assert featviz.__all__ == sorted(featviz._EXPORTS) + ["__version__"]
