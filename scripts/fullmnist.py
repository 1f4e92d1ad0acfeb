"""Where the maintainers' scripts find a full MNIST: ``../shared/data`` beside the checkout.

Learners never need this: featviz downloads MNIST or uses its bundled sample.
"""
from __future__ import annotations

import os
from pathlib import Path

FULL = Path(__file__).resolve().parents[2] / "shared" / "data"


def use_full_mnist() -> None:
    """Point FEATVIZ_DATA_ROOT at the full MNIST beside the checkout, unless it is set."""
    if "FEATVIZ_DATA_ROOT" not in os.environ and (FULL / "MNIST" / "raw").is_dir():
        os.environ["FEATVIZ_DATA_ROOT"] = str(FULL)
