"""Train the shipped SimpleCNN checkpoints: the final model and its training history.

    FEATVIZ_DATA_ROOT=../shared/data python scripts/train_checkpoints.py

Trains ``featviz.SimpleCNN`` on the full MNIST training set (60,000 images)
with ``featviz.fit`` on the tensor fast path: Adam with a one-cycle learning
rate schedule, random shifts of up to 2 pixels, batch 64, 6 epochs, seed 0.
About half a minute on an idle 2-core CPU.

Writes, in ``featviz/assets/``:

- ``simplecnn_mnist.pt``: the final weights (float32), read by ``featviz.pretrained()``;
- ``simplecnn_snapshots.pt``: the weights at initialisation, after 30 and 300
  steps and after every epoch (float16, to keep the files small), read by
  ``featviz.pretrained_snapshots()``;

and records their sha256 sums and the test accuracies printed here in
``featviz/assets/manifest.json``. It refuses to run on the bundled sample.
"""
from __future__ import annotations

import argparse
import datetime as dt
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fullmnist import use_full_mnist  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    ap.add_argument("--shift", type=int, default=2, help="random shift augmentation, pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--snapshot-steps", type=int, nargs="*", default=[30, 300])
    ap.add_argument("--min-accuracy", type=float, default=0.99,
                    help="refuse to write checkpoints below this test accuracy")
    ap.add_argument("--dry-run", action="store_true", help="train and report, write nothing")
    args = ap.parse_args()

    use_full_mnist()
    torch.set_num_threads(args.threads)

    import featviz
    from featviz._assets import ASSETS, record_assets
    from featviz.models import PRETRAINED_FILE, SNAPSHOTS_FILE, SimpleCNN, load_state, save_checkpoint
    from featviz.training import Snapshots, evaluate, fit, random_shift

    source = featviz.data_source()
    if source.is_sample:
        print(f"The shipped checkpoints must be trained on the full MNIST; found only "
              f"{source.describe()}. Set FEATVIZ_DATA_ROOT to a folder with MNIST/raw.")
        return 2
    print(f"data: {source.describe()}")
    train = featviz.mnist_tensors(train=True)
    test = featviz.mnist_tensors(train=False)

    torch.manual_seed(args.seed)
    model = SimpleCNN()
    snaps = Snapshots(dtype=torch.float16)
    start = time.perf_counter()
    # the optimizer and memory layout the shipped files were trained with (plain Adam,
    # the ordinary layout), so that a rerun reproduces them
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, foreach=False)
    history = fit(model, train, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                  device="cpu", seed=args.seed, snapshot=snaps,
                  snapshot_steps=args.snapshot_steps, schedule="onecycle",
                  augment=random_shift(args.shift) if args.shift else None, progress=True,
                  optimizer=optimizer, channels_last=False)
    seconds = time.perf_counter() - start
    if history.interrupted:
        print("Interrupted: nothing written.")
        return 1

    final = evaluate(model, test)
    print(f"final model: test accuracy {100 * final['accuracy']:.2f}% "
          f"(loss {final['loss']:.4f}), trained in {seconds:.0f} s")
    snapshots = []
    for item in snaps:
        probe = SimpleCNN()
        load_state(probe, item["state_dict"])  # the float16 weights, as users will get them
        acc = evaluate(probe, test)["accuracy"]
        print(f"  snapshot {item['label']:>10}: step {item['step']:5d}, test accuracy "
              f"{100 * acc:.2f}%")
        snapshots.append({"label": item["label"], "step": item["step"],
                          "epoch": float(item["epoch"]), "test_accuracy": acc,
                          "state_dict": item["state_dict"]})
    if final["accuracy"] < args.min_accuracy:
        print(f"Test accuracy {final['accuracy']:.4f} is below {args.min_accuracy}: "
              f"nothing written.")
        return 1
    if args.dry_run:
        return 0

    recipe = {
        "architecture": "SimpleCNN",
        "data": "full MNIST training set (60,000 images), normalised with mean 0.1307, std 0.3081",
        "optimizer": f"Adam, one-cycle schedule, peak lr {args.lr}",
        "augmentation": f"random shifts of up to {args.shift} pixels" if args.shift else "none",
        "epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
        "steps": history.steps, "train_seconds": round(seconds, 1),
        "threads": args.threads, "torch": torch.__version__,
        "python": platform.python_version(),
        "trained_on": dt.date.today().isoformat(),
        "script": "scripts/train_checkpoints.py",
    }
    save_checkpoint(model, ASSETS / PRETRAINED_FILE, test_accuracy=final["accuracy"],
                    test_loss=final["loss"], epochs=args.epochs, steps=history.steps,
                    seed=args.seed, script="scripts/train_checkpoints.py")
    torch.save({"format": "featviz-snapshots", "architecture": "SimpleCNN",
                "snapshots": snapshots}, ASSETS / SNAPSHOTS_FILE)
    sizes = {name: (ASSETS / name).stat().st_size for name in (PRETRAINED_FILE, SNAPSHOTS_FILE)}
    print(f"wrote {', '.join(f'{n} ({b / 1e6:.2f} MB)' for n, b in sizes.items())}; "
          f"together {sum(sizes.values()) / 1e6:.2f} MB")
    record_assets(
        [PRETRAINED_FILE, SNAPSHOTS_FILE],
        checkpoints={
            PRETRAINED_FILE: {"test_accuracy": round(final["accuracy"], 4),
                              "test_loss": round(final["loss"], 5),
                              "test_set": "official MNIST test set, 10,000 images"},
            SNAPSHOTS_FILE: {s["label"]: {"step": s["step"],
                                          "test_accuracy": round(s["test_accuracy"], 4)}
                             for s in snapshots},
            "recipe": recipe,
        },
    )
    loaded = featviz.pretrained()
    check = evaluate(loaded, test)["accuracy"]
    assert check == final["accuracy"], (check, final["accuracy"])
    print(f"featviz.pretrained() loads and verifies: test accuracy {100 * check:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
