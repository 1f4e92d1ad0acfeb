"""Scans split over 2 processes (gloo, on this machine) return what one process returns.

Each rank computes the single-process answer itself (``distributed=False``, checked to
scan all the data) and the distributed one, and compares them; a failure in a rank fails
the test. The processes are spawned with a deadline, so a stuck collective fails the
test instead of hanging it. 301 images: the ranks get 151 and 150 (an uneven split).

For convolutional layers (conv2, relu1) everything is equal bit for bit, scores
included: each image's maps depend on that image alone. A linear layer's matrix product
rounds its last bits differently with the other images of its batch (as it does for
another ``batch_size``), so fc3's scores and the statistics (sums in another order) are
compared to float rounding.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import featviz
from featviz import distributed as dist

WORLD = 2
N = 301
DEADLINE_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _same_tops(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for ch in a:
        x, y = a[ch], b[ch]
        assert torch.equal(x.indices, y.indices), ch
        if exact:
            assert torch.equal(x.scores, y.scores), ch
        else:
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


def _digest(tops: dict) -> str:
    h = hashlib.sha256()
    for ch, t in sorted(tops.items()):
        for v in (t.indices, t.scores, t.positions, t.images, *t.patches):
            h.update(v.numpy().tobytes())
    return h.hexdigest()


def _same_on_every_rank(value: str) -> None:
    every: list = [None] * WORLD
    torch.distributed.all_gather_object(every, value)
    assert len(set(every)) == 1, every


class _Counting(torch.utils.data.Dataset):
    """A dataset that records which items were read, and labels each item with the
    DataLoader worker that read it (0: the main process, w + 1: worker w)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.reads = images, []

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        self.reads.append(int(i))
        info = torch.utils.data.get_worker_info()
        return self.images[i], 0 if info is None else info.id + 1


class _Traffic:
    """Counts the bytes this rank hands to torch.distributed's collectives, from the
    tensors themselves (independently of featviz's own counter)."""

    def __init__(self) -> None:
        self.sent, self.calls, self._orig = 0, 0, {}

    def __enter__(self) -> "_Traffic":
        td = torch.distributed
        for name in ("all_reduce", "all_gather", "broadcast", "all_gather_into_tensor",
                     "reduce_scatter", "all_to_all", "send", "isend", "gather", "scatter"):
            self._orig[name] = getattr(td, name)
            setattr(td, name, self._wrap(name, self._orig[name]))
        return self

    def _wrap(self, name, fn):
        def counted(*args, **kwargs):
            t = args[1] if name == "all_gather" else args[0]
            if name != "broadcast" or kwargs.get("src", args[1] if len(args) > 1 else None) \
                    == torch.distributed.get_rank():
                self.sent += t.numel() * t.element_size()
            self.calls += 1
            return fn(*args, **kwargs)
        return counted

    def __exit__(self, *exc) -> None:
        for name, fn in self._orig.items():
            setattr(torch.distributed, name, fn)


def _check_top_activating(model, images, labels) -> None:
    pair = (images[:N], labels[:N])
    dataset = torch.utils.data.Subset(featviz.load_mnist(train=False), range(N))
    loader = torch.utils.data.DataLoader(dataset, batch_size=37)
    arrays = (images[:N].numpy(), labels[:N].numpy())  # no random access: ranks send images
    listed = [(images[i], int(labels[i])) for i in range(N)]  # a plain sequence, likewise
    for data in (pair, dataset, loader, arrays, listed):
        for layer in ("conv2", "relu1", "fc3"):
            one = featviz.top_activating(model, data, layer, k=5, batch_size=32,
                                         distributed=False)
            both = featviz.top_activating(model, data, layer, k=5, batch_size=32)
            assert len(both) == {"conv2": 32, "relu1": 16, "fc3": 10}[layer]  # all channels
            _same_tops(one, both, exact=layer != "fc3")
            _same_on_every_rank(_digest(both) if layer != "fc3" else str(
                [both[c].indices.tolist() for c in both]))
    one = featviz.top_activating(model, pair, "conv2", [3, 17], k=4, distributed=False)
    _same_tops(one, featviz.top_activating(model, pair, "conv2", [3, 17], k=4), exact=True)


def _check_ties(model, images) -> None:
    # every score ties: the first k images win on every rank and every channel
    blank = torch.zeros(N, 1, 28, 28)
    for layer in ("conv2", "relu1"):
        tops = featviz.top_activating(model, blank, layer, k=5, batch_size=32)
        assert all(t.indices.tolist() == [0, 1, 2, 3, 4] for t in tops.values())
    # twins (1, 2), (3, 4), ...: the earlier twin (odd, on rank 1) beats the later (rank 0)
    twins = images[(torch.arange(N) + 1) // 2]
    one = featviz.top_activating(model, twins, "conv2", k=6, batch_size=32, distributed=False)
    both = featviz.top_activating(model, twins, "conv2", k=6, batch_size=32)
    _same_tops(one, both, exact=True)
    for t in both.values():
        at = {i: p for p, i in enumerate(t.indices.tolist())}
        assert all(i - 1 in at and at[i - 1] < at[i] for i in at if i % 2 == 0 and i > 0), at


def _check_statistics(model, images, labels) -> None:
    pair = (images[:N], labels[:N])
    dataset = torch.utils.data.Subset(featviz.load_mnist(train=False), range(N))
    loader = torch.utils.data.DataLoader(dataset, batch_size=37)
    for layer in ("relu1", "conv2", "fc1"):
        one = featviz.channel_stats(model, pair, layer, distributed=False)
        assert one.n_images == N
        _same_stats(one, featviz.channel_stats(model, pair, layer))
    _same_stats(featviz.channel_stats(model, dataset, "relu2", distributed=False),
                featviz.channel_stats(model, loader, "relu2"))
    rob = featviz.robustness(model, pair, shifts=(2, (1, -3)), rotations=(15,), distributed=False)
    assert rob.n_images == N
    _same_stats(rob, featviz.robustness(model, loader, shifts=(2, (1, -3)), rotations=(15,)))
    stab = featviz.map_stability(model, pair, "pool2", shift=2, distributed=False)
    assert stab.n_images == N
    _same_stats(stab, featviz.map_stability(model, dataset, "pool2", shift=2))
    _same_stats(featviz.map_stability(model, pair, "conv2", shift=3, distributed=False),
                featviz.map_stability(model, pair, "conv2", shift=3))


def _check_batched_activations(model, images) -> None:
    rank, _ = dist.world()
    x = images[:N]
    mine = list(featviz.batched_activations(model, x, "conv2", batch_size=32, reduce="max"))
    got = torch.cat([a["conv2"] for _, _, a in mine])
    assert torch.equal(torch.cat([im for im, _, _ in mine]), x[rank::WORLD])  # this shard only
    every = dist.all_gather(torch.cat([got, got.new_zeros(N // WORLD + 1 - len(got), 32, 3)]))
    merged = torch.empty(N, 32, 3)
    for r in range(WORLD):
        merged[r::WORLD] = every[r][:len(range(r, N, WORLD))]
    whole = torch.cat([a["conv2"] for _, _, a in featviz.batched_activations(
        model, x, "conv2", batch_size=32, reduce="max", distributed=False)])
    assert len(whole) == N and torch.equal(merged, whole)


def _check_traffic(model, images) -> None:
    # the merge moves O(k x C) numbers, whatever the number of images; maps never travel
    def sent(data, channel=None, k=5, layer="conv2") -> int:
        dist.BYTES_MOVED.update(sent=0, calls=0)
        with _Traffic() as traffic:
            featviz.top_activating(model, data, layer, channel, k=k, batch_size=32)
        assert traffic.sent == dist.BYTES_MOVED["sent"] > 0  # featviz's counter is honest
        return traffic.sent

    k, c = 5, 32
    base = sent(images[:N])
    # (value, row, col, index) as doubles for each of the k x C entries, + the image count
    assert base == 8 * 4 * k * c + 4
    assert base == sent(images[:N // 3]) == sent(images[:N], list(range(c)))  # not with N
    assert sent(images[:N], k=2 * k) == 8 * 4 * 2 * k * c + 4  # proportional to k ...
    assert sent(images[:N], list(range(8))) == 8 * 4 * k * 8 + 4  # ... and to C
    assert base < N * c * 8 * 8 * 4 / 100  # the conv2 maps would be over 100 times more
    # without random access the ranks send the top images, once each, from their owner
    for m in (N, 3 * N):
        arrays = images[:m].numpy()
        tops = featviz.top_activating(model, arrays, "conv2", k=k, batch_size=32,
                                      distributed=False)
        ids = {i for t in tops.values() for i in t.indices.tolist()}
        own = sum(1 for i in ids if i % WORLD == dist.world()[0])
        assert sent(arrays) == base + own * 28 * 28 * 4 and len(ids) <= k * c
    # dataset statistics: O(C) numbers
    dist.BYTES_MOVED.update(sent=0, calls=0)
    with _Traffic() as traffic:
        featviz.channel_stats(model, images[:N], "conv2")
    assert traffic.sent == dist.BYTES_MOVED["sent"] == 8 * (3 * 32 + 1)  # n, sums, maxima
    # opting out moves nothing
    with _Traffic() as traffic:
        featviz.top_activating(model, images[:N], "conv2", k=5, distributed=False)
        featviz.channel_stats(model, images[:N], "conv2", distributed=False)
    assert traffic.calls == 0


def _check_reads_and_loader_options(model, images) -> None:
    rank, _ = dist.world()
    data = _Counting(images[:N])
    tops = featviz.top_activating(model, data, "conv2", k=5, batch_size=32)
    ids = sorted({i for t in tops.values() for i in t.indices.tolist()})
    scanned, fetched = data.reads[:len(range(rank, N, WORLD))], data.reads[len(range(rank, N, WORLD)):]
    assert scanned == list(range(rank, N, WORLD))  # each rank reads its own shard ...
    assert fetched == ids  # ... then every top image once, after the merge
    assert all((t.labels == 0).all() for t in tops.values())  # read in this process
    # a DataLoader's own workers read the shard
    loader = torch.utils.data.DataLoader(_Counting(images[:N]), batch_size=40, num_workers=1)
    assert dist.shard(loader, 8).num_workers == 1 and dist.shard(loader, 8).batch_size == 40
    seen = [(len(x), lab) for x, lab, _ in featviz.batched_activations(model, loader, "conv2",
                                                                      reduce="max")]
    assert [n for n, _ in seen] == [40] * 3 + [len(range(rank, N, WORLD)) - 120]
    assert all((lab == 1).all() for _, lab in seen)  # read by the loader's worker
    assert featviz.channel_stats(model, loader, "relu1").n_images == N
    for bad, why in ((torch.utils.data.DataLoader(data, batch_size=8, shuffle=True), "in order"),
                     (torch.utils.data.DataLoader(data, batch_size=8, drop_last=True), "drop_last")):
        with pytest.raises(ValueError, match=why):
            featviz.top_activating(model, bad, "conv2")
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(images[:N])

    for stream in (Stream(), torch.utils.data.DataLoader(Stream(), batch_size=8)):
        with pytest.raises(ValueError, match="IterableDataset"):
            featviz.channel_stats(model, stream, "conv2")
    with pytest.raises(ValueError, match="at least one image per rank"):
        featviz.channel_stats(model, images[:1], "conv2")


def _worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        model = featviz.pretrained().eval()
        images, labels = featviz.mnist_tensors(train=False)
        _check_top_activating(model, images, labels)
        _check_ties(model, images)
        _check_statistics(model, images, labels)
        _check_batched_activations(model, images)
        _check_traffic(model, images)
        _check_reads_and_loader_options(model, images)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_return_the_single_process_result():
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    ctx = mp.spawn(_worker, args=(_free_port(),), nprocs=WORLD, join=False)
    deadline = time.monotonic() + DEADLINE_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD} processes did not finish within {DEADLINE_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.terminate()


def test_the_example_under_torchrun_gives_every_rank_the_same_answer():
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("this torch has no gloo backend")
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
         f"--master_port={_free_port()}", str(root / "examples" / "scan_distributed.py"),
         "--images", str(N)],
        capture_output=True, text=True, timeout=DEADLINE_S, cwd=root,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    lines = re.findall(r"^rank (\d) of 2: (.*)$", run.stdout, flags=re.M)
    assert sorted(r for r, _ in lines) == ["0", "1"], run.stdout
    assert lines[0][1] == lines[1][1] and lines[0][1].startswith(f"{N} images;"), lines
    one = featviz.top_activating(featviz.pretrained().eval(), torch.utils.data.Subset(
        featviz.load_mnist(train=False), range(N)), "conv2", k=9)
    assert f"top images {one[0].indices.tolist()}" in lines[0][1]
    assert "dead channels of 32" in run.stdout and "rotate 15 deg" in run.stdout


def test_distributed_needs_an_initialised_group_and_a_reduce():
    x = torch.zeros(4, 1, 28, 28)
    model = featviz.SimpleCNN()
    with pytest.raises(RuntimeError, match="not initialised"):
        featviz.top_activating(model, x, "conv2", distributed=True)
    with pytest.raises(ValueError, match="needs reduce="):
        list(featviz.batched_activations(model, x, "conv2", distributed=True))
    with pytest.raises(TypeError, match="True, False or None"):
        featviz.channel_stats(model, x, "conv2", distributed="yes")


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
        featviz.top_activating(model, torch.cat([x] * 40), "conv2", k=3, batch_size=16,
                               patches=False)
        assert len(ran) == calls + 2  # 20 batches, one check pass: early exit by default
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
    with pytest.raises(ValueError, match="more than once"):
        featviz.top_activating(twice, x, "conv", stop_after=True, patches=False)
    acts = featviz.activations(twice, x, "conv", stop_after="auto")
    assert acts.output is not None and "conv#1" in acts.keys()
    with pytest.raises(ValueError, match=r"call 2 of layer 'conv'.*acts\['conv#1'\]"):
        featviz.activations(twice, x, "conv#1")
    model = featviz.pretrained().train()
    with pytest.raises(ValueError, match="train mode"):
        featviz.activations(model, x.new_zeros(2, 1, 28, 28), "conv1", stop_after=True)
    assert model.training and all(m.training for m in model.modules())
    with pytest.raises(ValueError, match="grad"):
        featviz.activations(model.eval(), x.new_zeros(2, 1, 28, 28), "conv1", stop_after=True,
                            grad=True)
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        featviz.activations(model, x.new_zeros(2, 1, 28, 28), "conv1", stop_after="yes")
    assert _n_hooks(twice) == 0 and _n_hooks(model) == 0


def test_a_scan_with_early_exit_restores_the_model_and_matches_full_passes():
    model = featviz.pretrained().train()
    model.fc1.weight.requires_grad_(False)
    x, y = featviz.mnist_tensors(train=False)
    data = (x[:200], y[:200])
    early = featviz.top_activating(model, data, "relu2", k=4, batch_size=64)  # eval inside
    full = featviz.top_activating(model, data, "relu2", k=4, batch_size=64, stop_after=False)
    _same_tops(early, full, exact=True)
    assert model.training and not model.fc1.weight.requires_grad and model.conv1.weight.requires_grad
    assert _n_hooks(model) == 0
    # an error in the middle of a scan leaves no hook behind either
    with pytest.raises(ValueError, match="channel 99"):
        featviz.top_activating(model, data, "relu2", 99)
    assert _n_hooks(model) == 0 and model.training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_pinned_loader_on_the_gpu_gives_the_cpu_result():
    model = featviz.pretrained().eval()
    x, y = featviz.mnist_tensors(train=False)
    data = torch.utils.data.TensorDataset(x[:300], y[:300])
    loader = torch.utils.data.DataLoader(data, batch_size=64, pin_memory=True, num_workers=1)
    cpu = featviz.top_activating(model, (x[:300], y[:300]), "conv2", k=3)
    gpu = featviz.top_activating(model.cuda(), loader, "conv2", k=3)
    for ch in cpu:
        assert torch.equal(cpu[ch].indices, gpu[ch].indices)
        torch.testing.assert_close(cpu[ch].scores, gpu[ch].scores, rtol=1e-4, atol=1e-4)
