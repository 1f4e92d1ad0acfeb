"""One epoch of full MNIST: ``featviz.fit`` (tensor fast path) against the tutorial loop.

    FEATVIZ_DATA_ROOT=../shared/data python benchmarks/bench_training.py [--repeats 3]

Both train a freshly seeded SimpleCNN for one epoch with Adam (lr 1e-3) at
batch size 64 in this process, on the CPU with the same number of threads:

- featviz: ``fit(model, mnist_tensors(), epochs=1)`` - the split as one tensor,
  batches sliced from it (loading the tensors is inside the timing);
- tutorial: ``torchvision.datasets.MNIST`` with ``ToTensor`` + ``Normalize``
  applied per image, a shuffling ``DataLoader`` (num_workers=0), and the loop
  written out as in the PyTorch tutorials.

After an untimed warm-up of each, the two run alternately, ``--repeats``
times each; the script prints the median (and best) times, their ratio and both models' accuracy on the 10,000
test images. On a shared machine the best times are the steadier measure.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fullmnist import use_full_mnist  # noqa: E402


def tutorial_epoch(model: nn.Module, root: str, batch_size: int, lr: float,
                   limit: int | None = None) -> None:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]
    )
    train_set = datasets.MNIST(root, train=True, transform=transform, download=False)
    if limit is not None:
        train_set = Subset(train_set, range(limit))
    loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.CrossEntropyLoss()
    model.train()
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
    model.eval()


def featviz_epoch(model: nn.Module, root: str, batch_size: int, lr: float,
                  limit: int | None = None) -> None:
    import featviz

    train = featviz.mnist_tensors(train=True, root=root)
    if limit is not None:
        train = (train[0][:limit], train[1][:limit])
    featviz.fit(model, train, epochs=1, lr=lr, batch_size=batch_size, device="cpu",
                progress=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    use_full_mnist()
    torch.set_num_threads(args.threads)

    import featviz
    from featviz.training import evaluate

    source = featviz.data_source()
    if source.is_sample:
        print(f"This benchmark needs the full MNIST; found only {source.describe()}.")
        return 2
    root = str(source.root)
    test = featviz.mnist_tensors(train=False)
    print(f"data: {source.describe()}; torch {torch.__version__}, {args.threads} threads, "
          f"batch {args.batch_size}, Adam lr {args.lr}, 1 epoch, {args.repeats} repeats")

    runners = {"featviz.fit": featviz_epoch, "tutorial loop": tutorial_epoch}
    for run in runners.values():  # untimed: first-call costs (file cache, kernel set-up)
        run(featviz.SimpleCNN(), root, args.batch_size, args.lr, limit=20 * args.batch_size)
    times: dict[str, list[float]] = {name: [] for name in runners}
    accs: dict[str, list[float]] = {name: [] for name in runners}
    for r in range(args.repeats):
        order = list(runners) if r % 2 == 0 else list(reversed(runners))
        for name in order:
            torch.manual_seed(r)  # both start from the same weights in a repeat
            model = featviz.SimpleCNN()
            torch.manual_seed(1000 + r)
            start = time.perf_counter()
            runners[name](model, root, args.batch_size, args.lr)
            times[name].append(time.perf_counter() - start)
            accs[name].append(evaluate(model, test)["accuracy"])
            print(f"  repeat {r + 1} {name:>13}: {times[name][-1]:6.1f} s, test accuracy "
                  f"{100 * accs[name][-1]:.2f}%", flush=True)

    med = {name: statistics.median(t) for name, t in times.items()}
    for name in runners:
        print(f"{name:>13}: median {med[name]:6.1f} s (best {min(times[name]):6.1f} s), "
              f"median test accuracy {100 * statistics.median(accs[name]):.2f}%")
    paired = [t / f for t, f in zip(times["tutorial loop"], times["featviz.fit"])]
    print(f"ratio tutorial / featviz: {med['tutorial loop'] / med['featviz.fit']:.2f}x of the "
          f"medians, {min(times['tutorial loop']) / min(times['featviz.fit']):.2f}x of the best "
          f"times, {statistics.median(paired):.2f}x median of the paired repeats")
    return 0


if __name__ == "__main__":
    sys.exit(main())
