"""Test-wide settings: offline, the bundled data, a headless matplotlib.

They are set in the environment so that the notebook kernels nbval starts
inherit them too.
"""
import os
import tempfile

os.environ.setdefault("FEATVIZ_OFFLINE", "1")
os.environ.setdefault("FEATVIZ_DATA_ROOT", tempfile.mkdtemp(prefix="featviz-test-data-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")
