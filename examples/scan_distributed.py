"""Dataset-wide questions split over processes with torch.distributed.

    torchrun --nproc_per_node=2 examples/scan_distributed.py            # CPU, gloo
    torchrun --nproc_per_node=4 examples/scan_distributed.py --cuda     # one GPU per rank, nccl

Each rank scans its shard of the MNIST test set (images rank, rank + world, ...);
featviz merges the partial results with a few collectives (O(k x channels) numbers,
never the maps), so every rank holds the answer one process would give over the
whole set. Each rank prints a line to show it; rank 0 then prints the answers.
Without the full MNIST (offline), the scan runs on featviz's bundled sample.
"""
from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist

import featviz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cuda", action="store_true", help="nccl, one GPU per rank")
    ap.add_argument("--images", type=int, default=None, help="scan only the first N test images")
    args = ap.parse_args()
    dist.init_process_group("nccl" if args.cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cpu")
    if args.cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    try:
        model = featviz.pretrained().to(device).eval()
        test = featviz.load_mnist(train=False)
        if args.images is not None:
            test = torch.utils.data.Subset(test, range(min(args.images, len(test))))
        # an in-order DataLoader: each rank reads its shard with these workers and pinning
        loader = torch.utils.data.DataLoader(test, batch_size=512, num_workers=2,
                                             pin_memory=args.cuda)

        tops = featviz.top_activating(model, loader, "conv2", k=9)   # every rank: all of it
        stats = featviz.channel_stats(model, loader, "relu2")
        robust = featviz.robustness(model, loader, shifts=(2, 4), rotations=(-15, 15))
        stable = featviz.map_stability(model, test, "relu2", shift=2)   # a Dataset works too

        for r in range(world):  # one rank at a time, so the lines do not interleave
            if r == rank:
                print(f"rank {rank} of {world}: {stats.n_images} images; conv2 channel 0's top "
                      f"images {tops[0].indices.tolist()}; clean accuracy {robust.clean:.4f}",
                      flush=True)
            dist.barrier()
        if rank == 0:
            print(f"relu2: {len(stats.dead)} dead channels of {len(stats.mean)}; maps keep "
                  f"a mean cosine of {stable.mean:.3f} under a 2 px shift")
            print(robust.table())
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
