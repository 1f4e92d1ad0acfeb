"""top_activating (streaming, running top-k) vs keeping every activation in memory.

    FEATVIZ_DATA_ROOT=../shared/data python benchmarks/bench_top_activating.py

Task: the 9 images (and receptive-field patches) that excite each of the 32 conv2
channels of the SimpleCNN most, over the whole MNIST training set (60,000
images with the full data; the 10,000-image sample otherwise).

- featviz: ``featviz.top_activating(model, data, "conv2", k=9)``, one streaming
  pass that keeps a running top-k per channel.
- naive: run the same batches, keep every conv2 activation (60,000 x 32 x 8 x 8
  floats, about 490 MB), concatenate, then sort each channel.

A second table (``--floor``, on by default) puts the scan against its floor: a
plain forward pass truncated at the layer (the model's children up to the
layer, as an ``nn.Sequential``, under ``torch.no_grad``), on the SimpleCNN
(``conv2``) and on torchvision's ResNet-18 (``layer1``, 64x64 random inputs, no
weights needed), with and without early exit (``stop_after``).

Both run in this process, alternately, ``--repeats`` times; the script prints the
median wall time and the median peak memory of each, and their ratios. In the floor
table each way runs once to warm up, then ``--repeats`` times, each in turn first;
the ratios are the medians of the per-repeat ratios (each against the floor of the
same repeat, which cancels slow drifts of a shared machine). ``--floor-only`` skips
the first table.

How memory is measured: torch allocates tensors with C ``malloc``, which
``tracemalloc`` does not see, so the script reads the kernel's peak resident set
size instead. Before each run it resets the peak (``/proc/self/clear_refs``,
Linux) and records the current RSS; after the run, peak memory = ``VmHWM`` -
that RSS, i.e. the extra memory the run needed on top of the data already
loaded. glibc's malloc is told not to raise its mmap threshold and to give freed
memory back after each run, so one run's leftovers cannot hide the next one's
peak. On a system without ``/proc`` the memory column says n/a.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch

import featviz
from featviz.explain import receptive_field, top_activating


# --------------------------------------------------------------------------- memory


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD: fixed, so big buffers are unmapped on free
        return libc
    except (OSError, AttributeError):
        return None


LIBC = _libc()
PROC = Path("/proc/self")


def _status_kb(field: str) -> int:
    for line in (PROC / "status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        (PROC / "clear_refs").write_text("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def measure(fn: Callable[[], object]) -> tuple[float, float | None]:
    """(seconds, extra peak MiB or None) of one call of ``fn``."""
    gc.collect()
    if LIBC is not None:
        LIBC.malloc_trim(0)
    can = _reset_peak()
    before = _status_kb("VmRSS") if can else 0
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    peak = (_status_kb("VmHWM") - before) / 1024 if can else None
    del result
    return seconds, peak


# --------------------------------------------------------------------------- the floor


def truncated(model: torch.nn.Module, layer: str) -> torch.nn.Sequential:
    """The model's direct children up to and including ``layer``: a forward pass that
    stops there (valid for models whose forward runs their children in order)."""
    kept = []
    for name, child in model.named_children():
        kept.append(child)
        if name == layer:
            return torch.nn.Sequential(*kept)
    raise ValueError(f"{layer!r} is not a direct child of the model")


def floor_table(repeats: int, batch_size: int, simple_images: torch.Tensor) -> None:
    """Median seconds of the truncated pass, the scan with early exit and without, and the
    medians of their per-repeat ratios to the truncated pass."""
    import torchvision

    torch.manual_seed(0)
    cases = [("SimpleCNN conv2", featviz.pretrained().eval(), "conv2", simple_images),
             ("ResNet-18 layer1 64x64", torchvision.models.resnet18(weights=None).eval(),
              "layer1", torch.randn(2048, 3, 64, 64))]
    print(f"\nthe scan against its floor: medians of {repeats} repeats, after one warm-up each")
    print("  floor: the model's children up to the layer as an nn.Sequential, under no_grad")
    print("  early exit: top_activating(..., k=9, stop_after='auto'), the default")
    print("  full pass: top_activating(..., k=9, stop_after=False)")
    print(f"{'':24s} {'images':>7s} {'floor':>9s} {'early exit':>11s} {'full pass':>10s} "
          f"{'early/floor':>12s} {'full/floor':>11s}")
    for label, model, layer, images in cases:
        cut = truncated(model, layer)

        def floor(cut=cut, images=images) -> None:
            with torch.no_grad():
                for i in range(0, len(images), batch_size):
                    cut(images[i:i + batch_size])

        ways = {
            "floor": floor,
            "early": lambda m=model, x=images, L=layer: top_activating(
                m, x, L, k=9, batch_size=batch_size, stop_after="auto"),
            "full": lambda m=model, x=images, L=layer: top_activating(
                m, x, L, k=9, batch_size=batch_size, stop_after=False),
        }
        for fn in ways.values():  # warm-up: allocator, thread pool, first-call costs
            fn()
        times: dict[str, list[float]] = {k: [] for k in ways}
        names = list(ways)
        for r in range(repeats):
            for name in names[r % 3:] + names[:r % 3]:  # each way first in turn
                start = time.perf_counter()
                ways[name]()
                times[name].append(time.perf_counter() - start)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = {k: statistics.median(a / b for a, b in zip(times[k], times["floor"]))
                 for k in ("early", "full")}
        print(f"{label:24s} {len(images):7,d} {med['floor']:7.2f} s {med['early']:9.2f} s "
              f"{med['full']:8.2f} s {ratio['early']:11.2f}x {ratio['full']:10.2f}x")


# --------------------------------------------------------------------------- the two ways


def naive_top_activating(model, images, labels, layer="conv2", k=9, batch_size=256):
    """Keep every activation, then sort: what one writes first."""
    chunks = []
    for i in range(0, len(images), batch_size):
        acts = featviz.activations(model, images[i:i + batch_size], layer)
        chunks.append(acts[layer])
    everything = torch.cat(chunks)  # (N, C, h, w)
    del chunks
    best, where = everything.flatten(2).max(dim=2)  # (N, C)
    rf = receptive_field(model, layer, input_size=images.shape[1:])
    width = everything.shape[-1]
    out = {}
    for c in range(everything.shape[1]):
        idx = torch.sort(best[:, c], descending=True, stable=True).indices[:k]
        patches = []
        for i, flat in zip(idx.tolist(), where[idx, c].tolist()):
            top, left, bottom, right = rf.box(flat // width, flat % width)
            patches.append(images[i, :, top:bottom, left:right])
        out[c] = (idx, best[idx, c], images[idx], labels[idx], patches)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--quick", action="store_true", help="the first 10,000 images only")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the table against a forward pass truncated at the layer")
    ap.add_argument("--floor-only", action="store_true",
                    help="only the table against the truncated forward pass")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    images, labels = featviz.mnist_tensors(train=True)
    if args.quick:
        images, labels = images[:10_000], labels[:10_000]
    print(f"data: {featviz.data_source().describe()}")
    try:
        model = featviz.pretrained()
        which = "pretrained SimpleCNN"
    except (FileNotFoundError, ValueError):
        torch.manual_seed(0)
        model = featviz.SimpleCNN().eval()
        which = "randomly initialised SimpleCNN (no pretrained checkpoint bundled)"
    print(f"model: {which}; task: top 9 images for all 32 conv2 channels of "
          f"{len(images):,} images; torch threads: {torch.get_num_threads()}; "
          f"batch size {args.batch_size}; {args.repeats} repeats")
    if args.floor_only:
        floor_table(args.repeats, args.batch_size, images)
        return 0
    if not PROC.joinpath("clear_refs").exists():
        print("memory: /proc/self/clear_refs is not available here, peak memory not measured")

    ways = {
        "featviz top_activating": lambda: top_activating(
            model, (images, labels), "conv2", k=9, batch_size=args.batch_size),
        "naive, all activations": lambda: naive_top_activating(
            model, images, labels, "conv2", k=9, batch_size=args.batch_size),
    }
    # same answer first: the benchmark compares two ways of doing one thing
    ours, theirs = ways["featviz top_activating"](), ways["naive, all activations"]()
    for c in range(32):
        if not torch.equal(ours[c].indices, theirs[c][0]):
            print(f"MISMATCH in channel {c}: {ours[c].indices.tolist()} vs {theirs[c][0].tolist()}")
            return 1
    del ours, theirs

    times: dict[str, list[float]] = {k: [] for k in ways}
    peaks: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(args.repeats):
        for name, fn in ways.items():
            s, p = measure(fn)
            times[name].append(s)
            if p is not None:
                peaks[name].append(p)

    print(f"{'':24s} {'median time':>12s} {'median peak extra memory':>26s}")
    for name in ways:
        mem = f"{statistics.median(peaks[name]):8.1f} MiB" if peaks[name] else "n/a"
        print(f"{name:24s} {statistics.median(times[name]):10.2f} s {mem:>26s}")
    a, b = "featviz top_activating", "naive, all activations"
    print(f"time ratio naive / featviz:   {statistics.median(times[b]) / statistics.median(times[a]):.2f}x")
    if peaks[a] and peaks[b]:
        print(f"memory ratio naive / featviz: "
              f"{statistics.median(peaks[b]) / statistics.median(peaks[a]):.1f}x")
    if not args.no_floor:
        floor_table(args.repeats, args.batch_size, images)
    return 0


if __name__ == "__main__":
    sys.exit(main())
