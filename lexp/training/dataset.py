"""Samples as batches, through ``torch.utils.data``: a :class:`SampleDataset`, a
``DistributedSampler`` (one shard per process under torchrun, the whole set otherwise),
a :class:`GroupedBatchSampler` (a batch stacks, so it holds samples of one frame count:
extrapolate samples have 5 input frames, gap-fill ones 8) and a collate function that
crops and flips (:class:`RandomCrops`) or stacks whole samples (validation).

Randomness is a function of (seed, epoch, sample index), never of a generator's running
state: the sampler's order comes from ``seed + epoch`` and each sample's crop and flips
from ``(seed, epoch, index)``. A resumed run therefore only needs the epoch and how many
batches of it were done to draw exactly what the uninterrupted run would have drawn.

A batch is (``model.Evidence``, truth N×3×h×w linear float32): see
:mod:`lexp.training.samples` for a sample's arrays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from lexp.model import Evidence
from lexp.training.samples import ARRAYS


def shape_of(sample, key: str) -> tuple[int, ...]:
    """An array's shape, without reading a stored sample's arrays."""
    shapes = getattr(sample, "shapes", None)  # a sample_cache.StoredSample's, unread
    return shapes[key] if shapes is not None else sample[key].shape


class SampleDataset(Dataset):
    """Samples (dicts of arrays, or StoredSamples read when asked) by index. An item is
    ``(index, sample)``: the collate function seeds each sample's augmentation with it."""

    def __init__(self, samples: Sequence) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return index, self.samples[index]

    def group_ids(self, key=lambda s: shape_of(s, "frames")[0]) -> list:
        """Which samples may share a batch (by default: the same frame count)."""
        return [key(s) for s in self.samples]


class GroupedBatchSampler(Sampler[list[int]]):
    """Batches of ``batch_size`` indices of one group, in the order ``sampler`` gives them
    (torchvision's detection reference groups by aspect ratio the same way). A group's
    last, short batch comes at the end of the epoch.

    Under DDP every process must run the same number of steps, or a collective waits
    forever; the shards group differently, so each process computes every shard's batch
    count (the samplers are deterministic) and all stop at the smallest. ``skip``: the
    batches of this epoch already done (a resumed run)."""

    def __init__(self, sampler: DistributedSampler, group_ids: list, batch_size: int) -> None:
        self.sampler, self.group_ids, self.batch_size = sampler, group_ids, batch_size
        self.skip = 0

    def _batches(self, indices) -> list[list[int]]:
        pending: dict = {}
        out = []
        for index in indices:
            group = pending.setdefault(self.group_ids[index], [])
            group.append(index)
            if len(group) == self.batch_size:
                out.append(list(group))
                group.clear()
        return out + [group for group in pending.values() if group]

    def _every_shard_count(self) -> int:
        s = self.sampler
        counts = []
        for rank in range(s.num_replicas):
            shard = DistributedSampler(s.dataset, s.num_replicas, rank, s.shuffle, s.seed,
                                       s.drop_last)
            shard.set_epoch(s.epoch)
            counts.append(len(self._batches(shard)))
        return min(counts)

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._batches(self.sampler)
        if self.sampler.num_replicas > 1:
            batches = batches[:self._every_shard_count()]
        yield from batches[self.skip:]

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip


class RandomCrops:
    """Collate: a random ``crop``×``crop`` window of each sample (smaller when a sample
    is), mirrored left-right and upside down at random (a flip negates its flow
    component), seeded by (seed, epoch, index); then stacked."""

    def __init__(self, crop: int, seed: int) -> None:
        self.crop, self.seed, self.epoch = crop, seed, 0

    def __call__(self, items: list[tuple[int, dict]]) -> tuple[Evidence, torch.Tensor]:
        crop = min([self.crop] + [min(shape_of(s, "truth")[1:]) for _, s in items])
        return stack([augment(sample, np.random.default_rng([self.seed, self.epoch, index]),
                              crop) for index, sample in items])


def whole(items: list[tuple[int, dict]]) -> tuple[Evidence, torch.Tensor]:
    """Collate: samples as they are (validation scores whole frames)."""
    return stack([{k: sample[k] for k in ARRAYS} for _, sample in items])


def augment(sample, rng: np.random.Generator, crop: int) -> dict:
    """A random crop of ``sample``'s arrays, randomly flipped (flows follow the flip)."""
    h, w = sample["truth"].shape[1:]
    y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
    part = {k: sample[k][..., y:y + crop, x:x + crop] for k in
            ("frames", "flows", "candidates", "truth")}
    part["context"] = sample["context"]
    if rng.random() < 0.5:  # mirror left-right: x flow changes sign
        part = {k: (v[..., ::-1] if k != "context" else v) for k, v in part.items()}
        part["flows"] = part["flows"] * np.float16([-1, 1])[:, None, None]
    if rng.random() < 0.5:  # upside down: y flow changes sign
        part = {k: (v[..., ::-1, :] if k != "context" else v) for k, v in part.items()}
        part["flows"] = part["flows"] * np.float16([1, -1])[:, None, None]
    return part


def stack(parts: list[dict]) -> tuple[Evidence, torch.Tensor]:
    """Samples of one shape -> (Evidence of N-batched float32 tensors, truth N×3×H×W)."""
    def tensor(key):
        return torch.from_numpy(np.stack([np.ascontiguousarray(p[key]) for p in parts])).float()

    evidence = Evidence(tensor("frames"), tensor("flows"), tensor("candidates"),
                        tensor("context"))
    return evidence, tensor("truth")


def training_loader(samples: Sequence, batch: int, crop: int, seed: int, *, rank: int = 0,
                    world_size: int = 1) -> DataLoader:
    """Random crops in batches of one frame count, this process's shard of every epoch;
    call :func:`set_epoch` before each epoch.

    No worker processes: a sample comes from memory or an uncompressed cache entry
    (~9 ms), small beside a training step, and workers would each keep their own copy
    of the samples held in memory."""
    dataset = SampleDataset(samples)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    batches = GroupedBatchSampler(sampler, dataset.group_ids(), batch)
    return DataLoader(dataset, batch_sampler=batches, collate_fn=RandomCrops(crop, seed))


def set_epoch(loader: DataLoader, epoch: int, skip: int = 0) -> None:
    """Draw ``epoch``'s order and crops, starting after its first ``skip`` batches."""
    loader.batch_sampler.set_epoch(epoch, skip)
    loader.collate_fn.epoch = epoch


def validation_loader(samples: Sequence, batch: int = 4) -> DataLoader:
    """Every sample once, whole, in batches of samples of one shape, in order."""
    dataset = SampleDataset(samples)
    groups = dataset.group_ids(lambda s: (shape_of(s, "frames"), shape_of(s, "truth")))
    order: dict = {}
    for index, group in enumerate(groups):
        order.setdefault(group, []).append(index)
    batches = [indices[i:i + batch] for indices in order.values()
               for i in range(0, len(indices), batch)]
    return DataLoader(dataset, batch_sampler=batches, collate_fn=whole)
