"""The browser's JavaScript held to Python's answer: each ``node --test`` suite in
``tests/js/`` runs against fixtures its Python script writes here, in ``tmp_path``.

* ``forward.test.mjs``: the browser engine (``featviz/widgets/forward.js``) against
  PyTorch, for 100 test digits through the pretrained model and a training snapshot,
  and for the synthetic nets (fixtures: ``make_fixtures.py``).

Each suite's script has ``make_fixtures(folder)``; the suite reads the folder from
its environment variable and skips without it, so a run here asserts that nothing
was skipped. Another suite joins with one line in ``SUITES`` (``imageops.test.mjs``,
with ``make_image_fixtures.py`` and ``FEATVIZ_JS_IMAGE_FIXTURES``, is written so).

Skipped when ``node`` is not installed, unless ``FEATVIZ_REQUIRE_BROWSER=1``.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from _browser import missing

REPO = Path(__file__).resolve().parents[1]
JS_TESTS = REPO / "tests" / "js"
NODE_TIMEOUT_S = 300

#: node test file -> (the Python script writing its fixtures, the variable naming their
#: folder), or (None, None) for a suite that needs none
SUITES = {
    "forward.test.mjs": ("make_fixtures.py", "FEATVIZ_JS_FIXTURES"),
    "style.test.mjs": ("make_style_fixtures.py", "FEATVIZ_JS_STYLE_FIXTURES"),
    "layout.test.mjs": (None, None),   # needs no fixtures
    "codec.test.mjs": ("make_codec_fixtures.py", "FEATVIZ_JS_CODEC_FIXTURES"),
    "explorer_local.test.mjs": ("make_explorer_fixtures.py", "FEATVIZ_JS_EXPLORER_FIXTURES"),
}


def _write_fixtures(script: str, folder: Path) -> None:
    spec = importlib.util.spec_from_file_location(Path(script).stem, JS_TESTS / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make_fixtures(folder)


@pytest.mark.parametrize("suite", sorted(SUITES))
def test_javascript_equals_python(suite: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed: the JavaScript parity tests need Node 18.15 or later")
    script, variable = SUITES[suite]
    env = dict(os.environ)
    if script is not None:
        _write_fixtures(script, tmp_path)
        env[variable] = str(tmp_path)
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", f"tests/js/{suite}"], cwd=REPO,
        capture_output=True, text=True, timeout=NODE_TIMEOUT_S, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"node --test tests/js/{suite} failed:\n{output}"
    # a skipped suite counts in neither "# skipped" nor "# pass": look for its directive
    assert "# SKIP" not in output and "# skipped 0" in output, f"tests skipped:\n{output}"
