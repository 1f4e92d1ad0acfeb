"""featviz.imagenet_model: the torch hub cache, a bounded download, and clear failures, offline."""
from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import featviz
from featviz import imagenet
from featviz.imagenet import WeightsUnavailable, imagenet_model, imagenet_weights_path

torchvision = pytest.importorskip("torchvision")


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    """An empty torch hub cache of our own: TORCH_HOME points into tmp_path."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("FEATVIZ_OFFLINE", raising=False)
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def stand_in() -> dict[str, torch.Tensor]:
    """Weights of the right shapes, not ImageNet's: a seeded random ResNet-18."""
    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


def same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_weights_found_in_the_torch_cache_are_loaded(hub, stand_in, monkeypatch):
    path = imagenet_weights_path("resnet18")
    assert path == hub / "resnet18-f37072fd.pth"  # where torchvision itself caches them
    assert not featviz.imagenet.imagenet_weights_cached("resnet18")
    hub.mkdir(parents=True)
    torch.save(stand_in, path)
    assert featviz.imagenet.imagenet_weights_cached("resnet18")
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")  # the cache needs no network

    model, preprocess, classes, source = imagenet_model("resnet18")
    assert source == "cache" and not model.training
    assert isinstance(model, torchvision.models.ResNet) and same_weights(model, stand_in)
    assert len(classes) == 1000 and classes[0] == "tench"
    photo = torch.randint(0, 256, (3, 300, 400), dtype=torch.uint8)
    x = preprocess(photo)
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert model(x[None]).shape == (1, 1000)


def test_offline_without_weights_fails_at_once_with_the_reason(hub, monkeypatch):
    monkeypatch.setenv("FEATVIZ_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="FEATVIZ_OFFLINE environment variable") as info:
        imagenet_model("resnet18")
    assert "work offline" in info.value.reason and "FEATVIZ" not in info.value.reason
    assert "resnet18-f37072fd.pth" in str(info.value) and "internet" in str(info.value)
    assert not hub.exists() or not any(hub.iterdir())  # nothing left behind
    with pytest.raises(WeightsUnavailable, match="download=False"):
        imagenet_model("resnet18", download=False)


def test_unknown_model_names_say_what_exists():
    with pytest.raises(ValueError, match="resnet18"):
        imagenet_model("resnet1800")


def test_a_damaged_cached_file_is_reported_not_replaced_by_random_weights(hub):
    hub.mkdir(parents=True)
    imagenet_weights_path("resnet18").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsUnavailable, match="cannot be loaded.*delete it"):
        imagenet_model("resnet18")


# --------------------------------------------------------------------------- downloads


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server(tmp_path):
    """A local web server over tmp_path/www: downloads without the internet."""
    root = tmp_path / "www"
    root.mkdir()
    handler = lambda *a, **k: _Files(*a, directory=str(root), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def serve_as(monkeypatch, url: str, name: str = "resnet18") -> None:
    """Make featviz fetch ``name``'s weights from ``url``."""
    real = imagenet._weights(name)
    fake = SimpleNamespace(url=url, transforms=real.transforms, meta=real.meta)
    monkeypatch.setattr(imagenet, "_weights", lambda name: fake)


def test_a_download_lands_in_the_cache_and_is_verified(hub, server, monkeypatch):
    # SqueezeNet 1.1 (5 MB) keeps the test quick; the code path is the same for every model
    root, base = server
    torch.manual_seed(0)
    state = torchvision.models.squeezenet1_1(weights=None).state_dict()
    blob = root / "standin.pth"
    torch.save(state, blob)
    name = f"squeezenet1_1-{hashlib.sha256(blob.read_bytes()).hexdigest()[:8]}.pth"
    blob.rename(root / name)
    serve_as(monkeypatch, f"{base}/{name}", "squeezenet1_1")
    model, _, classes, source = imagenet_model("squeezenet1_1", timeout=30)
    assert source == "download" and same_weights(model, state) and len(classes) == 1000
    assert (hub / name).is_file() and sorted(p.name for p in hub.iterdir()) == [name]

    # a file whose content does not match the hash in its name is refused
    (root / "squeezenet1_1-00000000.pth").write_bytes((root / name).read_bytes())
    serve_as(monkeypatch, f"{base}/squeezenet1_1-00000000.pth", "squeezenet1_1")
    with pytest.raises(WeightsUnavailable, match="download failed"):
        imagenet_model("squeezenet1_1", timeout=30)
    assert sorted(p.name for p in hub.iterdir()) == [name]  # no partial file left


def test_an_unreachable_server_fails_with_the_reason(hub, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_as(monkeypatch, f"http://127.0.0.1:{port}/resnet18-f37072fd.pth")
    with pytest.raises(WeightsUnavailable, match="download failed"):
        imagenet_model("resnet18", timeout=30)
    assert not any(hub.iterdir())


def test_a_silent_server_cannot_make_it_hang(hub, monkeypatch):
    with socket.socket() as s:  # accepts the connection, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        serve_as(monkeypatch, f"http://127.0.0.1:{s.getsockname()[1]}/resnet18-f37072fd.pth")
        with pytest.raises(WeightsUnavailable, match="did not finish within 0.5 s"):
            imagenet_model("resnet18", timeout=0.5)
    assert not imagenet_weights_path("resnet18").exists()
