"""Rebuild the MNIST sample bundled in featviz/assets/mnist_sample.

    python scripts/build_sample.py --raw ../shared/data/MNIST/raw

It reads any folder holding the four uncompressed official MNIST files and
writes, in torchvision's IDX layout, gzipped:

- the complete official test set (10,000 images);
- a class-balanced subset of the training set: 1,000 images of each digit,
  drawn with a fixed seed, kept in their original order.

and records their sha256 and provenance in featviz/assets/manifest.json.
MNIST (Yann LeCun, Corinna Cortes, Christopher J.C. Burges) is available under
the Creative Commons Attribution-Share Alike 3.0 licence.
"""
from __future__ import annotations

import argparse
import gzip
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from featviz._assets import ASSETS, record_assets  # noqa: E402
from featviz.data import SAMPLE_DIR, _RAW  # noqa: E402

PER_DIGIT = 1000
SEED = 20261126


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    ndim = raw[3]
    dims = struct.unpack(">" + "i" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_gz(name: str, array: np.ndarray) -> str:
    rel = f"{SAMPLE_DIR}/{name}.gz"
    out = ASSETS / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 and no file name in the header: the same input gives the same bytes
    with open(out, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0,
                                             compresslevel=9) as gz:
        gz.write(idx_bytes(array))
    return rel


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT.parent / "shared/data/MNIST/raw",
                    help="folder with the four uncompressed MNIST files")
    args = ap.parse_args()

    train_x, train_y = (read_idx(args.raw / n) for n in _RAW[True])
    test_x, test_y = (read_idx(args.raw / n) for n in _RAW[False])
    assert train_x.shape == (60000, 28, 28) and test_x.shape == (10000, 28, 28)

    rng = np.random.default_rng(SEED)
    keep = np.sort(np.concatenate(
        [rng.choice(np.flatnonzero(train_y == d), PER_DIGIT, replace=False) for d in range(10)]
    ))
    names = [
        write_gz(_RAW[True][0], train_x[keep]), write_gz(_RAW[True][1], train_y[keep]),
        write_gz(_RAW[False][0], test_x), write_gz(_RAW[False][1], test_y),
    ]
    total = sum((ASSETS / n).stat().st_size for n in names)
    record_assets(names, mnist_sample={
        "source": "official MNIST (train-*-ubyte, t10k-*-ubyte), "
                  "http://yann.lecun.com/exdb/mnist/, CC BY-SA 3.0",
        "built_by": "scripts/build_sample.py",
        "train": f"{PER_DIGIT} images of each digit drawn from the 60,000 training images "
                 f"with numpy.random.default_rng({SEED}), original order kept",
        "test": "the complete official test set, 10,000 images",
        "train_indices_sha256": __import__("hashlib").sha256(keep.astype("<i4").tobytes()).hexdigest(),
    })
    print(f"wrote {len(names)} files, {total / 1e6:.2f} MB, to {ASSETS / SAMPLE_DIR}")


if __name__ == "__main__":
    main()
