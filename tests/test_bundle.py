"""The widgets' front ends, bundled into one module for anywidget, still run."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from featviz.widgets._bundle import bundle


def _node():
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    return node


def test_bundle_inlines_each_import_once_with_private_names_kept_apart(tmp_path):
    (tmp_path / "a.js").write_text("const secret = 1;\nexport function f() { return secret; }\n")
    (tmp_path / "b.js").write_text('import { f } from "./a.js";\nconst secret = 2;\n'
                                   "export const g = () => f() + secret;\n")
    (tmp_path / "main.js").write_text('import { f } from "./a.js";\nimport { g as h } from "./b.js";\n'
                                      "export default { value: () => [f(), h()] };\n")
    text = bundle.__wrapped__("main.js", tmp_path)
    assert text.count("// ---- a.js") == 1 and "import " not in text
    (tmp_path / "out.mjs").write_text(text)
    out = subprocess.run([_node(), "-e", f"import('{tmp_path / 'out.mjs'}').then(m => "
                          "console.log(JSON.stringify(m.default.value())))"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[1,3]", out.stderr


@pytest.mark.parametrize("main", ["sketchpad.js", "explorer.js"])
def test_widget_bundles_are_valid_modules(tmp_path, main):
    (tmp_path / "w.mjs").write_text(bundle(main))
    out = subprocess.run([_node(), "--check", str(tmp_path / "w.mjs")], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_a_missing_import_is_named(tmp_path):
    (tmp_path / "main.js").write_text('import { f } from "./nowhere.js";\nexport default {};\n')
    with pytest.raises(FileNotFoundError, match="main.js imports ./nowhere.js"):
        bundle.__wrapped__("main.js", tmp_path)
