"""Train lesson 09's SimpleCNN variants on the full MNIST and measure them.

    python scripts/train_lesson09.py            # all variants, seeds 0 1 2

Each variant is the shipped recipe of ``scripts/train_checkpoints.py`` (Adam, one-cycle
schedule, peak lr 0.003, batch 64, 6 epochs) with one change:

- ``baseline``: none (random shifts of up to 2 px, as shipped);
- ``augmented``: random shifts of up to 6 px and rotations of up to 30 degrees;
- ``antialiased``: ``SimpleCNN(antialias=True)`` (blur before subsampling, Zhang 2019);
- ``both``: the anti-aliased network with the augmentation;
- ``targeted``: the baseline with the loss on 4s and 9s weighted 3 times.

Each is trained from seeds 0, 1 and 2 (about half a minute a run on an idle 2-core
CPU). The float16 weights go to ``featviz/assets/simplecnn_variants.pt``, read by
``featviz.pretrained_variant``; the sha256 and, per run, the test accuracy, the accuracy
under shifts of 4 px and rotations of 30 degrees, the conv2 / pool2 map stability under
a 3 px shift, the dead channels and the 4-vs-9 confusions go to the manifest. It
refuses to run on the bundled sample.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from fullmnist import use_full_mnist  # noqa: E402

VARIANTS = ("baseline", "augmented", "antialiased", "both", "targeted")
WEIGHTED = (4, 9)


def shift_rotate(max_pixels: int, max_degrees: float) -> Callable[[torch.Tensor], torch.Tensor]:
    """A batch augmentation: each image rotated by up to ``max_degrees`` and shifted by up
    to ``max_pixels`` (uniform, independently per image), background filled in."""
    def augment(images: torch.Tensor) -> torch.Tensor:
        n, _, h, w = images.shape
        angle = (torch.rand(n, device=images.device) * 2 - 1) * math.radians(max_degrees)
        move = torch.randint(-max_pixels, max_pixels + 1, (n, 2), device=images.device).float()
        cos, sin = angle.cos(), angle.sin()
        theta = torch.stack([
            torch.stack([cos, -sin * h / w, -move[:, 0] * 2 / w], 1),
            torch.stack([sin * w / h, cos, -move[:, 1] * 2 / h], 1)], 1)
        grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
        back = images.amin()
        return F.grid_sample(images - back, grid, align_corners=False) + back
    return augment


def recipe_of(variant: str) -> dict[str, Any]:
    return {"antialias": variant in ("antialiased", "both"),
            "augmentation": ("random shifts up to 6 px and rotations up to 30 degrees"
                             if variant in ("augmented", "both") else "random shifts up to 2 px"),
            "loss": ("cross-entropy, 4s and 9s weighted 3x" if variant == "targeted"
                     else "cross-entropy"),
            "optimizer": "Adam, one-cycle schedule, peak lr 0.003", "epochs": 6, "batch_size": 64}


def train(variant: str, seed: int, train_data: Any, epochs: int) -> torch.nn.Module:
    from featviz.models import SimpleCNN
    from featviz.training import fit, random_shift
    recipe = recipe_of(variant)
    torch.manual_seed(seed)
    model = SimpleCNN(antialias=recipe["antialias"])
    augment = shift_rotate(6, 30) if variant in ("augmented", "both") else random_shift(2)
    weight = torch.ones(10)
    if variant == "targeted":
        weight[list(WEIGHTED)] = 3.0

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, weight=weight.to(logits.device))

    trainable = [p for p in model.parameters() if p.requires_grad]
    fit(model, train_data, epochs=epochs, lr=3e-3, batch_size=64, device="cpu", seed=seed,
        schedule="onecycle", augment=augment, progress=False, channels_last=False,
        optimizer=torch.optim.Adam(trainable, lr=3e-3, foreach=False), loss_fn=loss)
    return model


def measure(model: torch.nn.Module, test: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
    import featviz
    from featviz.training import confusion_matrix, evaluate
    images, labels = test
    rob = featviz.robustness(model, test, shifts=(4,), rotations=(-30, 30))
    probe = images[:2000]
    cm = confusion_matrix(model, test, num_classes=10)
    return {
        "test_accuracy": round(evaluate(model, test)["accuracy"], 4),
        "shift4_accuracy": round(rob.shift[4], 4),
        "rotate30_accuracy": round((rob.rotation[-30] + rob.rotation[30]) / 2, 4),
        "conv2_stability": round(featviz.map_stability(model, probe, "conv2", shift=3).mean, 4),
        "pool2_stability": round(featviz.map_stability(model, probe, "pool2", shift=3).mean, 4),
        "dead_relu1": featviz.channel_stats(model, test, "relu1").dead,
        "dead_relu2": featviz.channel_stats(model, test, "relu2").dead,
        "confusions_4_9": int(cm[4, 9] + cm[9, 4]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dry-run", action="store_true", help="train and report, write nothing")
    args = ap.parse_args()

    use_full_mnist()
    torch.set_num_threads(args.threads)
    import featviz
    from featviz._assets import ASSETS, record_assets
    from featviz.models import VARIANTS_FILE

    source = featviz.data_source()
    if source.is_sample:
        print(f"The lesson 09 variants must be trained on the full MNIST; found only "
              f"{source.describe()}. Set FEATVIZ_DATA_ROOT to a folder with MNIST/raw.")
        return 2
    train_data = featviz.mnist_tensors(train=True)
    test = featviz.mnist_tensors(train=False)

    shipped: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for variant in args.variants:
        runs: dict[str, Any] = {}
        for seed in args.seeds:
            start = time.perf_counter()
            model = train(variant, seed, train_data, args.epochs)
            state = {k: v.detach().to(torch.float16) for k, v in model.state_dict().items()}
            featviz.models.load_state(model, state)  # measured as users will get it
            result = measure(model.eval(), test)
            result["train_seconds"] = round(time.perf_counter() - start, 1)
            print(f"{variant:>11} seed {seed}: {result}", flush=True)
            runs[str(seed)] = {"state_dict": state, "test_accuracy": result["test_accuracy"]}
            metrics.setdefault(variant, {})[str(seed)] = result
        shipped[variant] = {"antialias": recipe_of(variant)["antialias"],
                            "recipe": recipe_of(variant), "seeds": runs}

    print("\nmean (spread over seeds: min-max)")
    for variant, runs in metrics.items():
        cells = []
        for key in ("test_accuracy", "shift4_accuracy", "rotate30_accuracy", "conv2_stability",
                    "pool2_stability", "confusions_4_9"):
            vals = [r[key] for r in runs.values()]
            cells.append(f"{key} {statistics.mean(vals):.4g} ({min(vals):.4g}-{max(vals):.4g})")
        dead = [len(r["dead_relu1"]) + len(r["dead_relu2"]) for r in runs.values()]
        print(f"{variant:>11}: " + ", ".join(cells) + f", dead channels {dead}")
    if args.dry_run:
        return 0
    torch.save({"format": "featviz-variants", "architecture": "SimpleCNN", "variants": shipped},
               ASSETS / VARIANTS_FILE)
    size = (ASSETS / VARIANTS_FILE).stat().st_size
    print(f"wrote {VARIANTS_FILE} ({size / 1e6:.2f} MB)")
    record_assets([VARIANTS_FILE], variants={
        "file": VARIANTS_FILE, "script": "scripts/train_lesson09.py",
        "test_set": "official MNIST test set, 10,000 images (stability: its first 2,000)",
        "recipes": {v: recipe_of(v) for v in shipped}, "runs": metrics})
    check = featviz.pretrained_variant(args.variants[0], seed=args.seeds[0])
    print(f"pretrained_variant loads and verifies: {check.featviz_meta['test_accuracy']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
