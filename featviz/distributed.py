"""Scans split over the processes of ``torch.distributed`` (``torchrun``), merged exactly.

When ``torch.distributed`` is initialised (gloo on CPU, nccl on GPU), featviz's scans
(``top_activating``, ``channel_stats``, ``robustness``, ``map_stability``) do three things:

1. each rank scans its own shard of the data: images ``rank, rank + world, ...``
   (strided indices for tensors; a ``DistributedSampler`` without its padding for a
   Dataset or a sequential DataLoader, whose batch size, ``num_workers``,
   ``pin_memory`` and ``collate_fn`` are kept);
2. the partial results (running sums, maxima, or each channel's top ``k``) are merged
   with collectives that carry O(k * C * world) numbers, never the maps;
3. every rank returns what one process returns over the whole data: the same images,
   indices, positions and patches, ties included (they go to the image with the smaller
   global index). Scores are equal bit for bit where a layer's maps of an image depend
   on that image alone (convolutions, pooling); a matrix product (a linear layer)
   rounds its last bits differently with other images in its batch, and the statistics
   sum in another order, so those agree to float rounding (as with another
   ``batch_size``).

Patches are cut once, after the merge: each top image is read once, by global index,
through the data where it allows random access (tensors, Datasets, in-order
DataLoaders); otherwise (numpy arrays, sequences) the rank whose shard holds it
sends it to the others (:func:`share_held`), so only the top images travel.

``distributed=False`` opts out: each rank then scans all of ``data`` on its own.
Every collective goes through :func:`all_reduce` / :func:`all_gather` here, which
count the bytes they carry in :data:`BYTES_MOVED` (tests read it).
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import Tensor

__all__ = ["active", "world", "shard", "global_index", "all_reduce", "all_gather", "broadcast",
           "merge_sums", "merge_top", "share_held", "BYTES_MOVED"]

BYTES_MOVED = {"sent": 0, "calls": 0}  # what this process handed to collectives


def active(distributed: bool | None) -> bool:
    """Whether a scan runs split over ranks: ``None`` means "if torch.distributed is initialised"."""
    if distributed is not None and not isinstance(distributed, bool):
        raise TypeError(f"distributed takes True, False or None (auto), got {distributed!r}.")
    up = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed and not up:
        raise RuntimeError("distributed=True but torch.distributed is not initialised: call "
                           "torch.distributed.init_process_group() first (torchrun sets it up), "
                           "or leave distributed=None.")
    return bool(up and distributed is not False)


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process (``(0, 1)`` without torch.distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _device() -> torch.device:
    """Where collectives want their tensors: the current GPU for nccl, else the CPU."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce(t: Tensor, op: str = "sum") -> Tensor:
    """``t`` reduced over all ranks (``"sum"`` or ``"max"``), on every rank."""
    buf = t.detach().to(_device()).clone()
    BYTES_MOVED["sent"] += buf.numel() * buf.element_size()
    BYTES_MOVED["calls"] += 1
    kind = torch.distributed.ReduceOp.SUM if op == "sum" else torch.distributed.ReduceOp.MAX
    torch.distributed.all_reduce(buf, op=kind)
    return buf.to(t.device)


def all_gather(t: Tensor) -> Tensor:
    """Every rank's ``t`` (same shape on all ranks), stacked: ``(world, *t.shape)``."""
    buf = t.detach().to(_device()).contiguous()
    out = [torch.empty_like(buf) for _ in range(world()[1])]
    BYTES_MOVED["sent"] += buf.numel() * buf.element_size()
    BYTES_MOVED["calls"] += 1
    torch.distributed.all_gather(out, buf)
    return torch.stack(out).to(t.device)


def broadcast(t: Tensor, src: int) -> Tensor:
    """Rank ``src``'s ``t`` on every rank (``t`` gives the shape and dtype on the others)."""
    buf = t.detach().to(_device()).contiguous().clone()
    if world()[0] == src:
        BYTES_MOVED["sent"] += buf.numel() * buf.element_size()
    BYTES_MOVED["calls"] += 1
    torch.distributed.broadcast(buf, src=src)
    return buf.to(t.device)


# --------------------------------------------------------------------------- sharding

class _Unpadded(torch.utils.data.Sampler):
    """A ``DistributedSampler`` in order, without the repeated items it pads the last ranks
    with (they would count twice): rank ``r`` gets ``r, r + world, ...``."""

    def __init__(self, dataset: Any, rank: int, size: int) -> None:
        self.inner: torch.utils.data.DistributedSampler = torch.utils.data.DistributedSampler(dataset, num_replicas=size, rank=rank,
                                                         shuffle=False)
        self.n = len(range(rank, len(dataset), size))

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.inner)[:self.n])

    def __len__(self) -> int:
        return self.n


def _length(data: Any) -> int:
    if isinstance(data, torch.utils.data.DataLoader):
        return len(data.dataset)  # type: ignore[arg-type]
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], (Tensor,)):
        return len(data[0])
    return len(data)


def _loader_like(loader: Any, sampler: torch.utils.data.Sampler) -> Any:
    """``loader`` over ``sampler``, with its batch size, workers, pinning and collation."""
    from torch.utils.data import DataLoader

    if loader.drop_last:
        raise ValueError("a distributed scan cannot use a DataLoader with drop_last=True: each "
                         "rank would drop a different tail, so no rank could return what one "
                         "process returns. Pass drop_last=False, or distributed=False.")
    workers = loader.num_workers
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=workers, pin_memory=loader.pin_memory,
                      pin_memory_device=loader.pin_memory_device, collate_fn=loader.collate_fn,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context if workers else None,
                      generator=loader.generator,
                      prefetch_factor=loader.prefetch_factor if workers else None,
                      persistent_workers=loader.persistent_workers and workers > 0)


def shard(data: Any, batch_size: int) -> Any:
    """This rank's part of ``data`` (images ``rank::world``), in a form ``batches`` takes.

    Tensors and numpy arrays (alone or as an ``(images, labels)`` pair) are sliced; a
    Dataset is read through a ``DistributedSampler`` (without its padding); a DataLoader
    that reads in order is rebuilt over that sampler with its own batch size,
    ``num_workers``, ``pin_memory``, ``collate_fn`` and worker settings.

    Raises a ``ValueError`` (on every rank alike, so none waits for the others) for data
    that has no fixed order (a shuffled DataLoader, an IterableDataset), a DataLoader with
    ``drop_last=True``, or fewer images than ranks.
    """
    from torch.utils.data import DataLoader, Dataset, IterableDataset, SequentialSampler

    from ._torch import _is_array

    rank, size = world()
    if isinstance(data.dataset if isinstance(data, DataLoader) else data, IterableDataset):
        raise ValueError("a distributed scan cannot split an IterableDataset by index: give "
                         "each rank its own part of the stream and pass distributed=False "
                         "(then merge with featviz.distributed), or pass a map-style Dataset.")
    pair = isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0])
    n = len(data[0]) if pair else _length(data)
    if n < size:
        raise ValueError(f"data has {n} images for {size} processes; a distributed scan needs "
                         "at least one image per rank (or pass distributed=False).")
    if _is_array(data):
        return data[rank::size]
    if pair:
        return data[0][rank::size], (None if data[1] is None else data[1][rank::size])
    if isinstance(data, DataLoader):
        if not isinstance(data.sampler, SequentialSampler) or data.batch_sampler is None:
            raise ValueError("a distributed scan needs a DataLoader that reads its dataset in "
                             "order (shuffle=False, no custom sampler): the merge ranks ties by "
                             "the index in the dataset. Pass the Dataset itself, or distributed=False.")
        return _loader_like(data, _Unpadded(data.dataset, rank, size))
    if isinstance(data, Dataset) or hasattr(data, "__getitem__"):
        return DataLoader(data, batch_size=batch_size, sampler=_Unpadded(data, rank, size))
    raise TypeError(f"a distributed scan takes a tensor, an (images, labels) pair, a Dataset or "
                    f"a DataLoader; got {type(data).__name__}.")


def global_index(local: Tensor) -> Tensor:
    """Scan indices within this rank's shard -> indices in the whole data."""
    rank, size = world()
    return local * size + rank


# --------------------------------------------------------------------------- merging

def merge_sums(sums: dict[str, Tensor]) -> dict[str, Tensor]:
    """Running statistics summed over ranks; a key named ``"max"`` takes the maximum.
    One collective per kind, of the statistics' size (O(C)), never the maps."""
    keys = sorted(k for k in sums if k != "max")
    flat = torch.cat([sums[k].double().flatten() for k in keys])
    total = all_reduce(flat, "sum")
    out, at = {}, 0
    for k in keys:
        n = sums[k].numel()
        out[k] = total[at:at + n].reshape(sums[k].shape).to(sums[k].dtype)
        at += n
    if "max" in sums:
        out["max"] = all_reduce(sums["max"], "max")
    return out


def merge_top(top: tuple[Tensor, Tensor, Tensor], k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Each rank's running top-``k`` ``(values (m, C), positions (m, C, 2), global indices
    (m, C))`` -> the top-``k`` over all ranks, the same on every rank: higher values
    first, equal values in order of global index. Moves ``3 * k * C`` numbers per rank."""
    vals, where, idx = top
    m, c = vals.shape
    pad = k - m
    if pad:
        vals = torch.cat([vals.float(), vals.new_full((pad, c), float("-inf"))])
        where = torch.cat([where, where.new_zeros((pad, c, 2))])
        idx = torch.cat([idx, idx.new_full((pad, c), torch.iinfo(torch.long).max)])
    packed = torch.cat([vals.double().unsqueeze(-1), where.double(), idx.double().unsqueeze(-1)], -1)
    # doubles hold indices exactly below 2**53; the padding's index sorts after every real one
    packed[..., 3] = torch.where(idx == torch.iinfo(torch.long).max,
                                 torch.full_like(packed[..., 3], 2.0 ** 53), packed[..., 3])
    every = all_gather(packed).flatten(0, 1)  # (world * k, C, 4)
    n_real = int(all_reduce(torch.tensor([float(m)]), "sum").item())
    g_vals, g_idx = every[..., 0], every[..., 3]
    order = torch.sort(g_idx, dim=0, stable=True).indices  # earlier image first ...
    order = order.gather(0, torch.sort(g_vals.gather(0, order), dim=0, descending=True,
                                       stable=True).indices)  # ... among equal values
    order = order[:min(k, n_real)]
    pick = every.gather(0, order[..., None].expand(-1, -1, 4))
    return pick[..., 0].float(), pick[..., 1:3].long(), pick[..., 3].long()


def share_held(held: dict[int, tuple[Tensor, Tensor | None]],
               ids: list[int]) -> tuple[Tensor, Tensor | None]:
    """The images (and labels) with global indices ``ids`` (the same list on every rank),
    each sent once by the rank whose shard holds it (index ``% world``), from ``held``
    (global index -> (image, label or None)), which holds at least one image on each rank.

    Moves the top images only, once each: ``len(ids)`` images in all.
    """
    rank, size = world()
    like_image, like_label = next(iter(held.values()))
    ims = like_image.new_zeros((len(ids), *like_image.shape))
    labs = None if like_label is None else torch.as_tensor(like_label).new_zeros((len(ids),))
    for src in range(size):
        rows = [j for j, g in enumerate(ids) if g % size == src]
        if not rows:
            continue
        part = ims[rows]
        if src == rank:
            part = torch.stack([held[ids[j]][0] for j in rows]).to(ims.dtype)
        ims[rows] = broadcast(part, src)
        if labs is not None:
            lab = labs[rows]
            if src == rank:
                lab = torch.stack([torch.as_tensor(held[ids[j]][1]) for j in rows]).to(labs.dtype)
            labs[rows] = broadcast(lab, src)
    return ims, labs
