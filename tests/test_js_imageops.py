"""The browser's image operations (``featviz/widgets/imageops.js``: mnistStyle, perturb,
resize) held to Python's: ``node --test tests/js/imageops.test.mjs`` against fixtures
written here by ``tests/js/make_image_fixtures.py`` (``featviz.mnist_style`` of ~100
drawings, ``featviz.perturb`` of 50 images under the explorer's sliders,
``F.interpolate``).

Skipped when ``node`` is not installed, unless ``FEATVIZ_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

from _browser import missing

REPO = Path(__file__).resolve().parents[1]
JS_TESTS = REPO / "tests" / "js"
NODE_TIMEOUT_S = 300


def _make_fixtures(folder: Path) -> Path:
    spec = importlib.util.spec_from_file_location("make_image_fixtures",
                                                  JS_TESTS / "make_image_fixtures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_fixtures(folder)


def test_imageops_js_equals_python(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed: the JavaScript parity tests need Node 18 or later")
    index = json.loads(_make_fixtures(tmp_path).read_text())
    assert len(index["mnist"]) >= 100 and len(index["perturb"]["images"]) >= 50
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", "tests/js/imageops.test.mjs"], cwd=REPO,
        capture_output=True, text=True, timeout=NODE_TIMEOUT_S,
        env={**os.environ, "FEATVIZ_JS_IMAGE_FIXTURES": str(tmp_path)})
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test failed:\n{output}"
    for word in ("fail", "skipped", "todo"):
        assert f"# {word} 0" in output, f"node --test: some tests {word}:\n{output}"
    passed = int(output.split("# pass ", 1)[1].split()[0])
    assert passed >= 10, f"only {passed} JavaScript tests ran:\n{output}"
