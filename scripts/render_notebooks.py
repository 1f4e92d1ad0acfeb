"""Execute the course notebooks in place, so that the committed files show their outputs.

    python scripts/render_notebooks.py                      # all of notebooks/
    python scripts/render_notebooks.py notebooks/04_feature_maps.ipynb

Uses the full MNIST when it can find it (in FEATVIZ_DATA_ROOT or the default
cache folder, which is linked to ../shared/data beside the checkout when that
holds a copy), otherwise the bundled sample.

Two records are kept in the rendered notebook for the course's tests, and are invisible to
a reader:

- each code cell's start and end times, in ``cell.metadata.execution`` (nbclient's
  ``record_timing``): ``scripts/lesson_times.py`` reads the run time of a lesson from them;
- each matplotlib figure's texts (titles, labels, tick labels, legends, annotations: every
  ``Text`` artist drawn), in the PNG output's metadata,
  ``output.metadata["image/png"]["featviz"]["texts"]``: a PNG does not carry its text, and
  ``tests/test_giveaways.py`` checks that no figure shows an exercise's answer above it.
  The kernel gets them from a startup file in a throwaway IPython folder (``IPYTHONDIR``), so
  a learner's kernel is untouched.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from featviz.data import data_root, data_source, has_full_mnist  # noqa: E402
from fullmnist import FULL  # noqa: E402  (this folder is on sys.path when run as a script)



def link_full_mnist() -> None:
    """Make the default data folder show the full MNIST, so the notebooks use it
    the way a learner's would (and print the learner's path, not this machine's)."""
    if "FEATVIZ_DATA_ROOT" in os.environ or has_full_mnist(data_root()) or not has_full_mnist(FULL):
        return
    raw = data_root() / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for src in (FULL / "MNIST" / "raw").iterdir():
        if not (raw / src.name).exists():
            (raw / src.name).symlink_to(src.resolve())


#: Run by the rendering kernel at start: the PNG formatter of matplotlib figures also returns
#: the figure's drawn texts as metadata. It changes the class of IPython's own PNG formatter,
#: so the formatters that ``%matplotlib inline`` registers later (and the inline backend's
#: figures shown at the end of a cell, which go through ``display``) all pass through it.
FIGURE_TEXTS_STARTUP = '''
def _featviz_record_figure_texts():
    import functools
    import sys

    shell = get_ipython()
    formatter = shell.display_formatter.formatters["image/png"]
    base = type(formatter)
    base_call = base.__call__

    def call(self, obj):
        figure = sys.modules.get("matplotlib.figure")
        if figure is None or not isinstance(obj, figure.Figure):
            return base_call(self, obj)
        text_cls = sys.modules["matplotlib.text"].Text
        original = text_cls.draw
        drawn = []

        @functools.wraps(original)
        def draw(artist, renderer, *args, **kwargs):
            text = artist.get_text()
            if artist.get_visible() and text.strip():
                drawn.append(text)
            return original(artist, renderer, *args, **kwargs)

        text_cls.draw = draw
        try:
            result = base_call(self, obj)
        finally:
            text_cls.draw = original
        data, meta = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        if data is None:
            return result
        meta = dict(meta or {})
        meta["featviz"] = {"texts": list(dict.fromkeys(drawn))}
        return data, meta

    formatter.__class__ = type("FigureTextsPNGFormatter", (base,), {"__call__": call})


_featviz_record_figure_texts()
del _featviz_record_figure_texts
'''


def kernel_env(ipython_dir: Path) -> dict[str, str]:
    """The rendering kernel's environment: this one, with an IPython folder whose startup
    file records the figures' texts."""
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-figure-texts.py").write_text(FIGURE_TEXTS_STARTUP, encoding="utf-8")
    return {**os.environ, "IPYTHONDIR": str(ipython_dir)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    args = ap.parse_args()
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

    link_full_mnist()
    os.environ.setdefault("FEATVIZ_OFFLINE", "1")
    print(f"data: {data_source().describe()}")

    failed = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        # no saved widget state: it would hold the widgets' state at the end of the run,
        # not the starting state that the stills under them show
        # record_timing: each cell's start and end times, which lesson_times.py reads
        client = NotebookClient(nb, timeout=args.timeout, kernel_name="python3",
                                store_widget_state=False, record_timing=True,
                                resources={"metadata": {"path": str(path.parent)}})
        nb.metadata.pop("widgets", None)
        try:
            with tempfile.TemporaryDirectory(prefix="featviz-ipython-") as ipython_dir:
                client.execute(env=kernel_env(Path(ipython_dir)))
        except Exception as exc:
            failed += 1
            print(f"FAILED {path.name}: {type(exc).__name__}: {str(exc)[-2000:]}")
        nbformat.write(nb, path)
        print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
