"""MNIST through torchvision, with a bundled sample so that nothing needs a network.

Where the data comes from, in order:

1. the full MNIST under ``root`` (default: a per-user cache folder, or the
   ``FEATVIZ_DATA_ROOT`` environment variable), in torchvision's layout
   ``root/MNIST/raw/*-ubyte``;
2. a download through torchvision into that folder, bounded in time
   (skipped when ``FEATVIZ_OFFLINE=1``);
3. the sample bundled with featviz: the whole official test set (10,000) and a
   class-balanced 10,000-image subset of the training set.

When the sample is used, one line says so and how to get the full set.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torchvision import datasets, transforms

from ._assets import pretty_path, run_bounded, staging_folder, verified_asset

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081
#: black and white MNIST pixels after normalisation: the range of the course's model inputs
MNIST_RANGE = ((0.0 - MNIST_MEAN) / MNIST_STD, (1.0 - MNIST_MEAN) / MNIST_STD)
DOWNLOAD_TIMEOUT_S = 20.0

_RAW = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SAMPLE_DIR = "mnist_sample"  # inside featviz/assets, the four files gzipped


@dataclass(frozen=True)
class DataSource:
    """Which MNIST is in use: ``kind`` is ``"full"`` or ``"sample"``."""

    kind: str
    root: Path
    reason: str = ""

    @property
    def is_sample(self) -> bool:
        return self.kind == "sample"

    def describe(self) -> str:
        if self.kind == "full":
            return f"full MNIST (60,000 training / 10,000 test images) from {pretty_path(self.root)}"
        return (
            "the bundled MNIST sample (10,000 training / 10,000 test images)"
            + (f": {self.reason}" if self.reason else "")
        )


_resolved: dict[tuple[str, bool], DataSource] = {}
_announced: set[tuple[str, str]] = set()


def data_root() -> Path:
    """Where featviz looks for (and downloads) MNIST: ``FEATVIZ_DATA_ROOT`` or a cache folder."""
    env = os.environ.get("FEATVIZ_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "featviz"


def has_full_mnist(root: str | os.PathLike) -> bool:
    """True when ``root/MNIST/raw`` holds the four uncompressed MNIST files."""
    raw = Path(root) / "MNIST" / "raw"
    return all((raw / name).is_file() for pair in _RAW.values() for name in pair)


def offline() -> bool:
    """True when ``FEATVIZ_OFFLINE`` is set (to anything but 0/false/no): never download."""
    return os.environ.get("FEATVIZ_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def _download(root: Path, timeout: float) -> str | None:
    """Download MNIST into ``root``; return None on success, else why it failed.

    The download runs in a staging folder and is moved into ``root/MNIST/raw``
    only when complete, so a failure never leaves an empty or partial folder.
    """
    try:
        stage = staging_folder(root)
    except OSError as exc:
        return f"cannot write to {root} ({exc.strerror or exc})"

    def work() -> None:
        try:
            for train in (True, False):
                datasets.MNIST(str(stage), train=train, download=True)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise

    # torchvision prints progress and mirror failures: keep them off the learner's screen
    noise = io.StringIO()
    with contextlib.redirect_stdout(noise), contextlib.redirect_stderr(noise):
        why = run_bounded(work, timeout, "mnist-download")
    if why is not None:
        return why
    try:
        dest = root / "MNIST" / "raw"
        dest.mkdir(parents=True, exist_ok=True)
        for name in (n for pair in _RAW.values() for n in pair):
            os.replace(stage / "MNIST" / "raw" / name, dest / name)
    except OSError as exc:
        return f"cannot write to {root} ({exc.strerror or exc})"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return None


def _key(root: Path, download: bool) -> tuple[str, bool]:
    try:
        return str(root.resolve()), bool(download)
    except OSError:
        return str(root), bool(download)


def _remembered(root: Path, download: bool) -> DataSource | None:
    known = _resolved.get(_key(root, download))
    if known is not None and (not known.is_sample or not has_full_mnist(root)):
        return known
    return None


def remembered_source(root: str | os.PathLike | None = None) -> DataSource | None:
    """What an earlier :func:`data_source` call that could download found for
    ``root`` in this session (None if there was none, or if it found only the
    sample and the full set has arrived since). Never prints or downloads."""
    return _remembered(Path(root).expanduser() if root is not None else data_root(), True)


def data_source(root: str | os.PathLike | None = None, download: bool = True, *,
                quiet: bool = False) -> DataSource:
    """Find (and if needed download) MNIST; say which data :func:`load_mnist` will use.

    The answer is remembered for the rest of the session, so a failed download
    is tried once, not at every call. Falling back on the sample is said once
    per session, in one printed line; ``quiet=True`` says nothing and leaves
    that line for a later call.
    """
    root = Path(root).expanduser() if root is not None else data_root()
    source = _remembered(root, download)
    if source is None:
        source = _resolved[_key(root, download)] = _find(root, download, quiet)
    if source.is_sample:
        _say(
            source, quiet,
            f"featviz: using {source.describe()}. For the full 70,000 images, run "
            f"featviz.load_mnist() with internet access, or put the four MNIST raw files in "
            f"{pretty_path(root / 'MNIST' / 'raw')} (or point FEATVIZ_DATA_ROOT at a folder that has them).",
        )
    return source


def _find(root: Path, download: bool, quiet: bool) -> DataSource:
    if has_full_mnist(root):
        return DataSource("full", root)
    if not download:
        return DataSource("sample", root, f"no full MNIST under {pretty_path(root)}")
    if offline():
        return DataSource("sample", root, f"no full MNIST under {pretty_path(root)} and FEATVIZ_OFFLINE is set")
    why = _download(root, DOWNLOAD_TIMEOUT_S)
    if why is not None:
        return DataSource("sample", root, f"no full MNIST under {pretty_path(root)} and {why}")
    source = DataSource("full", root)
    _say(source, quiet, f"featviz: downloaded MNIST to {pretty_path(root / 'MNIST' / 'raw')}.")
    return source


def _say(source: DataSource, quiet: bool, line: str) -> None:
    key = (str(source.root), source.kind)
    if not quiet and key not in _announced:
        _announced.add(key)
        print(line)


def _read_idx(raw: bytes) -> torch.Tensor:
    """Parse an IDX file (the MNIST format): big-endian header, then uint8 data."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"IDX header says {tuple(dims)} but holds {data.size} bytes")
    return torch.from_numpy(data.reshape(tuple(int(d) for d in dims)).copy())


class BundledMNIST(datasets.MNIST):
    """torchvision's MNIST, read from the sample bundled with featviz.

    It is a ``torchvision.datasets.MNIST`` in every respect (``data``,
    ``targets``, ``transform``, indexing gives ``(image, label)``), loaded from
    the gzipped IDX files in ``featviz/assets`` after checking their sha256.
    """

    def __init__(self, train: bool = True, transform: Callable | None = None,
                 target_transform: Callable | None = None) -> None:
        root = verified_asset(f"{SAMPLE_DIR}/{_RAW[train][0]}.gz").parent
        super().__init__(str(root), train=train, transform=transform,
                         target_transform=target_transform, download=False)

    @property
    def raw_folder(self) -> str:
        return str(Path(self.root))

    def _check_exists(self) -> bool:
        return True

    def _load_data(self):
        images, labels = (
            _read_idx(gzip.decompress(verified_asset(f"{SAMPLE_DIR}/{name}.gz").read_bytes()))
            for name in _RAW[self.train]
        )
        return images, labels.long()


def mnist_transform() -> transforms.Compose:
    """``ToTensor`` then ``Normalize(MNIST_MEAN, MNIST_STD)``: the course's standard input."""
    return transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((MNIST_MEAN,), (MNIST_STD,))]
    )


def load_mnist(
    train: bool = True,
    root: str | os.PathLike | None = None,
    transform: Callable | None = None,
    download: bool = True,
) -> datasets.MNIST:
    """MNIST as a ``torchvision.datasets.MNIST``, normalised by default.

    Parameters
    ----------
    train : the 60,000-image training split (True) or the 10,000-image test split.
    root : folder holding ``MNIST/raw``; default :func:`data_root`.
    transform : applied to each PIL image; default :func:`mnist_transform`.
    download : try a (time-bounded) download when the full set is not there.

    Falls back to the bundled sample when the full set is neither there nor
    downloadable, and prints one line saying so.

    >>> test = load_mnist(train=False)
    >>> image, label = test[0]          # image: (1, 28, 28) float tensor, normalised
    """
    transform = mnist_transform() if transform is None else transform
    source = data_source(root, download)
    if source.is_sample:
        return BundledMNIST(train=train, transform=transform)
    return datasets.MNIST(str(source.root), train=train, transform=transform, download=False)


def mnist_normalize(images: torch.Tensor) -> torch.Tensor:
    """MNIST pixels in [0, 1] -> the values the course's models expect.

    Uses MNIST's mean and standard deviation (:data:`MNIST_MEAN`,
    :data:`MNIST_STD`); another dataset needs its own
    ``transforms.Normalize(mean, std)``.

    >>> mnist_normalize(torch.tensor([0.0, 1.0]))
    tensor([-0.4242,  2.8215])
    """
    return (images - MNIST_MEAN) / MNIST_STD


def mnist_denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo :func:`mnist_normalize`: pixels in [0, 1] (clamped), ready to show.

    >>> mnist_denormalize(mnist_normalize(torch.tensor([0.0, 0.5, 1.0])))
    tensor([0.0000, 0.5000, 1.0000])
    """
    return (images * MNIST_STD + MNIST_MEAN).clamp(0.0, 1.0)


def mnist_tensors(
    train: bool = True, root: str | os.PathLike | None = None, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole split as ``(images, labels)``: float32 ``(N, 1, 28, 28)`` normalised, int64 ``(N,)``.

    The fast path for training and scanning: built straight from the raw
    bytes, no per-image transform (about 0.1 s for 60,000 images).
    """
    ds = load_mnist(train=train, root=root, transform=None, download=download)
    images = ds.data.unsqueeze(1).to(torch.float32)
    images.mul_(1.0 / (255.0 * MNIST_STD)).sub_(MNIST_MEAN / MNIST_STD)
    return images, ds.targets.clone().long()


def digit_batch(
    digits: Iterable[int], train: bool = False, root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of the given digits, in that order: the k-th time a digit is asked
    for gives its k-th example in the split. Deterministic.

    >>> images, labels = digit_batch([3, 1, 4, 1, 5])   # images: (5, 1, 28, 28)
    """
    digits = [int(d) for d in digits]
    bad = [d for d in digits if not 0 <= d <= 9]
    if bad or not digits:
        raise ValueError(f"digits must be a non-empty list of integers 0-9, got {digits!r}")
    images, labels = mnist_tensors(train=train, root=root)
    seen: dict[int, int] = {}
    index = []
    for d in digits:
        k = seen.get(d, 0)
        where = torch.nonzero(labels == d).flatten()
        if k >= len(where):
            raise ValueError(f"the split has only {len(where)} examples of digit {d}")
        index.append(int(where[k]))
        seen[d] = k + 1
    idx = torch.tensor(index)
    return images[idx], labels[idx]


def digit_examples(
    per_digit: int = 1, train: bool = False, root: str | os.PathLike | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_digit`` examples of each digit 0-9, grouped by digit: ``(10 * per_digit, 1, 28, 28)``.

    >>> images, labels = digit_examples()     # labels: tensor([0, 1, ..., 9])
    """
    if per_digit < 1:
        raise ValueError(f"per_digit must be at least 1, got {per_digit}")
    digits: Sequence[int] = [d for d in range(10) for _ in range(per_digit)]
    return digit_batch(digits, train=train, root=root)
