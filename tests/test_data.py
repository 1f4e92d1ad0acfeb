"""Where MNIST comes from, the bundled sample, and the tensor fast path."""
from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
import time

import numpy as np
import pytest
import torch
from torchvision import datasets

import featviz
from featviz import _assets, data

RAW = {True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
       False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 8, array.ndim]) + struct.pack(">" + "i" * array.ndim, *array.shape) + array.tobytes()


def fake_mnist(n_train: int = 30, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """A tiny MNIST in the official file format, different from the real one."""
    rng = np.random.default_rng(seed)
    files = {}
    for train, n in ((True, n_train), (False, n_test)):
        files[RAW[train][0]] = idx(rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        files[RAW[train][1]] = idx((np.arange(n) % 10).astype(np.uint8))
    return files


@pytest.fixture
def online(monkeypatch):
    """Allow download attempts in this test (the suite runs with FEATVIZ_OFFLINE=1)."""
    monkeypatch.delenv("FEATVIZ_OFFLINE", raising=False)


def test_full_mnist_under_root_is_used_silently(tmp_path, capsys):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, blob in fake_mnist().items():
        (raw / name).write_bytes(blob)
    train = featviz.load_mnist(train=True, root=tmp_path)
    test = featviz.load_mnist(train=False, root=tmp_path)
    assert type(train) is datasets.MNIST
    assert (len(train), len(test)) == (30, 20)
    assert featviz.data_source(tmp_path).kind == "full"
    assert capsys.readouterr().out == ""


def test_data_root_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATVIZ_DATA_ROOT", str(tmp_path / "here"))
    assert data.data_root() == tmp_path / "here"
    monkeypatch.delenv("FEATVIZ_DATA_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_root() == tmp_path / "cache" / "featviz"


def test_download_goes_through_torchvision_into_root(tmp_path, monkeypatch, online, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    resources = []
    for name, blob in fake_mnist(seed=1).items():
        gz = gzip.compress(blob)
        (mirror / f"{name}.gz").write_bytes(gz)
        resources.append((f"{name}.gz", hashlib.md5(gz).hexdigest()))
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(mirror), **k)
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
        monkeypatch.setattr(datasets.MNIST, "resources", resources)
        root = tmp_path / "root"
        ds = featviz.load_mnist(train=False, root=root)
    finally:
        server.shutdown()
    assert len(ds) == 20 and featviz.data_source(root).kind == "full"
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(fake_mnist())
    assert not list(root.glob(".featviz-download-*")), "the staging folder must be cleaned up"
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "downloaded MNIST" in out[0]


def test_failed_download_falls_back_to_sample_with_one_line(tmp_path, monkeypatch, online, capsys):
    # nothing listens on port 1: the connection is refused at once
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:1/"])
    root = tmp_path / "root"
    ds = featviz.load_mnist(train=True, root=root)
    assert isinstance(ds, datasets.MNIST) and len(ds) == 10_000
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    assert "bundled MNIST sample" in out[0] and "download failed" in out[0]
    assert str(root / "MNIST" / "raw") in out[0], "the line must say where the full set goes"
    assert not (root / "MNIST").exists(), "no empty MNIST/raw folder may be left behind"
    # asked again, it neither retries nor repeats itself
    featviz.load_mnist(train=False, root=root)
    assert capsys.readouterr().out == ""


def test_hanging_download_is_bounded(tmp_path, monkeypatch, online, capsys):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)  # accepts connections, never answers
    try:
        port = server.getsockname()[1]
        monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{port}/"])
        monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 1.0)
        start = time.monotonic()
        src = featviz.data_source(tmp_path / "root")
        assert time.monotonic() - start < 10
        assert src.kind == "sample" and "did not finish within 1 s" in src.reason
        assert not (tmp_path / "root" / "MNIST").exists()
    finally:
        server.close()


def test_offline_setting_skips_the_download(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    monkeypatch.setattr(datasets.MNIST, "mirrors", ["http://127.0.0.1:1/never-asked/"])
    src = featviz.data_source(tmp_path)
    assert src.kind == "sample" and "FEATVIZ_OFFLINE" in src.reason
    assert list(tmp_path.iterdir()) == []


def test_quiet_source_keeps_the_sample_line_for_the_first_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    assert data.offline()
    assert data.remembered_source(tmp_path) is None
    assert data.data_source(tmp_path, quiet=True).kind == "sample"
    assert capsys.readouterr().out == ""
    featviz.data_source(tmp_path)
    assert "using the bundled MNIST sample" in capsys.readouterr().out
    assert data.remembered_source(tmp_path).kind == "sample"
    # the full set arriving later makes the remembered answer stale
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for pair in data._RAW.values():
        for name in pair:
            (raw / name).write_bytes(b"")
    assert data.remembered_source(tmp_path) is None


def test_unwritable_root_falls_back_to_sample(tmp_path, online, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    root = blocker / "mnist"          # cannot be created, even by root
    ds = featviz.load_mnist(train=False, root=root)
    assert len(ds) == 10_000
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "cannot write to" in out


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="file permissions do not bind the root user")
def test_read_only_root_falls_back_to_sample(tmp_path, online, capsys):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        assert featviz.data_source(root).kind == "sample"
        assert "cannot write to" in capsys.readouterr().out
    finally:
        root.chmod(0o755)


def test_sample_is_the_official_test_set_and_a_balanced_train_subset():
    train = data.BundledMNIST(train=True)
    test = data.BundledMNIST(train=False)
    assert isinstance(train, datasets.MNIST)
    assert train.data.shape == (10_000, 28, 28) and test.data.shape == (10_000, 28, 28)
    assert torch.equal(train.targets.bincount(), torch.full((10,), 1000))
    # the official test set's label counts (LeCun et al.'s t10k-labels file)
    assert test.targets.bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert train.data.dtype == torch.uint8 and int(train.data.max()) == 255


def test_sample_files_match_manifest_and_budget():
    manifest = _assets.read_manifest()
    sample = {k: v for k, v in manifest["files"].items() if k.startswith(data.SAMPLE_DIR + "/")}
    assert len(sample) == 4
    for name, entry in sample.items():
        assert _assets.sha256_file(_assets.ASSETS / name) == entry["sha256"], name
    assert sum(e["bytes"] for e in sample.values()) <= 4 * 1024 * 1024
    assert "CC BY-SA 3.0" in manifest["mnist_sample"]["source"]


def test_corrupt_asset_is_a_clear_error(tmp_path, monkeypatch):
    copy = tmp_path / "assets"
    shutil.copytree(_assets.ASSETS, copy)
    target = copy / data.SAMPLE_DIR / "t10k-images-idx3-ubyte.gz"
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 0xFF
    target.write_bytes(bytes(blob))
    monkeypatch.setattr(_assets, "ASSETS", copy)
    _assets._verified.cache_clear()
    with pytest.raises(ValueError, match=r"corrupt.*sha256.*git checkout"):
        data.BundledMNIST(train=False)
    target.unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        data.BundledMNIST(train=False)


def test_tensor_fast_path_equals_torchvision_path():
    ds = featviz.load_mnist(train=False)
    images, labels = featviz.mnist_tensors(train=False)
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.float32
    slow = torch.stack([ds[i][0] for i in range(len(ds))])
    slow_labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    assert torch.equal(labels, slow_labels)
    assert torch.allclose(images, slow, atol=1e-5)
    assert abs(float(images.mean())) < 0.05 and abs(float(images.std()) - 1) < 0.05


def test_denormalize_inverts_normalisation():
    images, _ = featviz.digit_examples()
    pixels = featviz.mnist_denormalize(images)
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert torch.allclose(featviz.mnist_normalize(pixels), images, atol=1e-5)
    # the background of a digit is black
    assert float(pixels[0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-6)


def test_digit_helpers_pick_the_first_examples_in_order():
    images, labels = featviz.mnist_tensors(train=False)
    ex, ex_labels = featviz.digit_examples()
    assert ex_labels.tolist() == list(range(10))
    first_seven = int(torch.nonzero(labels == 7)[0])
    assert torch.equal(ex[7], images[first_seven])
    batch, batch_labels = featviz.digit_batch([1, 1, 4])
    ones = torch.nonzero(labels == 1).flatten()[:2]
    assert batch_labels.tolist() == [1, 1, 4]
    assert torch.equal(batch[1], images[ones[1]]) and not torch.equal(batch[0], batch[1])
    two_each, two_labels = featviz.digit_examples(per_digit=2)
    assert two_labels.tolist() == [d for d in range(10) for _ in range(2)]


@pytest.mark.parametrize("bad", [[10], [-1], [], ["x"]])
def test_digit_batch_rejects_bad_digits(bad):
    with pytest.raises(ValueError):
        featviz.digit_batch(bad)


def test_import_is_cheap_and_headless():
    import subprocess
    import sys
    code = ("import sys, featviz; featviz.load_mnist; "
            "print(any(m in sys.modules for m in ('ipywidgets', 'matplotlib.pyplot')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
