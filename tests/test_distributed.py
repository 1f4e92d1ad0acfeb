"""Scans split over 2 processes (gloo, on this machine) return what one process returns.

Images, indices, positions and patches are equal; scores and statistics equal up to
float rounding, which depends on which images share a batch. Each rank computes the single-process answer itself (``distributed=False``) and the
distributed one, and compares them; a failure in a rank fails the test. The processes
are spawned with a deadline, so a stuck collective fails the test instead of hanging it.
"""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp

import featviz
from featviz import distributed as dist

WORLD = 2
DEADLINE_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _same_tops(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for ch in a:
        x, y = a[ch], b[ch]
        assert torch.equal(x.indices, y.indices), ch
        # a matrix product's last bits depend on the batch it is in (as with any other
        # batch_size), and the ranks' batches hold other images: scores to rounding
        torch.testing.assert_close(x.scores, y.scores, rtol=1e-6, atol=1e-6)
        assert torch.equal(x.images, y.images), ch
        assert (x.positions is None) == (y.positions is None)
        if x.positions is not None:
            assert torch.equal(x.positions, y.positions) and torch.equal(x.boxes, y.boxes)
        assert len(x.patches) == len(y.patches)
        assert all(torch.equal(p, q) for p, q in zip(x.patches, y.patches))
        assert (x.labels is None and y.labels is None) or torch.equal(x.labels, y.labels)


def _same_stats(a, b) -> None:
    for f in a.__dataclass_fields__:
        va, vb = getattr(a, f), getattr(b, f)
        if isinstance(va, torch.Tensor):
            torch.testing.assert_close(va, vb, rtol=1e-6, atol=1e-7, equal_nan=True)
        elif isinstance(va, float):
            assert va == pytest.approx(vb, rel=1e-6, nan_ok=True), f
        else:
            assert va == vb, f


def _worker(rank: int, port: int, n: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = featviz.pretrained().eval()
        images, labels = featviz.mnist_tensors(train=False)
        pair = (images[:n], labels[:n])
        dataset = torch.utils.data.Subset(featviz.load_mnist(train=False), range(n))
        loader = torch.utils.data.DataLoader(dataset, batch_size=37)
        # ties: every image twice, so each score ties with the same image n/2 later
        tied = torch.cat([images[: n // 2]] * 2)
        for data in (pair, dataset, loader, tied):
            for layer in ("conv2", "relu1", "fc3"):
                one = featviz.top_activating(model, data, layer, k=5, batch_size=32,
                                             distributed=False)
                both = featviz.top_activating(model, data, layer, k=5, batch_size=32)
                _same_tops(one, both)
        for layer in ("relu1", "conv2", "fc1"):
            _same_stats(featviz.channel_stats(model, pair, layer, distributed=False),
                        featviz.channel_stats(model, pair, layer))
        _same_stats(featviz.channel_stats(model, dataset, "relu2", distributed=False),
                    featviz.channel_stats(model, loader, "relu2"))
        _same_stats(featviz.robustness(model, pair, shifts=(2, (1, -3)), rotations=(15,),
                                       distributed=False),
                    featviz.robustness(model, loader, shifts=(2, (1, -3)), rotations=(15,)))
        _same_stats(featviz.map_stability(model, pair, "pool2", shift=2, distributed=False),
                    featviz.map_stability(model, dataset, "pool2", shift=2))

        # the merge moves O(k * C) numbers, whatever the number of images
        moved = []
        for m in (n, n // 3):
            dist.BYTES_MOVED.update(sent=0, calls=0)
            featviz.top_activating(model, images[:m], "conv2", k=5, batch_size=32)
            moved.append(dist.BYTES_MOVED["sent"])
        k, c = 5, 32
        assert moved[0] == moved[1] <= 8 * (4 * k * c + 16), moved
        dist.BYTES_MOVED.update(sent=0, calls=0)
        featviz.channel_stats(model, images[:n], "conv2")
        assert dist.BYTES_MOVED["sent"] <= 8 * (4 * c + 16), dist.BYTES_MOVED
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize("n", [301])  # odd: the ranks get 151 and 150 images
def test_two_gloo_ranks_return_the_single_process_result(n):
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    ctx = mp.spawn(_worker, args=(_free_port(), n), nprocs=WORLD, join=False)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} processes did not finish within {DEADLINE_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()


def test_distributed_needs_an_initialised_group_and_a_reduce():
    x = torch.zeros(4, 1, 28, 28)
    model = featviz.SimpleCNN()
    with pytest.raises(RuntimeError, match="not initialised"):
        featviz.top_activating(model, x, "conv2", distributed=True)
    with pytest.raises(ValueError, match="needs reduce="):
        list(featviz.batched_activations(model, x, "conv2", distributed=True))


# --------------------------------------------------------------------------- early exit

class _Twice(torch.nn.Module):
    """One conv used twice in a pass: stopping after its first call would be wrong."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.conv(self.conv(x)).flatten(1)[:, :4])


def _n_hooks(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_early_exit_stops_after_the_layer_with_the_same_maps():
    model = featviz.pretrained().eval()
    x = featviz.mnist_tensors(train=False)[0][:8]
    ran = []
    handle = model.fc3.register_forward_hook(lambda *a: ran.append(1))
    try:
        full = featviz.activations(model, x, ["conv1", "conv2"])
        calls = len(ran)
        early = featviz.activations(model, x, ["conv1", "conv2"], stop_after=True)
        assert len(ran) == calls + 1  # the one-image check pass, then no fc3 at all
        featviz.activations(model, x, ["conv1", "conv2"], stop_after=True)
    finally:
        handle.remove()
    assert early.output is None and full.output is not None
    assert torch.equal(early["conv2"], full["conv2"]) and torch.equal(early["conv1"], full["conv1"])
    assert _n_hooks(model) == 0 and not model.training


def test_early_exit_refuses_where_unsafe_and_auto_falls_back():
    twice = _Twice().eval()
    x = torch.randn(3, 1, 2, 2)
    with pytest.raises(ValueError, match="more than once"):
        featviz.activations(twice, x, "conv", stop_after=True)
    acts = featviz.activations(twice, x, "conv", stop_after="auto")
    assert acts.output is not None and "conv#1" in acts.keys()
    model = featviz.pretrained().train()
    with pytest.raises(ValueError, match="train mode"):
        featviz.activations(model, x.new_zeros(2, 1, 28, 28), "conv1", stop_after=True)
    with pytest.raises(ValueError, match="grad"):
        featviz.activations(model.eval(), x.new_zeros(2, 1, 28, 28), "conv1", stop_after=True,
                            grad=True)
    assert _n_hooks(twice) == 0 and _n_hooks(model) == 0
